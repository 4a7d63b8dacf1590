"""Claims of book/residual_stream.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest

from test_build import glued_values

pytestmark = pytest.mark.build

# Student's t quantiles for the mean of 4 seeds (3 degrees of freedom).
T3_ONE_SIDED_95 = 2.353
T3_TWO_SIDED_99 = 5.841


@pytest.fixture(scope="module")
def values(built_site):
    return glued_values(built_site, "book/residual_stream")


def test_stream_norms(values):
    # post-LN: ‖x‖ = √d·√(σ²/(σ²+ε)) after every block, within √d·ε/2 of √d, plus float32
    # rounding of a 128-term norm (≈ √d·128·eps32)
    sqrt_d = values["res_sqrt_d"]
    assert sqrt_d == pytest.approx(math.sqrt(128), rel=1e-15)
    tol = sqrt_d * (1e-5 / 2 + 128 * 1.2e-7)
    assert sqrt_d - tol <= values["res_post_norm_min"] <= values["res_post_norm_max"] <= sqrt_d + tol
    # pre-LN: grows (√(1 + 2Lρ²) with ρ² of order 0.2–0.5 gives 3–5 at L = 24; band 2–7 as in
    # tests/test_residual.py)
    assert 2 < values["res_pre_growth"] < 7


def test_gradient_pattern_across_blocks(values):
    # prose: near the output post-LN > pre-LN, near the input the order is reversed
    assert values["res_grad_ratio_last"] > 1 > values["res_grad_ratio_first"]
    # prose: pre-LN's gradients fall from block 1 to 24, the stream gradient rises backward,
    # and the weight gradient per unit of stream gradient varies far less (taken as less
    # than half of the fall's factor) than the weight gradient itself
    assert values["res_pre_grad_fall"] > 1.5
    assert values["res_pre_stream_grad_rise"] > 1.5
    assert values["res_pre_per_stream_spread"] < 0.5 * values["res_pre_grad_fall"]


def test_last_block_slopes(values):
    # pre-LN: consistent with −½ over 4 seeds (two-sided 99% t_3 interval), as the prose says
    assert abs(values["res_slope_pre"] + 0.5) < T3_TWO_SIDED_99 * values["res_slope_pre_se"]
    assert values["res_slope_pre_z"] == pytest.approx(
        (values["res_slope_pre"] + 0.5) / values["res_slope_pre_se"], rel=1e-12)
    # a single seed's fit SE understates the seed-to-seed spread (the prose's point)
    assert values["res_slope_pre_seed0_fit_se"] < values["res_slope_pre_seed_sd"]
    # log slopes add: slope(grad·growth) = slope(grad) − slope(1/growth), per seed, so for
    # the means too (float64 rounding)
    assert values["res_slope_corrected"] == pytest.approx(
        values["res_slope_pre"] - values["res_slope_growth"], abs=1e-12)
    # prose: "what is left rises slowly" and "post-LN's rises": one-sided 95% with t_3
    assert values["res_slope_corrected"] > T3_ONE_SIDED_95 * values["res_slope_corrected_se"]
    assert values["res_slope_post"] > T3_ONE_SIDED_95 * values["res_slope_post_se"]
    assert values["res_slope_post_z"] == pytest.approx(
        values["res_slope_post"] / values["res_slope_post_se"], rel=1e-12)


def test_tokens_become_more_alike_with_depth(values):
    # prose: the mean token cosine rises from L = 3 to 24 in both arrangements; the rise
    # exceeds the one-sided 95% t_3 multiple of the two means' combined SE
    for pos in ("post", "pre"):
        rise = values[f"res_cos_{pos}_last"] - values[f"res_cos_{pos}_first"]
        se = math.hypot(values[f"res_cos_{pos}_last_se"], values[f"res_cos_{pos}_first_se"])
        assert rise > T3_ONE_SIDED_95 * se
