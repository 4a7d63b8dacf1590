"""Claims of book/initialization.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest

from numscale import init
from test_build import glued_values

pytestmark = pytest.mark.build


@pytest.fixture(scope="module")
def values(built_site):
    return glued_values(built_site, "book/initialization")


def test_rules(values):
    # exact formulas, float64 rounding
    assert values["init_he_512"] == pytest.approx(math.sqrt(2 / 512), rel=1e-15)
    assert values["init_lecun_512"] == pytest.approx(1 / math.sqrt(512), rel=1e-15)
    assert values["init_lecun_768"] == pytest.approx(1 / math.sqrt(768), rel=1e-15)
    # "0.02 is below 1/√768" and above 1/√3072 (the prose's comparison)
    assert values["init_lecun_3072"] < 0.02 < values["init_lecun_768"]


def test_fifty_relu_layers(values):
    # log2 of the final ratio for one input has mean/sd from init.log2_moment_spread; the
    # batch ratio lies within the range of the 256 per-input ratios, so within 6 sd of the
    # mean for all of them at once (union bound 256·2e-9). LeCun = He − 50 bits exactly
    # (common seed, ReLU homogeneous; float64 rounding ≈ 1e-12 bits).
    mean, sd = init.log2_moment_spread(512, 50)
    assert values["init_log2_mean"] == pytest.approx(mean, rel=1e-12)
    assert values["init_log2_sd"] == pytest.approx(sd, rel=1e-12)
    assert abs(values["init_final_log2_he"] - mean) < 6 * sd
    assert values["init_final_log2_lecun"] == pytest.approx(values["init_final_log2_he"] - 50, abs=1e-9)
    assert values["init_final_ratio_xavier"] == values["init_final_ratio_lecun"]
    assert values["init_two_pow_minus_depth"] == 2.0**-50


def test_reconstructed_gpt2_projection_std(values):
    assert values["init_gpt2_proj_std"] == pytest.approx(0.02 / math.sqrt(24), rel=1e-15)
    assert values["init_xl_proj_std"] == pytest.approx(values["init_gpt2_proj_std"] / 2, rel=1e-15)


def test_residual_growth_slopes(values):
    # eq-init-stream: slope ½ unscaled, 0 scaled. Band ±0.12 argued in
    # tests/test_init.py::test_residual_growth_sqrt_law (branch fluctuations of relative
    # size √(2/d) and the r0² bend at small L).
    assert abs(values["init_slope_unscaled"] - 0.5) < 0.12
    assert abs(values["init_slope_scaled"]) < 0.12
    # scaled stream at every depth near √(r0² + ρ²), r0 = 0.02 (±0.3 in log, same argument)
    expected = math.sqrt(0.02**2 + values["init_branch_rms"] ** 2)
    assert abs(math.log(values["init_rms_scaled_64"] / expected)) < 0.3
    assert abs(math.log(values["init_rms_unscaled_64"] / (values["init_branch_rms"] * math.sqrt(128)))) < 0.3
