"""Claims of book/softmax_gradients.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest
from test_build import glued_values

pytestmark = pytest.mark.build
PAGE = "book/softmax_gradients"


@pytest.fixture(scope="module")
def values(built_site):
    return glued_values(built_site, PAGE)


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
    assert values["sg_cross_512"] - values["sg_cross_50"] > 4 * values["sg_cross_512_se"]
    # n = 4096: no crossover below d_k ≈ 2000: the gap at 2048 is positive by > 3 SE
    # (measured 4 SE), and the estimate lies beyond 4096.
    assert values["sg_gap_4096_at_2048"] > 3 * values["sg_gap_4096_at_2048_se"]
    assert values["sg_cross_4096"] > 4096
    # The peak σ grows with n (grid points √d, d a power of two).
    assert values["sg_peak_sigma_50"] < values["sg_peak_sigma_512"] < values["sg_peak_sigma_4096"]


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
    assert values["sg_ce_wrong_start"] < 1.2  # visibly below √2 at α = 0.1 (measured 0.97)
    assert values["sg_jac_end"] < 1e-20 and values["sg_ce_right_end"] < 1e-20
