"""Tests for numscale.gpt2_ln: the GPT-2 LayerNorm chapter's result records, on small
made-up parameters whose answers are counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from numscale import gpt2_ln
from numscale.models import gpt2_model
from numscale.report import MarkdownText

# three modules (two "blocks" and ln_f) of four channels
GAINS = np.array(
    [
        [0.5, 0.2, 1.5, -0.1],
        [0.9, 0.1, 0.3, 0.6],
        [1.0, 2.5, 4.0, 12.0],
    ]
)
BIASES = np.array(
    [
        [0.0, 0.1, -6.0, 0.2],
        [0.3, -0.2, 0.1, 0.0],
        [5.5, -1.0, 0.0, 2.0],
    ]
)
NAMES = ("h.0.ln_1", "h.0.ln_2", "ln_f")


def test_layernorm_summary_counts_by_hand():
    rec = gpt2_ln.layernorm_summary(NAMES, GAINS, BIASES)
    assert (rec.modules, rec.gain_count, rec.bias_count) == (3, 12, 12)
    assert (rec.gain_min, rec.gain_max) == (-0.1, 12.0)
    assert (rec.bias_min, rec.bias_max) == (-6.0, 5.5)
    # sorted gains: ... 0.5, 0.6 | 0.9, 1.0 ...: the median of 12 is (0.6 + 0.9)/2
    assert rec.gain_median == pytest.approx(0.75, rel=1e-15)
    assert rec.gain_below_one_pct == pytest.approx(100 * 7 / 12, rel=1e-15)  # 3 + 4 + 0
    assert rec.gain_negative == 1
    # the largest gain, 12.0, is the last channel (index 3) of ln_f (row 2): not the
    # flat index (11), nor the channel of the largest bias (5.5, channel 0)
    assert rec.gain_max_where == "`ln_f`, channel 3"
    assert isinstance(rec.gain_max_where, MarkdownText)  # glued as Markdown
    moved = GAINS.copy()
    moved[1, 2] = 20.0  # now h.0.ln_2, channel 2
    where = gpt2_ln.layernorm_summary(NAMES, moved, BIASES).gain_max_where
    assert where == "`h.0.ln_2`, channel 2"
    with pytest.raises(ValueError, match="one shape"):
        gpt2_ln.layernorm_summary(NAMES, GAINS, BIASES[:, :2])
    with pytest.raises(ValueError, match="two rows"):
        gpt2_ln.layernorm_summary(NAMES[:1], GAINS[:1], BIASES[:1])
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.layernorm_summary(NAMES[:2], GAINS, BIASES)


def test_layernorm_summary_prints_the_value_ranges():
    rec = gpt2_ln.layernorm_summary(NAMES, GAINS, BIASES)
    # sorted biases: −6, −1, −0.2, 0, 0, 0 | 0.1, 0.1, ...: the median of 12 is 0.05
    assert rec.bias_median == pytest.approx(0.05, rel=1e-15)
    assert str(rec) == gpt2_ln.format_value_ranges({"gains": GAINS, "biases": BIASES})
    assert str(rec).splitlines() == [
        "gains:  12 values, min -0.1000, median +0.7500, max +12.0000",
        "biases: 12 values, min -6.0000, median +0.0500, max +5.5000",
    ]


def test_range_losses_by_hand():
    rec = gpt2_ln.range_losses(GAINS, BIASES)
    # outside [0, 3]: −0.1, 4.0, 12.0 (two of them in ln_f); biases outside [−5, 5]:
    # −6.0 and 5.5
    assert (rec.gain_outside, rec.gain_outside_lnf) == (3, 2)
    assert rec.bias_outside == 2


def test_gain_medians_by_hand():
    init = np.ones_like(GAINS)
    rec = gpt2_ln.gain_medians(NAMES, GAINS, init, ["ln_f"])
    # row medians: sorted row 0: −0.1, 0.2, 0.5, 1.5 → 0.35; row 1:
    # 0.1, 0.3, 0.6, 0.9 → 0.45; ln_f: 1.0, 2.5, 4.0, 12.0 → 3.25. The largest block
    # median, 0.45, differs from the smallest (0.35), from the median of all 8 block
    # gains (0.4) and from the median over every row (ln_f's 3.25)
    assert rec.block_median_gain_max == pytest.approx(0.45, rel=1e-15)
    assert rec.f_median_gain == pytest.approx(3.25, rel=1e-15)
    assert rec.block_below_one_pct == pytest.approx(100 * 7 / 8, rel=1e-15)
    assert rec.f_gain_max_ratio == 12.0 and rec.block_modules == 2
    assert gpt2_ln.gain_medians(NAMES, GAINS, 2 * init, []).f_gain_max_ratio == 6.0
    with pytest.raises(ValueError, match=r"gains \(3, 4\) and init_gains \(3, 2\)"):
        gpt2_ln.gain_medians(NAMES, GAINS, init[:, :2], ["ln_f"])
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.gain_medians(NAMES[:2], GAINS, init, ["ln_f"])
    with pytest.raises(ValueError, match="show"):
        gpt2_ln.gain_medians(NAMES, GAINS, init, ["ln_3"])
    with pytest.raises(TypeError, match="show"):
        gpt2_ln.gain_medians(NAMES, GAINS, init, "ln_f")


def test_gain_medians_print_the_shown_modules():
    # shown in row order whatever the order of `show`; medians as above (0.35 for
    # h.0.ln_1, 3.25 for ln_f), largest gains 1.5 and 12.0; initial gains 2 → init 2
    rec = gpt2_ln.gain_medians(
        NAMES, GAINS, 2 * np.ones_like(GAINS), ["ln_f", "h.0.ln_1"]
    )
    assert list(rec.shown) == ["h.0.ln_1", "ln_f"]
    assert str(rec).splitlines() == [
        "h.0.ln_1   median gain  0.350  max   1.500  (init 2)",
        "ln_f       median gain  3.250  max  12.000  (init 2)",
    ]
    assert str(gpt2_ln.gain_medians(NAMES, GAINS, GAINS, [])) == ""


def test_output_rms_summary_and_extremes():
    # three blocks and ln_f: the block median 0.3 differs from the block mean (0.5),
    # from the median of all four (0.65) and from the largest block value (1.0)
    four = ("h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "ln_f")
    rec = gpt2_ln.output_rms_summary(four, np.array([0.2, 1.0, 0.3, 2.0]), np.ones(4))
    assert (rec.rms_largest, rec.rms_block_median) == (2.0, 0.3)
    assert rec.rms_largest_module == "`ln_f`"
    assert isinstance(rec.rms_largest_module, MarkdownText)  # glued as Markdown
    moved = gpt2_ln.output_rms_summary(four, np.array([0.2, 3.0, 0.3, 2.0]), np.ones(4))
    assert moved.rms_largest_module == "`h.0.ln_2`"
    rms = np.sqrt(np.mean(GAINS**2 + BIASES**2, axis=1))
    # the record prints as the chapter's three lines (glue_record(..., show=True))
    rec = gpt2_ln.output_rms_summary(NAMES, rms, np.ones(3))
    assert str(rec) == gpt2_ln.format_rms_extremes(NAMES, rms, np.ones(3))
    assert str(rec).startswith(f"largest output RMS: ln_f {rms[2]:.3f}\n")
    lines = gpt2_ln.format_rms_extremes(NAMES, rms, np.ones(3)).splitlines()
    assert lines[0].startswith("largest output RMS: ln_f")
    assert lines[1].startswith("smallest output RMS: h.0.ln_2")
    assert lines[2] == "at initialization: every module 1.000"
    two = gpt2_ln.format_rms_extremes(NAMES, rms, np.array([1.0, 0.5, 1.0]))
    assert two.splitlines()[2] == "at initialization: values 0.500, 1.000"
    with pytest.raises(ValueError, match="rms"):
        gpt2_ln.output_rms_summary(NAMES[:1], rms[:1], np.ones(1))
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.output_rms_summary(NAMES[:2], rms, np.ones(3))
    with pytest.raises(ValueError, match="rms_init"):
        gpt2_ln.output_rms_summary(NAMES, rms, np.ones(2))
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.format_rms_extremes(NAMES[:2], rms, np.ones(3))


def test_outside_by_module_counts_by_hand():
    # outside [0, 2]: −0.1 in h.0.ln_1; 2.5, 4.0 and 12.0 in ln_f; none in h.0.ln_2
    assert gpt2_ln.outside_by_module(NAMES, GAINS, 0.0, 2.0) == {
        "h.0.ln_1": 1,
        "ln_f": 3,
    }
    # outside [0.2, 1.0] (edges inside): 1.5 and −0.1 | 0.1 | 2.5, 4.0 and 12.0
    assert gpt2_ln.outside_by_module(NAMES, GAINS, 0.2, 1.0) == {
        "h.0.ln_1": 2,
        "h.0.ln_2": 1,
        "ln_f": 3,
    }
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.outside_by_module(NAMES[:2], GAINS, 0.0, 2.0)
    with pytest.raises(ValueError, match="low"):
        gpt2_ln.outside_by_module(NAMES, GAINS, 2.0, 0.0)


def test_gains_outside_names_the_blocks_and_prints_the_counts():
    # outside [0, 2]: −0.1 in h.0.ln_1, 2.5, 4.0, 12.0 in ln_f: the blocks are
    # h.0.ln_1 only; 4 in all, 3 in ln_f (the last row, not the first)
    rec = gpt2_ln.gains_outside(NAMES, GAINS, 0.0, 2.0)
    assert rec.counts == {"h.0.ln_1": 1, "ln_f": 3}
    assert (rec.total, rec.lnf) == (4, 3)
    assert rec.blocks == "`h.0.ln_1`" and isinstance(rec.blocks, MarkdownText)
    assert str(rec) == (
        "gains outside [0, 2]: 4 (ln_f 3); by module: {'h.0.ln_1': 1, 'ln_f': 3}"
    )
    # outside [0.2, 1.0]: both blocks (2 and 1) and ln_f (3), ln_f left out of blocks
    rec = gpt2_ln.gains_outside(NAMES, GAINS, 0.2, 1.0)
    assert rec.blocks == "`h.0.ln_1`, `h.0.ln_2`"
    assert (rec.total, rec.lnf) == (6, 3)  # 0.2 and 1.0 themselves are inside
    assert str(rec).startswith("gains outside [0.2, 1]: 6 (ln_f 3); ")
    assert "; by module: {'h.0.ln_1': 2" in str(rec)
    # outside [-1, 13]: nothing anywhere
    rec = gpt2_ln.gains_outside(NAMES, GAINS, -1.0, 13.0)
    assert (rec.counts, rec.blocks) == ({}, "")
    with pytest.raises(ValueError, match="names"):
        gpt2_ln.gains_outside(NAMES[:2], GAINS, 0.0, 2.0)


def test_low_channel():
    rec = gpt2_ln.low_channel(np.array([0, 3, 5, 5]), n_modules=6, k=2)
    # argmax takes the first of the ties
    assert (rec.low_channel, rec.low_channel_modules) == (2, 5)
    assert (
        str(rec) == "channel 2: among the 2 smallest gains in 5 of 6 block LayerNorms"
    )
    with pytest.raises(TypeError, match="among_smallest"):
        gpt2_ln.low_channel(np.array([0.5, 1.0]), n_modules=6, k=2)
    with pytest.raises(ValueError, match="n_modules"):
        gpt2_ln.low_channel(np.array([1, 2]), n_modules=0, k=2)


def test_formatters():
    text = gpt2_ln.format_value_ranges({"gains": GAINS})
    assert text == "gains:  12 values, min -0.1000, median +0.7500, max +12.0000"
    assert gpt2_ln.format_parameters(NAMES, GAINS, BIASES) == (
        "gains (3, 4) biases (3, 4) rows h.0.ln_1 ... ln_f"
    )
    with pytest.raises(ValueError, match="arrays"):
        gpt2_ln.format_value_ranges({})
    assert "Trained values" in gpt2_ln.status_text("GPT-2 small")
    with pytest.raises(TypeError, match="label"):
        gpt2_ln.status_text("")


def test_model_status():
    rec = gpt2_ln.model_status(gpt2_model.RELEASED_LABEL)
    assert rec.released == 1
    assert rec.status == gpt2_ln.status_text(gpt2_model.RELEASED_LABEL)
    assert isinstance(rec.status, MarkdownText)  # glued as Markdown ({glue:md})
    other = gpt2_ln.model_status("a random GPT-2-shaped model")
    assert other.released == 0 and "a random GPT-2-shaped model" in other.status
    with pytest.raises(TypeError, match="label"):
        gpt2_ln.model_status("")
