"""Claims of book/mup.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.build
PAGE = "book/mup"


def test_slopes(values):
    # Independent: exactly 1/2, within 5 of the page's own sampling SEs.
    assert abs(values["mup_slope_indep"] - 0.5) < 5 * values["mup_slope_indep_se"]
    # The exact formula at ρ = 0 is √d: its fitted slope is 1/2 up to float64 rounding of a
    # least-squares fit over 8 points (~1e-15 relative; 1e-12 allowed).
    assert values["mup_slope_indep_pred"] == pytest.approx(0.5, rel=1e-12, abs=0)
    # Aligned and ρ = 1/2: within 5 SE of the slope of the exact formula over the same widths.
    for tag in ("aligned", "half"):
        assert (
            abs(values[f"mup_slope_{tag}"] - values[f"mup_slope_{tag}_pred"])
            < 5 * values[f"mup_slope_{tag}_se"]
        )


def test_fixed_head_width_factor_is_a_constant(values):
    # The constant a multiplier absorbs at fixed d_k: √64 and √128, exact.
    assert values["mup_factor_64"] == 8.0
    assert values["mup_factor_128"] == pytest.approx(math.sqrt(128), rel=1e-15)


def test_attention_of_an_aligned_key(values):
    # 1/d: weight ≈ e/(e + 63) at every width; 50 trials of an aligned key among 63 random
    # ones give a spread of ≈ 15% relative (logit 1 ± O(1/√d)); 25% tolerance at d = 16,
    # 5% at d = 4096 where the fluctuation is 1/√4096.
    limit = values["mup_w_1d_limit"]
    assert values["mup_w_1d_16"] == pytest.approx(limit, rel=0.25)
    assert values["mup_w_1d_4096"] == pytest.approx(limit, rel=0.05)
    # 1/√d: one-hot at 4096 (the aligned logit is √4096 = 64 above the others).
    assert values["mup_w_sqrt_4096"] > 1 - 1e-6


# ---------------------------------------------------------------- independent references
import numpy as np


def _chi2_moment(d: int, k: int) -> float:
    """E[X^k] for X ~ χ²_d: d(d + 2)…(d + 2k − 2)."""
    return math.prod(d + 2 * j for j in range(k))


def _rms_rel_se(d: int, rho: float, n_pairs: int) -> float:
    """Relative SE of the rms of q·k over n_pairs pairs, from exact moments.

    Given X = |q|², q·k ~ N(ρX, (1 − ρ²)X), so E[(q·k)²] and E[(q·k)⁴] follow from the χ²_d
    moments; the rms's relative SE is half the relative SE of the mean square.
    """
    a, b = rho**2, 1 - rho**2
    m2 = a * _chi2_moment(d, 2) + b * _chi2_moment(d, 1)
    m4 = (
        rho**4 * _chi2_moment(d, 4)
        + 6 * a * b * _chi2_moment(d, 3)
        + 3 * b**2 * _chi2_moment(d, 2)
    )
    return math.sqrt((m4 - m2**2) / n_pairs) / (2 * m2)


def test_slope_standard_errors_from_exact_moments(values):
    # Σ wᵢ² σᵢ² with x = ln d over d = 16 … 2048 and σᵢ from exact moments; the page
    # estimates σᵢ from 1,000 pairs (the SE of an SE from fourth and eighth moments: a few
    # percent): tolerance 1.25x
    dims = 2 ** np.arange(4, 12)
    x = np.log(dims)
    w = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    for tag, rho in (("indep", 0.0), ("half", 0.5), ("aligned", 1.0)):
        sig = np.array([_rms_rel_se(int(d), rho, 1000) for d in dims])
        se = float(np.sqrt(np.sum(w**2 * sig**2)))
        assert 1 / 1.25 < values[f"mup_slope_{tag}_se"] / se < 1.25, tag


def test_initial_entropies_against_the_expansion(values):
    n, d = 64, 256
    assert values["mup_ln_n"] == pytest.approx(math.log(n), rel=1e-15)
    assert values["mup_ln_n_minus_half"] == pytest.approx(math.log(n) - 0.5, rel=1e-15)
    assert values["mup_init_h_1d_256_pred_gap"] == pytest.approx(1 / (2 * d), rel=1e-12)
    # Logits of variance 1/d: the entropy falls short of ln n by the row's variance about its
    # own mean over 2, (n − 1)/n · 1/(2d); the spread of that over 64 queries sharing 64 keys
    # is ≈ √(2/(n − 1)) / √64 ≈ 2% of it, plus an O(σ³) bias: 15% is > 5 SE.
    gap = values["mup_init_h_1d_256_gap"]
    assert gap == pytest.approx((n - 1) / n / (2 * d), rel=0.15)
    assert values["mup_init_h_1d_256"] == pytest.approx(math.log(n) - gap, rel=1e-12)


def _entropy_of_one_draw(rng: np.random.Generator, n: int, d: int) -> float:
    """Mean entropy (nats) of softmax(q·k/√d) over 64 queries and n keys, N(0, I)
    entries: the page's design at one width, written out with NumPy."""
    z = rng.standard_normal((64, d)) @ rng.standard_normal((n, d)).T / math.sqrt(d)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-(np.exp(log_p) * log_p).sum(axis=1).mean())


def test_initial_entropy_1_over_sqrt_d_against_its_own_simulation(values):
    n, d = 64, 256
    # ln n − ½ + ((2σ² − 1)e^{σ²} + 1)/(2n) at σ = 1: written out (exact)
    corrected = math.log(n) - 0.5 + (math.e + 1) / (2 * n)
    assert values["mup_ln_n_minus_half_corrected"] == pytest.approx(
        corrected, rel=1e-15
    )
    # 400 independent replicates of the page's draw (own seed): their spread is the
    # sampling spread of the page's one value (64 queries share 64 keys, so it is
    # measured, not derived), their mean the expected value; the page's value lies
    # within 4 SD of that mean
    rng = np.random.default_rng(2024)
    draws = np.array([_entropy_of_one_draw(rng, n, d) for _ in range(400)])
    mean, sd = draws.mean(), draws.std(ddof=1)
    assert abs(values["mup_init_h_sqrt_256"] - mean) < 4 * sd
    # the prose: ln n − ½ is slightly low at n = 64 (the expected value lies above it
    # by more than 10 SE of the replicates' mean, SE = sd/20), and the corrected value
    # is closer: within the O(e^{2σ²}/n²) ≈ 0.002 remainder times 5, plus 4 SE
    se = sd / math.sqrt(draws.size)
    assert mean - (math.log(n) - 0.5) > 10 * se
    assert abs(mean - corrected) < 0.01 + 4 * se


def test_aligned_key_weight_by_independent_simulation(values):
    # d = 16, 1/√d: the aligned key's logit is |q|²/4, the 63 others q·k/4; own draws.
    rng = np.random.default_rng(99)
    t, d = 20_000, 16
    q = rng.standard_normal((t, d))
    others = rng.standard_normal((t, 63, d))
    z = (
        np.concatenate([(q * q).sum(1)[:, None], np.einsum("td,tnd->tn", q, others)], 1)
        / 4
    )
    w = np.exp(z - z.max(1, keepdims=True))
    w = w[:, 0] / w.sum(1)
    se = w.std() * math.sqrt(1 / 50 + 1 / t)  # the page averages 50 trials
    assert abs(values["mup_w_sqrt_16"] - w.mean()) < 3.5 * se
    # d = 4096: a weight is at most 1, and one-hot to every digit shown
    assert 1 - 1e-6 < values["mup_w_sqrt_4096"] <= 1
