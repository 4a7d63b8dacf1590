"""Records and formatted text of the GPT-2 scales chapter, on small made-up inputs."""

from __future__ import annotations

import numpy as np
import pytest

from numscale import gpt2_scales_summary as summary


def test_count_list_pairs_channels_with_counts():
    text = summary.count_list([447, 373], [10, 9], 12, unit="blocks")
    assert text == "447 (10 of 12 blocks), 373 (9 of 12 blocks)"
    assert summary.count_list([5], np.array([3]), 25) == "5 (3 of 25)"
    assert summary.count_list([], [], 25, empty="nothing") == "nothing"


def test_count_list_rejects_bad_input():
    with pytest.raises(ValueError, match="channels and counts"):
        summary.count_list([1, 2], [3], 12)
    with pytest.raises((TypeError, ValueError), match="total"):
        summary.count_list([1], [3], 0)


def test_ln_map_summary_counts_independently():
    per_channel = np.array([0, 5, 25, 20, 19, 25, 3])
    rec = summary.ln_map_summary(per_channel, [2, 5], modules=25, most_modules=20)
    assert rec.ln_map_outlier_top == 2  # first of the two 25s
    assert rec.ln_map_n_listed == 2
    assert rec.ln_map_n_most == 3  # 25, 20, 25: at least 20
    assert rec.ln_modules == 25 and rec.ln_width == 7


def test_ln_map_summary_rejects_bad_counts():
    with pytest.raises(TypeError, match="per_channel"):
        summary.ln_map_summary(np.array([0.5, 1.0]), [], modules=3, most_modules=2)
    with pytest.raises(ValueError, match="per_channel"):
        summary.ln_map_summary(np.array([0, 4]), [], modules=3, most_modules=2)
    with pytest.raises((TypeError, ValueError), match="most_modules"):
        summary.ln_map_summary(np.array([0, 1]), [], modules=3, most_modules=0)


def test_format_wpe_norms_shows_the_chosen_positions():
    norms = np.array([3.14159, 2.0, 1.23456, 0.5])
    text = summary.format_wpe_norms(norms, (0, 2), 0.5544, 0.2772)
    assert text == (
        "‖wpe[p]‖ at positions p: {0: 3.142, 2: 1.235}\n"
        "initial ≈ 0.554 (0.02·√d) or 0.277 (OpenAI's 0.01·√d)"
    )
    with pytest.raises(ValueError, match="positions"):
        summary.format_wpe_norms(norms, (4,), 0.5, 0.2)
    with pytest.raises((TypeError, ValueError), match="init_norm"):
        summary.format_wpe_norms(norms, (0,), -1.0, 0.2)


def test_format_smallest_lists_each_row_and_the_recurring():
    smallest = np.array([[4, 1, 2], [1, 4, 0]])
    text = summary.format_smallest(
        ["a", "bb"], smallest, np.array([1, 4]), np.array([2, 2]), min_rows=2
    )
    lines = text.splitlines()
    assert lines[0] == "a         three smallest gains in channels [4, 1, 2]"
    assert lines[1] == "bb        three smallest gains in channels [1, 4, 0]"
    assert lines[2] == "in the three smallest of at least 2 blocks: {1: 2, 4: 2}"
    with pytest.raises(ValueError, match="names"):
        summary.format_smallest(["a"], smallest, [], [], min_rows=1)
    with pytest.raises(TypeError, match="smallest"):
        summary.format_smallest(["a", "b"], smallest * 1.0, [], [], min_rows=1)


def test_format_ranks_reads_columns():
    ranks = np.array([[0, 2, 1], [2, 1, 0]])
    assert (
        summary.format_ranks(ranks, (2,)) == "channel 2: ln_1 gain rank by block [1, 0]"
    )
    with pytest.raises(ValueError, match="channels"):
        summary.format_ranks(ranks, (3,))
