"""Claims of book/gpt2_layernorm.md on GPT-2's real LayerNorms (skipped without them)."""

from __future__ import annotations

import json

import pytest
from conftest import REFERENCE
from test_build import glued_values

pytestmark = [
    pytest.mark.build,
]
PAGE = "book/gpt2_layernorm"


@pytest.fixture(scope="module")
def values(built_site):
    v = glued_values(built_site, PAGE)
    assert v["ln_trained"] == 1 and v["ln_released"] == 1, "page built without data"
    return v


def test_counts_come_from_the_data(values):
    # 25 LayerNorms × 768 channels: exact counts (provenance file)
    assert values["ln_modules"] == 25
    assert values["ln_gain_count"] == values["ln_bias_count"] == 19200
    assert values["ln_block_modules"] == 24
    # one slightly negative gain (provenance file: in h.3.ln_2); the strip plot's axis
    # starts just below it instead of spending a linear unit on negatives
    assert values["ln_gain_negative"] == 1
    assert -1e-3 < values["ln_gain_min"] < 0


def test_fixed_ranges_drop_values(values):
    # prose: a range [0, 3] drops gains, mostly of ln_f; [0, 2] drops more
    assert values["ln_gain_outside"] > 0
    assert values["ln_gain_outside_lnf"] <= values["ln_gain_outside"]
    assert values["ln_gain_outside_02"] >= values["ln_gain_outside"]
    assert values["ln_gain_outside_02_lnf"] > values["ln_gain_outside_02"] / 2


def test_block_gains_mostly_below_one(values):
    assert values["ln_block_below_one_pct"] > 90
    # every block LayerNorm's median gain is modest (the largest, h.0.ln_2's, is ≈ 1.16)
    assert values["ln_block_median_gain_max"] < 1.5
    assert values["ln_f_gain_max_ratio"] > 10


def test_pages_print_no_machine_paths(built_site):
    # issue 12 point 8: outputs never show the build machine's folders (reference data,
    # hub cache); checked in the executed notebooks of the three GPT-2 pages
    for page in (PAGE, "book/gpt2_scales", "book/gpt2_qk"):
        notebook = built_site.parent / ".numscale_exec" / "executed" / f"{page}.ipynb"
        text = notebook.read_text(encoding="utf-8")
        outputs = [o for cell in json.loads(text)["cells"] for o in cell.get("outputs", [])]
        shown = json.dumps(outputs)
        for marker in (str(REFERENCE), str(REFERENCE.parent), "/home/", "/tmp/",
                       "huggingface/hub"):
            assert marker not in shown, f"{page} shows {marker!r}"
