"""Unit tests for numscale.dotprod.

Statistical assertions use tolerances from sampling theory, written beside each one. The
relative standard error of a sample std from n iid draws of excess kurtosis κ is
√((2 + κ)/(4n)); for Gaussian-entry dot products of length d, κ = 6/d.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numscale import dotprod, softmax

PROPERTY = settings(max_examples=40, deadline=None)


# ----------------------------------------------------------------------------- random_qk


@pytest.mark.parametrize("distribution", sorted(dotprod.DISTRIBUTIONS))
def test_random_qk_shapes_and_reproducibility(distribution):
    Q, K = dotprod.random_qk(6, 4, seed=3, distribution=distribution)
    assert Q.shape == K.shape == (6, 4) and Q.dtype == K.dtype == np.float64
    Q2, K2 = dotprod.random_qk(6, 4, seed=3, distribution=distribution)
    np.testing.assert_array_equal(Q, Q2)
    np.testing.assert_array_equal(K, K2)
    assert not np.array_equal(Q, K)  # two independent draws


def test_random_qk_distributions_have_the_documented_support():
    Q, K = dotprod.random_qk(200, 50, seed=0, distribution="rademacher")
    assert set(np.unique(np.concatenate([Q, K]))) == {-1.0, 1.0}
    Q, K = dotprod.random_qk(200, 50, seed=0, distribution="uniform")
    assert np.all(np.abs(np.concatenate([Q, K])) <= 1.0)


@pytest.mark.parametrize("distribution", sorted(dotprod.DISTRIBUTIONS))
def test_entry_moments_match_the_tables(distribution):
    n = 400_000
    x = dotprod.DISTRIBUTIONS[distribution](np.random.default_rng(1), (n,))
    v, m4 = (
        dotprod.ENTRY_VARIANCE[distribution],
        dotprod.ENTRY_FOURTH_MOMENT[distribution],
    )
    # The sample mean of x² has standard error √((m4 − v²)/n); 5 of them. (0 for ±1 entries.)
    assert abs(np.mean(x**2) - v) <= 5 * math.sqrt((m4 - v**2) / n) + 1e-12
    assert abs(np.mean(x)) <= 5 * math.sqrt(v / n)  # zero mean, 5 standard errors


def test_random_qk_accepts_a_generator():
    rng = np.random.default_rng(9)
    Q, _ = dotprod.random_qk(3, 2, rng)
    np.testing.assert_array_equal(Q, np.random.default_rng(9).standard_normal((3, 2)))


def test_random_qk_bad_input():
    with pytest.raises(ValueError, match="n must be >= 1"):
        dotprod.random_qk(0, 4, seed=0)
    with pytest.raises(TypeError, match="d must be an integer"):
        dotprod.random_qk(3, 4.0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        dotprod.random_qk(3, 4, seed=None)
    with pytest.raises(ValueError, match="distribution must be one of"):
        dotprod.random_qk(3, 4, seed=0, distribution="cauchy")


def test_std_of_one_50x50_product_is_about_sqrt_d():
    # One 50×50 QKᵀ: entries share rows and columns, so std(S) varies by about 2.5% from seed
    # to seed (science notes: 4,000 seeds), not the 1.4% of 2,500 iid draws. Averaging 16
    # seeds gives a spread of 2.5%/4 ≈ 0.63%; allow 4 of them (2.5%).
    stds = [
        dotprod.dot_product_scores(*dotprod.random_qk(50, 50, seed=s)).std()
        for s in range(16)
    ]
    assert abs(np.mean(stds) / math.sqrt(50) - 1) < 4 * 0.025 / 4
    # Any single seed: 4 spreads, 10%.
    assert all(abs(s / math.sqrt(50) - 1) < 4 * 0.025 for s in stds)


# ----------------------------------------------------------------------------- dot_product_scores


def test_dot_product_scores_is_q_times_k_transposed():
    Q, K = dotprod.random_qk(5, 3, seed=0)
    K = K[:4]
    S = dotprod.dot_product_scores(Q, K)
    assert S.shape == (5, 4)
    np.testing.assert_allclose(S, Q @ K.T, rtol=0, atol=0)
    np.testing.assert_allclose(S[2, 1], np.dot(Q[2], K[1]), rtol=1e-15)


def test_dot_product_scores_bad_input():
    q = np.zeros((3, 4))
    with pytest.raises(ValueError, match="share the last dimension"):
        dotprod.dot_product_scores(q, np.zeros((3, 5)))
    with pytest.raises(ValueError, match="queries must have 2 dimension"):
        dotprod.dot_product_scores(np.zeros(4), q)
    with pytest.raises(TypeError, match="keys must hold floating-point"):
        dotprod.dot_product_scores(q, np.zeros((3, 4), dtype=int))
    with pytest.raises(ValueError, match="keys must be finite"):
        dotprod.dot_product_scores(q, np.full((3, 4), np.nan))
    with pytest.raises(ValueError, match="queries must not be empty"):
        dotprod.dot_product_scores(np.zeros((0, 4)), q)


# ----------------------------------------------------------------------------- predicted_dot_std


def test_predicted_dot_std():
    assert dotprod.predicted_dot_std(50) == pytest.approx(math.sqrt(50), rel=1e-15)
    assert dotprod.predicted_dot_std(128, 2.0, 0.5) == pytest.approx(
        math.sqrt(128), rel=1e-15
    )
    with pytest.raises(ValueError, match="d must be >= 1"):
        dotprod.predicted_dot_std(0)
    with pytest.raises(ValueError, match="sigma_q must be > 0"):
        dotprod.predicted_dot_std(4, sigma_q=-1.0)
    with pytest.raises(ValueError, match="sigma_k must be finite"):
        dotprod.predicted_dot_std(4, sigma_k=np.inf)


# ----------------------------------------------------------------------------- independent_dots


@pytest.mark.parametrize(
    ("distribution", "d"),
    [("normal", 2), ("normal", 64), ("uniform", 50), ("rademacher", 7)],
)
def test_independent_dots_std_is_sqrt_d_sigma2(distribution, d):
    n = 40_000
    dots = dotprod.independent_dots(d, n, seed=d, distribution=distribution)
    assert dots.shape == (n,)
    sigma = math.sqrt(d) * dotprod.ENTRY_VARIANCE[distribution]
    rel_se = float(dotprod.std_relative_standard_error(d, n, distribution))
    assert (
        abs(dots.std(ddof=1) / sigma - 1) < 5 * rel_se
    )  # 5 standard errors of a std from n draws
    assert abs(dots.mean()) < 5 * sigma / math.sqrt(n)  # zero mean, 5 standard errors


def test_independent_dots_reproducible_and_validated():
    np.testing.assert_array_equal(
        dotprod.independent_dots(5, 10, seed=1), dotprod.independent_dots(5, 10, seed=1)
    )
    with pytest.raises(ValueError, match="n_pairs must be >= 1"):
        dotprod.independent_dots(5, 0, seed=1)
    with pytest.raises(TypeError, match="d must be an integer"):
        dotprod.independent_dots(np.float64(5), 10, seed=1)


def test_d2_dot_products_are_laplace():
    # q·k at d = 2 is exactly Laplace(0, 1): P(|x| > t) = e^(−t). Binomial standard error of a
    # fraction from n draws: √(p(1 − p)/n); 5 of them.
    n = 200_000
    dots = dotprod.independent_dots(2, n, seed=7)
    for t in (0.5, 2.0, 5.0):
        p = math.exp(-t)
        assert abs(np.mean(np.abs(dots) > t) - p) < 5 * math.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------- kurtosis


def test_predicted_dot_kurtosis_formulas():
    d = np.array([1, 2, 50])
    np.testing.assert_allclose(dotprod.predicted_dot_kurtosis(d), 3 + 6 / d, rtol=1e-15)
    np.testing.assert_allclose(
        dotprod.predicted_dot_kurtosis(d, "rademacher"), 3 - 2 / d, rtol=1e-15
    )
    # Uniform[−1, 1]: one product has kurtosis (1/5)² / (1/3)⁴ = 81/25.
    np.testing.assert_allclose(
        dotprod.predicted_dot_kurtosis(d, "uniform"), 3 + (81 / 25 - 3) / d, rtol=1e-14
    )
    assert dotprod.predicted_dot_kurtosis(1) == pytest.approx(
        9.0
    )  # one product of two normals
    assert dotprod.predicted_dot_kurtosis(np.arange(1, 7).reshape(2, 3)).shape == (2, 3)


def test_sample_kurtosis_at_d2_matches_laplace():
    # Laplace(0, 1) has central moments μ2 = 2, μ4 = 24, μ6 = 720, μ8 = 40320, kurtosis 6. The
    # sample kurtosis of a symmetric law has asymptotic variance
    # (μ8/μ2⁴ − 4μ6μ4/μ2⁵ + 4μ4³/μ2⁶ − μ4²/μ2⁴)/n = 1188/n; allow 5 standard errors.
    n = 200_000
    kurt = dotprod.sample_kurtosis(dotprod.independent_dots(2, n, seed=11))
    assert abs(kurt - float(dotprod.predicted_dot_kurtosis(2))) < 5 * math.sqrt(
        1188 / n
    )


def test_sample_kurtosis_exact_values():
    assert dotprod.sample_kurtosis(np.array([-1.0, 1.0])) == pytest.approx(
        1.0, rel=1e-15
    )
    x = np.array([0.0, 0.0, 0.0, 4.0])  # centred: −1, −1, −1, 3 → m2 = 3, m4 = 21
    assert dotprod.sample_kurtosis(x) == pytest.approx(21 / 9, rel=1e-14)


def test_sample_kurtosis_bad_input():
    with pytest.raises(ValueError, match="values must not all be equal"):
        dotprod.sample_kurtosis(np.ones(5))
    with pytest.raises(ValueError, match="values must hold at least 2"):
        dotprod.sample_kurtosis(np.ones(1))
    with pytest.raises(ValueError, match="values must have 1 dimension"):
        dotprod.sample_kurtosis(np.ones((2, 2)))
    with pytest.raises(TypeError, match="values must hold floating-point"):
        dotprod.sample_kurtosis(np.arange(4))


# ----------------------------------------------------------------------------- std_relative_standard_error


def test_std_relative_standard_error_formula():
    d = np.array([1, 2, 50, 1000])
    np.testing.assert_allclose(
        dotprod.std_relative_standard_error(d, 1000),
        np.sqrt((1 + 3 / d) / 2000),
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        dotprod.std_relative_standard_error(d, 1000, "rademacher"),
        np.sqrt((2 - 2 / d) / 4000),
        rtol=1e-15,
    )
    assert dotprod.std_relative_standard_error(
        np.arange(1, 7).reshape(3, 2), 10
    ).shape == (3, 2)


def test_std_relative_standard_error_matches_replicates_at_small_d():
    # At d = 2 the std of n = 500 heavy-tailed dot products has relative spread √(2.5/1000) = 5%,
    # √2.5 ≈ 1.6 times the Gaussian-sample value. The spread estimated from R = 400 replicate
    # stds is itself uncertain by about 1/√(2R) = 3.5% (relative); allow 4 of those.
    d, n, replicates = 2, 500, 400
    rng = np.random.default_rng(21)
    stds = np.array(
        [dotprod.independent_dots(d, n, rng).std(ddof=1) for _ in range(replicates)]
    )
    measured = stds.std(ddof=1) / stds.mean()
    predicted = float(dotprod.std_relative_standard_error(d, n))
    assert abs(measured / predicted - 1) < 4 / math.sqrt(2 * replicates)


def test_std_relative_standard_error_bad_input():
    with pytest.raises(ValueError, match="n must be >= 2"):
        dotprod.std_relative_standard_error(4, 1)
    with pytest.raises(ValueError, match="d must be finite and >= 1"):
        dotprod.std_relative_standard_error(np.array([0, 4]), 10)
    with pytest.raises(ValueError, match="d must be finite and >= 1"):
        dotprod.std_relative_standard_error(np.nan, 10)
    with pytest.raises(ValueError, match="d must not be empty"):
        dotprod.std_relative_standard_error(np.array([]), 10)
    with pytest.raises(TypeError, match="d must hold numbers"):
        dotprod.std_relative_standard_error("4", 10)
    with pytest.raises(ValueError, match="distribution must be one of"):
        dotprod.std_relative_standard_error(4, 10, "laplace")


# ----------------------------------------------------------------------------- sqrt_law_sweep, slopes


def test_sqrt_law_sweep_structure():
    sweep = dotprod.sqrt_law_sweep([2, 5, 9], 100, seed=0)
    assert (
        sweep.dims.tolist() == [2, 5, 9]
        and sweep.std.shape == (3,)
        and sweep.n_pairs == 100
    )
    np.testing.assert_array_equal(
        sweep.rel_se, dotprod.std_relative_standard_error(np.array([2, 5, 9]), 100)
    )
    # Each d has its own spawned stream: appending a dimension leaves the others unchanged.
    longer = dotprod.sqrt_law_sweep([2, 5, 9, 40], 100, seed=0)
    np.testing.assert_array_equal(longer.std[:3], sweep.std)
    assert not np.array_equal(
        dotprod.sqrt_law_sweep([2, 5, 9], 100, seed=1).std, sweep.std
    )


def test_sqrt_law_slope_is_one_half():
    # Science notes: d = 2…99 at N = 1000 gives slope 0.500 ± 0.003. Allow 5 standard errors,
    # the standard error predicted by sampling theory (independent of the fit).
    sweep = dotprod.sqrt_law_sweep(np.arange(2, 100), 1000, seed=5)
    slope, slope_se = dotprod.loglog_slope(sweep.dims, sweep.std)
    predicted_se = dotprod.predicted_slope_se(sweep.dims, sweep.rel_se)
    assert abs(slope - 0.5) < 5 * predicted_se
    # The residual-based standard error estimates the same quantity from 96 degrees of freedom:
    # its relative uncertainty is about 1/√(2·96) ≈ 7%; allow 5 of those (35%).
    assert abs(slope_se / predicted_se - 1) < 0.35
    # About 95% of the points lie within 2 SE of √d: binomial sd √(98·0.95·0.05) ≈ 2.2 points;
    # 5 sd below 93 expected is 82.
    inside = np.abs(sweep.std / np.sqrt(sweep.dims) - 1) < 2 * sweep.rel_se
    assert inside.sum() >= 82


def test_sqrt_law_sweep_bad_input():
    with pytest.raises(ValueError, match="dims must not be empty"):
        dotprod.sqrt_law_sweep([], 100, seed=0)
    with pytest.raises(TypeError, match="dims must be integers"):
        dotprod.sqrt_law_sweep([2.0, 3.0], 100, seed=0)
    with pytest.raises(
        ValueError, match="dims must be a flat sequence of positive integers"
    ):
        dotprod.sqrt_law_sweep([0, 3], 100, seed=0)
    with pytest.raises(ValueError, match="n_pairs must be >= 2"):
        dotprod.sqrt_law_sweep([2, 3], 1, seed=0)
    with pytest.raises(ValueError, match="seed must be >= 0"):
        dotprod.sqrt_law_sweep([2, 3], 10, seed=-1)
    with pytest.raises(ValueError, match="distribution must be one of"):
        dotprod.sqrt_law_sweep([2, 3], 10, seed=0, distribution="t")


@PROPERTY
@given(st.floats(-3, 3), st.floats(0.01, 100), st.integers(3, 30))
def test_loglog_slope_recovers_an_exact_power_law(exponent, prefactor, m):
    dims = np.arange(1, m + 1) * 3
    slope, se = dotprod.loglog_slope(dims, prefactor * dims.astype(float) ** exponent)
    # Exact data: only rounding remains, a few eps times the size of the logarithms.
    assert slope == pytest.approx(exponent, abs=1e-9)
    assert se < 1e-9


def test_loglog_slope_standard_error_is_the_least_squares_one():
    rng = np.random.default_rng(2)
    dims = np.arange(2, 40)
    values = dims**0.5 * np.exp(0.05 * rng.standard_normal(dims.size))
    slope, se = dotprod.loglog_slope(dims, values)
    x, y = np.log(dims), np.log(values)
    beta = np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2)
    residuals = y - y.mean() - beta * (x - x.mean())
    expected_se = math.sqrt(
        np.sum(residuals**2) / (x.size - 2) / np.sum((x - x.mean()) ** 2)
    )
    assert slope == pytest.approx(beta, rel=1e-12)
    assert se == pytest.approx(expected_se, rel=1e-10)


def test_loglog_slope_bad_input():
    with pytest.raises(ValueError, match="same length >= 3"):
        dotprod.loglog_slope(np.array([1, 2, 3]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="same length >= 3"):
        dotprod.loglog_slope(np.array([1, 2]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="values must be > 0"):
        dotprod.loglog_slope(np.array([1, 2, 3]), np.array([1.0, -2.0, 3.0]))
    with pytest.raises(ValueError, match="values must be finite"):
        dotprod.loglog_slope(np.array([1, 2, 3]), np.array([1.0, np.nan, 3.0]))
    with pytest.raises(ValueError, match="dims must be finite and >= 1"):
        dotprod.loglog_slope(np.array([0, 2, 3]), np.array([1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="dims must have 1 dimension"):
        dotprod.loglog_slope(np.ones((2, 2)), np.ones(4))


def test_predicted_slope_se_formula():
    dims = np.array([2, 4, 8, 16])
    x = np.log(dims)
    # Equal errors s on every log value: the textbook s / √Σ(x − x̄)².
    expected = 0.01 / math.sqrt(np.sum((x - x.mean()) ** 2))
    assert dotprod.predicted_slope_se(dims, np.full(4, 0.01)) == pytest.approx(
        expected, rel=1e-12
    )
    assert dotprod.predicted_slope_se(dims, np.zeros(4)) == 0.0


def test_predicted_slope_se_matches_replicated_fits():
    # Simulated log-values with known errors: the spread of R = 2000 fitted slopes estimates the
    # slope's standard error to 1/√(2R) ≈ 1.6% (relative); allow 5 of those.
    dims = np.arange(2, 60)
    rel_se = dotprod.std_relative_standard_error(dims, 300)
    rng = np.random.default_rng(8)
    slopes = [
        dotprod.loglog_slope(
            dims, np.sqrt(dims) * np.exp(rel_se * rng.standard_normal(dims.size))
        )[0]
        for _ in range(2000)
    ]
    predicted = dotprod.predicted_slope_se(dims, rel_se)
    assert abs(np.std(slopes, ddof=1) / predicted - 1) < 5 / math.sqrt(2 * 2000)


def test_predicted_slope_se_bad_input():
    with pytest.raises(ValueError, match="dims and rel_se must have the same length"):
        dotprod.predicted_slope_se(np.array([2, 3, 4]), np.full(4, 0.1))
    with pytest.raises(ValueError, match="rel_se must be >= 0"):
        dotprod.predicted_slope_se(np.array([2, 3, 4]), np.array([0.1, -0.1, 0.1]))
    with pytest.raises(ValueError, match="rel_se must be finite"):
        dotprod.predicted_slope_se(np.array([2, 3, 4]), np.array([0.1, np.inf, 0.1]))


# ----------------------------------------------------------------------------- qk_softmax_rows


def test_qk_softmax_rows_reproduces_a_direct_computation():
    rows = dotprod.qk_softmax_rows(8, 5, [0, 3], scale=0.5)
    assert rows.max_prob.shape == rows.entropy.shape == (2, 8) and rows.scale == 0.5
    Q, K = dotprod.random_qk(8, 5, seed=3)
    logits = 0.5 * (Q @ K.T)
    np.testing.assert_array_equal(rows.max_prob[1], softmax.softmax(logits).max(axis=1))
    np.testing.assert_array_equal(rows.entropy[1], softmax.entropy(logits))


def test_qk_softmax_rows_limits():
    n = 20
    flat = dotprod.qk_softmax_rows(
        n, 10, range(3), scale=1e-12
    )  # logits ≈ 0: uniform rows
    np.testing.assert_allclose(flat.max_prob, 1 / n, rtol=1e-9)
    np.testing.assert_allclose(flat.entropy, math.log(n), rtol=1e-9)
    sharp = dotprod.qk_softmax_rows(
        n, 10, range(3), scale=1e6
    )  # gaps ≫ 37: one-hot rows
    np.testing.assert_array_equal(sharp.max_prob, 1.0)
    assert np.all(sharp.entropy < 1e-12)


def test_qk_softmax_rows_saturation_numbers():
    # Science notes (500 seeds, d = n = 50, values rounded to 2 digits): mean row max p 0.77
    # unscaled and 0.12 scaled; mean entropy 0.65 and 3.45 nats. Tolerance: half a unit of the
    # last digit (0.005) plus 5 standard errors of the mean over seeds (rows of one seed are
    # correlated, so the standard error comes from per-seed means).
    seeds = range(500)
    for scale, maxp_ref, entropy_ref in [
        (1.0, 0.77, 0.65),
        (1 / math.sqrt(50), 0.12, 3.45),
    ]:
        rows = dotprod.qk_softmax_rows(50, 50, seeds, scale=scale)
        for per_row, reference in [
            (rows.max_prob, maxp_ref),
            (rows.entropy, entropy_ref),
        ]:
            per_seed = per_row.mean(axis=1)
            se = per_seed.std(ddof=1) / math.sqrt(per_seed.size)
            assert abs(per_seed.mean() - reference) < 0.005 + 5 * se


def test_qk_softmax_rows_float32_rounds_saturated_rows_to_one():
    # Float32 softmax rounds the top probability to exactly 1 once the top-two gap exceeds
    # ln(2/eps32) ≈ 16.6; with unscaled d = 512 logits (std ≈ 23) that happens in many rows,
    # and never with 1/√d scaling (std ≈ 1: a gap of 16.6 is a > 10σ event).
    unscaled = dotprod.qk_softmax_rows(50, 512, range(10), scale=1.0, dtype=np.float32)
    scaled = dotprod.qk_softmax_rows(
        50, 512, range(10), scale=1 / math.sqrt(512), dtype="float32"
    )
    assert np.any(unscaled.max_prob == 1.0)
    assert not np.any(scaled.max_prob == 1.0)


def test_qk_softmax_rows_bad_input():
    with pytest.raises(ValueError, match="seeds must not be empty"):
        dotprod.qk_softmax_rows(4, 4, [], scale=1.0)
    with pytest.raises(ValueError, match="seeds must be >= 0"):
        dotprod.qk_softmax_rows(4, 4, [-1], scale=1.0)
    with pytest.raises(TypeError, match="seeds must be an integer"):
        dotprod.qk_softmax_rows(4, 4, [1.5], scale=1.0)
    with pytest.raises(ValueError, match="scale must be > 0"):
        dotprod.qk_softmax_rows(4, 4, [0], scale=0.0)
    with pytest.raises(ValueError, match="scale must be finite"):
        dotprod.qk_softmax_rows(4, 4, [0], scale=np.nan)
    with pytest.raises(TypeError, match="dtype must be a floating dtype"):
        dotprod.qk_softmax_rows(4, 4, [0], scale=1.0, dtype=np.int32)
    with pytest.raises(TypeError, match="dtype must be a NumPy floating dtype"):
        dotprod.qk_softmax_rows(4, 4, [0], scale=1.0, dtype="no-such-type")
    with pytest.raises(ValueError, match="n must be >= 1"):
        dotprod.qk_softmax_rows(0, 4, [0], scale=1.0)


# ----------------------------------------------------------------------------- mean_and_seed_se


def test_mean_and_seed_se_uses_the_per_seed_means():
    # Two seeds of three rows: per-seed means 2 and 5, mean 3.5; their sample std is
    # |5 − 2|/√2, so the SE is that over √2 = 1.5 exactly (up to rounding).
    mean, se = dotprod.mean_and_seed_se(np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    assert mean == pytest.approx(3.5, abs=1e-15) and se == pytest.approx(1.5, abs=1e-15)


def test_mean_and_seed_se_matches_the_spread_of_independent_seeds():
    # With rows sharing a seed-level offset, the SE from per-seed means matches the
    # between-seed std of the grand mean across replicated experiments (50 replicates:
    # the std of those means is itself known to a relative 1/√(2·49) ≈ 10%; allow 4×).
    rng = np.random.default_rng(11)
    means, ses = [], []
    for _ in range(50):
        data = rng.standard_normal((40, 1)) + 0.2 * rng.standard_normal((40, 25))
        mean, se = dotprod.mean_and_seed_se(data)
        means.append(mean)
        ses.append(se)
    assert np.std(means, ddof=1) == pytest.approx(np.mean(ses), rel=0.4)


def test_mean_and_seed_se_bad_input():
    with pytest.raises(ValueError, match="per_row"):
        dotprod.mean_and_seed_se(np.ones((1, 5)))
    with pytest.raises(ValueError, match="per_row"):
        dotprod.mean_and_seed_se(np.ones(5))
    with pytest.raises(ValueError, match="per_row"):
        dotprod.mean_and_seed_se(np.array([[1.0, np.nan], [1.0, 2.0]]))
    with pytest.raises(TypeError, match="per_row"):
        dotprod.mean_and_seed_se(np.ones((2, 2), dtype=int))


# ----------------------------------------------------------------------------- dot_moments


def test_dot_moments_reduces_to_the_iid_law():
    d = 7
    mean, var = dotprod.dot_moments(
        np.zeros(d), 4 * np.eye(d), np.zeros(d), 0.25 * np.eye(d)
    )
    assert mean == 0 and var == pytest.approx(
        d * 4 * 0.25, rel=1e-15
    )  # d σq² σk², exact


def test_dot_moments_match_simulation_with_means_and_anisotropy():
    # Anisotropic covariances sharing their large directions, and nonzero means. Tolerance:
    # 5 standard errors of a sample mean (√(var/N)) and of a sample variance
    # (var·√((κ_excess + 2)/N), κ from the sample).
    d, n_pairs = 16, 200_000
    spectrum = 1 / np.arange(1, d + 1)
    cov_q = np.diag(spectrum * d / spectrum.sum())
    cov_k = np.diag((spectrum * d / spectrum.sum()) ** 2 / 2)
    mean_q, mean_k = np.full(d, 0.3), np.linspace(-0.5, 0.5, d)
    mean, var = dotprod.dot_moments(mean_q, cov_q, mean_k, cov_k)
    dots = dotprod.gaussian_dots(mean_q, cov_q, mean_k, cov_k, n_pairs, seed=4)
    kappa = dotprod.sample_kurtosis(dots) - 3
    assert abs(dots.mean() - mean) <= 5 * math.sqrt(var / n_pairs)
    assert abs(dots.var(ddof=1) - var) <= 5 * var * math.sqrt((kappa + 2) / n_pairs)
    # and the iid formula with the average entry variances is visibly wrong here
    naive = d * np.trace(cov_q) / d * np.trace(cov_k) / d
    assert abs(naive - var) > 20 * var * math.sqrt((kappa + 2) / n_pairs)


def test_dot_moments_bad_input():
    with pytest.raises(ValueError, match="cov_q"):
        dotprod.dot_moments(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="mean_k"):
        dotprod.dot_moments(np.zeros(3), np.eye(3), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="mean_q"):
        dotprod.dot_moments(np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2))
    with pytest.raises(ValueError, match="n_pairs"):
        dotprod.gaussian_dots(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), 0, seed=0)
