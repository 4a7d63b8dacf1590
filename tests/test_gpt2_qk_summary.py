"""Tests for numscale.gpt2_qk_summary: the GPT-2 query–key chapter's records.

Records are compared with values worked out by hand on small made-up ``(L, H)`` arrays
(exact binary fractions where possible) and a made-up toy run; the alignment record's
head names are checked against the arrays' known largest and smallest entries.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from numscale import gpt2_qk_summary, report
from numscale.key_bias_toy import TOY_OPTIMIZERS, BiasRun

VAR = np.array([[4.0, 0.25], [16.0, 1.0]])  # std 2, 0.5, 4, 1
VAR_INIT = np.array([[1.0, 0.25], [1.0, 0.25]])  # std 1, 0.5, 1, 0.5
VAR_NO_BIAS = np.array([[3.0, 0.25], [12.0, 0.5]])  # bias shares 1/4, 0, 1/4, 1/2


def test_logit_std_summary_fields() -> None:
    rec = gpt2_qk_summary.logit_std_summary(
        VAR, VAR_INIT, VAR_NO_BIAS, init_expected=0.3072
    )
    assert dataclasses.asdict(rec) == {
        "std_min": 0.5,
        "std_max": 4.0,
        "std_median": 1.5,
        "std_max_block": 1,
        "std_max_head": 0,
        "std_min_block": 0,
        "std_min_head": 1,
        "heads_above_one": 2,  # 2 and 4; exactly 1 is not above
        "heads": 4,
        "init_std_min": 0.5,
        "init_std_max": 1.0,
        "init_std_expected": 0.3072,
        "median_ratio_to_init": 2.0,  # ratios 2, 1, 4, 2
        "bias_share_median": 25.0,
        "bias_share_max": 50.0,
    }
    assert gpt2_qk_summary.format_logit_std(rec) == (
        "logit std, trained: 0.50 … 4.00 (median 1.50);  reconstructed init: "
        "0.500 … 1.000"
    )
    with pytest.raises(ValueError, match="var_init"):
        gpt2_qk_summary.logit_std_summary(
            VAR, VAR_INIT[:1], VAR_NO_BIAS, init_expected=0.3
        )
    with pytest.raises(ValueError, match="var"):
        gpt2_qk_summary.logit_std_summary(
            VAR.ravel(), VAR_INIT, VAR_NO_BIAS, init_expected=0.3
        )


def test_probe_summary_fields() -> None:
    z = np.array([[1.0, -3.0], [1.0, 1.0]])  # mean square (1 + 9 + 1 + 1)/4 = 3
    rec = gpt2_qk_summary.probe_summary(z, 3.5)
    assert dataclasses.asdict(rec) == {
        "probe_z_max": 3.0,
        "probe_z_rms": math.sqrt(3.0),
        "probe_z_max_95": 3.5,
    }
    assert gpt2_qk_summary.format_probe(rec, 4) == (
        "(sample variance − formula) / SE over 4 heads: max |z| = 3.00, rms z = 1.73"
    )
    with pytest.raises(ValueError, match="z_max_95"):
        gpt2_qk_summary.probe_summary(z, -1.0)


def change_arrays() -> dict[str, np.ndarray]:
    """(L=1, H=2, n=2, n=2) arrays with known extremes."""
    b_k = np.array([[[[1e-8, 2e-8], [0.0, 4e-8]], [[3e-8, 0.0], [1e-8, 1e-8]]]])
    bound = np.array([[[[1e-7, 1e-7], [0.0, 2e-8]], [[6e-8, 1e-7], [1e-7, 1e-7]]]])
    b_q = np.array([[[[0.1, 0.2], [0.05, 0.0]], [[0.01, 0.02], [0.04, 0.03]]]])
    return {
        "b_k": b_k,
        "b_q": b_q,
        "bound": bound,
        "float32": b_k / 2,
        "b_k f64": b_k * 1e-9,
    }


def test_bias_zeroing_summary_fields() -> None:
    rec = gpt2_qk_summary.bias_zeroing_summary(change_arrays())
    got = dataclasses.asdict(rec)
    expected = {
        "bk_change_max": 4e-8,
        "f32_rounding_max": 2e-8,
        "bk_change_max_f64": 4e-17,
        "bound_max": 1e-7,
        "bk_within_bound_pct": 87.5,  # 4e-8 > 2e-8 fails; 0 <= 0 holds
        "bk_bound_use_max": 2.0,  # 4e-8 / 2e-8
        "bq_change_max": 0.2,
        "bq_head_max_min": 0.04,
        "bq_head_max_median": 0.12,  # median of 0.2 and 0.04
    }
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-15), name  # one rounding
    text = gpt2_qk_summary.format_bias_zeroing(rec).splitlines()
    assert text == [
        "max |Δp|: zeroing b_k 4.00e-08 (float64: 4.0e-17),",
        "         float32 rounding 2.00e-08, zeroing b_q 0.200",
    ]
    partial = {k: v for k, v in change_arrays().items() if k != "bound"}
    with pytest.raises(ValueError, match="bound"):
        gpt2_qk_summary.bias_zeroing_summary(partial)
    with pytest.raises(ValueError, match="b_q"):
        gpt2_qk_summary.bias_zeroing_summary(
            {**change_arrays(), "b_q": np.zeros((1, 2, 2))}
        )
    with pytest.raises(TypeError, match="change"):
        gpt2_qk_summary.bias_zeroing_summary([1.0])


def test_key_bias_summary_fields_and_glue_names() -> None:
    bias_rms = {"b_k": np.array([0.5, 2.0, 1.0]), "b_q": np.array([0.25, 0.75, 1.0])}
    rec = gpt2_qk_summary.key_bias_summary(bias_rms, np.array([1.0, 4.0, 0.5]))
    assert dataclasses.asdict(rec) == {
        "bk_rms": {0: 0.5, 1: 2.0, 2: 1.0},
        "bk_rms_min": 0.5,
        "bk_rms_max": 2.0,
        "bk_rms_argmax": 1,
        "bq_rms_median": 0.75,
        "bk_over_key_min": 0.5,  # 0.5, 0.5, 2
        "bk_over_key_max": 2.0,
    }
    # the chapter's glue names bk_rms_0 … come from the dict field
    names = report.record_numbers(rec)
    assert [names[f"bk_rms_{i}"] for i in range(3)] == [0.5, 2.0, 1.0]
    with pytest.raises(ValueError, match="bias_rms"):
        gpt2_qk_summary.key_bias_summary({"b_k": np.ones(3)}, np.ones(3))
    with pytest.raises(ValueError, match="key_rms"):
        gpt2_qk_summary.key_bias_summary(bias_rms, np.ones(2))


def toy_run(steps: int) -> BiasRun:
    """Three rows in TOY_OPTIMIZERS order with distinct, known values."""
    r = np.arange(3.0)[:, None]
    s = np.arange(1.0, steps + 1)[None, :]
    return BiasRun(
        labels=tuple(TOY_OPTIMIZERS),
        loss=(2.0 + r) / s,
        grad_rms_key_bias=np.broadcast_to(1e-7 * (1 + r), (3, steps)).copy(),
        grad_rms_query_bias=np.full((3, steps), 0.5),
        drift_key_bias=np.broadcast_to(np.array([[1e-4], [0.25], [1e-9]]), (3, steps))
        * s
        / steps,
        drift_query_bias=np.broadcast_to(np.array([[0.5], [0.5], [0.125]]), (3, steps))
        * s
        / steps,
    )


def test_toy_summary_reads_rows_by_label() -> None:
    run, run64 = toy_run(4), toy_run(2)
    run64 = dataclasses.replace(run64, grad_rms_key_bias=run64.grad_rms_key_bias * 1e-9)
    rec = gpt2_qk_summary.toy_summary(run, run64)
    got = dataclasses.asdict(rec)
    expected = {
        "toy_grad_ratio_f32": 2e-7,
        "toy_grad_ratio_f64": 2e-16,
        "toy_bk_drift_adam8": 1e-4,
        "toy_bk_drift_adam12": 0.25,
        "toy_bk_drift_sgd": 1e-9,
        "toy_bq_drift_adam": 0.5,
        "toy_bq_drift_sgd": 0.125,
        "toy_bk_over_bq_adam12": 0.5,
        "toy_loss_start": 2.0,
        "toy_loss_adam": 0.5,
        "toy_loss_sgd": 1.0,  # (2 + 2) / 4
    }
    assert got == pytest.approx(expected, rel=1e-15)
    # rows are found by label, not by position
    order = [2, 0, 1]
    shuffled = BiasRun(
        labels=tuple(run.labels[i] for i in order),
        **{
            f.name: getattr(run, f.name)[order]
            for f in dataclasses.fields(run)
            if f.name != "labels"
        },
    )
    assert gpt2_qk_summary.toy_summary(shuffled, run64) == rec
    lines = gpt2_qk_summary.format_toy(run).splitlines()
    assert lines[2] == "SGD              loss 1.0000   b_k RMS 1.0e-09   b_q RMS 0.125"
    with pytest.raises(ValueError, match="run64"):
        gpt2_qk_summary.toy_summary(run, dataclasses.replace(run64, labels=("a",) * 3))
    with pytest.raises(TypeError, match="run"):
        gpt2_qk_summary.toy_summary({}, run64)


def test_alignment_summary_fields() -> None:
    sym = np.array([[0.5, 0.8, 0.3], [0.9, 0.4, 0.6]])
    trace = np.array([[0.5, 7.0, -2.0], [6.0, 0.25, 5.0]])
    sym_init = np.array([[0.49, 0.51, 0.5], [0.5, 0.5, 0.52]])
    trace_init = np.array([[0.1, -0.3, 0.2], [0.0, 0.05, -0.1]])
    excess = np.array([[0.5, 4.0, -1.0], [3.0, 0.0, 2.0]])
    rec = gpt2_qk_summary.alignment_summary(
        sym, trace, sym_init, trace_init, excess, 64
    )
    numbers = report.record_numbers(rec, exclude=gpt2_qk_summary.ALIGNMENT_DISPLAY)
    assert numbers == {
        "sym_median": 0.55,  # (0.5 + 0.6) / 2
        "sym_min": 0.3,
        "sym_max": 0.9,
        "sym_above_075": 2,
        "sym_below_035": 1,
        "sym_init_min": 0.49,
        "sym_init_max": 0.52,
        "trace_max": 7.0,
        "trace_min": -2.0,
        "trace_abs_median": 3.5,  # |.|: 0.25 0.5 2 5 6 7
        "trace_init_abs_max": 0.3,
        "sqrt_dk": 8.0,
        "self_excess_max": 4.0,
        "self_excess_median": 1.25,  # 0.5 and 2
        "trace_min_sym": 0.3,
    }
    assert rec.top_heads == ((0, 1, 7.0), (1, 0, 6.0), (1, 2, 5.0))
    assert rec.top_names == "block 0 head 1, block 1 head 0, block 1 head 2"
    assert rec.bottom_name == "block 0 head 2"
    assert gpt2_qk_summary.format_alignment(rec) == (
        "most aligned heads (block, head, tr M/‖M‖_F): [(0, 1, 7.0), (1, 0, 6.0), (1, 2, 5.0)]"
    )
    with pytest.raises(ValueError, match="self_excess"):
        gpt2_qk_summary.alignment_summary(
            sym, trace, sym_init, trace_init, excess[:1], 64
        )
    with pytest.raises(ValueError, match="d_k"):
        gpt2_qk_summary.alignment_summary(sym, trace, sym_init, trace_init, excess, 0)
