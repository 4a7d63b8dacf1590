"""Dot products of random vectors: how their spread grows with the dimension d.

Shapes: a matrix is ``(n, d)``; ``Q @ K.T`` is ``(n_q, n_k)``; sweeps return one value
per dimension in ``dims``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, positive_int, rng_from

#: Entry distributions with zero mean, named for the chapters. Each takes (rng, shape)
#: and returns float64 draws; ``ENTRY_VARIANCE`` holds the exact variance of each.
DISTRIBUTIONS: dict[str, Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]] = {
    "normal": lambda rng, shape: rng.standard_normal(shape),
    "uniform": lambda rng, shape: rng.uniform(-1.0, 1.0, shape),
    "rademacher": lambda rng, shape: rng.choice(np.array([-1.0, 1.0]), size=shape),
}
ENTRY_VARIANCE: dict[str, float] = {"normal": 1.0, "uniform": 1.0 / 3.0, "rademacher": 1.0}
ENTRY_FOURTH_MOMENT: dict[str, float] = {"normal": 3.0, "uniform": 1.0 / 5.0, "rademacher": 1.0}


def _draw(distribution: str, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {sorted(DISTRIBUTIONS)}, got {distribution!r}")
    return DISTRIBUTIONS[distribution](rng, shape)


def random_qk(n: int, d: int, seed: int | np.random.Generator, distribution: str = "normal") -> tuple[np.ndarray, np.ndarray]:
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
        raise ValueError(f"queries and keys must share the last dimension d, got {q.shape} and {k.shape}")
    return q @ k.T


def predicted_dot_std(d: int, sigma_q: float = 1.0, sigma_k: float = 1.0) -> float:
    """√(d·σq²·σk²): the std of q·k for independent zero-mean entries."""
    d = positive_int(d, "d")
    return float(np.sqrt(d) * sigma_q * sigma_k)


def independent_dots(d: int, n_pairs: int, seed: int | np.random.Generator, distribution: str = "normal") -> np.ndarray:
    """``n_pairs`` independent dot products q·k of length-``d`` vectors. Shape ``(n_pairs,)``."""
    d = positive_int(d, "d")
    n_pairs = positive_int(n_pairs, "n_pairs")
    rng = rng_from(seed)
    q = _draw(distribution, rng, (n_pairs, d))
    k = _draw(distribution, rng, (n_pairs, d))
    return np.einsum("ij,ij->i", q, k)


def std_relative_standard_error(d: int | np.ndarray, n: int, distribution: str = "normal") -> np.ndarray:
    """Relative standard error of the sample std of ``n`` iid dot products of length ``d``.

    Delta method: SE(s)/σ ≈ √((2 + κ) / (4n)), κ the excess kurtosis of q·k. q·k is a
    sum of d iid products xy with E[x²] = v, E[x⁴] = m4, so κ = (m4²/v⁴ − 3)/d. For
    Gaussian entries (m4 = 3) this is √((1 + 3/d) / (2n)). Shape: that of ``d``.
    """
    n = positive_int(n, "n", minimum=2)
    if distribution not in ENTRY_FOURTH_MOMENT:
        raise ValueError(f"distribution must be one of {sorted(ENTRY_FOURTH_MOMENT)}, got {distribution!r}")
    d_arr = np.asarray(d, dtype=float)
    if d_arr.size == 0 or np.any(d_arr < 1):
        raise ValueError("d must be >= 1 (and not empty)")
    v = ENTRY_VARIANCE[distribution]
    excess = (ENTRY_FOURTH_MOMENT[distribution] ** 2 / v**4 - 3.0) / d_arr
    return np.sqrt((2.0 + excess) / (4.0 * n))


@dataclass(frozen=True)
class SqrtLawSweep:
    """Result of :func:`sqrt_law_sweep`: one entry per dimension."""

    dims: np.ndarray  #: (m,) the dimensions d
    std: np.ndarray  #: (m,) sample std of the n_pairs dot products at each d
    rel_se: np.ndarray  #: (m,) relative standard error of each std (sampling theory)
    n_pairs: int


def sqrt_law_sweep(dims: Sequence[int], n_pairs: int, seed: int, distribution: str = "normal") -> SqrtLawSweep:
    """Sample std of ``n_pairs`` independent dot products for each d in ``dims``.

    Each d gets its own child generator spawned from ``seed``, so adding a dimension to
    the sweep does not change the others.
    """
    dims_arr = np.asarray(list(dims))
    if dims_arr.size == 0:
        raise ValueError("dims must not be empty")
    if not np.issubdtype(dims_arr.dtype, np.integer) or np.any(dims_arr < 1):
        raise ValueError("dims must be positive integers")
    n_pairs = positive_int(n_pairs, "n_pairs", minimum=2)
    children = np.random.SeedSequence(positive_int(seed, "seed", minimum=0)).spawn(dims_arr.size)
    std = np.array([
        independent_dots(int(d), n_pairs, np.random.default_rng(child), distribution).std(ddof=1)
        for d, child in zip(dims_arr, children)
    ])
    return SqrtLawSweep(dims=dims_arr, std=std, rel_se=std_relative_standard_error(dims_arr, n_pairs, distribution), n_pairs=n_pairs)


def loglog_slope(dims: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of log(values) against log(dims), and its standard error."""
    x = np.log(as_float_array(np.asarray(dims, dtype=float), "dims", ndim=1))
    y = np.log(as_float_array(values, "values", ndim=1))
    if x.size != y.size or x.size < 3:
        raise ValueError(f"dims and values must have the same length >= 3, got {x.size} and {y.size}")
    design = np.column_stack([x, np.ones_like(x)])
    coef, residuals, *_ = np.linalg.lstsq(design, y, rcond=None)
    dof = x.size - 2
    sigma2 = float(residuals[0]) / dof if residuals.size else 0.0
    cov = sigma2 * np.linalg.inv(design.T @ design)
    return float(coef[0]), float(np.sqrt(cov[0, 0]))
