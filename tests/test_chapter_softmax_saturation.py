"""Claims of book/softmax_saturation.md, asserted on its glued values (issue 9, points 4, 12).

Run against an executed page: see ../shared notes (NUMSCALE_TEST_SITE). Tolerances beside each
assertion. The 500-seed means themselves are asserted in tests/test_build.py (EXPECTED).
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from test_chapter_dot_products import check_shown_sources

PAGE = "book/softmax_saturation"


def test_shows_the_entropy_expansion():
    check_shown_sources(PAGE, {("numscale.softmax", "gaussian_entropy_expansion")})


@pytest.mark.build
def test_unscaled_rows_are_concentrated_not_one_hot(v):
    # Caption and prose: "concentrated, but far from one-hot on the whole". The mean top weight
    # (SE ≈ 0.0013) is far below 1, and most rows are not above 0.99 (science notes: 16%;
    # even a 10-point sampling swing would leave it far below half).
    assert v["softmax_maxp_unscaled"] + 5 * v["softmax_maxp_unscaled_se"] < 0.9
    assert v["sat_onehot_pct_unscaled"] < 50 and v["sat_onehot_pct_scaled"] == 0
    # The seed-0 numbers quoted in the heatmap caption are one draw of the per-seed mean,
    # whose spread is SE·√n_seeds (≈ 0.03): within 4 such spreads of the 500-seed mean.
    per_seed_sd = v["softmax_maxp_unscaled_se"] * math.sqrt(v["sat_n_seeds"])
    assert (
        abs(v["sat_seed0_maxp_unscaled"] - v["softmax_maxp_unscaled"])
        <= 4 * per_seed_sd
    )
    assert 0 <= v["sat_seed0_onehot_unscaled"] <= v["sat_seed0_half_unscaled"] <= 50


@pytest.mark.build
def test_entropy_limit_fails_well_before_sqrt_2_ln_n(v):
    # At σ = √(2 ln 50) the limit ln n − σ²/2 is exactly 0; the measured mean over 4,000 rows
    # (SE ≈ 0.01 nats: per-row sd < 1 nat) is far above it (prose: "still … nats").
    assert v["sat_breakdown_sigma"] == pytest.approx(
        math.sqrt(2 * math.log(50)), rel=1e-12
    )
    assert v["sat_entropy_at_breakdown"] > 1.0
    crossings = [v[f"sat_cross_sigma_n{n}"] for n in (50, 512, 4096)]
    breakdowns = [v[f"sat_breakdown_sigma_n{n}"] for n in (50, 512, 4096)]
    # The 0.1-nat crossing is interpolated on a grid of step 0.15 from means with SE ≲ 0.03
    # nats where the error grows by > 0.2 nats per unit σ: uncertain by ≲ 0.2 in σ. Claims:
    # it grows with n (measured gaps ≈ 0.5 ≫ 0.2), and lies well below √(2 ln n) (by > 1).
    assert crossings[0] + 0.2 < crossings[1] and crossings[1] + 0.2 < crossings[2]
    for crossing, breakdown in zip(crossings, breakdowns):
        assert crossing < breakdown - 1.0
    # and it matches the validity statement σ² e^{σ²} ≪ n: at the crossing the first-order
    # correction ((2σ² − 1)e^{σ²} + 1)/(2n) is of the order of the 0.1-nat error (0.03–1).
    for n, crossing in zip((50, 512, 4096), crossings):
        correction = ((2 * crossing**2 - 1) * math.exp(crossing**2) + 1) / (2 * n)
        assert 0.03 < correction < 1.0


def top_weight(gap: float, dtype: type) -> float:
    """softmax([gap, 0])[0] computed in ``dtype`` with plain NumPy."""
    e = np.exp(np.array([0.0, -gap], dtype=dtype))
    return float((e / e.sum())[0])


@pytest.mark.build
def test_top_probability_rounds_to_one_past_the_gap(v):
    # the behaviour the prose claims, checked on NumPy's own softmax of [g, 0]: below the
    # quoted gap the top weight is below 1, 0.1% past it, exactly 1.0
    for name, dtype in (
        ("sat_one_hot_gap", np.float64),
        ("sat_one_hot_gap32", np.float32),
    ):
        gap = v[name]
        assert top_weight(gap * (1 - 1e-3), dtype) < 1.0, name
        assert top_weight(gap * (1 + 1e-3), dtype) == 1.0, name


@functools.cache  # deterministic; reused across tests of a session
def simulate_rows(
    d: int,
    scale: float,
    n_seeds: int,
    dtype: type = np.float64,
    n: int = 50,
    seed: int = 20_261_206,
) -> tuple[np.ndarray, np.ndarray]:
    """Top weight and entropy of each row of softmax(scale·QKᵀ), Q and K (n, d) iid
    N(0, 1), for ``n_seeds`` draws from one stream of its own (not the page's seeds):
    two (n_seeds, n) arrays. Written with plain NumPy, independently of the helpers."""
    rng = np.random.default_rng(seed)
    top, ent = np.empty((n_seeds, n)), np.empty((n_seeds, n))
    for s in range(n_seeds):
        q, k = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        z = (scale * (q @ k.T)).astype(dtype)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        top[s] = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
        z64 = z.astype(np.float64)
        shifted = z64 - z64.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        ent[s] = -(np.exp(logp) * logp).sum(axis=1)
    return top, ent


def seed_mean_se(per_row: np.ndarray) -> tuple[float, float]:
    """Mean and its SE from the spread of per-seed means (rows of a seed correlate)."""
    per_seed = per_row.mean(axis=1)
    return float(per_seed.mean()), float(
        per_seed.std(ddof=1) / math.sqrt(per_seed.size)
    )


@pytest.mark.build
def test_500_seed_statistics_match_an_independent_simulation(v):
    n_seeds, n_sim = v["sat_n_seeds"], 500
    for name, scale in (("unscaled", 1.0), ("scaled", 1 / math.sqrt(50))):
        top, ent = simulate_rows(50, scale, n_sim)
        for stat, rows in (("maxp", top), ("entropy", ent), ("onehot", top > 0.99)):
            mean, se = seed_mean_se(rows.astype(float))
            if stat == "onehot":
                page_mean, page_se = v[f"sat_onehot_pct_{name}"] / 100, se
            else:
                page_mean = v[f"softmax_{stat}_{name}"]
                page_se = v[f"softmax_{stat}_{name}_se"]
                # the page's SE against the simulation's per-seed spread scaled to the
                # page's seeds: each SD estimate has relative SE 1/√(2(seeds − 1)); 5 SE
                ratio = page_se / (se * math.sqrt(n_sim / n_seeds))
                tol = 5 * math.sqrt(1 / (2 * (n_seeds - 1)) + 1 / (2 * (n_sim - 1)))
                assert abs(ratio - 1) <= tol, (name, stat, ratio)
            # two independent means: 5 combined SEs (+ 1e-12 for a proportion of 0)
            assert abs(page_mean - mean) <= 5 * math.hypot(page_se, se) + 1e-12, (
                name,
                stat,
            )
        if name == "scaled":
            ent_mean, ent_se = seed_mean_se(ent)
            gap = math.log(50) - ent_mean
            tol = 5 * math.hypot(ent_se, v["softmax_entropy_scaled_se"])
            assert abs(v["sat_entropy_gap_scaled"] - gap) <= tol
            assert abs(math.log(v["sat_effective_keys_scaled"]) - ent_mean) <= tol


@pytest.mark.build
def test_float32_rows_round_to_exactly_one(v):
    # d_k = 512 in float32, 100 seeds on the page: the share of rows whose top weight is
    # exactly 1.0, against an independent float32 simulation of 200 seeds (5 combined SE)
    for name, scale in (("unscaled", 1.0), ("scaled", 1 / math.sqrt(512))):
        top, _ = simulate_rows(512, scale, 200, dtype=np.float32, seed=7)
        share, se = seed_mean_se((top == 1.0).astype(float))
        page_se = se * math.sqrt(2)  # 100 seeds against 200
        page = v[f"sat_exact_one_pct_{name}"] / 100
        assert abs(page - share) <= 5 * math.hypot(se, page_se) + 1e-12, name
    assert v["sat_exact_one_pct_unscaled"] > 5 and v["sat_exact_one_pct_scaled"] == 0


@pytest.mark.build
def test_seed0_numbers_recomputed(v):
    # the page's first matrices: two consecutive 50×50 standard-normal draws of seed 0
    # (dotprod.random_qk), recomputed here with plain NumPy; exact up to rounding
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((50, 50)), rng.standard_normal((50, 50))
    s = q @ k.T
    assert v["sat_std_unscaled"] == pytest.approx(s.std(), rel=1e-12)
    assert v["sat_std_scaled"] == pytest.approx(s.std() / math.sqrt(50), rel=1e-12)
    for name, z in (("unscaled", s), ("scaled", s / math.sqrt(50))):
        e = np.exp(z - z.max(axis=1, keepdims=True))
        top = (e / e.sum(axis=1, keepdims=True)).max(axis=1)
        assert v[f"sat_seed0_maxp_{name}"] == pytest.approx(top.mean(), rel=1e-9)
        assert v[f"sat_seed0_half_{name}"] == int((top > 0.5).sum())
        if name == "unscaled":
            assert v["sat_seed0_onehot_unscaled"] == int((top > 0.99).sum())


@functools.cache
def entropy_error_crossing(n: int, rows: int, seed: int) -> float:
    """σ at which the mean entropy of n iid N(0, σ²) logits first exceeds
    ln n − σ²/2 by 0.1 nats: common random numbers on a σ grid of step 0.02."""
    g = np.random.default_rng(seed).standard_normal((rows, n))
    sigmas = np.arange(0.1, 4.0, 0.02)
    errors = []
    for sigma in sigmas:
        z = sigma * g
        shifted = z - z.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        entropy = -(np.exp(logp) * logp).sum(axis=1).mean()
        errors.append(entropy - (math.log(n) - sigma**2 / 2))
    errors = np.array(errors)
    i = int(np.argmax(errors > 0.1))
    return float(np.interp(0.1, errors[i - 1 : i + 1], sigmas[i - 1 : i + 1]))


@pytest.mark.build
def test_entropy_crossings_and_breakdown_recomputed(v):
    for n, rows in ((50, 2000), (512, 400), (4096, 150)):
        assert v[f"sat_breakdown_sigma_n{n}"] == pytest.approx(
            math.sqrt(2 * math.log(n))
        )
        # an independent simulation (own seed, finer grid); the page interpolates on a
        # grid of step 0.15 from means with SE ≲ 0.03 nats where the error grows by
        # > 0.2 nats per unit σ: each crossing is uncertain by ≲ 0.1, two by ≲ 0.2
        crossing = entropy_error_crossing(n, rows, seed=100 + n)
        assert abs(v[f"sat_cross_sigma_n{n}"] - crossing) <= 0.2, n
    # the mean entropy at σ = √(2 ln 50), 4,000 rows: against an independent 4,000 rows,
    # 5 combined SEs (row SD measured)
    sigma = math.sqrt(2 * math.log(50))
    z = sigma * np.random.default_rng(11).standard_normal((4000, 50))
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    ent = -(np.exp(logp) * logp).sum(axis=1)
    se = ent.std(ddof=1) / math.sqrt(ent.size)
    assert abs(v["sat_entropy_at_breakdown"] - ent.mean()) <= 5 * math.sqrt(2) * se


@pytest.mark.build
def test_gpt2_initial_logit_scale(v):
    # σ = σ_q·σ_k with σ_q² = σ_k² = d_model·s_W² (inputs 768 and 0.02): exact arithmetic
    assert v["sat_gpt2_init_sigma"] == pytest.approx(768 * 0.02**2, rel=1e-12)
    assert v["sat_gpt2_init_sigma"] < 0.5  # the prose: "well below 1"
