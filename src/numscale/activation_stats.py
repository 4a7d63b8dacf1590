"""Statistics of recorded activations: the residual stream, the output logits, and
where a tensor's values sit in a number format's range.

Shapes: ``residual`` (L+1, B, T, d_model), index 0 the token embedding and index ``l``
the stream after block ``l``; ``real`` (B, T) bool, True at real tokens (BOS included,
:attr:`numscale.llama_runs.Collected.real`); ``logits`` (B, T, vocab); ``target`` (B, T)
bool, the target mask. The format limits come from :func:`numscale.fp.format_info`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp
from numscale.checks import as_float_array

# ---------------------------------------------------------------------- residual stream


def _chosen_tokens(real: np.ndarray, positions: str) -> np.ndarray:
    chosen = np.array(real, dtype=bool, copy=True)
    if chosen.ndim != 2:
        raise ValueError(f"real must have shape (B, T), got {chosen.shape}")
    if positions == "first":
        chosen[:, 1:] = False
    elif positions == "rest":
        chosen[:, 0] = False
    elif positions != "all":
        raise ValueError(
            f"positions must be 'all', 'first' or 'rest', got {positions!r}"
        )
    if not chosen.any():
        raise ValueError("real selects no token")
    return chosen


def residual_tokens(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> np.ndarray:
    """(L+1, N, d) residual vectors of the real tokens: ``real`` (B, T) bool
    (``numscale.llama_runs.Collected.real``), ``positions`` ``"all"``, ``"first"``
    (position 0, the BOS token) or ``"rest"`` (positions ≥ 1)."""
    x = as_float_array(residual, "residual", ndim=4)
    chosen = _chosen_tokens(real, positions)
    if chosen.shape != x.shape[1:3]:
        raise ValueError(f"residual {x.shape} does not match real {chosen.shape}")
    return x[:, chosen]  # boolean index over (B, T)


def residual_rms(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> np.ndarray:
    """(L+1,) RMS of the residual stream after each block: ``sqrt(mean ‖x‖²/d)`` over
    the chosen real tokens (see :func:`residual_tokens`)."""
    x = residual_tokens(residual, real, positions=positions).astype(np.float64)
    return np.sqrt((x**2).mean(axis=(1, 2)))


@dataclass(frozen=True)
class BlockUpdates:
    """What each block adds to the stream, (L,) arrays averaged over real tokens.

    ``update_rms``: RMS of Δ_l = x_l − x_{l−1}; ``cosine``: mean cosine between x_{l−1}
    and Δ_l; and the exact decomposition of the growth of the mean squared norm per
    channel, ``growth = update_sq + cross``:
    ``(mean ‖x_l‖² − mean ‖x_{l−1}‖²)/d = mean ‖Δ_l‖²/d + 2 mean ⟨x_{l−1}, Δ_l⟩/d``.
    """

    update_rms: np.ndarray
    cosine: np.ndarray
    growth: np.ndarray
    update_sq: np.ndarray
    cross: np.ndarray


def block_updates(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> BlockUpdates:
    """:class:`BlockUpdates` of the chosen real tokens."""
    x = residual_tokens(residual, real, positions=positions).astype(np.float64)
    d = x.shape[-1]
    before, delta = x[:-1], np.diff(x, axis=0)
    sq_before = (before**2).sum(-1)
    sq_delta = (delta**2).sum(-1)
    dot = (before * delta).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / np.sqrt(sq_before * sq_delta)
    return BlockUpdates(
        update_rms=np.sqrt(sq_delta.mean(1) / d),
        cosine=np.nanmean(cos, axis=1),
        growth=((x[1:] ** 2).sum(-1).mean(1) - sq_before.mean(1)) / d,
        update_sq=sq_delta.mean(1) / d,
        cross=2 * dot.mean(1) / d,
    )


@dataclass(frozen=True)
class OutlierStats:
    """Per depth (L+1,) of the residual stream, over the chosen real tokens.

    ``max_abs``: largest |activation|; ``median_abs``: median |activation| over all
    tokens and channels; ``global_ratio`` = max_abs / median_abs. ``token_ratio``: the
    largest over tokens of (max_c |x_c| / median_c |x_c|) within one token's hidden
    state, the ratio in Sun et al.'s criterion; ``where_position`` and
    ``where_channel``: position and channel of ``max_abs``; ``channel_rms`` (L+1, d):
    RMS of each channel.
    """

    max_abs: np.ndarray
    median_abs: np.ndarray
    global_ratio: np.ndarray
    token_ratio: np.ndarray
    where_position: np.ndarray
    where_channel: np.ndarray
    channel_rms: np.ndarray


def outlier_stats(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> OutlierStats:
    """:class:`OutlierStats` of the residual stream (see there)."""
    x = np.abs(residual_tokens(residual, real, positions=positions).astype(np.float64))
    token_positions = np.nonzero(_chosen_tokens(real, positions))[1]
    flat = x.reshape(x.shape[0], -1)
    where = flat.argmax(axis=1)
    max_abs = flat.max(axis=1)
    median_abs = np.median(flat, axis=1)
    with np.errstate(divide="ignore"):
        token_ratio = (x.max(axis=2) / np.median(x, axis=2)).max(axis=1)
    return OutlierStats(
        max_abs,
        median_abs,
        max_abs / median_abs,
        token_ratio,
        token_positions[where // x.shape[2]],
        where % x.shape[2],
        np.sqrt((x**2).mean(axis=1)),
    )


# ------------------------------------------------------------------------ output logits


def predicting_positions(target: np.ndarray) -> np.ndarray:
    """(B, T) bool: positions whose logits predict a target (position t predicts
    t+1)."""
    target = np.asarray(target, dtype=bool)
    if target.ndim != 2:
        raise ValueError(f"target must have shape (B, T), got {target.shape}")
    predicts = np.zeros_like(target)
    predicts[:, :-1] = target[:, 1:]
    return predicts


@dataclass(frozen=True)
class OutputLogitStats:
    """Output logits at the N predicting positions: ``spread`` (N,) std over the
    vocabulary of each position's logits; ``max_abs`` largest |logit|; ``top_gap`` (N,)
    largest logit minus the mean of the others; ``entropy`` (N,) next-token entropy
    (nats); ``top_probability`` (N,) the largest probability."""

    spread: np.ndarray
    max_abs: float
    top_gap: np.ndarray
    entropy: np.ndarray
    top_probability: np.ndarray


def output_logit_stats(logits: np.ndarray, target: np.ndarray) -> OutputLogitStats:
    """:class:`OutputLogitStats` of (B, T, vocab) logits at the positions that predict a
    target of the (B, T) target mask."""
    z = as_float_array(logits, "logits", ndim=3)
    predicts = predicting_positions(target)
    if predicts.shape != z.shape[:2]:
        raise ValueError(f"logits {z.shape} do not match target {predicts.shape}")
    z = z[predicts].astype(np.float64)
    if z.shape[0] == 0:
        raise ValueError("target selects no position")
    log_p = z - z.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    top = z.max(axis=1)
    rest = (z.sum(axis=1) - top) / (z.shape[1] - 1)
    return OutputLogitStats(
        z.std(axis=1),
        float(np.abs(z).max()),
        top - rest,
        -(p * log_p).sum(axis=1),
        p.max(axis=1),
    )


# ----------------------------------------------------------------------- number formats


@dataclass(frozen=True)
class FormatMargin:
    """How one tensor's values sit in a format's range (measured; the format's limits
    are :func:`numscale.fp.format_info`'s).

    ``max_abs``: largest |value|; ``fraction_of_max``: max_abs / the format's largest
    finite value; ``log2_headroom``: log2 of the inverse (doublings left before
    overflow); ``fraction_subnormal``: share of the nonzero values whose magnitude is
    below the format's smallest normal number (they lose precision, and the smallest
    flush to 0); ``smallest_nonzero``: smallest nonzero |value|.
    """

    name: str
    format: str
    max_abs: float
    fraction_of_max: float
    log2_headroom: float
    fraction_subnormal: float
    smallest_nonzero: float


def format_margin(
    name: str, values: np.ndarray, dtype: torch.dtype, *, extremes_only: bool = False
) -> FormatMargin:
    """:class:`FormatMargin` of ``values`` (finite entries; -inf masks are dropped
    first) in ``dtype``. ``extremes_only``: ``values`` holds only a tensor's extreme
    values, so the share below the smallest normal is unknown (NaN, shown as "not
    measured")."""
    info = fp.format_info(dtype)  # raises TypeError unless a floating torch.dtype
    v = (
        as_float_array(values, "values", allow_nonfinite=True)
        .ravel()
        .astype(np.float64)
    )
    if np.isnan(v).any() or (v == np.inf).any():
        raise ValueError("values must hold no NaN or +inf")
    v = np.abs(v[np.isfinite(v)])
    if v.size == 0:
        raise ValueError("values must hold finite entries")
    nonzero = v[v > 0]
    max_abs = float(v.max())
    return FormatMargin(
        name=name,
        format=info.name,
        max_abs=max_abs,
        fraction_of_max=max_abs / info.max,
        log2_headroom=math.log2(info.max / max_abs) if max_abs > 0 else math.inf,
        fraction_subnormal=(
            math.nan
            if extremes_only
            else float((nonzero < info.smallest_normal).mean())
            if nonzero.size
            else 0.0
        ),
        smallest_nonzero=(
            math.nan if extremes_only else float(nonzero.min()) if nonzero.size else 0.0
        ),
    )


def margin_table(margins: Sequence[FormatMargin]) -> str:
    """A Markdown table of :class:`FormatMargin` rows (one tensor and format each)."""
    rows = [
        [
            m.name,
            m.format,
            f"{m.max_abs:.3g}",
            f"{m.fraction_of_max:.2e}",
            f"{m.log2_headroom:.1f}",
            "not measured"
            if math.isnan(m.fraction_subnormal)
            else f"{100 * m.fraction_subnormal:.3g}%",
        ]
        for m in margins
    ]
    return fp.to_markdown(
        [
            "tensor",
            "format",
            "largest abs value",
            "fraction of max",
            "doublings left",
            "nonzero values below smallest normal",
        ],
        rows,
    )
