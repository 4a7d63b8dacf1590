"""Claims of book/layernorm_rmsnorm.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import numpy as np
import pytest

from test_build import glued_values

pytestmark = pytest.mark.build

EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def values(built_site):
    return glued_values(built_site, "book/layernorm_rmsnorm")


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
    # std of 2,000 draws: relative SE 1/√(2·1999) (glued); the largest of 768 deviations is
    # within 5 SE, plus 1/d for the (d−1)/d variance of x̂ after centring
    assert values["norm_gamma_rel_se"] == pytest.approx(1 / math.sqrt(2 * 1999), rel=1e-12)
    assert values["norm_gamma_max_rel"] < 5 * values["norm_gamma_rel_se"] + 1 / 768


def test_invariances(values):
    # ε = 0: LN(3.7x − 2) = LN(x) to float64 rounding of O(1) values (≤ 1e3·eps64)
    assert values["norm_inv_ln_exact"] < 1e3 * np.finfo(float).eps
    assert values["norm_inv_rms_scale"] < 1e3 * np.finfo(float).eps
    # with ε: first-order change max|x̂|·ε/(2σ²)·(1 − 1/a²) for σ² ≈ 1 and max|x̂| ≤ 5:
    # nonzero and below 5·1e-5/2
    assert 0 < values["norm_inv_ln_eps"] < 5 * 1e-5 / 2
    # a shift by −2 moves RMSNorm's output by O(1): the prose says "not the shift"
    assert values["norm_inv_rms_shift"] > 0.5


def test_epsilon_regime(values):
    assert values["norm_sqrt_eps"] == pytest.approx(math.sqrt(1e-5), rel=1e-15)
    # σ = 1e-4 ≪ √ε: output RMS = σ/√(σ²+ε), measured to float64 rounding
    assert values["norm_tiny_out"] == pytest.approx(values["norm_tiny_gain"], rel=1e-10)
    assert values["norm_tiny_gain"] == pytest.approx(1e-4 / math.sqrt(1e-5), rel=1e-3)


def test_rms_norm_mean(values):
    # mean of 8·768 normalized outputs of N(1, 1) input: SE ≈ 0.71/√(8·768); 5 SE
    assert values["norm_rms_mean_measured"] == pytest.approx(
        values["norm_rms_mean_predicted"], abs=5 * 0.71 / math.sqrt(8 * 768))
    assert values["norm_ln_mean_max"] < 1e-12


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
        values["norm_torch_ln_diff"] / EPS32, rel=1e-12)
