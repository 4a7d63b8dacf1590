"""Tests for numscale.activation_summary: the trained-residual chapter's records.

Each record is compared with values worked out by hand on small made-up inputs (exact
binary fractions where possible, so most comparisons are exact); the causal selection
is checked against an explicit loop over layers, stories, heads, queries and keys.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from numscale import activation_stats, activation_summary, fp

RMS = np.array([1.0, 2.0, 4.0])
UPDATES = activation_stats.BlockUpdates(
    update_rms=np.array([0.5, 3.0]),
    cosine=np.array([0.25, -0.125]),
    growth=np.array([3.0, 12.0]),
    update_sq=np.array([0.25, 9.0]),
    cross=np.array([2.75, 3.0]),
)


def test_growth_summary_fields() -> None:
    rec = activation_summary.growth_summary(
        RMS,
        np.array([0.5, 0.5, 1.0]),
        np.array([1.0, 1.0, 8.0]),
        UPDATES,
        sqrt_growth=1.5,
        n_tokens=7,
    )
    assert dataclasses.asdict(rec) == {
        "n_tokens": 7,
        "rms_0": 1.0,
        "rms_L": 4.0,
        "growth": 4.0,
        "sqrt_growth": 1.5,
        "init_rms_0": 0.5,
        "init_growth": 2.0,
        "first_rms_L": 8.0,
        "update_rms_1": 0.5,
        "update_rms_L": 3.0,
        "update_ratio_min": 0.5,  # 0.5/1 and 3/2
        "update_ratio_max": 1.5,
        "cos_min": -0.125,
        "cos_max": 0.25,
        "cross_share": 5.75 / 15.0,
    }


def test_growth_summary_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rms_init"):
        activation_summary.growth_summary(
            RMS, RMS[:2], RMS, UPDATES, sqrt_growth=1.0, n_tokens=1
        )
    with pytest.raises(TypeError, match="updates"):
        activation_summary.growth_summary(
            RMS, RMS, RMS, {"update_rms": 1}, sqrt_growth=1.0, n_tokens=1
        )
    short = dataclasses.replace(UPDATES, update_rms=np.array([1.0]))
    with pytest.raises(ValueError, match="updates"):
        activation_summary.growth_summary(
            RMS, RMS, RMS, short, sqrt_growth=1.0, n_tokens=1
        )
    with pytest.raises(ValueError, match="n_tokens"):
        activation_summary.growth_summary(
            RMS, RMS, RMS, UPDATES, sqrt_growth=1.0, n_tokens=0
        )
    with pytest.raises(ValueError, match="rms"):
        activation_summary.growth_summary(
            [1.0, np.nan, 2.0], RMS, RMS, UPDATES, sqrt_growth=1.0, n_tokens=1
        )


def test_format_growth() -> None:
    lines = activation_summary.format_growth(RMS, UPDATES).splitlines()
    assert lines == [
        "RMS at the embedding, then after each block: [1. 2. 4.]",
        "RMS of each block's update: [0.5 3. ]",
        "mean cos(x_{l-1}, Δ_l): [ 0.25  -0.125]",
    ]


def outliers(token_ratio, max_abs, channel_rms) -> activation_stats.OutlierStats:
    max_abs = np.array(max_abs)
    return activation_stats.OutlierStats(
        max_abs=max_abs,
        median_abs=max_abs / 4,
        global_ratio=np.full(max_abs.size, 4.0),
        token_ratio=np.array(token_ratio),
        where_position=np.array([0, 3]),
        where_channel=np.array([1, 2]),
        channel_rms=np.array(channel_rms),
    )


def test_outlier_summary_fields() -> None:
    trained = outliers([2.0, 8.0], [1.0, 6.0], [[1.0, 2.0, 10.0], [1.0, 1.0, 3.0]])
    init = outliers([5.0, 4.0], [1.0, 1.0], [[1.0, 1.0, 1.0]] * 2)
    first = outliers([1.0, 1.0], [0.5, 2.5], [[1.0, 1.0, 1.0]] * 2)
    rec = activation_summary.outlier_summary(trained, init, first)
    assert dataclasses.asdict(rec) == {
        "token_ratio_max": 8.0,
        "criterion_over_ratio": 125.0,
        "token_ratio_min": 8.0,  # depths after the embedding only
        "init_token_ratio_max": 5.0,
        "global_ratio_max": 4.0,
        "max_abs": 6.0,
        "median_abs_L": 1.5,
        "first_max_abs": 2.5,
        "channel_rms_ratio_max": 5.0,  # depth 0: 10 / median(1, 2, 10)
    }
    text = activation_summary.format_outliers(trained, init)
    assert text.splitlines()[-1] == "[(0, 1), (3, 2)]"
    with pytest.raises(TypeError, match="init"):
        activation_summary.outlier_summary(trained, None, first)


def test_gain_summary_fields() -> None:
    att = np.array([[1.0, 2.0], [3.0, -1.0]])
    mlp = np.array([[0.5, 0.25], [0.75, 1.0]])
    final = np.array([4.0, 6.0])
    gains = np.concatenate([att, mlp, final[None]])
    rec = activation_summary.gain_summary(gains, att, mlp, final)
    assert dataclasses.asdict(rec) == {
        "n_gains": 10,
        "gain_min": -1.0,
        "gain_max": 6.0,
        "gain_median": 1.0,  # sorted: -1, .25, .5, .75, 1, 1, 2, 3, 4, 6
        "att_median": 1.5,
        "mlp_median": 0.625,
        "final_median": 5.0,
        "n_negative": 1,
    }
    with pytest.raises(ValueError, match="gains"):
        activation_summary.gain_summary(gains[:2], att, mlp, final)
    rows = activation_summary.format_gain_rows(["a", "b"], att).splitlines()
    assert rows[1] == "b            median  1.000  min -1.000  max  3.000"
    with pytest.raises(ValueError, match="labels"):
        activation_summary.format_gain_rows(["a"], att)


def test_output_summary_fields() -> None:
    out = activation_stats.OutputLogitStats(
        spread=np.array([1.0, 3.0, 2.0]),
        max_abs=9.0,
        top_gap=np.array([4.0, 5.0, 6.0]),
        entropy=np.array([0.5, 1.0, 1.5]),
        top_probability=np.array([0.5, 0.25, 0.75]),
    )
    rec = activation_summary.output_summary(out, 8, (1.25, 0.5), (0.25, 0.125))
    assert dataclasses.asdict(rec) == {
        "logit_spread_median": 2.0,
        "logit_max_abs": 9.0,
        "top_gap_median": 5.0,
        "entropy_mean": 1.0,
        "ln_vocab": math.log(8),
        "top_p_median": 0.5,
        "loss32": 1.25,
        "loss32_se": 0.5,
        "loss_minus_entropy": 0.25,
        "loss_minus_entropy_se": 0.125,
    }
    assert activation_summary.format_output(rec) == (
        "next-token entropy 1.000 nats (uniform: 2.079); loss 1.250 ± 0.500"
    )
    with pytest.raises(ValueError, match="vocab_size"):
        activation_summary.output_summary(out, 1, (1.0, 0.1), (0.0, 0.1))
    with pytest.raises(ValueError, match="gap"):
        activation_summary.output_summary(out, 8, (1.0, 0.1), (math.inf, 0.1))


def test_causal_attention_weights_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    w = rng.random((2, 3, 2, 5, 5)).astype(np.float32)  # (L, B, H, T, T)
    real = np.array(
        [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=bool
    )  # stories of 5, 3 and 2 tokens
    expected = [
        w[layer, b, h, t, k]
        for layer in range(2)
        for b in range(3)
        for h in range(2)
        for t in range(1, 5)
        for k in range(t + 1)
        if real[b, t] and real[b, k]
    ]
    got = activation_summary.causal_attention_weights(w, real)
    assert got.dtype == np.float32
    # per layer and head: (2+3+4+5) + (2+3) + 2 = 21 weights
    assert got.size == 2 * 2 * 21
    assert np.array_equal(got, np.array(expected, dtype=np.float32))
    with pytest.raises(ValueError, match="attn_weights"):
        activation_summary.causal_attention_weights(w[0], real)
    with pytest.raises(ValueError, match="real"):
        activation_summary.causal_attention_weights(w, real.astype(int))
    with pytest.raises(TypeError, match="attn_weights"):
        activation_summary.causal_attention_weights(w.astype(int), real)


def margins(f16: torch.dtype) -> dict:
    def margin(name, max_abs, sub):
        return activation_stats.FormatMargin(
            name, "float16", max_abs, max_abs / 65504, 10.0 + max_abs, sub, 0.0
        )

    names = activation_summary.MARGIN_NAMES
    return {
        (names["weights"], f16): margin(names["weights"], 1.0, 0.001),
        (names["x"], f16): margin(names["x"], 2.0, 0.0),
        (names["squares"], f16): margin(names["squares"], 3.0, 0.25),
        (names["qk"], f16): margin(names["qk"], 4.0, math.nan),
        (names["logits"], f16): margin(names["logits"], 5.0, 0.0),
    }


def test_low_precision_summary_fields() -> None:
    f16, bf16 = torch.float16, torch.bfloat16
    diffs = {bf16: (0.001, 0.0005), f16: (-0.00003, 0.00005)}
    bf16_normal = torch.finfo(bf16).smallest_normal  # 2^-126
    weights = np.array([0.0, 0.0, bf16_normal / 2, 0.5, 0.25, 0.125, 1.0, 0.0625])
    rec = activation_summary.low_precision_summary(
        diffs,
        margins(f16),
        {"below_normal": 0.5, "to_zero": 0.25},
        weights.astype(np.float32),
        fp16_mean_of_squares=1600.0,
    )
    got = dataclasses.asdict(rec)
    assert got == {
        "bf16_diff": 0.001,
        "bf16_diff_se": 0.0005,
        "fp16_diff": -0.00003,
        "fp16_diff_se": 0.00005,
        "fp16_max": 65504.0,
        "fp16_smallest_normal": 2.0**-14,
        "squares_fp16_doublings": 13.0,
        "squares_max": 3.0,
        "x_fp16_doublings": 12.0,
        "qk_max": 4.0,
        "logits_fp16_doublings": 15.0,
        "weights_subnormal_pct": 0.1,
        "qk_fp16_doublings": 14.0,
        "squares_subnormal_pct": 25.0,
        "attn_below_normal_pct": 50.0,
        "attn_to_zero_pct": 25.0,
        "bf16_smallest_normal": 2.0**-126,
        "attn_below_bf16_normal_pct": 37.5,  # 3 of 8 (two zeros, one half-normal)
        "attn_zero_fp32_pct": 25.0,
        "fp16_mean_of_squares": 1600.0,
    }
    assert rec.fp16_max == fp.format_info(f16).max
    lines = activation_summary.format_low_precision(rec, 3).splitlines()
    assert lines[0] == (
        "bfloat16  loss − float32 loss = +0.00100 ± 0.00050 (paired, same stories)"
    )
    assert lines[1].startswith("float16   loss − float32 loss = ")
    assert lines[2:] == [
        "causal attention weights (3 stories) in float16:",
        "  below its smallest normal 50.0%, rounded to 0 25.0%",
    ]
    with pytest.raises(ValueError, match="n_attention_stories"):
        activation_summary.format_low_precision(rec, 0)


def test_low_precision_summary_rejects_bad_input() -> None:
    f16, bf16 = torch.float16, torch.bfloat16
    diffs = {bf16: (0.0, 0.1), f16: (0.0, 0.1)}
    under = {"below_normal": 0.5, "to_zero": 0.25}
    w = np.ones(3, dtype=np.float32)
    with pytest.raises(ValueError, match="diffs"):
        activation_summary.low_precision_summary(
            {f16: (0.0, 0.1)}, margins(f16), under, w, fp16_mean_of_squares=1.0
        )
    partial = {k: v for k, v in margins(f16).items() if k[0] != "output logits"}
    with pytest.raises(TypeError, match="output logits"):
        activation_summary.low_precision_summary(
            diffs, partial, under, w, fp16_mean_of_squares=1.0
        )
    with pytest.raises(ValueError, match="to_zero"):
        activation_summary.low_precision_summary(
            diffs, margins(f16), {"below_normal": 0.5}, w, fp16_mean_of_squares=1.0
        )
    with pytest.raises(ValueError, match="causal_weights"):
        activation_summary.low_precision_summary(
            diffs, margins(f16), under, w[:0], fp16_mean_of_squares=1.0
        )
    with pytest.raises(ValueError, match="fp16_mean_of_squares"):
        activation_summary.low_precision_summary(
            diffs, margins(f16), under, w, fp16_mean_of_squares=math.inf
        )
