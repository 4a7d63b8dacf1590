"""Tests of numscale.quant: rounding bounds, the error law, the schemes' blocks, the
SmoothQuant identity, fp8 scaling, and the quantized tiny Llama model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import quant, stats
from numscale.models import llama, llama_weights, next_token


def gaussian(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize(
    "scheme, group", [("tensor", 0), ("channel", 0), ("group", 32), ("group", 7)]
)
def test_rounding_error_at_most_half_a_step(scheme, group):
    w = gaussian((40, 70))
    w_hat = quant.absmax_quantize(w, scheme, group or 128)
    if scheme == "tensor":
        step = np.full_like(w, np.abs(w).max() / 127)
    elif scheme == "channel":
        step = np.repeat(np.abs(w).max(1, keepdims=True) / 127, w.shape[1], 1)
    else:
        step = np.concatenate(
            [
                np.repeat(
                    np.abs(w[:, i : i + group]).max(1, keepdims=True) / 127,
                    w[:, i : i + group].shape[1],
                    1,
                )
                for i in range(0, w.shape[1], group)
            ],
            1,
        )
    # round-to-nearest errs by at most half a step (plus float64 rounding)
    assert np.all(np.abs(w_hat - w) <= step / 2 * (1 + 1e-12))
    # on the grid: integer multiples of the step, |k| ≤ 127
    k = w_hat / step
    np.testing.assert_allclose(k, np.round(k), atol=1e-9)
    assert np.abs(np.round(k)).max() <= 127


def test_group_wider_than_row_equals_channel():
    w = gaussian((10, 64))
    np.testing.assert_array_equal(
        quant.absmax_quantize(w, "group", 128), quant.absmax_quantize(w, "channel")
    )


def test_relative_error_law():
    # eq-quant-rel-error: uniform rounding error, variance Δ²/12; for 200,000 Gaussian
    # entries the measured ratio is within 1% (the law holds up to the rounding error's
    # departure from uniform, far below 1% when entries span ~100 steps)
    w = gaussian((400, 500), seed=1)
    err = quant.quantization_error(w, quant.absmax_quantize(w))["rel_fro"]
    predicted = np.abs(w).max() / (math.sqrt(12) * 127 * np.sqrt((w**2).mean()))
    assert err == pytest.approx(predicted, rel=0.01)


def test_one_outlier_ruins_the_per_tensor_scale_not_the_per_channel_one():
    w = gaussian((64, 64), seed=2)
    spiked = w.copy()
    spiked[3, 5] = 100.0
    rest = np.ones_like(w, dtype=bool)
    rest[3] = False

    def err(x, scheme):
        x_hat = quant.absmax_quantize(x, scheme)
        return np.linalg.norm((x_hat - x)[rest]) / np.linalg.norm(x[rest])

    # the outlier is ~25× the max of the other entries: the per-tensor error of the
    # other rows grows by that factor, the per-channel error of the other rows not
    # at all
    assert err(spiked, "tensor") > 10 * err(w, "tensor")
    assert err(spiked, "channel") == pytest.approx(err(w, "channel"), rel=1e-12)


def test_quantize_keeping_rows_leaves_kept_rows_exact():
    w = gaussian((20, 30), seed=3)
    w[4] *= 50
    out = quant.quantize_keeping_rows(w, np.array([4]))
    np.testing.assert_array_equal(out[4], w[4])
    others = np.delete(w, 4, axis=0)
    np.testing.assert_array_equal(
        np.delete(out, 4, axis=0), quant.absmax_quantize(others)
    )


@pytest.mark.parametrize(
    "bad, exc, match",
    [
        (np.ones(5), ValueError, "w"),
        (np.array([[np.nan, 1.0]]), ValueError, "w"),
        (np.ones((2, 2), dtype=int), TypeError, "w"),
        (np.ones((0, 3)), ValueError, "w"),
    ],
)
def test_absmax_bad_input(bad, exc, match):
    with pytest.raises(exc, match=match):
        quant.absmax_quantize(bad)


def test_absmax_bad_scheme():
    with pytest.raises(ValueError, match="scheme"):
        quant.absmax_quantize(np.ones((2, 2)), "row")


def test_quantize_model_and_loss_change():
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed=0)
    q = quant.quantize_model(weights, "channel")
    np.testing.assert_array_equal(q.rms_att, weights.rms_att)  # norms untouched
    for name in quant.MATRICES:
        a, b = getattr(weights, name), getattr(q, name)
        assert a.shape == b.shape and b.dtype == np.float32
        assert not np.array_equal(a, b)
        # per channel int8: every entry within half a step of its row
        step = np.abs(a).max(-1, keepdims=True) / 127
        assert np.all(np.abs(a - b) <= step / 2 * (1 + 1e-5) + 1e-7)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(3, 300, (4, 10), generator=g)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 0] = False  # BOS is never a target
    base, counts = next_token.story_losses(llama.LlamaModel(weights), tokens, mask)
    assert stats.paired_difference(base, base, counts) == (0.0, 0.0)
    sums, _ = next_token.story_losses(llama.LlamaModel(q), tokens, mask)
    diff, se = stats.paired_difference(sums, base, counts)
    assert math.isfinite(diff) and se >= 0


def test_fold_gain_is_exact():
    rng = np.random.default_rng(4)
    x, w, gamma = (
        rng.standard_normal((5, 6)),
        rng.standard_normal((6, 3)),
        rng.uniform(0.1, 3, 6),
    )
    np.testing.assert_allclose(
        (x * gamma) @ w, x @ quant.fold_gain(w, gamma), rtol=1e-13
    )
    with pytest.raises(ValueError, match="gamma"):
        quant.fold_gain(w, gamma[:4])


def test_smoothquant_identity_and_balance():
    rng = np.random.default_rng(5)
    x, w = rng.standard_normal((50, 8)), rng.standard_normal((4, 8))
    x[:, 2] *= 40  # an outlier channel
    act = np.abs(x).max(0)
    s = quant.smoothquant_scales(act, w, 0.5)
    np.testing.assert_allclose((x / s) @ (w * s).T, x @ w.T, rtol=1e-12)
    # α = ½ equalizes the two maxima of every channel: both √(max|X_j| max|W_j|)
    np.testing.assert_allclose(np.abs(x / s).max(0), np.abs(w * s).max(0), rtol=1e-12)
    # with both operands in int8 per tensor, smoothing the outlier lowers the error
    assert quant.quantized_matmul_error(x, w, s) < quant.quantized_matmul_error(
        x, w, None
    )
    with pytest.raises(ValueError, match="act_absmax"):
        quant.smoothquant_scales(act[:3], w)


def test_attention_inputs_shape():
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed=1)
    model = llama.LlamaModel(weights)
    tokens = torch.tensor([[1, 5, 6, 7], [1, 8, 0, 0]])
    mask = torch.tensor([[False, True, True, True], [False, True, False, False]])
    inputs = quant.attention_inputs(model, tokens, mask)
    assert len(inputs) == llama_weights.TINY_CONFIG.n_layers
    assert inputs[0].shape == (6, llama_weights.TINY_CONFIG.dim)  # 4 + 2 real positions


@pytest.mark.parametrize(
    "dtype, bits", [(torch.float8_e4m3fn, 3), (torch.float8_e5m2, 2)]
)
def test_scaled_fp8_error_does_not_depend_on_magnitude(dtype, bits):
    w = gaussian((100, 100), seed=6).astype(np.float32) * 0.1
    errors = [
        quant.quantization_error(w * 2.0**-k, quant.fp8_cast(w * 2.0**-k, dtype, True))
        for k in (0, 10, 20)
    ]
    # a power-of-two shift is undone exactly by the scale: identical errors
    assert errors[0]["rel_fro"] == pytest.approx(errors[2]["rel_fro"], rel=1e-6)
    # round-to-nearest with `bits` stored mantissa bits: relative error per entry at
    # most 2^−(bits+1); its RMS at most that / √3 for a uniform position within a binade
    assert errors[0]["rel_fro"] < 2.0 ** -(bits + 1) / math.sqrt(3)


def test_unscaled_fp8_underflows_small_tensors():
    w = gaussian((100, 100), seed=7).astype(np.float32) * 1e-4
    # |w| ≲ 4e-4 < 2^-9·½ ≈ 9.8e-4: E4M3's smallest subnormal is 2^-9, so nearly all
    # flush to zero
    fractions = quant.fp8_underflow_fraction(w, torch.float8_e4m3fn)
    assert fractions["zero"] > 0.99
    err = quant.quantization_error(w, quant.fp8_cast(w, torch.float8_e4m3fn, False))
    assert err["rel_fro"] > 0.99
    with pytest.raises(TypeError, match="dtype"):
        quant.fp8_cast(w, torch.float16, True)


def test_error_table_orders_schemes_on_gaussian_weights():
    table = quant.error_table({"a": gaussian((64, 256), seed=8)})
    errs = [table[label]["rel_fro"][0] for label, _, _ in quant.SCHEME_TABLE]
    # smaller blocks have smaller maxima relative to their RMS: tensor > channel (one
    # row of 256) ≥ group 128 (two groups per row) > group 32; deterministic (seeded)
    assert errs[0] > errs[1] >= errs[3] > errs[2]


def test_model_matrices_lists_every_matrix_once():
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed=2)
    matrices = quant.model_matrices(weights)
    L = llama_weights.TINY_CONFIG.n_layers
    assert len(matrices) == 1 + (len(quant.MATRICES) - 1) * L
    np.testing.assert_array_equal(matrices["wq[1]"], weights.wq[1])
    assert all(m.ndim == 2 for m in matrices.values())


def test_outlier_rows_are_the_largest_absolute_gains_first():
    gamma = np.array([0.5, -3.0, 1.0, 2.0, -0.1])
    np.testing.assert_array_equal(quant.outlier_rows(gamma, 3), [1, 3, 2])
    with pytest.raises(ValueError, match="n"):
        quant.outlier_rows(gamma, 0)
    with pytest.raises(ValueError, match="gamma"):
        quant.outlier_rows(np.ones((2, 2)), 1)
