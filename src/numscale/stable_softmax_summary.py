"""Result records of the stable-softmax chapter: the numbers it quotes, in one call each.

Each builder takes results the chapter computes with :mod:`numscale.fp`,
:mod:`numscale.softmax` and :mod:`numscale.streaming` (error sweeps, block-size sweeps,
swamping counts) and returns a frozen dataclass for :func:`numscale.report.glue_record`;
the ``format_*`` functions return the lines the chapter prints. Errors are in units of
the format's eps, as the chapter measures them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, finite_float
from numscale.fp import SoftmaxErrors
from numscale.streaming import OnlineState, Swamping


def _require(value: object, kind: type, name: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"{name} must be a {kind.__name__}, got {type(value).__name__}")


def _pick(mapping: Mapping, key: object, name: str):
    if key not in mapping:
        raise ValueError(f"{name} has no entry {key!r} (it has {list(mapping)})")
    return mapping[key]


@dataclass(frozen=True)
class ExpLimits:
    """Where exp leaves float64 and float32.

    ``lnmax64`` / ``lnmax32``: ln of the largest finite number (from ``np.finfo``,
    computed in that format); ``thr64`` / ``thr32``: the last x whose exp is finite, as
    measured (:func:`numscale.fp.exp_overflow_threshold`). Its ``str`` is what the
    chapter prints: per format, ln(max) and the last x with a finite exp (``repr``,
    every digit).
    """

    lnmax64: float
    lnmax32: float
    thr64: float
    thr32: float

    def __str__(self) -> str:
        return "\n".join(
            f"{name}: ln(max) = {ln_max:.4f}, last x with finite exp: {thr!r}"
            for name, ln_max, thr in (
                ("float64", self.lnmax64, self.thr64),
                ("float32", self.lnmax32, self.thr32),
            )
        )


def exp_limits(thr64: float, thr32: float) -> ExpLimits:
    """:class:`ExpLimits` from the measured thresholds ``thr64`` and ``thr32`` and the
    limits ``np.finfo`` gives."""
    return ExpLimits(
        lnmax64=float(np.log(np.finfo(np.float64).max)),
        lnmax32=float(np.log(np.finfo(np.float32).max)),
        thr64=finite_float(thr64, "thr64", positive=True),
        thr32=finite_float(thr32, "thr32", positive=True),
    )


@dataclass(frozen=True)
class NaiveStableSummary:
    """Naive against max-shifted softmax over a sweep of logit scales (float32/64).

    ``naive_last32`` / ``naive_last64``: the largest top logit at which the naive
    formula is still finite; ``abs_max``: the largest absolute error of either formula
    (the naive one where finite) in either format; ``rel_max32`` / ``rel_max64``: the
    stable formula's largest relative error per format; ``naive_rel_max``: the naive formula's largest relative error (where
    finite) in either format. Errors in eps of each format.
    """

    naive_last32: float
    naive_last64: float
    abs_max: float
    rel_max32: float
    rel_max64: float
    naive_rel_max: float


def naive_stable_summary(
    errors: Mapping[str, SoftmaxErrors], tops: np.ndarray
) -> NaiveStableSummary:
    """:class:`NaiveStableSummary` of ``errors`` (``"float32"`` and ``"float64"`` →
    :class:`~numscale.fp.SoftmaxErrors`, each over the top logits ``tops`` ``(k,)``)."""
    e32 = _pick(errors, "float32", "errors")
    e64 = _pick(errors, "float64", "errors")
    _require(e32, SoftmaxErrors, "errors['float32']")
    _require(e64, SoftmaxErrors, "errors['float64']")
    tops = as_float_array(tops, "tops", ndim=1)
    if not (e32.naive_abs.shape == e64.naive_abs.shape == tops.shape):
        raise ValueError("errors must be sweeps over the grid tops")
    return NaiveStableSummary(
        naive_last32=float(tops[np.isfinite(e32.naive_abs)].max()),
        naive_last64=float(tops[np.isfinite(e64.naive_abs)].max()),
        abs_max=float(
            max(np.nanmax(a) for e in (e32, e64) for a in (e.naive_abs, e.stable_abs))
        ),
        rel_max32=float(np.nanmax(e32.stable_rel)),
        rel_max64=float(np.nanmax(e64.stable_rel)),
        naive_rel_max=float(max(np.nanmax(e32.naive_rel), np.nanmax(e64.naive_rel))),
    )


def format_naive_stable(errors: Mapping[str, SoftmaxErrors]) -> str:
    """A table of ``errors`` (format name → :class:`~numscale.fp.SoftmaxErrors` over
    one grid of top logits): per format, the largest top logit at which the naive
    formula is finite, and the largest absolute and relative error of each formula
    (the naive one where finite), in eps of that format."""
    lines = [
        f"{'':8} {'naive: finite up to':>19} {'max abs':>8} {'max rel':>8}"
        f"   {'stable: max abs':>15} {'max rel':>8}   (errors in eps)"
    ]
    for name, e in errors.items():
        _require(e, SoftmaxErrors, f"errors[{name!r}]")
        finite = np.isfinite(e.naive_abs)
        if not finite.any():
            raise ValueError(f"errors[{name!r}]: the naive formula is never finite")
        lines.append(
            f"{name:8} {e.tops[finite].max():19.1f} {np.nanmax(e.naive_abs):8.2f}"
            f" {np.nanmax(e.naive_rel):8.2f}   {np.nanmax(e.stable_abs):15.2f}"
            f" {np.nanmax(e.stable_rel):8.1f}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class AttentionDiffs:
    """Online against two-pass attention outputs, in float32 eps: ``attn_diff64`` at
    block size 64 and ``attn_diff_max``, the largest over the block sizes tried."""

    attn_diff64: float
    attn_diff_max: float


def attention_diffs(diffs: Mapping[int, float]) -> AttentionDiffs:
    """:class:`AttentionDiffs` of ``diffs`` (block size → max difference in eps; it
    must hold block size 64)."""
    at64 = _pick(diffs, 64, "diffs")
    return AttentionDiffs(attn_diff64=at64, attn_diff_max=max(diffs.values()))


def format_online_trace(
    trace: Sequence[OnlineState], online_lse: float, two_pass_lse: float
) -> str:
    """The running state (m, s) after each block of a one-row trace, then the online
    and the two-pass log-sum-exp to 12 decimals."""
    lines = []
    for i, state in enumerate(trace):
        _require(state, OnlineState, f"trace[{i}]")
        m, s = float(state.m), float(state.s)
        lines.append(f"after block {i + 1}:  m = {m:4.1f}   s = {s:.6f}")
    lines.append(f"online LSE   = {float(online_lse):.12f}")
    lines.append(f"two-pass LSE = {float(two_pass_lse):.12f}")
    return "\n".join(lines)


def format_merged_lse(merged: Sequence[OnlineState], two_pass_lse: float) -> str:
    """One line per single-row state of ``merged`` (the same halves merged in
    different orders) with its log-sum-exp, then the two-pass one, to 15 decimals."""
    if not isinstance(merged, Sequence):
        raise TypeError(f"merged must be a sequence, got {type(merged).__name__}")
    if not merged:
        raise ValueError("merged must hold at least one OnlineState")
    lines = []
    for i, state in enumerate(merged):
        _require(state, OnlineState, f"merged[{i}]")
        lines.append(f"merged LSE = {float(state.logsumexp):.15f}")
    lines.append(f"two-pass   = {float(two_pass_lse):.15f}")
    return "\n".join(lines)


@dataclass(frozen=True)
class BlockSizeSummary:
    """Online against two-pass softmax over a sweep of block sizes, in eps.

    ``block_worst_eps``: the largest difference of any sweep at any block size;
    ``block_one32_eps``: the outlier sweep's difference at the first block size;
    ``block_rest_eps``: the largest difference at every block size but the first;
    ``block_one_others_eps``: the largest difference of the other sweeps at the first
    block size.
    """

    block_worst_eps: float
    block_one32_eps: float
    block_rest_eps: float
    block_one_others_eps: float


def block_size_summary(
    sweeps: Mapping[tuple[str, str], np.ndarray],
    outlier: tuple[str, str] = ("float32", "random order"),
) -> BlockSizeSummary:
    """:class:`BlockSizeSummary` of ``sweeps`` ((dtype name, order) → differences in
    eps ``(n_block_sizes,)``, the first entry at the first block size); ``outlier`` is
    the sweep quoted alone at the first block size."""
    arrays = {k: as_float_array(v, f"sweeps[{k!r}]", ndim=1) for k, v in sweeps.items()}
    first = _pick(arrays, outlier, "sweeps")
    others = [v for k, v in arrays.items() if k != outlier]
    if not others:
        raise ValueError("sweeps must hold a sweep besides the outlier")
    return BlockSizeSummary(
        block_worst_eps=max(float(v.max()) for v in arrays.values()),
        block_one32_eps=float(first[0]),
        block_rest_eps=max(float(v[1:].max()) for v in arrays.values()),
        block_one_others_eps=max(float(v[0]) for v in others),
    )


@dataclass(frozen=True)
class SwampingSummary:
    """Swamping of a one-key-at-a-time online sum in float32 and float64: the number of
    swallowed terms (``swamped32``, ``swamped64``), what they were worth in float32
    (``swamped_lost32``, eps) and the error of the computed sum (``swamped_err32``,
    ``swamped_err64``, eps)."""

    swamped32: int
    swamped_lost32: float
    swamped_err32: float
    swamped64: int
    swamped_err64: float


def swamping_summary(swamp: Mapping[str, Swamping]) -> SwampingSummary:
    """:class:`SwampingSummary` of ``swamp`` (``"float32"``, ``"float64"`` →
    :class:`~numscale.streaming.Swamping`)."""
    s32 = _pick(swamp, "float32", "swamp")
    s64 = _pick(swamp, "float64", "swamp")
    _require(s32, Swamping, "swamp['float32']")
    _require(s64, Swamping, "swamp['float64']")
    return SwampingSummary(
        swamped32=s32.count,
        swamped_lost32=s32.lost,
        swamped_err32=s32.error,
        swamped64=s64.count,
        swamped_err64=s64.error,
    )


def format_swamping(swamp: Mapping[str, Swamping]) -> str:
    """One line per format: terms swamped, what they were worth, the sum's error."""
    lines = []
    for name, s in swamp.items():
        _require(s, Swamping, f"swamp[{name!r}]")
        lines.append(
            f"{name}: {s.count} terms swamped, worth {s.lost:.1f} eps of ℓ;"
            f" computed ℓ off by {s.error:+.1f} eps"
        )
    return "\n".join(lines)


def format_tree_difference(rel: np.ndarray) -> str:
    """How often and by how much two merge orders differ: ``rel`` ``(rows,)`` holds
    the relative difference of each row's sum, in float32 eps."""
    r = as_float_array(rel, "rel", ndim=1)
    return (
        f"the trees differ in {np.mean(r > 0):.0%} of the rows,"
        f" by at most {r.max():.2f} float32 eps"
    )
