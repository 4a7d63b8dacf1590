"""The quantities the residual-stream chapter quotes, as result records.

Each builder takes the measurements of :mod:`numscale.residual` (its
:class:`~numscale.residual.GradientProfile` of one model, or the arrays of a
:class:`~numscale.residual.DepthSweep`) and returns a frozen dataclass of plain floats
that the chapter glues in one call; the ``format_*`` functions return the tables the
chapter prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, finite_float, positive_int
from numscale.residual import POSITIONS, DepthSweep, GradientProfile


def _profile(value: object, name: str) -> GradientProfile:
    if not isinstance(value, GradientProfile):
        raise TypeError(f"{name} must be a GradientProfile, got {type(value).__name__}")
    return value


def _mapping(value: object, name: str) -> Mapping:
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(value).__name__}")
    return value


def _same_depth(pre: GradientProfile, post: GradientProfile) -> None:
    if pre.weights.shape != post.weights.shape:
        raise ValueError(
            "pre and post must come from models of the same depth, got "
            f"{pre.weights.size} and {post.weights.size} blocks"
        )


@dataclass(frozen=True)
class StreamNormSummary:
    """The stream norms of a pre-LN and a post-LN model with the same weights (see
    :func:`stream_norm_summary`); every field is a float."""

    sqrt_d: float  #: √d_model, the norm of a LayerNorm output (γ = 1, β = 0, ε = 0)
    pre_norm_0: float  #: pre-LN mean ‖x_0‖ (the embedding)
    pre_norm_1: float  #: pre-LN mean ‖x_1‖ (after block 1)
    pre_norm_L: float  #: pre-LN mean ‖x_L‖ (after the last block)
    pre_growth: float  #: pre_norm_L / pre_norm_0
    post_norm_min: float  #: smallest post-LN mean ‖x_l‖ over the blocks l = 1 … L
    post_norm_max: float  #: largest post-LN mean ‖x_l‖ over the blocks l = 1 … L


def stream_norm_summary(
    pre: GradientProfile, post: GradientProfile, d: int
) -> StreamNormSummary:
    """Summarize ``stream_norm`` (``(L + 1,)`` each) of the two arrangements of one
    model of width ``d``."""
    pre, post = _profile(pre, "pre"), _profile(post, "post")
    _same_depth(pre, post)
    d = positive_int(d, "d")
    pre_norm, post_norm = pre.stream_norm, post.stream_norm
    return StreamNormSummary(
        sqrt_d=float(np.sqrt(d)),
        pre_norm_0=float(pre_norm[0]),
        pre_norm_1=float(pre_norm[1]),
        pre_norm_L=float(pre_norm[-1]),
        pre_growth=float(pre_norm[-1] / pre_norm[0]),
        post_norm_min=float(post_norm[1:].min()),
        post_norm_max=float(post_norm[1:].max()),
    )


@dataclass(frozen=True)
class GradientSummary:
    """The weight and stream gradients of a pre-LN and a post-LN model with the same
    weights (see :func:`gradient_summary`); every field is a float."""

    grad_pre_first: float  #: pre-LN ‖∂loss/∂W_MLP‖ of block 1
    grad_pre_last: float  #: pre-LN ‖∂loss/∂W_MLP‖ of block L
    grad_post_first: float  #: post-LN ‖∂loss/∂W_MLP‖ of block 1
    grad_post_last: float  #: post-LN ‖∂loss/∂W_MLP‖ of block L
    grad_ratio_first: float  #: grad_post_first / grad_pre_first
    grad_ratio_last: float  #: grad_post_last / grad_pre_last
    pre_grad_fall: float  #: grad_pre_first / grad_pre_last
    pre_stream_grad_rise: (
        float  #: pre-LN ‖g_0‖ / ‖g_L‖ (stream gradient, input over output)
    )
    #: max / min over the blocks of pre-LN's weight gradient per unit of the stream
    #: gradient at the block's output, ‖∂loss/∂W_l‖ / ‖g_l‖
    pre_per_stream_spread: float


def gradient_summary(pre: GradientProfile, post: GradientProfile) -> GradientSummary:
    """Compare the gradient profiles of the two arrangements of one model (L blocks)."""
    pre, post = _profile(pre, "pre"), _profile(post, "post")
    _same_depth(pre, post)
    per_stream = (
        pre.weights / pre.stream[1:]
    )  # block l's weight gradient per unit of g_l
    return GradientSummary(
        grad_pre_first=float(pre.weights[0]),
        grad_pre_last=float(pre.weights[-1]),
        grad_post_first=float(post.weights[0]),
        grad_post_last=float(post.weights[-1]),
        grad_ratio_first=float(post.weights[0] / pre.weights[0]),
        grad_ratio_last=float(post.weights[-1] / pre.weights[-1]),
        pre_grad_fall=float(pre.weights[0] / pre.weights[-1]),
        pre_stream_grad_rise=float(pre.stream[0] / pre.stream[-1]),
        pre_per_stream_spread=float(per_stream.max() / per_stream.min()),
    )


def format_profiles(profiles: Mapping[str, GradientProfile], field: str) -> str:
    """One labelled row per arrangement of ``profiles`` (position -> profile): the
    profile's ``field``, as the chapter prints them: ``"stream_norm"`` (``(L + 1,)``,
    its header naming depths 0 (the embedding) … L) rounded to 1 decimal for pre-LN
    and 2 for post-LN, 80 columns; ``"weights"``
    (``(L,)``) rounded to 3 decimals, 72 columns."""
    if field not in ("stream_norm", "weights"):
        raise ValueError(f"field must be 'stream_norm' or 'weights', got {field!r}")
    profiles, lines = _mapping(profiles, "profiles"), []
    for pos in POSITIONS:
        profile = _profile(profiles.get(pos), f"profiles[{pos!r}]")
        values = getattr(profile, field)
        if field == "stream_norm":
            decimals, width = (1 if pos == "pre" else 2), 80
            lines.append(
                f"{pos + '-LN':8s}stream norm, depth 0 (embedding) … {values.size - 1}:"
            )
        else:
            decimals, width = 3, 72
            lines.append(f"{pos}-LN: gradient norm, blocks 1…{values.size}:")
        lines.append(np.array2string(np.round(values, decimals), max_line_width=width))
    return "\n".join(lines)


@dataclass(frozen=True)
class DepthSummary:
    """The last block's gradient against depth, over seeds (see :func:`depth_summary`).

    Slopes are log–log least-squares slopes against the depth L, one per seed; "mean"
    and "se" are their mean and its standard error over the s seeds
    (sd/√s); every field is a float.
    """

    slope_pre: float  #: pre-LN last-block gradient: mean slope
    slope_pre_se: float  #: its standard error
    slope_pre_z: float  #: (slope_pre + ½) / slope_pre_se: distance from −½ in SEs
    slope_pre_seed0: float  #: the slope of the first seed alone
    #: that fit's least-squares standard error (a standard error only if the depths'
    #: points are independent; the chapter's depths of one seed are nested models)
    slope_pre_seed0_fit_se: float
    slope_pre_seed_sd: float  #: standard deviation of the slopes over the seeds
    slope_post: float  #: post-LN last-block gradient: mean slope
    slope_post_se: float  #: its standard error
    slope_post_z: float  #: slope_post / slope_post_se: distance from 0 in SEs
    slope_growth: float  #: mean slope of 1/growth (the final LayerNorm's division)
    slope_growth_se: float  #: its standard error
    slope_corrected: float  #: mean slope of the pre-LN gradient times growth
    slope_corrected_se: float  #: its standard error
    equal_updates_slope: float  #: the slope equal updates predict (given, not computed)
    rho: float  #: the relative update size ρ that prediction assumes (given, > 0)
    added_first: float  #: mean over seeds of block 1's addition to (mean ‖x‖)²/d
    added_first_se: float  #: its standard error
    added_last: float  #: mean over seeds of block L's addition to (mean ‖x‖)²/d
    added_last_se: float  #: its standard error
    added_last_seed0: float  #: block L's addition in the first seed alone
    late_over_early: (
        float  #: mean over seeds of (last six blocks' / first six's) additions
    )
    late_over_early_se: float  #: its standard error
    cos_post_first: float  #: post-LN mean token cosine at the shallowest depth
    cos_post_last: float  #: post-LN mean token cosine at the deepest depth
    cos_pre_first: float  #: pre-LN, shallowest depth
    cos_pre_last: float  #: pre-LN, deepest depth
    cos_post_first_se: float  #: standard errors of the four means over the seeds
    cos_post_last_se: float
    cos_pre_first_se: float
    cos_pre_last_se: float


def _mean_se(values: np.ndarray) -> tuple[float, float]:
    return float(values.mean()), float(values.std(ddof=1) / np.sqrt(values.size))


def depth_summary(
    fits: Mapping[str, np.ndarray],
    equal_updates_slope: float,
    added: np.ndarray,
    cosine: Mapping[str, np.ndarray],
    *,
    rho: float,
) -> DepthSummary:
    """Means, standard errors and ratios of the chapter's depth sweep.

    ``fits`` maps ``"pre"``, ``"post"`` (last-block gradients), ``"growth"`` (1/growth)
    and ``"corrected"`` (gradient × growth) to ``(s, 2)`` arrays: per seed, the
    log–log slope against depth and its fit standard error
    (:func:`numscale.dotprod.loglog_slope`). ``added`` is ``(s, L)``: what each block
    of the deepest pre-LN model of each seed adds to the stream's squared norm over d,
    whichever norm the caller differences (the chapter: the square of the mean norm
    over tokens, (mean ‖x_l‖)²/d); L ≥ 12: the first and last six blocks are compared. ``cosine`` maps each position to ``(s, m)`` token cosines
    (as in :class:`numscale.residual.DepthSweep`). At least two seeds. ``rho``: the
    relative update size behind ``equal_updates_slope``, kept in the record.
    """
    fits, cosine, arrays = _mapping(fits, "fits"), _mapping(cosine, "cosine"), {}
    for key in ("pre", "post", "growth", "corrected"):
        if key not in fits:
            raise ValueError(f"fits must hold {key!r}")
        arrays[key] = as_float_array(fits[key], f"fits[{key!r}]", ndim=2)
        if arrays[key].shape[1] != 2 or arrays[key].shape[0] < 2:
            raise ValueError(
                f"fits[{key!r}] must be (seeds ≥ 2, 2), got {arrays[key].shape}"
            )
    slopes = {key: np.ascontiguousarray(a[:, 0]) for key, a in arrays.items()}
    added = as_float_array(added, "added", ndim=2)
    if added.shape[1] < 12:
        raise ValueError(f"added must have at least 12 blocks, got {added.shape}")
    cos = {
        pos: as_float_array(cosine.get(pos), f"cosine[{pos!r}]", ndim=2)
        for pos in POSITIONS
    }
    slope_pre, se_pre = _mean_se(slopes["pre"])
    slope_post, se_post = _mean_se(slopes["post"])
    slope_growth, se_growth = _mean_se(slopes["growth"])
    slope_corr, se_corr = _mean_se(slopes["corrected"])
    added_first, added_first_se = _mean_se(added[:, 0])
    added_last, added_last_se = _mean_se(added[:, -1])
    late_over_early, late_se = _mean_se(
        added[:, -6:].sum(axis=1) / added[:, :6].sum(axis=1)
    )
    means = {pos: c.mean(axis=0) for pos, c in cos.items()}
    ses = {pos: c.std(axis=0, ddof=1) / np.sqrt(c.shape[0]) for pos, c in cos.items()}
    return DepthSummary(
        slope_pre=slope_pre,
        slope_pre_se=se_pre,
        slope_pre_z=(slope_pre + 0.5) / se_pre,
        slope_pre_seed0=float(slopes["pre"][0]),
        slope_pre_seed0_fit_se=float(arrays["pre"][0, 1]),
        slope_pre_seed_sd=float(slopes["pre"].std(ddof=1)),
        slope_post=slope_post,
        slope_post_se=se_post,
        slope_post_z=slope_post / se_post,
        slope_growth=slope_growth,
        slope_growth_se=se_growth,
        slope_corrected=slope_corr,
        slope_corrected_se=se_corr,
        equal_updates_slope=finite_float(equal_updates_slope, "equal_updates_slope"),
        rho=finite_float(rho, "rho", positive=True),
        added_first=added_first,
        added_first_se=added_first_se,
        added_last=added_last,
        added_last_se=added_last_se,
        added_last_seed0=float(added[0, -1]),
        late_over_early=late_over_early,
        late_over_early_se=late_se,
        cos_post_first=float(means["post"][0]),
        cos_post_last=float(means["post"][-1]),
        cos_pre_first=float(means["pre"][0]),
        cos_pre_last=float(means["pre"][-1]),
        cos_post_first_se=float(ses["post"][0]),
        cos_post_last_se=float(ses["post"][-1]),
        cos_pre_first_se=float(ses["pre"][0]),
        cos_pre_last_se=float(ses["pre"][-1]),
    )


def format_depth_table(pre_slopes: np.ndarray, sweep: DepthSweep) -> str:
    """Pre-LN's slope per seed (``(s,)``) and the mean over seeds of the token cosine at
    each of the m depths of ``sweep`` (its ``cosine``: position -> ``(s, m)``, and its
    ``depths`` ``(m,)``), as the chapter prints them, the depths named in the cosine
    rows' header."""
    if not isinstance(sweep, DepthSweep):
        raise TypeError(f"sweep must be a DepthSweep, got {type(sweep).__name__}")
    pre_slopes = as_float_array(pre_slopes, "pre_slopes", ndim=1)
    cosine = _mapping(sweep.cosine, "sweep.cosine")
    depths = np.asarray(sweep.depths)
    if depths.ndim != 1 or not np.issubdtype(depths.dtype, np.integer):
        raise TypeError(f"sweep.depths must be a (m,) integer array, got {depths!r}")
    cos = {
        pos: as_float_array(cosine.get(pos), f"sweep.cosine[{pos!r}]", ndim=2).mean(
            axis=0
        )
        for pos in POSITIONS
    }
    if any(c.shape != depths.shape for c in cos.values()):
        raise ValueError(f"sweep.cosine must have one column per depth ({depths.size})")
    head = f"mean token cosine at the last block's input, L = {depths.tolist()}:"
    return "\n".join(
        [
            f"pre-LN slope per seed: {np.round(pre_slopes, 3)}",
            head,
            f"  post-LN: {np.round(cos['post'], 2)}",
            f"   pre-LN: {np.round(cos['pre'], 2)}",
        ]
    )
