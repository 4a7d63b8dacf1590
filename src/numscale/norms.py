"""LayerNorm and RMSNorm in NumPy, and the same layers from torch for comparison.

Every function normalizes over the last axis: ``x`` has shape ``(..., d)`` and the
output has the same shape; ``gamma`` and ``beta`` have shape ``(d,)``. The NumPy
helpers compute in the input's floating dtype.
"""

from __future__ import annotations

import numpy as np

from numscale.checks import as_float_array, finite_float, positive_int

#: GPT-2's LayerNorm epsilon (``layer_norm_epsilon`` in its config).
GPT2_EPS = 1e-5


def _affine(y: np.ndarray, gamma, beta, d: int) -> np.ndarray:
    if gamma is not None:
        g = as_float_array(gamma, "gamma", ndim=1)
        if g.shape != (d,):
            raise ValueError(f"gamma must have shape ({d},), got {g.shape}")
        y = y * g.astype(y.dtype, copy=False)
    if beta is not None:
        b = as_float_array(beta, "beta", ndim=1)
        if b.shape != (d,):
            raise ValueError(f"beta must have shape ({d},), got {b.shape}")
        y = y + b.astype(y.dtype, copy=False)
    return y


def _eps(eps: float) -> float:
    eps = finite_float(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return eps


def layer_norm(x, gamma=None, beta=None, eps: float = GPT2_EPS) -> np.ndarray:
    """LN(x) = γ ⊙ (x − mean(x)) / √(var(x) + ε) + β over the last axis.

    ``var`` is the biased (population) variance, as in torch and GPT-2. Without
    ``gamma``/``beta`` the output is the bare normalization: mean 0 and, when
    var ≫ ε, L2 norm √d along the last axis. Shape ``(..., d) -> (..., d)``.
    """
    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    eps = _eps(eps)
    mu = x.mean(axis=-1, keepdims=True)
    centred = x - mu
    var = np.mean(centred**2, axis=-1, keepdims=True)
    y = centred / np.sqrt(var + np.asarray(eps, dtype=x.dtype))
    return _affine(y, gamma, beta, x.shape[-1])


def rms_norm(x, gamma=None, eps: float = GPT2_EPS) -> np.ndarray:
    """RMSNorm(x) = γ ⊙ x / √(mean(x²) + ε) over the last axis (no centring, no β).

    Shape ``(..., d) -> (..., d)``.
    """
    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    eps = _eps(eps)
    ms = np.mean(x**2, axis=-1, keepdims=True)
    y = x / np.sqrt(ms + np.asarray(eps, dtype=x.dtype))
    return _affine(y, gamma, None, x.shape[-1])


def layer_norm_gain(input_std, eps: float = GPT2_EPS) -> np.ndarray:
    """Output RMS of the bare LayerNorm for an input of standard deviation ``input_std``.

    σ / √(σ² + ε): 1 when σ² ≫ ε, and σ/√ε (a fixed *linear* scaling by 1/√ε, not a
    normalization) when σ² ≪ ε. Shape: that of ``input_std``.
    """
    s = as_float_array(input_std, "input_std", ndim=tuple(range(0, 33)))
    if np.any(s < 0):
        raise ValueError("input_std must be >= 0")
    eps = _eps(eps)
    return s / np.sqrt(s**2 + eps)


def rms_norm_output_mean(mean, std) -> np.ndarray:
    """Expected mean of RMSNorm's output (before γ) for iid inputs N(mean, std²), large d.

    mean / √(mean² + std²): zero only for centred input. Broadcasts its arguments.
    """
    m = as_float_array(mean, "mean", ndim=tuple(range(0, 33)))
    s = as_float_array(std, "std", ndim=tuple(range(0, 33)))
    if np.any(s < 0):
        raise ValueError("std must be >= 0")
    if np.any((m == 0) & (s == 0)):
        raise ValueError("mean and std must not both be 0")
    return m / np.sqrt(m**2 + s**2)


def _affine_vector(value, name: str, d: int):
    """A gain or bias of shape (d,) as a float32 torch tensor, or raise naming ``name``."""
    import torch

    vector = as_float_array(value, name, ndim=1)
    if vector.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), got {vector.shape}")
    return torch.from_numpy(vector.astype(np.float32))


def torch_layer_norm(x, gamma=None, beta=None, eps: float = GPT2_EPS) -> np.ndarray:
    """The same as :func:`layer_norm`, computed by ``torch.nn.LayerNorm`` in float32."""
    import torch

    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    d = x.shape[-1]
    layer = torch.nn.LayerNorm(d, eps=_eps(eps), elementwise_affine=True, dtype=torch.float32)
    with torch.no_grad():
        if gamma is not None:
            layer.weight.copy_(_affine_vector(gamma, "gamma", d))
        if beta is not None:
            layer.bias.copy_(_affine_vector(beta, "beta", d))
        return layer(torch.from_numpy(x.astype(np.float32))).numpy()


def torch_rms_norm(x, gamma=None, eps: float = GPT2_EPS) -> np.ndarray:
    """The same as :func:`rms_norm`, computed by ``torch.nn.RMSNorm`` in float32."""
    import torch

    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    d = x.shape[-1]
    layer = torch.nn.RMSNorm(d, eps=_eps(eps), elementwise_affine=True, dtype=torch.float32)
    with torch.no_grad():
        if gamma is not None:
            layer.weight.copy_(_affine_vector(gamma, "gamma", d))
        return layer(torch.from_numpy(x.astype(np.float32))).numpy()


def float32_tolerance(d: int, scale: float = 1.0, k: float = 2.0) -> float:
    """Bound k·eps32·√d·scale on |numpy float64 − torch float32| for a norm layer.

    Rounding the input to float32 and the float32 mean/variance reductions over d
    terms give relative errors that grow at most like √d·eps32 for random rounding
    (Higham's probabilistic bound); ``scale`` is the largest output magnitude.
    """
    d = positive_int(d, "d")
    eps32 = float(np.finfo(np.float32).eps)
    return k * eps32 * float(np.sqrt(d)) * finite_float(scale, "scale", positive=True)
