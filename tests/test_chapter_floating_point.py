"""Claims of book/floating_point.md, asserted on its glued values (issue 9 points 1, 13, 14)."""

from __future__ import annotations

import math

import pytest

from references import FORMAT_LAYOUTS
from test_chapter_dot_products import check_shown_sources

PAGE = "book/floating_point"


def test_shows_the_bisection():
    check_shown_sources(PAGE, {("numscale.fp", "_largest_bits_where")})


@pytest.mark.build
def test_e4m3_conversion_is_stated_as_measured(v):
    # torch 2.13 saturates +inf to the largest finite E4M3 value (bits 0x7E), also for 1000
    assert v["fp_e4m3_of_inf"] == v["fp_max_float8_e4m3fn"] == 448
    assert v["fp_e4m3_of_inf_bits"] == 0x7E
    assert v["fp_e4m3_of_1000"] == 448


@pytest.mark.build
def test_overflow_fraction_matches_the_exact_tail(v):
    # binomial sampling error of a fraction from 100,000 logits; 5 SE
    assert (
        abs(v["fp_frac16_pct"] - v["fp_frac16_pred_pct"]) <= 5 * v["fp_frac16_se_pct"]
    )
    # the scaled logits in float16 and the unscaled ones in bfloat16 cross ln(max) with
    # probability P (exact tail, below); the expected count n·P is far below 1, so by
    # Markov's inequality P(count ≥ 1) ≤ n·P: the counts are 0
    n = v["fp_n_logits"]  # an input of the page
    for count, threshold in (
        ("fp_count16_scaled", 8 * v["fp_expthr_float16"]),  # q·k/8 > thr16
        ("fp_count_bf16", v["fp_expthr_bfloat16"]),
    ):
        assert n * chi2_difference_tail(2 * threshold, 64) < 1e-6
        assert v[count] == 0, count


@pytest.mark.build
def test_fp8_exercise_answer(v):
    # Without a scale E4M3 flushes many small weights (its smallest subnormal 2^-9 is above
    # many of 512 softmax weights) and E5M2 none; with a per-row scale neither flushes and
    # E4M3's median error is about half of E5M2's: their epsilons differ by exactly 2, and
    # the median over 102,400 weights of a rounding error uniform in the mantissa has a
    # relative sampling error of well under 1%, so the ratio lies in 2 ± 0.3.
    assert v["fp8_zero_pct_float8_e4m3fn_raw"] > 10
    assert v["fp8_zero_pct_float8_e5m2_raw"] == 0
    assert (
        v["fp8_zero_pct_float8_e4m3fn_scaled"]
        == 0
        == v["fp8_zero_pct_float8_e5m2_scaled"]
    )
    ratio = (
        v["fp8_relerr_pct_float8_e5m2_scaled"]
        / v["fp8_relerr_pct_float8_e4m3fn_scaled"]
    )
    assert 1.7 < ratio < 2.3
    assert v["fp8_relerr_pct_float8_e4m3fn_raw"] > v["fp8_relerr_pct_float8_e5m2_raw"]


@pytest.mark.build
def test_one_gap_matches_the_rounding_argument(v):
    # float64/float32: ln(1/u) to the format's spacing near the gap (≤ 1e-13, ≤ 4e-6)
    assert v["fp_onegap_float64"] == pytest.approx(math.log(2 / 2.0**-52), abs=1e-12)
    assert v["fp_onegap_float32"] == pytest.approx(math.log(2 / 2.0**-23), abs=1e-5)


# ---------------------------------------------------------------- independent references
# Format facts from the bit layout (exponent bits E, mantissa bits M, IEEE bias 2^(E-1) - 1),
# not from torch.finfo: eps = 2^-M, smallest normal 2^(1 - bias), smallest subnormal
# 2^(1 - bias - M), largest (2 - 2^-M)·2^bias; E4M3FN has no infinity and only one NaN
# pattern, so its top binade reaches exponent bias + 1 with mantissa up to 6/8: 1.75·2^8.
# E and M: references.FORMAT_LAYOUTS.
def layout(name: str) -> dict[str, float]:
    e_bits, m_bits = FORMAT_LAYOUTS[name]
    bias = 2 ** (e_bits - 1) - 1
    largest = (
        1.75 * 2.0**8 if name == "float8_e4m3fn" else (2 - 2.0**-m_bits) * 2.0**bias
    )
    return {
        "eps": 2.0**-m_bits,
        "max": largest,
        "smallnorm": 2.0 ** (1 - bias),
        "ln_sub": (1 - bias - m_bits) * math.log(2),
        "m_bits": m_bits,
    }


def spacing(x: float, name: str) -> float:
    """Gap between consecutive numbers of the format near the normal number x > 0."""
    return 2.0 ** (math.floor(math.log2(x)) - FORMAT_LAYOUTS[name][1])


def chi2_difference_tail(s: float, d: int) -> float:
    """P(X − Y > s) for independent χ²_d variables X, Y, d even (numpy only).

    q·k of standard-normal vectors equals (X − Y)/2 in distribution (X = |q+k|²/2,
    Y = |q−k|²/2), so P(q·k > t) = P(X − Y > 2t): an implementation independent of
    fp.normal_dot_tail (which conditions on |q|). The survival of χ²_{2m} is the Poisson
    sum e^{-x/2} Σ_{k<m} (x/2)^k / k!, evaluated in logs; the integral over Y's density is
    a trapezoid on a grid whose step is far below the scale √(2d) of the integrand, over
    ±40 standard deviations of Y.
    """
    from math import lgamma

    import numpy as np

    m = d // 2
    assert 2 * m == d
    y = np.linspace(
        max(1e-9, d - 40 * math.sqrt(2 * d)), d + s + 40 * math.sqrt(2 * d) + 200, 8_001
    )
    log_fy = (m - 1) * np.log(y) - y / 2 - m * math.log(2) - lgamma(m)
    x = (s + y)[:, None] / 2
    k = np.arange(m)[None, :]
    terms = k * np.log(x) - np.array([lgamma(j + 1) for j in range(m)])[None, :]
    peak = terms.max(axis=1, keepdims=True)
    log_sx = -x[:, 0] + peak[:, 0] + np.log(np.exp(terms - peak).sum(axis=1))
    log_f = log_fy + log_sx
    top = log_f.max()
    return float(math.exp(top) * np.trapezoid(np.exp(log_f - top), y))


def test_chi2_difference_tail_against_closed_form():
    # d = 2: X − Y is Laplace with scale 2, P(X − Y > s) = e^{-s/2}/2 exactly.
    for s in (1.0, 10.0, 40.0):
        exact = 0.5 * math.exp(-s / 2)
        assert chi2_difference_tail(s, 2) == pytest.approx(
            exact, rel=2e-4, abs=0
        )  # trapezoid


@pytest.mark.build
def test_format_table_matches_the_bit_layout(v):
    for name in ("float16", "bfloat16"):
        ref = layout(name)
        assert v[f"fp_max_{name}"] == ref["max"] and v[f"fp_eps_{name}"] == ref["eps"]
    assert v["fp_lnmax_float16"] == pytest.approx(
        math.log(layout("float16")["max"]), rel=1e-15
    )
    for name in ("float8_e5m2", "float8_e4m3fn"):
        ref = layout(name)
        assert v[f"fp_max_{name}"] == ref["max"] and v[f"fp_eps_{name}"] == ref["eps"]
        assert v[f"fp_smallnorm_{name}"] == ref["smallnorm"]


@pytest.mark.build
def test_exp_thresholds_are_ln_max_rounded_down(v):
    # The largest x with exp(x) in range is ln(max) rounded down to the format's grid: it lies
    # within one spacing below ln(max) (the prose's "one step of the format's spacing away").
    for name in ("float16", "bfloat16", "float8_e5m2", "float8_e4m3fn"):
        thr, ln_max = v[f"fp_expthr_{name}"], math.log(layout(name)["max"])
        assert thr <= ln_max < thr + spacing(thr, name)


@pytest.mark.build
def test_overflow_tails_by_an_independent_integral(v):
    # Predicted 8.2% at d_k = 64 and the sampling SE √(p(1 − p)/100,000) of the page's count
    t16 = math.log(layout("float16")["max"])
    p = chi2_difference_tail(2 * t16, 64)
    assert v["fp_frac16_pred_pct"] == pytest.approx(100 * p, rel=1e-3)
    assert v["fp_frac16_se_pct"] == pytest.approx(
        100 * math.sqrt(p * (1 - p) / v["fp_n_logits"]), rel=1e-3
    )
    # d_k = 4096 tails for float16 and bfloat16 at their measured thresholds
    tail16 = chi2_difference_tail(2 * v["fp_expthr_float16"], 4096)
    tailbf = chi2_difference_tail(2 * v["fp_expthr_bfloat16"], 4096)
    assert v["fp_tail16_dmax_pct"] == pytest.approx(100 * tail16, rel=1e-3)
    assert v["fp_tailbf16_dmax_pct"] == pytest.approx(100 * tailbf, rel=1e-3)


@pytest.mark.build
def test_exercise_first_width_past_one_percent(v):
    thr = v["fp_expthr_float16"]
    tails = {2**k: chi2_difference_tail(2 * thr, 2**k) for k in range(1, 8)}
    first = min(w for w, t in tails.items() if t > 0.01)
    assert v["fp_ex_d_first"] == first
    assert v["fp_ex_tail_first_pct"] == pytest.approx(100 * tails[first], rel=1e-3)
    assert v["fp_ex_tail_before_pct"] == pytest.approx(
        100 * tails[first // 2], rel=1e-3
    )
    # scaled logits q·k/√d > thr  ⇔  X − Y > 2·thr·√d
    for key, width in (("first", first), ("2", 2), ("128", 128)):
        ref = chi2_difference_tail(2 * thr * math.sqrt(width), width)
        assert v[f"fp_ex_scaled_{key}"] == pytest.approx(ref, rel=1e-3, abs=0)
    gauss = 0.5 * math.erfc(thr / math.sqrt(2))
    assert v["fp_ex_gauss_tail"] == pytest.approx(gauss, rel=1e-12, abs=0)
    # the prose: every scaled tail is far above the normal tail
    assert v["fp_ex_scaled_128"] > 1e3 * v["fp_ex_gauss_tail"]


@pytest.mark.build
def test_low_precision_one_gaps_sit_next_to_ln_2_over_u(v):
    # Issue: the prose says float16/bfloat16 saturate next to ln(2/u) (an upcasting kernel):
    # within one spacing of the format near the gap.
    for name in ("float16", "bfloat16"):
        u = layout(name)["eps"] / 2
        gap = v[f"fp_onegap_{name}"]
        assert abs(gap - math.log(2 / u)) <= spacing(gap, name)


@pytest.mark.build
def test_top_weight_one_is_not_one_hot(v):
    for name in ("float16", "bfloat16"):
        # at the one-gap the runner-up weight is e^{-g}/(1 + e^{-g}), rounded once in the
        # format: relative error ≤ eps/2 (plus the float32 kernel's own, far smaller)
        gap = v[f"fp_onegap_{name}"]
        exact = math.exp(-gap) / (1 + math.exp(-gap))
        assert v[f"fp_runnerup_{name}"] == pytest.approx(exact, rel=layout(name)["eps"])
        assert v[f"fp_runnerup_{name}"] > 0
    for name in ("float64", "float32", "float16", "bfloat16"):
        # the runner-up is exactly 0 once e^{-g} is below half the smallest subnormal s:
        # g = ln 2 − ln s to the format's spacing near g
        zero_gap = v[f"fp_zerogap_{name}"]
        predicted = math.log(2) - layout(name)["ln_sub"]
        assert abs(zero_gap - predicted) <= spacing(zero_gap, name)


def fp8_grid(name: str):
    """All finite non-negative values of an fp8 format, from its bit layout (numpy)."""
    import numpy as np

    e_bits, m_bits = FORMAT_LAYOUTS[name]
    bias = 2 ** (e_bits - 1) - 1
    values = [
        m / 2**m_bits * 2.0 ** (1 - bias) for m in range(2**m_bits)
    ]  # subnormals, 0
    top = (
        2**e_bits - 1 if name == "float8_e4m3fn" else 2**e_bits - 2
    )  # E5M2: top = inf/NaN
    for e in range(1, top + 1):
        for m in range(2**m_bits):
            if name == "float8_e4m3fn" and e == top and m == 2**m_bits - 1:
                continue  # the NaN pattern
            values.append((1 + m / 2**m_bits) * 2.0 ** (e - bias))
    return np.array(sorted(values))


def round_to_grid(x, grid):
    """Round non-negative x to the nearest grid value (ties: measure zero for these data)."""
    import numpy as np

    idx = np.clip(np.searchsorted(grid, x), 1, grid.size - 1)
    lo, hi = grid[idx - 1], grid[idx]
    return np.where(x - lo <= hi - x, lo, hi)


@pytest.mark.build
def test_fp8_exercise_by_an_independent_rounding(v):
    # Recompute the exercise with fp8 rounding written from the bit layout instead of torch's
    # casts: same weights (the page's seed 5, 200 rows of 512), same per-row scale.
    import numpy as np

    z = np.random.default_rng(5).standard_normal((200, 512))
    w = np.exp(z - z.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    for name in ("float8_e4m3fn", "float8_e5m2"):
        grid = fp8_grid(name)
        assert grid[-1] == layout(name)["max"]
        for tag, scale in (
            ("raw", np.ones((200, 1))),
            ("scaled", grid[-1] / w.max(axis=1, keepdims=True)),
        ):
            stored = round_to_grid(w * scale, grid) / scale
            zero_pct = 100 * np.mean(stored == 0)
            relerr = 100 * np.median(np.abs(stored - w) / w)
            # a handful of weights within a rounding of a tie may differ: 0.01% of 102,400
            assert v[f"fp8_zero_pct_{name}_{tag}"] == pytest.approx(zero_pct, abs=0.01)
            assert v[f"fp8_relerr_pct_{name}_{tag}"] == pytest.approx(relerr, rel=1e-3)
