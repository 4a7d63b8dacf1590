"""Claims of book/trained_residual.md, asserted on the glued values of the executed page
(real stories260K files needed; skipped without them). The helpers are tested on a tiny
random model in tests/test_trained_stats.py."""

from __future__ import annotations

import pytest
from test_build import glued_values

pytestmark = [
    pytest.mark.build,
]
PAGE = "book/trained_residual"


@pytest.fixture(scope="module")
def values(built_site):
    found = glued_values(built_site, PAGE)
    v = {k.removeprefix("tres_"): x for k, x in found.items() if k.startswith("tres_")}
    assert v["source_trained"] == 1, "page built without NUMSCALE_TINYSTORIES"
    return v


def test_stream_growth_breaks_the_sqrt_l_assumptions(values):
    # trained growth several-fold, initialization's a few per cent (the 1/√(2L) branch init)
    assert values["growth"] > 3
    assert values["init_growth"] < 1.1
    # updates positively aligned with the stream in every block (cosines ~0.2-0.4, each
    # a mean over ~6,000 tokens)
    assert values["cos_min"] > 0.05
    # the cross term carries a sizeable share of the growth; equal uncorrelated updates
    # of the first block's size would grow the stream less than measured
    assert 0.1 < values["cross_share"] < 0.9
    assert values["sqrt_growth"] < values["growth"]


def test_no_massive_activations(values):
    # Sun et al.'s ratio criterion (~1,000x the token's median): more than 10x short
    assert values["criterion_over_ratio"] > 10
    assert values["token_ratio_max"] < 100
    assert values["channel_rms_ratio_max"] < 10


def test_gains(values):
    assert values["n_gains"] == 704
    assert values["n_negative"] == 0
    assert values["gain_min"] > 0
    assert values["att_median"] > values["mlp_median"]
    assert values["final_median"] > 1


def test_output_logits(values):
    assert values["entropy_mean"] < values["ln_vocab"] / 2
    assert values["ln_vocab"] == pytest.approx(6.238324625039508, rel=1e-12)
    # "slightly overconfident": the loss exceeds the mean entropy by more than 2 paired SE
    assert values["loss_minus_entropy"] > 2 * values["loss_minus_entropy_se"]


def test_formats(values):
    # bfloat16's 8-bit mantissa costs little, float16 less; both far below the loss SE
    assert abs(values["bf16_diff"]) < 0.01
    assert abs(values["fp16_diff"]) < 0.001
    assert abs(values["fp16_diff"]) < values["loss32_se"]
    # the ranking of headroom stated in the prose
    assert values["qk_fp16_doublings"] < values["squares_fp16_doublings"]
    assert values["squares_fp16_doublings"] < values["logits_fp16_doublings"]
    assert values["squares_fp16_doublings"] < values["x_fp16_doublings"]
    assert values["qk_fp16_doublings"] > 1            # nothing overflows
    assert values["attn_below_normal_pct"] > 10
    assert values["attn_to_zero_pct"] < values["attn_below_normal_pct"]
