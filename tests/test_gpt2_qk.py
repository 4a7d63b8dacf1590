"""Tests of numscale.gpt2_qk: exact logit moments, the key bias, alignment, the Adam toy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import gpt2_qk, key_bias_toy
from numscale.models import gpt2_model

U32 = gpt2_qk.FLOAT32_UNIT_ROUNDOFF


def random_affine(seed, n_head=3, d=24, d_k=4, bias_scale=1.0):
    rng = np.random.default_rng(seed)
    a_q, a_k = rng.normal(size=(2, n_head, d, d_k))
    c_q, c_k = bias_scale * rng.normal(size=(2, n_head, d_k))
    return a_q, c_q, a_k, c_k


# ----------------------------------------------------------------------- unpacking


def test_split_heads_follows_gpt2_layout():
    d, n_head = 8, 2
    weight = np.arange(d * 3 * d, dtype=np.float32).reshape(d, 3 * d)
    bias = np.arange(3 * d, dtype=np.float32)
    heads = gpt2_qk.split_heads(weight, bias, n_head)
    assert heads.w_q.shape == (n_head, d, d // n_head) and heads.b_k.shape == (2, 4)
    # head 1 of the key: columns d + 4 ... d + 7
    np.testing.assert_array_equal(heads.w_k[1], weight[:, d + 4 : d + 8])
    np.testing.assert_array_equal(heads.b_v[0], bias[2 * d : 2 * d + 4])
    assert heads.w_q.dtype == np.float32


def test_split_heads_bad_input():
    with pytest.raises(ValueError, match="c_attn_weight"):
        gpt2_qk.split_heads(np.ones((4, 10)), np.ones(12), 2)
    with pytest.raises(ValueError, match="c_attn_bias"):
        gpt2_qk.split_heads(np.ones((4, 12)), np.ones(11), 2)
    with pytest.raises(ValueError, match="n_head"):
        gpt2_qk.split_heads(np.ones((4, 12)), np.ones(12), 3)
    with pytest.raises(TypeError, match="c_attn_weight"):
        gpt2_qk.split_heads(np.ones((4, 12), dtype=int), np.ones(12), 2)
    with pytest.raises(ValueError, match="c_attn_bias"):
        gpt2_qk.split_heads(np.ones((4, 12)), np.full(12, np.nan), 2)


def test_fold_layernorm_is_an_exact_rewrite():
    rng = np.random.default_rng(0)
    gain, shift, x = rng.normal(size=(3, 10))
    w, b = rng.normal(size=(2, 10, 3)), rng.normal(size=(2, 3))
    a, c = gpt2_qk.fold_layernorm(gain, shift, w, b)
    direct = (gain * x + shift) @ w + b
    # float64 rewrite of a 10-term sum: a few units of 2^-53 times the sum of |terms|
    np.testing.assert_allclose(x @ a + c, direct, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="gain"):
        gpt2_qk.fold_layernorm(np.ones(9), shift, w, b)
    with pytest.raises(ValueError, match="b must"):
        gpt2_qk.fold_layernorm(gain, shift, w, np.ones((2, 4)))
    with pytest.raises(ValueError, match="shift"):
        gpt2_qk.fold_layernorm(gain, np.full(10, np.inf), w, b)


# ------------------------------------------------------------------- exact moments


def test_logit_moments_match_monte_carlo_within_standard_errors():
    a_q, c_q, a_k, c_k = random_affine(1)
    scale = 0.5
    mean, var = gpt2_qk.logit_moments(a_q, c_q, a_k, c_k, scale)
    n = 200_000
    z = gpt2_qk.probe_logits(a_q, c_q, a_k, c_k, scale, n, seed=2, dtype=np.float64)
    se_var = gpt2_qk.variance_standard_error(z)
    se_mean = z.std(axis=1) / math.sqrt(n)
    # 5 standard errors per head (3 heads): a correct formula fails with probability ~2e-6
    assert np.all(np.abs(z.var(axis=1) - var) <= 5 * se_var)
    assert np.all(np.abs(z.mean(axis=1) - mean) <= 5 * se_mean)


def test_logit_moments_hold_for_non_gaussian_inputs():
    # only second moments enter: ±1 (Rademacher) inputs give the same variance
    a_q, c_q, a_k, c_k = (v[0] for v in random_affine(3, d=16))
    mean, var = gpt2_qk.logit_moments(a_q, c_q, a_k, c_k, 0.25)
    rng = np.random.default_rng(4)
    x, x2 = rng.choice([-1.0, 1.0], size=(2, 100_000, 16))
    z = 0.25 * np.sum((x @ a_q + c_q) * (x2 @ a_k + c_k), axis=1)
    assert abs(z.var() - var) <= 5 * gpt2_qk.variance_standard_error(z)  # 5 SE
    assert abs(z.mean() - mean) <= 5 * z.std() / math.sqrt(z.size)


def test_logit_moments_equal_brute_force_sums():
    a_q, c_q, a_k, c_k = (v[0] for v in random_affine(5, d=7, d_k=3))
    mean, var = gpt2_qk.logit_moments(a_q, c_q, a_k, c_k, 1.0)
    m = a_q @ a_k.T
    expected = np.sum(m**2) + np.sum((a_q @ c_k) ** 2) + np.sum((a_k @ c_q) ** 2)
    assert mean == pytest.approx(c_q @ c_k, rel=1e-12)  # float64 sums of 3 terms
    assert var == pytest.approx(expected, rel=1e-12)


def test_initialization_logit_std_is_d_sigma_squared():
    # W ~ N(0, σ²), γ = 1, β = b = 0: E Var = d²σ⁴ with s² = 1/d_k. ‖A_qA_kᵀ‖_F² is a sum of
    # d_k² = 4096 Gram products, so one head's std has a relative spread of order
    # 1/√(2·4096)·… ≈ 1% (the chapter's 144 heads span ±1.2%); 5% is over 4 such spreads.
    d, d_k, sigma = 768, 64, 0.02
    names = ["h.0.attn.c_attn.weight", "h.0.attn.c_attn.bias"]
    init = gpt2_model.init_tensors(names, seed=0)
    a_q, c_q, a_k, c_k = gpt2_qk.folded_heads(
        init[names[0]],
        init[names[1]],
        np.ones(d, np.float32),
        np.zeros(d, np.float32),
        12,
    )
    _, var = gpt2_qk.logit_moments(a_q, c_q, a_k, c_k, 1 / math.sqrt(d_k))
    assert np.allclose(np.sqrt(var), d * sigma**2, rtol=0.05)


def test_self_logit_mean_matches_same_token_draws():
    a_q, c_q, a_k, c_k = random_affine(6)
    expected = gpt2_qk.self_logit_mean(a_q, c_q, a_k, c_k, 0.5)
    n = 200_000
    z = gpt2_qk.probe_logits(
        a_q, c_q, a_k, c_k, 0.5, n, seed=7, same_token=True, dtype=np.float64
    )
    assert np.all(np.abs(z.mean(axis=1) - expected) <= 5 * z.std(axis=1) / math.sqrt(n))


def test_alignment_extremes():
    rng = np.random.default_rng(8)
    d, d_k = 30, 5
    # aligned: A_k = A_q with orthonormal columns -> M a rank-5 projection, tr/‖M‖ = √5
    q, _ = np.linalg.qr(rng.normal(size=(d, d_k)))
    sym, trace = gpt2_qk.alignment(q, q)
    assert sym == pytest.approx(1.0, abs=1e-12) and trace == pytest.approx(
        math.sqrt(d_k)
    )
    # antisymmetric: M = A Bᵀ − B Aᵀ written as [A, −B][B, A]ᵀ
    a, b = rng.normal(size=(2, d, 2))
    sym, trace = gpt2_qk.alignment(np.hstack([a, -b]), np.hstack([b, a]))
    assert sym == pytest.approx(0.0, abs=1e-12) and trace == pytest.approx(
        0.0, abs=1e-12
    )
    # general: compare with the d × d matrix
    a_q, _, a_k, _ = (v[0] for v in random_affine(9, d=12, d_k=3))
    m = a_q @ a_k.T
    s = (m + m.T) / 2
    sym, trace = gpt2_qk.alignment(a_q, a_k)
    assert sym == pytest.approx(np.sum(s**2) / np.sum(m**2), rel=1e-12)
    assert trace == pytest.approx(np.trace(m) / np.linalg.norm(m), rel=1e-12)
    assert abs(trace) <= math.sqrt(3) + 1e-12


def test_moments_bad_input():
    a_q, c_q, a_k, c_k = random_affine(10)
    with pytest.raises(ValueError, match="a_q and a_k"):
        gpt2_qk.logit_moments(a_q, c_q, a_k[:, :-1], c_k, 1.0)
    with pytest.raises(ValueError, match="c_k"):
        gpt2_qk.logit_moments(a_q, c_q, a_k, c_k[:, :-1], 1.0)
    with pytest.raises(ValueError, match="scale"):
        gpt2_qk.logit_moments(a_q, c_q, a_k, c_k, 0.0)
    with pytest.raises(TypeError, match="a_q"):
        gpt2_qk.logit_moments(a_q.astype(int), c_q, a_k, c_k, 1.0)
    with pytest.raises(ValueError, match="c_q"):
        gpt2_qk.logit_moments(a_q, np.full_like(c_q, np.nan), a_k, c_k, 1.0)
    with pytest.raises(ValueError, match="samples"):
        gpt2_qk.variance_standard_error(np.ones(1))
    with pytest.raises(ValueError, match="n_pairs"):
        gpt2_qk.probe_logits(a_q, c_q, a_k, c_k, 1.0, 0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        gpt2_qk.probe_logits(a_q, c_q, a_k, c_k, 1.0, 5, seed=None)
    with pytest.raises(ValueError, match="nonzero"):
        gpt2_qk.alignment(np.zeros((4, 2)), np.zeros((4, 2)))


def test_variance_standard_error_matches_gaussian_theory():
    # for Gaussian samples the SE of the variance is σ²√(2/N); estimated to a few percent
    x = np.random.default_rng(11).normal(scale=2.0, size=100_000)
    assert gpt2_qk.variance_standard_error(x) == pytest.approx(
        4 * math.sqrt(2 / x.size), rel=0.03
    )


# --------------------------------------------------------------------- the key bias


def random_heads(seed, n=20, d=48, n_head=3, d_k=8, dtype=np.float32):
    rng = np.random.default_rng(seed)
    u = rng.normal(size=(n, d)).astype(dtype)
    w_q, w_k = (rng.normal(size=(2, n_head, d, d_k)) / math.sqrt(d)).astype(dtype)
    b_q, b_k = (3 * rng.normal(size=(2, n_head, d_k))).astype(dtype)
    return u, w_q, b_q, w_k, b_k


def test_key_bias_cancels_exactly_in_exact_arithmetic():
    # In float64 the identity holds to float64 rounding; against float32 it is ~1e9 smaller
    args = random_heads(0, dtype=np.float64)
    p, no_key, no_query = gpt2_qk.bias_zeroing_change(*args, 0.3)
    assert p.shape == (3, 20, 20)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, atol=1e-12)
    assert no_key.max() <= 1e-13  # rounding of float64 (~1e-16 × logits)
    assert no_query.max() > 1e-2  # b_q changes the weights


def test_key_bias_change_in_float32_stays_below_its_rounding_bound():
    args = random_heads(1)
    p, no_key, no_query = gpt2_qk.bias_zeroing_change(*args, 0.3)
    bound = gpt2_qk.key_bias_rounding_bound(*args, 0.3)
    assert np.all(no_key <= bound)  # a worst-case bound: no exceptions
    assert no_key.max() > 0  # float32 rounding is visible ...
    assert no_key.max() < 1e3 * U32  # ... and of its size
    assert no_query.max() > 1e3 * bound.max()  # b_q's change is no rounding effect


def test_key_bias_bound_catches_a_real_change():
    # A change that is not rounding (here: b_k leaking into one key) exceeds the bound.
    u, w_q, b_q, w_k, b_k = random_heads(2)
    p, _, _ = gpt2_qk.bias_zeroing_change(u, w_q, b_q, w_k, b_k, 0.3)
    u_moved = u.copy()
    u_moved[0] += 0.01
    p_moved, _, _ = gpt2_qk.bias_zeroing_change(u_moved, w_q, b_q, w_k, b_k, 0.3)
    bound = gpt2_qk.key_bias_rounding_bound(u, w_q, b_q, w_k, b_k, 0.3)
    assert np.any(np.abs(p_moved - p) > bound)


def test_bias_zeroing_bad_input():
    u, w_q, b_q, w_k, b_k = random_heads(3)
    with pytest.raises(TypeError, match="dtype"):
        gpt2_qk.bias_zeroing_change(u.astype(np.float64), w_q, b_q, w_k, b_k, 1.0)
    with pytest.raises(ValueError, match="w_q and w_k"):
        gpt2_qk.bias_zeroing_change(u[:, :-1], w_q, b_q, w_k, b_k, 1.0)
    with pytest.raises(ValueError, match="b_k"):
        gpt2_qk.bias_zeroing_change(u, w_q, b_q, w_k, b_k[:, :-1], 1.0)
    with pytest.raises(ValueError, match="u must"):
        gpt2_qk.key_bias_rounding_bound(
            np.full_like(u, np.nan), w_q, b_q, w_k, b_k, 1.0
        )
    for function in (gpt2_qk.bias_zeroing_change, gpt2_qk.key_bias_rounding_bound):
        with pytest.raises(ValueError, match="scale must be > 0"):
            function(u, w_q, b_q, w_k, b_k, 0.0)
    with pytest.raises(ValueError, match="gain and shift"):
        gpt2_qk.probe_inputs(np.ones(3), np.ones(4), 5, seed=0)


def test_probe_inputs_are_seeded_and_shifted():
    gain, shift = np.full(6, 2.0), np.arange(6.0)
    a = gpt2_qk.probe_inputs(gain, shift, 4, seed=5)
    b = gpt2_qk.probe_inputs(gain, shift, 4, seed=5)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.shape == (4, 6)
    x = np.random.default_rng(5).standard_normal((4, 6))
    np.testing.assert_allclose(a, 2 * x + shift, rtol=1e-6)  # float32 rounding


# ------------------------------------------------------------------------ Adam toy


def test_toy_run_key_bias_gradient_is_rounding_and_adam_moves_it():
    run = key_bias_toy.train_key_bias_toy(steps=40, seed=1)
    run64 = key_bias_toy.train_key_bias_toy(steps=10, seed=1, dtype="float64")
    assert run.labels == tuple(key_bias_toy.TOY_OPTIMIZERS)
    assert run.loss.shape == (3, 40)
    ratio32 = np.median(run.grad_rms_key_bias / run.grad_rms_query_bias)
    ratio64 = np.median(run64.grad_rms_key_bias / run64.grad_rms_query_bias)
    # rounding noise: b_k's gradient is within a few hundred units of each format's eps
    # of b_q's, and shrinks with the format (float64/float32 eps ratio is ~1e-9)
    assert ratio32 < 1e3 * 2 * U32
    assert ratio64 < 1e3 * float(np.finfo(np.float64).eps)
    adam8, adam12, sgd = 0, 1, 2
    # SGD moves b_k by lr × noise: far below anything a gradient of b_q does
    assert run.drift_key_bias[sgd, -1] < 1e-6 * run.drift_query_bias[sgd, -1]
    # Adam with ε below the noise takes steps of the learning rate's size on b_k
    assert run.drift_key_bias[adam12, -1] > 1e-2
    assert run.drift_key_bias[adam12, -1] > 10 * run.drift_key_bias[adam8, -1]
    # b_k does not enter the loss: both Adam runs reach the same loss (float32 noise)
    np.testing.assert_allclose(run.loss[adam8], run.loss[adam12], rtol=1e-3)


def test_toy_run_is_deterministic_and_checks_input():
    a = key_bias_toy.train_key_bias_toy(steps=5, seed=3)
    b = key_bias_toy.train_key_bias_toy(steps=5, seed=3)
    np.testing.assert_array_equal(a.drift_key_bias, b.drift_key_bias)
    with pytest.raises(ValueError, match="optimizers"):
        key_bias_toy.train_key_bias_toy(
            steps=2, optimizers={"x": ("rmsprop", 0.1, 0.0)}
        )
    with pytest.raises(ValueError, match="steps"):
        key_bias_toy.train_key_bias_toy(steps=0)
    with pytest.raises(ValueError, match="dtype"):
        key_bias_toy.train_key_bias_toy(steps=2, dtype="float16")
