"""Tests for numscale.attention: entropy of iid logits, LayerNorm, QK-norm bound."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from numscale import attention, norms, softmax

# --------------------------------------------------------------------------- entropy against σ


@pytest.mark.parametrize("n", [50, 1000])
def test_entropy_matches_approximation_with_finite_n_correction(n: int) -> None:
    sigmas = np.array([0.1, 0.25, 0.5, 0.75, 1.0])
    sweep = attention.iid_entropy_sweep(n, sigmas, rows=3000, seed=11)
    predicted = attention.entropy_approximation(
        n, sigmas
    ) + attention.entropy_finite_n_correction(n, sigmas)
    # 5 standard errors of a mean over 3000 independent rows, plus the neglected O(e^{2σ²}/n²)
    # term of the delta method, with a generous constant 5.
    tol = 5 * sweep.se + 5 * np.exp(2 * sigmas**2) / n**2
    assert np.all(np.abs(sweep.mean - predicted) <= tol), (sweep.mean - predicted, tol)


def test_plain_approximation_error_is_the_1_over_n_term_at_large_n() -> None:
    # n = 1000, σ ≤ 1: ln n − σ²/2 alone is within |1/n correction| + 5 SE (the correction is ≤ 0.002).
    sigmas = np.array([0.25, 0.5, 1.0])
    sweep = attention.iid_entropy_sweep(1000, sigmas, rows=2000, seed=12)
    corr = np.abs(attention.entropy_finite_n_correction(1000, sigmas))
    assert np.all(corr < 2e-3)
    assert np.all(
        np.abs(sweep.mean - attention.entropy_approximation(1000, sigmas))
        <= corr + 5 * sweep.se + 1e-6
    )


def test_correction_is_sigma2_over_2n_for_small_sigma() -> None:
    # Series: n·corr = σ²/2 + 3σ⁴/4 + O(σ⁶), so |corr − σ²/(2n)| ≤ σ⁴/n for σ ≤ 0.3 (exact inequality).
    n = 50
    for s in [1e-3, 1e-2, 0.1, 0.3]:
        corr = float(attention.entropy_finite_n_correction(n, s))
        assert abs(corr - s**2 / (2 * n)) <= s**4 / n


@pytest.mark.parametrize("n", [50, 1000])
def test_entropy_stays_positive_where_approximation_reaches_zero(n: int) -> None:
    s_star = attention.collapse_sigma(n)
    # ln n − s*²/2 = 0 up to rounding of sqrt/log in float64 (a few ulps of ln n).
    assert abs(float(attention.entropy_approximation(n, s_star))) < 1e-12
    sweep = attention.iid_entropy_sweep(n, [s_star], rows=2000, seed=13)
    # The chapter's claim "still clearly positive": more than 1 nat, 5 standard errors clear.
    assert sweep.mean[0] - 5 * sweep.se[0] > 1.0


@settings(max_examples=50, deadline=None)
@given(
    z=arrays(np.float64, st.integers(2, 40), elements=st.floats(-5, 5)),
    t1=st.floats(0, 3),
    dt=st.floats(0, 3),
)
def test_entropy_never_increases_with_logit_scale(
    z: np.ndarray, t1: float, dt: float
) -> None:
    # d/dt H(t z) = −t·Var_p(z) ≤ 0. Float64 rounding of an entropy over ≤ 40 terms is < 1e-12;
    # 1e-9 leaves room.
    assert (
        softmax.entropy(((t1 + dt) * z)[None])[0]
        <= softmax.entropy((t1 * z)[None])[0] + 1e-9
    )


def test_sweep_uses_common_random_numbers_and_is_reproducible() -> None:
    a = attention.iid_entropy_sweep(20, [0.5, 1.0], rows=50, seed=3)
    b = attention.iid_entropy_sweep(20, [0.5, 1.0], rows=50, seed=3)
    np.testing.assert_array_equal(a.mean, b.mean)
    # σ = 0 gives uniform rows: entropy ln n to rounding (n·eps).
    c = attention.iid_entropy_sweep(20, [0.0], rows=5, seed=3)
    assert abs(c.mean[0] - np.log(20)) < 1e-12


# --------------------------------------------------------------------------- LayerNorm and QK-norm


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d_head=st.integers(2, 48),
    gq=st.floats(0.1, 5),
    gk=st.floats(0.1, 5),
    scale=st.floats(1e-2, 1e3),
)
def test_qk_norm_logits_never_exceed_bound(
    seed: int, d_head: int, gq: float, gk: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    x, w_q, w_k = attention.random_head(12, 16, d_head, rng)
    gamma_q = gq * rng.uniform(-1, 1, d_head)
    gamma_k = gk * rng.uniform(-1, 1, d_head)
    logits = attention.attention_logits(
        x, scale * w_q, w_k, qk_norm=True, gamma_q=gamma_q, gamma_k=gamma_k
    )
    bound = attention.qk_norm_bound(d_head, gamma_q, gamma_k)
    # Cauchy–Schwarz bound; 1e-12 relative slack for float64 rounding of d-term sums.
    assert np.abs(logits).max() <= bound * (1 + 1e-12)


def test_bound_is_attained_by_aligned_query_and_key() -> None:
    x, w_q, _ = attention.random_head(10, 16, 32, seed=4)
    logits = attention.attention_logits(x, w_q, w_q, qk_norm=True, eps=0.0)
    # k = q, unit gains, ε = 0: q̂·q̂/√d = d/√d = √d exactly, to rounding.
    np.testing.assert_allclose(np.diag(logits), attention.qk_norm_bound(32), rtol=1e-12)


def test_growing_queries_scales_plain_logits_but_not_normalized_ones() -> None:
    x, w_q, w_k = attention.random_head(64, 64, 64, seed=0)
    factors = np.geomspace(1, 64, 7)
    plain = attention.query_growth_sweep(x, w_q, w_k, factors, qk_norm=False)
    normed = attention.query_growth_sweep(x, w_q, w_k, factors, qk_norm=True)
    # Plain logits are exactly c times the c = 1 logits (one multiplication's rounding).
    np.testing.assert_allclose(
        plain.max_logit / factors, plain.max_logit[0], rtol=1e-12
    )
    assert np.all(np.diff(plain.entropy) < 0)
    assert plain.entropy[-1] < 0.1 < 3.0 < plain.entropy[0]
    # LN(c·q) differs from LN(q) only through ε: relative change ≤ ε/(2 v_min) with v_min the
    # smallest variance of a query row at c = 1.
    v_min = (x @ w_q).var(axis=-1).min()
    np.testing.assert_allclose(normed.max_logit, normed.max_logit[0], rtol=1e-5 / v_min)
    np.testing.assert_allclose(normed.entropy, normed.entropy[0], rtol=1e-5 / v_min)
    assert normed.max_logit.max() <= attention.qk_norm_bound(64)


# --------------------------------------------------------------------------- bad input


def test_wrong_shape_raises() -> None:
    x, w_q, w_k = attention.random_head(4, 8, 8, seed=0)
    with pytest.raises(ValueError, match="x"):
        attention.attention_logits(x[0], w_q, w_k)
    with pytest.raises(ValueError, match="w_q"):
        attention.attention_logits(x, w_q[:5], w_k)
    with pytest.raises(ValueError, match="w_q and w_k"):
        attention.attention_logits(x, w_q, w_k[:, :5])
    with pytest.raises(ValueError, match="sigmas"):
        attention.iid_entropy_sweep(10, [[1.0]], rows=5, seed=0)


def test_query_key_weights_of_every_head() -> None:
    w = np.ones((2, 8, 4))
    w_q, w_k = attention.query_key_weights(w, 2 * w, 8, ndim=3)
    assert w_q.shape == w_k.shape == (2, 8, 4) and np.all(w_k == 2)
    with pytest.raises(ValueError, match=r"\(H, d_model=6, d_k\)"):
        attention.query_key_weights(w, w, 6, ndim=3)  # the input axis is 8 wide
    with pytest.raises(ValueError, match="w_q and w_k"):
        attention.query_key_weights(w, w[:1], 8, ndim=3)  # one head fewer
    with pytest.raises(ValueError, match="w_k must have 3"):
        attention.query_key_weights(w, w[0], 8, ndim=3)


def test_nonfinite_raises() -> None:
    with pytest.raises(ValueError, match="sigmas"):
        attention.iid_entropy_sweep(10, [1.0, np.nan], rows=5, seed=0)
    with pytest.raises(ValueError, match="factors"):
        attention.query_growth_sweep(
            *attention.random_head(4, 8, 8, seed=0), [1.0, np.inf], qk_norm=False
        )


def test_empty_raises() -> None:
    with pytest.raises(ValueError, match="sigmas"):
        attention.iid_entropy_sweep(10, [], rows=5, seed=0)


def test_wrong_dtype_raises() -> None:
    _, w_q, w_k = attention.random_head(4, 8, 8, seed=0)
    with pytest.raises(TypeError, match="x"):
        attention.attention_logits(np.ones((4, 8), dtype=int), w_q, w_k)
    with pytest.raises(TypeError, match="n_keys"):
        attention.entropy_approximation(10.0, 1.0)
    with pytest.raises(TypeError, match="qk_norm"):
        attention.attention_logits(np.ones((4, 8)), w_q, w_k, qk_norm=1)
    with pytest.raises(TypeError, match="seed"):
        attention.iid_entropy_sweep(10, [1.0], rows=5, seed=None)


def test_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="sigmas"):
        attention.iid_entropy_sweep(10, [-1.0], rows=5, seed=0)
    with pytest.raises(ValueError, match="n_keys"):
        attention.collapse_sigma(1)
    x, w_q, w_k = attention.random_head(4, 8, 8, seed=0)
    with pytest.raises(ValueError, match="eps"):
        attention.attention_logits(x, w_q, w_k, qk_norm=True, eps=-1.0)


# --------------------------------------------------------------------------- ℓ2 QK-norm (Henry et al.)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    d_head=st.integers(2, 48),
    g=st.floats(-20, 20),
    scale=st.floats(1e-2, 1e3),
)
def test_l2_qk_logits_never_exceed_abs_g(
    seed: int, d_head: int, g: float, scale: float
) -> None:
    rng = np.random.default_rng(seed)
    x, w_q, w_k = attention.random_head(12, 16, d_head, rng)
    logits = attention.attention_logits(x, scale * w_q, w_k, qk_norm="l2", g=g)
    # |cos| ≤ 1; float64 rounding of a normalized d-term dot product: 1e-12 relative slack.
    assert np.abs(logits).max() <= attention.l2_qk_bound(g) * (1 + 1e-12) + 1e-300


def test_l2_bound_attained_and_scale_invariant() -> None:
    x, w_q, w_k = attention.random_head(10, 16, 32, seed=4)
    same = attention.attention_logits(x, w_q, w_q, qk_norm="l2", g=3.0)
    np.testing.assert_allclose(np.diag(same), 3.0, rtol=1e-14)  # cos(q, q) = 1
    a = attention.attention_logits(x, w_q, w_k, qk_norm="l2", g=3.0)
    b = attention.attention_logits(x, 37.0 * w_q, 0.01 * w_k, qk_norm="l2", g=3.0)
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)  # exact up to rounding
    # Default g = √d_k.
    np.testing.assert_allclose(
        attention.attention_logits(x, w_q, w_k, qk_norm="l2"),
        a * np.sqrt(32) / 3.0,
        rtol=1e-14,
    )


def test_layernorm_core_matches_public_layer_norm() -> None:
    rng = np.random.default_rng(8)
    q, k = rng.standard_normal((5, 8)), rng.standard_normal((6, 8))
    gq, gk = rng.uniform(0.5, 2, 8), rng.uniform(0.5, 2, 8)
    core = attention.layernorm_qk_logits(q, k, gq, gk, 1e-5)
    ref = norms.layer_norm(q, gq) @ norms.layer_norm(k, gk).T / np.sqrt(8)
    np.testing.assert_allclose(core, ref, rtol=1e-14)
    assert attention.layernorm_qk_bound(8, gq, gk) == attention.qk_norm_bound(8, gq, gk)


def test_l2_growth_sweep_is_flat() -> None:
    x, w_q, w_k = attention.random_head(64, 64, 64, seed=0)
    sweep = attention.query_growth_sweep(
        x, w_q, w_k, np.geomspace(1, 64, 5), qk_norm="l2"
    )
    # ℓ2 normalization removes c exactly (no ε): rounding only.
    np.testing.assert_allclose(sweep.max_logit, sweep.max_logit[0], rtol=1e-12)
    assert sweep.max_logit.max() <= np.sqrt(64)
    # g reaches the logits: g · cos(q, k), so g = 2 gives 2/√64 of the default √d_k
    scaled = attention.query_growth_sweep(
        x, w_q, w_k, np.geomspace(1, 64, 5), qk_norm="l2", g=2.0
    )
    np.testing.assert_allclose(scaled.max_logit, sweep.max_logit / 4, rtol=1e-14)


def test_bad_qk_norm_mode_raises() -> None:
    x, w_q, w_k = attention.random_head(4, 8, 8, seed=0)
    with pytest.raises(TypeError, match="qk_norm"):
        attention.attention_logits(x, w_q, w_k, qk_norm="rms")
    with pytest.raises(ValueError, match="g"):
        attention.attention_logits(x, w_q, w_k, qk_norm="l2", g=np.inf)
