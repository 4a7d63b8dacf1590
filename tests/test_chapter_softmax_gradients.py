"""Claims of book/softmax_gradients.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.build
PAGE = "book/softmax_gradients"


def test_jacobian_matches_autograd(values):
    # Closed form vs autograd in float64: a few rounding errors of O(1) entries, < 4 ε_mach.
    assert values["sg_autograd_diff_eps"] < 4
    assert values["sg_frob_diff"] < 1e-14


def test_scaled_norm_flat_and_unscaled_crossover_at_50_keys(values):
    # Scaled ‖J‖_F ≈ 0.20 at every d_k (science notes); per-point SE ≈ 0.002 with 40 products,
    # so the 10 points span less than 8 SE = 0.016.
    assert values["sg_scaled_max"] - values["sg_scaled_min"] < 0.016
    assert abs(values["sg_scaled_50"] - 0.20) < 0.01
    # Unscaled larger at d_k = 8 and 50 (by > 5 combined SE), smaller at 512 and 2048.
    assert values["sg_unscaled_50"] - values["sg_scaled_50"] > 5 * values["sg_se_50"]
    assert values["sg_unscaled_8"] > values["sg_scaled_8"]
    assert values["sg_unscaled_512"] < values["sg_scaled_512"]
    # QKᵀ crossover at n = 50: ≈ 69 in the science notes; its SE with 40 products per point
    # is ≈ 5 (interpolated between 64 and 90): ±20 is 4 SE.
    assert abs(values["sg_d_cross"] - 69) < 20


def test_crossover_grows_with_number_of_keys(values):
    # Each estimate within 4 of its own SEs of the science notes' values (n = 50: ≈ 63-69;
    # n = 512: "past 1,000"), and the ordering 50 < 512 by many SEs.
    assert abs(values["sg_cross_50"] - 66) < 4 * values["sg_cross_50_se"] + 3
    assert values["sg_cross_512"] > 1000 - 2 * values["sg_cross_512_se"]
    assert (
        values["sg_cross_512"] - values["sg_cross_50"] > 4 * values["sg_cross_512_se"]
    )
    # n = 4096: no crossover below d_k ≈ 2000: the gap at 2048 is positive by > 3 SE
    # (measured 4 SE), and the estimate lies beyond 4096.
    assert values["sg_gap_4096_at_2048"] > 3 * values["sg_gap_4096_at_2048_se"]
    assert values["sg_cross_4096"] > 4096
    # The peak σ grows with n (grid points √d, d a power of two).
    assert (
        values["sg_peak_sigma_50"]
        < values["sg_peak_sigma_512"]
        < values["sg_peak_sigma_4096"]
    )


def test_scaled_norm_is_sqrt_e_over_n(values):
    # ‖J‖_F(σ = 1) ≈ √(e/n), improving with n: 13% high at n = 50 (the approximation), 2% at
    # 512 and < 1% at 4096; rows are iid with relative spread ≤ 15%, so ≥ 150 rows give a
    # sampling SE below 1.3%: tolerances 4% and 3% (about 3 SE on top of the bias).
    for n, tol in ((512, 0.04), (4096, 0.03)):
        assert values[f"sg_at1_{n}"] == pytest.approx(math.sqrt(math.e / n), rel=tol)
    assert values["sg_at1_50"] < values["sg_at1_pred_50"]


def test_query_gradient_is_larger_unscaled_and_reaches_two_keys(values):
    # "Larger at every d_k": smallest ratio ≥ 3 (measured 3.5 at d_k = 8, SE 0.13); ratios at
    # 64 and 2048 within 3 SE of the simulation (≈ 7 and ≈ 9).
    assert values["sg_qg_ratio_min"] > 3
    assert abs(values["sg_qg_ratio_64"] - 7) < 3 * values["sg_qg_ratio_64_se"]
    assert abs(values["sg_qg_ratio_2048"] - 9) < 3 * values["sg_qg_ratio_2048_se"]
    # One or two keys per query at d_k = 2048 unscaled (SE ≈ 0.02); many more when scaled.
    assert values["sg_qg_keys_unscaled_2048"] < 2.5
    assert values["sg_qg_keys_scaled_min"] > 10


def test_sgd_and_adam_reparametrization(values):
    assert values["sg_reparam_sgd_2"] == 0.0  # s = 1/8: exact arithmetic, bit for bit
    assert values["sg_reparam_adam_1"] < 1e-4  # Adam's ε only (see the unit test)
    assert values["sg_reparam_sgd_1"] > 1e-2 and values["sg_reparam_adam_2"] > 1e-2


def test_cross_entropy_gradient_rises_to_sqrt2(values):
    # ‖p − e_y‖ → √2 as α → ∞: at α = 100 the gap is e^{−100·gap}, far below float64 rounding.
    assert values["sg_ce_wrong_end"] == pytest.approx(math.sqrt(2), rel=1e-12)
    assert (
        values["sg_ce_wrong_start"] < 1.2
    )  # visibly below √2 at α = 0.1 (measured 0.97)
    assert values["sg_jac_end"] < 1e-20 and values["sg_ce_right_end"] < 1e-20


# ---------------------------------------------------------------- independent recomputations
# Each helper below is written with numpy from the formulas in the chapter, not with
# numscale.softmax_grad, and draws its own random numbers (seeds unrelated to the page's),
# so agreement within sampling error is evidence, not a copy.
import numpy as np


def _probs(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _frobenius(z: np.ndarray) -> np.ndarray:
    """‖diag(p) − ppᵀ‖_F by the expanded form Σp² − 2Σp³ + (Σp²)² (the chapter's second
    form; its cancellation only matters for norms below 1e-8, negligible in means)."""
    p = _probs(z)
    s2, s3 = (p**2).sum(-1), (p**3).sum(-1)
    return np.sqrt(np.maximum(s2 - 2 * s3 + s2**2, 0.0))


def _qk_sweep(d: int, scaled: bool, n_products: int, rng) -> tuple[float, float]:
    """Mean ‖J‖_F over rows of n_products products QKᵀ of 50 × d standard normals, and the
    standard error from the per-product means (rows of one product are correlated)."""
    means = []
    for _ in range(n_products):
        q, k = rng.standard_normal((50, d)), rng.standard_normal((50, d))
        z = q @ k.T / (np.sqrt(d) if scaled else 1.0)
        means.append(_frobenius(z).mean())
    means = np.array(means)
    return means.mean(), means.std(ddof=1) / np.sqrt(n_products)


def test_norm_sweep_at_50_keys_by_independent_simulation(values):
    rng = np.random.default_rng(20261206)
    se_50 = {}
    for d in (8, 50, 512, 2048):
        for tag, scaled in (("unscaled", False), ("scaled", True)):
            mean, se = _qk_sweep(d, scaled, 80, rng)
            se_50[(d, tag)] = se
            # the page's SE with 40 products is about √2 times this one: 4 combined SEs
            tol = 4 * np.hypot(se, math.sqrt(2) * se)
            assert abs(values[f"sg_{tag}_{d}"] - mean) < tol, (d, tag)
            if (
                scaled
            ):  # the scaled curve is flat: its extremes lie within the same band
                assert abs(values["sg_scaled_min"] - mean) < tol + 0.004
                assert abs(values["sg_scaled_max"] - mean) < tol + 0.004
    # combined SE of the d = 50 difference with 40 products: ours (80) scaled by √2; the
    # relative error of an SE from 40 (80) products is 1/√80 (1/√160): 3 SD is 1.42x
    ref = math.sqrt(2) * np.hypot(se_50[(50, "unscaled")], se_50[(50, "scaled")])
    assert 1 / 1.42 < values["sg_se_50"] / ref < 1.42


def _iid_gap(n: int, rows: int, d: float, rng) -> tuple[float, float]:
    """Mean paired ‖J(√d·z)‖ − ‖J(z)‖ over iid N(0, 1) rows of n logits, and its SE."""
    z = rng.standard_normal((rows, n))
    diff = _frobenius(np.sqrt(d) * z) - _frobenius(z)
    return diff.mean(), diff.std(ddof=1) / np.sqrt(rows)


def test_crossovers_bracketed_by_independent_simulation(values):
    # The unscaled minus scaled norm is positive below the crossover and negative above.
    # n = 50: checked at 1/1.25 and 1.25 times the page's estimate, each by more than 3 SE.
    # n = 512: the page's estimate has an SE of 14% (800 rows), so only a looser bracket is
    # implied: positive by 3 SE at 1/1.5 of it, negative at 1.5 times it.
    rng = np.random.default_rng(7)
    for n, rows, f in ((50, 20_000, 1.25), (512, 6_000, 1.5)):
        c = values[f"sg_cross_{n}"]
        below, se_b = _iid_gap(n, rows, c / f, rng)
        above, se_a = _iid_gap(n, rows, c * f, rng)
        assert below > 3 * se_b and above < (-3 * se_a if n == 50 else 0), n
        # the page's delta-method SE: paired differences at the crossover over the slope,
        # recomputed here and rescaled to the page's number of rows (tolerance 1.3x)
        z = rng.standard_normal((rows, n))
        sig = np.sqrt(c)
        diff = _frobenius(sig * z) - _frobenius(z)
        h = 1e-2 * sig
        slope = (
            _frobenius((sig + h) * z).mean() - _frobenius((sig - h) * z).mean()
        ) / (2 * h)
        se = 2 * sig * diff.std(ddof=1) / np.sqrt(values[f"sg_rows_{n}"]) / abs(slope)
        assert 1 / 1.3 < values[f"sg_cross_{n}_se"] / se < 1.3, n
    # n = 4096: the page's estimate is too uncertain to quote (SE above half of it)
    assert values["sg_cross_4096_se"] > 0.5 * values["sg_cross_4096"]


def test_at_sigma_1_and_peak_by_independent_simulation(values):
    rng = np.random.default_rng(11)
    for n in (50, 512, 4096):
        assert values[f"sg_at1_pred_{n}"] == pytest.approx(
            math.sqrt(math.e / n), rel=1e-15
        )
    norms = _frobenius(rng.standard_normal((20_000, 50)))
    assert abs(values["sg_at1_50"] - norms.mean()) < 4 * np.hypot(
        norms.std() / np.sqrt(20_000), norms.std() / np.sqrt(values["sg_rows_50"])
    )
    # the peak sits on the grid σ² = 2^k, at the grid point where an independent curve peaks
    # (or a neighbour, if the two are within 3 SE of each other)
    for n, rows in ((50, 20_000), (4096, 400)):
        peak = values[f"sg_peak_sigma_{n}"]
        k = math.log2(peak**2)
        assert abs(k - round(k)) < 1e-9
        z = rng.standard_normal((rows, n))
        grid = [2.0 ** (round(k) + j) for j in (-1, 0, 1)]
        curves = [_frobenius(np.sqrt(d) * z) for d in grid]
        for side in (curves[0], curves[2]):
            diff = curves[1] - side
            assert diff.mean() > -3 * diff.std(ddof=1) / np.sqrt(rows), n


def test_gap_4096_standard_errors_scale_with_rows(values):
    # The paired SE of the gap at d_k = 2048 and 4096, recomputed with 4x the page's rows
    # and rescaled by √4 (an SE from 600 rows is good to ≈3%: tolerance 1.3x)
    rng = np.random.default_rng(13)
    rows = 4 * values["sg_rows_4096"]
    for d in (2048, 4096):
        _, se = _iid_gap(4096, rows, d, rng)
        assert 1 / 1.3 < values[f"sg_gap_4096_at_{d}_se"] / (2 * se) < 1.3, d
        assert values[f"sg_gap_4096_at_{d}"] > 2 * values[f"sg_gap_4096_at_{d}_se"]


def _query_grad(d: int, trials: int, rng):
    """Per-trial ‖∂L/∂q‖ for s = 1 and s = 1/√d, and effective keys, from eq-sg-query-grad."""
    out = {s: ([], []) for s in ("u", "s")}
    for _ in range(max(1, trials // 100)):
        t = min(100, trials)
        q = rng.standard_normal((t, d))
        keys = rng.standard_normal((t, 50, d))
        vals = rng.standard_normal((t, 50, 64))
        g = rng.standard_normal((t, 64))
        for tag, s in (("u", 1.0), ("s", 1 / np.sqrt(d))):
            p = _probs(s * np.einsum("tnd,td->tn", keys, q))
            up = np.einsum("tnv,tv->tn", vals, g)  # V g
            dz = p * (up - (p * up).sum(-1, keepdims=True))  # J V g
            dq = s * np.einsum("tnd,tn->td", keys, dz)  # s Kᵀ J V g
            out[tag][0].append(np.linalg.norm(dq, axis=-1))
            out[tag][1].append(np.abs(dz).sum(-1) ** 2 / (dz**2).sum(-1))
    return {k: (np.concatenate(a), np.concatenate(b)) for k, (a, b) in out.items()}


def test_query_gradient_by_independent_simulation(values):
    rng = np.random.default_rng(17)
    for d, trials in ((8, 1200), (64, 1200), (2048, 300)):
        r = _query_grad(d, trials, rng)
        (nu, ku), (ns, ks) = r["u"], r["s"]
        ratio = nu.mean() / ns.mean()
        # delta-method SE of a ratio of paired means
        cov = np.cov(nu, ns)
        se = ratio * np.sqrt(
            (
                cov[0, 0] / nu.mean() ** 2
                + cov[1, 1] / ns.mean() ** 2
                - 2 * cov[0, 1] / (nu.mean() * ns.mean())
            )
            / trials
        )
        page_se = values[f"sg_qg_ratio_{d}_se"]
        if d < 2048:  # at 2048 the page's own SE is 18% of the ratio: no ×1.5 guard
            assert abs(values[f"sg_qg_ratio_{d}"] - ratio) < 4 * np.hypot(
                se, page_se
            ), d
        # the page's SE from 300 trials against ours rescaled (tolerance 1.4x); at 2048 the
        # norms are so heavy-tailed that an SE from 300 trials is itself unreliable
        if d < 2048:
            assert 1 / 1.4 < page_se / (se * np.sqrt(trials / 300)) < 1.4, d
        k_se = ku.std(ddof=1) / np.sqrt(trials)
        kp_se = k_se * np.sqrt(trials / 300)
        assert abs(values[f"sg_qg_keys_unscaled_{d}"] - ku.mean()) < 4 * np.hypot(
            k_se, kp_se
        )
        # scaled: the effective count is flat in d (same logit distribution at every width)
        ks_se = ks.std(ddof=1) / np.sqrt(trials)
        band = 4 * np.hypot(ks_se, ks_se * np.sqrt(trials / 300)) + 0.5
        for key in ("sg_qg_keys_scaled_min", "sg_qg_keys_scaled_max"):
            assert abs(values[key] - ks.mean()) < band, (key, d)
        if d == 8:  # the ratio grows with d_k: its minimum over the sweep is at d_k = 8
            assert abs(values["sg_qg_ratio_min"] - ratio) < 4 * np.hypot(se, page_se)


def _train(optimizer: str, lr_power: int) -> float:
    """reparametrization_gap re-implemented with numpy: same data (torch's seeded draws),
    hand-written forward, backward, SGD and Adam (β = 0.9, 0.999, ε = 1e-8)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    x, keys, vals, target = (
        torch.randn(*shape, generator=gen, dtype=torch.float64).numpy()
        for shape in ((16, 32), (16, 64), (16, 8), (16, 8))
    )
    w0 = torch.randn(32, 64, generator=gen, dtype=torch.float64).numpy() / np.sqrt(32)
    s, lr = 1 / 8, 1e-2
    finals = []
    for w, scale, rate in ((w0.copy(), s, lr), (s * w0, 1.0, s**lr_power * lr)):
        m, v = np.zeros_like(w), np.zeros_like(w)
        for t in range(1, 21):
            p = _probs(scale * (x @ w) @ keys.T)
            d_out = 2 * (p @ vals - target) / target.size
            d_p = d_out @ vals.T
            d_z = p * (d_p - (p * d_p).sum(-1, keepdims=True))
            grad = scale * x.T @ (d_z @ keys)
            if optimizer == "sgd":
                w = w - rate * grad
            else:
                m = 0.9 * m + 0.1 * grad
                v = 0.999 * v + 0.001 * grad**2
                w = w - rate * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
        finals.append(w)
    return float(np.abs(s * finals[0] - finals[1]).max() / np.abs(finals[1]).max())


def test_reparametrization_gaps_by_independent_training(values):
    # Differences of trajectories that agree to ~1e-16 per step: rel 1e-4 covers rounding
    for opt, power in (("sgd", 1), ("adam", 1), ("adam", 2)):
        assert values[f"sg_reparam_{opt}_{power}"] == pytest.approx(
            _train(opt, power), rel=1e-4
        )


def test_cross_entropy_values_exactly(values):
    from decimal import Decimal, getcontext

    getcontext().prec = 250  # ‖J‖² ≈ 1e-111 is a difference of O(1) sums: > 111 digits
    row = np.random.default_rng(3).standard_normal(10)  # the page's row (an input)
    y_w, y_r = int(np.argmin(row)), int(np.argmax(row))
    z = 0.1 * row
    p = _probs(z)
    start = np.sqrt(((p - np.eye(10)[y_w]) ** 2).sum())
    assert values["sg_ce_wrong_start"] == pytest.approx(start, rel=1e-12)
    # α = 100: exact softmax in 250-digit decimals (the float64 logits 100·row as given)
    zs = [Decimal(float(100.0 * r)) for r in row]
    top = max(zs)
    e = [(zi - top).exp() for zi in zs]
    total = sum(e)
    pd = [ei / total for ei in e]
    others = sum(pd[j] for j in range(10) if j != y_r)
    ce_right = (sum(pd[j] ** 2 for j in range(10) if j != y_r) + others**2).sqrt()
    s2 = sum(x**2 for x in pd)
    jac = (s2 - 2 * sum(x**3 for x in pd) + s2**2).sqrt()
    assert values["sg_ce_right_end"] == pytest.approx(float(ce_right), rel=1e-9, abs=0)
    assert values["sg_jac_end"] == pytest.approx(float(jac), rel=1e-9, abs=0)
    assert values["sg_sqrt2"] == pytest.approx(math.sqrt(2), rel=1e-15)


def test_exercise_rounded_two_key_jacobian(values):
    # float32 one-gap = 24 ln 2 to float32's spacing (2^-19 near 16.6); at that gap the
    # rounded p = (1, p2) with p2 = e^{-g}/(1 + e^{-g}) to float32 rounding (rel 2^-23):
    # ‖J‖_F = p2·√(2 + (1 − p2)²) ≈ √3·p2, and 2·p1·p2 = 2·p2.
    gap = values["sg_ex_gap"]
    assert abs(gap - 24 * math.log(2)) <= 2.0**-19
    p2 = math.exp(-gap) / (1 + math.exp(-gap))
    rel = 2 * 2.0**-23
    assert values["sg_ex_two_p1p2"] == pytest.approx(2 * p2, rel=rel, abs=0)
    for key in ("sg_ex_norm_rounded", "sg_ex_norm_autograd"):
        assert values[key] == pytest.approx(
            p2 * math.sqrt(2 + (1 - p2) ** 2), rel=rel, abs=0
        )


def test_gpt2_initial_logit_scale(values):
    # 0.02 on 768 unit-scale inputs: std 0.02·√768 per entry, σ of q·k = 0.02²·768·√d_k
    assert values["sg_gpt2_qk_std"] == pytest.approx(0.02 * math.sqrt(768), rel=1e-15)
    assert values["sg_gpt2_sigma_factor"] == pytest.approx(0.02**2 * 768, rel=1e-15)
