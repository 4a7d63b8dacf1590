"""The quantities the GPT-2 query–key chapter quotes, as result records.

Each builder takes per-head arrays computed with :mod:`numscale.gpt2_qk` (``(L, H)``:
L blocks, H heads, block-major), or the runs of :mod:`numscale.key_bias_toy`, and
returns a frozen dataclass of plain numbers that the chapter glues in one call; the
``format_*`` functions return what it prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, finite_float, of_type, positive_int
from numscale.key_bias_toy import TOY_OPTIMIZERS, BiasRun


def _heads(value: object, name: str) -> np.ndarray:
    return as_float_array(value, name, ndim=2)


def _same_shape(**arrays: np.ndarray) -> None:
    shapes = {name: a.shape for name, a in arrays.items()}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"{', '.join(shapes)} must have one shape, got {shapes}")


# ------------------------------------------------------------------ logit scales


@dataclass(frozen=True)
class LogitStdSummary:
    """Each head's logit std for isotropic inputs (see :func:`logit_std_summary`)."""

    std_min: float  #: smallest trained std
    std_max: float  #: largest trained std
    std_median: float  #: median over the heads
    std_max_block: int  #: block of the largest
    std_max_head: int  #: head of the largest
    std_min_block: int  #: block of the smallest
    std_min_head: int  #: head of the smallest
    heads_above_one: int  #: heads whose std exceeds 1
    heads: int  #: number of heads
    init_std_min: float  #: smallest std at the reconstructed initialization
    init_std_max: float  #: largest
    init_std_expected: float  #: d_model σ_w², its expectation (given)
    median_ratio_to_init: float  #: median over heads of trained / initial std
    bias_share_median: float  #: median % of a head's variance due to the biases
    bias_share_max: float  #: largest such %


def logit_std_summary(
    var: np.ndarray,
    var_init: np.ndarray,
    var_no_bias: np.ndarray,
    *,
    init_expected: float,
) -> LogitStdSummary:
    """Summarize the ``(L, H)`` logit variances of the trained heads, of the
    reconstructed initialization, and of the trained heads with ``c_q = c_k = 0``."""
    var = _heads(var, "var")
    var_init = _heads(var_init, "var_init")
    var_no_bias = _heads(var_no_bias, "var_no_bias")
    _same_shape(var=var, var_init=var_init, var_no_bias=var_no_bias)
    std, std_init = np.sqrt(var), np.sqrt(var_init)
    where_max = np.unravel_index(std.argmax(), std.shape)
    where_min = np.unravel_index(std.argmin(), std.shape)
    share = 1 - var_no_bias / var
    return LogitStdSummary(
        std_min=float(std.min()),
        std_max=float(std.max()),
        std_median=float(np.median(std)),
        std_max_block=int(where_max[0]),
        std_max_head=int(where_max[1]),
        std_min_block=int(where_min[0]),
        std_min_head=int(where_min[1]),
        heads_above_one=int(np.sum(std > 1)),
        heads=std.size,
        init_std_min=float(std_init.min()),
        init_std_max=float(std_init.max()),
        init_std_expected=finite_float(init_expected, "init_expected"),
        median_ratio_to_init=float(np.median(std / std_init)),
        bias_share_median=float(100 * np.median(share)),
        bias_share_max=float(100 * np.max(share)),
    )


def format_logit_std(summary: LogitStdSummary) -> str:
    """The trained and initial ranges of the heads' stds, one line."""
    s = of_type(summary, LogitStdSummary, "summary")
    return (
        f"logit std, trained: {s.std_min:.2f} … {s.std_max:.2f} (median "
        f"{s.std_median:.2f});  reconstructed init: {s.init_std_min:.3f} … "
        f"{s.init_std_max:.3f}"
    )


@dataclass(frozen=True)
class ProbeSummary:
    """Probe draws against the exact variance (see :func:`probe_summary`)."""

    probe_z_max: float  #: largest |z| of (sample variance − formula) / SE
    probe_z_rms: float  #: root mean square of the z-scores
    probe_z_max_95: float  #: the 95% quantile of the largest of that many |z| (given)


def probe_summary(z_scores: np.ndarray, z_max_95: float) -> ProbeSummary:
    """Summarize the ``(L, H)`` z-scores of the probe check."""
    z = _heads(z_scores, "z_scores")
    return ProbeSummary(
        probe_z_max=float(np.abs(z).max()),
        probe_z_rms=float(np.sqrt(np.mean(z**2))),
        probe_z_max_95=finite_float(z_max_95, "z_max_95", positive=True),
    )


def format_probe(summary: ProbeSummary, n_heads: int) -> str:
    """The z-scores' largest magnitude and RMS over ``n_heads`` heads, one line."""
    s = of_type(summary, ProbeSummary, "summary")
    n_heads = positive_int(n_heads, "n_heads")
    return (
        f"(sample variance − formula) / SE over {n_heads} heads: max |z| = "
        f"{s.probe_z_max:.2f}, rms z = {s.probe_z_rms:.2f}"
    )


# ---------------------------------------------------------------- the key bias

#: The arrays of the bias-zeroing check :func:`bias_zeroing_summary` reads, each
#: ``(L, H, n, n)``: |Δp| zeroing b_k, zeroing b_q, the rounding bound on the first,
#: |p32 − p64| of the unchanged weights, and |Δp| zeroing b_k in float64.
CHANGE_KEYS = ("b_k", "b_q", "bound", "float32", "b_k f64")


@dataclass(frozen=True)
class BiasZeroingSummary:
    """What zeroing a bias does to the attention weights (see
    :func:`bias_zeroing_summary`)."""

    bk_change_max: float  #: largest |Δp| from zeroing b_k (float32)
    f32_rounding_max: float  #: largest |p32 − p64| of the unchanged weights
    bk_change_max_f64: float  #: largest |Δp| from zeroing b_k in float64
    bound_max: float  #: largest rounding bound
    bk_within_bound_pct: float  #: % of the weights whose change is within the bound
    bk_bound_use_max: float  #: largest change / bound
    bq_change_max: float  #: largest |Δp| from zeroing b_q
    bq_head_max_min: float  #: smallest over heads of a head's largest b_q change
    bq_head_max_median: float  #: median over heads of it


def bias_zeroing_summary(change: Mapping[str, np.ndarray]) -> BiasZeroingSummary:
    """Summarize the ``(L, H, n, n)`` arrays of :data:`CHANGE_KEYS`."""
    if not isinstance(change, Mapping):
        raise TypeError(f"change must be a mapping, got {type(change).__name__}")
    arrays = {}
    for key in CHANGE_KEYS:
        if key not in change:
            raise ValueError(f"change must hold {key!r}")
        arrays[key] = as_float_array(change[key], f"change[{key!r}]", ndim=4)
    _same_shape(**{k.replace(" ", "_"): a for k, a in arrays.items()})
    bk, bound = arrays["b_k"], arrays["bound"]
    per_head_bq = arrays["b_q"].max(axis=(2, 3))  # (L, H)
    return BiasZeroingSummary(
        bk_change_max=float(bk.max()),
        f32_rounding_max=float(arrays["float32"].max()),
        bk_change_max_f64=float(arrays["b_k f64"].max()),
        bound_max=float(bound.max()),
        bk_within_bound_pct=float(100 * np.mean(bk <= bound)),
        bk_bound_use_max=float(np.max(bk / np.maximum(bound, 1e-300))),
        bq_change_max=float(arrays["b_q"].max()),
        bq_head_max_min=float(per_head_bq.min()),
        bq_head_max_median=float(np.median(per_head_bq)),
    )


def format_bias_zeroing(summary: BiasZeroingSummary) -> str:
    """The largest weight changes and float32's rounding, two lines."""
    s = of_type(summary, BiasZeroingSummary, "summary")
    return (
        f"max |Δp|: zeroing b_k {s.bk_change_max:.2e} (float64: "
        f"{s.bk_change_max_f64:.1e}),\n"
        f"         float32 rounding {s.f32_rounding_max:.2e},"
        f" zeroing b_q {s.bq_change_max:.3f}"
    )


@dataclass(frozen=True)
class KeyBiasSummary:
    """The size of the trained biases (see :func:`key_bias_summary`)."""

    bk_rms: dict[int, float]  #: block -> RMS of b_k (glued as ``bk_rms_<block>``)
    bk_rms_min: float  #: smallest over the blocks
    bk_rms_max: float  #: largest
    bk_rms_argmax: int  #: block of the largest
    bq_rms_median: float  #: median over the blocks of the RMS of b_q
    bk_over_key_min: float  #: smallest RMS(b_k) / RMS of the input part of a key
    bk_over_key_max: float  #: largest


def key_bias_summary(
    bias_rms: Mapping[str, np.ndarray], key_rms: np.ndarray
) -> KeyBiasSummary:
    """Summarize the ``(L,)`` RMS per block of ``bias_rms["b_k"]`` and
    ``bias_rms["b_q"]`` and the ``(L,)`` RMS ``key_rms`` of x̂ A_k's coordinates."""
    if not isinstance(bias_rms, Mapping) or not {"b_k", "b_q"} <= set(bias_rms):
        raise ValueError("bias_rms must map 'b_k' and 'b_q' to (L,) arrays")
    bk = as_float_array(bias_rms["b_k"], "bias_rms['b_k']", ndim=1)
    bq = as_float_array(bias_rms["b_q"], "bias_rms['b_q']", ndim=1)
    key_rms = as_float_array(key_rms, "key_rms", ndim=1)
    _same_shape(b_k=bk, b_q=bq, key_rms=key_rms)
    return KeyBiasSummary(
        bk_rms={i: float(value) for i, value in enumerate(bk)},
        bk_rms_min=float(bk.min()),
        bk_rms_max=float(bk.max()),
        bk_rms_argmax=int(bk.argmax()),
        bq_rms_median=float(np.median(bq)),
        bk_over_key_min=float(np.min(bk / key_rms)),
        bk_over_key_max=float(np.max(bk / key_rms)),
    )


@dataclass(frozen=True)
class ToySummary:
    """The toy run of the Adam hypothesis (see :func:`toy_summary`)."""

    #: median RMS grad(b_k) / RMS grad(b_q), Adam 1e-8, float32
    toy_grad_ratio_f32: float
    toy_grad_ratio_f64: float  #: the same in float64
    toy_bk_drift_adam8: float  #: final RMS of b_k, Adam ε = 1e-8
    toy_bk_drift_adam12: float  #: final RMS of b_k, Adam ε = 1e-12
    toy_bk_drift_sgd: float  #: final RMS of b_k, SGD
    toy_bq_drift_adam: float  #: final RMS of b_q, Adam ε = 1e-8
    toy_bq_drift_sgd: float  #: final RMS of b_q, SGD
    toy_bk_over_bq_adam12: float  #: final RMS b_k / RMS b_q, Adam ε = 1e-12
    toy_loss_start: float  #: loss at initialization (before the first update)
    toy_loss_adam: float  #: loss before the last update, Adam ε = 1e-8
    toy_loss_sgd: float  #: loss before the last update, SGD


def toy_summary(run: BiasRun, run64: BiasRun) -> ToySummary:
    """Read the float32 ``run`` and the float64 ``run64`` (rows labelled as in
    :data:`numscale.key_bias_toy.TOY_OPTIMIZERS`; arrays ``(R, steps)``)."""
    run = of_type(run, BiasRun, "run")
    run64 = of_type(run64, BiasRun, "run64")
    adam8_label, adam12_label, sgd_label = TOY_OPTIMIZERS
    for name, r in (("run", run), ("run64", run64)):
        if adam8_label not in r.labels:
            raise ValueError(f"{name} has no row {adam8_label!r}")
    for label in (adam12_label, sgd_label):
        if label not in run.labels:
            raise ValueError(f"run has no row {label!r}")
    adam8, adam12 = run.labels.index(adam8_label), run.labels.index(adam12_label)
    sgd, adam8_64 = run.labels.index(sgd_label), run64.labels.index(adam8_label)
    ratio32 = np.median(run.grad_rms_key_bias / run.grad_rms_query_bias, axis=1)
    ratio64 = np.median(run64.grad_rms_key_bias / run64.grad_rms_query_bias, axis=1)
    return ToySummary(
        toy_grad_ratio_f32=float(ratio32[adam8]),
        toy_grad_ratio_f64=float(ratio64[adam8_64]),
        toy_bk_drift_adam8=float(run.drift_key_bias[adam8, -1]),
        toy_bk_drift_adam12=float(run.drift_key_bias[adam12, -1]),
        toy_bk_drift_sgd=float(run.drift_key_bias[sgd, -1]),
        toy_bq_drift_adam=float(run.drift_query_bias[adam8, -1]),
        toy_bq_drift_sgd=float(run.drift_query_bias[sgd, -1]),
        toy_bk_over_bq_adam12=float(
            run.drift_key_bias[adam12, -1] / run.drift_query_bias[adam12, -1]
        ),
        toy_loss_start=float(run.loss[adam8, 0]),
        toy_loss_adam=float(run.loss[adam8, -1]),
        toy_loss_sgd=float(run.loss[sgd, -1]),
    )


def format_toy(run: BiasRun) -> str:
    """Final loss and RMS of b_k and b_q of each optimizer, one line each."""
    run = of_type(run, BiasRun, "run")
    return "\n".join(
        f"{name:16s} loss {run.loss[r, -1]:.4f}   "
        f"b_k RMS {run.drift_key_bias[r, -1]:.1e}   "
        f"b_q RMS {run.drift_query_bias[r, -1]:.3f}"
        for r, name in enumerate(run.labels)
    )


# --------------------------------------------------------------------- alignment


@dataclass(frozen=True)
class AlignmentSummary:
    """How aligned the heads' query–key forms are (see :func:`alignment_summary`).

    ``top_heads`` (the three largest trace ratios, as (block, head, ratio)),
    ``top_names`` and ``bottom_name`` are for display (the chapter glues the names as
    Markdown); the other fields are numbers.
    """

    sym_median: float  #: median symmetric fraction ‖S‖²/‖M‖²
    sym_min: float  #: smallest
    sym_max: float  #: largest
    sym_above_075: int  #: heads with a symmetric fraction above 0.75
    sym_below_035: int  #: heads below 0.35
    sym_init_min: float  #: smallest at the reconstructed initialization
    sym_init_max: float  #: largest there
    trace_max: float  #: largest tr M / ‖M‖_F
    trace_min: float  #: smallest
    trace_abs_median: float  #: median |tr M| / ‖M‖_F
    trace_init_abs_max: float  #: largest |tr M| / ‖M‖_F at initialization
    sqrt_dk: float  #: √d_k, the largest possible trace ratio
    self_excess_max: float  #: largest self-logit excess, in different-token stds
    self_excess_median: float  #: median
    trace_min_sym: float  #: symmetric fraction of the head with the smallest ratio
    top_heads: tuple[tuple[int, int, float], ...]  #: three largest trace ratios
    top_names: str  #: "block b head h, ..." of top_heads
    bottom_name: str  #: "block b head h" of the smallest trace ratio


def alignment_summary(
    sym: np.ndarray,
    trace_ratio: np.ndarray,
    sym_init: np.ndarray,
    trace_init: np.ndarray,
    self_excess: np.ndarray,
    d_k: int,
) -> AlignmentSummary:
    """Summarize ``(L, H)`` symmetric fractions and trace ratios (trained and at
    initialization) and the trained self-logit excess."""
    arrays = {
        name: _heads(value, name)
        for name, value in (
            ("sym", sym),
            ("trace_ratio", trace_ratio),
            ("sym_init", sym_init),
            ("trace_init", trace_init),
            ("self_excess", self_excess),
        )
    }
    _same_shape(**arrays)
    sym, trace_ratio = arrays["sym"], arrays["trace_ratio"]
    sym_init, trace_init = arrays["sym_init"], arrays["trace_init"]
    self_excess = arrays["self_excess"]
    top = np.unravel_index(np.argsort(-trace_ratio, axis=None)[:3], trace_ratio.shape)
    bottom = np.unravel_index(trace_ratio.argmin(), trace_ratio.shape)
    return AlignmentSummary(
        sym_median=float(np.median(sym)),
        sym_min=float(sym.min()),
        sym_max=float(sym.max()),
        sym_above_075=int(np.sum(sym > 0.75)),
        sym_below_035=int(np.sum(sym < 0.35)),
        sym_init_min=float(sym_init.min()),
        sym_init_max=float(sym_init.max()),
        trace_max=float(trace_ratio.max()),
        trace_min=float(trace_ratio.min()),
        trace_abs_median=float(np.median(np.abs(trace_ratio))),
        trace_init_abs_max=float(np.abs(trace_init).max()),
        sqrt_dk=float(np.sqrt(positive_int(d_k, "d_k"))),
        self_excess_max=float(self_excess.max()),
        self_excess_median=float(np.median(self_excess)),
        trace_min_sym=float(sym[bottom]),
        top_heads=tuple(
            (int(b), int(h), float(trace_ratio[b, h])) for b, h in zip(*top)
        ),
        top_names=", ".join(f"block {b} head {h}" for b, h in zip(*top)),
        bottom_name=f"block {bottom[0]} head {bottom[1]}",
    )


#: Fields of :class:`AlignmentSummary` that are not glued as numbers.
ALIGNMENT_DISPLAY = ("top_heads", "top_names", "bottom_name")


def format_alignment(summary: AlignmentSummary) -> str:
    """The three most aligned heads as (block, head, tr M/‖M‖_F to 2 decimals)."""
    s = of_type(summary, AlignmentSummary, "summary")
    shown = [(b, h, round(r, 2)) for b, h, r in s.top_heads]
    return f"most aligned heads (block, head, tr M/‖M‖_F): {shown}"
