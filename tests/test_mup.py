"""Tests for numscale.mup: √d versus d growth of q·k, and attention under 1/√d and 1/d."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numscale import dotprod, mup

DIMS = 2 ** np.arange(4, 11)  # 16 … 1024


def test_independent_slope_is_one_half() -> None:
    sweep = mup.dot_rms_sweep(DIMS, n_pairs=1000, rho=0.0, seed=1)
    slope, _ = dotprod.loglog_slope(sweep.dims, sweep.rms)
    se = mup.slope_standard_error(sweep.dims, sweep.rel_se)
    # E[(q·k)²] = d exactly, so the population slope is 1/2; 5 sampling standard errors.
    assert abs(slope - 0.5) < 5 * se


@pytest.mark.parametrize("rho", [0.5, 1.0])
def test_aligned_slope_matches_exact_formula_and_is_near_one(rho: float) -> None:
    sweep = mup.dot_rms_sweep(DIMS, n_pairs=1000, rho=rho, seed=2)
    slope, _ = dotprod.loglog_slope(sweep.dims, sweep.rms)
    predicted_slope, _ = dotprod.loglog_slope(sweep.dims, sweep.predicted)
    se = mup.slope_standard_error(sweep.dims, sweep.rel_se)
    # The slope of the exact rms √(ρ²d² + (1+ρ²)d) over the same dims, within 5 standard errors.
    assert abs(slope - predicted_slope) < 5 * se
    # Θ(d): the exact-formula slope over d = 16…1024 is 0.97 (ρ = 1/2) and 0.99 (ρ = 1).
    assert 0.95 < predicted_slope < 1.0


@pytest.mark.parametrize("rho", [0.0, 0.5, 1.0])
def test_rms_matches_prediction_pointwise(rho: float) -> None:
    sweep = mup.dot_rms_sweep([8, 64, 512], n_pairs=2000, rho=rho, seed=3)
    # Each measured rms is within 5 of its own (delta-method) standard errors.
    assert np.all(np.abs(sweep.rms / sweep.predicted - 1) < 5 * sweep.rel_se)


def test_rel_se_estimate_agrees_with_theory_for_independent_vectors() -> None:
    n = 4000
    sweep = mup.dot_rms_sweep([64, 256], n_pairs=n, rho=0.0, seed=4)
    theory = dotprod.std_relative_standard_error(sweep.dims, n)  # √((1+3/d)/(2n))
    # The estimate is a sample std of X = (q·k)², nearly a scaled χ²₁ (kurtosis 15): its relative
    # standard error is √((15 − 1)/(4n)) ≈ 3% at n = 4000; 5 of those.
    assert np.all(np.abs(sweep.rel_se / theory - 1) < 5 * np.sqrt(14 / (4 * n)))


def test_predicted_rms_special_cases() -> None:
    d = np.array([1.0, 16.0, 1024.0])
    np.testing.assert_allclose(mup.predicted_dot_rms(d, 0.0), np.sqrt(d), rtol=1e-15)
    np.testing.assert_allclose(
        mup.predicted_dot_rms(d, 1.0), np.sqrt(d**2 + 2 * d), rtol=1e-15
    )


def test_correlated_pairs_have_unit_variance_and_correlation_rho() -> None:
    q, k = mup.correlated_pairs(50, 4000, 0.3, seed=5)
    # 200,000 entries: SE of a variance ≈ √(2/2e5) = 0.003, of a correlation ≈ (1−ρ²)/√2e5 = 0.002.
    assert abs(k.var() - 1) < 5 * 0.003
    assert abs(np.corrcoef(q.ravel(), k.ravel())[0, 1] - 0.3) < 5 * 0.002


@settings(max_examples=30, deadline=None)
@given(s=st.floats(1e-3, 1.0), x1=st.integers(1, 100), gap=st.integers(1, 100))
def test_slope_standard_error_two_points(s: float, x1: int, gap: int) -> None:
    # Two points, equal errors s: slope = (y2 − y1)/(x2 − x1), SE = s√2/|x2 − x1| exactly.
    dims = [x1, x1 + gap]
    expected = s * np.sqrt(2) / np.log((x1 + gap) / x1)
    assert mup.slope_standard_error(dims, np.array([s, s])) == pytest.approx(
        expected, rel=1e-12
    )


def test_init_entropy_with_1_over_d_is_ln_n_minus_1_over_2d() -> None:
    n, nq, d = 256, 256, 256
    h = mup.init_entropy([d], n_keys=n, n_queries=nq, scaling="1/d", seed=6)[0]
    gap = np.log(n) - h
    predicted = (n - 1) / (2 * n * d)  # small-σ expansion, σ² = 1/d
    # Relative sampling error of the mean row variance: √(2/((n−1)·nq)) (logits within rows) and
    # √(2/d)/√nq (query norms), ≈ 0.009 together; 5 of those, plus 2σ² = 2/d for the O(σ⁴) term.
    rel_tol = 5 * np.sqrt(2 / ((n - 1) * nq) + 2 / (d * nq)) + 2 / d
    assert abs(gap / predicted - 1) < rel_tol


def test_init_entropy_with_1_over_sqrt_d_does_not_depend_on_width() -> None:
    h = mup.init_entropy(
        [16, 1024], n_keys=256, n_queries=256, scaling="1/sqrt(d)", seed=7
    )
    # σ = 1 at every width: ln n − 1/2 + 1/n-correction. The row entropies have sd ≲ 0.2 (from
    # the χ²_d/d spread of ‖q‖²/d at d = 16); over 256 rows the SE is ≲ 0.013, 5 SE ≈ 0.065.
    expected = np.log(256) - 0.5 + (np.e - (np.e - 1) / 2) / 256
    assert np.all(np.abs(h - expected) < 0.07)


def test_aligned_key_weight_constant_with_1_over_d_and_one_hot_with_1_over_sqrt_d() -> (
    None
):
    n, trials, dims = 64, 200, [64, 1024]
    w_d = mup.aligned_key_weight(
        dims, n_keys=n, rho=1.0, scaling="1/d", n_trials=trials, seed=8
    )
    limit = np.e / (np.e + n - 1)
    # Aligned logit ‖q‖²/d = 1 ± √(2/d), others N(0, 1/d): relative spread of w about √(3/d) per
    # trial, SE √(3/(d·trials)); Jensen bias O(1/d). 5 SE + 2/d.
    for d, w in zip(dims, w_d):
        assert abs(w / limit - 1) < 5 * np.sqrt(3 / (d * trials)) + 2 / d
    w_s = mup.aligned_key_weight(
        [16, 64, 1024], n_keys=n, rho=1.0, scaling="1/sqrt(d)", n_trials=trials, seed=9
    )
    assert w_s[0] < w_s[1] < w_s[2]
    # d = 1024: aligned logit ‖q‖²/32 ≈ 32 (≥ 27 at 5 sd of χ²), others ≲ 6: the rest weighs < 63·e^{-21} ≈ 5e-8.
    assert w_s[2] > 1 - 1e-6


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match="rho"):
        mup.correlated_pairs(4, 4, 1.5, seed=0)
    with pytest.raises(ValueError, match="rho"):
        mup.dot_rms_sweep([4, 8], 10, float("nan"), seed=0)  # NaN
    with pytest.raises(ValueError, match="dims"):
        mup.dot_rms_sweep([], 10, 0.0, seed=0)  # empty
    with pytest.raises(ValueError, match="dims"):
        mup.dot_rms_sweep([4.5, 8.0], 10, 0.0, seed=0)  # not integers
    with pytest.raises(ValueError, match="rel_se"):
        mup.slope_standard_error([4, 8, 16], np.array([0.1, 0.1]))  # wrong shape
    with pytest.raises(ValueError, match="rel_se"):
        mup.slope_standard_error([4, 8], np.array([0.1, np.inf]))  # inf
    with pytest.raises(TypeError, match="rel_se"):
        mup.slope_standard_error([4, 8], np.array([1, 2]))  # integer dtype
    with pytest.raises(ValueError, match="scaling"):
        mup.init_entropy([4], 4, 4, "1/d^2", seed=0)
    with pytest.raises(TypeError, match="n_keys"):
        mup.aligned_key_weight([4], 4.0, 1.0, "1/d", 3, seed=0)
    with pytest.raises(TypeError, match="rho"):
        mup.correlated_pairs(4, 4, "0.5", seed=0)


def test_attention_scale_and_multiplier() -> None:
    d = np.array([16, 64, 128])
    np.testing.assert_allclose(
        mup.attention_scale(d, "1/sqrt(d)"), 1 / np.sqrt(d), rtol=1e-15
    )
    np.testing.assert_allclose(mup.attention_scale(d, "1/d"), 1 / d, rtol=1e-15)
    # At a fixed d_k a multiplier √d_k turns 1/d_k into 1/√d_k (the constant the chapter
    # says a tunable multiplier absorbs); mup's 8/d equals 1/√d at d = 64 exactly.
    np.testing.assert_allclose(
        mup.attention_scale(d, "1/d", multiplier=np.sqrt(d)),
        mup.attention_scale(d, "1/sqrt(d)"),
        rtol=1e-15,
    )
    assert mup.attention_scale(64, "1/d", multiplier=8.0) == mup.attention_scale(
        64, "1/sqrt(d)"
    )
    for name, f in mup.SCALINGS.items():
        np.testing.assert_array_equal(f(d), mup.attention_scale(d, name))
    with pytest.raises(ValueError, match="scaling"):
        mup.attention_scale(64, "1/d^2")


# ------------------------------------------------------------- the chapter's records


def _sweep(rms: np.ndarray, rho: float = 0.0) -> mup.DotScaleSweep:
    dims = np.array([16, 64, 256, 1024])
    return mup.DotScaleSweep(
        dims=dims,
        rms=rms,
        rel_se=np.full(4, 0.01),
        predicted=mup.predicted_dot_rms(dims, rho),
        rho=rho,
        n_pairs=100,
    )


def test_fit_slope_recovers_a_power_law_and_the_formula_slope() -> None:
    dims = np.array([16, 64, 256, 1024])
    fit = mup.fit_slope(_sweep(3.0 * dims**0.75, rho=1.0))
    assert fit.slope == pytest.approx(0.75, abs=1e-12)  # exact power law
    # ρ = 1: √(d² + 2d) grows like d; over 16…1024 its log-log slope is just below 1
    assert 0.98 < fit.predicted < 1.0
    # equal relative SEs σ: SE(slope) = σ / √Σ(xᵢ − x̄)², x = ln d (step ln 4)
    x = np.log(dims)
    assert fit.se == pytest.approx(0.01 / np.sqrt(np.sum((x - x.mean()) ** 2)))
    with pytest.raises(TypeError, match="sweep"):
        mup.fit_slope({"rms": dims})


def test_slope_summary_names_each_correlation() -> None:
    fits = {0.0: mup.SlopeFit(0.5, 0.01, 0.5), 1.0: mup.SlopeFit(1.0, 0.02, 0.99)}
    assert mup.slope_summary(fits).slope == {
        "indep": 0.5,
        "indep_se": 0.01,
        "indep_pred": 0.5,
        "aligned": 1.0,
        "aligned_se": 0.02,
        "aligned_pred": 0.99,
    }
    with pytest.raises(ValueError, match="0.3"):
        mup.slope_summary({0.3: mup.SlopeFit(0.5, 0.01, 0.5)})


def test_entropy_numbers_at_one_width() -> None:
    dims = [64, 256]
    init = {"1/sqrt(d)": np.array([3.6, 3.7]), "1/d": np.array([4.1, 4.15])}
    out = mup.entropy_numbers(init, dims, n_keys=64, width=256)
    ln64 = math.log(64)
    assert out["ln_n"] == pytest.approx(ln64, rel=1e-15)
    assert out["init_h_1d_256"] == 4.15 and out["init_h_sqrt_256"] == 3.7
    assert out["init_h_1d_256_gap"] == pytest.approx(ln64 - 4.15, rel=1e-14)
    assert out["init_h_1d_256_pred_gap"] == pytest.approx(1 / 512, rel=1e-12)  # σ²/2
    assert out["ln_n_minus_half"] == pytest.approx(ln64 - 0.5, rel=1e-15)
    # ln n − σ²/2 + ((2σ² − 1)e^{σ²} + 1)/(2n) at σ = 1, n = 64: written out
    corrected = ln64 - 0.5 + (math.e + 1) / 128
    assert out["ln_n_minus_half_corrected"] == pytest.approx(corrected, rel=1e-15)
    with pytest.raises(ValueError, match="width 128"):
        mup.entropy_numbers(init, dims, n_keys=64, width=128)
    with pytest.raises(ValueError, match="1/d"):
        mup.entropy_numbers({"1/sqrt(d)": init["1/sqrt(d)"]}, dims, 64, 256)


def test_aligned_weight_summary_and_limit() -> None:
    # the limit is the softmax weight of a logit 1 among n − 1 zeros, computed directly
    logits = np.zeros(64)
    logits[0] = 1.0
    direct = np.exp(logits)[0] / np.exp(logits).sum()
    assert mup.aligned_weight_limit(64) == pytest.approx(direct, rel=1e-14)
    weight = {
        "1/sqrt(d)": np.array([0.3, 0.9, 1.0]),
        "1/d": np.array([0.05, 0.04, 0.04]),
    }
    rec = mup.aligned_weight_summary(weight, [16, 256, 4096], 64, head_widths=(64, 2))
    assert rec.w == {
        "sqrt_16": 0.3,
        "sqrt_4096": 1.0,
        "1d_16": 0.05,
        "1d_4096": 0.04,
        "1d_limit": mup.aligned_weight_limit(64),
    }
    # √d_k is the ratio of the two scalings at width d_k: 1/√64 ÷ 1/64 = 8, 1/√2 ÷ 1/2
    assert rec.factor == {64: 8.0, 2: pytest.approx(math.sqrt(2), rel=1e-15)}
    with pytest.raises(ValueError, match="n_keys"):
        mup.aligned_weight_limit(1)
    with pytest.raises(ValueError, match="head_widths"):
        mup.aligned_weight_summary(weight, [16, 256, 4096], 64, head_widths=(0,))
    with pytest.raises(TypeError, match="head_widths"):
        mup.aligned_weight_summary(weight, [16, 256, 4096], 64, head_widths=64)


def test_slope_summary_str_one_row_per_correlation() -> None:
    fits = {
        0.0: mup.SlopeFit(0.5012, 0.0034, 0.5),
        1.0: mup.SlopeFit(0.987, 0.002, 0.99),
    }
    lines = str(mup.slope_summary(fits)).splitlines()
    assert lines[0] == (
        "log–log slope of rms(q·k) against d: measured, and of the exact formula"
    )
    assert lines[1].split() == ["ρ:", "measured", "±", "SE", "formula"]
    # each row: its correlation, then slope, SE and the formula's slope in that order
    assert lines[2].split() == ["0.0:", "0.5012", "0.0034", "0.5000"]
    assert lines[3].split() == ["1.0:", "0.9870", "0.0020", "0.9900"]
    # rows in the order of the fits, not of the tags
    swapped = str(mup.slope_summary({1.0: fits[1.0], 0.0: fits[0.0]})).splitlines()
    assert [line.split()[0] for line in swapped[2:]] == ["1.0:", "0.0:"]
    with pytest.raises(ValueError, match="fits"):
        mup.slope_summary({})
    with pytest.raises(TypeError, match=r"fits\[0.5\]"):
        mup.slope_summary({0.5: (0.5, 0.01, 0.5)})


def test_format_by_width_title_then_one_column_per_width() -> None:
    rows = {"1/d": np.array([0.25, 0.125]), "1/sqrt(d)": np.array([1.0, 2.0])}
    lines = mup.format_by_width("weight", [16, 64], rows).splitlines()
    assert lines[0] == "weight"
    assert lines[1].split() == ["d:", "16", "64"]
    assert lines[2].split() == ["1/d:", "0.2500", "0.1250"]
    assert lines[3].split() == ["1/sqrt(d):", "1.0000", "2.0000"]
    with pytest.raises(TypeError, match="title"):
        mup.format_by_width("", [16], {"1/d": np.array([0.5])})
    with pytest.raises(ValueError, match="1/d"):
        mup.format_by_width("w", [16, 64], {"1/d": np.array([0.5])})
