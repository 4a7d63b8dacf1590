"""Claims of book/trained_attention.md, asserted on the glued values of the executed page.

The trained-model claims need the real stories260K files (skipped without them); the book
build reads them when NUMSCALE_TINYSTORIES points at the reference folder (the Makefile sets
it when the folder is present). The statistics helpers themselves are tested on a tiny
random model in tests/test_trained_stats.py.
"""

from __future__ import annotations

import math

import pytest
from test_build import glued_values

pytestmark = [
    pytest.mark.build,
]
PAGE = "book/trained_attention"


@pytest.fixture(scope="module")
def values(built_site):
    found = glued_values(built_site, PAGE)
    v = {k.removeprefix("tatt_"): x for k, x in found.items() if k.startswith("tatt_")}
    # the page must have run on the real model, not the initialization stand-in
    assert v["source_trained"] == 1, "page built without NUMSCALE_TINYSTORIES"
    return v


def test_initialization_matches_the_derivation(values):
    # 40 heads, each one draw of W_Q, W_K: the mean over heads has standard error
    # sd/√40; 4 of them. The ε correction of RMSNorm is part of the prediction.
    se = values["init_std_sd"] / math.sqrt(40)
    assert abs(values["init_std_mean"] - values["init_std_corrected"]) < 4 * se
    assert values["init_std_predicted"] == pytest.approx(64 * 0.02 ** 2, rel=1e-12)
    # near-uniform attention at init: logits of std 0.025 give H ≈ ln n − σ²/2, i.e.
    # a relative deficit of order σ²/(2 ln n) ≈ 1e-4
    assert values["init_norm_entropy_min"] > 0.999


def test_trained_logits_are_far_wider_than_unit(values):
    # "several to tens of units wide": every head's within-row std above 1, the widest
    # above 10. Each is an average over ~3,000 rows of 12 stories; the margins are wide
    # against story-to-story variation (the smallest head measured ~2.2).
    assert values["within_min"] > 1.0
    assert values["within_max"] > 10.0
    # law of total variance: within ≤ pooled head by head, hence for the min and the max
    assert values["within_min"] <= values["pooled_min"] * (1 + 1e-9)
    assert values["within_max"] <= values["pooled_max"] * (1 + 1e-9)
    assert values["within_over_init_median"] > 100


def test_entropy_far_from_uniform_and_not_one_hot(values):
    # every head far from uniform (normalized entropy < 0.9), none one-hot (> 0.05)
    assert values["norm_entropy_max"] < 0.9
    assert values["norm_entropy_min"] > 0.05
    assert values["entropy_max"] < values["uniform_entropy"]


def test_no_attention_sink(values):
    # no head gives the BOS token a large, position-independent share: at t >= 128 the
    # largest head mean stays within 2x of uniform (measured ~1.3x) and every head's mean
    # over all rows below 0.1 (a sink would hold a constant share, 0.2 or more)
    assert values["late_from"] == 128
    assert values["late_first_max"] < 2 * values["late_uniform"]
    assert values["first_max"] < 0.1
    # at initialization the weight is uniform: the largest head within 10% of uniform
    assert values["init_first_max"] == pytest.approx(values["init_first_uniform"], rel=0.1)


def test_scale_sweep(values):
    assert values["c_dk_on_grid"] == pytest.approx(1 / math.sqrt(8), rel=1e-12)
    assert values["c_best_grid"] == pytest.approx(1.0, rel=1e-12)
    # both neighbours of c = 1 are worse by more than 3 paired standard errors
    assert values["diff_above"] > 3 * values["diff_above_se"]
    assert values["diff_below"] > 3 * values["diff_below_se"]
    # 1/d_k instead of 1/√d_k: a large, well-resolved loss increase
    assert values["diff_dk"] > 10 * values["diff_dk_se"]
    assert values["diff_dk"] > 0.1
    # the optimum lies between the grid neighbours of 1 (the parabola's vertex)
    assert 1 / math.sqrt(2) < values["c_vertex"] < math.sqrt(2)
    # asymmetry: c = 1/4 costs more than c = 4, by far more than either SE (~0.03)
    assert values["loss_c_min"] - values["loss_c_max"] > 0.3


def test_fp16_headroom(values):
    assert values["fp16_ln_max"] == pytest.approx(math.log(65504), rel=1e-12)
    assert values["attn_logit_max"] > values["fp16_ln_max"]
    assert values["output_logit_max"] > values["fp16_ln_max"]
    assert 0 < values["rows_above_pct"] < 100
