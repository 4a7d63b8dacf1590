"""The quantities the trained-attention chapter quotes, as result records.

Each builder takes per-head arrays of :mod:`numscale.attention_rows` (``(L, H)``: L
layers, H heads) or the loss curve of :mod:`numscale.llama_runs`' scale sweep, and
returns a frozen dataclass of plain numbers that the chapter glues in one call; the
``format_*`` functions return what it prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp
from numscale.checks import as_float_array, finite_float, of_type, positive_int


def _heads(value: object, name: str) -> np.ndarray:
    return as_float_array(value, name, ndim=2)


def _uniform(value: object, name: str, key: str) -> float:
    if not isinstance(value, Mapping) or key not in value:
        raise ValueError(f"{name} must be a uniform_reference mapping with {key!r}")
    return finite_float(value[key], f"{name}[{key!r}]")


# -------------------------------------------------------------------- logit scales


@dataclass(frozen=True)
class InitSummary:
    """The logit scale at initialization (see :func:`init_summary`)."""

    init_std_predicted: float  #: d_model σ_w², the prediction without the ε correction
    init_std_corrected: float  #: the prediction with RMSNorm's ε (given)
    init_std_min: float  #: smallest pooled std of a head's scaled logits
    init_std_max: float  #: largest
    init_std_mean: float  #: mean over the heads
    init_std_sd: float  #: standard deviation over the heads (ddof = 1)
    init_norm_entropy_min: float  #: smallest head entropy / uniform entropy
    init_unit_ratio: float  #: 1 / init_std_corrected: how far below unit std


def init_summary(
    pooled: np.ndarray,
    normalized_entropy: np.ndarray,
    *,
    predicted: float,
    corrected: float,
) -> InitSummary:
    """Summarize the ``(L, H)`` pooled logit stds and normalized entropies of the
    model at initialization against the predictions ``predicted`` (d_model σ_w²) and
    ``corrected`` (with the ε of RMSNorm)."""
    pooled = _heads(pooled, "pooled")
    normalized_entropy = _heads(normalized_entropy, "normalized_entropy")
    corrected = finite_float(corrected, "corrected", positive=True)
    return InitSummary(
        init_std_predicted=finite_float(predicted, "predicted", positive=True),
        init_std_corrected=corrected,
        init_std_min=float(pooled.min()),
        init_std_max=float(pooled.max()),
        init_std_mean=float(pooled.mean()),
        init_std_sd=float(pooled.std(ddof=1)),
        init_norm_entropy_min=float(normalized_entropy.min()),
        init_unit_ratio=1 / corrected,
    )


def format_init(summary: InitSummary) -> str:
    """The pooled std of the scaled logits at initialization: a header line, then the
    corrected prediction against the heads' measured values."""
    s = of_type(summary, InitSummary, "summary")
    return (
        "pooled std of the scaled logits at initialization:\n"
        f"predicted {s.init_std_corrected:.4f}; measured per head "
        f"{s.init_std_min:.4f} … {s.init_std_max:.4f} (mean {s.init_std_mean:.4f})"
    )


@dataclass(frozen=True)
class LogitScaleSummary:
    """The trained heads' logit scales (see :func:`logit_scale_summary`)."""

    n_predicted: int  #: predicted tokens measured
    within_min: float  #: smallest within-row std over the heads
    within_max: float  #: largest
    within_median: float  #: median
    pooled_min: float  #: smallest pooled std
    pooled_max: float  #: largest pooled std
    within_over_init_median: float  #: median over heads of within / within at init


def logit_scale_summary(
    pooled: np.ndarray, within: np.ndarray, init_within: np.ndarray, n_predicted: int
) -> LogitScaleSummary:
    """Summarize ``(L, H)`` pooled and within-row stds of the trained heads and the
    within-row stds ``init_within`` of the same heads at initialization."""
    pooled = _heads(pooled, "pooled")
    within = _heads(within, "within")
    init_within = _heads(init_within, "init_within")
    if not pooled.shape == within.shape == init_within.shape:
        raise ValueError(
            "pooled, within and init_within must have one shape, got "
            f"{pooled.shape}, {within.shape}, {init_within.shape}"
        )
    return LogitScaleSummary(
        n_predicted=positive_int(n_predicted, "n_predicted"),
        within_min=float(within.min()),
        within_max=float(within.max()),
        within_median=float(np.median(within)),
        pooled_min=float(pooled.min()),
        pooled_max=float(pooled.max()),
        within_over_init_median=float(np.median(within / init_within)),
    )


@dataclass(frozen=True)
class EntropySummary:
    """The trained heads' attention entropies (see :func:`entropy_summary`)."""

    entropy_min: float  #: smallest mean entropy of a head (nats)
    entropy_max: float  #: largest
    uniform_entropy: float  #: mean entropy uniform attention gives on the same rows
    norm_entropy_min: float  #: smallest mean H / ln(t + 1) of a head
    norm_entropy_max: float  #: largest
    norm_entropy_median: float  #: median over the heads


def entropy_summary(
    entropy: np.ndarray, normalized: np.ndarray, uniform: Mapping[str, float]
) -> EntropySummary:
    """Summarize ``(L, H)`` mean and normalized entropies against
    :func:`numscale.attention_rows.uniform_reference` (``uniform``)."""
    entropy = _heads(entropy, "entropy")
    normalized = _heads(normalized, "normalized")
    return EntropySummary(
        entropy_min=float(entropy.min()),
        entropy_max=float(entropy.max()),
        uniform_entropy=_uniform(uniform, "uniform", "entropy"),
        norm_entropy_min=float(normalized.min()),
        norm_entropy_max=float(normalized.max()),
        norm_entropy_median=float(np.median(normalized)),
    )


@dataclass(frozen=True)
class SinkSummary:
    """The weight on the first token (see :func:`sink_summary`)."""

    first_min: float  #: smallest mean first-token weight of a head (rows t ≥ 1)
    first_max: float  #: largest
    first_uniform: float  #: what uniform attention gives on the same rows
    first_max_over_uniform: float  #: first_max / first_uniform
    heads_above_uniform: int  #: heads giving the first token more than uniform
    late_first_max: float  #: largest head mean over the late rows
    late_uniform: float  #: uniform's first-token weight on the late rows
    init_first_max: float  #: largest head mean at initialization
    init_first_uniform: float  #: uniform's weight on the rows measured at init


def sink_summary(
    first: np.ndarray,
    late: np.ndarray,
    init_first: np.ndarray,
    *,
    uniform: Mapping[str, float],
    uniform_late: Mapping[str, float],
    uniform_init: Mapping[str, float],
) -> SinkSummary:
    """Summarize ``(L, H)`` mean first-token weights (all rows t ≥ 1, late rows, at
    initialization) against the :func:`numscale.attention_rows.uniform_reference` of
    the same rows."""
    first = _heads(first, "first")
    late = _heads(late, "late")
    init_first = _heads(init_first, "init_first")
    first_uniform = _uniform(uniform, "uniform", "first_weight")
    return SinkSummary(
        first_min=float(first.min()),
        first_max=float(first.max()),
        first_uniform=first_uniform,
        first_max_over_uniform=float(first.max() / first_uniform),
        heads_above_uniform=int((first > first_uniform).sum()),
        late_first_max=float(late.max()),
        late_uniform=_uniform(uniform_late, "uniform_late", "first_weight"),
        init_first_max=float(init_first.max()),
        init_first_uniform=_uniform(uniform_init, "uniform_init", "first_weight"),
    )


# ---------------------------------------------------------------- the scale sweep


@dataclass(frozen=True)
class SweepGrid:
    """The multipliers of the scale sweep the prose names (see :func:`sweep_grid`):
    inputs the page chose, not measurements."""

    n_multipliers: int  #: grid size
    c_inv_sqrt_dk: float  #: 1/√d_k, the multiplier that turns 1/√d_k into 1/d_k
    c_dk_on_grid: float  #: the grid point nearest to it
    c_above: float  #: the grid point after the one nearest to 1
    c_below: float  #: the grid point before it


def _nearest(grid: np.ndarray, c: float) -> int:
    return int(np.argmin(np.abs(grid - c)))


def sweep_grid(multipliers: np.ndarray, inverse_sqrt_dk: float) -> SweepGrid:
    """The named points of the increasing ``(m,)`` grid ``multipliers`` (1 must have a
    neighbour on each side)."""
    c = as_float_array(multipliers, "multipliers", ndim=1)
    one = _nearest(c, 1.0)
    if not 0 < one < c.size - 1:
        raise ValueError("multipliers must have a point on each side of 1")
    inverse_sqrt_dk = finite_float(inverse_sqrt_dk, "inverse_sqrt_dk", positive=True)
    return SweepGrid(
        n_multipliers=c.size,
        c_inv_sqrt_dk=inverse_sqrt_dk,
        c_dk_on_grid=float(c[_nearest(c, inverse_sqrt_dk)]),
        c_above=float(c[one + 1]),
        c_below=float(c[one - 1]),
    )


@dataclass(frozen=True)
class SweepSummary:
    """The loss against the scale multiplier c (see :func:`sweep_summary`)."""

    loss_c1: float  #: loss at c = 1 (the grid point nearest to 1)
    loss_c1_se: float  #: its standard error across stories
    loss_dk: float  #: loss at the grid point nearest to 1/√d_k
    diff_dk: float  #: its loss minus the loss at c = 1, paired over stories
    diff_dk_se: float  #: the paired standard error
    c_best_grid: float  #: the grid point with the smallest loss
    c_vertex: float  #: minimum of the parabola in ln c (given)
    c_vertex_lo: float  #: its bootstrap interval (given)
    c_vertex_hi: float
    diff_above: float  #: paired loss difference at the grid point after c = 1
    diff_above_se: float
    diff_below: float  #: paired loss difference at the grid point before c = 1
    diff_below_se: float
    loss_c_max: float  #: loss at the largest multiplier
    loss_c_min: float  #: loss at the smallest multiplier


def sweep_summary(
    multipliers: np.ndarray,
    loss: tuple[np.ndarray, np.ndarray],
    diff: tuple[np.ndarray, np.ndarray],
    vertex: tuple[float, float, float],
    inverse_sqrt_dk: float,
) -> SweepSummary:
    """Read the sweep's curves at the points of :func:`sweep_grid`.

    ``loss`` and ``diff`` are (values, standard errors) pairs of ``(m,)`` arrays on the
    ``(m,)`` grid ``multipliers``: the loss and the paired difference from c = 1;
    ``vertex`` is (vertex, interval low, interval high).
    """
    c = as_float_array(multipliers, "multipliers", ndim=1)
    sweep_grid(c, inverse_sqrt_dk)  # validates the grid
    m, m_se = (as_float_array(a, "loss", ndim=1) for a in loss)
    d, d_se = (as_float_array(a, "diff", ndim=1) for a in diff)
    if not m.shape == m_se.shape == d.shape == d_se.shape == c.shape:
        raise ValueError("loss and diff must hold (m,) arrays on the grid multipliers")
    if len(vertex) != 3:
        raise ValueError("vertex must be (vertex, low, high)")
    one, dk = _nearest(c, 1.0), _nearest(c, inverse_sqrt_dk)
    return SweepSummary(
        loss_c1=float(m[one]),
        loss_c1_se=float(m_se[one]),
        loss_dk=float(m[dk]),
        diff_dk=float(d[dk]),
        diff_dk_se=float(d_se[dk]),
        c_best_grid=float(c[np.argmin(m)]),
        c_vertex=finite_float(vertex[0], "vertex"),
        c_vertex_lo=finite_float(vertex[1], "vertex"),
        c_vertex_hi=finite_float(vertex[2], "vertex"),
        diff_above=float(d[one + 1]),
        diff_above_se=float(d_se[one + 1]),
        diff_below=float(d[one - 1]),
        diff_below_se=float(d_se[one - 1]),
        loss_c_max=float(m[-1]),
        loss_c_min=float(m[0]),
    )


def format_sweep(
    multipliers: np.ndarray,
    loss: tuple[np.ndarray, np.ndarray],
    diff: tuple[np.ndarray, np.ndarray],
) -> str:
    """One line per multiplier: loss ± SE and the paired difference from c = 1."""
    c = as_float_array(multipliers, "multipliers", ndim=1)
    columns = [as_float_array(a, "loss", ndim=1) for a in loss]
    columns += [as_float_array(a, "diff", ndim=1) for a in diff]
    if any(col.shape != c.shape for col in columns):
        raise ValueError("loss and diff must hold (m,) arrays on the grid multipliers")
    return "\n".join(
        f"c = {ci:5.3f}: loss {m:.4f} ± {e:.4f};  minus loss at c = 1: "
        f"{dm:+.4f} ± {de:.4f}"
        for ci, m, e, dm, de in zip(c, *columns)
    )


# --------------------------------------------------------------- float16 headroom


@dataclass(frozen=True)
class HeadroomSummary:
    """Logits against the exp overflow of 16-bit formats (see
    :func:`headroom_summary`)."""

    fp16_ln_max: float  #: ln of float16's largest value: exp overflows above it
    fp16_max: float  #: float16's largest value
    bf16_ln_max: float  #: the same for bfloat16
    attn_logit_max: float  #: largest scaled attention logit (given)
    #: % of the real rows t ≥ 1 (all heads) whose largest logit exceeds fp16_ln_max
    rows_above_pct: float
    heads_with_rows_above: int  #: heads with at least one such row (t ≥ 1)
    output_logit_max: float  #: largest |output logit| (given)


def headroom_summary(
    fraction_above: np.ndarray,
    attn_logit_max: float,
    output_logit_max: float,
) -> HeadroomSummary:
    """Summarize the ``(L, H)`` share of each head's real rows t ≥ 1 whose largest logit
    exceeds float16's exp threshold
    (:func:`numscale.attention_rows.fraction_rows_above`). Every head has the same rows,
    so the share over all rows is the mean of the heads' shares: both numbers count
    one set of rows."""
    fraction_above = _heads(fraction_above, "fraction_above")
    if np.any((fraction_above < 0) | (fraction_above > 1)):
        raise ValueError("fraction_above must hold shares between 0 and 1")
    fp16 = fp.format_info(torch.float16)
    return HeadroomSummary(
        fp16_ln_max=float(fp16.ln_max),
        fp16_max=float(fp16.max),
        bf16_ln_max=float(fp.format_info(torch.bfloat16).ln_max),
        attn_logit_max=finite_float(attn_logit_max, "attn_logit_max"),
        rows_above_pct=100 * float(fraction_above.mean()),
        heads_with_rows_above=int((fraction_above > 0).sum()),
        output_logit_max=finite_float(output_logit_max, "output_logit_max"),
    )


def format_headroom(summary: HeadroomSummary) -> str:
    """float16's exp threshold against the largest attention and output logits."""
    s = of_type(summary, HeadroomSummary, "summary")
    return (
        f"ln(float16 max) = {s.fp16_ln_max:.3f}; largest attention logit "
        f"{s.attn_logit_max:.2f}; largest |output logit| {s.output_logit_max:.2f}"
    )
