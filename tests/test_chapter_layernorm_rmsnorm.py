"""Claims of book/layernorm_rmsnorm.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.build
PAGE = "book/layernorm_rmsnorm"

EPS32 = float(np.finfo(np.float32).eps)


def test_bare_normalization(values):
    assert values["norm_sqrt_d"] == pytest.approx(math.sqrt(768), rel=1e-15)
    # mean of 768 values of size O(1) in float64: |error| ≤ d·eps64·max|x̂| ≈ 768·2.2e-16·4
    assert values["norm_max_abs_mean"] < 1e-12
    # ‖x̂‖ = √d·√(σ²/(σ²+ε)), σ² ≈ 25 (std 5, ≥ 20 for 4 tokens of 768 draws): the shortfall
    # is at most √d·ε/(2·20)
    assert values["norm_l2_max_dev"] <= math.sqrt(768) * 1e-5 / (2 * 20)


def test_gamma_beta_are_coordinate_mean_and_std(values):
    # 768 coordinate means, each within z SE of βᵢ: P(max |z| > 5) ≤ 768·5.7e-7
    assert values["norm_beta_max_z"] < 5
    # std of n draws (the page's input n_tokens): relative SE 1/√(2(n − 1)) (glued); the
    # largest of 768 deviations is within 5 SE, plus 1/d for the (d−1)/d variance of x̂
    # after centring
    n = values["norm_n_tokens"]
    assert values["norm_gamma_rel_se"] == pytest.approx(
        1 / math.sqrt(2 * (n - 1)), rel=1e-12
    )
    assert values["norm_gamma_max_rel"] < 5 * values["norm_gamma_rel_se"] + 1 / 768


def test_invariances(values):
    # ε = 0: LN(a·x + b) = LN(x) to float64 rounding of O(1) values (≤ 1e3·eps64)
    assert values["norm_inv_ln_exact"] < 1e3 * np.finfo(float).eps
    assert values["norm_inv_rms_scale"] < 1e3 * np.finfo(float).eps
    # with ε: first-order change max|x̂|·ε/(2σ²)·(1 − 1/a²) for σ² ≈ 1 and max|x̂| ≤ 5:
    # nonzero and below 5·1e-5/2
    assert 0 < values["norm_inv_ln_eps"] < 5 * 1e-5 / 2
    # RMSNorm with ε under x → a·x: the same first-order change with the mean square in
    # place of σ² (x ~ N(0, 1), |mean| ≈ 1/√768, so both ≈ 1): "the same order as
    # LayerNorm's" is a ratio within a factor 2
    ratio = values["norm_inv_rms_scale_eps"] / values["norm_inv_ln_eps"]
    assert 1 / 2 < ratio < 2
    # a shift by −2 moves RMSNorm's output by O(1): the prose says "not the shift"
    assert values["norm_inv_rms_shift"] > 0.5


def test_epsilon_regime(values):
    assert values["norm_sqrt_eps"] == pytest.approx(math.sqrt(1e-5), rel=1e-15)
    # σ = tiny_std (1e-4) ≪ √ε: output RMS = σ/√(σ²+ε), measured to float64 rounding
    assert values["norm_tiny_out"] == pytest.approx(values["norm_tiny_gain"], rel=1e-10)
    tiny = values["norm_tiny_std"]
    assert values["norm_tiny_gain"] == pytest.approx(tiny / math.sqrt(1e-5), rel=1e-3)


def test_rms_norm_mean(values):
    # mean of 8·768 normalized outputs of N(m, s²) input (m = s = 1 on the page): SE ≈
    # 0.71/√(8·768); 5 SE
    assert values["norm_rms_mean_measured"] == pytest.approx(
        values["norm_rms_mean_predicted"], abs=5 * 0.71 / math.sqrt(8 * 768)
    )
    assert values["norm_ln_mean_max"] < 1e-12
    # the prediction m/√(m² + s²) at the page's inputs m, s (exact arithmetic)
    m, s = values["norm_centring_m"], values["norm_centring_s"]
    assert values["norm_rms_mean_predicted"] == pytest.approx(
        m / math.sqrt(m**2 + s**2), rel=1e-15
    )


def test_float32_agreement_tolerance_and_bound(values):
    # The two-pass worst-case bound must hold for the NumPy helpers run in float32 (it is a
    # theorem about that algorithm): no tolerance needed.
    assert values["norm_numpy32_ln_diff"] <= values["norm_ln_bound"]
    assert values["norm_numpy32_rms_diff"] <= values["norm_rms_bound"]
    # The prose: PyTorch's differences are "far below the tolerance" (taken as a factor 10),
    # "which is itself below the worst-case bound".
    for kind in ("ln", "rms"):
        assert values[f"norm_torch_{kind}_diff"] < values[f"norm_{kind}_tolerance"] / 10
        assert values[f"norm_{kind}_tolerance"] < values[f"norm_{kind}_bound"]
    assert values["norm_eps_mach32"] == EPS32
    assert values["norm_torch_ln_diff_per_eps"] == pytest.approx(
        values["norm_torch_ln_diff"] / EPS32, rel=1e-12
    )


# ---------------------------------------------------------------- independent recomputation
# The chapter's inputs are redrawn from its generator (seed 0, same draws in the same
# order) and the quoted numbers recomputed with LayerNorm and RMSNorm written out here in
# float64, not with numscale.norms. Numbers that are rounding residues (|mean| ~1e-16,
# float32 and PyTorch differences) depend on the exact operation order, so no independent
# computation can reproduce them; they are held to their rounding bounds above and listed
# in ROUNDING_RESIDUES.
ROUNDING_RESIDUES = {
    "norm_max_abs_mean",
    "norm_inv_ln_exact",
    "norm_inv_rms_scale",
    "norm_ln_mean_max",
    "norm_numpy32_ln_diff",
    "norm_numpy32_rms_diff",
    "norm_torch_ln_diff",
    "norm_torch_rms_diff",
}


def _ln(x, gamma=1.0, beta=0.0, eps=1e-5):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def _rms(x, gamma=1.0, eps=1e-5):
    return gamma * x / np.sqrt((x**2).mean(axis=-1, keepdims=True) + eps)


@pytest.fixture(scope="module")
def reference(values):
    # the page's inputs, read from the glued inputs; the rest of the draws as on the page
    d, n_tokens = 768, values["norm_n_tokens"]
    rng = np.random.default_rng(0)
    x = values["norm_x_mean"] + values["norm_x_std"] * rng.standard_normal((4, d))
    var = x.var(axis=1)
    r = {"norm_l2_max_dev": np.abs(np.sqrt(d * var / (var + 1e-5)) - np.sqrt(d)).max()}
    gamma = rng.uniform(0.2, 2.0, d)
    beta = rng.normal(0.0, 1.0, d)
    offsets = rng.normal(0.0, 10.0, (n_tokens, 1))
    scales = rng.uniform(0.1, 10.0, (n_tokens, 1))
    out = _ln(offsets + scales * rng.standard_normal((n_tokens, d)), gamma, beta)
    r["norm_beta_max_z"] = np.max(
        np.abs(out.mean(0) - beta) / (gamma / np.sqrt(n_tokens))
    )
    r["norm_gamma_max_rel"] = np.max(np.abs(out.std(0, ddof=1) / gamma - 1))
    x1 = rng.standard_normal(d)
    a, b = values["norm_inv_a"], values["norm_inv_b"]
    r["norm_inv_ln_eps"] = np.abs(_ln(a * x1 + b) - _ln(x1)).max()
    r["norm_inv_rms_scale_eps"] = np.abs(_rms(a * x1) - _rms(x1)).max()
    r["norm_inv_rms_shift"] = np.abs(_rms(x1 + b) - _rms(x1)).max()
    z = rng.standard_normal(d)
    tiny = values["norm_tiny_std"] * z / z.std()
    r["norm_tiny_out"] = np.sqrt((_ln(tiny) ** 2).mean())
    m, s = values["norm_centring_m"], values["norm_centring_s"]
    xs = m + s * rng.standard_normal((8, d))
    r["norm_rms_mean_measured"] = _rms(xs).mean()
    x64 = (
        (2.0 + 3.0 * rng.standard_normal((16, d))).astype(np.float32).astype(np.float64)
    )
    eps32 = float(np.finfo(np.float32).eps)
    ln_max, rms_max = (
        np.abs(_ln(x64, gamma, beta)).max(),
        np.abs(_rms(x64, gamma)).max(),
    )
    r.update(
        norm_ln_out_max=ln_max,
        norm_ln_tolerance=2 * eps32 * np.sqrt(d) * ln_max,
        norm_rms_tolerance=2 * eps32 * np.sqrt(d) * rms_max,
    )
    return {k: float(v) for k, v in r.items()}


def test_quoted_numbers_match_a_float64_recomputation(values, reference):
    # float64, different operation order: ~1e-15 relative on O(1) values; the smallest
    # quoted difference (norm_inv_ln_eps ≈ 1.6e-5, of O(1) outputs) keeps ~1e-10 of it
    wrong = {
        k: (values[k], v)
        for k, v in reference.items()
        if values[k] != pytest.approx(v, rel=1e-6, abs=0)
    }
    assert not wrong, wrong


def test_exact_constants(values):
    assert values["norm_two_sqrt_d"] == pytest.approx(2 * math.sqrt(768), rel=1e-15)
    assert values["norm_inv_sqrt_eps"] == pytest.approx(1 / math.sqrt(1e-5), rel=1e-15)
    assert values["norm_torch_rms_diff_per_eps"] == pytest.approx(
        values["norm_torch_rms_diff"] / EPS32, rel=1e-12
    )


def test_inputs_are_declared(values):
    names = ("norm_n_tokens", "norm_tiny_std", "norm_inv_a", "norm_inv_b")
    names += ("norm_x_mean", "norm_x_std", "norm_centring_m", "norm_centring_s")
    for name in names:
        assert values[f"{name}__is_input"] == 1
    # results are not marked as inputs
    assert "norm_inv_rms_scale_eps__is_input" not in values
