"""Claims of book/quantization.md, asserted on the glued values of the executed page.

Claims on GPT-2 tensors and stories260K need the reference files (skipped without them).
The helpers are tested on synthetic weights and a tiny random model in
tests/test_quant.py.
The last test executes the page without any source.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from conftest import REFERENCE, ROOT
from test_build import built_without_data, glued_values

pytestmark = pytest.mark.build
PAGE = "book/quantization"
HAVE_GPT2 = (REFERENCE / "gpt2_small_attention.npz").is_file()
needs_gpt2 = pytest.mark.skipif(not HAVE_GPT2, reason="reference GPT-2 tensors absent")
# without GPT-2's tensors the build replaces the whole page (_ext/numscale_data.py)
needs_model = needs_gpt2


@pytest.fixture(scope="module")
def values(built_site):
    if built_without_data(built_site, PAGE):  # no GPT-2 tensors: tests/test_data_pages.py
        pytest.skip("the page was built without GPT-2's tensors")
    found = glued_values(built_site, PAGE)
    return {k.removeprefix("quant_"): v for k, v in found.items()
            if k.startswith("quant_")}


@needs_gpt2
def test_gpt2_scheme_ordering(values):
    assert values["gpt2_real"] == 1, "page built without NUMSCALE_GPT2"
    # deterministic computations on fixed weights: the ordering the prose states
    for part in ("qkv", "proj"):
        v = [values[f"gpt2_{s}_{part}"] for s in ("tensor", "channel", "g128", "g32")]
        assert v[0] > v[1] > v[2] > v[3], part


@needs_model
def test_stories260k_loss_changes(values):
    assert values["model_trained"] == 1, "page built without NUMSCALE_TINYSTORIES"
    # "only the per-tensor scale moves the loss by more than a few paired SE" (int8)
    assert values["d8_tensor"] > 3 * values["d8_tensor_se"]
    for s in ("channel", "g32", "g128"):
        assert abs(values[f"d8_{s}"]) < 3 * values[f"d8_{s}_se"], s
    # int4: every scheme costs loss (> 5 SE), per tensor most
    for s in ("tensor", "channel", "g32", "g128"):
        assert values[f"d4_{s}"] > 5 * values[f"d4_{s}_se"], s
    assert values["d4_tensor"] > 3 * max(values[f"d4_{s}"] for s in ("channel", "g32",
                                                                        "g128"))
    # weight errors: per tensor largest, groups of 32 smallest
    assert values["err_tensor"] > values["err_channel"] > values["err_g32"]


@needs_gpt2
def test_folding_the_outlier_gain(values):
    # folding raises the per-tensor error of the ordinary rows on average, in most
    # blocks, and keeping the outlier rows out of the scale lowers it again
    assert values["fold_folded_mean"] > values["fold_plain_mean"]
    assert values["fold_worse_blocks"] > 6
    assert values["fold_kept_mean"] < values["fold_folded_mean"]
    assert values["gain_ratio_max"] > 2
    # "it does not help in every block": keeping the rows changes the error exactly in
    # the blocks whose largest folded entry lies in a kept row (elsewhere the scale, so
    # the rounding, is bit-identical); the counts are of the 12 blocks
    assert values["fold_kept_helps"] == values["fold_largest_kept"]
    assert values["fold_kept_helps"] + values["fold_kept_same"] == 12
    assert 0 < values["fold_kept_same"] < values["fold_kept_helps"]   # "most blocks"


@needs_model
def test_smoothquant_lowers_the_product_error(values):
    # deterministic given the weights and stories: the ordering the prose states
    # (alpha0..3 = 0, 0.25, 0.5, 0.75): the three larger alphas lower the error, the
    # even split most, and alpha = 0 raises it
    assert values["alpha2"] == 0.5 and values["sq_half"] == values["sq_alpha2"]
    for a in (1, 2, 3):
        assert values[f"sq_alpha{a}"] < values["sq_none"], a
    assert values["sq_alpha2"] < min(values["sq_alpha1"], values["sq_alpha3"])
    assert values["sq_alpha0"] > values["sq_none"]


@needs_gpt2
def test_fp8_with_and_without_scale(values):
    # scaled: round-to-nearest with 3 (E4M3) or 2 (E5M2) mantissa bits, RMS relative
    # error at most 2^-(m+1)/√3
    assert values["fp8_e4m3_scaled"] < 2 ** -4 / math.sqrt(3)
    assert values["fp8_e5m2_scaled"] < 2 ** -3 / math.sqrt(3)
    # unscaled and shrunk: most of the tensor is lost
    assert values["fp8_e4m3_raw8"] > 0.5
    assert values["fp8_e5m2_raw16"] > 0.5
    assert values["fp8_zero_8"] > 0.5


def test_page_without_gpt2_tensors_fails_clearly_outside_the_build(tmp_path):
    """Run as a notebook without GPT-2's tensors (no variable, the hub offline): the
    GPT-2 cell stops the page with one clear line naming NUMSCALE_GPT2, never a stand-in.
    (The book build shows a page saying what it needs instead: tests/test_data_pages.py.)"""
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMSCALE_TINYSTORIES", "NUMSCALE_GPT2")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "run_pages.py"),
                             str(ROOT / f"{PAGE}.md"), "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    assert "GPT2Unavailable" in result.stderr and "NUMSCALE_GPT2" in result.stderr