"""Tests of numscale.activation_stats on synthetic residual streams and logits."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from llama_fixtures import target_mask
from numscale import activation_stats, attention_rows
from numscale.models import next_token


def residual_with(
    values: np.ndarray, lengths: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    real = next_token.real_tokens(target_mask(lengths, values.shape[2])).numpy()
    return values, real


def test_residual_rms_and_positions():
    g = np.random.default_rng(0)
    x = g.standard_normal((3, 2, 5, 4))
    x[:, :, 0] *= 10  # the BOS position is larger
    x[:, 1, 3:] = 1e6  # padding: must be ignored
    x, real = residual_with(x, [5, 3])
    chosen = x[:, real]
    np.testing.assert_allclose(
        activation_stats.residual_rms(x, real), np.sqrt((chosen**2).mean(axis=(1, 2)))
    )
    first = activation_stats.residual_rms(x, real, positions="first")
    np.testing.assert_allclose(first, np.sqrt((x[:, :, 0] ** 2).mean(axis=(1, 2))))
    assert np.all(first > activation_stats.residual_rms(x, real, positions="rest"))
    with pytest.raises(ValueError, match="positions"):
        activation_stats.residual_rms(x, real, positions="middle")
    with pytest.raises(ValueError, match="residual"):
        activation_stats.residual_rms(x[0], real)
    with pytest.raises(ValueError, match="real"):
        activation_stats.residual_rms(x, real[:1])


def test_block_updates_decomposition_is_exact():
    g = np.random.default_rng(1)
    x = np.cumsum(g.standard_normal((4, 3, 6, 8)), axis=0)
    x, real = residual_with(x, [6, 6, 4])
    updates = activation_stats.block_updates(x, real)
    # growth = ‖Δ‖² + 2⟨x, Δ⟩ is an identity: float64 rounding only
    np.testing.assert_allclose(
        updates.growth, updates.update_sq + updates.cross, atol=1e-12
    )
    np.testing.assert_allclose(updates.update_rms, np.sqrt(updates.update_sq))
    assert np.all(np.abs(updates.cosine) <= 1)
    # an update parallel to the stream has cosine 1
    y = np.stack([x[0], 3 * x[0]])
    np.testing.assert_allclose(activation_stats.block_updates(y, real).cosine, 1.0)


def test_outlier_stats_find_a_planted_massive_activation():
    g = np.random.default_rng(2)
    x = g.standard_normal((2, 3, 7, 16))
    x[1, 2, 4, 11] = -5000.0  # story 2, position 4, channel 11
    x, real = residual_with(x, [7, 7, 7])
    stats = activation_stats.outlier_stats(x, real)
    assert stats.max_abs[1] == 5000.0
    assert stats.where_position[1] == 4 and stats.where_channel[1] == 11
    assert stats.global_ratio[1] == pytest.approx(
        5000.0 / np.median(np.abs(x[1, real]))
    )
    token = np.abs(x[1, 2, 4])
    assert stats.token_ratio[1] == pytest.approx(token.max() / np.median(token))
    assert stats.channel_rms.shape == (2, 16)
    assert stats.channel_rms[1].argmax() == 11


def test_output_logit_stats():
    V = 10
    z = np.zeros((2, 4, V))
    z[1, :, 3] = 50.0  # story 1: certain of token 3
    target = target_mask([4, 3], 4).numpy()
    stats = activation_stats.output_logit_stats(z, target)
    # predicting positions: story 0 at 0, 1, 2; story 1 at 0, 1
    assert stats.entropy.shape == (5,)
    np.testing.assert_allclose(stats.entropy[:3], math.log(V), rtol=1e-12)
    # p(other) = e^-50: the entropy is 9·e^-50·(50 + ...) ≈ 1e-19
    np.testing.assert_allclose(stats.entropy[3:], 0.0, atol=1e-15)
    np.testing.assert_allclose(stats.top_probability[:3], 1 / V)
    assert stats.max_abs == 50.0
    np.testing.assert_allclose(stats.top_gap[3:], 50.0)
    with pytest.raises(ValueError, match="logits"):
        activation_stats.output_logit_stats(z[0], target)
    with pytest.raises(ValueError, match="target"):
        activation_stats.output_logit_stats(z, target[:1])


def test_format_margin():
    fmax = float(torch.finfo(torch.float16).max)
    tiny = float(torch.finfo(torch.float16).smallest_normal)
    values = np.array([fmax / 4, -1.0, tiny / 2, 0.0, -np.inf])
    margin = activation_stats.format_margin("x", values, torch.float16)
    assert margin.fraction_of_max == pytest.approx(0.25)
    assert margin.log2_headroom == pytest.approx(2.0)
    assert margin.fraction_subnormal == pytest.approx(1 / 3)  # of the 3 nonzero values
    assert margin.smallest_nonzero == pytest.approx(tiny / 2)
    bf = activation_stats.format_margin("x", values, torch.bfloat16)
    assert bf.fraction_subnormal == 0.0
    with pytest.raises(TypeError, match="dtype"):
        activation_stats.format_margin("x", values, np.float16)
    with pytest.raises(ValueError, match="values"):
        activation_stats.format_margin("x", np.array([np.nan, 1.0]), torch.float16)
    assert attention_rows.FP16_ROUNDS_TO_ZERO == pytest.approx(2.0**-25)
    ends = activation_stats.format_margin(
        "q·k", np.array([-700.0, 25.0]), torch.float16, extremes_only=True
    )
    assert ends.max_abs == 700.0 and math.isnan(ends.fraction_subnormal)
    table = activation_stats.margin_table([margin, ends])
    assert "not measured" in table and table.count("\n") == 3
