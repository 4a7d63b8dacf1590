"""Tests of numscale.fp_summary (the floating-point chapter's records): fields against
hand recomputation on made-up input, the glue names the chapter quotes, and the
errors bad input raises."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import fp_summary, report


def test_overflow_check_fields():
    # 250 of 10,000 draws overflow: p = 0.025. The binomial SE equals the population
    # SD of a 0/1 sample with that share, over √n: computed here from the sample.
    n, p = 10_000, 0.025
    bernoulli = np.zeros(n)
    bernoulli[:250] = 1.0
    rec = fp_summary.overflow_check(0.03, p, n, 0.0, 3e-4)
    assert rec.frac16_pct == pytest.approx(3.0)
    assert rec.frac16_pred_pct == pytest.approx(2.5)
    assert rec.frac16_se_pct == pytest.approx(100 * bernoulli.std() / math.sqrt(n))
    # counts, not fractions: 3 of 10,000 is 3 (a fraction would read 0.0003)
    assert (rec.count16_scaled, rec.count_bf16, rec.n_logits) == (0, 3, n)
    assert isinstance(rec.count_bf16, int)
    assert set(report.record_numbers(rec)) == {
        "frac16_pct",
        "frac16_pred_pct",
        "frac16_se_pct",
        "count16_scaled",
        "count_bf16",
        "n_logits",
    }


def test_format_overflow_check_shows_the_fields():
    rec = fp_summary.overflow_check(0.0823, 0.0820, 100_000, 2e-5, 0.0)
    se = 100 * math.sqrt(0.082 * 0.918 / 100_000)  # 0.0868%
    lines = fp_summary.format_overflow_check(rec).splitlines()
    assert lines == [
        f"overflow, unscaled, float16: 8.23%, predicted 8.20% ± {se:.2f}% (binomial SE)",
        "overflows of 100,000: scaled, float16: 2;  unscaled, bfloat16: 0",
    ]


@pytest.mark.parametrize(
    ("args", "error", "name"),
    [
        ((1.5, 0.1, 10, 0.0, 0.0), ValueError, "frac16"),
        ((0.1, -0.1, 10, 0.0, 0.0), ValueError, "predicted"),
        ((0.1, 0.1, 0, 0.0, 0.0), ValueError, "n"),
        ((0.1, 0.1, 10.0, 0.0, 0.0), TypeError, "n"),
        ((0.1, 0.1, 10, math.nan, 0.0), ValueError, "frac16_scaled"),
        ((0.1, 0.1, 10, 0.0, "x"), TypeError, "frac_bf16"),
        ((0.1, 0.1, 10, 0.0, 0.05), ValueError, "frac_bf16"),  # half of one logit
    ],
)
def test_overflow_check_rejects_bad_input(args, error, name):
    with pytest.raises(error, match=name):
        fp_summary.overflow_check(*args)


def test_width_scan_fields_and_names():
    tails = {2: 1e-5, 4: 2e-3, 8: 0.04, 16: 0.1}
    scaled = {2: 1e-7, 4: 1e-9, 8: 1e-11, 16: 1e-13}
    rec = fp_summary.width_scan(tails, scaled, 8, 2e-28)
    assert rec.d_first == 8
    assert rec.tail_first_pct == pytest.approx(4.0)
    assert rec.tail_before_pct == pytest.approx(0.2)
    assert rec.scaled_first == 1e-11
    assert rec.scaled == {2: 1e-7, 16: 1e-13}  # smallest and largest width scanned
    assert rec.gauss_tail == 2e-28
    # the names the chapter glues under "fp_ex_"
    assert set(report.record_numbers(rec)) == {
        "d_first",
        "tail_first_pct",
        "tail_before_pct",
        "scaled_first",
        "scaled_2",
        "scaled_16",
        "gauss_tail",
    }


def test_width_scan_rejects_bad_input():
    tails = {2: 0.001, 4: 0.02}
    with pytest.raises(ValueError, match="tails"):
        fp_summary.width_scan({}, {}, 4, 0.0)
    with pytest.raises(ValueError, match="scaled"):
        fp_summary.width_scan(tails, {2: 0.0}, 4, 0.0)
    with pytest.raises(ValueError, match="d_first"):
        fp_summary.width_scan(tails, tails, 8, 0.0)
    with pytest.raises(ValueError, match="d_first"):
        fp_summary.width_scan(tails, tails, 2, 0.0)  # half of 2 is not scanned
    with pytest.raises(TypeError, match="d_first"):
        fp_summary.width_scan(tails, tails, 4.0, 0.0)
    with pytest.raises(ValueError, match="gauss_tail"):
        fp_summary.width_scan(tails, tails, 4, 2.0)


def test_format_fp8_errors_names_rows_and_columns():
    values = {
        "zero_pct_float8_e4m3fn_raw": 42.071,
        "relerr_pct_float8_e4m3fn_raw": 64.1,
        "zero_pct_float8_e5m2_scaled": 0.0,
        "relerr_pct_float8_e5m2_scaled": 4.3,
    }
    lines = fp_summary.format_fp8_errors(values).splitlines()
    assert lines[0].split() == ["stored", "as", "0", "median", "rel.", "error"]
    assert [line.rsplit(maxsplit=2) for line in lines[1:]] == [
        ["E4M3, cast as is", "42.07%", "64.10%"],
        ["E5M2, scaled per row", "0.00%", "4.30%"],
    ]
    with pytest.raises(ValueError, match="values"):
        fp_summary.format_fp8_errors({})
    with pytest.raises(ValueError, match="zero_pct_e4m3_cast"):
        fp_summary.format_fp8_errors({"zero_pct_e4m3_cast": 1.0})
    with pytest.raises(ValueError, match="float8_e5m2_raw"):
        fp_summary.format_fp8_errors({"zero_pct_float8_e5m2_raw": 1.0})
