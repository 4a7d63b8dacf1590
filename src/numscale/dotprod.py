"""Dot products of random vectors: how their spread grows with the dimension d.

Shapes: a matrix is ``(n, d)``; ``Q @ K.T`` is ``(n_q, n_k)``; sweeps return one value
per dimension in ``dims``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from numscale import softmax as _softmax
from numscale.checks import (
    as_float_array,
    finite_float,
    float_dtype,
    positive_int,
    rng_from,
    spawn_rngs,
)

#: Entry distributions with zero mean, named for the chapters. Each takes (rng, shape)
#: and returns float64 draws; ``ENTRY_VARIANCE`` holds the exact variance of each.
DISTRIBUTIONS: dict[
    str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
] = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
    "rademacher": lambda rng, shape: rng.choice(np.array([-1.0, 1.0]), size=shape),
}
ENTRY_VARIANCE: dict[str, float] = {
    "normal": 1.0,
    "uniform": 1.0 / 3.0,
    "rademacher": 1.0,
}
ENTRY_FOURTH_MOMENT: dict[str, float] = {
    "normal": 3.0,
    "uniform": 1.0 / 5.0,
    "rademacher": 1.0,
}


def _check_distribution(distribution: str) -> str:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(
            f"distribution must be one of {sorted(DISTRIBUTIONS)}, got {distribution!r}"
        )
    return distribution


def _dims_array(d: int | np.ndarray | Sequence[int], name: str = "d") -> np.ndarray:
    """``d`` as a float array of dimensions >= 1 (any shape), or raise naming ``name``."""
    if isinstance(d, bool):
        raise TypeError(
            f"{name} must be a positive integer or an array of them, got bool"
        )
    d_arr = np.asarray(d)
    if d_arr.dtype == object or not (
        np.issubdtype(d_arr.dtype, np.integer)
        or np.issubdtype(d_arr.dtype, np.floating)
    ):
        raise TypeError(f"{name} must hold numbers, got dtype {d_arr.dtype}")
    d_arr = d_arr.astype(float)
    if d_arr.size == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.all(np.isfinite(d_arr)) or np.any(d_arr < 1):
        raise ValueError(f"{name} must be finite and >= 1")
    return d_arr


def _draw(
    distribution: str, rng: np.random.Generator, shape: tuple[int, ...]
) -> np.ndarray:
    return DISTRIBUTIONS[_check_distribution(distribution)](rng, shape)


def random_qk(
    n: int, d: int, seed: int | np.random.Generator, distribution: str = "normal"
) -> tuple[np.ndarray, np.ndarray]:
    """Two independent ``(n, d)`` matrices Q and K with iid zero-mean entries."""
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    rng = rng_from(seed)
    return _draw(distribution, rng, (n, d)), _draw(distribution, rng, (n, d))


def dot_product_scores(queries: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """All dot products ``queries @ keys.T``: ``(n_q, d), (n_k, d) -> (n_q, n_k)``."""
    q = as_float_array(queries, "queries", ndim=2)
    k = as_float_array(keys, "keys", ndim=2)
    if q.shape[1] != k.shape[1]:
        raise ValueError(
            f"queries and keys must share the last dimension d, got {q.shape} and {k.shape}"
        )
    return q @ k.T


def predicted_dot_std(d: int, sigma_q: float = 1.0, sigma_k: float = 1.0) -> float:
    """√(d·σq²·σk²): the std of q·k for independent zero-mean entries."""
    d = positive_int(d, "d")
    sigma_q = finite_float(sigma_q, "sigma_q", positive=True)
    sigma_k = finite_float(sigma_k, "sigma_k", positive=True)
    return float(np.sqrt(d) * sigma_q * sigma_k)


def independent_dots(
    d: int, n_pairs: int, seed: int | np.random.Generator, distribution: str = "normal"
) -> np.ndarray:
    """``n_pairs`` independent dot products q·k of length-``d`` vectors. Shape ``(n_pairs,)``."""
    d = positive_int(d, "d")
    n_pairs = positive_int(n_pairs, "n_pairs")
    rng = rng_from(seed)
    q = _draw(distribution, rng, (n_pairs, d))
    k = _draw(distribution, rng, (n_pairs, d))
    return np.einsum("ij,ij->i", q, k)


def predicted_dot_kurtosis(
    d: int | np.ndarray, distribution: str = "normal"
) -> np.ndarray:
    """Kurtosis E[(q·k)⁴] / Var(q·k)² of a dot product of two length-``d`` vectors.

    q·k is a sum of d iid products xy with E[x²] = v, E[x⁴] = m4. One product has
    kurtosis m4²/v⁴ (9 for Gaussian entries); the excess kurtosis of a sum of d iid
    terms is that of one term divided by d, so the kurtosis is 3 + (m4²/v⁴ − 3)/d:
    3 + 6/d for Gaussian entries. Shape: that of ``d``.
    """
    _check_distribution(distribution)
    d_arr = _dims_array(d)
    one_term = (
        ENTRY_FOURTH_MOMENT[distribution] ** 2 / ENTRY_VARIANCE[distribution] ** 4
    )
    return 3.0 + (one_term - 3.0) / d_arr


def sample_kurtosis(values: np.ndarray) -> float:
    """Sample kurtosis m4 / m2² (central moments, divisor n) of a 1-D sample; 3 for a Gaussian."""
    x = as_float_array(values, "values", ndim=1)
    if x.size < 2:
        raise ValueError(f"values must hold at least 2 numbers, got {x.size}")
    centred = x - x.mean()
    m2 = np.mean(centred**2)
    if m2 == 0:
        raise ValueError("values must not all be equal (their variance is 0)")
    return float(np.mean(centred**4) / m2**2)


def std_relative_standard_error(
    d: int | np.ndarray, n: int, distribution: str = "normal"
) -> np.ndarray:
    """Relative standard error of the sample std of ``n`` iid dot products of length ``d``.

    Delta method: SE(s)/σ ≈ √((2 + κ) / (4n)), κ the excess kurtosis of q·k. q·k is a
    sum of d iid products xy with E[x²] = v, E[x⁴] = m4, so κ = (m4²/v⁴ − 3)/d. For
    Gaussian entries (m4 = 3) this is √((1 + 3/d) / (2n)). Shape: that of ``d``.
    """
    n = positive_int(n, "n", minimum=2)
    excess = predicted_dot_kurtosis(d, distribution) - 3.0
    return np.sqrt((2.0 + excess) / (4.0 * n))


@dataclass(frozen=True)
class SqrtLawSweep:
    """Result of :func:`sqrt_law_sweep`: one entry per dimension."""

    dims: np.ndarray  #: (m,) the dimensions d
    std: np.ndarray  #: (m,) sample std of the n_pairs dot products at each d
    rel_se: np.ndarray  #: (m,) relative standard error of each std (sampling theory)
    n_pairs: int


def sqrt_law_sweep(
    dims: Sequence[int], n_pairs: int, seed: int, distribution: str = "normal"
) -> SqrtLawSweep:
    """Sample std of ``n_pairs`` independent dot products for each d in ``dims``.

    Each d gets its own child generator spawned from ``seed``, so appending a dimension
    to the sweep does not change the others. Shapes: ``dims (m,) -> SqrtLawSweep`` of
    ``(m,)`` arrays.
    """
    dims_arr = np.asarray(list(dims))
    if dims_arr.size == 0:
        raise ValueError("dims must not be empty")
    if not np.issubdtype(dims_arr.dtype, np.integer):
        raise TypeError(f"dims must be integers, got dtype {dims_arr.dtype}")
    if dims_arr.ndim != 1 or np.any(dims_arr < 1):
        raise ValueError("dims must be a flat sequence of positive integers")
    _check_distribution(distribution)
    n_pairs = positive_int(n_pairs, "n_pairs", minimum=2)
    rngs = spawn_rngs(seed, dims_arr.size)
    std = np.array(
        [
            independent_dots(int(d), n_pairs, rng, distribution).std(ddof=1)
            for d, rng in zip(dims_arr, rngs)
        ]
    )
    return SqrtLawSweep(
        dims=dims_arr,
        std=std,
        rel_se=std_relative_standard_error(dims_arr, n_pairs, distribution),
        n_pairs=n_pairs,
    )


def _log_dims_values(
    dims: np.ndarray, values: np.ndarray, name: str = "values"
) -> tuple[np.ndarray, np.ndarray]:
    x = _dims_array(dims, "dims")
    if x.ndim != 1:
        raise ValueError(f"dims must have 1 dimension, got shape {x.shape}")
    y = as_float_array(values, name, ndim=1)
    if x.size != y.size or x.size < 3:
        raise ValueError(
            f"dims and {name} must have the same length >= 3, got {x.size} and {y.size}"
        )
    if np.any(y <= 0):
        raise ValueError(f"{name} must be > 0 (their logarithm is taken)")
    return np.log(x), np.log(y)


def loglog_slope(dims: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log(values) against log(dims), and its standard error.

    Shapes ``(m,), (m,) -> (slope, se)``, m >= 3. The standard error is the usual
    least-squares one, estimated from the scatter of the residuals.
    """
    x, y = _log_dims_values(dims, values)
    design = np.column_stack([x, np.ones_like(x)])
    coef, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = x.size - 2
    sigma2 = float(residuals[0]) / dof if residuals.size else 0.0
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))


def predicted_slope_se(dims: np.ndarray, rel_se: np.ndarray) -> float:
    """Standard error of the log–log least-squares slope predicted by sampling theory.

    If log(values[i]) has independent errors of standard deviation ``rel_se[i]`` (a
    small relative error of values[i]), the least-squares slope Σ wᵢ log(valuesᵢ) with
    wᵢ = (xᵢ − x̄) / Σ(xⱼ − x̄)², xᵢ = log dimsᵢ, has standard error √(Σ wᵢ² rel_seᵢ²).
    Shapes ``(m,), (m,) -> float``.
    """
    s = as_float_array(rel_se, "rel_se", ndim=1)
    if np.any(s < 0):
        raise ValueError("rel_se must be >= 0")
    x, _ = _log_dims_values(dims, np.ones_like(s) + s, "rel_se")
    centred = x - x.mean()
    weights = centred / np.sum(centred**2)
    return float(np.sqrt(np.sum(weights**2 * s**2)))


@dataclass(frozen=True)
class SoftmaxRowStats:
    """Result of :func:`qk_softmax_rows`: one row per seed, one column per query."""

    max_prob: (
        np.ndarray
    )  #: (n_seeds, n) largest probability in each row of softmax(scale·QKᵀ)
    entropy: np.ndarray  #: (n_seeds, n) entropy (nats) of each row
    scale: float  #: the factor the logits QKᵀ were multiplied by


def qk_softmax_rows(
    n: int,
    d: int,
    seeds: Sequence[int],
    scale: float,
    dtype: type | np.dtype | str = np.float64,
) -> SoftmaxRowStats:
    """Row statistics of softmax(scale · QKᵀ) with ``Q, K = random_qk(n, d, seed)`` per seed.

    Each row is one query's attention over the ``n`` keys. ``scale = 1`` gives the raw
    logits, ``scale = 1/√d`` the Transformer's. The logits are rounded to ``dtype``
    (a NumPy floating dtype) before the softmax, which then runs in that dtype. Shapes:
    ``len(seeds) = s -> (s, n)`` arrays. ``seeds`` are the same integers a chapter passes
    to :func:`random_qk`, so seed 0 reproduces the chapter's own matrices.
    """
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    scale = finite_float(scale, "scale", positive=True)
    dt = float_dtype(dtype, "dtype")
    seed_list = list(seeds)
    if not seed_list:
        raise ValueError("seeds must not be empty")
    max_prob = np.empty((len(seed_list), n))
    entropy = np.empty((len(seed_list), n))
    for row, seed in enumerate(seed_list):
        queries, keys = random_qk(n, d, positive_int(seed, "seeds", minimum=0))
        logits = (scale * (queries @ keys.T)).astype(dt)
        max_prob[row] = _softmax.softmax(logits).max(axis=-1)
        entropy[row] = _softmax.entropy(logits)
    return SoftmaxRowStats(max_prob=max_prob, entropy=entropy, scale=scale)


def mean_and_seed_se(per_row: np.ndarray) -> tuple[float, float]:
    """Mean over all rows of a ``(n_seeds, n)`` statistic, and its standard error.

    The rows of one seed share its keys (and queries), so they are not independent:
    the standard error is taken from the spread of the ``n_seeds`` per-seed means,
    ``std(ddof=1) / √n_seeds``. Needs at least two seeds.
    """
    values = as_float_array(per_row, "per_row", ndim=2)
    if values.shape[0] < 2 or values.shape[1] == 0:
        raise ValueError(
            f"per_row must have >= 2 seeds and >= 1 row, got {values.shape}"
        )
    per_seed = values.mean(axis=1)
    se = per_seed.std(ddof=1) / np.sqrt(per_seed.size)
    return float(per_seed.mean()), float(se)


def dot_moments(
    mean_q: np.ndarray, cov_q: np.ndarray, mean_k: np.ndarray, cov_k: np.ndarray
) -> tuple[float, float]:
    """Mean and variance of q·k for *independent* q, k with given means and covariances.

    Shapes ``(d,), (d, d), (d,), (d, d)``. With ``E[q] = μ_q``, ``Cov(q) = Σ_q`` (same for
    k), ``E[q·k] = μ_q·μ_k`` and ``Var(q·k) = tr(Σ_q Σ_k) + μ_qᵀ Σ_k μ_q + μ_kᵀ Σ_q μ_k``,
    whatever the distribution. For ``μ = 0`` and ``Σ = σ² I`` this is ``d σ_q² σ_k²``.
    """
    mq = as_float_array(mean_q, "mean_q", ndim=1)
    mk = as_float_array(mean_k, "mean_k", ndim=1)
    cq = as_float_array(cov_q, "cov_q", ndim=2)
    ck = as_float_array(cov_k, "cov_k", ndim=2)
    d = mq.size
    expected = {"mean_k": (mk, (d,)), "cov_q": (cq, (d, d)), "cov_k": (ck, (d, d))}
    for name, (arr, shape) in expected.items():
        if arr.shape != shape:
            raise ValueError(
                f"{name} must have shape {shape} to match mean_q, got {arr.shape}"
            )
    mean = float(mq @ mk)
    var = float(np.trace(cq @ ck) + mq @ ck @ mq + mk @ cq @ mk)
    return mean, var


def gaussian_dots(
    mean_q: np.ndarray,
    cov_q: np.ndarray,
    mean_k: np.ndarray,
    cov_k: np.ndarray,
    n_pairs: int,
    seed: int | np.random.Generator,
) -> np.ndarray:
    """``n_pairs`` dot products of independent q ~ N(μ_q, Σ_q), k ~ N(μ_k, Σ_k).

    Shape ``(n_pairs,)``.

    Shapes of the moments as in :func:`dot_moments` (which checks them); the covariances
    must be positive definite (Cholesky factorisation).
    """
    dot_moments(mean_q, cov_q, mean_k, cov_k)  # validates shapes and values
    n_pairs = positive_int(n_pairs, "n_pairs")
    rng = rng_from(seed)
    draws = [
        rng.multivariate_normal(
            np.asarray(mean, float), np.asarray(cov, float), n_pairs, method="cholesky"
        )
        for mean, cov in ((mean_q, cov_q), (mean_k, cov_k))
    ]
    q, k = draws
    return np.einsum("ij,ij->i", q, k)


def wishart_std_spread(n: int, d: int) -> float:
    """Relative seed-to-seed standard deviation of std(QKᵀ) for Q, K ``(n, d)`` with iid
    N(0, 1) entries: √((2n + d + 1)/(2n²d)), from the moments of the trace of two
    independent Wishart matrices (the dot-products chapter's last exercise)."""
    n = positive_int(n, "n")
    d = positive_int(d, "d")
    return float(np.sqrt((2 * n + d + 1) / (2 * n**2 * d)))
