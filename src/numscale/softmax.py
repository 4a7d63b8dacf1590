"""Numerically stable softmax, log-softmax and entropy (NumPy).

All functions act along one axis (default the last) of a floating-point array of any
shape ``(..., n)`` and return an array of the same dtype. They subtract the maximum
along that axis first (the log-sum-exp trick), which leaves the result unchanged
(softmax is invariant to adding a constant) and keeps ``exp`` from overflowing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from numscale.checks import as_float_array, float_dtype, positive_int, rng_from


def _as_logits(logits: np.ndarray) -> np.ndarray:
    z = as_float_array(logits, "logits")
    if z.ndim == 0:
        raise ValueError("logits must have at least 1 dimension, got a scalar")
    return z


def _check_axis(logits: np.ndarray, axis: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {type(axis).__name__}")
    if not -logits.ndim <= axis < logits.ndim:
        raise ValueError(
            f"axis {axis} is out of range for logits of shape {logits.shape}"
        )
    return int(axis)


def _shift_and_log1p(
    z: np.ndarray, axis: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(m, z − m, log1p(r)), m = max z, r = Σ exp(z − m) over all but one maximal entry.

    Σ exp(z − m) = 1 + r exactly (the maximal entry contributes exp(0) = 1), and
    log(1 + r) = log1p(r) keeps the tiny r that 1 + r would round away: the log-sum-exp
    of Blanchard, Higham & Higham (2021). No input checks (the public functions check).
    """
    m = np.max(z, axis=axis, keepdims=True)
    shifted = z - m
    terms = np.exp(shifted)
    top = np.expand_dims(np.argmax(z, axis=axis), axis)
    np.put_along_axis(terms, top, 0.0, axis=axis)  # leave out one maximal entry
    return m, shifted, np.log1p(np.sum(terms, axis=axis, keepdims=True))


def logsumexp(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log Σ exp(z) along ``axis``, computed as m + log1p(Σ' exp(z − m)), m = max z.

    Σ' leaves out one maximal entry, whose term is exactly 1. Shape ``(..., n) -> (...)``.
    Finite for any finite input.
    """
    z = _as_logits(logits)
    axis = _check_axis(z, axis)
    m, _, log1p_rest = _shift_and_log1p(z, axis)
    return np.squeeze(m + log1p_rest, axis=axis)


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log p = z − logsumexp(z) along ``axis``, as (z − m) − log1p(Σ' exp(z − m)).

    Shape ``(..., n) -> (..., n)``. Always <= 0. Subtracting the maximum first keeps
    the log-probability of the top entry accurate when it is tiny (p close to 1): it is
    −log1p(s) ≈ −s, not 0. Use ``-log_softmax(z)`` (or :func:`surprisal`) for the
    negative log-likelihood: unlike ``-log(softmax(z))`` it stays finite where p
    underflows to 0.
    """
    z = _as_logits(logits)
    axis = _check_axis(z, axis)
    _, shifted, log1p_rest = _shift_and_log1p(z, axis)
    return shifted - log1p_rest


def surprisal(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """−log p (nats) of every entry of softmax(z), computed as −log_softmax(z).

    The negative log-likelihood of outcome i is ``surprisal(z)[..., i]``. It is >= 0,
    0 only where p = 1, and finite for finite logits. Shape ``(..., n) -> (..., n)``.
    """
    return -log_softmax(logits, axis=axis) + 0.0  # + 0.0 turns −0.0 into 0.0


def _softmax_core(z: np.ndarray, axis: int) -> np.ndarray:
    """exp(z − m) / Σ exp(z − m) with m = max z along ``axis`` (no input checks)."""
    m = np.max(z, axis=axis, keepdims=True)
    e = np.exp(z - m)  # every exponent is <= 0: no overflow, largest term exactly 1
    return e / np.sum(e, axis=axis, keepdims=True)


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Stable softmax exp(z − m) / Σ exp(z − m) along ``axis``.

    Shape ``(..., n) -> (..., n)``. Never overflows; returns a new array (the input is
    not modified). Validates ``logits`` and ``axis``, then calls the max-shifted core.
    """
    z = _as_logits(logits)
    axis = _check_axis(z, axis)
    return _softmax_core(z, axis)


def naive_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Textbook softmax exp(z) / Σ exp(z) with no max subtraction (for comparison only).

    Overflows to inf/NaN once exp(z) exceeds the dtype's range; numpy warnings are
    silenced so a chapter can show the failure. Shape ``(..., n) -> (..., n)``.
    """
    z = _as_logits(logits)
    axis = _check_axis(z, axis)
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z)
        return e / np.sum(e, axis=axis, keepdims=True)


def entropy(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Entropy (nats) of softmax(z) along ``axis``: −Σ p log p. Shape ``(..., n) -> (...)``.

    Computed from log_softmax, so rows where some p underflow to 0 still give a finite
    result (0 · log 0 is taken as 0). Always >= 0: log_softmax is <= 0 by construction.
    """
    logp = log_softmax(logits, axis=axis)
    p = np.exp(logp)
    return -np.sum(p * logp, axis=axis)


def one_hot_gap(dtype: type | np.dtype | str = np.float64) -> float:
    """Logit gap g beyond which softmax([g, 0]) rounds to exactly (1, 0) in ``dtype``.

    The stable softmax computes 1 / (1 + e^(−g)); the sum 1 + e^(−g) rounds to 1 once
    e^(−g) is at most half the spacing eps above 1, i.e. for g >= ln(2/eps): about 36.7
    in float64, 16.6 in float32. Beyond it p = 1.0 exactly and log p = 0.0.
    """
    dt = float_dtype(dtype, "dtype")
    return float(np.log(2.0 / float(np.finfo(dt).eps)))


def _check_sigmas(sigmas: Sequence[float] | np.ndarray) -> np.ndarray:
    s = as_float_array(np.asarray(sigmas), "sigmas", ndim=1)
    if np.any(s < 0):
        raise ValueError("sigmas must be >= 0")
    return s


def gaussian_logit_entropy(
    n: int,
    sigmas: Sequence[float] | np.ndarray,
    n_rows: int,
    seed: int | np.random.Generator,
) -> np.ndarray:
    """Mean entropy (nats) of softmax over ``n`` iid N(0, σ²) logits, for each σ in ``sigmas``.

    One set of ``(n_rows, n)`` standard-normal draws is scaled by every σ, so the curve
    is smooth in σ. For σ²·e^(σ²) ≪ n the mean is close to
    :func:`gaussian_entropy_expansion`. Shapes: ``sigmas (m,) -> (m,)``.
    """
    n = positive_int(n, "n")
    n_rows = positive_int(n_rows, "n_rows")
    s = _check_sigmas(sigmas)
    draws = rng_from(seed).standard_normal((n_rows, n))
    return np.array([entropy(sigma * draws).mean() for sigma in s])


def gaussian_entropy_expansion(
    n: int, sigmas: Sequence[float] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Large-n expansion of the mean entropy of softmax over ``n`` iid N(0, σ²) logits.

    Returns ``(leading, corrected)``, each of the shape of ``sigmas``:
    ``leading = ln n − σ²/2`` (the n → ∞ limit at fixed σ, by the law of large numbers:
    Σ e^z / n → e^(σ²/2) and Σ z e^z / n → σ² e^(σ²/2)), and ``corrected = leading +
    ((2σ² − 1) e^(σ²) + 1) / (2n)``, the first-order term of the delta method in 1/n.
    The correction is small only while σ² e^(σ²) ≪ n; for small σ it reduces to
    ln n − σ²(n − 1)/(2n), the second-order expansion around uniform attention.
    """
    n = positive_int(n, "n")
    s = _check_sigmas(sigmas)
    leading = np.log(n) - s**2 / 2
    with np.errstate(over="ignore"):  # e^(σ²) is inf past σ ≈ 26: useless there anyway
        correction = ((2 * s**2 - 1) * np.exp(s**2) + 1) / (2 * n)
    return leading, leading + correction
