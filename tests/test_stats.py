"""Tests of numscale.stats against independent computations: exact rational
arithmetic, a Monte Carlo check of the ratio estimator's standard error, and order
statistics."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from numscale import stats


def test_ratio_mean_se_equals_exact_arithmetic():
    counts = [10, 20, 30, 40]
    sums = [12.0, 21.0, 36.0, 41.0]
    mean, se = stats.ratio_mean_se(np.array(sums), np.array(counts))
    exact_mean = Fraction(110, 100)
    squares = sum((Fraction(s) - exact_mean * n) ** 2 for s, n in zip(sums, counts))
    exact_se = math.sqrt(squares / (4 * 3)) / 25  # one rounding, in the square root
    assert mean == float(exact_mean)  # 110/100 rounded once: float division does it
    assert se == pytest.approx(exact_se, rel=1e-15)


def test_ratio_se_matches_the_spread_of_the_estimator():
    """Stories of 5…60 tokens, each with its own mean loss (a story effect, so tokens of
    one story are correlated): the estimator's standard error, averaged over
    replications, must equal the standard deviation of the estimate across them.

    Tolerance: the standard deviation of R = 2,000 replications is known to
    1/√(2(R−1)) ≈ 1.6% relative (4 of those: 6.4%); the delta method's bias is of
    order 1/m = 2.5% for m = 40 stories. 10% covers both."""
    rng = np.random.default_rng(7)
    m, R = 40, 2000
    means, ses = np.empty(R), np.empty(R)
    for r in range(R):
        counts = rng.integers(5, 61, size=m)
        story_mean = 1.3 + 0.4 * rng.standard_normal(m)
        sums = np.array(
            [rng.normal(mu, 1.0, size=n).sum() for mu, n in zip(story_mean, counts)]
        )
        means[r], ses[r] = stats.ratio_mean_se(sums, counts)
    assert ses.mean() == pytest.approx(means.std(ddof=1), rel=0.10)
    # and it is not the naive per-token error, which ignores the story effect
    assert ses.mean() > 1.5 * 1.0 / math.sqrt(m * 32.5)


def test_ratio_mean_se_edge_cases():
    sums, counts = np.array([3.0, 4.0]), np.array([2, 2])
    mean, se = stats.ratio_mean_se(sums[:1], counts[:1])  # one story: no spread
    assert mean == 1.5 and math.isnan(se)
    with pytest.raises(ValueError, match="counts"):
        stats.ratio_mean_se(sums, np.array([1, 0]))
    with pytest.raises(ValueError, match="same length"):
        stats.ratio_mean_se(sums, counts[:1])
    with pytest.raises(ValueError, match="sums"):
        stats.ratio_mean_se(np.array([np.nan, 1.0]), counts)
    with pytest.raises(TypeError, match="sums"):
        stats.ratio_mean_se(np.array([1, 2]), counts)
    mean, se = stats.ratio_mean_se(
        np.array([np.inf, 1.0]), counts, allow_nonfinite=True
    )
    assert mean == math.inf and math.isnan(se)


def test_paired_difference():
    counts = np.array([10, 20, 30, 40])
    sums = np.array([12.0, 21.0, 36.0, 41.0])
    # A = B + 0.25 per token on every story: the difference is 0.25, its error 0
    # (up to the rounding of 0.25·n added to and subtracted from the sums)
    diff, diff_se = stats.paired_difference(sums + 0.25 * counts, sums, counts)
    assert diff == pytest.approx(0.25, rel=1e-15)
    assert diff_se == pytest.approx(0.0, abs=1e-15)
    # otherwise it is the ratio estimator of the per-story differences
    other = sums[::-1].copy()
    assert stats.paired_difference(other, sums, counts) == stats.ratio_mean_se(
        other - sums, counts
    )
    with pytest.raises(ValueError, match="sums_b"):
        stats.paired_difference(sums, sums[:3], counts)
    with pytest.raises(ValueError, match="sums_a"):
        stats.paired_difference(sums[:3], sums, counts)
    with pytest.raises(ValueError, match="2 stories"):
        stats.paired_difference(sums[:1], sums[:1], counts[:1])


def test_parabola_vertex():
    x = np.log(np.exp(np.linspace(np.log(0.25), np.log(4.0), 9)))
    # an exact parabola in log c: least squares recovers it up to float64 rounding
    assert stats.parabola_vertex(x, 0.3 * (x - np.log(0.7)) ** 2 + 1.0) == (
        pytest.approx(0.7, rel=1e-9)
    )
    with pytest.raises(ValueError, match="minimum"):
        stats.parabola_vertex(x, -(x**2))
    with pytest.raises(ValueError, match="3 points"):
        stats.parabola_vertex(x[:2], x[:2])


def test_bootstrap_indices():
    picks = stats.bootstrap_indices(5, 4000, seed=3)
    assert picks.shape == (4000, 5) and picks.min() == 0 and picks.max() == 4
    # the same draws as the generator's own sequence, row after row
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(picks[0], rng.integers(0, 5, size=5))
    np.testing.assert_array_equal(picks[1], rng.integers(0, 5, size=5))
    # with replacement, uniform: each unit appears 4000 times on average per resample
    # slot; its count over 20,000 draws is Binomial(20000, 1/5), sd ≈ 57: 4 sd = 230
    counts = np.bincount(picks.ravel(), minlength=5)
    assert np.all(np.abs(counts - 4000) < 230)


def test_percentile_interval_is_the_order_statistics():
    draws = np.arange(101.0)[::-1]  # 100, 99, …, 0: percentile p is the value p
    assert stats.percentile_interval(draws, 95) == (2.5, 97.5)
    assert stats.percentile_interval(draws, 50) == (25.0, 75.0)
    with pytest.raises(ValueError, match="percent"):
        stats.percentile_interval(draws, 100)
    with pytest.raises(ValueError, match="draws"):
        stats.percentile_interval(draws[None], 95)
