"""Tests of numscale.attention_rows on synthetic attention tensors with known
answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llama_fixtures import B, H, L, T, causal, random_logits, target_mask
from numscale import attention_rows, plotting


def test_uniform_attention_has_entropy_ln_t_plus_1():
    z, p = causal(torch.zeros(L, B, H, T, T))
    mask = target_mask([T, T, T])
    rows = attention_rows.row_statistics(z, p, mask)
    t = np.arange(T)
    # float32 softmax and log: a few ulps of ln(T) ≈ 1.8, far below 1e-6
    np.testing.assert_allclose(rows.entropy[0, 0, 0], np.log(t + 1), atol=1e-6)
    np.testing.assert_allclose(rows.first_weight[1, 2, 1], 1 / (t + 1), rtol=1e-6)
    np.testing.assert_array_equal(rows.var_logit, 0.0)
    uniform = attention_rows.uniform_reference(rows)
    np.testing.assert_allclose(
        attention_rows.head_means(rows, "entropy"), uniform["entropy"], rtol=1e-6
    )
    np.testing.assert_allclose(
        attention_rows.head_means(rows, "first_weight"),
        uniform["first_weight"],
        rtol=1e-6,
    )
    np.testing.assert_allclose(attention_rows.normalized_entropy(rows), 1.0, rtol=1e-6)
    pooled, within = attention_rows.head_logit_std(rows)
    np.testing.assert_array_equal(pooled, 0.0)
    np.testing.assert_array_equal(within, 0.0)


def test_one_hot_first_token_is_a_full_sink():
    z = torch.full((L, B, H, T, T), -1e4)
    z[..., 0] = 0.0  # every query puts all weight on key 0
    z, p = causal(z)
    rows = attention_rows.row_statistics(z, p, target_mask([T, 4, 2]))
    np.testing.assert_array_equal(attention_rows.head_means(rows, "first_weight"), 1.0)
    np.testing.assert_allclose(
        attention_rows.head_means(rows, "entropy"), 0.0, atol=1e-12
    )
    np.testing.assert_allclose(attention_rows.normalized_entropy(rows), 0.0, atol=1e-12)
    # exp(-1e4) is exactly 0 in float32: every key but the first is counted as zero
    n_zero = rows.n_zero16[0, 0, 0]
    np.testing.assert_array_equal(n_zero, np.arange(T))


def test_pooled_and_within_row_std_match_direct_computation():
    z, p = causal(random_logits(1))
    mask = target_mask([T, 4, 3])
    rows = attention_rows.row_statistics(z, p, mask)
    pooled, within = attention_rows.head_logit_std(rows)
    lengths = [T, 4, 3]
    for layer in range(L):
        for head in range(H):
            entries, row_vars, weights = [], [], []
            for b, n in enumerate(lengths):
                for t in range(1, n):  # real rows with at least two keys
                    row = z[layer, b, head, t, : t + 1].numpy()
                    entries.append(row)
                    row_vars.append(row.var())
                    weights.append(t + 1)
            all_entries = np.concatenate(entries)
            # float32 one-pass variance of logits of size ~3 (shifted by the row max):
            # relative rounding ~1e-6; 1e-5 leaves room
            assert pooled[layer, head] == pytest.approx(all_entries.std(), rel=1e-5)
            direct_within = math.sqrt(np.average(row_vars, weights=weights))
            assert within[layer, head] == pytest.approx(direct_within, rel=1e-5)
            assert within[layer, head] <= pooled[layer, head] * (1 + 1e-6)


def test_within_row_std_ignores_a_constant_per_row():
    z = random_logits(2)
    shift = (
        torch.arange(T, dtype=torch.float64)[:, None] * 10.0
    )  # row t shifted by 10 t
    rows_a = attention_rows.row_statistics(*causal(z), target_mask([T] * B))
    rows_b = attention_rows.row_statistics(*causal(z + shift), target_mask([T] * B))
    within_a, within_b = (
        attention_rows.head_logit_std(rows_a)[1],
        attention_rows.head_logit_std(rows_b)[1],
    )
    # a shift of up to 50 on logits of size 3: float32 rounding of z − max ≤ 50·2⁻²⁴
    np.testing.assert_allclose(within_a, within_b, rtol=1e-5)
    assert np.all(
        attention_rows.head_logit_std(rows_b)[0]
        > 2 * attention_rows.head_logit_std(rows_a)[0]
    )
    np.testing.assert_allclose(
        attention_rows.head_means(rows_a, "entropy"),
        attention_rows.head_means(rows_b, "entropy"),
        rtol=1e-5,
    )


def test_padding_rows_do_not_count():
    z = random_logits(3)
    mask = target_mask([T, 3, 2])
    rows = attention_rows.row_statistics(*causal(z), mask)
    z_pad = z.clone()
    z_pad[:, 1, :, 3:, :] = 1e3  # garbage in story 1's padding rows
    z_pad[:, 2, :, 2:, :] = -1e3
    rows_pad = attention_rows.row_statistics(*causal(z_pad), mask)
    for a, b in zip(
        attention_rows.head_logit_std(rows), attention_rows.head_logit_std(rows_pad)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(
        attention_rows.head_means(rows, "entropy"),
        attention_rows.head_means(rows_pad, "entropy"),
        rtol=1e-6,
    )


def test_by_position_and_fraction_above():
    z, p = causal(torch.zeros(L, B, H, T, T))
    rows = attention_rows.row_statistics(z, p, target_mask([T, 3, 3]))
    mean, count = attention_rows.by_position(rows, "entropy")
    np.testing.assert_array_equal(count, [3, 3, 3, 1, 1, 1])
    np.testing.assert_allclose(mean[0, 0], np.log(np.arange(1, T + 1)), atol=1e-6)
    z2 = torch.zeros(L, B, H, T, T)
    z2[0, :, 1, :, 0] = 20.0  # layer 0, head 1: logit 20 on key 0
    rows2 = attention_rows.row_statistics(*causal(z2), target_mask([T, 3, 3]))
    frac = attention_rows.fraction_rows_above(rows2, 11.0)
    np.testing.assert_array_equal(frac, [[0.0, 1.0], [0.0, 0.0]])
    assert attention_rows.largest_real_logit(rows2) == 20.0


def test_concat_rows_equals_one_batch():
    z, p = causal(random_logits(4))
    mask = target_mask([T, 5, 2])
    whole = attention_rows.row_statistics(z, p, mask)
    parts = [
        attention_rows.row_statistics(z[:, :2], p[:, :2], mask[:2]),
        attention_rows.row_statistics(z[:, 2:], p[:, 2:], mask[2:]),
    ]
    joined = attention_rows.concat_rows(parts)
    for field in (
        "mean_logit",
        "var_logit",
        "entropy",
        "first_weight",
        "n_zero16",
        "real",
    ):
        np.testing.assert_array_equal(getattr(joined, field), getattr(whole, field))


def test_row_statistics_bad_input():
    z, p = causal(random_logits(5))
    mask = target_mask([T, T, T])
    with pytest.raises(TypeError, match="attn_logits"):
        attention_rows.row_statistics(z.numpy(), p, mask)
    with pytest.raises(ValueError, match="attn_logits"):
        attention_rows.row_statistics(z[0], p[0], mask)
    with pytest.raises(ValueError, match="same shape"):
        attention_rows.row_statistics(z, p[..., :-1], mask)
    with pytest.raises(ValueError, match="mask"):
        attention_rows.row_statistics(z, p, target_mask([T, T]))
    bad = z.clone()
    bad[0, 0, 0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="attn_logits"):
        attention_rows.row_statistics(bad, p, mask)
    bad = z.clone()
    bad[0, 0, 0, 2, 1] = float("-inf")  # a causal entry masked
    with pytest.raises(ValueError, match="causal"):
        attention_rows.row_statistics(bad, p, mask)
    with pytest.raises(TypeError, match="attn_logits"):
        attention_rows.row_statistics(z.long(), p, mask)


def test_attention_range_and_underflow_counts():
    z = torch.zeros(L, B, H, T, T)
    z[..., 0] = -30.0  # key 0 gets weight ~e^-30 ≈ 1e-13
    z[1, 0, 1, 3, 2] = 7.0
    rows = attention_rows.row_statistics(*causal(z), target_mask([T, T, T]))
    low, high = attention_rows.attention_logit_range(rows)
    assert (low, high) == (-30.0, 7.0)
    under = attention_rows.attention_weight_underflow(rows)
    # rows t >= 1 have t+1 keys, one of which (key 0) is ~1e-13 < 2^-25: both shares are
    # (number of rows t >= 1) / (number of causal weights of those rows) up to the one
    # row where key 2 takes most weight (its other keys ~e^-7 ≈ 9e-4, above both limits)
    rows_t = np.arange(1, T)
    expected = len(rows_t) / (rows_t + 1).sum()
    assert under["to_zero"] == pytest.approx(expected, rel=1e-12)
    assert under["below_normal"] == pytest.approx(expected, rel=1e-12)


def test_plot_head_grid_draws_every_value():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    values = np.arange(6, dtype=float).reshape(2, 3)
    plotting.plot_head_grid(ax, values, fmt="{:.0f}")
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "2", "3", "4", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    plt.close(fig)
    with pytest.raises(ValueError, match="values"):
        plotting.plot_head_grid(ax, values[0])
