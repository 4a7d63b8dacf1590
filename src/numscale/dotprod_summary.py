"""Result records of the dot-products chapter: the numbers it quotes, in one call each.

Each builder takes the chapter's draws (matrices, dot products, per-seed stds) and
returns a frozen dataclass for :func:`numscale.report.glue_record`; the ``format_*``
functions return the lines the chapter prints (a record's ``str``, where it has one). The laws themselves live in
:mod:`numscale.dotprod`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, finite_float, positive_int
from numscale.dotprod import std_relative_standard_error, wishart_std_spread


@dataclass(frozen=True)
class ScoreStds:
    """Standard deviations of Q ``(n, d)``, K ``(n, d)`` and S = QKᵀ ``(n, n)``
    (``std_q``, ``std_k``, ``qk_std``), the predicted √d (``sqrt_d``) and the number
    of scores S holds (``n_scores``)."""

    std_q: float
    std_k: float
    qk_std: float
    sqrt_d: float
    n_scores: int

    def __str__(self) -> str:
        return format_score_stds(self)


def score_stds(queries: np.ndarray, keys: np.ndarray, scores: np.ndarray) -> ScoreStds:
    """:class:`ScoreStds` of ``queries`` ``(n_q, d)``, ``keys`` ``(n_k, d)`` and their
    ``scores`` ``(n_q, n_k)``."""
    q = as_float_array(queries, "queries", ndim=2)
    k = as_float_array(keys, "keys", ndim=2)
    s = as_float_array(scores, "scores", ndim=2)
    if q.shape[1] != k.shape[1] or s.shape != (q.shape[0], k.shape[0]):
        raise ValueError(
            f"scores must be queries @ keys.T: got {q.shape}, {k.shape}, {s.shape}"
        )
    return ScoreStds(
        std_q=float(q.std()),
        std_k=float(k.std()),
        qk_std=float(s.std()),
        sqrt_d=float(np.sqrt(q.shape[1])),
        n_scores=int(s.size),
    )


def format_score_stds(rec: ScoreStds) -> str:
    """One line: the three standard deviations and √d."""
    return (
        f"std(Q) = {rec.std_q:.3f}   std(K) = {rec.std_k:.3f}   "
        f"std(QKᵀ) = {rec.qk_std:.3f}   √d = {rec.sqrt_d:.3f}"
    )


@dataclass(frozen=True)
class StdCheck:
    """A measured std of iid dot products against its prediction: ``std`` (ddof = 1),
    ``predicted``, and ``rel_se_pct``, the relative standard error of ``std`` in
    percent (:func:`numscale.dotprod.std_relative_standard_error`)."""

    std: float
    predicted: float
    rel_se_pct: float


def std_check(
    dots: np.ndarray, d: int, predicted: float, distribution: str = "normal"
) -> StdCheck:
    """:class:`StdCheck` of ``dots`` ``(n,)``, iid products of length-``d`` vectors
    with ``distribution`` entries, against ``predicted``."""
    x = as_float_array(dots, "dots", ndim=1)
    rel_se = float(
        std_relative_standard_error(positive_int(d, "d"), x.size, distribution)
    )
    return StdCheck(
        std=float(x.std(ddof=1)),
        predicted=finite_float(predicted, "predicted", positive=True),
        rel_se_pct=100 * rel_se,
    )


def format_std_check(check: StdCheck, law: str) -> str:
    """One line: measured std, the predicted one (labelled ``law``), the sampling error."""
    return (
        f"measured std {check.std:.4f}, predicted {law} = {check.predicted:.4f}"
        f" (± {check.rel_se_pct:.2f}% sampling error)"
    )


@dataclass(frozen=True)
class SeedSpread:
    """std(QKᵀ) over seeds: ``seed_mean``, its relative spread across seeds
    ``seed_spread_pct`` (sample SD / mean, percent), and two predictions of that spread
    in percent: ``iid_spread_pct`` for n² independent dot products, and
    ``wishart_spread_pct`` (:func:`numscale.dotprod.wishart_std_spread`)."""

    seed_mean: float
    seed_spread_pct: float
    iid_spread_pct: float
    wishart_spread_pct: float

    def __str__(self) -> str:
        return format_seed_spread(self)


def seed_spread(stds: np.ndarray, n: int, d: int) -> SeedSpread:
    """:class:`SeedSpread` of ``stds`` ``(seeds,)``, one std(QKᵀ) per seed, for Q and K
    of shape ``(n, d)``."""
    s = as_float_array(stds, "stds", ndim=1)
    if s.size < 2:
        raise ValueError(f"stds must hold at least 2 values, got {s.size}")
    n = positive_int(n, "n")
    spread = s.std(ddof=1) / s.mean()
    iid = float(std_relative_standard_error(positive_int(d, "d"), n * n))
    return SeedSpread(
        seed_mean=float(s.mean()),
        seed_spread_pct=float(100 * spread),
        iid_spread_pct=100 * iid,
        wishart_spread_pct=100 * wishart_std_spread(n, d),
    )


def format_seed_spread(rec: SeedSpread) -> str:
    """One line: the mean std, its spread across seeds, and the two predicted
    spreads (independent draws, Wishart)."""
    return (
        f"mean {rec.seed_mean:.3f}, relative spread {rec.seed_spread_pct:.2f}%"
        f" (independent draws: {rec.iid_spread_pct:.2f}%,"
        f" Wishart: {rec.wishart_spread_pct:.2f}%)"
    )


def format_scaled_stds(stds: dict[str, float], rel_se: float) -> str:
    """One line per scale label: the std of the scaled products, and the target, a unit
    std, with the sampling error ``rel_se`` (a fraction) of a measured one."""
    return "\n".join(
        f"c = {label:9s}: std of c·q·k {std:.3f}  (target 1 ± {100 * rel_se:.1f}%)"
        for label, std in stds.items()
    )
