"""book/inspect_model.md: the inspection's numbers against the chapters that first
measured them, read from the executed pages of a built site.

Three kinds of comparison, by how the numbers were computed:

* same stories, same definitions (trained_attention.md and quantization.md use the
  first 12 stories at ≤ 256 tokens, as the inspection does): equal to float32
  rounding. The two forwards' logits differ by ~1e-6 of their scale (the page measures
  it, ``insp_convert_max_rel``); statistics of those logits move by the same order. We
  allow 1e-4 relative (≈ 1,700 float32 ulps); the int8 errors are computed on the same
  float32 weights (rows permuted, which changes no per-tensor or per-row scale): 1e-6.
* a superset of stories (trained_residual.md: the first 24; output_logits.md: the
  first 16): a maximum over the first 12 cannot exceed the maximum over a superset
  (up to rounding, 1e-5 relative); a mean differs from the superset's mean by the
  sampling error of the stories not shared: for m of n stories shared,
  Var(mean_m − mean_n) = σ²(1/m − 1/n) = SE_m²(1 − m/n); we allow 4 such errors.
* 16-bit losses, computed with different arithmetic (the book rounds every activation,
  transformers keeps RMSNorm in float32): the bound the prose states, that both
  changes are smaller than the float32 loss's own standard error.
"""

from __future__ import annotations

import math

import pytest

from conftest import chapter_values

pytestmark = pytest.mark.build
ROUNDING = 1e-4
MAX_ROUNDING = 1e-5


@pytest.fixture(scope="module")
def pages(built_site):
    """Each page's glued values; None for a page built without its data
    (quantization without GPT-2's tensors: tests/test_data_pages.py)."""
    return {
        "insp": chapter_values(built_site, "book/inspect_model", "insp_"),
        "tatt": chapter_values(built_site, "book/trained_attention", "tatt_"),
        "tres": chapter_values(built_site, "book/trained_residual", "tres_"),
        "quant": chapter_values(built_site, "book/quantization", "quant_"),
        "ologit": chapter_values(built_site, "book/output_logits", "ologit_"),
    }


def test_trained_model_and_same_stories(pages):
    insp = pages["insp"]
    assert insp["n_stories"] == pages["tatt"]["n_stories"]
    if pages["quant"] is not None:  # built with GPT-2's tensors
        assert insp["n_stories"] == pages["quant"]["n_stories"]
    assert insp["convert_max_rel"] < 1e-5  # float32 rounding, not a layout error
    assert insp["agreement_max"] < ROUNDING  # the page's own check


@pytest.mark.parametrize(
    "name",
    [
        "within_min",
        "within_max",
        "within_median",
        "norm_entropy_median",
        "first_max",
        "first_uniform",
        "attn_logit_max",
        "fp16_ln_max",
    ],
)
def test_attention_equals_trained_attention(pages, name):
    assert pages["insp"][name] == pytest.approx(pages["tatt"][name], rel=ROUNDING)


def test_rows_above_the_float16_limit(pages):
    insp, tatt = pages["insp"], pages["tatt"]
    # a row maximum within rounding of ln 65504 may fall on either side: one row of
    # the ~n_rows·40 is 100/(n_rows·40) percentage points
    one_row = 100 / (insp["n_rows"] * 40)
    assert abs(insp["rows_above_pct"] - tatt["rows_above_pct"]) <= one_row
    assert insp["rows_above_pct"] > 0  # the claim: some rows are above


def test_loss_and_int8_errors_equal_the_chapters(pages):
    insp = pages["insp"]
    assert insp["loss32"] == pytest.approx(pages["tatt"]["loss_c1"], rel=ROUNDING)
    assert insp["loss32_se"] == pytest.approx(pages["tatt"]["loss_c1_se"], rel=1e-3)
    if pages["quant"] is None:  # quantization was built without GPT-2's tensors
        return
    assert insp["loss32"] == pytest.approx(pages["quant"]["loss_base"], rel=ROUNDING)
    assert insp["n_matrices"] == pages["quant"]["n_matrices"]
    for scheme in ("tensor", "channel", "g128"):
        assert insp[f"err_{scheme}"] == pytest.approx(
            pages["quant"][f"err_{scheme}"], rel=1e-6
        )


def test_maxima_do_not_exceed_those_of_a_superset(pages):
    insp, tres, ologit = pages["insp"], pages["tres"], pages["ologit"]
    assert tres["n_stories"] >= insp["n_stories"]
    up = 1 + MAX_ROUNDING
    assert insp["token_ratio_max"] <= tres["token_ratio_max"] * up
    assert insp["max_abs"] <= tres["max_abs"] * up
    assert insp["logit_max_abs"] <= tres["logit_max_abs"] * up
    assert insp["logit_max_abs"] <= ologit["max_logit"] * up
    # the massive-activation verdict is the chapter's: far below 1,000
    assert insp["token_ratio_max"] < 1000 / 5


def test_means_agree_within_sampling_error(pages):
    insp, tres, ologit = pages["insp"], pages["tres"], pages["ologit"]
    m = insp["n_stories"]
    n = tres["n_stories"]
    se = insp["rms_L_se"] * math.sqrt(1 - m / n)
    assert abs(insp["rms_L"] - tres["rms_L"]) <= 4 * se
    n = ologit["n_stories"]
    se = insp["mean_log_z_se"] * math.sqrt(1 - m / n)
    assert abs(insp["mean_log_z"] - ologit["mean_log_z"]) <= 4 * se


def test_sixteen_bit_losses_are_below_the_loss_error(pages):
    insp, tres = pages["insp"], pages["tres"]
    for fmt in ("bf16", "fp16"):
        assert abs(insp[f"{fmt}_diff"]) < insp["loss32_se"], fmt
        assert abs(tres[f"{fmt}_diff"]) < tres["loss32_se"], fmt
        # the prose: "within a few paired standard errors of zero" (4 SE: a mean over 12
        # stories is close to normal; 4 SE excludes chance at the 1e-4 level)
        assert abs(insp[f"{fmt}_diff"]) < 4 * insp[f"{fmt}_diff_se"], fmt
        assert insp[f"{fmt}_diff_se"] < insp["loss32_se"] / 5, fmt  # pairing helps
