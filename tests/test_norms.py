"""Tests for numscale.norms: LayerNorm and RMSNorm in NumPy, against torch."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numscale import norms, norms_summary

D = 768
EPS32 = float(np.finfo(np.float32).eps)


def _rows(seed, n=4, d=D, mean=3.0, std=5.0):
    return mean + std * np.random.default_rng(seed).standard_normal((n, d))


def test_bare_layer_norm_mean_zero_norm_sqrt_d():
    y = norms.layer_norm(_rows(0))
    # mean of d values of size O(1): float64 rounding ≤ d·eps64·max|y| ≈ 768·2.2e-16·4 < 1e-12
    assert np.abs(y.mean(axis=-1)).max() < 1e-12
    # |ŷ|² = d·σ²/(σ²+ε) exactly; σ² ≈ 25 so the norm is √d·(1 − ε/(2σ²)): compare with the
    # exact expression to float64 rounding, and with √d to the ε term (≤ √d·ε/(2·20) ≈ 7e-6)
    var = _rows(0).var(axis=-1)
    np.testing.assert_allclose(
        np.linalg.norm(y, axis=-1), np.sqrt(D * var / (var + 1e-5)), rtol=1e-12
    )
    np.testing.assert_allclose(
        np.linalg.norm(y, axis=-1), np.sqrt(D), atol=np.sqrt(D) * 1e-5 / (2 * 20)
    )
    assert np.sqrt(768) == pytest.approx(27.71, abs=0.005)  # the science notes' 27.71


def test_gamma_beta_set_coordinate_mean_and_std():
    rng = np.random.default_rng(1)
    n, d = 4000, 64
    gamma, beta = rng.uniform(0.2, 2.0, d), rng.normal(0, 1, d)
    x = rng.normal(0, 10, (n, 1)) + rng.uniform(0.1, 10, (n, 1)) * rng.standard_normal(
        (n, d)
    )
    y = norms.layer_norm(x, gamma, beta)
    # each coordinate's mean over n tokens: SE γ/√n; 5 SE for each of 64 coordinates
    # (P(any beyond 5 SE) ≤ 64·6e-7). x̂_i has variance (d−1)/d·... ≈ 1, so std ≈ γ with
    # relative SE 1/√(2n) = 1.1%; 5 SE plus 1/d for the (d−1)/d from centring.
    assert np.all(np.abs(y.mean(axis=0) - beta) < 5 * gamma / np.sqrt(n))
    assert np.all(
        np.abs(y.std(axis=0, ddof=1) / gamma - 1) < 5 / np.sqrt(2 * n) + 1 / d
    )
    # the output's squared L2 norm averages Σ(γᵢ² + βᵢ²): per token it is Σγᵢ²x̂ᵢ² + 2Σγᵢβᵢx̂ᵢ
    # + Σβᵢ², with variance ≈ 2Σγᵢ⁴ + 4Σγᵢ²βᵢ² (x̂ᵢ ≈ iid N(0,1)); 5 SE of the mean over n
    sq = np.sum(y**2, axis=-1)
    se = np.sqrt((2 * np.sum(gamma**4) + 4 * np.sum(gamma**2 * beta**2)) / n)
    assert abs(sq.mean() - np.sum(gamma**2 + beta**2)) < 5 * se


@settings(max_examples=50, deadline=None)
@given(
    hnp.arrays(np.float64, st.integers(2, 64), elements=st.floats(-100, 100)),
    st.floats(0.01, 100),
    st.floats(-100, 100),
)
def test_layer_norm_affine_invariance(x, a, b):
    # LN(a·x + b) = LN(x) for a > 0 at ε = 0. Skip near-constant x (σ tiny relative to |x|:
    # the subtraction cancels and rounding dominates). Rounding: computing x − μ loses
    # ≈ eps64·(|a·x| + |b|)/(a·σ) relative; allow 1e3 times that.
    sigma = x.std()
    scale = np.abs(x).max() + abs(b) / a
    if sigma < 1e-3 * (scale + 1):
        return
    tol = 1e3 * np.finfo(float).eps * (scale + 1) / sigma
    np.testing.assert_allclose(
        norms.layer_norm(a * x + b, eps=0.0), norms.layer_norm(x, eps=0.0), atol=tol
    )
    # negative a flips the sign
    np.testing.assert_allclose(
        norms.layer_norm(-a * x + b, eps=0.0), -norms.layer_norm(x, eps=0.0), atol=tol
    )
    # RMSNorm: scale-invariant too
    np.testing.assert_allclose(
        norms.rms_norm(a * x, eps=0.0), norms.rms_norm(x, eps=0.0), atol=tol
    )


def test_layer_norm_invariance_with_eps_follows_formula():
    # With ε > 0: LN(ax+b) = (x−μ)/√(σ² + ε/a²); the chapter's 3.7x − 2 example.
    x = np.random.default_rng(2).standard_normal(D)
    a, b = 3.7, -2.0
    expected = (x - x.mean()) / np.sqrt(x.var() + 1e-5 / a**2)
    np.testing.assert_allclose(norms.layer_norm(a * x + b), expected, atol=1e-12)
    diff = np.abs(norms.layer_norm(a * x + b) - norms.layer_norm(x)).max()
    # first order in ε: |x̂|max·(ε/2σ²)·(1 − 1/a²); 5% slack for the second-order term
    xhat = (x - x.mean()) / x.std()
    bound = np.abs(xhat).max() * 1e-5 / (2 * x.var()) * (1 - 1 / a**2)
    assert diff == pytest.approx(bound, rel=0.05)


def test_rms_norm_not_shift_invariant_and_mean():
    # RMSNorm's output mean for N(m, s²) coordinates is ≈ m/√(m²+s²). Over 8·768 draws the
    # sample mean of the normalized output has SE ≈ s/√(m²+s²)/√(8·768) = 0.008; 5 SE.
    rng = np.random.default_rng(3)
    x = 1.0 + rng.standard_normal((8, D))
    out = norms.rms_norm(x)
    assert out.mean() == pytest.approx(
        norms.rms_norm_output_mean(1.0, 1.0), abs=5 * 0.71 / np.sqrt(8 * D)
    )
    # LayerNorm's mean is 0 to rounding
    assert np.abs(norms.layer_norm(x).mean(axis=-1)).max() < 1e-12
    # output RMS of RMSNorm is √(ms/(ms+ε)) ≈ 1
    ms = np.mean(x**2, axis=-1)
    np.testing.assert_allclose(
        np.sqrt(np.mean(out**2, axis=-1)), np.sqrt(ms / (ms + 1e-5)), rtol=1e-12
    )
    assert (
        np.abs(norms.rms_norm(x + 2.0) - out).max() > 0.5
    )  # a shift changes the output


def test_rms_norm_of_centred_equals_layer_norm():
    x = _rows(4)
    centred = x - x.mean(axis=-1, keepdims=True)
    # identical arithmetic once centred; float64 rounding only
    np.testing.assert_allclose(norms.rms_norm(centred), norms.layer_norm(x), atol=1e-13)


def test_layer_norm_gain_and_tiny_variance():
    eps = 1e-5
    # exact formula: output RMS = σ/√(σ²+ε) for the bare LN
    z = np.random.default_rng(5).standard_normal(D)
    for s in [1e-6, 1e-4, np.sqrt(eps), 1e-1, 10.0]:
        x = s * z / z.std()
        rms = np.sqrt(np.mean(norms.layer_norm(x, eps=eps) ** 2))
        assert rms == pytest.approx(float(norms.layer_norm_gain(s, eps)), rel=1e-10)
    # limits: σ ≪ √ε gives σ/√ε (relative error σ²/(2ε) = 5e-4 at σ = 1e-4); σ = √ε gives 1/√2
    assert float(norms.layer_norm_gain(1e-4, eps)) == pytest.approx(
        1e-4 / np.sqrt(eps), rel=1e-3
    )
    assert float(norms.layer_norm_gain(np.sqrt(eps), eps)) == pytest.approx(
        1 / np.sqrt(2), rel=1e-12
    )
    assert np.all(norms.layer_norm(np.full(16, 5.0)) == 0.0)  # a constant token → zeros


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_torch(seed):
    # float32 torch vs float64 numpy on the same float32 input: torch's reductions over d
    # terms and the final scaling round at float32. The tolerance 2·eps32·√d·max|y| is a
    # probabilistic estimate (√d accumulated roundings if they behave like independent
    # mean-zero errors), not a bound; typical errors are ~7·eps32, eight times below it.
    # The worst-case bound of the two-pass algorithm (float32_error_bound) is larger still.
    rng = np.random.default_rng(seed)
    x = (2.0 + 3.0 * rng.standard_normal((16, D))).astype(np.float32)
    gamma, beta = rng.uniform(0.2, 2.0, D), rng.normal(0, 1, D)
    ref = norms.layer_norm(x.astype(np.float64), gamma, beta)
    got = norms.torch_layer_norm(x, gamma, beta)
    assert got.dtype == np.float32 and got.shape == x.shape
    assert np.abs(got - ref).max() < norms.float32_tolerance(D, np.abs(ref).max())
    ref_r = norms.rms_norm(x.astype(np.float64), gamma)
    assert np.abs(
        norms.torch_rms_norm(x, gamma) - ref_r
    ).max() < norms.float32_tolerance(D, np.abs(ref_r).max())


def test_float32_numpy_keeps_dtype():
    x = np.random.default_rng(6).standard_normal((2, 32)).astype(np.float32)
    assert norms.layer_norm(x).dtype == np.float32
    assert norms.rms_norm(x).dtype == np.float32


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 3000),
    st.sampled_from([0.0, 2.0, 100.0, 1e4]),
    st.sampled_from([1e-3, 1.0, 30.0]),
    st.integers(0, 2**32 - 1),
)
def test_float32_error_bound_holds(d, mean, std, seed):
    # The worst-case bound of norms.float32_error_bound must hold for every input of the
    # two-pass algorithm evaluated in float32, including badly conditioned ones (mean 1e4,
    # std 1e-3: the centring cancels). Reference: the same helpers in float64 on the same
    # float32 input (their own error ~d·2⁻⁵³, 2²⁹ times below the bound's scale).
    rng = np.random.default_rng(seed)
    x = (mean + std * rng.standard_normal((3, d))).astype(np.float32)
    gamma, beta = rng.uniform(-3, 3, d), rng.normal(0, 2, d)
    ln_err = np.abs(
        norms.layer_norm(x, gamma, beta)
        - norms.layer_norm(x.astype(np.float64), gamma, beta)
    )
    assert np.all(ln_err <= norms.float32_error_bound(x, gamma, beta))
    rms_err = np.abs(
        norms.rms_norm(x, gamma) - norms.rms_norm(x.astype(np.float64), gamma)
    )
    assert np.all(rms_err <= norms.float32_error_bound(x, gamma, kind="rms"))


def test_float32_error_bound_scale_and_input():
    # The bound grows like d·u: for standard-normal input, γ = 1, β = 0, the largest term is
    # |x̂|·γ_{d+5}/2 ≈ |x̂|·(d/2)·u, so max bound / (d·u·max|x̂|) lies between ½ and 2.
    u = EPS32 / 2
    for d in (64, 768, 4096):
        x = np.random.default_rng(d).standard_normal((2, d)).astype(np.float32)
        x_hat = norms.layer_norm(x.astype(np.float64))
        ratio = norms.float32_error_bound(x).max() / (d * u * np.abs(x_hat).max())
        assert 0.5 < ratio < 2
    # and it exceeds the √d tolerance for large d (a bound is the pessimistic one)
    x = np.random.default_rng(0).standard_normal((4, 768)).astype(np.float32)
    assert norms.float32_error_bound(x).max() > norms.float32_tolerance(768, 4.0)
    with pytest.raises(ValueError, match="kind"):
        norms.float32_error_bound(x, kind="batch")
    with pytest.raises(ValueError, match="x must be finite"):
        norms.float32_error_bound(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="gamma must have shape"):
        norms.float32_error_bound(x, gamma=np.ones(3))


def test_cores_are_the_equations():
    # the functions shown in the chapter, on float64 input: equations eq-layernorm and
    # eq-rmsnorm written out (float64 rounding: 1e-13 absolute on outputs of size ≤ 10)
    rng = np.random.default_rng(7)
    x = 1.5 + 2.0 * rng.standard_normal((5, 32))
    g, b, eps = rng.uniform(0.5, 2, 32), rng.normal(0, 1, 32), 1e-5
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    np.testing.assert_allclose(
        norms._layer_norm_core(x, g, b, eps),
        g * (x - mu) / np.sqrt(var + eps) + b,
        atol=1e-13,
    )
    ms = np.mean(x**2, -1, keepdims=True)
    np.testing.assert_allclose(
        norms._rms_norm_core(x, g, eps), g * x / np.sqrt(ms + eps), atol=1e-13
    )


def test_float32_tolerance_value():
    assert norms.float32_tolerance(768) == pytest.approx(
        2 * EPS32 * np.sqrt(768), rel=1e-12
    )
    with pytest.raises(ValueError, match="d must"):
        norms.float32_tolerance(0)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "fn",
    [norms.layer_norm, norms.rms_norm, norms.torch_layer_norm, norms.torch_rms_norm],
)
def test_bad_x(fn):
    with pytest.raises(ValueError, match="x must have"):  # wrong shape: a scalar
        fn(np.float64(1.0))
    with pytest.raises(ValueError, match="x must be finite"):
        fn(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="x must be finite"):
        fn(np.array([1.0, np.inf, 2.0]))
    with pytest.raises(ValueError, match="x must not be empty"):
        fn(np.zeros((2, 0)))
    with pytest.raises(TypeError, match="x must hold floating"):
        fn(np.arange(4))


def test_bad_gamma_beta_eps():
    x = np.ones((2, 4)) + np.arange(4.0)
    with pytest.raises(ValueError, match="gamma must have shape"):
        norms.layer_norm(x, gamma=np.ones(3))
    with pytest.raises(ValueError, match="beta must have shape"):
        norms.layer_norm(x, beta=np.ones(5))
    with pytest.raises(ValueError, match="gamma must be finite"):
        norms.rms_norm(x, gamma=np.array([1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(TypeError, match="beta must hold floating"):
        norms.torch_layer_norm(x, beta=np.arange(4))
    with pytest.raises(ValueError, match="eps must be >= 0"):
        norms.layer_norm(x, eps=-1.0)
    with pytest.raises(TypeError, match="eps"):
        norms.rms_norm(x, eps="small")
    with pytest.raises(ValueError, match="input_std must be >= 0"):
        norms.layer_norm_gain(-1.0)
    with pytest.raises(ValueError, match="mean and std"):
        norms.rms_norm_output_mean(0.0, 0.0)


# ---------------------------------------------------------------- torch tensors


def _tensor_rows(seed, n=4, d=D, dtype="float64"):
    import torch

    return torch.from_numpy(_rows(seed, n, d)).to(getattr(torch, dtype))


@pytest.mark.parametrize("algorithm", ["torch", "formula"])
def test_tensor_layer_norm_matches_numpy_float64(algorithm):
    import torch

    x = _tensor_rows(20)
    gamma, beta = _tensor_rows(21, 1)[0] / 5, _tensor_rows(22, 1)[0] / 5
    got = norms.tensor_layer_norm(x, gamma, beta, algorithm=algorithm)
    ref = norms.layer_norm(x.numpy(), gamma.numpy(), beta.numpy())
    assert got.dtype == torch.float64
    # two float64 evaluations of the same formula: each is within ~d·u·max|y| of exact
    # (u = 2⁻⁵³, d = 768, |y| ≲ 10 here): 768 · 1.1e-16 · 10 ≈ 1e-12
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("algorithm", ["torch", "formula", "rsqrt"])
def test_tensor_rms_norm_matches_numpy_float64(algorithm):
    x = _tensor_rows(23)
    gamma = _tensor_rows(24, 1)[0] / 5
    got = norms.tensor_rms_norm(x, gamma, algorithm=algorithm)
    ref = norms.rms_norm(x.numpy(), gamma.numpy())
    # as above: d·u·max|y| ≈ 768 · 1.1e-16 · 10 ≈ 1e-12
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


def test_tensor_norms_float32_within_the_rounding_bound():
    x = _tensor_rows(25, dtype="float32")
    exact = norms.layer_norm(x.double().numpy())
    exact_rms = norms.rms_norm(x.double().numpy())
    bound = norms.float32_error_bound(x.numpy())
    bound_rms = norms.float32_error_bound(x.numpy(), kind="rms")
    # "formula" is the algorithm the worst-case bound analyses (any summation order)
    err = np.abs(norms.tensor_layer_norm(x, algorithm="formula").numpy() - exact)
    assert np.all(err <= bound)
    err = np.abs(norms.tensor_rms_norm(x, algorithm="formula").numpy() - exact_rms)
    assert np.all(err <= bound_rms)


def test_tensor_norms_keep_each_algorithms_arithmetic():
    # Callers rely on the exact order of operations (their results must not move by
    # one rounding), so each algorithm is compared bit for bit with its expression.
    import torch

    x = _tensor_rows(26, dtype="float32")
    g = _tensor_rows(27, 1, dtype="float32")[0]
    c = x - x.mean(dim=-1, keepdim=True)
    formula = c / torch.sqrt(c.pow(2).mean(dim=-1, keepdim=True) + 1e-5)
    assert torch.equal(norms.tensor_layer_norm(x, algorithm="formula"), formula)
    torch_ln = torch.nn.functional.layer_norm(x, (D,), eps=1e-5)
    assert torch.equal(norms.tensor_layer_norm(x), torch_ln)
    ms = x.pow(2).mean(-1, keepdim=True) + 1e-6
    rsqrt = x * torch.rsqrt(ms) * g
    assert torch.equal(norms.tensor_rms_norm(x, g, 1e-6, algorithm="rsqrt"), rsqrt)
    assert torch.equal(
        norms.tensor_rms_norm(x, g, 1e-6, algorithm="formula"), x / torch.sqrt(ms) * g
    )


def test_torch_numpy_wrappers_equal_torch_layers():
    import torch

    x = _rows(28, d=16).astype(np.float32)
    gamma, beta = _rows(29, 1, 16)[0], _rows(30, 1, 16)[0]
    layer = torch.nn.LayerNorm(16, eps=1e-5)
    rms = torch.nn.RMSNorm(16, eps=1e-5)
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(gamma.astype(np.float32)))
        layer.bias.copy_(torch.from_numpy(beta.astype(np.float32)))
        rms.weight.copy_(torch.from_numpy(gamma.astype(np.float32)))
        want = layer(torch.from_numpy(x)).numpy()
        want_rms = rms(torch.from_numpy(x)).numpy()
    assert np.array_equal(norms.torch_layer_norm(x, gamma, beta), want)
    assert np.array_equal(norms.torch_rms_norm(x, gamma), want_rms)


@pytest.mark.parametrize("algorithm", ["torch", "formula"])
def test_tensor_layer_norm_is_differentiable(algorithm):
    import torch

    x = _tensor_rows(31, n=3, d=6).requires_grad_(True)
    g = _tensor_rows(32, n=1, d=6)[0].requires_grad_(True)
    b = _tensor_rows(33, n=1, d=6)[0].requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda x, g, b: norms.tensor_layer_norm(x, g, b, algorithm=algorithm),
        (x, g, b),
    )
    assert torch.autograd.gradcheck(
        lambda x, g: norms.tensor_rms_norm(x, g, algorithm=algorithm), (x, g)
    )


def test_tensor_norms_let_nonfinite_values_through():
    import torch

    x = torch.tensor([[1.0, float("nan"), 2.0], [1.0, 2.0, 4.0]])
    out = norms.tensor_layer_norm(x, algorithm="formula")
    assert torch.isnan(out[0]).all() and torch.isfinite(out[1]).all()


def test_tensor_norms_bad_input():
    import torch

    x = torch.ones(2, 4) + torch.arange(4.0)
    for fn in (norms.tensor_layer_norm, norms.tensor_rms_norm):
        with pytest.raises(TypeError, match="x must be a torch.Tensor"):
            fn(x.numpy())
        with pytest.raises(TypeError, match="x must hold floating"):
            fn(torch.arange(4))
        with pytest.raises(ValueError, match="x must have"):
            fn(torch.tensor(1.0))
        with pytest.raises(ValueError, match="x must not be empty"):
            fn(torch.zeros(2, 0))
        with pytest.raises(ValueError, match="gamma must have shape"):
            fn(x, torch.ones(3))
        with pytest.raises(TypeError, match="gamma must be a torch.Tensor"):
            fn(x, np.ones(4))
        with pytest.raises(ValueError, match="eps must be >= 0"):
            fn(x, eps=-1.0)
        with pytest.raises(ValueError, match="algorithm"):
            fn(x, algorithm="welford")
    with pytest.raises(ValueError, match="algorithm"):
        norms.tensor_layer_norm(x, algorithm="rsqrt")  # RMSNorm only
    with pytest.raises(ValueError, match="beta must have shape"):
        norms.tensor_layer_norm(x, beta=torch.ones(5))


# ------------------------------------------------------------ the chapter's result records
def test_bare_norm_summary_against_a_direct_computation():
    x_hat = norms.layer_norm(_rows(3, n=5, d=64))
    rec = norms_summary.bare_norm_summary(x_hat)
    assert rec.sqrt_d == 8.0 and rec.two_sqrt_d == 16.0  # √64 exactly
    # written out here: row means and row L2 norms, summed by hand in float64
    means = [sum(row) / 64 for row in x_hat.tolist()]
    lengths = [sum(v * v for v in row) ** 0.5 for row in x_hat.tolist()]
    # float64 sums of 64 O(1) terms in another order: ≤ 64·eps64·4 ≈ 6e-14 apart
    assert rec.max_abs_mean == pytest.approx(max(abs(m) for m in means), abs=1e-13)
    assert rec.l2_max_dev == pytest.approx(
        max(abs(v - 8.0) for v in lengths), abs=1e-13
    )
    # a made-up x̂ with known lengths: rows of norm 8 + 0.5 and 8 − 2
    made_up = np.zeros((2, 64))
    made_up[0, 0], made_up[1, 1] = 8.5, -6.0
    rec2 = norms_summary.bare_norm_summary(made_up)
    assert rec2.l2_max_dev == 2.0 and rec2.max_abs_mean == 8.5 / 64


def test_format_token_stats_lines():
    x = _rows(4, n=2, d=16)
    text = norms_summary.format_token_stats(x, norms.layer_norm(x))
    assert text.splitlines()[-1] == "√d_model = 4.0"
    assert len(text.splitlines()) == 4
    with pytest.raises(ValueError, match="x_hat"):
        norms_summary.format_token_stats(x, x[:, :8])


def test_gain_bias_recovery_made_up_numbers():
    gamma, beta = np.array([1.0, 2.0]), np.array([0.0, 1.0])
    # n = 100: standard errors γ/10 = 0.1, 0.2; means off by 0.1 and 0.6 → z = 1 and 3.
    # The larger offset sits where γ = 2, so a standard error without γ (1/√n) would
    # give z = 6, and one with γ² would give 1.5
    rec = norms_summary.gain_bias_recovery(
        np.array([0.1, 1.6]), np.array([1.1, 1.0]), gamma, beta, 100
    )
    assert rec.beta_max_z == pytest.approx(3.0, rel=1e-12)
    assert rec.gamma_max_rel == pytest.approx(0.5, rel=1e-12)  # |1.0/2 − 1|
    assert rec.gamma_rel_se == pytest.approx(1 / np.sqrt(198), rel=1e-15)
    with pytest.raises(ValueError, match="n_tokens"):
        norms_summary.gain_bias_recovery(gamma, gamma, gamma, beta, 1)
    with pytest.raises(ValueError, match="share one shape"):
        norms_summary.gain_bias_recovery(gamma[:1], gamma, gamma, beta, 10)


def test_invariance_changes_against_the_formulas():
    x = np.random.default_rng(5).standard_normal(32)
    rec = norms_summary.invariance_changes(x, 3.7, -2.0)
    # ε = 0: invariance exact up to float64 rounding of O(1) outputs
    assert rec.ln_exact < 1e-13 and rec.rms_scale < 1e-13
    # the shift: written out with RMSNorm's formula
    rms = lambda v: v / np.sqrt(np.mean(v**2) + 1e-5)  # noqa: E731
    assert rec.rms_shift == pytest.approx(
        np.abs(rms(x - 2.0) - rms(x)).max(), rel=1e-12
    )
    assert 0 < rec.ln_eps < 1e-4  # first order in ε/σ² ≈ 1e-5 (times max|x̂| ≲ 3)
    # RMSNorm with ε under x → 3.7x: written out; a difference of two O(1) outputs
    # (≈ 1e-5) keeps float64 rounding of ~1e-16 absolute, 1e-9 relative is ample
    assert rec.rms_scale_eps == pytest.approx(
        np.abs(rms(3.7 * x) - rms(x)).max(), rel=1e-9, abs=0
    )
    assert rec.rms_scale_eps > 1e3 * rec.rms_scale  # ε breaks it, as it does for LN
    with pytest.raises(ValueError, match="^a must be finite"):
        norms_summary.invariance_changes(x, float("nan"), 1.0)


def test_invariance_changes_str_labels_each_change():
    rec = norms_summary.InvarianceChanges(
        1.0e-16, 2.0e-5, 3.0e-16, 5.0e-6, 4.0, 3.7, -2.0
    )
    assert str(rec).splitlines() == [
        "largest |change| of the output:",
        "  LayerNorm (ε = 0)   x → 3.7·x − 2: 1.0e-16",
        "  LayerNorm (with ε)  x → 3.7·x − 2: 2.0e-05",
        "  RMSNorm (ε = 0)     x → 3.7·x:     3.0e-16",
        "  RMSNorm (with ε)    x → 3.7·x:     5.0e-06",
        "  RMSNorm (with ε)    x → x − 2:     4.0e+00",
    ]
    other = norms_summary.InvarianceChanges(1.0, 2.0, 3.0, 3.5, 4.0, 2.0, 0.5)
    assert "x → 2·x + 0.5" in str(other)
    # the record keeps the transformation it was measured under
    built = norms_summary.invariance_changes(np.ones(8) + np.arange(8), 3.7, -2.0)
    assert (built.a, built.b) == (3.7, -2.0)
    with pytest.raises(ValueError, match="^b must be finite"):
        norms_summary.invariance_changes(np.arange(8.0), 3.7, float("inf"))


def test_epsilon_regime_against_the_gain_formula():
    z = np.random.default_rng(6).standard_normal(256)
    rec = norms_summary.epsilon_regime(z, 1e-4, eps=1e-5)
    assert rec.sqrt_eps == pytest.approx(np.sqrt(1e-5), rel=1e-15)
    assert rec.inv_sqrt_eps == pytest.approx(1 / np.sqrt(1e-5), rel=1e-15)
    gain = 1e-4 / np.sqrt(1e-8 + 1e-5)  # σ/√(σ² + ε), written out
    assert rec.tiny_gain == pytest.approx(gain, rel=1e-15)
    # measured on the scaled vector: std exactly 1e-4 up to rounding (1e-12 relative)
    assert rec.tiny_out == pytest.approx(gain, rel=1e-10)
    with pytest.raises(ValueError, match="tiny"):
        norms_summary.epsilon_regime(z, 0.0)


def test_layer_norm_output_rms_is_rms_per_vector():
    x = _rows(7, n=3, d=128)
    out = norms.layer_norm_output_rms(x)
    assert out.shape == (3,)
    var = x.var(axis=-1)
    np.testing.assert_allclose(out, np.sqrt(var / (var + 1e-5)), rtol=1e-12)


def test_centring_summary_and_its_table():
    rms_means, ln_means = np.array([0.5, 0.7]), np.array([1e-17, -3e-17])
    # mean 2, std 1: m/√(m² + s²) = 2/√5 (swapping them would give 1/√5)
    rec = norms_summary.centring_summary(rms_means, ln_means, 2.0, 1.0)
    assert rec.rms_mean_measured == pytest.approx(0.6, rel=1e-15)
    assert rec.rms_mean_predicted == pytest.approx(2 / np.sqrt(5), rel=1e-15)
    assert rec.ln_mean_max == 3e-17
    assert (
        norms_summary.format_centring(rms_means, ln_means).splitlines()[1]
        == "[0.5 0.7]"
    )
    with pytest.raises(ValueError, match="rms_out_mean"):
        norms_summary.centring_summary(np.ones((2, 2)), ln_means, 1.0, 1.0)


def test_float32_agreement_fields():
    rng = np.random.default_rng(8)
    d = 64
    x32 = (2.0 + 3.0 * rng.standard_normal((4, d))).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, d), rng.normal(0.0, 1.0, d)
    rec = norms_summary.float32_agreement(x32, gamma, beta)
    # an independent float64 reference, written out here
    x = x32.astype(np.float64)
    mu = x.mean(-1, keepdims=True)
    ref = gamma * (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + 1e-5)
    ref = ref + beta
    assert rec.ln_out_max == pytest.approx(np.abs(ref).max(), rel=1e-12)
    assert rec.eps_mach32 == EPS32
    assert rec.ln_tolerance == pytest.approx(
        2 * EPS32 * np.sqrt(d) * np.abs(ref).max(), rel=1e-12
    )
    # differences are float32 rounding: nonzero, below the worst-case bound
    assert 0 < rec.numpy32_ln_diff <= rec.ln_bound
    assert 0 < rec.numpy32_rms_diff <= rec.rms_bound
    lib32 = norms.layer_norm(x32, gamma, beta).astype(np.float64)
    assert rec.numpy32_ln_diff == pytest.approx(np.abs(lib32 - ref).max(), rel=1e-6)
    # the "PyTorch" rows come from PyTorch: its functional layers, called here with
    # float32 γ, β as nn.LayerNorm/nn.RMSNorm hold them; deterministic on the CPU, so
    # the same outputs to the last bit; the float64 references (the helper's and the
    # one written out above) agree to ~1e-15 absolute, ~1e-8 of differences ~1e-7
    # (NumPy's float32 helpers differ from torch's by a few ulp: a wrong source fails)
    import torch

    xt = torch.from_numpy(x32)
    g32, b32 = (torch.from_numpy(v.astype(np.float32)) for v in (gamma, beta))
    with torch.no_grad():
        t_ln = torch.nn.functional.layer_norm(xt, (d,), g32, b32, eps=1e-5)
        t_rms = torch.nn.functional.rms_norm(xt, (d,), g32, eps=1e-5)
    t_ln, t_rms = t_ln.numpy().astype(np.float64), t_rms.numpy().astype(np.float64)
    ref_rms = gamma * x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5)
    assert rec.torch_ln_diff == pytest.approx(np.abs(t_ln - ref).max(), rel=1e-8, abs=0)
    assert rec.torch_rms_diff == pytest.approx(
        np.abs(t_rms - ref_rms).max(), rel=1e-8, abs=0
    )
    assert rec.torch_ln_diff_per_eps == pytest.approx(rec.torch_ln_diff / EPS32)
    assert rec.torch_rms_diff_per_eps == pytest.approx(rec.torch_rms_diff / EPS32)
    with pytest.raises(TypeError, match="x32"):
        norms_summary.float32_agreement(x32.astype(np.float64), gamma, beta)
