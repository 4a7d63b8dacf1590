"""Quantization scales: absmax integer quantization, outliers, SmoothQuant, scaled fp8.

Helpers for ``book/quantization.md``. Matrices are (out, in), ``y = W @ x``, as in
stories260K; pass GPT-2's Conv1D weights (in, out) transposed. A *scheme* sets which
entries share one scale: ``"tensor"`` (all), ``"channel"`` (one output row),
``"group"`` (``group_size`` consecutive inputs of one row; a last, shorter group when
the row length is not a multiple).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, positive_int
from numscale.models import llama
from numscale.models.llama_weights import LlamaWeights

SCHEMES = ("tensor", "channel", "group")
#: the stories260K matrices that are quantized (every weight matrix of the model)
MATRICES = ("token_embedding", "wq", "wk", "wv", "wo", "w1", "w2", "w3")


def absmax_quantize_blocks(blocks: np.ndarray, bits: int = 8) -> np.ndarray:
    """Round each row of ``blocks`` (n_blocks, block) to the symmetric integer grid
    with step ``scale = max|row| / (2^(bits−1) − 1)``; return the dequantized
    values."""
    qmax = 2 ** (bits - 1) - 1
    absmax = np.abs(blocks).max(axis=1, keepdims=True)
    scale = np.where(absmax > 0, absmax / qmax, 1.0)
    return np.clip(np.round(blocks / scale), -qmax, qmax) * scale


def absmax_quantize(
    w: np.ndarray, scheme: str = "tensor", group_size: int = 128, bits: int = 8
) -> np.ndarray:
    """Quantize-dequantize a matrix ``w`` (out, in) with absmax scales per ``scheme``.

    Returns a float array of the same shape: every entry rounded to its block's grid.
    """
    w = as_float_array(w, "w", ndim=2)
    bits = positive_int(bits, "bits", minimum=2)
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "tensor":
        return absmax_quantize_blocks(w.reshape(1, -1), bits).reshape(w.shape)
    if scheme == "channel":
        return absmax_quantize_blocks(w, bits)
    group_size = positive_int(group_size, "group_size")
    n_out, n_in = w.shape
    padded = -(-n_in // group_size) * group_size  # zeros leave each absmax alone
    blocks = np.zeros((n_out, padded), dtype=w.dtype)
    blocks[:, :n_in] = w
    groups = absmax_quantize_blocks(blocks.reshape(-1, group_size), bits)
    return groups.reshape(n_out, padded)[:, :n_in]


def quantize_keeping_rows(
    w_in_out: np.ndarray, keep: np.ndarray, bits: int = 8
) -> np.ndarray:
    """Per-tensor absmax quantization of a Conv1D matrix (in, out) whose input rows
    ``keep`` (indices) stay in full precision, LLM.int8()'s mixed decomposition: the
    outlier channels are computed apart and do not set the scale of the others."""
    w = as_float_array(w_in_out, "w_in_out", ndim=2)
    keep = np.asarray(keep, dtype=int)
    rest = np.setdiff1d(np.arange(w.shape[0]), keep)
    out = w.copy()
    out[rest] = absmax_quantize(w[rest], "tensor", bits=bits)
    return out


def quantization_error(w: np.ndarray, w_hat: np.ndarray) -> dict[str, float]:
    """Relative Frobenius error ‖ŵ − w‖/‖w‖ and the largest absolute error."""
    w = as_float_array(w, "w")
    w_hat = as_float_array(w_hat, "w_hat")
    if w.shape != w_hat.shape:
        raise ValueError(f"w {w.shape} and w_hat {w_hat.shape} differ in shape")
    diff = w_hat - w
    # sums of squares accumulated in float64 (pairwise), without a float64 copy
    sq_diff = np.sum(np.square(diff), dtype=np.float64)
    sq_w = np.sum(np.square(w), dtype=np.float64)
    return {
        "rel_fro": float(np.sqrt(sq_diff / sq_w)),
        "max_abs": float(np.abs(diff).max()),
    }


def model_matrices(weights: LlamaWeights) -> dict[str, np.ndarray]:
    """Every matrix of :data:`MATRICES`, one entry per block: ``"wq[0]"`` …
    (out, in)."""
    out = {}
    for name in MATRICES:
        array = getattr(weights, name)
        if array.ndim == 2:
            out[name] = array
        else:
            out.update({f"{name}[{i}]": m for i, m in enumerate(array)})
    return out


def quantize_model(
    weights: LlamaWeights, scheme: str, group_size: int = 128, bits: int = 8
) -> LlamaWeights:
    """A copy of ``weights`` with every matrix in :data:`MATRICES` quantized (each
    block of layers (L, out, in) matrix by matrix); norms and rotary tables
    untouched."""
    changes = {}
    for name in MATRICES:
        array = getattr(weights, name)
        if array.ndim == 2:
            q = absmax_quantize(array, scheme, group_size, bits)
        else:
            q = np.stack([absmax_quantize(m, scheme, group_size, bits) for m in array])
        changes[name] = q.astype(np.float32)
    return dataclasses.replace(weights, **changes)


# ------------------------------------------------------------------ outliers


def fold_gain(w_in_out: np.ndarray, gamma: np.ndarray) -> np.ndarray:
    """Fold a norm gain into the next Conv1D matrix: row i of W (in, out) times γ_i,
    so that (x̂ ⊙ γ) W = x̂ (diag(γ) W)."""
    w = as_float_array(w_in_out, "w_in_out", ndim=2)
    gamma = as_float_array(gamma, "gamma", ndim=1)
    if gamma.shape[0] != w.shape[0]:
        raise ValueError(
            f"gamma has {gamma.shape[0]} entries, w_in_out has {w.shape[0]} rows"
        )
    return gamma[:, None] * w


def outlier_rows(gamma: np.ndarray, n: int) -> np.ndarray:
    """Indices (n,) of the ``n`` entries of ``gamma`` (in,) largest in absolute value,
    largest first: the input rows that folding the gain enlarges most."""
    gamma = as_float_array(gamma, "gamma", ndim=1)
    n = positive_int(n, "n")
    return np.argsort(-np.abs(gamma))[:n]


def smoothquant_scales(
    act_absmax: np.ndarray, w: np.ndarray, alpha: float = 0.5
) -> np.ndarray:
    """SmoothQuant's per-input-channel factors
    ``s_j = max|X_j|^α / max|W_j|^(1−α)``.

    ``act_absmax`` (in,): the largest absolute activation of each input
    channel;
    ``w`` (out, in). The activations are divided by s and the weight columns multiplied
    by it, so X W^T is unchanged: (X diag(s)⁻¹)(W diag(s))^T.
    """
    act = as_float_array(act_absmax, "act_absmax", ndim=1)
    w = as_float_array(w, "w", ndim=2)
    alpha = finite_float(alpha, "alpha")
    if act.shape[0] != w.shape[1]:
        raise ValueError(
            f"act_absmax has {act.shape[0]} channels, w has {w.shape[1]} inputs"
        )
    w_absmax = np.abs(w).max(axis=0)
    return np.maximum(act, 1e-8) ** alpha / np.maximum(w_absmax, 1e-8) ** (1 - alpha)


def quantized_matmul_error(
    x: np.ndarray, w: np.ndarray, smooth: np.ndarray | None, bits: int = 8
) -> float:
    """Relative error ‖X̂ Ŵᵀ − X Wᵀ‖_F / ‖X Wᵀ‖_F when both the activations ``x``
    (tokens, in) and the weight ``w`` (out, in) are absmax-quantized per tensor, after
    dividing X's columns by ``smooth`` and multiplying W's by it (``None``: no
    smoothing)."""
    x = as_float_array(x, "x", ndim=2).astype(np.float64)
    w = as_float_array(w, "w", ndim=2).astype(np.float64)
    s = np.ones(w.shape[1]) if smooth is None else as_float_array(smooth, "smooth")
    x_hat = absmax_quantize(x / s, "tensor", bits=bits)
    w_hat = absmax_quantize(w * s, "tensor", bits=bits)
    exact = x @ w.T
    return float(np.linalg.norm(x_hat @ w_hat.T - exact) / np.linalg.norm(exact))


# ------------------------------------------------------------------ fp8


def fp8_cast(x: np.ndarray, dtype: torch.dtype, scaled: bool) -> np.ndarray:
    """Round ``x`` to an fp8 format and back to float32.

    ``scaled``: multiply by ``s = (format max) / max|x|`` first and divide by s after,
    the per-tensor scale factor of fp8 training and inference; otherwise cast as is.
    """
    x = as_float_array(x, "x")
    if dtype not in (torch.float8_e4m3fn, torch.float8_e5m2):
        raise TypeError(
            f"dtype must be torch.float8_e4m3fn or float8_e5m2, got {dtype}"
        )
    return _fp8_round(torch.from_numpy(x.astype(np.float32)), dtype, scaled).numpy()


def _fp8_round(x: torch.Tensor, dtype: torch.dtype, scaled: bool) -> torch.Tensor:
    """The scaled cast itself: scale to the format's largest value, cast, unscale."""
    scale = torch.finfo(dtype).max / x.abs().max() if scaled else torch.tensor(1.0)
    return (x * scale).to(dtype).to(torch.float32) / scale


def fp8_underflow_fraction(x: np.ndarray, dtype: torch.dtype) -> dict[str, float]:
    """Fractions of the nonzero entries of ``x`` that an unscaled cast to ``dtype``
    flushes to zero, and that land among the format's subnormals."""
    x = np.abs(as_float_array(x, "x"))
    x = x[x > 0]
    info = torch.finfo(dtype)
    cast = np.abs(fp8_cast(x, dtype, scaled=False))
    return {
        "zero": float((cast == 0).mean()),
        "subnormal": float(((x < info.smallest_normal) & (cast > 0)).mean()),
    }


# ------------------------------------------------------------------ tables

#: (label, scheme, group size) of the schemes the chapter compares
SCHEME_TABLE = (
    ("per tensor", "tensor", 0),
    ("per channel", "channel", 0),
    ("group 32", "group", 32),
    ("group 128", "group", 128),
)


def error_table(
    matrices: dict[str, np.ndarray], bits: int = 8
) -> dict[str, dict[str, np.ndarray]]:
    """For every scheme of :data:`SCHEME_TABLE`: relative Frobenius and max absolute
    errors of each matrix (out, in) of ``matrices``, arrays in the mapping's order."""
    table = {}
    for label, scheme, group in SCHEME_TABLE:
        errors = [
            quantization_error(w, absmax_quantize(w, scheme, group or 128, bits))
            for w in matrices.values()
        ]
        table[label] = {
            key: np.array([e[key] for e in errors]) for key in ("rel_fro", "max_abs")
        }
    return table


def attention_inputs(
    model: llama.LlamaModel, tokens: torch.Tensor, mask: torch.Tensor
) -> list[np.ndarray]:
    """The input of W_Q, W_K, W_V in each block, RMSNorm(x) ⊙ γ, at the real (not
    padding) positions: one (tokens, dim) float64 array per block."""
    with torch.inference_mode():
        record = model(tokens, record=True, record_attention=False)
    real = mask.clone()
    real[:, 0] = tokens[:, 0] != 0  # BOS is real, padding (id 0) is not
    out = []
    with torch.inference_mode():
        for layer in range(model.config.n_layers):
            h = llama._rmsnorm(record.residual[layer], model.rms_att[layer])
            out.append(h[real].double().numpy())
    return out
