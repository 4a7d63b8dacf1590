"""Claims of book/gpt2_qk.md, asserted on the glued values of the executed page.

Claims about GPT-2's weights need the reference tensors (skipped without them); the toy
training run needs no data and is asserted always. The helpers are unit-tested on small
random matrices in tests/test_gpt2_qk.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import REFERENCE
from test_build import built_without_data, glued_values

pytestmark = pytest.mark.build
PAGE = "book/gpt2_qk"
real_data = pytest.mark.skipif(not (REFERENCE / "gpt2_small_attention.npz").is_file(),
                               reason="reference GPT-2 tensors not present")
U32 = float(np.finfo(np.float32).eps) / 2
U64 = float(np.finfo(np.float64).eps) / 2


@pytest.fixture(scope="module")
def values(built_site):
    if built_without_data(built_site, PAGE):  # no GPT-2 tensors: tests/test_data_pages.py
        pytest.skip("the page was built without GPT-2's tensors")
    found = glued_values(built_site, PAGE)
    return {k.removeprefix("gpt2qk_"): v for k, v in found.items() if k.startswith("gpt2qk_")}


@pytest.fixture(scope="module")
def real(values):
    assert values["trained"] == 1, "page built without the GPT-2 tensors"
    assert values["released"] == 1, "the tensors are not the released GPT-2 small"
    return values


@real_data
def test_probe_draws_agree_with_the_exact_variance(real):
    # 144 z-scores (sample variance − formula)/SE: a correct formula keeps all within 5 SE
    # (probability of a failure ≈ 144·5.7e-7); their RMS is 1 ± 1/√(2·144) = ±0.06 for
    # independent scores, 5 of those: ±0.3 (shared draws make the scores correlated).
    assert real["probe_z_max"] < 5
    assert abs(real["probe_z_rms"] - 1) < 0.3


@real_data
def test_initialization_baseline_and_trained_scales(real):
    # at initialization std = dσ² = 0.3072 in expectation; one head's std spreads by ~1%
    # (a sum of 64² Gram products), 5% covers the extremes of 144 heads
    assert real["init_std_expected"] == pytest.approx(768 * 0.02**2, rel=1e-12)
    for key in ("init_std_min", "init_std_max"):
        assert real[key] == pytest.approx(real["init_std_expected"], rel=0.05)
    # the trained heads all lie above the initialization and straddle 1 (the prose says
    # the range runs from below 1 to several times 1)
    assert real["std_min"] > real["init_std_max"]
    assert real["std_min"] < 1 < real["std_max"]
    assert real["heads"] == 144 and 0 < real["heads_above_one"] < 144


@real_data
def test_key_bias_zeroing_is_rounding_and_query_bias_is_not(real):
    # every change lies under the worst-case float32 bound (a bound: no tolerance)
    assert real["bk_within_bound_pct"] == 100.0
    # the change is of the size of the float32 computation's own rounding (same order:
    # within a factor 10 of the float32-vs-float64 difference), far below the bound
    assert real["bk_change_max"] <= 10 * real["f32_rounding_max"]
    assert real["bk_bound_use_max"] < 1e-2
    # in float64 it shrinks with the unit roundoff (u64/u32 ≈ 1.1e-9; 1000× margin)
    assert real["bk_change_max_f64"] < 1e3 * (U64 / U32) * real["bk_change_max"]
    # zeroing b_q changes every head's weights by far more than rounding
    assert real["bq_head_max_min"] > 1e3 * real["bk_change_max"]


@real_data
def test_trained_key_bias_is_far_from_zero(real):
    # b_k started at 0 and receives only rounding noise under SGD, yet its RMS in every
    # block is at least a quarter of the median query bias (the prose compares the two)
    assert real["bk_rms_min"] > 0.25 * real["bq_rms_median"]
    assert all(real[f"bk_rms_{i}"] >= real["bk_rms_min"] for i in range(12))
    assert real["bk_rms_max"] == max(real[f"bk_rms_{i}"] for i in range(12))


@real_data
def test_alignment_claims(real):
    # initialization: independent Q, K give a symmetric fraction 1/2 + O(1/d)
    assert abs(real["sym_init_min"] - 0.5) < 0.01 and abs(real["sym_init_max"] - 0.5) < 0.01
    assert real["trace_init_abs_max"] < 0.5
    # trained: median still ≈ 1/2, wide spread, a few heads close to the aligned bound √d_k,
    # most far from it; the most negative head is a nearly symmetric form
    assert abs(real["sym_median"] - 0.5) < 0.05
    assert real["sym_min"] < 0.35 < 0.75 < real["sym_max"]
    assert real["sqrt_dk"] == 8.0
    assert 5 < real["trace_max"] <= real["sqrt_dk"] + 1e-9
    assert -real["sqrt_dk"] - 1e-9 <= real["trace_min"] < -3
    assert real["trace_min_sym"] > 0.75
    assert real["trace_abs_median"] < 2
    assert real["self_excess_max"] > 3 and abs(real["self_excess_median"]) < 1


def test_toy_run_shows_the_adam_mechanism(values):
    # b_k's gradient is rounding noise: relative to b_q's it is of the order of each
    # format's unit roundoff (within 1000×), and the float64 run's is ~1e-9 of float32's
    assert values["toy_grad_ratio_f32"] < 1e3 * U32
    assert values["toy_grad_ratio_f64"] < 1e3 * U64
    assert values["toy_grad_ratio_f64"] < 1e-6 * values["toy_grad_ratio_f32"]
    # SGD leaves b_k at the noise level; Adam with ε below the noise moves it by a sizeable
    # fraction of what b_q learns, and ε above the noise damps that by > 10×
    assert values["toy_bk_drift_sgd"] < 1e-6 * values["toy_bq_drift_sgd"]
    assert values["toy_bk_over_bq_adam12"] > 0.1
    assert values["toy_bk_drift_adam12"] > 10 * values["toy_bk_drift_adam8"]
    # Adam learned the task, SGD at this learning rate barely started
    assert values["toy_loss_adam"] < 0.2 * values["toy_loss_start"]
    assert values["toy_steps"] == 150
    assert math.isfinite(values["toy_loss_sgd"])
