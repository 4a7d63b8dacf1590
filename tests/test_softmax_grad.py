"""Tests for numscale.softmax_grad: the Jacobian diag(p) − ppᵀ and how its norm scales with d."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from numscale import softmax_grad as sg
from numscale.softmax import softmax

EPS = np.finfo(np.float64).eps


def test_jacobian_small_case():
    z = np.log(np.array([0.5, 0.25, 0.25]))  # p = (1/2, 1/4, 1/4), all exact in binary
    expected = np.array(
        [[0.25, -0.125, -0.125], [-0.125, 0.1875, -0.0625], [-0.125, -0.0625, 0.1875]]
    )
    # p from exp/log is within a few eps of the exact dyadic values; J entries ≤ 1/4
    np.testing.assert_allclose(sg.jacobian(z), expected, atol=8 * EPS)


def test_jacobian_matches_finite_differences():
    z = np.random.default_rng(0).standard_normal(7)
    h = 1e-6
    fd = np.stack(
        [(softmax(z + h * e) - softmax(z - h * e)) / (2 * h) for e in np.eye(7)], axis=1
    )
    # central differences: truncation O(h²·|p'''|) ≈ 1e-12, rounding O(eps/h) ≈ 2e-10
    np.testing.assert_allclose(sg.jacobian(z), fd, atol=1e-9)


def test_jacobian_agrees_with_autograd():
    z = np.random.default_rng(1).standard_normal(50) * 3
    diff = np.abs(sg.jacobian(z) - sg.autograd_jacobian(z)).max()
    # both evaluate p_i(δ_ij − p_j) from a softmax computed two ways (numpy / torch): p differs
    # by a few eps relative, |J_ij| ≤ 1/4, so the difference is a few eps at most
    assert diff <= 4 * EPS


def test_frobenius_closed_form():
    z = np.random.default_rng(2).standard_normal((6, 30)) * 4
    explicit = np.linalg.norm(sg.jacobian(z), axis=(-2, -1))
    # Σp² − 2Σp³ + (Σp²)² expands ‖J‖² exactly; sums of n = 30 terms: rounding ≤ c·n·eps
    np.testing.assert_allclose(sg.jacobian_frobenius(z), explicit, rtol=30 * 4 * EPS)


@pytest.mark.parametrize("gap", [0.5, 5.0, 30.0, 100.0, 300.0])
def test_frobenius_saturated_two_keys(gap):
    # two keys: J = p1·p2·[[1, −1], [−1, 1]], ‖J‖ = 2·p1·p2 = 1 / (2·cosh²(g/2)) exactly.
    # Every term of the implemented sum is non-negative, so even for a nearly one-hot row the
    # relative error is a few eps (exp, one division, a handful of products): allow 16 eps.
    exact = 1.0 / (2.0 * np.cosh(gap / 2) ** 2)
    assert float(sg.jacobian_frobenius(np.array([gap, 0.0]))) == pytest.approx(
        exact, rel=16 * EPS
    )
    assert float(sg.jacobian_frobenius(np.array([0.0, gap]))) == pytest.approx(
        exact, rel=16 * EPS
    )


def test_frobenius_saturated_many_keys():
    # one dominant logit, 9 others 40 below with spread: ‖J‖² ≈ Σ_{j≠k} 2p_j² + (Σ_{j≠k} p_j)², from
    # the exact expansion in long double (64-bit mantissa, 2^11 times finer than float64)
    z = np.concatenate([[40.0], np.random.default_rng(7).standard_normal(9)])
    zl = z.astype(np.longdouble)
    e = np.exp(zl - zl.max())
    p = e / e.sum()
    rest = e[1:].sum() / e.sum()  # 1 − p_0 without cancellation
    exact = np.sqrt(
        p[0] ** 2 * (rest**2 + np.sum(p[1:] ** 2))
        + np.sum(
            p[1:] ** 2
            * ((1 - p[1:]) ** 2 + p[0] ** 2 + np.sum(p[1:] ** 2) - p[1:] ** 2)
        )
    )
    # relative: c·n·eps with n = 10 terms, c = 4
    assert float(sg.jacobian_frobenius(z)) == pytest.approx(float(exact), rel=40 * EPS)


@pytest.mark.parametrize("n", [2, 5, 50])
def test_frobenius_uniform_and_one_hot(n):
    # uniform p: ‖J‖² = 1/n − 1/n², so ‖J‖ = √(n−1)/n; rounding a few eps
    assert float(sg.jacobian_frobenius(np.zeros(n))) == pytest.approx(
        math.sqrt(n - 1) / n, rel=16 * EPS * n
    )
    # nearly one-hot (gap 800: exp(−800) underflows to 0): exactly zero Jacobian
    z = np.zeros(n)
    z[0] = 800.0
    assert float(sg.jacobian_frobenius(z)) == 0.0


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(1, 60), elements=st.floats(-50, 50)))
def test_property_norm_bounded_by_trace(z):
    # J is PSD with trace 1 − Σp², so ‖J‖_F ≤ tr J < 1 (equality for n = 2: J has rank 1).
    # Compare squares: the closed form Σp² − 2Σp³ + (Σp²)² is a sum of O(n) terms ≤ 1, so its
    # absolute rounding error is ≤ c·n·eps (c = 8), while its square root would amplify it.
    p = softmax(z)
    assert (
        float(sg.jacobian_frobenius(z)) ** 2
        <= (1 - np.sum(p**2)) ** 2 + 8 * z.size * EPS
    )
    # rows of J sum to zero: J·1 = p − p·Σp = 0 (rounding c·n·eps)
    assert np.abs(sg.jacobian(z).sum(axis=1)).max() <= 8 * z.size * EPS


def test_qk_logit_rows_shapes_and_scale():
    rows = sg.qk_logit_rows(64, 50, 40, seed=0, scale="unscaled")
    assert rows.shape == (40, 50, 50)
    n = rows.size
    # std √d = 8; relative SE of a std from n (correlated) entries — the correlation widens it
    # about 2x (science notes), so allow 10 iid SE: 10·√((1+3/d)/(2n))
    assert rows.std() == pytest.approx(8.0, rel=10 * math.sqrt((1 + 3 / 64) / (2 * n)))
    scaled = sg.qk_logit_rows(64, 50, 40, seed=0, scale="sqrt_d")
    np.testing.assert_allclose(
        scaled, rows / 8.0, rtol=1e-15
    )  # same draws, exact power-of-2 scale


def test_norm_sweep_scaled_flat_unscaled_vanishes():
    dims = [50, 90, 512]
    un = sg.jacobian_norm_sweep(dims, "unscaled", seed=0, n_matrices=100)
    sc = sg.jacobian_norm_sweep(dims, "sqrt_d", seed=1, n_matrices=100)
    se = np.hypot(un.stderr, sc.stderr)  # combined standard errors, per d
    # scaled logits are N(0,1)-like at every d: the means agree within 5 combined SE
    # plus a 1% allowance for the O(1/d) non-Gaussian (kurtosis 3 + 6/d) correction at d = 50
    assert (
        abs(sc.mean[0] - sc.mean[2])
        <= 5 * math.hypot(sc.stderr[0], sc.stderr[2]) + 0.01 * sc.mean[2]
    )
    assert sc.mean[2] == pytest.approx(
        0.20, abs=0.01
    )  # science notes: ≈ 0.20 (SE ~0.0003)
    # at d = 50 the unscaled norm is still larger (0.225 vs 0.202), by > 5 combined SE ...
    assert un.mean[0] - sc.mean[0] > 5 * se[0]
    # ... at d = 90 already smaller by > 5 SE, so the crossover lies between 50 and 90
    assert sc.mean[1] - un.mean[1] > 5 * se[1]
    assert 50 < sg.crossover(un.dims, un.mean, sc.mean) < 90
    # at d = 512 it is less than half the scaled one (science notes: 0.09)
    assert un.mean[2] < 0.5 * sc.mean[2]
    assert np.all(un.stderr > 0) and np.all(sc.stderr > 0)


def test_crossover():
    dims = np.array([10.0, 100.0, 1000.0])
    a = np.array(
        [3.0, 1.0, -1.0]
    )  # a − b changes sign halfway (in log d) between 100 and 1000
    b = np.zeros(3)
    assert sg.crossover(dims, a, b) == pytest.approx(math.sqrt(100 * 1000), rel=1e-12)
    with pytest.raises(ValueError, match="sign"):
        sg.crossover(dims, a + 10, b)
    with pytest.raises(ValueError, match="length"):
        sg.crossover(dims, a[:2], b[:2])


def test_cross_entropy_grad():
    z = np.array([0.0, 30.0, 0.0])
    g = sg.cross_entropy_grad(z, target=0)
    # confidently wrong: p ≈ e_1, so p − y ≈ e_1 − e_0 with norm √2 (p_0 = e^{−30} ≈ 1e-13)
    assert np.linalg.norm(g) == pytest.approx(math.sqrt(2), abs=1e-12)
    # the gradient equals autograd of the torch cross-entropy (same formula, a few eps)
    zt = torch.tensor(z, requires_grad=True)
    torch.nn.functional.cross_entropy(zt[None], torch.tensor([0])).backward()
    np.testing.assert_allclose(g, zt.grad.numpy(), atol=4 * EPS)
    # confidently right: vanishes like e^{−30}
    assert np.linalg.norm(sg.cross_entropy_grad(z, target=1)) < 1e-12
    assert abs(g.sum()) <= 4 * EPS  # components sum to Σp − 1 = 0


def test_cross_entropy_grad_keeps_precision_when_confidently_right():
    # z = (0, 40, 0), target 1: p_0 = p_2 = e^{-40}/(1 + 2e^{-40}) and p_1 − 1 = −(p_0 + p_2),
    # so ‖p − e_1‖ = √6·e^{-40}/(1 + 2e^{-40}) exactly. 1 − p_1 by subtraction is 0 in
    # float64 (e^{-40} ≈ 4e-18 < u), which would give √2·p_0 instead: off by √3.
    z = np.array([0.0, 40.0, 0.0])
    t = math.exp(-40.0)
    exact = math.sqrt(6) * t / (1 + 2 * t)
    norm = np.linalg.norm(sg.cross_entropy_grad(z, target=1))
    assert norm == pytest.approx(exact, rel=1e-14)  # a few roundings of O(1) factors


# ---------------------------------------------------------------- bad input


def test_wrong_shape():
    with pytest.raises(ValueError, match="logits"):
        sg.autograd_jacobian(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="logits"):
        sg.cross_entropy_grad(np.zeros((2, 2)), 0)
    with pytest.raises(ValueError, match="logits"):
        sg.jacobian(np.float64(1.0))


def test_non_finite_and_empty():
    with pytest.raises(ValueError, match="logits"):
        sg.jacobian(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="logits"):
        sg.jacobian_frobenius(np.array([np.inf, 0.0]))
    with pytest.raises(ValueError, match="logits"):
        sg.jacobian(np.zeros(0))


def test_wrong_dtype_and_arguments():
    with pytest.raises(TypeError, match="logits"):
        sg.jacobian(np.arange(3))
    with pytest.raises(TypeError, match="target"):
        sg.cross_entropy_grad(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="target"):
        sg.cross_entropy_grad(np.zeros(3), 3)
    with pytest.raises(ValueError, match="scale"):
        sg.qk_logit_rows(4, 5, 2, seed=0, scale="1/d")
    with pytest.raises(ValueError, match="dims"):
        sg.jacobian_norm_sweep([], "sqrt_d", seed=0)
    with pytest.raises(ValueError, match="dims"):
        sg.jacobian_norm_sweep([0, 4], "sqrt_d", seed=0)


def test_norm_vs_std_shape_and_limits():
    stds = np.array([0.0, 1.0, 3.0, 8.0, 40.0])
    r = sg.jacobian_norm_vs_std(stds, seed=0, n_keys=50, n_rows=2000)
    assert r.mean.shape == (5,) and np.all(r.stderr >= 0)
    # σ = 0: uniform rows exactly, ‖J‖ = √(n−1)/n (rounding a few eps), no spread
    assert (
        r.mean[0] == pytest.approx(math.sqrt(49) / 50, rel=1e-12)
        and r.stderr[0] < 1e-12
    )
    # rises to a peak, then decays (differences ≫ 5 SE at these σ)
    assert r.mean[2] - r.mean[1] > 5 * math.hypot(r.stderr[1], r.stderr[2])
    assert r.mean[3] - r.mean[4] > 5 * math.hypot(r.stderr[3], r.stderr[4])
    # σ = 8 iid logits resemble unscaled d = 64 attention (science notes: 0.21); 5% allowance for
    # the shared-key correlation and the heavier tail of q·k
    assert r.mean[3] == pytest.approx(0.21, rel=0.05)
    with pytest.raises(ValueError, match="stds"):
        sg.jacobian_norm_vs_std([-1.0], seed=0)


def test_logit_scale_sweep():
    z = np.array([0.3, -1.2, 2.0, 0.7])
    s = sg.logit_scale_sweep(z, [0.0, 1.0, 50.0])
    assert isinstance(s, sg.LogitScaleSweep)
    # α = 0: uniform p over 4 keys, ‖J‖ = √3/4, ‖p − e_y‖ = √(9/16 + 3/16) = √3/2 for either target
    assert s.jacobian[0] == pytest.approx(math.sqrt(3) / 4, rel=1e-14)
    assert s.ce_wrong[0] == pytest.approx(math.sqrt(3) / 2, rel=1e-14)
    # α = 50: gap between top two logits is 65, p ≈ one-hot within e^{−65} ≈ 6e-29
    assert s.jacobian[-1] < 1e-25 and s.ce_right[-1] < 1e-25
    assert s.ce_wrong[-1] == pytest.approx(math.sqrt(2), abs=1e-14)
    with pytest.raises(ValueError, match="alphas"):
        sg.logit_scale_sweep(z, [-1.0])


# --------------------------------------------------------------------------- new: crossover vs n,
# the gradient with respect to q, and the SGD/Adam reparametrization


def test_jacobian_from_probs_is_the_shown_formula():
    p = softmax(np.random.default_rng(5).standard_normal((3, 7)))
    J = sg.jacobian_from_probs(p)
    for row, Jr in zip(p, J):
        np.testing.assert_allclose(
            Jr, np.diag(row) - np.outer(row, row), rtol=0, atol=1e-17
        )
    np.testing.assert_allclose(
        J.sum(axis=-1), 0, atol=4 * EPS
    )  # rows sum to p − p·1 = 0


def test_attention_backward_matches_autograd():
    rng = np.random.default_rng(6)
    q, keys = rng.standard_normal(16), rng.standard_normal((9, 16))
    values, upstream = rng.standard_normal((9, 5)), rng.standard_normal(5)
    for scale in (1.0, 0.25):
        dz, dq = sg.attention_backward(q, keys, values, upstream, scale)
        qt = torch.tensor(q, requires_grad=True)
        z = scale * torch.tensor(keys) @ qt
        z.retain_grad()
        out = torch.softmax(z, dim=0) @ torch.tensor(values)
        out.backward(torch.tensor(upstream))
        # float64, a handful of O(1) terms per entry: 1e-12 absolute.
        np.testing.assert_allclose(dq, qt.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dz, z.grad.numpy(), rtol=1e-10, atol=1e-12)
    # Batched call equals the per-trial calls.
    qs, ks = rng.standard_normal((3, 16)), rng.standard_normal((3, 9, 16))
    vs, us = rng.standard_normal((3, 9, 5)), rng.standard_normal((3, 5))
    batched = sg.query_gradient(qs, ks, vs, us, 0.5)
    for i in range(3):
        np.testing.assert_allclose(
            batched[i],
            sg.query_gradient(qs[i], ks[i], vs[i], us[i], 0.5),
            rtol=1e-13,
            atol=1e-15,
        )


def test_query_gradient_bad_input():
    q, keys, values, up = np.ones(4), np.ones((3, 4)), np.ones((3, 2)), np.ones(2)
    with pytest.raises(ValueError, match="keys"):
        sg.query_gradient(q, np.ones((3, 5)), values, up, 1.0)
    with pytest.raises(ValueError, match="upstream"):
        sg.query_gradient(q, keys, values, np.ones(3), 1.0)
    with pytest.raises(ValueError, match="q"):
        sg.query_gradient(np.array([1.0, np.nan, 0, 0]), keys, values, up, 1.0)
    with pytest.raises(TypeError, match="keys"):
        sg.query_gradient(q, np.ones((3, 4), dtype=int), values, up, 1.0)
    with pytest.raises(TypeError, match="scale"):
        sg.query_gradient(q, keys, values, up, "1")


def test_effective_count():
    assert sg.effective_count(np.ones(7)) == pytest.approx(7.0, rel=1e-14)
    assert sg.effective_count(np.array([0.0, -3.0, 0.0])) == pytest.approx(
        1.0, rel=1e-14
    )
    assert sg.effective_count(np.array([1.0, -1.0])) == pytest.approx(2.0, rel=1e-14)


def test_crossover_exists_at_50_keys_and_scaled_norm_is_sqrt_e_over_n():
    c = sg.iid_jacobian_crossover(50, 1000, seed=11)
    assert c.crossed
    # Chapter (2000 rows): 63 ± 4; the book's QKᵀ rows: 70. With 1000 rows the SE is ≈ 5;
    # [40, 100] is > 4 SE either side of 63 and also excludes "no crossover".
    assert 40 < c.d_cross < 100 and c.d_cross_se < 15
    # Peak on the power-of-two grid: 2.83 (d = 8) measured; neighbours 2 and 4.
    assert 2.0 <= c.sigma_peak <= 4.0
    # The mean curve at the crossover equals the scaled value by construction: check the
    # gap changes sign between the grid points around d_cross.
    below = c.dims[c.dims < c.d_cross][-1]
    above = c.dims[c.dims > c.d_cross][0]
    assert c.gap[c.dims == below][0] > 0 > c.gap[c.dims == above][0]


def test_crossover_moves_right_with_n():
    c512 = sg.iid_jacobian_crossover(512, 300, seed=12)
    # Chapter: 1,269 ± 172 (800 rows); with 300 rows SE ≈ 280; [500, 3000] is > 2.5 SE below
    # and > 6 SE above, and far above the n = 50 value.
    assert c512.crossed and 500 < c512.d_cross < 3000
    # ‖J‖_F at σ = 1 ≈ √(e/n) (E Σp² = e^{σ²}/n for large n): measured within 2% at n = 512;
    # rows are iid with relative spread ≈ 10%, so 300 rows give SE ≈ 0.6%: 5% tolerance.
    assert c512.norm_at_1 == pytest.approx(math.sqrt(math.e / 512), rel=0.05)
    assert c512.sigma_peak > 2.83  # the n = 50 peak


def test_crossover_input_checks():
    with pytest.raises(ValueError, match="d_max"):
        sg.iid_jacobian_crossover(50, 10, seed=0, d_max=1000)
    with pytest.raises(ValueError, match="n_rows"):
        sg.iid_jacobian_crossover(50, 1, seed=0)


def test_unscaled_query_gradient_is_larger_and_reaches_fewer_keys():
    r = sg.query_gradient_sweep([8, 64, 2048], seed=21, n_trials=150)
    # Chapter (300 trials): ratio 3.5, 6.3, 10.8 with SE 0.13, 0.44, 1.9; with 150 trials the
    # SEs are √2 larger (≈ 2.7 at 2048: ‖∂L/∂q‖ is heavy-tailed there). "Larger at every
    # d_k": each ratio exceeds 1 by more than 3 SE (one-sided normal tail 1.3e-3; measured
    # margins 17, 11 and 3.7 SE for this seed).
    assert np.all(r.ratio - 1 > 3 * r.ratio_se)
    assert r.ratio[1] > r.ratio[0]  # grows with d_k (measured gap ≈ 2.8, ≈ 4 SE here)
    # Keys receiving gradient: unscaled 6.4 → 2.05 (SE ≈ 0.05 at 2048), scaled ≈ 17.3 of 50
    # at every width (SE ≈ 0.4): bounds at > 5 SE from the measured values.
    assert r.keys_unscaled[-1] < 2.5 and r.keys_unscaled[0] > 5
    assert np.all((r.keys_scaled > 15) & (r.keys_scaled < 20))


def test_query_gradient_sweep_at_width_one_runs_both_scales_on_the_same_draws():
    # At d_k = 1 the scale 1/√d_k is 1: the "scaled" run repeats the unscaled arithmetic on
    # the same draws, so the two means agree exactly, the ratio is exactly 1 and its delta-
    # method variance (two equal terms minus twice the same covariance term) exactly 0.
    r = sg.query_gradient_sweep([1, 4], seed=2, n_trials=20)
    assert r.unscaled[0] == r.scaled[0] and r.ratio[0] == 1.0 and r.ratio_se[0] == 0.0
    assert r.keys_unscaled[0] == r.keys_scaled[0]
    assert r.unscaled[1] != r.scaled[1]  # at d_k = 4 the two differ (s = 1/2)
    with pytest.raises(ValueError, match="dims"):
        sg.query_gradient_sweep([], seed=2)


def test_scaling_is_a_reparametrization_sgd_s2_adam_s():
    # SGD: init s·W0, lr s²η reproduces the scaled run; s = 1/8 is a power of two, so every
    # multiplication by it is exact and the trajectories agree bit for bit.
    assert sg.reparametrization_gap("sgd", 2) == 0.0
    # Adam: the step is invariant to the gradient's scale up to ε = 1e-8 against gradients of
    # order 1e-3..1e-1 over 20 steps: a relative difference ≲ 1e-4 (measured 2.5e-5).
    assert sg.reparametrization_gap("adam", 1) < 1e-4
    # The wrong rule for each optimizer misses by a visible amount (measured 0.08 and 0.28).
    assert sg.reparametrization_gap("sgd", 1) > 1e-2
    assert sg.reparametrization_gap("adam", 2) > 1e-2
    with pytest.raises(ValueError, match="optimizer"):
        sg.reparametrization_gap("rmsprop", 1)
