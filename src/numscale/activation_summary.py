"""The quantities the trained-residual chapter quotes, as result records.

Each builder takes measurements of :mod:`numscale.activation_stats` (stream RMS,
:class:`~numscale.activation_stats.BlockUpdates`,
:class:`~numscale.activation_stats.OutlierStats`,
:class:`~numscale.activation_stats.OutputLogitStats`,
:class:`~numscale.activation_stats.FormatMargin`) and returns a frozen dataclass of
plain numbers that the chapter glues in one call; the ``format_*`` functions return
the tables it prints. Shapes as in :mod:`numscale.activation_stats`: L blocks, d
channels, per-depth arrays ``(L + 1,)``, per-block arrays ``(L,)``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp
from numscale.activation_stats import (
    BlockUpdates,
    FormatMargin,
    OutlierStats,
    OutputLogitStats,
)
from numscale.checks import as_float_array, finite_float, of_type, positive_int


def _depth_array(value: object, name: str, size: int | None = None) -> np.ndarray:
    array = as_float_array(value, name, ndim=1)
    if array.size < 2 or (size is not None and array.size != size):
        want = f"{size} entries" if size is not None else "at least 2 entries"
        raise ValueError(f"{name} must have {want}, got {array.size}")
    return array


# ----------------------------------------------------------------------- the stream


@dataclass(frozen=True)
class GrowthSummary:
    """How the stream grows over the blocks (see :func:`growth_summary`)."""

    n_tokens: int  #: real tokens measured
    rms_0: float  #: RMS of the trained stream at the embedding
    rms_L: float  #: RMS after the last block
    growth: float  #: rms_L / rms_0
    sqrt_growth: float  #: the growth equal uncorrelated updates would give (given)
    init_rms_0: float  #: RMS at the embedding at initialization
    init_growth: float  #: last over first RMS at initialization
    first_rms_L: float  #: RMS after the last block at the first (BOS) position
    update_rms_1: float  #: RMS of block 1's update Δ_1
    update_rms_L: float  #: RMS of the last block's update
    update_ratio_min: float  #: smallest RMS(Δ_l) / RMS(x_{l−1}) over the blocks
    update_ratio_max: float  #: largest RMS(Δ_l) / RMS(x_{l−1})
    cos_min: float  #: smallest mean cos(x_{l−1}, Δ_l) over the blocks
    cos_max: float  #: largest mean cos(x_{l−1}, Δ_l)
    cross_share: float  #: share of the total growth of ‖x‖²/d due to the cross terms


def growth_summary(
    rms: np.ndarray,
    rms_init: np.ndarray,
    rms_first: np.ndarray,
    updates: BlockUpdates,
    *,
    sqrt_growth: float,
    n_tokens: int,
) -> GrowthSummary:
    """Summarize the stream's RMS per depth (``(L + 1,)`` each: trained, at
    initialization, trained at the first position) and the trained model's
    :class:`~numscale.activation_stats.BlockUpdates` (``(L,)`` arrays)."""
    rms = _depth_array(rms, "rms")
    rms_init = _depth_array(rms_init, "rms_init", rms.size)
    rms_first = _depth_array(rms_first, "rms_first", rms.size)
    updates = of_type(updates, BlockUpdates, "updates")
    if updates.update_rms.shape != (rms.size - 1,):
        raise ValueError(
            f"updates must have {rms.size - 1} blocks, got {updates.update_rms.shape}"
        )
    ratio = updates.update_rms / rms[:-1]
    return GrowthSummary(
        n_tokens=positive_int(n_tokens, "n_tokens"),
        rms_0=float(rms[0]),
        rms_L=float(rms[-1]),
        growth=float(rms[-1] / rms[0]),
        sqrt_growth=finite_float(sqrt_growth, "sqrt_growth"),
        init_rms_0=float(rms_init[0]),
        init_growth=float(rms_init[-1] / rms_init[0]),
        first_rms_L=float(rms_first[-1]),
        update_rms_1=float(updates.update_rms[0]),
        update_rms_L=float(updates.update_rms[-1]),
        update_ratio_min=float(ratio.min()),
        update_ratio_max=float(ratio.max()),
        cos_min=float(updates.cosine.min()),
        cos_max=float(updates.cosine.max()),
        cross_share=float(updates.cross.sum() / updates.growth.sum()),
    )


def format_growth(rms: np.ndarray, updates: BlockUpdates) -> str:
    """The stream's RMS per depth (the embedding, depth 0, then after each block) and
    each block's update RMS and mean cosine with the stream, three lines rounded to 3
    decimals."""
    rms = _depth_array(rms, "rms")
    updates = of_type(updates, BlockUpdates, "updates")
    return "\n".join(
        [
            f"RMS at the embedding, then after each block: {np.round(rms, 3)}",
            f"RMS of each block's update: {np.round(updates.update_rms, 3)}",
            f"mean cos(x_{{l-1}}, Δ_l): {np.round(updates.cosine, 3)}",
        ]
    )


@dataclass(frozen=True)
class OutlierSummary:
    """Outlier statistics of the stream (see :func:`outlier_summary`)."""

    token_ratio_max: float  #: largest within-token max/median |x_c| over all depths
    criterion_over_ratio: float  #: 1,000 (Sun et al.'s factor) / token_ratio_max
    token_ratio_min: float  #: smallest per-depth token ratio after the embedding
    init_token_ratio_max: float  #: token_ratio_max at initialization
    global_ratio_max: float  #: largest max |x| / median |x| over all tokens, per depth
    max_abs: float  #: largest |x| anywhere
    median_abs_L: float  #: median |x| after the last block
    first_max_abs: float  #: largest |x| at the first (BOS) position
    channel_rms_ratio_max: float  #: largest (max / median channel RMS) over depths


def outlier_summary(
    trained: OutlierStats, init: OutlierStats, first: OutlierStats
) -> OutlierSummary:
    """Summarize :class:`~numscale.activation_stats.OutlierStats` of the trained stream
    (all real tokens), at initialization, and of the trained stream at the first
    position."""
    trained = of_type(trained, OutlierStats, "trained")
    init = of_type(init, OutlierStats, "init")
    first = of_type(first, OutlierStats, "first")
    channel = trained.channel_rms  # (L + 1, d)
    return OutlierSummary(
        token_ratio_max=float(trained.token_ratio.max()),
        criterion_over_ratio=float(1000 / trained.token_ratio.max()),
        token_ratio_min=float(trained.token_ratio[1:].min()),
        init_token_ratio_max=float(init.token_ratio.max()),
        global_ratio_max=float(trained.global_ratio.max()),
        max_abs=float(trained.max_abs.max()),
        median_abs_L=float(trained.median_abs[-1]),
        first_max_abs=float(first.max_abs.max()),
        channel_rms_ratio_max=float(
            (channel.max(axis=1) / np.median(channel, axis=1)).max()
        ),
    )


def format_outliers(trained: OutlierStats, init: OutlierStats) -> str:
    """Largest |x| and within-token max/median ratio per depth (trained; the ratio also
    at initialization), then the (position, channel) of each depth's largest |x|,
    wrapped at 80 columns."""
    trained = of_type(trained, OutlierStats, "trained")
    init = of_type(init, OutlierStats, "init")
    where = list(zip(trained.where_position.tolist(), trained.where_channel.tolist()))
    return "\n".join(
        [
            f"largest |x| per depth:       {np.round(trained.max_abs, 2)}",
            f"max/median within a token:   {np.round(trained.token_ratio, 1)}",
            f"  at initialization:         {np.round(init.token_ratio, 1)}",
            "position, channel of the max:",
            textwrap.fill(str(where), 80),
        ]
    )


# ------------------------------------------------------------------------ the gains


@dataclass(frozen=True)
class GainSummary:
    """The trained RMSNorm gains (see :func:`gain_summary`)."""

    n_gains: int  #: number of gains
    gain_min: float  #: smallest gain
    gain_max: float  #: largest gain
    gain_median: float  #: median of all gains
    att_median: float  #: median of the gains before attention
    mlp_median: float  #: median of the gains before the MLP
    final_median: float  #: median of the final norm's gains
    n_negative: int  #: number of negative gains


def gain_summary(
    gains: np.ndarray, att: np.ndarray, mlp: np.ndarray, final: np.ndarray
) -> GainSummary:
    """Summarize all gains (``gains``, any shape, e.g. ``(2L + 1, d)``) and those of
    each kind: ``att`` and ``mlp`` ``(L, d)``, ``final`` ``(d,)``."""
    gains = as_float_array(gains, "gains")
    att = as_float_array(att, "att")
    mlp = as_float_array(mlp, "mlp")
    final = as_float_array(final, "final")
    if gains.size != att.size + mlp.size + final.size:
        raise ValueError(
            f"gains must hold the {att.size + mlp.size + final.size} gains of att, "
            f"mlp and final, got {gains.size}"
        )
    return GainSummary(
        n_gains=gains.size,
        gain_min=float(gains.min()),
        gain_max=float(gains.max()),
        gain_median=float(np.median(gains)),
        att_median=float(np.median(att)),
        mlp_median=float(np.median(mlp)),
        final_median=float(np.median(final)),
        n_negative=int((gains < 0).sum()),
    )


def format_gain_rows(labels: Sequence[str], gains: np.ndarray) -> str:
    """One line per row of ``gains`` (``(n, d)``, ``n`` labels): median, min, max."""
    gains = as_float_array(gains, "gains", ndim=2)
    if len(labels) != gains.shape[0]:
        raise ValueError(f"labels must name the {gains.shape[0]} rows of gains")
    return "\n".join(
        f"{label:12s} median {np.median(row):6.3f}  min {row.min():6.3f}  "
        f"max {row.max():6.3f}"
        for label, row in zip(labels, gains)
    )


# ------------------------------------------------------------------ the output logits


@dataclass(frozen=True)
class OutputSummary:
    """The output distribution against the loss (see :func:`output_summary`)."""

    logit_spread_median: float  #: median over positions of the logits' std
    logit_max_abs: float  #: largest |logit|
    top_gap_median: float  #: median of (largest logit − mean of the others)
    entropy_mean: float  #: mean next-token entropy (nats)
    ln_vocab: float  #: ln(vocabulary size), the uniform distribution's entropy
    top_p_median: float  #: median probability of the most likely token
    loss32: float  #: mean loss (float32 model), per token
    loss32_se: float  #: its standard error across stories
    loss_minus_entropy: float  #: loss − entropy, paired over stories
    loss_minus_entropy_se: float  #: its standard error


def output_summary(
    out: OutputLogitStats,
    vocab_size: int,
    loss: tuple[float, float],
    gap: tuple[float, float],
) -> OutputSummary:
    """Summarize :class:`~numscale.activation_stats.OutputLogitStats` (``(N,)`` arrays
    over N positions) with the loss (mean, SE) and loss − entropy (mean, SE)."""
    out = of_type(out, OutputLogitStats, "out")
    vocab_size = positive_int(vocab_size, "vocab_size", minimum=2)
    if len(loss) != 2 or len(gap) != 2:
        raise ValueError("loss and gap must each be a (mean, standard error) pair")
    return OutputSummary(
        logit_spread_median=float(np.median(out.spread)),
        logit_max_abs=float(out.max_abs),
        top_gap_median=float(np.median(out.top_gap)),
        entropy_mean=float(out.entropy.mean()),
        ln_vocab=float(np.log(vocab_size)),
        top_p_median=float(np.median(out.top_probability)),
        loss32=finite_float(loss[0], "loss"),
        loss32_se=finite_float(loss[1], "loss"),
        loss_minus_entropy=finite_float(gap[0], "gap"),
        loss_minus_entropy_se=finite_float(gap[1], "gap"),
    )


def format_output(summary: OutputSummary) -> str:
    """Mean next-token entropy against the uniform one, and the loss, one line."""
    s = of_type(summary, OutputSummary, "summary")
    return (
        f"next-token entropy {s.entropy_mean:.3f} nats (uniform: {s.ln_vocab:.3f}); "
        f"loss {s.loss32:.3f} ± {s.loss32_se:.3f}"
    )


# ---------------------------------------------------------------- the 16-bit formats


def causal_attention_weights(attn_weights: np.ndarray, real: np.ndarray) -> np.ndarray:
    """The causal attention weights of real query rows t ≥ 1 on real keys 0 … t.

    ``attn_weights`` is ``(L, B, H, T, T)`` (query, key last), ``real`` ``(B, T)``
    bool. Returns the selected weights as a flat ``(n,)`` array (layer, batch, head,
    query, key order), every weight kept whole (no reduction).
    """
    w = np.asarray(attn_weights)
    if w.ndim != 5 or w.shape[-1] != w.shape[-2]:
        raise ValueError(f"attn_weights must be (L, B, H, T, T), got {w.shape}")
    if not np.issubdtype(w.dtype, np.floating):
        raise TypeError(f"attn_weights must hold floats, got {w.dtype}")
    real = np.asarray(real)
    if real.dtype != bool or real.shape != (w.shape[1], w.shape[3]):
        raise ValueError(
            f"real must be a (B, T) = {(w.shape[1], w.shape[3])} bool mask, "
            f"got {real.dtype} {real.shape}"
        )
    t = np.arange(w.shape[-1])
    causal = (
        real[:, :, None]
        & real[:, None, :]  # (B, T, T)
        & (t[None, None, :] <= t[None, :, None])
        & (t[None, :, None] >= 1)
    )
    return w[np.broadcast_to(causal[None, :, None], w.shape)]


#: The tensor names :func:`low_precision_summary` reads from the margins.
MARGIN_NAMES = {
    "weights": "weights",
    "x": "residual stream x",
    "squares": "RMSNorm squares x²",
    "qk": "q·k before the scale",
    "logits": "output logits",
}


@dataclass(frozen=True)
class LowPrecisionSummary:
    """The model in float16 and bfloat16 (see :func:`low_precision_summary`)."""

    bf16_diff: float  #: bfloat16 loss − float32 loss, paired over stories
    bf16_diff_se: float  #: its standard error
    fp16_diff: float  #: float16 loss − float32 loss
    fp16_diff_se: float  #: its standard error
    fp16_max: float  #: float16's largest finite value
    fp16_smallest_normal: float  #: float16's smallest normal number
    squares_fp16_doublings: float  #: log2 headroom of the squares x² in float16
    squares_max: float  #: largest square x²
    x_fp16_doublings: float  #: log2 headroom of the stream in float16
    qk_max: float  #: largest |q·k| before the scale
    logits_fp16_doublings: float  #: log2 headroom of the output logits in float16
    weights_subnormal_pct: (
        float  #: % of nonzero weights below float16's smallest normal
    )
    qk_fp16_doublings: float  #: log2 headroom of q·k in float16
    squares_subnormal_pct: (
        float  #: % of nonzero squares below float16's smallest normal
    )
    attn_below_normal_pct: float  #: % of causal attention weights below it
    attn_to_zero_pct: float  #: % of causal attention weights float16 rounds to 0
    bf16_smallest_normal: float  #: bfloat16's smallest normal number
    attn_below_bf16_normal_pct: float  #: % of causal weights below bfloat16's
    attn_zero_fp32_pct: float  #: % of causal weights exactly 0 in float32
    fp16_mean_of_squares: float  #: a float16 mean whose sum overflows (given)


def low_precision_summary(
    diffs: Mapping[torch.dtype, tuple[float, float]],
    margins: Mapping[tuple[str, torch.dtype], FormatMargin],
    underflow: Mapping[str, float],
    causal_weights: np.ndarray,
    *,
    fp16_mean_of_squares: float,
) -> LowPrecisionSummary:
    """Collect the quoted numbers of the 16-bit comparison.

    ``diffs``: dtype -> (loss difference, SE) for ``torch.bfloat16`` and
    ``torch.float16``; ``margins``: (name, dtype) ->
    :class:`~numscale.activation_stats.FormatMargin` for the names of
    :data:`MARGIN_NAMES` in float16; ``underflow``: the ``"below_normal"`` and
    ``"to_zero"`` shares of :func:`numscale.attention_rows.attention_weight_underflow`;
    ``causal_weights``: ``(n,)`` float32 weights of
    :func:`causal_attention_weights`.
    """
    f16, bf16 = torch.float16, torch.bfloat16
    for dtype in (bf16, f16):
        if dtype not in diffs:
            raise ValueError(f"diffs must hold {dtype}")
    m = {}
    for key, name in MARGIN_NAMES.items():
        m[key] = of_type(margins.get((name, f16)), FormatMargin, f"margins[{name!r}]")
    for key in ("below_normal", "to_zero"):
        if key not in underflow:
            raise ValueError(f"underflow must hold {key!r}")
    w = np.asarray(causal_weights)
    if w.ndim != 1 or w.size == 0 or not np.issubdtype(w.dtype, np.floating):
        raise ValueError("causal_weights must be a non-empty (n,) float array")
    fp16, bf16_info = fp.format_info(f16), fp.format_info(bf16)
    return LowPrecisionSummary(
        bf16_diff=float(diffs[bf16][0]),
        bf16_diff_se=float(diffs[bf16][1]),
        fp16_diff=float(diffs[f16][0]),
        fp16_diff_se=float(diffs[f16][1]),
        fp16_max=float(fp16.max),
        fp16_smallest_normal=float(fp16.smallest_normal),
        squares_fp16_doublings=float(m["squares"].log2_headroom),
        squares_max=float(m["squares"].max_abs),
        x_fp16_doublings=float(m["x"].log2_headroom),
        qk_max=float(m["qk"].max_abs),
        logits_fp16_doublings=float(m["logits"].log2_headroom),
        weights_subnormal_pct=float(100 * m["weights"].fraction_subnormal),
        qk_fp16_doublings=float(m["qk"].log2_headroom),
        squares_subnormal_pct=float(100 * m["squares"].fraction_subnormal),
        attn_below_normal_pct=float(100 * underflow["below_normal"]),
        attn_to_zero_pct=float(100 * underflow["to_zero"]),
        bf16_smallest_normal=float(bf16_info.smallest_normal),
        attn_below_bf16_normal_pct=100 * float((w < bf16_info.smallest_normal).mean()),
        attn_zero_fp32_pct=100 * float((w == 0).mean()),
        fp16_mean_of_squares=finite_float(fp16_mean_of_squares, "fp16_mean_of_squares"),
    )


def format_low_precision(summary: LowPrecisionSummary, n_attention_stories: int) -> str:
    """The paired loss changes and the float16 underflow of the causal attention weights,
    measured on ``n_attention_stories`` stories."""
    s = of_type(summary, LowPrecisionSummary, "summary")
    n = positive_int(n_attention_stories, "n_attention_stories")
    rows = [
        ("bfloat16", s.bf16_diff, s.bf16_diff_se),
        ("float16", s.fp16_diff, s.fp16_diff_se),
    ]
    lines = [
        f"{name:9s} loss − float32 loss = {d:+.5f} ± {se:.5f} (paired, same stories)"
        for name, d, se in rows
    ]
    lines += [
        f"causal attention weights ({n} stories) in float16:",
        f"  below its smallest normal {s.attn_below_normal_pct:.1f}%, "
        f"rounded to 0 {s.attn_to_zero_pct:.1f}%",
    ]
    return "\n".join(lines)
