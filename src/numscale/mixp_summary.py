"""Result records of ``book/mixed_precision.md``: the numbers each section quotes.

Each builder takes what the chapter computed with :mod:`numscale.mixed_precision` and
returns a frozen dataclass of the numbers a section glues (the prose quotes most of
them; a few are kept for the record); the chapter glues it with
:func:`numscale.report.glue_record`. The arithmetic is the one the chapter did inline
before (same order, same dtypes). The ``format_*`` functions return the tables the
chapter prints. Percentages are in percent (100 × a fraction).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp, mixed_precision
from numscale.checks import as_float_array, as_float_tensor

#: short names of :data:`numscale.mixed_precision.RULES`, as the glued names use them
RULE_KEYS = {
    "bfloat16": "bf16",
    "fp32 master": "master",
    "Kahan": "kahan",
    "stochastic rounding": "sr",
}


def _table(table: object, name: str, rows: Sequence[str]) -> Mapping:
    """A :func:`numscale.mixed_precision.classify_tensors` table holding ``rows``."""
    if not isinstance(table, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(table).__name__}")
    missing = [r for r in rows if r not in table]
    if missing:
        raise ValueError(f"{name} lacks the rows {missing}")
    return table


def _flat_grads(grads: object, name: str = "grads") -> dict[str, torch.Tensor]:
    if not isinstance(grads, Mapping) or not grads:
        raise ValueError(f"{name} must be a non-empty mapping of tensors")
    return {k: as_float_tensor(g, f"{name}[{k!r}]") for k, g in grads.items()}


# ------------------------------------------------------------------ gradient range


@dataclass(frozen=True)
class RangeSummary:
    """One gradient against the 16-bit formats' ranges.

    ``fp16_max``, ``fp16_tiny``, ``fp16_subnormal``, ``bf16_tiny``: float16's largest,
    smallest normal and smallest subnormal numbers, bfloat16's smallest normal one.
    ``n_grads``: nonzero gradient entries; ``n_tokens``: predicted tokens.
    ``<format>_zero_pct``/``<format>_subnormal_pct``: percent of the entries a cast
    makes zero / subnormal; ``fp16_emb_zero_pct``: the same for the token embedding
    alone. ``grad_abs_max``, ``grad_abs_median``: of the absolute entries.
    """

    fp16_max: float
    fp16_tiny: float
    fp16_subnormal: float
    bf16_tiny: float
    n_grads: int
    n_tokens: int
    fp16_zero_pct: float
    fp16_subnormal_pct: float
    fp16_emb_zero_pct: float
    bf16_zero_pct: float
    bf16_subnormal_pct: float
    grad_abs_max: float
    grad_abs_median: float


def range_summary(
    fp16_table: Mapping, bf16_table: Mapping, flat: torch.Tensor, n_tokens: int
) -> RangeSummary:
    """:class:`RangeSummary` from the :func:`numscale.mixed_precision.classify_tensors`
    tables of one gradient for float16 and bfloat16 (with rows ``"all"`` and
    ``"token_embedding"``), all its entries ``flat`` (n,) and the ``n_tokens``
    predicted."""
    fp16_table = _table(fp16_table, "fp16_table", ("all", "token_embedding"))
    bf16_table = _table(bf16_table, "bf16_table", ("all",))
    flat = as_float_tensor(flat, "flat")
    fp16 = fp.format_info(torch.float16)
    return RangeSummary(
        fp16_max=fp16.max,
        fp16_tiny=fp16.smallest_normal,
        fp16_subnormal=fp16.smallest_subnormal,
        bf16_tiny=fp.format_info(torch.bfloat16).smallest_normal,
        n_grads=int(fp16_table["all"]["n"]),
        n_tokens=int(n_tokens),
        fp16_zero_pct=100 * fp16_table["all"]["zero"],
        fp16_subnormal_pct=100 * fp16_table["all"]["subnormal"],
        fp16_emb_zero_pct=100 * fp16_table["token_embedding"]["zero"],
        bf16_zero_pct=100 * bf16_table["all"]["zero"],
        bf16_subnormal_pct=100 * bf16_table["all"]["subnormal"],
        grad_abs_max=float(flat.abs().max()),
        grad_abs_median=float(flat.abs().median()),
    )


def format_classes(table: Mapping) -> str:
    """One line per tensor of a float16 :func:`numscale.mixed_precision.classify_tensors`
    ``table``: percent of its entries that become zero and subnormal."""
    return "\n".join(
        f"{name:16s} float16: zero {100 * row['zero']:5.1f}%  "
        f"subnormal {100 * row['subnormal']:5.1f}%"
        for name, row in _table(table, "table", ()).items()
    )


# ------------------------------------------------------------------ static loss scale


@dataclass(frozen=True)
class ScaleSummary:
    """Static loss scales S = 2^k over a grid of k, for a cast and a float16 backward.

    ``headroom_log2``: log2(float16 max / max|g|), and ``headroom_floor`` its floor.
    Cast of the float32 gradient times S: ``best_k``, the k of least loss among the
    scales where no entry overflows, and ``best_lost_pct`` that loss (percent of
    entries zero or infinite); ``no_scale_lost_pct``: the loss at the first grid
    point; ``first_overflow_k``/``_n``: the first k where entries overflow, and how
    many. Float16 backward: ``half_zero_pct_s1``, percent of zero entries at the
    first grid point; ``half_zero_pct_min`` and ``half_zero_min_k``, the fewest among
    the scales with no inf or NaN and where; ``half_first_inf_k``: the first k with
    inf or NaN. ``short_grad_abs_max``: largest float32 weight-gradient entry of the
    backward's batch, ``short_headroom_log2`` its headroom; ``half_first_inf_fine_k``:
    the first k with inf or NaN on the finer grid.
    """

    headroom_log2: float
    headroom_floor: int
    best_k: int
    first_overflow_k: int
    first_overflow_n: int
    best_lost_pct: float
    no_scale_lost_pct: float
    half_zero_pct_s1: float
    half_zero_pct_min: float
    half_zero_min_k: int
    half_first_inf_k: int
    short_grad_abs_max: float
    short_headroom_log2: float
    half_first_inf_fine_k: int


def _sweep(sweep: object, name: str, n: int) -> Mapping:
    if not isinstance(sweep, Mapping) or not {"zero", "nonfinite"} <= set(sweep):
        raise ValueError(f"{name} must map 'zero' and 'nonfinite' (a scale sweep)")
    for key in ("zero", "nonfinite"):
        if np.shape(sweep[key]) != (n,):
            raise ValueError(f"{name}[{key!r}] must have shape ({n},)")
    return sweep


def scale_summary(
    exponents: np.ndarray,
    cast: Sequence[Mapping[str, float]],
    sweep: Mapping[str, np.ndarray],
    flat: torch.Tensor,
    short_grads: Mapping[str, torch.Tensor],
    fine_k: np.ndarray,
    fine: Mapping[str, np.ndarray],
) -> ScaleSummary:
    """:class:`ScaleSummary` of a grid of ``exponents`` (K,) (ints, S = 2^k): ``cast``,
    the K :func:`numscale.mixed_precision.classify` results of ``flat`` (n,) · S in
    float16; ``sweep``, the :func:`numscale.mixed_precision.static_scale_sweep` of a
    float16 model at those scales, whose batch has the float32 gradients
    ``short_grads``; ``fine``, the sweep at the finer grid ``fine_k`` (F,)."""
    exponents = np.asarray(exponents)
    if exponents.ndim != 1 or not np.issubdtype(exponents.dtype, np.integer):
        raise TypeError("exponents must be a 1-d array of integers")
    if len(cast) != exponents.size:
        raise ValueError(f"cast must hold {exponents.size} classifications")
    sweep = _sweep(sweep, "sweep", exponents.size)
    fine = _sweep(fine, "fine", np.asarray(fine_k).size)
    flat = as_float_tensor(flat, "flat")
    short_grads = _flat_grads(short_grads, "short_grads")
    fp16_max = fp.format_info(torch.float16).max
    headroom = np.log2(fp16_max / float(flat.abs().max()))
    lost = np.array([c["zero"] + c["overflow"] for c in cast])
    overflow = np.array([c["overflow"] for c in cast])
    safe = overflow == 0  # a single inf makes a scaler skip the step
    half_ok = sweep["nonfinite"] == 0  # float16 backward scales with no inf or NaN
    # the record describes where a grid passes from safe to overflowing: the coarse
    # grids must hold both (no "first overflow" or "best safe scale" otherwise), the
    # fine one (refining the binades below the coarse first inf) an overflow
    for name, ok in (("cast", safe), ("sweep", half_ok)):
        if ok.all() or not ok.any():
            raise ValueError(f"{name} must both fit and overflow somewhere on its grid")
    if (fine["nonfinite"] == 0).all():
        raise ValueError("fine must overflow somewhere on its grid")
    best = int(np.flatnonzero(safe)[np.argmin(lost[safe])])
    first_over = int(np.argmax(~safe))
    half_best = int(np.flatnonzero(half_ok)[np.argmin(sweep["zero"][half_ok])])
    half_first_inf = int(np.argmax(~half_ok))
    short_max = max(float(g.abs().max()) for g in short_grads.values())
    return ScaleSummary(
        headroom_log2=float(headroom),
        headroom_floor=int(np.floor(headroom)),
        best_k=int(exponents[best]),
        first_overflow_k=int(exponents[first_over]),
        first_overflow_n=round(overflow[first_over] * flat.numel()),
        best_lost_pct=float(100 * lost[best]),
        no_scale_lost_pct=float(100 * lost[0]),
        half_zero_pct_s1=float(100 * sweep["zero"][0]),
        half_zero_pct_min=float(100 * sweep["zero"][half_best]),
        half_zero_min_k=int(exponents[half_best]),
        half_first_inf_k=int(exponents[half_first_inf]),
        short_grad_abs_max=short_max,
        short_headroom_log2=float(np.log2(fp16_max / short_max)),
        half_first_inf_fine_k=int(np.asarray(fine_k)[np.argmax(fine["nonfinite"] > 0)]),
    )


def format_scale_sweep(
    exponents: np.ndarray,
    cast: Sequence[Mapping[str, float]],
    sweep: Mapping[str, np.ndarray],
) -> str:
    """One line per k of ``exponents``: percent of cast entries zero and overflowing
    (four decimals: a few entries of a few hundred thousand show), and of
    float16-backward entries zero and inf/NaN."""
    sweep = _sweep(sweep, "sweep", len(cast))
    return "\n".join(
        f"S = 2^{k:2d}: cast zero {100 * c['zero']:5.2f}%, overflow "
        f"{100 * c['overflow']:7.4f}% | fp16 backward zero {100 * z:5.2f}%, "
        f"inf/NaN {100 * bad:5.2f}%"
        for k, c, z, bad in zip(exponents, cast, sweep["zero"], sweep["nonfinite"])
    )


# ------------------------------------------------------------------ dynamic scaling


@dataclass(frozen=True)
class DynamicSummary:
    """A run of :func:`numscale.mixed_precision.train_fp16`.

    ``dyn_skipped``/``dyn_applied``: steps skipped / that applied an update;
    ``dyn_first_good``: skipped steps before the first update; ``dyn_first_good_log2``:
    log2 of the scale after them (the last scale halved if every step was skipped);
    ``dyn_log2_min``: log2 of the smallest scale used; ``dyn_zero_pct_max``: the
    largest percent of zero gradient entries in an applied step (0 if none).
    """

    dyn_skipped: int
    dyn_applied: int
    dyn_first_good: int
    dyn_first_good_log2: float
    dyn_log2_min: float
    dyn_zero_pct_max: float


def _run(run: object) -> mixed_precision.Fp16Run:
    if not isinstance(run, mixed_precision.Fp16Run):
        raise TypeError(f"run must be an Fp16Run, got {type(run).__name__}")
    if run.scale.size == 0:
        raise ValueError("run must have at least one step")
    return run


def dynamic_summary(run: mixed_precision.Fp16Run) -> DynamicSummary:
    """:class:`DynamicSummary` of ``run`` (arrays of its steps)."""
    run = _run(run)
    opening_skips = int(np.cumprod(run.skipped).sum())  # skips before the first update
    scale_after = np.append(run.scale, run.scale[-1] / 2)[opening_skips]
    return DynamicSummary(
        dyn_skipped=int(run.skipped.sum()),
        dyn_applied=int((~run.skipped).sum()),
        dyn_first_good=opening_skips,
        dyn_first_good_log2=float(np.log2(scale_after)),
        dyn_log2_min=float(np.log2(run.scale.min())),
        dyn_zero_pct_max=float(100 * run.zero_fraction[~run.skipped].max(initial=0.0)),
    )


def format_run(run: mixed_precision.Fp16Run) -> str:
    """Two lines: log2 of the scale at every step of ``run``, and which were skipped."""
    run = _run(run)
    return (
        f"log2 S: {np.log2(run.scale).astype(int)}\nskipped: {run.skipped.astype(int)}"
    )


# ------------------------------------------------------------------ swamping


@dataclass(frozen=True)
class SwampSummary:
    """Single bfloat16 updates of the weights, SGD's and Adam's first step.

    ``sgd_swamped_pct``/``adam_swamped_pct``: learning-rate index (as a str) ->
    percent of the nonzero updates lost. At the first learning rate:
    ``adam_lost_eps_share_0``, percent of the lost Adam updates that are
    ε-dominated; ``adam_sign_like_swamped_pct_0``, percent of the other (sign-like)
    nonzero updates that are lost. ``w_abs_median``: median absolute weight.
    """

    sgd_swamped_pct: dict[str, float]
    adam_swamped_pct: dict[str, float]
    adam_lost_eps_share_0: float
    adam_sign_like_swamped_pct_0: float
    w_abs_median: float


def swamp_summary(
    w: torch.Tensor,
    adam_direction: torch.Tensor,
    eps_small: torch.Tensor,
    swamp: Mapping[float, tuple[float, float]],
) -> SwampSummary:
    """:class:`SwampSummary` of the weights ``w`` (n,) float32, Adam's first update
    direction ``adam_direction`` (n,), the mask ``eps_small`` (n,) of its
    ε-dominated entries, and ``swamp``: learning rate -> (SGD, Adam) swamped fractions
    (:func:`numscale.mixed_precision.swamped_fraction`), the first rate first."""
    w = as_float_tensor(w, "w", ndim=1)
    adam_direction = as_float_tensor(adam_direction, "adam_direction", ndim=1)
    if not isinstance(eps_small, torch.Tensor) or eps_small.dtype != torch.bool:
        raise TypeError("eps_small must be a bool tensor")
    if not w.shape == adam_direction.shape == eps_small.shape:
        raise ValueError("w, adam_direction and eps_small must have one shape")
    if not isinstance(swamp, Mapping) or not swamp:
        raise ValueError("swamp must map learning rates to (SGD, Adam) fractions")
    lrs = list(swamp)
    lost_adam = mixed_precision.swamped(w.to(torch.bfloat16), -lrs[0] * adam_direction)
    sign_like = ~eps_small & (adam_direction != 0)
    return SwampSummary(
        sgd_swamped_pct={str(i): 100 * swamp[lr][0] for i, lr in enumerate(lrs)},
        adam_swamped_pct={str(i): 100 * swamp[lr][1] for i, lr in enumerate(lrs)},
        adam_lost_eps_share_0=100
        * float((lost_adam & eps_small).sum())
        / max(int(lost_adam.sum()), 1),
        adam_sign_like_swamped_pct_0=100
        * float((lost_adam & sign_like).sum())
        / max(int(sign_like.sum()), 1),
        w_abs_median=float(w.abs().median()),
    )


def format_swamp(swamp: Mapping[float, tuple[float, float]]) -> str:
    """One line per learning rate of ``swamp``: percent of SGD and Adam updates lost."""
    return "\n".join(
        f"lr {lr:.0e}: SGD {100 * sgd:5.1f}% swamped, Adam-like {100 * adam:5.1f}%"
        for lr, (sgd, adam) in swamp.items()
    )


# ------------------------------------------------------------------ the three fixes


@dataclass(frozen=True)
class FixesSummary:
    """Repeated updates by each rule of :data:`numscale.mixed_precision.RULES`.

    ``moved``, ``frozen``, ``relative_error``: ``"<rule key>_<i>"`` (keys of
    :data:`RULE_KEYS`, i the learning-rate index) -> the
    :func:`numscale.mixed_precision.realized_fraction` entry. ``frozen_master_eps_share_1``:
    at the second learning rate, percent of the entries the float32 master copy left
    frozen (nonzero update, unmoved) that are ε-dominated.
    """

    moved: dict[str, float]
    frozen: dict[str, float]
    relative_error: dict[str, float]
    frozen_master_eps_share_1: float


def fixes_summary(
    fixes: Mapping[tuple[float, str], Mapping[str, float]],
    finals: Mapping[tuple[float, str], torch.Tensor],
    w_sample: torch.Tensor,
    direction_sample: torch.Tensor,
    eps_small_sample: torch.Tensor,
) -> FixesSummary:
    """:class:`FixesSummary` of ``fixes`` and ``finals``: ``(lr, rule) ->``
    :func:`numscale.mixed_precision.realized_fraction` and the final weights (m,),
    for at least two learning rates (in order) and every rule; ``w_sample`` (m,) the
    starting weights, ``direction_sample`` (m,) the update direction and
    ``eps_small_sample`` (m,) bool its ε-dominated entries."""
    if not isinstance(fixes, Mapping) or not isinstance(finals, Mapping):
        raise TypeError("fixes and finals must be mappings keyed by (lr, rule)")
    lrs = list(dict.fromkeys(lr for lr, _ in fixes))
    missing = [(lr, r) for lr in lrs for r in RULE_KEYS if (lr, r) not in fixes]
    if len(lrs) < 2 or missing:
        raise ValueError(
            f"fixes must hold every rule for at least two learning rates ({missing})"
        )
    w_sample = as_float_tensor(w_sample, "w_sample")
    start_sample = w_sample.to(torch.bfloat16).float()
    frozen_master = (finals[lrs[1], "fp32 master"] == start_sample) & (
        direction_sample != 0
    )
    frozen_eps = frozen_master & eps_small_sample
    by_key = {
        key: {
            f"{RULE_KEYS[rule]}_{i}": fixes[lr, rule][key]
            for i, lr in enumerate(lrs)
            for rule in RULE_KEYS
        }
        for key in ("moved", "frozen", "relative_error")
    }
    return FixesSummary(
        **by_key,
        frozen_master_eps_share_1=100
        * float(frozen_eps.sum())
        / max(int(frozen_master.sum()), 1),
    )


def format_fixes(fixes: Mapping[tuple[float, str], Mapping[str, float]]) -> str:
    """One line per ``(lr, rule)`` of ``fixes``: moved, frozen, relative error."""
    return "\n".join(
        f"lr {lr:.0e} {rule:20s} moved {f['moved']:.3f}  frozen {f['frozen']:.3f}  "
        f"relative error {f['relative_error']:.3f}"
        for (lr, rule), f in fixes.items()
    )


# ------------------------------------------------------------------ Adam's ε


@dataclass(frozen=True)
class EpsSummary:
    """Where Adam's ε dominates, for ε = 1e-8, 1e-6, 1e-4 (the grid points nearest).

    ``eps<k>_pct``: percent of all entries with |g| < 10^−k; ``eps8_emb_pct``: of the
    token embedding's; ``eps<k>_rest_pct``: of the other weights'. ``rest_median``,
    ``emb_median``: median |g| of the other weights and of the embedding.
    ``sens_eps8``: percent change of the first Adam update's norm (ε = 1e-8) when the
    loss is multiplied by 1e-3.
    """

    eps8_pct: float
    eps6_pct: float
    eps4_pct: float
    eps8_emb_pct: float
    eps6_rest_pct: float
    eps4_rest_pct: float
    rest_median: float
    emb_median: float
    sens_eps8: float


def eps_summary(
    eps_grid: np.ndarray,
    dominated: np.ndarray,
    emb_dominated: np.ndarray,
    rest_dominated: np.ndarray,
    grads: Mapping[str, torch.Tensor],
) -> EpsSummary:
    """:class:`EpsSummary` of the ε-dominated fractions (E,) of all gradient entries,
    of the token embedding's and of the rest, on ``eps_grid`` (E,), and the gradients
    ``grads`` (name -> tensor, with ``"token_embedding"``) they come from."""
    eps_grid = as_float_array(eps_grid, "eps_grid", ndim=1)
    curves = {
        name: as_float_array(c, name, ndim=1)
        for name, c in (
            ("dominated", dominated),
            ("emb_dominated", emb_dominated),
            ("rest_dominated", rest_dominated),
        )
    }
    if {c.shape for c in curves.values()} != {eps_grid.shape}:
        raise ValueError("the dominated fractions must have the shape of eps_grid")
    grads = _flat_grads(grads)
    if "token_embedding" not in grads:
        raise ValueError("grads must hold 'token_embedding'")
    flat = torch.cat([g.flatten() for g in grads.values()])
    rest = torch.cat([g.flatten() for k, g in grads.items() if k != "token_embedding"])
    at = {e: int(np.argmin(np.abs(np.log10(eps_grid / e)))) for e in (1e-8, 1e-6, 1e-4)}
    return EpsSummary(
        eps8_pct=float(100 * dominated[at[1e-8]]),
        eps6_pct=float(100 * dominated[at[1e-6]]),
        eps4_pct=float(100 * dominated[at[1e-4]]),
        eps8_emb_pct=float(100 * emb_dominated[at[1e-8]]),
        eps6_rest_pct=float(100 * rest_dominated[at[1e-6]]),
        eps4_rest_pct=float(100 * rest_dominated[at[1e-4]]),
        rest_median=float(rest.abs().median()),
        emb_median=float(grads["token_embedding"].abs().median()),
        sens_eps8=100 * mixed_precision.scale_sensitivity(flat, 1e-8, 1e-3),
    )


def format_eps(
    eps_grid: np.ndarray, emb_dominated: np.ndarray, rest_dominated: np.ndarray
) -> str:
    """One line per ε of ``eps_grid``: percent of the embedding's and of the other
    weights' entries that ε dominates."""
    return "\n".join(
        f"eps {e:.0e}: embedding {100 * a:5.1f}% dominated, "
        f"other weights {100 * b:5.2f}%"
        for e, a, b in zip(eps_grid, emb_dominated, rest_dominated)
    )
