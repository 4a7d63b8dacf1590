"""Tests of numscale.llama_runs on a tiny random Llama model
(llama.init_weights(TINY_CONFIG, seed)) and on synthetic sweeps."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llama_fixtures import check_refuses_bad_tokens, tiny_model
from numscale import attention_rows, llama_runs, stats
from numscale.models import llama, llama2c, llama_tokenizer, llama_weights, next_token


def test_sweep_at_c_1_matches_next_token_loss_and_pairs():
    model, tokens, mask = tiny_model(1)
    cs = llama_runs.log_spaced_multipliers(0.5, 2.0, 3)
    np.testing.assert_allclose(cs, [0.5, 1.0, 2.0], rtol=1e-12)
    sweep = llama_runs.scale_sweep(model, tokens, mask, cs, batch_size=2)
    mean, se = sweep.mean_se()
    expected = next_token.next_token_loss(model, tokens, mask)
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
        llama_runs.scale_sweep(model, tokens, mask, [1.0, -1.0])


def test_parabola_vertex_and_sweep_optimum():
    c = llama_runs.log_spaced_multipliers(0.25, 4.0, 9)
    x = np.log(c)
    assert stats.parabola_vertex(x, (x - np.log(0.7)) ** 2 + 1.0) == pytest.approx(
        0.7, rel=1e-9
    )
    with pytest.raises(ValueError, match="minimum"):
        stats.parabola_vertex(x, -(x**2))
    # a synthetic sweep: every story has the same per-token curve, so every bootstrap
    # resample gives the same vertex
    counts = np.array([5, 7, 9, 11])
    curve = 0.3 * (x - np.log(1.4)) ** 2 + 1.2
    sweep = llama_runs.AttentionScaleSweep(c, curve[:, None] * counts[None, :], counts)
    vertex, boots = llama_runs.sweep_optimum(sweep, half_window=2, n_boot=20, seed=0)
    assert vertex == pytest.approx(1.4, rel=1e-9)
    np.testing.assert_allclose(boots, 1.4, rtol=1e-9)
    # a flat curve has no parabola minimum: the grid minimum is returned
    flat = llama_runs.AttentionScaleSweep(
        c, np.ones((c.size, 4)) * counts[None, :], counts
    )
    assert llama_runs.sweep_optimum(flat, n_boot=3)[0] == pytest.approx(c[0])
    # a minimum at the grid's edge: the window is cut, the edge is returned
    edge = llama_runs.AttentionScaleSweep(c, x[:, None] * counts[None, :] + 10, counts)
    assert llama_runs.sweep_optimum(edge, n_boot=3)[0] == pytest.approx(c[0])


def test_log_spaced_multipliers_bad_input():
    with pytest.raises(ValueError, match="high"):
        llama_runs.log_spaced_multipliers(2.0, 1.0, 5)
    with pytest.raises(ValueError, match="low"):
        llama_runs.log_spaced_multipliers(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="count"):
        llama_runs.log_spaced_multipliers(0.5, 1.0, 1)


def test_collect_matches_one_full_record():
    model, tokens, mask = tiny_model(2)
    collected = llama_runs.collect(model, tokens, mask, batch_size=2)
    with torch.inference_mode():
        record = model(tokens, record=True)
    whole = attention_rows.row_statistics(record.attn_logits, record.attn_weights, mask)
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
    assert collected.residual.shape == (3, 5, llama_weights.TINY_CONFIG.seq_len, 16)


def test_initialization_logit_scale_matches_the_derivation():
    """At init q, k have entries of variance d·σ_w² (RMSNorm output has unit RMS), so
    the scaled logit has std d·σ_w² whatever d_k: 16 · 0.02² = 0.0064 for
    TINY_CONFIG."""
    model, tokens, mask = tiny_model(3)
    rows = llama_runs.collect(model, tokens, mask, batch_size=5).rows
    pooled = attention_rows.head_logit_std(rows)[0]
    predicted = llama_weights.TINY_CONFIG.dim * 0.02**2
    # one weight draw per head: the per-head values scatter around the prediction; their
    # mean over the 8 heads must agree within 4 standard errors of that mean
    spread = pooled.std(ddof=1) / math.sqrt(pooled.size)
    assert abs(pooled.mean() - predicted) < 4 * spread + 1e-12
    assert 0.5 * predicted < pooled.mean() < 1.5 * predicted


def test_random_token_batch_and_weight_arrays():
    config = llama_weights.TINY_CONFIG
    tokens, mask = llama_runs.random_token_batch(config, 3, 10, seed=0)
    again, _ = llama_runs.random_token_batch(config, 3, 10, seed=0)
    assert torch.equal(tokens, again)  # seeded
    assert tokens.dtype == torch.long and bool(
        (tokens[:, 0] == llama_tokenizer.BOS).all()
    )
    assert int(tokens[:, 1:].min()) >= 3 and int(tokens.max()) < config.vocab_size
    next_token.check_mask(mask)
    with pytest.raises(ValueError, match="seq_len"):
        llama_runs.random_token_batch(config, 1, config.seq_len + 1, seed=0)
    arrays = llama_runs.weight_arrays(llama.init_weights(config, 0))
    assert "freq_cis_real" not in arrays and "wq" in arrays


def test_collect_and_sweep_bad_input():
    model, tokens, mask = tiny_model(6)
    check_refuses_bad_tokens(llama_runs.collect, model, tokens, mask)
    with pytest.raises(TypeError, match="mask"):
        llama_runs.scale_sweep(model, tokens, mask.long(), [1.0])
    with pytest.raises(ValueError, match="batch_size"):
        llama_runs.scale_sweep(model, tokens, mask, [1.0], batch_size=0)


def test_stories260k_config_matches_the_file():
    from conftest import REFERENCE

    folder = REFERENCE / "tinystories"
    if not (folder / "stories260K.bin").is_file():
        pytest.skip("reference tinystories folder not present")
    weights = llama2c.read_checkpoint(folder / "stories260K.bin")
    assert weights.config == llama_weights.STORIES260K_CONFIG
