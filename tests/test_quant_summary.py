"""Tests of numscale.quant_summary: each record against numbers worked out by hand on
small made-up inputs (exact arithmetic), the tables it formats, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numscale import quant, quant_summary

LABELS = tuple(quant_summary.SCHEME_KEYS)


def hand_table(rel: dict[str, list[float]]) -> dict[str, dict[str, np.ndarray]]:
    """An error table in the form of quant.error_table, max_abs = rel / 10."""
    return {
        label: {"rel_fro": np.array(v), "max_abs": np.array(v) / 10}
        for label, v in rel.items()
    }


TABLE = hand_table(
    {
        "per tensor": [0.1, 0.3, 0.2, 0.5],
        "per channel": [0.05, 0.07, 0.03, 0.09],
        "group 32": [0.01, 0.04, 0.02, 0.06],
        "group 128": [0.02, 0.05, 0.04, 0.07],
    }
)
IS_QKV = np.array([True, False, True, False])


def test_scheme_summary_means_by_part():
    record = quant_summary.scheme_summary(TABLE, IS_QKV)
    assert record.n_gpt2 == 4
    # by hand: c_attn are matrices 0 and 2, c_proj 1 and 3
    expected = {
        "tensor_qkv": 0.15,
        "tensor_proj": 0.4,
        "channel_qkv": 0.04,
        "channel_proj": 0.08,
        "g32_qkv": 0.015,
        "g32_proj": 0.05,
        "g128_qkv": 0.03,
        "g128_proj": 0.06,
        "tensor_max": 0.5,
        "g32_max": 0.06,
    }
    assert record.gpt2.keys() == expected.keys()
    for key, value in expected.items():
        assert record.gpt2[key] == pytest.approx(value, rel=1e-12), key


def test_format_scheme_errors_one_line_per_scheme():
    lines = quant_summary.format_scheme_errors(TABLE, IS_QKV).splitlines()
    assert [line.split(" relative")[0].strip() for line in lines] == list(LABELS)
    assert "c_attn 0.1500, c_proj 0.4000; max |error| 0.0500" in lines[0]


def test_scheme_summary_bad_input():
    with pytest.raises(ValueError, match="errors lacks"):
        quant_summary.scheme_summary({"per tensor": TABLE["per tensor"]}, IS_QKV)
    with pytest.raises(ValueError, match="is_qkv"):
        quant_summary.scheme_summary(TABLE, IS_QKV[:3])
    with pytest.raises(ValueError, match="is_qkv"):
        quant_summary.scheme_summary(TABLE, np.ones(4, dtype=bool))
    with pytest.raises(TypeError, match="errors"):
        quant_summary.scheme_summary([1, 2], IS_QKV)
    ragged = {**TABLE, "group 32": {"rel_fro": np.ones(3), "max_abs": np.ones(3)}}
    with pytest.raises(ValueError, match="different lengths"):
        quant_summary.scheme_summary(ragged, IS_QKV)


CHANGES = {
    (bits, label): (0.01 * bits + i, 0.001 * bits + i / 10)
    for bits in (8, 4)
    for i, label in enumerate(LABELS)
}


def test_loss_summary_fields():
    base = np.array([10.0, 20.0, 30.0])
    counts = np.array([5, 5, 10])
    record = quant_summary.loss_summary(TABLE, base, counts, CHANGES)
    assert record.n_matrices == 4
    assert record.loss_base == pytest.approx(60 / 20, rel=1e-15)
    assert record.err["tensor"] == pytest.approx(0.275, rel=1e-12)  # (.1+.3+.2+.5)/4
    assert record.err["g32"] == pytest.approx(0.0325, rel=1e-12)
    # "group 32" is the third label: change 0.01·bits + 2, SE 0.001·bits + 0.2
    assert record.d8["g32"] == pytest.approx(2.08) and record.d8[
        "g32_se"
    ] == pytest.approx(0.208)
    assert record.d4["tensor"] == pytest.approx(0.04)
    assert record.d4["g128_se"] == pytest.approx(0.304)
    assert set(record.d8) == {
        f"{k}{s}" for k in ("tensor", "channel", "g32", "g128") for s in ("", "_se")
    }


def test_loss_summary_bad_input():
    base, counts = np.array([1.0, 2.0]), np.array([1, 1])
    with pytest.raises(ValueError, match="changes lacks"):
        quant_summary.loss_summary(TABLE, base, counts, {(8, "per tensor"): (0, 0)})
    with pytest.raises(ValueError, match="counts"):
        quant_summary.loss_summary(TABLE, base, np.array([1, 1, 1]), CHANGES)
    with pytest.raises(TypeError, match="base"):
        quant_summary.loss_summary(TABLE, np.array([1, 2]), counts, CHANGES)


def test_format_loss_changes():
    text = quant_summary.format_loss_changes({(8, "per tensor"): (0.0123, 0.0045)})
    assert text == "int8 per tensor   loss change +0.0123 ± 0.0045"


def fold_case():
    """Three blocks of a (6, 2) Conv1D matrix; gains |γ| sorted 1,1,1,1,2,4 (median 1,
    largest 4 in row 4) and 1,1,1,1,1,3 (largest 3 in row 5)."""
    gains = np.array(
        [
            [1.0, 1.0, -1.0, 1.0, 4.0, 2.0],
            [1.0, 1.0, 1.0, 1.0, -4.0, 2.0],
            [1.0, 1.0, 1.0, 1.0, 1.0, 3.0],
        ]
    )
    ones = np.ones((6, 2))
    big_row0 = ones.copy()
    big_row0[0, 1] = 100.0  # folded: 100 in row 0 beats 4 in row 4
    weights = [ones, big_row0, ones]
    fold = {
        "plain": np.array([1.0, 1.0, 1.0]),
        "folded": np.array([2.0, 0.5, 3.0]),
        "folded, outlier rows kept": np.array([0.8, 0.5, 2.5]),
    }
    return fold, weights, gains


def test_fold_summary_counts_by_hand():
    fold, weights, gains = fold_case()
    record = quant_summary.fold_summary(fold, weights, gains, 1, reported=(4, 5))
    assert (record.gain_ratio_min, record.gain_ratio_max) == (3.0, 4.0)
    # reported rows 4 and 5: |γ| 4, 2 | 4, 2 | 1, 3 against medians 1, 1, 1: none below
    assert (record.reported_below_median, record.reported_pairs) == (0, 6)
    assert record.fold_plain_mean == 1.0
    assert record.fold_folded_mean == pytest.approx(5.5 / 3)
    assert record.fold_kept_mean == pytest.approx(3.8 / 3)
    assert record.fold_worse_blocks == 2  # blocks 0 and 2
    assert record.fold_kept_helps == 2  # blocks 0 and 2
    assert record.fold_kept_same == 1  # block 1
    # block 1's largest folded entry is in row 0, outside the one kept row
    assert record.fold_largest_kept == 2
    # of the blocks where keeping helps (0 and 2): below plain in 0, above in 2; block
    # 1 (kept = folded < plain) is not counted: keeping the rows changed nothing there
    assert record.fold_kept_below_plain == 1
    assert record.fold_kept_above_plain == 1


def test_fold_summary_counts_reported_rows_below_the_median():
    fold, weights, gains = fold_case()
    small = gains.copy()
    small[:, 3] = 0.5  # row 3 below every block's median (1)
    record = quant_summary.fold_summary(fold, weights, small, 2, reported=(3,))
    assert (record.reported_below_median, record.reported_pairs) == (3, 3)


def test_fold_summary_bad_input():
    fold, weights, gains = fold_case()
    with pytest.raises(ValueError, match="fold"):
        quant_summary.fold_summary({"plain": fold["plain"]}, weights, gains, 1, (4,))
    with pytest.raises(ValueError, match="same blocks"):
        quant_summary.fold_summary(fold, weights[:2], gains, 1, (4,))
    with pytest.raises(ValueError, match="reported"):
        quant_summary.fold_summary(fold, weights, gains, 1, (6,))
    with pytest.raises(ValueError, match="n_outliers"):
        quant_summary.fold_summary(fold, weights, gains, 0, (4,))


def test_format_rows():
    text = quant_summary.format_rows({"a": np.array([1.0, 2.0])})
    assert text == "a:\n  [1. 2.]"
    titled = quant_summary.format_rows({"a": np.array([1.0])}, title="by block")
    assert titled == "by block\na:\n  [1.]"


def test_smoothquant_summary_by_hand():
    # two blocks, channel maxima 1, 2, 8 (median 2: ratio 4) and 3, 3, 3 (ratio 1)
    inputs = [
        np.array([[1.0, -2.0, 0.0], [0.5, 1.0, -8.0]]),
        np.array([[3.0, 3.0, -3.0], [0.0, 0.0, 0.0]]),
    ]
    alphas = (0.0, 0.5, 0.75)
    errors = np.array([[0.2, 0.3, 0.1, 0.15], [0.4, 0.5, 0.35, 0.41]])
    record = quant_summary.smoothquant_summary(inputs, errors, alphas)
    assert (record.act_ratio_min, record.act_ratio_max) == (1.0, 4.0)
    assert (record.n_tokens, record.n_blocks) == (2, 2)
    sq = record.sq
    assert sq["none"] == pytest.approx(0.3)
    assert sq["half"] == sq["alpha1"] == pytest.approx(0.225)  # column of α = 0.5
    assert sq["half_gain_min"] == pytest.approx(0.05)  # 0.4 − 0.35
    assert sq["alpha2"] == pytest.approx(0.28)
    assert (sq["lower_0"], sq["lower_1"], sq["lower_2"]) == (0, 2, 1)


def test_smoothquant_summary_bad_input():
    inputs = [np.ones((2, 3))]
    with pytest.raises(ValueError, match="alphas"):
        quant_summary.smoothquant_summary(inputs, np.ones((1, 2)), (0.25,))
    with pytest.raises(ValueError, match="errors"):
        quant_summary.smoothquant_summary(inputs, np.ones((2, 2)), (0.5,))
    with pytest.raises(ValueError, match=r"inputs\[0\]"):
        quant_summary.smoothquant_summary([np.ones(3)], np.ones((1, 2)), (0.5,))


def test_format_smoothing_names_the_columns():
    text = quant_summary.format_smoothing(np.array([[0.123456, 0.5]]), [0.5])
    assert text == "rows: blocks; columns: no smoothing, α = (0.5,)\n[[0.1235 0.5   ]]"


def test_fp8_summary_by_hand():
    # E4M3: smallest normal 2^-6, smallest subnormal 2^-9 (OCP FP8). 2^-3 is normal,
    # 2^-8 subnormal, 2^-12 < 2^-10 (half the smallest subnormal) flushes to zero;
    # shrunk by 2^-8 all three fall below 2^-10; the zero entry is not counted.
    w = np.array([[2.0**-3, -(2.0**-8)], [2.0**-12, 0.0]], dtype=np.float32)
    shifts = np.array([0, 4, 8, 16])
    errors = {
        (f, scaled): np.array([1.0, 2.0, 3.0, 4.0]) * (10 if scaled else 1) + i
        for i, f in enumerate(quant_summary.FP8_FORMATS)
        for scaled in (False, True)
    }
    r = quant_summary.fp8_summary(w, shifts, errors)
    assert (r.fp8_e4m3_scaled, r.fp8_e5m2_scaled) == (10.0, 11.0)
    assert (r.fp8_e4m3_raw0, r.fp8_e4m3_raw8, r.fp8_e5m2_raw16) == (1.0, 3.0, 5.0)
    assert r.fp8_max_shift == 16
    assert r.fp8_zero_stored == pytest.approx(1 / 3)
    assert r.fp8_sub_stored == pytest.approx(1 / 3)
    assert (r.fp8_zero_8, r.fp8_sub_8) == (1.0, 0.0)
    assert r.w_absmax == 2.0**-3
    # the formats' ranges from the OCP FP8 definitions: 1.75·2^8, 2^-6; 1.75·2^15, 2^-14
    assert (r.e4m3_max, r.e4m3_tiny) == (448.0, 2.0**-6)
    assert (r.e5m2_max, r.e5m2_tiny) == (57344.0, 2.0**-14)


def test_fp8_summary_bad_input():
    w = np.ones((2, 2), dtype=np.float32)
    good = {
        (f, s): np.ones(3) for f in quant_summary.FP8_FORMATS for s in (False, True)
    }
    with pytest.raises(ValueError, match="shifts"):
        quant_summary.fp8_summary(w, np.array([0, 8, 12]), good)
    with pytest.raises(TypeError, match="shifts"):
        quant_summary.fp8_summary(w, np.array([0.0, 8.0, 16.0]), good)
    with pytest.raises(ValueError, match="errors"):
        quant_summary.fp8_summary(w, np.array([0, 8, 16]), {("E4M3", True): 1})
    with pytest.raises(TypeError, match="errors"):
        quant_summary.fp8_summary(w, np.array([0, 8, 16]), [1, 2])


def test_format_fp8_errors():
    text = quant_summary.format_fp8_errors(
        {("E4M3", False): np.array([0.123456]), ("E5M2", True): np.array([1.0])}
    )
    assert text == "E4M3 unscaled [0.1235]\nE5M2 scaled   [1.]"


def test_fp8_formats_are_torch_fp8():
    assert quant_summary.FP8_FORMATS == {
        "E4M3": torch.float8_e4m3fn,
        "E5M2": torch.float8_e5m2,
    }


def test_scheme_keys_cover_the_scheme_table():
    assert set(quant_summary.SCHEME_KEYS) == {row[0] for row in quant.SCHEME_TABLE}
