"""Attention-logit scaling with width: 1/√d (standard) against 1/d (μP).

Queries and keys are Gaussian vectors of length d_k (the head width; written d below). A
*correlated pair* has k = ρ q + √(1 − ρ²) ξ with q, ξ independent N(0, I): every coordinate
of k has unit variance and correlation ρ with the same coordinate of q. ρ = 0 gives
independent vectors (as at initialization), ρ = 1 gives k = q (perfect alignment). A ρ held
fixed as d grows is μP's ansatz for trained queries and keys, not a measured fact.

Shapes: a batch of pairs is ``(n_pairs, d)`` per vector; sweeps return one value per
dimension in ``dims``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from numscale import attention, report, softmax
from numscale.checks import (
    as_float_array,
    finite_float,
    positive_int,
    rng_from,
    spawn_rngs,
)
from numscale.dotprod import loglog_slope


def attention_scale(
    d_k: int | np.ndarray, scaling: str, multiplier: float = 1.0
) -> np.ndarray:
    """s in the logit z = s·q·k: multiplier/√d_k (standard) or multiplier/d_k (μP).

    At a fixed d_k the two differ only by the constant √d_k, which ``multiplier``
    absorbs (Yang et al.'s ``mup`` package uses 8/d_k, = 1/√d_k at d_k = 64).
    """
    d = np.asarray(d_k, dtype=float)
    if scaling == "1/sqrt(d)":
        return multiplier / np.sqrt(d)
    if scaling == "1/d":
        return multiplier / d
    raise ValueError(f"scaling must be '1/sqrt(d)' or '1/d', got {scaling!r}")


#: The two logit scalings compared in the chapter, as functions of the head width d_k.
SCALINGS = {
    "1/sqrt(d)": lambda d: attention_scale(d, "1/sqrt(d)"),
    "1/d": lambda d: attention_scale(d, "1/d"),
}


def _rho(rho: float) -> float:
    rho = finite_float(rho, "rho")
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"rho must lie in [-1, 1], got {rho}")
    return rho


def _dims(dims: Sequence[int]) -> np.ndarray:
    arr = np.asarray(list(dims))
    if arr.size == 0:
        raise ValueError("dims must not be empty")
    if not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ValueError(f"dims must be positive integers, got {arr.tolist()}")
    return arr


def _scale(scaling: str):
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {sorted(SCALINGS)}, got {scaling!r}")
    return SCALINGS[scaling]


def correlated_pairs(
    d: int, n_pairs: int, rho: float, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` pairs (q, k) of length ``d`` with k = ρq + √(1−ρ²)ξ.

    Returns two ``(n_pairs, d)`` arrays.
    """
    d = positive_int(d, "d")
    n_pairs = positive_int(n_pairs, "n_pairs")
    rho = _rho(rho)
    rng = rng_from(seed)
    q = rng.standard_normal((n_pairs, d))
    xi = rng.standard_normal((n_pairs, d))
    k = rho * q + np.sqrt(1.0 - rho**2) * xi
    return q, k


def predicted_dot_rms(d: int | np.ndarray, rho: float) -> np.ndarray:
    """√E[(q·k)²] = √(ρ²d² + (1 + ρ²)d) for a correlated pair. Shape: that of ``d``.

    q·k = ρ‖q‖² + √(1−ρ²) q·ξ has mean ρd and variance 2ρ²d + (1−ρ²)d = (1+ρ²)d.
    """
    rho = _rho(rho)
    d_arr = np.asarray(d, dtype=float)
    if d_arr.size == 0 or np.any(d_arr < 1):
        raise ValueError("d must be >= 1 (and not empty)")
    return np.sqrt(rho**2 * d_arr**2 + (1 + rho**2) * d_arr)


@dataclass(frozen=True)
class DotScaleSweep:
    """Result of :func:`dot_rms_sweep`: one entry per dimension."""

    dims: np.ndarray  #: (m,) the dimensions d
    rms: np.ndarray  #: (m,) root mean square of the n_pairs dot products q·k
    rel_se: (
        np.ndarray
    )  #: (m,) relative standard error of each rms (delta method, from the sample)
    predicted: np.ndarray  #: (m,) √(ρ²d² + (1+ρ²)d)
    rho: float
    n_pairs: int


def dot_rms_sweep(
    dims: Sequence[int], n_pairs: int, rho: float, seed: int
) -> DotScaleSweep:
    """RMS of ``n_pairs`` dot products of correlated pairs for each d in ``dims``.

    The relative standard error of an rms √m̂ (m̂ the mean of X = (q·k)²) is
    SE(m̂)/(2m̂) = std(X)/(2m̂√n_pairs), estimated from the sample. Each d has its own
    child generator spawned from ``seed``.
    """
    dims_arr = _dims(dims)
    n_pairs = positive_int(n_pairs, "n_pairs", minimum=2)
    rho = _rho(rho)
    rngs = spawn_rngs(seed, dims_arr.size)
    rms, rel_se = [], []
    for d, rng in zip(dims_arr, rngs):
        q, k = correlated_pairs(int(d), n_pairs, rho, rng)
        sq = np.einsum("ij,ij->i", q, k) ** 2
        m = sq.mean()
        rms.append(np.sqrt(m))
        rel_se.append(sq.std(ddof=1) / (2 * m * np.sqrt(n_pairs)))
    return DotScaleSweep(
        dims=dims_arr,
        rms=np.array(rms),
        rel_se=np.array(rel_se),
        predicted=predicted_dot_rms(dims_arr, rho),
        rho=rho,
        n_pairs=n_pairs,
    )


def slope_standard_error(dims: Sequence[int], rel_se: np.ndarray) -> float:
    """Sampling standard error of the least-squares slope of log(values) on log(dims).

    The slope is Σ wᵢ yᵢ with wᵢ = (xᵢ − x̄)/Σ(xⱼ − x̄)², x = log d; with independent
    yᵢ = log(valueᵢ) of standard deviation ``rel_se[i]`` its variance is Σ wᵢ² rel_seᵢ².
    """
    x = np.log(_dims(dims).astype(float))
    s = as_float_array(rel_se, "rel_se", ndim=1)
    if s.size != x.size or x.size < 2:
        raise ValueError(
            f"dims and rel_se must have the same length >= 2, got {x.size} and {s.size}"
        )
    centred = x - x.mean()
    w = centred / np.sum(centred**2)
    return float(np.sqrt(np.sum(w**2 * s**2)))


#: Short names of the correlations ρ the chapter sweeps (used in glued names).
CORRELATION_TAGS = {0.0: "indep", 0.5: "half", 1.0: "aligned"}


@dataclass(frozen=True)
class SlopeFit:
    """Log-log slope of a :class:`DotScaleSweep`'s rms against d."""

    slope: float  #: least-squares slope of log rms on log d, as measured
    se: float  #: its sampling standard error (:func:`slope_standard_error`)
    predicted: float  #: the same fit to the exact formula's values


def fit_slope(sweep: DotScaleSweep) -> SlopeFit:
    """The measured and predicted log-log slopes of ``sweep`` and the measured one's SE."""
    if not isinstance(sweep, DotScaleSweep):
        raise TypeError(f"sweep must be a DotScaleSweep, got {type(sweep).__name__}")
    slope, _ = loglog_slope(sweep.dims, sweep.rms)
    predicted, _ = loglog_slope(sweep.dims, sweep.predicted)
    return SlopeFit(slope, slope_standard_error(sweep.dims, sweep.rel_se), predicted)


@dataclass(frozen=True)
class SlopeSummary:
    """The log-log slopes of the chapter's sweeps, one group per correlation ρ.

    ``slope``: for the tag of each ρ (:data:`CORRELATION_TAGS`), in the order of the
    fits, ``"<tag>"`` (the measured slope), ``"<tag>_se"`` (its standard error) and
    ``"<tag>_pred"`` (the slope fitted to the exact formula's values); glued as
    ``slope_<tag>``, …. Its ``str`` is the table the chapter prints: a title line,
    then one row per ρ under the corner ``ρ`` with those three numbers.
    """

    slope: dict[str, float]

    def __str__(self) -> str:
        rho_of = {tag: rho for rho, tag in CORRELATION_TAGS.items()}
        tags = [t for t in self.slope if not t.endswith(("_se", "_pred"))]
        table = report.text_table(
            ("measured", "± SE", "formula"),
            {
                f"{rho_of[t]}": tuple(self.slope[t + k] for k in ("", "_se", "_pred"))
                for t in tags
            },
            corner="ρ",
            number_format="10.4f",
        )
        return (
            "log–log slope of rms(q·k) against d: measured, and of the exact formula\n"
            + table
        )


def slope_summary(fits: Mapping[float, SlopeFit]) -> SlopeSummary:
    """:class:`SlopeSummary` of ``fits`` (correlation ρ -> :class:`SlopeFit`; every ρ
    one of :data:`CORRELATION_TAGS`)."""
    if not isinstance(fits, Mapping) or not fits:
        raise ValueError("fits must be a non-empty mapping correlation -> SlopeFit")
    unknown = sorted(set(fits) - set(CORRELATION_TAGS))
    if unknown:
        raise ValueError(f"fits has correlations without a tag: {unknown}")
    slope = {}
    for rho, fit in fits.items():
        if not isinstance(fit, SlopeFit):
            raise TypeError(
                f"fits[{rho!r}] must be a SlopeFit, got {type(fit).__name__}"
            )
        tag = CORRELATION_TAGS[rho]
        slope |= {tag: fit.slope, f"{tag}_se": fit.se, f"{tag}_pred": fit.predicted}
    return SlopeSummary(slope)


def format_by_width(
    title: str, dims: Sequence[int], rows: Mapping[str, np.ndarray]
) -> str:
    """``title`` on a line of its own, then a table with one column per width of
    ``dims`` (m,) and one row per ``name -> (m,) values`` of ``rows``."""
    if not isinstance(title, str) or not title:
        raise TypeError("title must be a non-empty str")
    return title + "\n" + report.text_table(dims, rows, corner="d")


def _width_index(dims: Sequence[int], width: int) -> int:
    found = np.flatnonzero(_dims(dims) == width)
    if found.size == 0:
        raise ValueError(f"width {width} is not one of dims")
    return int(found[0])


def entropy_numbers(
    init: Mapping[str, np.ndarray], dims: Sequence[int], n_keys: int, width: int
) -> dict[str, float]:
    """Glue names for the initial entropies of :func:`init_entropy` at one ``width``.

    ``init`` maps each scaling of :data:`SCALINGS` to its ``(m,)`` entropies over
    ``dims``. Gives ln n, the 1/d entropy, its gap below ln n and the gap predicted by
    ln n − σ²/2 at σ = 1/√width, the 1/√d entropy, ln n − ½ (the prediction at
    σ = 1) and ``ln_n_minus_half_corrected``, the same with its first finite-n
    correction (:func:`numscale.softmax.gaussian_entropy_expansion`).
    """
    missing = sorted(set(SCALINGS) - set(init))
    if missing:
        raise ValueError(f"init lacks the scalings {missing}")
    i = _width_index(dims, width)
    ln_n = np.log(positive_int(n_keys, "n_keys", minimum=2))
    measured = init["1/d"][i]
    predicted = attention.entropy_approximation(n_keys, 1 / np.sqrt(width))
    return {
        "ln_n": ln_n,
        f"init_h_1d_{width}": measured,
        f"init_h_1d_{width}_gap": ln_n - measured,
        f"init_h_1d_{width}_pred_gap": ln_n - predicted,
        f"init_h_sqrt_{width}": init["1/sqrt(d)"][i],
        "ln_n_minus_half": attention.entropy_approximation(n_keys, 1.0),
        "ln_n_minus_half_corrected": softmax.gaussian_entropy_expansion(n_keys, [1.0])[
            1
        ][0],
    }


def aligned_weight_limit(n_keys: int) -> float:
    """Weight on the aligned key when its logit is 1 and the ``n_keys − 1`` others are 0:
    e / (e + n − 1), the 1/d scaling's value at every width for ρ = 1."""
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    return float(np.e / (np.e + n_keys - 1))


@dataclass(frozen=True)
class AlignedWeightSummary:
    """The aligned key's weight at the ends of the width sweep, and the factor
    between the two scalings at fixed head widths.

    ``w``: ``"sqrt_<d>"`` and ``"1d_<d>"``, the mean weight on the aligned key under
    1/√d and under 1/d at the first and the last width d, and ``"1d_limit"``
    (:func:`aligned_weight_limit`); ``factor``: head width d_k -> √d_k, the ratio of
    the 1/√d_k scaling to the 1/d_k one at that width. Glued as ``w_sqrt_16``, …,
    ``factor_64``, ….
    """

    w: dict[str, float]
    factor: dict[int, float]


def aligned_weight_summary(
    weight: Mapping[str, np.ndarray],
    dims: Sequence[int],
    n_keys: int,
    head_widths: Sequence[int],
) -> AlignedWeightSummary:
    """:class:`AlignedWeightSummary` of :func:`aligned_key_weight`'s results.

    ``weight`` maps each scaling of :data:`SCALINGS` to its ``(m,)`` weights over
    ``dims`` ``(m,)``; ``head_widths``: the fixed head widths whose factor √d_k the
    chapter quotes.
    """
    missing = sorted(set(SCALINGS) - set(weight))
    if missing:
        raise ValueError(f"weight lacks the scalings {missing}")
    ends = _dims(dims)[[0, -1]]
    if isinstance(head_widths, (str, bytes)) or not isinstance(head_widths, Sequence):
        raise TypeError("head_widths must be a sequence of positive integers")
    heads = [positive_int(d, "head_widths") for d in head_widths]
    w = {}
    for tag, name in (("sqrt", "1/sqrt(d)"), ("1d", "1/d")):
        w |= {f"{tag}_{d}": weight[name][i] for i, d in zip((0, -1), ends)}
    return AlignedWeightSummary(
        w=w | {"1d_limit": aligned_weight_limit(n_keys)},
        factor={d: np.sqrt(d) for d in heads},
    )


def init_entropy(
    dims: Sequence[int], n_keys: int, n_queries: int, scaling: str, seed: int
) -> np.ndarray:
    """Mean attention entropy (nats) of independent N(0, I) queries and keys with logits scale(d)·q·k.

    One query block ``(n_queries, d)`` and one key block ``(n_keys, d)`` per d. Returns ``(m,)``.
    With scale 1/d the logits have variance 1/d, so by ln n − σ²/2 the entropy is about
    ln n − 1/(2d); with 1/√d it is about ln n − 1/2 at every width.
    """
    dims_arr = _dims(dims)
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    n_queries = positive_int(n_queries, "n_queries")
    scale = _scale(scaling)
    rngs = spawn_rngs(seed, dims_arr.size)
    out = []
    for d, rng in zip(dims_arr, rngs):
        q = rng.standard_normal((n_queries, int(d)))
        k = rng.standard_normal((n_keys, int(d)))
        out.append(softmax.entropy(scale(int(d)) * (q @ k.T)).mean())
    return np.array(out)


def aligned_key_weight(
    dims: Sequence[int], n_keys: int, rho: float, scaling: str, n_trials: int, seed: int
) -> np.ndarray:
    """Mean attention weight on one key correlated with the query (ρ) among ``n_keys − 1`` independent keys.

    Each trial draws a query q, the aligned key ρq + √(1−ρ²)ξ and ``n_keys − 1`` independent
    keys, all N(0, I) of length d, and applies softmax to scale(d)·(q·k). Returns ``(m,)``, one mean per d.
    """
    dims_arr = _dims(dims)
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    rho = _rho(rho)
    n_trials = positive_int(n_trials, "n_trials")
    scale = _scale(scaling)
    rngs = spawn_rngs(seed, dims_arr.size)
    out = []
    for d, rng in zip(dims_arr, rngs):
        q, k0 = correlated_pairs(int(d), n_trials, rho, rng)
        others = rng.standard_normal((n_trials, n_keys - 1, int(d)))
        logits = np.concatenate(
            [np.einsum("td,td->t", q, k0)[:, None], np.einsum("td,tnd->tn", q, others)],
            axis=1,
        ) * scale(int(d))
        out.append(softmax.softmax(logits)[:, 0].mean())
    return np.array(out)
