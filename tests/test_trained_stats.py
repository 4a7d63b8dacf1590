"""Tests of numscale.trained_stats on synthetic tensors with known answers and on a tiny
random Llama model (llama.init_weights(TINY_CONFIG, seed))."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import trained_stats as ts
from numscale.models import llama, llama2c

L, B, H, T = 2, 3, 2, 6


def target_mask(lengths: list[int], T: int = T) -> torch.Tensor:
    """encode_stories' mask: False at BOS, True on positions 1..length-1."""
    mask = torch.zeros(len(lengths), T, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, 1:n] = True
    return mask


def causal(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the future with -inf and softmax, as the model does."""
    Tz = z.shape[-1]
    future = torch.ones(Tz, Tz, dtype=torch.bool).triu(1)
    z = z.masked_fill(future, float("-inf"))
    return z, torch.softmax(z, dim=-1)


def random_logits(seed: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(L, B, H, T, T, generator=g, dtype=torch.float64) * scale


# ---------------------------------------------------------------------- attention rows


def test_uniform_attention_has_entropy_ln_t_plus_1():
    z, p = causal(torch.zeros(L, B, H, T, T))
    mask = target_mask([T, T, T])
    rows = ts.row_statistics(z, p, mask)
    t = np.arange(T)
    # float32 softmax and log: a few ulps of ln(T) ≈ 1.8, far below 1e-6
    np.testing.assert_allclose(rows.entropy[0, 0, 0], np.log(t + 1), atol=1e-6)
    np.testing.assert_allclose(rows.first_weight[1, 2, 1], 1 / (t + 1), rtol=1e-6)
    np.testing.assert_array_equal(rows.var_logit, 0.0)
    uniform = ts.uniform_reference(rows)
    np.testing.assert_allclose(
        ts.head_means(rows, "entropy"), uniform["entropy"], rtol=1e-6
    )
    np.testing.assert_allclose(
        ts.head_means(rows, "first_weight"), uniform["first_weight"], rtol=1e-6
    )
    np.testing.assert_allclose(ts.normalized_entropy(rows), 1.0, rtol=1e-6)
    pooled, within = ts.head_logit_std(rows)
    np.testing.assert_array_equal(pooled, 0.0)
    np.testing.assert_array_equal(within, 0.0)


def test_one_hot_first_token_is_a_full_sink():
    z = torch.full((L, B, H, T, T), -1e4)
    z[..., 0] = 0.0  # every query puts all weight on key 0
    z, p = causal(z)
    rows = ts.row_statistics(z, p, target_mask([T, 4, 2]))
    np.testing.assert_array_equal(ts.head_means(rows, "first_weight"), 1.0)
    np.testing.assert_allclose(ts.head_means(rows, "entropy"), 0.0, atol=1e-12)
    np.testing.assert_allclose(ts.normalized_entropy(rows), 0.0, atol=1e-12)
    # exp(-1e4) is exactly 0 in float32: every key but the first is counted as zero
    n_zero = rows.n_zero16[0, 0, 0]
    np.testing.assert_array_equal(n_zero, np.arange(T))


def test_pooled_and_within_row_std_match_direct_computation():
    z, p = causal(random_logits(1))
    mask = target_mask([T, 4, 3])
    rows = ts.row_statistics(z, p, mask)
    pooled, within = ts.head_logit_std(rows)
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
    rows_a = ts.row_statistics(*causal(z), target_mask([T] * B))
    rows_b = ts.row_statistics(*causal(z + shift), target_mask([T] * B))
    within_a, within_b = ts.head_logit_std(rows_a)[1], ts.head_logit_std(rows_b)[1]
    # a shift of up to 50 on logits of size 3: float32 rounding of z − max ≤ 50·2⁻²⁴
    np.testing.assert_allclose(within_a, within_b, rtol=1e-5)
    assert np.all(ts.head_logit_std(rows_b)[0] > 2 * ts.head_logit_std(rows_a)[0])
    np.testing.assert_allclose(
        ts.head_means(rows_a, "entropy"), ts.head_means(rows_b, "entropy"), rtol=1e-5
    )


def test_padding_rows_do_not_count():
    z = random_logits(3)
    mask = target_mask([T, 3, 2])
    rows = ts.row_statistics(*causal(z), mask)
    z_pad = z.clone()
    z_pad[:, 1, :, 3:, :] = 1e3  # garbage in story 1's padding rows
    z_pad[:, 2, :, 2:, :] = -1e3
    rows_pad = ts.row_statistics(*causal(z_pad), mask)
    for a, b in zip(ts.head_logit_std(rows), ts.head_logit_std(rows_pad)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(
        ts.head_means(rows, "entropy"), ts.head_means(rows_pad, "entropy"), rtol=1e-6
    )


def test_by_position_and_fraction_above():
    z, p = causal(torch.zeros(L, B, H, T, T))
    rows = ts.row_statistics(z, p, target_mask([T, 3, 3]))
    mean, count = ts.by_position(rows, "entropy")
    np.testing.assert_array_equal(count, [3, 3, 3, 1, 1, 1])
    np.testing.assert_allclose(mean[0, 0], np.log(np.arange(1, T + 1)), atol=1e-6)
    z2 = torch.zeros(L, B, H, T, T)
    z2[0, :, 1, :, 0] = 20.0  # layer 0, head 1: logit 20 on key 0
    rows2 = ts.row_statistics(*causal(z2), target_mask([T, 3, 3]))
    frac = ts.fraction_rows_above(rows2, 11.0)
    np.testing.assert_array_equal(frac, [[0.0, 1.0], [0.0, 0.0]])
    assert ts.largest_real_logit(rows2) == 20.0


def test_concat_rows_equals_one_batch():
    z, p = causal(random_logits(4))
    mask = target_mask([T, 5, 2])
    whole = ts.row_statistics(z, p, mask)
    parts = [
        ts.row_statistics(z[:, :2], p[:, :2], mask[:2]),
        ts.row_statistics(z[:, 2:], p[:, 2:], mask[2:]),
    ]
    joined = ts.concat_rows(parts)
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
        ts.row_statistics(z.numpy(), p, mask)
    with pytest.raises(ValueError, match="attn_logits"):
        ts.row_statistics(z[0], p[0], mask)
    with pytest.raises(ValueError, match="same shape"):
        ts.row_statistics(z, p[..., :-1], mask)
    with pytest.raises(ValueError, match="mask"):
        ts.row_statistics(z, p, target_mask([T, T]))
    bad = z.clone()
    bad[0, 0, 0, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="attn_logits"):
        ts.row_statistics(bad, p, mask)
    bad = z.clone()
    bad[0, 0, 0, 2, 1] = float("-inf")  # a causal entry masked
    with pytest.raises(ValueError, match="causal"):
        ts.row_statistics(bad, p, mask)
    with pytest.raises(TypeError, match="attn_logits"):
        ts.row_statistics(z.long(), p, mask)


def test_check_mask():
    with pytest.raises(TypeError, match="mask"):
        ts.check_mask(np.ones((2, 3), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        ts.check_mask(torch.ones(2, 3))
    with pytest.raises(ValueError, match="position 0"):
        ts.check_mask(torch.ones(2, 3, dtype=torch.bool))
    gap = target_mask([3, 3])
    gap[0, 1] = False
    with pytest.raises(ValueError, match="prefix"):
        ts.check_mask(gap)
    with pytest.raises(ValueError, match="mask"):
        ts.check_mask(torch.zeros(0, 3, dtype=torch.bool))
    real = ts.real_tokens(target_mask([3, 1]))
    assert real.tolist() == [
        [True, True, True, False, False, False],
        [True, False, False, False, False, False],
    ]


# ---------------------------------------------------------------------- losses


def test_ratio_mean_se_and_paired_difference():
    counts = np.array([10, 20, 30, 40])
    sums = np.array([12.0, 21.0, 36.0, 41.0])
    mean, se = ts.ratio_mean_se(sums, counts)
    assert mean == pytest.approx(110 / 100)
    resid = sums - mean * counts
    assert se == pytest.approx(math.sqrt((resid**2).sum() / 12) / 25)
    # B = A + 0.25 per token on every story: the difference is exactly 0.25, SE 0
    diff, diff_se = ts.paired_difference(sums + 0.25 * counts, sums, counts)
    assert diff == pytest.approx(0.25)
    assert diff_se == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="counts"):
        ts.ratio_mean_se(sums, np.array([1, 0, 1, 1]))
    with pytest.raises(ValueError, match="at least 2"):
        ts.ratio_mean_se(sums[:1], counts[:1])
    with pytest.raises(ValueError, match="sums_b"):
        ts.paired_difference(sums, sums[:3], counts)
    with pytest.raises(ValueError, match="sums_a"):
        ts.paired_difference(sums[:3], sums, counts)
    with pytest.raises(ValueError, match="sums"):
        ts.ratio_mean_se(np.array([np.nan, 1.0]), np.array([1, 1]))


def tiny_model(seed: int = 0) -> tuple[llama.LlamaModel, torch.Tensor, torch.Tensor]:
    weights = llama.init_weights(llama.TINY_CONFIG, seed)
    g = torch.Generator().manual_seed(seed + 100)
    V, Tm = llama.TINY_CONFIG.vocab_size, llama.TINY_CONFIG.seq_len
    tokens = torch.randint(3, V, (5, Tm), generator=g)
    tokens[:, 0] = llama.BOS
    lengths = [Tm, Tm, 20, 9, 2]
    mask = target_mask(lengths, Tm)
    tokens = torch.where(
        mask | (torch.arange(Tm) == 0), tokens, torch.zeros_like(tokens)
    )
    return llama.LlamaModel(weights), tokens, mask


def test_sweep_at_c_1_matches_next_token_loss_and_pairs():
    model, tokens, mask = tiny_model(1)
    cs = ts.log_spaced_multipliers(0.5, 2.0, 3)
    np.testing.assert_allclose(cs, [0.5, 1.0, 2.0], rtol=1e-12)
    sweep = ts.scale_sweep(model, tokens, mask, cs, batch_size=2)
    mean, se = sweep.mean_se()
    expected = llama.next_token_loss(model, tokens, mask)
    # the same float32 forward on batches of 2 versus 5: matmul blocking may differ;
    # 1e-5 relative is hundreds of float32 ulps of a loss near ln 300
    assert mean[1] == pytest.approx(expected[0], rel=1e-5)
    assert se[1] == pytest.approx(expected[1], rel=1e-4)
    diff, diff_se = sweep.paired_to(1.0)
    assert diff[1] == 0.0 and diff_se[1] == 0.0
    np.testing.assert_allclose(diff, mean - mean[1], atol=1e-12)
    with pytest.raises(ValueError, match="reference"):
        sweep.paired_to(3.0)
    with pytest.raises(ValueError, match="multipliers"):
        ts.scale_sweep(model, tokens, mask, [1.0, -1.0])


def test_parabola_vertex_and_sweep_optimum():
    c = ts.log_spaced_multipliers(0.25, 4.0, 9)
    x = np.log(c)
    assert ts.parabola_vertex(x, (x - np.log(0.7)) ** 2 + 1.0) == pytest.approx(
        0.7, rel=1e-9
    )
    with pytest.raises(ValueError, match="minimum"):
        ts.parabola_vertex(x, -(x**2))
    # a synthetic sweep: every story has the same per-token curve, so every bootstrap
    # resample gives the same vertex
    counts = np.array([5, 7, 9, 11])
    curve = 0.3 * (x - np.log(1.4)) ** 2 + 1.2
    sweep = ts.ScaleSweep(c, curve[:, None] * counts[None, :], counts)
    vertex, boots = ts.sweep_optimum(sweep, half_window=2, n_boot=20, seed=0)
    assert vertex == pytest.approx(1.4, rel=1e-9)
    np.testing.assert_allclose(boots, 1.4, rtol=1e-9)
    # a flat curve has no parabola minimum: the grid minimum is returned
    flat = ts.ScaleSweep(c, np.ones((c.size, 4)) * counts[None, :], counts)
    assert ts.sweep_optimum(flat, n_boot=3)[0] == pytest.approx(c[0])
    # a minimum at the grid's edge: the window is cut, the edge is returned
    edge = ts.ScaleSweep(c, x[:, None] * counts[None, :] + 10, counts)
    assert ts.sweep_optimum(edge, n_boot=3)[0] == pytest.approx(c[0])


def test_log_spaced_multipliers_bad_input():
    with pytest.raises(ValueError, match="high"):
        ts.log_spaced_multipliers(2.0, 1.0, 5)
    with pytest.raises(ValueError, match="low"):
        ts.log_spaced_multipliers(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="count"):
        ts.log_spaced_multipliers(0.5, 1.0, 1)


# ---------------------------------------------------------------------- collecting


def test_collect_matches_one_full_record():
    model, tokens, mask = tiny_model(2)
    collected = ts.collect(model, tokens, mask, batch_size=2)
    with torch.inference_mode():
        record = model(tokens, record=True)
    whole = ts.row_statistics(record.attn_logits, record.attn_weights, mask)
    real = collected.real
    rows_real = np.broadcast_to(real[None, :, None, :], whole.entropy.shape)
    # batches are cut to their longest story; real rows see the same keys, so only
    # float32 rounding of differently shaped matmuls can differ (logits ~0.01 here)
    np.testing.assert_allclose(
        collected.rows.entropy[rows_real],
        whole.entropy[rows_real],
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        collected.rows.var_logit[rows_real],
        whole.var_logit[rows_real],
        rtol=1e-4,
        atol=1e-9,
    )
    res = np.broadcast_to(real[None, :, :, None], collected.residual.shape)
    np.testing.assert_allclose(
        collected.residual[res], record.residual.numpy()[res], rtol=1e-5, atol=1e-7
    )
    np.testing.assert_array_equal(collected.target, mask.numpy())
    assert collected.residual.shape == (3, 5, llama.TINY_CONFIG.seq_len, 16)


def test_initialization_logit_scale_matches_the_derivation():
    """At init q, k have entries of variance d·σ_w² (RMSNorm output has unit RMS), so
    the scaled logit has std d·σ_w² whatever d_k: 16 · 0.02² = 0.0064 for TINY_CONFIG."""
    model, tokens, mask = tiny_model(3)
    rows = ts.collect(model, tokens, mask, batch_size=5).rows
    pooled = ts.head_logit_std(rows)[0]
    predicted = llama.TINY_CONFIG.dim * 0.02**2
    # one weight draw per head: the per-head values scatter around the prediction; their
    # mean over the 8 heads must agree within 4 standard errors of that mean
    spread = pooled.std(ddof=1) / math.sqrt(pooled.size)
    assert abs(pooled.mean() - predicted) < 4 * spread + 1e-12
    assert 0.5 * predicted < pooled.mean() < 1.5 * predicted


# ---------------------------------------------------------------------- residual stream


def residual_with(
    values: np.ndarray, lengths: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    real = ts.real_tokens(target_mask(lengths, values.shape[2])).numpy()
    return values, real


def test_residual_rms_and_positions():
    g = np.random.default_rng(0)
    x = g.standard_normal((3, 2, 5, 4))
    x[:, :, 0] *= 10  # the BOS position is larger
    x[:, 1, 3:] = 1e6  # padding: must be ignored
    x, real = residual_with(x, [5, 3])
    chosen = x[:, real]
    np.testing.assert_allclose(
        ts.residual_rms(x, real), np.sqrt((chosen**2).mean(axis=(1, 2)))
    )
    first = ts.residual_rms(x, real, positions="first")
    np.testing.assert_allclose(first, np.sqrt((x[:, :, 0] ** 2).mean(axis=(1, 2))))
    assert np.all(first > ts.residual_rms(x, real, positions="rest"))
    with pytest.raises(ValueError, match="positions"):
        ts.residual_rms(x, real, positions="middle")
    with pytest.raises(ValueError, match="residual"):
        ts.residual_rms(x[0], real)
    with pytest.raises(ValueError, match="real"):
        ts.residual_rms(x, real[:1])


def test_block_updates_decomposition_is_exact():
    g = np.random.default_rng(1)
    x = np.cumsum(g.standard_normal((4, 3, 6, 8)), axis=0)
    x, real = residual_with(x, [6, 6, 4])
    updates = ts.block_updates(x, real)
    # growth = ‖Δ‖² + 2⟨x, Δ⟩ is an identity: float64 rounding only
    np.testing.assert_allclose(
        updates.growth, updates.update_sq + updates.cross, atol=1e-12
    )
    np.testing.assert_allclose(updates.update_rms, np.sqrt(updates.update_sq))
    assert np.all(np.abs(updates.cosine) <= 1)
    # an update parallel to the stream has cosine 1
    y = np.stack([x[0], 3 * x[0]])
    np.testing.assert_allclose(ts.block_updates(y, real).cosine, 1.0)


def test_outlier_stats_find_a_planted_massive_activation():
    g = np.random.default_rng(2)
    x = g.standard_normal((2, 3, 7, 16))
    x[1, 2, 4, 11] = -5000.0  # story 2, position 4, channel 11
    x, real = residual_with(x, [7, 7, 7])
    stats = ts.outlier_stats(x, real)
    assert stats.max_abs[1] == 5000.0
    assert stats.where_position[1] == 4 and stats.where_channel[1] == 11
    assert stats.global_ratio[1] == pytest.approx(
        5000.0 / np.median(np.abs(x[1, real]))
    )
    token = np.abs(x[1, 2, 4])
    assert stats.token_ratio[1] == pytest.approx(token.max() / np.median(token))
    assert stats.channel_rms.shape == (2, 16)
    assert stats.channel_rms[1].argmax() == 11


# ---------------------------------------------------------------------- output logits


def test_output_logit_stats():
    V = 10
    z = np.zeros((2, 4, V))
    z[1, :, 3] = 50.0  # story 1: certain of token 3
    target = target_mask([4, 3], 4).numpy()
    stats = ts.output_logit_stats(z, target)
    # predicting positions: story 0 at 0, 1, 2; story 1 at 0, 1
    assert stats.entropy.shape == (5,)
    np.testing.assert_allclose(stats.entropy[:3], math.log(V), rtol=1e-12)
    # p(other) = e^-50: the entropy is 9·e^-50·(50 + ...) ≈ 1e-19
    np.testing.assert_allclose(stats.entropy[3:], 0.0, atol=1e-15)
    np.testing.assert_allclose(stats.top_probability[:3], 1 / V)
    assert stats.max_abs == 50.0
    np.testing.assert_allclose(stats.top_gap[3:], 50.0)
    with pytest.raises(ValueError, match="logits"):
        ts.output_logit_stats(z[0], target)
    with pytest.raises(ValueError, match="target"):
        ts.output_logit_stats(z, target[:1])


# ---------------------------------------------------------------------- formats


def test_format_margin():
    fmax = float(torch.finfo(torch.float16).max)
    tiny = float(torch.finfo(torch.float16).smallest_normal)
    values = np.array([fmax / 4, -1.0, tiny / 2, 0.0, -np.inf])
    margin = ts.format_margin("x", values, torch.float16)
    assert margin.fraction_of_max == pytest.approx(0.25)
    assert margin.log2_headroom == pytest.approx(2.0)
    assert margin.fraction_subnormal == pytest.approx(1 / 3)  # of the 3 nonzero values
    assert margin.smallest_nonzero == pytest.approx(tiny / 2)
    bf = ts.format_margin("x", values, torch.bfloat16)
    assert bf.fraction_subnormal == 0.0
    with pytest.raises(TypeError, match="dtype"):
        ts.format_margin("x", values, np.float16)
    with pytest.raises(ValueError, match="values"):
        ts.format_margin("x", np.array([np.nan, 1.0]), torch.float16)
    assert ts.FP16_ROUNDS_TO_ZERO == pytest.approx(2.0**-25)
    ends = ts.format_margin(
        "q·k", np.array([-700.0, 25.0]), torch.float16, extremes_only=True
    )
    assert ends.max_abs == 700.0 and math.isnan(ends.fraction_subnormal)
    table = ts.margin_table([margin, ends])
    assert "not measured" in table and table.count("\n") == 3


def test_story_nll_from_recorded_logits_matches_the_model():
    model, tokens, mask = tiny_model(5)
    collected = ts.collect(model, tokens, mask, batch_size=5, attention=False)
    sums, counts = ts.story_nll(collected.logits, collected.tokens, collected.target)
    expected_sums, expected_counts = llama.per_story_nll(model, tokens, mask)
    np.testing.assert_array_equal(counts, expected_counts)
    # float64 log-softmax here, float32 there, on sums of up to 31 losses ≈ ln 300:
    # float32 rounding ≈ 31 · 6 · 6e-8 ≈ 1e-5 per story; 1e-4 leaves room
    np.testing.assert_allclose(sums, expected_sums, atol=1e-4)
    with pytest.raises(ValueError, match="tokens"):
        ts.story_nll(collected.logits, collected.tokens[:, :-1], collected.target)


def test_story_losses_in_float32_match_the_loss():
    model, tokens, mask = tiny_model(4)
    weights = llama.init_weights(llama.TINY_CONFIG, 4)
    sums, counts = ts.story_losses(weights, tokens, mask, torch.float32, batch_size=3)
    mean, _ = ts.ratio_mean_se(sums, counts)
    # same float32 arithmetic, different batch shapes: 1e-5 relative
    assert mean == pytest.approx(
        llama.next_token_loss(model, tokens, mask)[0], rel=1e-5
    )
    sums16, _ = ts.story_losses(weights, tokens, mask, torch.bfloat16, batch_size=3)
    diff, se = ts.paired_difference(sums16, sums, counts)
    # bfloat16 keeps 8 bits: at init the logits are ~0.02 and the loss ≈ ln 300; the
    # change is bounded by a few eps_bf16 (7.8e-3) of relative error in the logits
    assert abs(diff) < 0.05


def test_stories260k_config_matches_the_file():
    from conftest import REFERENCE

    folder = REFERENCE / "tinystories"
    if not (folder / "stories260K.bin").is_file():
        pytest.skip("reference tinystories folder not present")
    weights = llama2c.read_checkpoint(folder / "stories260K.bin")
    assert weights.config == llama.STORIES260K_CONFIG


def test_attention_range_and_underflow_counts():
    z = torch.zeros(L, B, H, T, T)
    z[..., 0] = -30.0  # key 0 gets weight ~e^-30 ≈ 1e-13
    z[1, 0, 1, 3, 2] = 7.0
    rows = ts.row_statistics(*causal(z), target_mask([T, T, T]))
    low, high = ts.attention_logit_range(rows)
    assert (low, high) == (-30.0, 7.0)
    under = ts.attention_weight_underflow(rows)
    # rows t >= 1 have t+1 keys, one of which (key 0) is ~1e-13 < 2^-25: both shares are
    # (number of rows t >= 1) / (number of causal weights of those rows) up to the one
    # row where key 2 takes most weight (its other keys ~e^-7 ≈ 9e-4, above both limits)
    rows_t = np.arange(1, T)
    expected = len(rows_t) / (rows_t + 1).sum()
    assert under["to_zero"] == pytest.approx(expected, rel=1e-12)
    assert under["below_normal"] == pytest.approx(expected, rel=1e-12)


def test_random_token_batch_and_weight_arrays():
    config = llama.TINY_CONFIG
    tokens, mask = ts.random_token_batch(config, 3, 10, seed=0)
    again, _ = ts.random_token_batch(config, 3, 10, seed=0)
    assert torch.equal(tokens, again)  # seeded
    assert tokens.dtype == torch.long and bool((tokens[:, 0] == llama.BOS).all())
    assert int(tokens[:, 1:].min()) >= 3 and int(tokens.max()) < config.vocab_size
    ts.check_mask(mask)
    with pytest.raises(ValueError, match="seq_len"):
        ts.random_token_batch(config, 1, config.seq_len + 1, seed=0)
    arrays = ts.weight_arrays(llama.init_weights(config, 0))
    assert "freq_cis_real" not in arrays and "wq" in arrays


def test_plot_head_grid_draws_every_value():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    values = np.arange(6, dtype=float).reshape(2, 3)
    ts.plot_head_grid(ax, values, fmt="{:.0f}")
    assert sorted(t.get_text() for t in ax.texts) == ["0", "1", "2", "3", "4", "5"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]
    plt.close(fig)
    with pytest.raises(ValueError, match="values"):
        ts.plot_head_grid(ax, values[0])


def test_collect_and_sweep_bad_input():
    model, tokens, mask = tiny_model(6)
    with pytest.raises(TypeError, match="tokens"):
        ts.collect(model, tokens.float(), mask)
    with pytest.raises(ValueError, match="tokens"):
        ts.collect(model, tokens[:, :-1], mask)
    with pytest.raises(TypeError, match="mask"):
        ts.scale_sweep(model, tokens, mask.long(), [1.0])
    with pytest.raises(ValueError, match="batch_size"):
        ts.scale_sweep(model, tokens, mask, [1.0], batch_size=0)
