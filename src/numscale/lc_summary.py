"""Result records of ``book/long_context.md``: the numbers each section quotes.

Each builder takes what the chapter computed with :mod:`numscale.long_context` and
returns a frozen dataclass of the numbers a section glues (the prose quotes most of
them; a few are kept for the record); the chapter glues it with
:func:`numscale.report.glue_record`. The arithmetic is the one the chapter did inline
before (same order, same dtypes). The ``format_*`` functions return the tables the
chapter prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from numscale import long_context, softmax
from numscale.checks import as_float_array, finite_float, positive_int

# ------------------------------------------------------------------ iid logits


@dataclass(frozen=True)
class IidSummary:
    """Dilution on iid logits over a sweep of n keys (:func:`iid_summary`).

    Entropy of the rows without a signal key, against ln n − σ²/2: ``max_entropy_se``,
    ``max_entropy_gap`` and ``max_entropy_gap_se`` are the largest standard error, gap
    and gap in standard errors over the large n; ``gap_first`` the gap at the
    smallest n, ``gap_first_se`` the standard error of the entropy there, and
    ``gap_first_predicted`` the 1/n correction predicted there;
    ``deficit_min``/``_max``: the range of ln n − H over all n. Weight on the signal
    key: ``w_first``, ``w_at_train``, ``w_last`` at the smallest n, the training
    length and the largest n; ``w_at_train_scaled``, ``w_last_scaled`` with the
    log-n multiplier; ``w_formula_last``/``_scaled`` the formula's at the largest n;
    ``c_last`` the multiplier there.
    """

    max_entropy_se: float
    gap_first: float
    gap_first_se: float
    gap_first_predicted: float
    max_entropy_gap: float
    max_entropy_gap_se: float
    deficit_min: float
    deficit_max: float
    w_first: float
    w_at_train: float
    w_last: float
    w_last_scaled: float
    w_at_train_scaled: float
    w_formula_last: float
    w_formula_last_scaled: float
    c_last: float


def _iid(value: object, name: str) -> long_context.IidAttention:
    if not isinstance(value, long_context.IidAttention):
        raise TypeError(f"{name} must be an IidAttention, got {type(value).__name__}")
    return value


def iid_summary(
    plain: long_context.IidAttention,
    signal: long_context.IidAttention,
    scaled: long_context.IidAttention,
    entropy_formula: np.ndarray,
    weight_formulas: tuple[np.ndarray, np.ndarray],
    c_of_n: np.ndarray,
    *,
    sigma: float,
    at_train: int,
    large_n: int,
) -> IidSummary:
    """:class:`IidSummary` of three :func:`numscale.long_context.iid_attention` sweeps
    over the same n (N,): no signal key (``plain``), a signal key (``signal``) and a
    signal key with the log-n multiplier ``c_of_n`` (N,) (``scaled``); the entropy
    formula (N,) and the signal-weight formulas (N,) without and with the multiplier,
    for logits of spread ``sigma``. ``at_train``: index of the training length in n;
    entropy gaps are taken over n ≥ ``large_n``."""
    plain, signal, scaled = (
        _iid(plain, "plain"),
        _iid(signal, "signal"),
        _iid(scaled, "scaled"),
    )
    n_keys = plain.n
    if not (np.array_equal(signal.n, n_keys) and np.array_equal(scaled.n, n_keys)):
        raise ValueError("plain, signal and scaled must sweep the same n")
    shape = n_keys.shape
    entropy_formula = as_float_array(entropy_formula, "entropy_formula", ndim=1)
    weight_formula, weight_formula_scaled = (
        as_float_array(w, f"weight_formulas[{i}]", ndim=1)
        for i, w in enumerate(weight_formulas)
    )
    c_of_n = as_float_array(c_of_n, "c_of_n", ndim=1)
    for name, a in (
        ("entropy_formula", entropy_formula),
        ("weight_formulas", weight_formula),
        ("weight_formulas", weight_formula_scaled),
        ("c_of_n", c_of_n),
    ):
        if a.shape != shape:
            raise ValueError(f"{name} must have shape {shape}, got {a.shape}")
    sigma = finite_float(sigma, "sigma", positive=True)
    if not 0 <= at_train < n_keys.size:
        raise ValueError(f"at_train must index n (0 … {n_keys.size - 1})")
    large = n_keys >= positive_int(large_n, "large_n")
    if not large.any():
        raise ValueError("large_n must not exceed the largest n")
    gap = np.abs(plain.entropy - entropy_formula)
    leading_and_corrected = softmax.gaussian_entropy_expansion(int(n_keys[0]), [sigma])
    return IidSummary(
        max_entropy_se=float(plain.entropy_se[large].max()),
        gap_first=float(plain.entropy[0] - entropy_formula[0]),
        gap_first_se=float(plain.entropy_se[0]),
        gap_first_predicted=float(np.diff(leading_and_corrected, axis=0)[0, 0]),
        max_entropy_gap=float(np.max(gap[large])),
        max_entropy_gap_se=float(np.max((gap / plain.entropy_se)[large])),
        deficit_min=float(np.min(np.log(n_keys) - plain.entropy)),
        deficit_max=float(np.max(np.log(n_keys) - plain.entropy)),
        w_first=float(signal.signal_weight[0]),
        w_at_train=float(signal.signal_weight[at_train]),
        w_last=float(signal.signal_weight[-1]),
        w_last_scaled=float(scaled.signal_weight[-1]),
        w_at_train_scaled=float(scaled.signal_weight[at_train]),
        w_formula_last=float(weight_formula[-1]),
        w_formula_last_scaled=float(weight_formula_scaled[-1]),
        c_last=float(c_of_n[-1]),
    )


def format_iid(
    plain: long_context.IidAttention,
    entropy_formula: np.ndarray,
    signal: long_context.IidAttention,
    scaled: long_context.IidAttention,
) -> str:
    """One line per n: measured entropy and its formula, signal weight without and
    with the log-n multiplier."""
    return "\n".join(
        f"n = {n:5d}: H {h:.3f} (ln n − σ²/2 = {hf:.3f});  signal weight {w:.3f}, "
        f"log-n scaled {ws:.3f}"
        for n, h, hf, w, ws in zip(
            plain.n,
            plain.entropy,
            entropy_formula,
            signal.signal_weight,
            scaled.signal_weight,
        )
    )


# ------------------------------------------------------------------ entropy by position


@dataclass(frozen=True)
class PositionSummary:
    """Attention entropy of a trained model against the query position t (0 … T−1).

    ``forward_match``: largest difference between two forwards of the model.
    ``h_late_min``/``_max``: smallest and largest layer mean of the entropy over the
    second half of the positions, T/2 ≤ t < T; ``uniform_late``: mean of ln(t+1)
    there; ``norm_late_max``: the largest over layers of the mean over T/2 ≤ t < T of
    H/ln(t+1); ``norm_late_peak``: the largest H/ln(t+1) of any layer at any single
    position T/2 ≤ t < T. ``slope_min``/``_max``: range of the per-layer slopes of H
    against ln(t+1).
    """

    forward_match: float
    h_late_min: float
    h_late_max: float
    uniform_late: float
    norm_late_max: float
    norm_late_peak: float
    slope_min: float
    slope_max: float


def _by_layer(by_layer: object) -> np.ndarray:
    by_layer = as_float_array(by_layer, "by_layer", ndim=2)
    if by_layer.shape[1] < 4:
        raise ValueError("by_layer must cover at least 4 positions")
    return by_layer


def position_summary(
    by_layer: np.ndarray, slope: Sequence[float], *, forward_match: float
) -> PositionSummary:
    """:class:`PositionSummary` of the mean entropy ``by_layer`` (L, T) of each layer at
    each query position, the per-layer ``slope`` (L,) of H against ln(t+1) and the
    ``forward_match`` of the forward that measured them."""
    by_layer = _by_layer(by_layer)
    slope = as_float_array(slope, "slope", ndim=1)
    if slope.shape != by_layer.shape[:1]:
        raise ValueError(f"slope must have one entry per layer ({by_layer.shape[0]})")
    late = slice(by_layer.shape[1] // 2, None)
    t = np.arange(by_layer.shape[1])
    normalized = _normalized_late(by_layer)  # (L, T − T/2): H/ln(t+1), t ≥ T/2
    return PositionSummary(
        forward_match=finite_float(forward_match, "forward_match"),
        h_late_min=float(by_layer[:, late].mean(1).min()),
        h_late_max=float(by_layer[:, late].mean(1).max()),
        uniform_late=float(np.log(t[late] + 1).mean()),
        norm_late_max=float(normalized.mean(1).max()),
        norm_late_peak=float(normalized.max()),
        slope_min=float(min(slope)),
        slope_max=float(max(slope)),
    )


def _normalized_late(by_layer: np.ndarray) -> np.ndarray:
    """H/ln(t+1) of ``by_layer`` (L, T) at the positions T/2 ≤ t < T: (L, T − T/2)."""
    t = np.arange(by_layer.shape[1] // 2, by_layer.shape[1])
    return by_layer[:, t] / np.log(t + 1)


def format_position(by_layer: np.ndarray, slope: Sequence[float]) -> str:
    """Per layer of ``by_layer`` (L, T), to 2 decimals: the mean entropy over the
    second half of the positions, the mean and the largest of H/ln(t+1) there, and
    the ``slope`` (L,) of H against ln(t+1)."""
    by_layer = _by_layer(by_layer)
    n_t = by_layer.shape[1]
    normalized = _normalized_late(by_layer)
    with np.printoptions(precision=2):
        return (
            f"per layer, t in [{n_t // 2}, {n_t}):\n"
            f"  mean entropy (nats):      {by_layer[:, n_t // 2 :].mean(1)}\n"
            f"  H / ln(t+1), mean over t: {normalized.mean(1)}\n"
            f"  H / ln(t+1), largest:     {normalized.max(1)}\n"
            f"slope dH / d ln(t+1) per layer: {np.array(slope)}"
        )


# ------------------------------------------------------------------ log-n scaling


@dataclass(frozen=True)
class ScalingSummary:
    """Next-token losses with and without the log-n multiplier (nats per token).

    Inside the training length (positions from ``n_short`` on): ``inside_loss``, the
    unscaled loss; ``inside_diff`` ± ``inside_se``, the mean over sequences of the
    per-sequence change (scaled − unscaled) and its standard error; ``inside_z`` their
    ratio, ``inside_df`` its degrees of freedom and ``inside_p`` its two-sided
    Student-t p-value; ``inside_worse``: sequences whose loss rose. Beyond it:
    ``beyond_loss_in``/``_out``, the unscaled loss before and from the training
    length on, ``beyond_diff`` ± ``beyond_se`` the change there. ``c_short_max``,
    ``c_long_max``: the largest multipliers of the two experiments.
    """

    inside_loss: float
    inside_diff: float
    inside_se: float
    inside_z: float
    inside_df: int
    inside_p: float
    inside_worse: int
    beyond_loss_in: float
    beyond_loss_out: float
    beyond_diff: float
    beyond_se: float
    c_short_max: float
    c_long_max: float


def _pair(pair: object, name: str) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(pair, Sequence) or len(pair) != 2:
        raise ValueError(f"{name} must be a (unscaled, scaled) pair of loss arrays")
    a, b = (as_float_array(x, f"{name}[{i}]", ndim=2) for i, x in enumerate(pair))
    if a.shape != b.shape or a.shape[0] < 2:
        raise ValueError(f"{name} must hold two (sequences ≥ 2, T) arrays of one shape")
    return a, b


def paired_change(
    pair: Sequence[np.ndarray], cols: slice
) -> tuple[np.ndarray, float, float]:
    """Per-sequence mean loss change (scaled − unscaled) over the positions ``cols`` of
    ``pair`` = (unscaled, scaled) losses (S, T); its mean over sequences and the
    standard error of that mean (sample standard deviation / √S)."""
    plain, scaled = _pair(pair, "pair")
    per_sequence = (scaled[:, cols] - plain[:, cols]).mean(1)
    se = per_sequence.std(ddof=1) / math.sqrt(len(per_sequence))
    return per_sequence, per_sequence.mean(), se


def scaling_summary(
    inside: Sequence[np.ndarray],
    beyond: Sequence[np.ndarray],
    short_c: np.ndarray,
    long_c: np.ndarray,
    *,
    n_short: int,
    n_train: int,
) -> ScalingSummary:
    """:class:`ScalingSummary` of the (unscaled, scaled) per-token losses (S, T)
    ``inside`` the training length, with the multipliers ``short_c`` (T,) for a
    pretended training length ``n_short``, and ``beyond`` it, (S', T') with
    ``long_c`` (T',) and the true training length ``n_train``."""
    inside_pair, beyond_pair = _pair(inside, "inside"), _pair(beyond, "beyond")
    n_short = positive_int(n_short, "n_short")
    n_train = positive_int(n_train, "n_train")
    if n_train >= beyond_pair[0].shape[1]:
        raise ValueError("beyond must reach past n_train")
    inside_each, inside_diff, inside_se = paired_change(inside, slice(n_short, None))
    _, beyond_diff, beyond_se = paired_change(beyond, slice(n_train, None))
    inside_z = inside_diff / inside_se
    return ScalingSummary(
        inside_loss=float(inside_pair[0][:, n_short:].mean()),
        inside_diff=float(inside_diff),
        inside_se=float(inside_se),
        inside_z=float(inside_z),
        inside_df=len(inside_each) - 1,
        inside_p=long_context.student_t_two_sided_p(inside_z, len(inside_each) - 1),
        inside_worse=int((inside_each > 0).sum()),
        beyond_loss_in=float(beyond_pair[0][:, :n_train].mean()),
        beyond_loss_out=float(beyond_pair[0][:, n_train:].mean()),
        beyond_diff=float(beyond_diff),
        beyond_se=float(beyond_se),
        c_short_max=float(np.max(short_c)),
        c_long_max=float(np.max(long_c)),
    )


def format_scaling(record: ScalingSummary, n_short: int, n_train: int) -> str:
    """Two lines: the loss changes inside (pretended length ``n_short``) and beyond
    the training length ``n_train``, from ``record``."""
    r = record
    return (
        f"inside, n_train = {n_short}: loss {r.inside_loss:.4f}, "
        f"change {r.inside_diff:+.4f} ± {r.inside_se:.4f}\n"
        f"beyond {n_train}: loss {r.beyond_loss_in:.4f} (t < {n_train}), "
        f"{r.beyond_loss_out:.4f} (t ≥ {n_train}); change {r.beyond_diff:+.4f} ± "
        f"{r.beyond_se:.4f}"
    )


# ------------------------------------------------------------------ kernels


@dataclass(frozen=True)
class KernelSummary:
    """Fused attention kernels against the explicit exp2 softmax.

    ``sdpa_max_diff``: the largest absolute difference over multipliers and backends;
    ``default_is_flash``: 1 if the default call equals the CPU flash kernel for every
    multiplier, else 0; ``eps64``: float64's machine epsilon.
    """

    sdpa_max_diff: float
    default_is_flash: int
    eps64: float


def kernel_summary(
    kernel_errors: Mapping[tuple[float, str], float],
    default_is: Mapping[tuple[float, str], bool],
    flash: str = "flash (CPU)",
) -> KernelSummary:
    """:class:`KernelSummary` of ``kernel_errors`` and ``default_is``, both keyed by
    ``(multiplier, backend name)``; ``flash`` names the flash backend."""
    if not isinstance(kernel_errors, Mapping) or not kernel_errors:
        raise ValueError("kernel_errors must be a non-empty mapping")
    if not isinstance(default_is, Mapping) or set(default_is) != set(kernel_errors):
        raise ValueError("default_is must have the keys of kernel_errors")
    multipliers = list(dict.fromkeys(c for c, _ in kernel_errors))
    if any((c, flash) not in default_is for c in multipliers):
        raise ValueError(f"flash={flash!r} is not a backend of every multiplier")
    return KernelSummary(
        sdpa_max_diff=float(max(kernel_errors.values())),
        default_is_flash=int(all(default_is[c, flash] for c in multipliers)),
        eps64=float(np.finfo(np.float64).eps),
    )


def format_kernels(
    kernel_errors: Mapping[tuple[float, str], float],
    default_is: Mapping[tuple[float, str], bool],
) -> str:
    """One line per (multiplier, backend): difference from the explicit softmax and
    whether the default call gave the same result."""
    return "\n".join(
        f"c = {c}: {name:11s} vs explicit exp2 softmax {error:.1e}, "
        f"identical to the default call: {default_is[c, name]}"
        for (c, name), error in kernel_errors.items()
    )


# ------------------------------------------------------------------ rotary embeddings


@dataclass(frozen=True)
class RopeSummary:
    """The rotary identity on one query–key pair, and logits against distance.

    ``rope_spread``: range of the pair's logit over absolute positions at a fixed
    distance; ``rope_norm_change``: change of the query's norm under rotation;
    ``bound``: ‖q‖‖k‖. ``offset_range_max``: the largest range over distances of a
    head's mean logit, in layer ``offset_range_layer`` and head ``offset_range_head``
    (counted from 1); ``offset_range_layer1``: the largest range in layer 1.
    """

    rope_spread: float
    rope_norm_change: float
    bound: float
    offset_range_max: float
    offset_range_layer: int
    offset_range_head: int
    offset_range_layer1: float


def rope_summary(
    logit_at: Sequence[float],
    norm_change: float,
    q: np.ndarray,
    k: np.ndarray,
    offsets: np.ndarray,
) -> RopeSummary:
    """:class:`RopeSummary` of the logits ``logit_at`` (P,) of rotated ``q``, ``k``
    (d,) at one distance and P absolute positions, the query's ``norm_change`` under
    rotation, and the mean logits ``offsets`` (L, H, R) of a model's heads against R
    distances."""
    logit_at = as_float_array(logit_at, "logit_at", ndim=1)
    q, k = as_float_array(q, "q", ndim=1), as_float_array(k, "k", ndim=1)
    offsets = as_float_array(offsets, "offsets", ndim=3)
    offset_range = np.ptp(offsets, axis=-1)  # (L, H)
    max_at = np.unravel_index(np.argmax(offset_range), offset_range.shape)
    return RopeSummary(
        rope_spread=float(np.ptp(logit_at)),
        rope_norm_change=finite_float(norm_change, "norm_change"),
        bound=float(np.linalg.norm(q) * np.linalg.norm(k)),
        offset_range_max=float(offset_range.max()),
        offset_range_layer=int(max_at[0] + 1),
        offset_range_head=int(max_at[1] + 1),
        offset_range_layer1=float(offset_range[0].max()),
    )
