"""Estimators the chapters share: a ratio mean with its standard error, paired
differences, the vertex of a fitted parabola, and a percentile bootstrap interval.

The book's losses are ratios: a story ``i`` contributes a summed loss ``S_i`` over
``n_i`` predicted tokens, and the loss per token is ``R = Σ S_i / Σ n_i``. Tokens of one
story are not independent draws, stories are: every standard error here treats the
``m`` stories (or sequences, or seeds) as the independent units.
"""

from __future__ import annotations

import math

import numpy as np

from numscale.checks import as_float_array, rng_from


def ratio_estimate(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Mean loss per token and its standard error, stories as the independent draws.

    ``sums`` (m,): summed loss of each story; ``counts`` (m,): its tokens. The mean
    is Σ sums / Σ counts; its standard error (the ratio estimator's, by the delta
    method) is sqrt(Σ (S_i − mean·n_i)² / (m(m−1))) / mean(n).
    """
    m = sums.size
    mean = sums.sum() / counts.sum()
    residuals = sums - mean * counts
    se = math.sqrt((residuals**2).sum() / (m * (m - 1))) / counts.mean()
    return float(mean), float(se)


def _check_sums(
    sums: object, counts: object, name: str = "sums", *, allow_nonfinite: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``sums`` and ``counts`` as (m,) float64 arrays of the same length, m ≥ 1,
    ``counts`` positive; raise naming the argument otherwise."""
    sums = as_float_array(sums, name, ndim=1, allow_nonfinite=allow_nonfinite)
    counts = as_float_array(np.asarray(counts, dtype=np.float64), "counts", ndim=1)
    if sums.shape != counts.shape:
        raise ValueError(
            f"{name} {sums.shape} and counts {counts.shape} must have the same length"
        )
    if np.any(counts <= 0):
        raise ValueError("counts must be positive (every story predicts a token)")
    return sums.astype(np.float64), counts


def ratio_mean_se(
    sums: object, counts: object, *, allow_nonfinite: bool = False
) -> tuple[float, float]:
    """:func:`ratio_estimate` of validated input: the token-weighted mean
    ``Σ sums / Σ counts`` of (m,) per-story sums over (m,) positive token counts, and
    its standard error across stories.

    The standard error needs two stories: it is NaN for m = 1. ``allow_nonfinite``:
    accept inf/NaN sums (a model that overflowed); the mean is then inf or NaN and the
    standard error NaN. Without it, a non-finite sum raises ``ValueError``.
    """
    sums, counts = _check_sums(sums, counts, allow_nonfinite=allow_nonfinite)
    if sums.size < 2:
        return float(sums.sum() / counts.sum()), math.nan
    if not np.isfinite(sums).all():
        return float(sums.sum() / counts.sum()), math.nan
    return ratio_estimate(sums, counts)


def paired_difference(
    sums_a: object, sums_b: object, counts: object
) -> tuple[float, float]:
    """Mean loss of A minus mean loss of B on the *same* stories, and its standard
    error.

    ``sums_a``, ``sums_b``, ``counts``: (m,) each. The story-to-story spread, shared by
    A and B, cancels in ``sums_a − sums_b``: the result is :func:`ratio_mean_se` of the
    per-story differences, ``(Σ(S_a − S_b)/Σ n, SE)``.
    """
    a, counts_ = _check_sums(sums_a, counts, "sums_a")
    b, _ = _check_sums(sums_b, counts, "sums_b")
    if a.size < 2:
        raise ValueError("a paired difference needs at least 2 stories")
    return ratio_estimate(a - b, counts_)


def parabola_vertex(log_c: np.ndarray, loss: np.ndarray) -> float:
    """``c`` at the minimum of the least-squares parabola through ``(log c, loss)``.

    ``log_c``, ``loss``: (k,) with k ≥ 3. Fits ``loss ≈ a x² + b x + d`` in ``x = log
    c`` and returns ``exp(−b / (2a))``. Raises ``ValueError`` if the fitted parabola
    opens downwards (a ≤ 0: no minimum).
    """
    x = as_float_array(log_c, "log_c", ndim=1)
    y = as_float_array(loss, "loss", ndim=1)
    if x.shape != y.shape or x.size < 3:
        raise ValueError("log_c and loss must have the same length, at least 3 points")
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        raise ValueError("the fitted parabola has no minimum (curvature <= 0)")
    return float(np.exp(-b / (2 * a)))


def bootstrap_indices(
    n: int, n_boot: int, seed: int | np.random.Generator
) -> np.ndarray:
    """(n_boot, n) indices of ``n_boot`` resamples of ``n`` units drawn with
    replacement, one row per resample, from a seeded generator (row after row)."""
    rng = rng_from(seed)
    return np.stack([rng.integers(0, n, size=n) for _ in range(n_boot)])


def percentile_interval(
    draws: np.ndarray, percent: float = 95.0
) -> tuple[float, float]:
    """The central ``percent`` % interval of (k,) bootstrap ``draws``: their
    ``(100 − percent)/2`` and ``(100 + percent)/2`` percentiles (``np.percentile``,
    linear interpolation); 95 gives the 2.5th and 97.5th."""
    values = as_float_array(draws, "draws", ndim=1)
    if not 0 < percent < 100:
        raise ValueError(f"percent must lie in (0, 100), got {percent!r}")
    tail = (100 - percent) / 2
    return float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))
