"""Numerically stable softmax, log-softmax and entropy (NumPy).

All functions act along one axis (default the last) of a floating-point array of any
shape ``(..., n)`` and return an array of the same dtype. They subtract the maximum
along that axis first (the log-sum-exp trick), which leaves the result unchanged
(softmax is invariant to adding a constant) and keeps ``exp`` from overflowing.
"""

from __future__ import annotations

import numpy as np

from numscale.checks import as_float_array


def _check_axis(logits: np.ndarray, axis: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(f"axis {axis} is out of range for logits of shape {logits.shape}")
    return int(axis)


def logsumexp(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log Σ exp(z) along ``axis``, computed as m + log Σ exp(z − m), m = max z.

    Shape ``(..., n) -> (...)``. Finite for any finite input.
    """
    z = as_float_array(logits, "logits", ndim=tuple(range(1, 33)))
    axis = _check_axis(z, axis)
    m = np.max(z, axis=axis, keepdims=True)
    out = m + np.log(np.sum(np.exp(z - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log p = z − logsumexp(z) along ``axis``. Shape ``(..., n) -> (..., n)``.

    Use ``-log_softmax(z)`` for the negative log-likelihood: unlike
    ``-log(softmax(z))`` it stays finite where p underflows to 0.
    """
    z = as_float_array(logits, "logits", ndim=tuple(range(1, 33)))
    axis = _check_axis(z, axis)
    return z - np.expand_dims(logsumexp(z, axis=axis), axis)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax exp(z − m) / Σ exp(z − m) along ``axis``. Shape ``(..., n) -> (..., n)``.

    Never overflows; returns a new array (the input is not modified).
    """
    z = as_float_array(logits, "logits", ndim=tuple(range(1, 33)))
    axis = _check_axis(z, axis)
    shifted = np.exp(z - np.max(z, axis=axis, keepdims=True))
    return shifted / np.sum(shifted, axis=axis, keepdims=True)


def naive_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Textbook softmax exp(z) / Σ exp(z) with no max subtraction (for comparison only).

    Overflows to inf/NaN once exp(z) exceeds the dtype's range; numpy warnings are
    silenced so a chapter can show the failure. Shape ``(..., n) -> (..., n)``.
    """
    z = as_float_array(logits, "logits", ndim=tuple(range(1, 33)))
    axis = _check_axis(z, axis)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z)
        return e / np.sum(e, axis=axis, keepdims=True)


def entropy(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy (nats) of softmax(z) along ``axis``: −Σ p log p. Shape ``(..., n) -> (...)``.

    Computed from log_softmax, so rows where some p underflow to 0 still give a finite
    result (0 · log 0 is taken as 0).
    """
    logp = log_softmax(logits, axis=axis)
    p = np.exp(logp)
    return -np.sum(p * logp, axis=axis)
