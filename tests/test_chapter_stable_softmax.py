"""Claims of book/stable_softmax.md, asserted on its glued values (issues 9 and 13)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_build import glued_values
from test_chapter_dot_products import check_shown_sources, long_code_lines

PAGE = "book/stable_softmax"


def test_code_lines_fit_the_column():
    assert long_code_lines(PAGE) == []


def test_shows_the_algorithms_it_teaches():
    # log-sum-exp / stable softmax cores, the online recurrence, the FlashAttention-2 output
    # recurrence, and the merge of two states (issue 13)
    check_shown_sources(PAGE, {
        ("numscale.softmax", "_softmax_core"), ("numscale.softmax", "_shift_and_log1p"),
        ("numscale.streaming", "_online_states"),
        ("numscale.streaming", "_online_attention_core"), ("numscale.streaming", "_merge"),
    })


def test_flashattention_attribution():
    # issue 9 point 14: one division at the end is FlashAttention-2's form, cited to it
    text = (Path_root() / f"{PAGE}.md").read_text(encoding="utf-8")
    assert "FlashAttention-2's\n{cite:p}`dao2023flashattention2`" in text


def Path_root():
    from test_chapter_dot_products import ROOT

    return ROOT


@pytest.mark.build
def test_naive_and_stable_errors(built_site):
    v = glued_values(built_site, PAGE)
    # absolute error of either formula: exp (≤ 1 ulp), a 50-term sum (≤ 49·u relative, but
    # p ≤ 1 and random-sign rounding) and one division: a few eps at most (the unit test
    # bounds it by 4)
    assert v["ss_abs_max"] <= 4
    # the naive curve ends within one grid step (ratio 2000^(1/119)) below ln(max)
    step = 2000 ** (1 / 119)
    for bits in ("32", "64"):
        last, ln_max = v[f"ss_naive_last{bits}"], v[f"ss_lnmax{bits}"]
        assert last <= ln_max < last * step
    # "the naive formula has the smaller relative error … the shifted formula's grows with
    # the logits": u·|z_i − m| at |z_i − m| ~ hundreds gives ≫ the naive few eps
    assert v["ss_naive_rel_max"] < 4 < v["ss_rel_max32"] < v["ss_rel_max64"]


@pytest.mark.build
def test_online_equals_two_pass_to_rounding(built_site):
    v = glued_values(built_site, PAGE)
    assert v["ss_block_bound_eps"] == 4 * v["ss_n_keys"] / 2   # c·n·u with c = 4, in eps
    # far below the worst-case bound, largest at block size 1 (a plain left-to-right sum
    # against NumPy's pairwise sum), as the prose says
    assert v["ss_block_worst_eps"] <= v["ss_block_bound_eps"] / 100
    assert v["ss_block_one_eps"] == v["ss_block_worst_eps"] >= v["ss_block_rest_eps"]
    assert v["ss_attn_diff_max"] <= v["ss_block_bound_eps"] / 100
    assert math.isclose(v["ss_shift_diff_eps"], round(v["ss_shift_diff_eps"]))  # whole eps
    assert np.isfinite(v["ss_nll_log"]) and v["ss_nll_log"] == pytest.approx(120, abs=1e-3)
