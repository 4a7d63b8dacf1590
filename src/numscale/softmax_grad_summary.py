"""Result records of the softmax-gradients chapter: the numbers it quotes, in one call each.

Each builder takes results of :mod:`numscale.softmax_grad` (sweeps, crossovers, Jacobians)
and returns a frozen dataclass whose fields :func:`numscale.report.glue_record` glues; a
field holding a dict contributes ``field_key`` names. The ``format_*`` functions return
the tables the chapter prints. Nothing here draws random numbers or runs a sweep: the
chapter shows those calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, of_type, positive_int
from numscale.softmax_grad import (
    Crossover,
    LogitScaleSweep,
    NormSweep,
    QueryGradientSweep,
)


@dataclass(frozen=True)
class JacobianCheck:
    """The closed-form Jacobian against autograd's, for one row of logits.

    ``autograd_diff``: the largest absolute entry of ``J − J_autograd``; ``autograd_diff_eps``: the
    same in units of float64's machine epsilon; ``norm_explicit``: ‖J‖_F of the matrix;
    ``norm_closed``: the closed-form norm; ``frob_diff``: the absolute difference of the two norms.
    """

    autograd_diff: float
    autograd_diff_eps: float
    frob_diff: float
    norm_explicit: float
    norm_closed: float


def jacobian_check(
    jac: np.ndarray, jac_autograd: np.ndarray, norm_closed: float
) -> JacobianCheck:
    """Compare ``jac`` ``(n, n)`` with ``jac_autograd`` ``(n, n)`` and the closed-form
    norm ``norm_closed`` (a float, or a 0-d array) with ``‖jac‖_F``."""
    a = as_float_array(jac, "jac", ndim=2)
    b = as_float_array(jac_autograd, "jac_autograd", ndim=2)
    if a.shape != b.shape or a.shape[0] != a.shape[1]:
        raise ValueError(
            f"jac and jac_autograd must be the same square shape, got {a.shape}, "
            f"{b.shape}"
        )
    closed = finite_float(norm_closed, "norm_closed")
    max_diff = float(np.abs(a - b).max())
    eps_mach = float(np.finfo(np.float64).eps)
    norm_explicit = float(np.linalg.norm(a))
    return JacobianCheck(
        autograd_diff=max_diff,
        autograd_diff_eps=max_diff / eps_mach,
        frob_diff=abs(norm_explicit - closed),
        norm_explicit=norm_explicit,
        norm_closed=closed,
    )


def format_jacobian_check(check: JacobianCheck) -> str:
    """Two lines: the largest entry difference (and in ε_mach), then both norms."""
    return (
        f"max |J − J_autograd| = {check.autograd_diff:.2e} = "
        f"{check.autograd_diff_eps:.3f} ε_mach\n"
        f"‖J‖_F: explicit {check.norm_explicit:.15f}, "
        f"closed form {check.norm_closed:.15f}"
    )


def _index_of(dims: np.ndarray, d: int, name: str) -> int:
    where = np.flatnonzero(dims == d)
    if where.size == 0:
        raise ValueError(f"{name}: d = {d} is not on the sweep's grid {dims.tolist()}")
    return int(where[0])


@dataclass(frozen=True)
class NormSweepSummary:
    """Mean ‖J‖_F of the unscaled and scaled sweeps at the quoted head widths.

    ``unscaled`` / ``scaled``: d → mean ‖J‖_F; ``se``: d → combined standard error
    √(se_u² + se_s²) of their difference; ``scaled_min`` / ``scaled_max``: extremes of the
    scaled curve over the whole sweep; ``d_cross``: the crossover passed in.
    """

    unscaled: dict[int, float]
    scaled: dict[int, float]
    se: dict[int, float]
    scaled_min: float
    scaled_max: float
    d_cross: float


def norm_sweep_summary(
    unscaled: NormSweep,
    scaled: NormSweep,
    d_cross: float,
    quoted: Sequence[int],
    se_at: Sequence[int],
) -> NormSweepSummary:
    """The numbers quoted from two :class:`~numscale.softmax_grad.NormSweep` on the same
    grid: the means at each d of ``quoted``, the combined standard error at each d of
    ``se_at`` (both must be grid points), and the scaled curve's extremes."""
    of_type(unscaled, NormSweep, "unscaled")
    of_type(scaled, NormSweep, "scaled")
    if not np.array_equal(unscaled.dims, scaled.dims):
        raise ValueError("unscaled and scaled must be sweeps over the same dims")
    at = {d: _index_of(unscaled.dims, d, "quoted") for d in quoted}
    se_idx = {d: _index_of(unscaled.dims, d, "se_at") for d in se_at}
    return NormSweepSummary(
        unscaled={d: float(unscaled.mean[i]) for d, i in at.items()},
        scaled={d: float(scaled.mean[i]) for d, i in at.items()},
        se={
            d: float(np.hypot(unscaled.stderr[i], scaled.stderr[i]))
            for d, i in se_idx.items()
        },
        scaled_min=float(scaled.mean.min()),
        scaled_max=float(scaled.mean.max()),
        d_cross=finite_float(d_cross, "d_cross"),
    )


def format_norm_sweep(unscaled: NormSweep, scaled: NormSweep) -> str:
    """One line per head width: mean ‖J‖_F unscaled and scaled."""
    return "\n".join(
        f"d_k = {d:5d}:  unscaled {u:.3f}   scaled {s:.3f}"
        for d, u, s in zip(unscaled.dims, unscaled.mean, scaled.mean)
    )


@dataclass(frozen=True)
class CrossoverSummary:
    """The numbers quoted from :func:`~numscale.softmax_grad.iid_jacobian_crossover` for
    several numbers of keys n.

    ``cross``: ``"n"`` → crossover d_k and ``"n_se"`` → its standard error;
    ``peak_sigma``: n → σ at the peak of the unscaled curve; ``at1``: n → mean ‖J‖_F at
    σ = 1; ``at1_pred``: n → the approximation √(e/n); ``gap``: ``"n_at_d"`` → unscaled
    minus scaled mean ‖J‖_F at d_k = d and ``"n_at_d_se"`` → its paired standard error,
    for the n and d named in the call.
    """

    cross: dict[str, float]
    peak_sigma: dict[int, float]
    at1: dict[int, float]
    at1_pred: dict[int, float]
    gap: dict[str, float]


def crossover_summary(
    cross: Mapping[int, Crossover], gap_n: int, gap_dims: Sequence[int]
) -> CrossoverSummary:
    """Summarize ``cross`` (n → crossover); the gap is quoted for ``cross[gap_n]`` at each
    d of ``gap_dims`` (grid points of that crossover's ``dims``)."""
    if not cross:
        raise ValueError("cross must not be empty")
    if gap_n not in cross:
        raise ValueError(f"gap_n = {gap_n} is not a key of cross")
    crossings: dict[str, float] = {}
    for n, c in cross.items():
        of_type(c, Crossover, f"cross[{n}]")
        crossings[f"{n}"] = float(c.d_cross)
        crossings[f"{n}_se"] = float(c.d_cross_se)
    g = cross[gap_n]
    gaps: dict[str, float] = {}
    for d in gap_dims:
        i = _index_of(g.dims, d, "gap_dims")
        gaps[f"{gap_n}_at_{d}"] = float(g.gap[i])
        gaps[f"{gap_n}_at_{d}_se"] = float(g.gap_se[i])
    return CrossoverSummary(
        cross=crossings,
        peak_sigma={n: float(c.sigma_peak) for n, c in cross.items()},
        at1={n: float(c.norm_at_1) for n, c in cross.items()},
        at1_pred={n: float(np.sqrt(np.e / n)) for n in cross},
        gap=gaps,
    )


def format_crossovers(cross: Mapping[int, Crossover]) -> str:
    """Two lines per n: ‖J‖ at σ = 1 against √(e/n) and the peak σ; then the crossover."""
    lines = []
    for n, c in cross.items():
        lines.append(
            f"n = {n:4d}: ‖J‖ at σ = 1 {c.norm_at_1:.4f} "
            f"(√(e/n) = {np.sqrt(np.e / n):.4f}); peak at σ = {c.sigma_peak:.2f};"
        )
        lines.append(
            f"          crossover d_k = {c.d_cross:,.0f} ± {c.d_cross_se:,.0f}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class InitLogitScale:
    """Scale of initial logits under N(0, ``weight_std``²) projections of unit-scale
    inputs of width ``width``: ``qk_std`` = weight_std·√width, the std of a query or key
    entry, and ``sigma_factor`` = weight_std²·width, the std of q·k over √d_k."""

    qk_std: float
    sigma_factor: float


def init_logit_scale(weight_std: float, width: int) -> InitLogitScale:
    """:class:`InitLogitScale` for weights of std ``weight_std`` on inputs of ``width``."""
    std = finite_float(weight_std, "weight_std", positive=True)
    n = positive_int(width, "width")
    return InitLogitScale(qk_std=float(std * np.sqrt(n)), sigma_factor=std**2 * n)


@dataclass(frozen=True)
class QueryGradientSummary:
    """The numbers quoted from a :class:`~numscale.softmax_grad.QueryGradientSweep`.

    ``ratio``: ``"d"`` → unscaled/scaled mean ‖∂L/∂q‖ at d_k = d and ``"d_se"`` → its
    standard error; ``ratio_min``: the smallest ratio of the sweep; ``keys_unscaled``:
    d → effective number of keys receiving gradient, unscaled; ``keys_scaled_min`` /
    ``keys_scaled_max``: extremes of that number over the sweep, scaled.
    """

    ratio: dict[str, float]
    ratio_min: float
    keys_unscaled: dict[int, float]
    keys_scaled_min: float
    keys_scaled_max: float


def query_gradient_summary(
    sweep: QueryGradientSweep, quoted: Sequence[int]
) -> QueryGradientSummary:
    """Summarize ``sweep`` at the head widths ``quoted`` (grid points of ``sweep.dims``)."""
    of_type(sweep, QueryGradientSweep, "sweep")
    at = {d: _index_of(sweep.dims, d, "quoted") for d in quoted}
    ratio: dict[str, float] = {}
    for d, i in at.items():
        ratio[f"{d}"] = float(sweep.ratio[i])
        ratio[f"{d}_se"] = float(sweep.ratio_se[i])
    return QueryGradientSummary(
        ratio=ratio,
        ratio_min=float(sweep.ratio.min()),
        keys_unscaled={d: float(sweep.keys_unscaled[i]) for d, i in at.items()},
        keys_scaled_min=float(sweep.keys_scaled.min()),
        keys_scaled_max=float(sweep.keys_scaled.max()),
    )


def format_query_gradients(sweep: QueryGradientSweep) -> str:
    """Two lines per head width: the gradient ratio ± SE, then the effective keys."""
    lines = []
    for i, d in enumerate(sweep.dims):
        lines.append(
            f"d_k = {d:4d}: ‖∂L/∂q‖ unscaled/scaled = "
            f"{sweep.ratio[i]:5.2f} ± {sweep.ratio_se[i]:.2f};"
        )
        lines.append(
            f"            keys receiving gradient "
            f"{sweep.keys_unscaled[i]:5.2f} vs {sweep.keys_scaled[i]:5.2f}"
        )
    return "\n".join(lines)


def format_reparam_gaps(gaps: Mapping[tuple[str, int], float]) -> str:
    """One line per (optimizer, power of s in the learning rate): the relative gap."""
    return "\n".join(
        f"{opt:4s} with learning rate s^{power}·η: max relative difference {gap:.1e}"
        for (opt, power), gap in gaps.items()
    )


@dataclass(frozen=True)
class LogitScaleEnds:
    """The ends of a :class:`~numscale.softmax_grad.LogitScaleSweep`.

    ``ce_wrong_start`` / ``ce_wrong_end``: ‖p − e_y‖ for the smallest-logit target at
    the first and last α; ``ce_right_end``: the same for the largest-logit target at the
    last α; ``jac_end``: ‖J‖_F at the last α; ``sqrt2``: √2, the limit of ce_wrong.
    """

    ce_wrong_start: float
    ce_wrong_end: float
    ce_right_end: float
    jac_end: float
    sqrt2: float


def logit_scale_ends(sweep: LogitScaleSweep) -> LogitScaleEnds:
    """:class:`LogitScaleEnds` of ``sweep`` (curves of shape ``(k,)``, k ≥ 1)."""
    of_type(sweep, LogitScaleSweep, "sweep")
    w = as_float_array(sweep.ce_wrong, "sweep.ce_wrong", ndim=1)
    r = as_float_array(sweep.ce_right, "sweep.ce_right", ndim=1)
    j = as_float_array(sweep.jacobian, "sweep.jacobian", ndim=1)
    return LogitScaleEnds(
        ce_wrong_start=float(w[0]),
        ce_wrong_end=float(w[-1]),
        ce_right_end=float(r[-1]),
        jac_end=float(j[-1]),
        sqrt2=float(np.sqrt(2)),
    )


@dataclass(frozen=True)
class RoundedTwoKeys:
    """A two-logit softmax at the gap where its top weight rounds to 1 (the exercise).

    ``gap``: the logit gap; ``probs``: the rounded weights (p1, p2); ``two_p1p2``:
    2·p1·p2 (the norm if p1 + p2 were 1); ``norm_rounded``: ‖J‖_F of diag(p) − ppᵀ from
    the rounded p; ``norm_autograd``: ‖J‖_F of autograd's Jacobian.
    """

    gap: float
    probs: tuple[float, float]
    two_p1p2: float
    norm_rounded: float
    norm_autograd: float


def rounded_two_keys(
    gap: float, p: torch.Tensor, jac_rounded: np.ndarray, jac_torch: torch.Tensor
) -> RoundedTwoKeys:
    """:class:`RoundedTwoKeys` from the softmax ``p`` ``(2,)`` (a tensor, any float
    dtype: 2·p1·p2 is computed in it), the Jacobian from the rounded p ``(2, 2)`` and
    autograd's ``(2, 2)``."""
    if not isinstance(p, torch.Tensor) or p.shape != (2,):
        raise ValueError("p must be a tensor of shape (2,)")
    if not isinstance(jac_torch, torch.Tensor) or jac_torch.shape != (2, 2):
        raise ValueError("jac_torch must be a tensor of shape (2, 2)")
    rounded = as_float_array(jac_rounded, "jac_rounded", ndim=2)
    return RoundedTwoKeys(
        gap=finite_float(gap, "gap"),
        probs=(float(p[0]), float(p[1])),
        two_p1p2=2 * float(p[0] * p[1]),
        norm_rounded=float(np.linalg.norm(rounded)),
        norm_autograd=float(torch.linalg.norm(jac_torch)),
    )


def format_rounded_two_keys(rec: RoundedTwoKeys) -> str:
    """Three lines: the gap and p, the two norms, 2·p1·p2."""
    return (
        f"gap {rec.gap:.4f}: p = {list(rec.probs)}\n"
        f"‖J‖_F from the rounded p: {rec.norm_rounded:.3e}; "
        f"autograd: {rec.norm_autograd:.3e}\n"
        f"2·p1·p2 = {rec.two_p1p2:.3e}"
    )
