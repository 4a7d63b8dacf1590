"""Claims of book/gpt2_layernorm.md on GPT-2's real LayerNorms (skipped without them)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import REFERENCE
from numscale.models import registry

pytestmark = pytest.mark.build
PAGE = "book/gpt2_layernorm"


@pytest.fixture(scope="module")
def values(values):
    assert values["ln_released"] == 1, "the page did not read the released GPT-2 small"
    return values


def test_counts_come_from_the_data(values):
    # 25 LayerNorms × 768 channels: exact counts (provenance file)
    assert values["ln_modules"] == 25
    assert values["ln_gain_count"] == values["ln_bias_count"] == 19200
    assert values["ln_block_modules"] == 24
    # one slightly negative gain (provenance file: in h.3.ln_2); the strip plot's axis
    # starts just below it instead of spending a linear unit on negatives
    assert values["ln_gain_negative"] == 1
    assert -1e-3 < values["ln_gain_min"] < 0


def reference_layernorms() -> tuple[np.ndarray, np.ndarray]:
    """Gains and biases (25, 768), float64, read straight from the npz built into the
    package (the same bytes as ../shared/reference's: its sha256 is in the registry) with
    NumPy, not through numscale.gpt2: rows h.0.ln_1, h.0.ln_2, …, h.11.ln_2, ln_f."""
    names = [f"transformer.h.{i}.ln_{j}" for i in range(12) for j in (1, 2)]
    names.append("transformer.ln_f")
    with np.load(registry.DATA_DIR / registry.GPT2_EMBEDDED) as data:
        gains = np.stack([data[f"{n}.weight"] for n in names]).astype(np.float64)
        biases = np.stack([data[f"{n}.bias"] for n in names]).astype(np.float64)
    return gains, biases


def test_fixed_ranges_drop_values(values):
    # recounted from the npz: a range [0, 3] drops gains, mostly of ln_f; [0, 2] drops
    # more (exact integer counts)
    gains, biases = reference_layernorms()
    outside = (gains < 0) | (gains > 3)
    assert values["ln_gain_outside"] == int(outside.sum()) > 0
    assert values["ln_gain_outside_lnf"] == int(outside[-1].sum())
    assert values["ln_bias_outside"] == int(((biases < -5) | (biases > 5)).sum())
    outside_02 = (gains < 0) | (gains > 2)
    assert values["ln_outside_02_total"] == int(outside_02.sum())
    assert values["ln_outside_02_lnf"] == int(outside_02[-1].sum())
    # the prose's reading: most of the dropped gains are ln_f's
    assert values["ln_outside_02_lnf"] > values["ln_outside_02_total"] / 2


def test_summary_statistics_recomputed_from_the_npz(values):
    # every quoted statistic, recomputed from the float32 tensors (values to float32
    # rounding: relative 1e-6)
    gains, biases = reference_layernorms()
    assert (
        values["ln_gain_count"] == gains.size and values["ln_bias_count"] == biases.size
    )
    assert values["ln_modules"] == gains.shape[0]
    assert values["ln_block_modules"] == gains.shape[0] - 1
    close = {
        "ln_gain_min": gains.min(),
        "ln_gain_max": gains.max(),
        "ln_bias_min": biases.min(),
        "ln_bias_max": biases.max(),
        "ln_gain_median": np.median(gains),
        "ln_gain_below_one_pct": 100 * np.mean(gains < 1),
        "ln_block_below_one_pct": 100 * np.mean(gains[:-1] < 1),
        "ln_block_median_gain_max": np.median(gains[:-1], axis=1).max(),
        "ln_f_median_gain": np.median(gains[-1]),
        "ln_f_gain_max_ratio": gains[-1].max() / 1.0,  # init gain: 1
        "ln_rms_largest": np.sqrt(np.mean(gains**2 + biases**2, axis=1)).max(),
        "ln_rms_block_median": np.median(
            np.sqrt(np.mean(gains[:-1] ** 2 + biases[:-1] ** 2, axis=1))
        ),
    }
    for name, expected in close.items():
        assert values[name] == pytest.approx(float(expected), rel=1e-6, abs=1e-9), name
    assert values["ln_gain_negative"] == int((gains < 0).sum())


def markdown_glue(site, page: str, name: str) -> str:
    """The Markdown text glued under ``name`` in ``page``'s executed notebook (the
    ``values`` fixture reads text/plain, which a Markdown glue leaves uninformative)."""
    notebook = site.parent / ".numscale_exec" / "executed" / f"{page}.ipynb"
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            if output.get("metadata", {}).get("scrapbook", {}).get("name") == name:
                return output["data"]["application/papermill.record/text/markdown"]
    raise KeyError(name)


def test_exercise_names_the_block_modules_outside_0_2(values, built_site):
    # the solution names the block LayerNorms (every row but ln_f) that hold gains
    # outside [0, 2], recounted from the npz; the prose says they hold the one
    # negative gain, and that it accounts for every such block gain (exact counts)
    gains, _ = reference_layernorms()
    names = [f"h.{i}.ln_{j}" for i in range(12) for j in (1, 2)]
    outside = (gains[:-1] < 0) | (gains[:-1] > 2)
    expected = ", ".join(f"`{names[i]}`" for i in np.flatnonzero(outside.any(axis=1)))
    assert markdown_glue(built_site, PAGE, "ln_outside_02_blocks") == expected
    negative = gains[:-1] < 0
    assert int(negative.sum()) == 1 and np.array_equal(negative, outside)
    assert values["ln_outside_02_total"] - values["ln_outside_02_lnf"] == 1


def test_markdown_glues_name_the_module_of_the_maximum(built_site):
    # the module and channel of the largest gain, and the module of the largest
    # output RMS √mean(γ² + β²), found from the npz (exact: argmax of the tensors)
    gains, biases = reference_layernorms()
    names = [f"h.{i}.ln_{j}" for i in range(12) for j in (1, 2)] + ["ln_f"]
    module, channel = np.unravel_index(np.argmax(gains), gains.shape)
    assert markdown_glue(built_site, PAGE, "ln_gain_max_where") == (
        f"`{names[module]}`, channel {channel}"
    )
    rms = np.sqrt(np.mean(gains**2 + biases**2, axis=1))
    assert markdown_glue(built_site, PAGE, "ln_rms_largest_module") == (
        f"`{names[int(np.argmax(rms))]}`"
    )


def test_small_gains_share_channels(values):
    # the channel most often among a block LayerNorm's 10 smallest gains, and in how
    # many of the 24 modules: recounted from the npz (exact)
    gains, _ = reference_layernorms()
    ranks = np.argsort(np.argsort(gains[:-1], axis=1), axis=1)
    counts = (ranks < 10).sum(axis=0)
    assert values["ln_low_channel"] == int(np.argmax(counts))
    assert values["ln_low_channel_modules"] == int(counts.max())
    # the prose's claim: not scattered at random. At random, a channel is among the 10
    # smallest of 768 with probability 10/768 per module: binomial(24, 10/768) has mean
    # 0.31, and P(count >= 8) < 1e-9 per channel (< 1e-6 for the max over 768 channels)
    assert values["ln_low_channel_modules"] >= 8


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
        outputs = [
            o for cell in json.loads(text)["cells"] for o in cell.get("outputs", [])
        ]
        shown = json.dumps(outputs)
        for marker in (
            str(REFERENCE),
            str(REFERENCE.parent),
            "/home/",
            "/tmp/",
            "huggingface/hub",
        ):
            assert marker not in shown, f"{page} shows {marker!r}"
