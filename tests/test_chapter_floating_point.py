"""Claims of book/floating_point.md, asserted on its glued values (issue 9 points 1, 13, 14)."""

from __future__ import annotations

import math

import pytest
from test_build import glued_values
from test_chapter_dot_products import check_shown_sources, long_code_lines

PAGE = "book/floating_point"


def test_code_lines_fit_the_column():
    assert long_code_lines(PAGE) == []


def test_shows_the_bisection():
    check_shown_sources(PAGE, {("numscale.fp", "_largest_bits_where")})


@pytest.mark.build
def test_e4m3_conversion_is_stated_as_measured(built_site):
    v = glued_values(built_site, PAGE)
    # torch 2.13 saturates +inf to the largest finite E4M3 value (bits 0x7E), also for 1000
    assert v["fp_e4m3_of_inf"] == v["fp_max_float8_e4m3fn"] == 448
    assert v["fp_e4m3_of_inf_bits"] == 0x7E
    assert v["fp_e4m3_of_1000"] == 448


@pytest.mark.build
def test_overflow_fraction_matches_the_exact_tail(built_site):
    v = glued_values(built_site, PAGE)
    # binomial sampling error of a fraction from 100,000 logits; 5 SE
    assert abs(v["fp_frac16_pct"] - v["fp_frac16_pred_pct"]) <= 5 * v["fp_frac16_se_pct"]
    assert v["fp_frac16_scaled"] == 0 and v["fp_frac_bf16"] == 0


@pytest.mark.build
def test_fp8_exercise_answer(built_site):
    v = glued_values(built_site, PAGE)
    # Without a scale E4M3 flushes many small weights (its smallest subnormal 2^-9 is above
    # many of 512 softmax weights) and E5M2 none; with a per-row scale neither flushes and
    # E4M3's median error is about half of E5M2's: their epsilons differ by exactly 2, and
    # the median over 102,400 weights of a rounding error uniform in the mantissa has a
    # relative sampling error of well under 1%, so the ratio lies in 2 ± 0.3.
    assert v["fp8_zero_pct_float8_e4m3fn_raw"] > 10
    assert v["fp8_zero_pct_float8_e5m2_raw"] == 0
    assert v["fp8_zero_pct_float8_e4m3fn_scaled"] == 0 == v["fp8_zero_pct_float8_e5m2_scaled"]
    ratio = v["fp8_relerr_pct_float8_e5m2_scaled"] / v["fp8_relerr_pct_float8_e4m3fn_scaled"]
    assert 1.7 < ratio < 2.3
    assert v["fp8_relerr_pct_float8_e4m3fn_raw"] > v["fp8_relerr_pct_float8_e5m2_raw"]
    # median relative rounding error is at most eps/2 in percent for normal numbers
    assert v["fp8_relerr_pct_float8_e4m3fn_scaled"] <= 100 * v["fp_eps_float8_e4m3fn"] / 2


@pytest.mark.build
def test_one_gap_matches_the_rounding_argument(built_site):
    v = glued_values(built_site, PAGE)
    # float64/float32: ln(1/u) to the format's spacing near the gap (≤ 1e-13, ≤ 4e-6)
    assert v["fp_onegap_float64"] == pytest.approx(math.log(2 / 2.0**-52), abs=1e-12)
    assert v["fp_onegap_float32"] == pytest.approx(math.log(2 / 2.0**-23), abs=1e-5)
