"""Result records of ``book/quantization.md``: the numbers each section quotes.

Each builder takes the arrays the chapter computed with :mod:`numscale.quant` and
returns a frozen dataclass of the numbers a section glues (the prose quotes most of
them; a few are kept for the record); the chapter glues it with
:func:`numscale.report.glue_record`. The arithmetic is the one the chapter did inline
before (same order, same dtypes). The ``format_*`` functions return the tables the
chapter prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import quant
from numscale.checks import as_float_array, positive_int

#: short name of each scheme label of :data:`numscale.quant.SCHEME_TABLE`, as the
#: glued names use it
SCHEME_KEYS = {
    "per tensor": "tensor",
    "per channel": "channel",
    "group 32": "g32",
    "group 128": "g128",
}
#: the three variants of the outlier experiment, in the chapter's order
FOLD_VARIANTS = ("plain", "folded", "folded, outlier rows kept")
#: the fp8 formats the chapter compares
FP8_FORMATS = {"E4M3": torch.float8_e4m3fn, "E5M2": torch.float8_e5m2}


def _error_table(errors: object, name: str) -> dict[str, dict[str, np.ndarray]]:
    """``errors`` as returned by :func:`numscale.quant.error_table`: every scheme label
    maps ``"rel_fro"`` and ``"max_abs"`` to float arrays (n,) of one common length."""
    if not isinstance(errors, Mapping):
        raise TypeError(f"{name} must be a mapping, got {type(errors).__name__}")
    missing = sorted(set(SCHEME_KEYS) - set(errors))
    if missing:
        raise ValueError(f"{name} lacks the schemes {missing}")
    table, lengths = {}, set()
    for label in SCHEME_KEYS:
        row = errors[label]
        if not isinstance(row, Mapping) or not {"rel_fro", "max_abs"} <= set(row):
            raise ValueError(f"{name}[{label!r}] must map 'rel_fro' and 'max_abs'")
        table[label] = {
            key: as_float_array(row[key], f"{name}[{label!r}][{key!r}]", ndim=1)
            for key in ("rel_fro", "max_abs")
        }
        lengths |= {a.shape[0] for a in table[label].values()}
    if len(lengths) != 1:
        raise ValueError(f"{name} holds arrays of different lengths {sorted(lengths)}")
    return table


# ------------------------------------------------------------------ GPT-2 schemes


@dataclass(frozen=True)
class SchemeSummary:
    """Int8 errors of GPT-2's attention matrices, by scheme.

    ``n_gpt2``: number of matrices. ``gpt2``: ``"<key>_qkv"`` and ``"<key>_proj"``, the
    mean relative Frobenius error of the ``c_attn`` and of the ``c_proj`` matrices
    for each scheme key of :data:`SCHEME_KEYS`; ``"tensor_max"`` and ``"g32_max"``,
    the largest relative error of any matrix per tensor and per group of 32.
    """

    n_gpt2: int
    gpt2: dict[str, float]


def _qkv_mask(is_qkv: object, n: int) -> np.ndarray:
    mask = np.asarray(is_qkv)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValueError(f"is_qkv must be a bool array of shape ({n},)")
    if mask.all() or not mask.any():
        raise ValueError("is_qkv must mark some matrices as c_attn and some not")
    return mask


def scheme_summary(errors: Mapping, is_qkv: np.ndarray) -> SchemeSummary:
    """:class:`SchemeSummary` of an :func:`numscale.quant.error_table` ``errors`` of n
    matrices; ``is_qkv`` (n,) bool marks the ``c_attn`` ones (the others: ``c_proj``).
    """
    table = _error_table(errors, "errors")
    n = table["per tensor"]["rel_fro"].shape[0]
    mask = _qkv_mask(is_qkv, n)
    means = {
        f"{key}_{part}": float(table[label]["rel_fro"][rows].mean())
        for label, key in SCHEME_KEYS.items()
        for part, rows in (("qkv", mask), ("proj", ~mask))
    }
    return SchemeSummary(
        n_gpt2=n,
        gpt2={
            **means,
            "tensor_max": float(table["per tensor"]["rel_fro"].max()),
            "g32_max": float(table["group 32"]["rel_fro"].max()),
        },
    )


def format_scheme_errors(errors: Mapping, is_qkv: np.ndarray) -> str:
    """One line per scheme: mean relative error of the ``c_attn`` and ``c_proj``
    matrices (``is_qkv`` (n,) marks the former) and the largest absolute error."""
    table = _error_table(errors, "errors")
    mask = _qkv_mask(is_qkv, table["per tensor"]["rel_fro"].shape[0])
    return "\n".join(
        f"{label:12s} relative error c_attn {e['rel_fro'][mask].mean():.4f}, "
        f"c_proj {e['rel_fro'][~mask].mean():.4f}; "
        f"max |error| {e['max_abs'].max():.4f}"
        for label, e in table.items()
    )


# ------------------------------------------------------------------ stories260K


@dataclass(frozen=True)
class LossSummary:
    """Int8 weight errors and loss changes of the quantized stories260K.

    ``n_matrices``: matrices quantized; ``loss_base``: the float32 model's loss, nats
    per token (total over total tokens); ``err``: scheme key -> mean relative
    Frobenius int8 error over the matrices; ``d8`` and ``d4``: scheme key -> loss
    change (quantized − float32, nats per token) in int8 / int4, and ``"<key>_se"``
    its paired standard error.
    """

    n_matrices: int
    loss_base: float
    err: dict[str, float]
    d8: dict[str, float]
    d4: dict[str, float]


def loss_summary(
    errors: Mapping,
    base: np.ndarray,
    counts: np.ndarray,
    changes: Mapping[tuple[int, str], tuple[float, float]],
) -> LossSummary:
    """:class:`LossSummary` from an :func:`numscale.quant.error_table` ``errors`` of
    the model's matrices, the float32 model's summed loss per story ``base`` (m,),
    the token ``counts`` (m,) and ``changes``: ``(bits, label) -> (change, SE)`` for
    bits 8 and 4 and every scheme label of :data:`SCHEME_KEYS`."""
    table = _error_table(errors, "errors")
    base = as_float_array(base, "base", ndim=1)
    counts = np.asarray(counts)
    if counts.shape != base.shape or not np.issubdtype(counts.dtype, np.number):
        raise ValueError(f"counts must be numbers of shape {base.shape}")
    missing = [(b, s) for b in (8, 4) for s in SCHEME_KEYS if (b, s) not in changes]
    if missing:
        raise ValueError(f"changes lacks the entries {missing}")
    by_bits = {
        bits: {
            key: value
            for label, short in SCHEME_KEYS.items()
            for key, value in zip((short, f"{short}_se"), changes[bits, label])
        }
        for bits in (8, 4)
    }
    return LossSummary(
        n_matrices=table["per tensor"]["rel_fro"].shape[0],
        loss_base=float(base.sum() / counts.sum()),
        err={k: float(table[s]["rel_fro"].mean()) for s, k in SCHEME_KEYS.items()},
        d8=by_bits[8],
        d4=by_bits[4],
    )


def format_loss_changes(changes: Mapping[tuple[int, str], tuple[float, float]]) -> str:
    """One line per ``(bits, label) -> (change, SE)`` entry of ``changes``."""
    return "\n".join(
        f"int{bits} {label:12s} loss change {diff:+.4f} ± {se:.4f}"
        for (bits, label), (diff, se) in changes.items()
    )


# ------------------------------------------------------------------ outliers


@dataclass(frozen=True)
class FoldSummary:
    """The outlier experiment on GPT-2's ``c_attn`` matrices, over its blocks.

    ``gain_ratio_min``/``_max``: smallest and largest ratio, over blocks, of a block's
    largest absolute ``ln_1`` gain to its median one. ``reported_below_median``: of the
    ``reported_pairs`` (dimension, block) pairs of the reported outlier dimensions,
    how many have an absolute gain below their block's median. ``fold_<v>_mean``: mean
    error over blocks of the variants plain, folded and kept (folded, outlier rows
    kept). ``fold_worse_blocks``: blocks where folding raises the error;
    ``fold_kept_helps`` / ``fold_kept_same``: blocks where keeping the rows lowers the
    folded error / leaves it bit-identical; ``fold_largest_kept``: blocks whose largest
    folded entry lies in a kept row; of the blocks where keeping the rows helps,
    ``fold_kept_below_plain``: those where the kept error ends below the plain one,
    ``fold_kept_above_plain``: those where it stays above it.
    """

    gain_ratio_min: float
    gain_ratio_max: float
    reported_below_median: int
    reported_pairs: int
    fold_plain_mean: float
    fold_folded_mean: float
    fold_kept_mean: float
    fold_worse_blocks: int
    fold_kept_helps: int
    fold_kept_same: int
    fold_largest_kept: int
    fold_kept_below_plain: int
    fold_kept_above_plain: int


def fold_summary(
    fold: Mapping[str, np.ndarray],
    weights: Sequence[np.ndarray],
    gains: np.ndarray,
    n_outliers: int,
    reported: Sequence[int],
) -> FoldSummary:
    """:class:`FoldSummary` of the errors ``fold`` (each variant of
    :data:`FOLD_VARIANTS` -> (L,), one per block) of the Conv1D matrices ``weights``
    (L of them, (in, out)) with the gains ``gains`` (L, in) folded in, the
    ``n_outliers`` rows of largest gain kept (:func:`numscale.quant.outlier_rows`), and
    the ``reported`` outlier dimensions (indices into in)."""
    gains = as_float_array(gains, "gains", ndim=2)
    n_outliers = positive_int(n_outliers, "n_outliers")
    if not isinstance(fold, Mapping) or set(fold) != set(FOLD_VARIANTS):
        raise ValueError(f"fold must map exactly the variants {FOLD_VARIANTS}")
    plain, folded, kept = (
        as_float_array(fold[v], f"fold[{v!r}]", ndim=1) for v in FOLD_VARIANTS
    )
    if len(weights) != gains.shape[0] or {plain.size, folded.size, kept.size} != {
        gains.shape[0]
    }:
        raise ValueError("fold, weights and gains must cover the same blocks")
    reported = np.asarray(reported, dtype=int)
    if reported.ndim != 1 or reported.min() < 0 or reported.max() >= gains.shape[1]:
        raise ValueError(f"reported must be indices below {gains.shape[1]}")
    ratios, largest_in_kept = [], []
    for w, gamma in zip(weights, gains):
        folded_w = quant.fold_gain(w, gamma)
        ratios.append(np.abs(gamma).max() / np.median(np.abs(gamma)))
        largest_row = np.unravel_index(np.argmax(np.abs(folded_w)), folded_w.shape)[0]
        largest_in_kept.append(largest_row in quant.outlier_rows(gamma, n_outliers))
    median = np.median(np.abs(gains), axis=1, keepdims=True)
    below = np.abs(gains[:, reported]) < median
    return FoldSummary(
        gain_ratio_min=float(min(ratios)),
        gain_ratio_max=float(max(ratios)),
        reported_below_median=int(below.sum()),
        reported_pairs=int(below.size),
        fold_plain_mean=float(plain.mean()),
        fold_folded_mean=float(folded.mean()),
        fold_kept_mean=float(kept.mean()),
        fold_worse_blocks=int((folded > plain).sum()),
        # equal scale ⇒ bit-identical error: a strict < counts the blocks it changes
        fold_kept_helps=int((kept < folded).sum()),
        fold_kept_same=int((kept == folded).sum()),
        fold_largest_kept=int(np.sum(largest_in_kept)),
        fold_kept_below_plain=int(((kept < folded) & (kept < plain)).sum()),
        fold_kept_above_plain=int(((kept < folded) & (kept > plain)).sum()),
    )


def format_rows(
    rows: Mapping[str, np.ndarray], precision: int = 3, title: str = ""
) -> str:
    """Each ``name -> array`` of ``rows`` as ``name:`` and the array, indented, after
    a ``title`` line if one is given."""
    with np.printoptions(precision=precision, linewidth=80):
        lines = [f"{key}:\n  {v}" for key, v in rows.items()]
    return "\n".join(([title] if title else []) + lines)


# ------------------------------------------------------------------ SmoothQuant


@dataclass(frozen=True)
class SmoothSummary:
    """SmoothQuant on the inputs of W_Q, block by block.

    ``act_ratio_min``/``_max``: over blocks, the ratio of the largest input channel's
    maximum to the median channel's; ``n_tokens``, ``n_blocks``: positions and blocks
    measured. ``sq``: ``"none"`` and ``"alpha<a>"``, the mean over blocks of the
    relative product error without smoothing and with the a-th α; ``"lower_<a>"``:
    blocks where the a-th α lowers the error; ``"half"``: the mean at α = 0.5 and
    ``"half_gain_min"`` the smallest reduction it brings in a block.
    """

    act_ratio_min: float
    act_ratio_max: float
    n_tokens: int
    n_blocks: int
    sq: dict[str, float]


def smoothquant_summary(
    inputs: Sequence[np.ndarray], errors: np.ndarray, alphas: Sequence[float]
) -> SmoothSummary:
    """:class:`SmoothSummary` of the activations ``inputs`` (L arrays (tokens, in)) and
    the product ``errors`` (L, 1 + len(alphas)): column 0 without smoothing, column
    a + 1 with ``alphas[a]``, which must include 0.5."""
    errors = as_float_array(errors, "errors", ndim=2)
    alphas = [float(a) for a in alphas]
    if errors.shape != (len(inputs), len(alphas) + 1):
        raise ValueError(
            f"errors must have shape ({len(inputs)}, {len(alphas) + 1}), "
            f"got {errors.shape}"
        )
    if 0.5 not in alphas:
        raise ValueError("alphas must include the even split 0.5")
    half = alphas.index(0.5) + 1
    ratios = []
    for layer, x in enumerate(inputs):
        channel_max = np.abs(as_float_array(x, f"inputs[{layer}]", ndim=2)).max(axis=0)
        ratios.append(channel_max.max() / np.median(channel_max))
    none = errors[:, 0]
    return SmoothSummary(
        act_ratio_min=float(min(ratios)),
        act_ratio_max=float(max(ratios)),
        n_tokens=int(inputs[0].shape[0]),
        n_blocks=len(inputs),
        sq={
            "none": float(none.mean()),
            "half": float(errors[:, half].mean()),
            "half_gain_min": float(np.min(none - errors[:, half])),
            **{f"alpha{a}": float(errors[:, a + 1].mean()) for a in range(len(alphas))},
            **{
                f"lower_{a}": int((errors[:, a + 1] < none).sum())
                for a in range(len(alphas))
            },
        },
    )


def format_smoothing(errors: np.ndarray, alphas: Sequence[float]) -> str:
    """The product ``errors`` (L, 1 + len(alphas)) under a header naming the columns."""
    with np.printoptions(precision=4):
        return f"rows: blocks; columns: no smoothing, α = {tuple(alphas)}\n{errors}"


# ------------------------------------------------------------------ fp8


@dataclass(frozen=True)
class Fp8Summary:
    """fp8 round trips of one weight matrix shrunk by 2^−k.

    ``fp8_<f>_scaled``: relative error with a scale factor (k = 0); ``fp8_e4m3_raw0``,
    ``fp8_e4m3_raw8``, ``fp8_e5m2_raw16``: without, at k = 0, 8, 16; ``fp8_max_shift``:
    the largest k. ``fp8_zero_stored``/``fp8_sub_stored`` and ``fp8_zero_8``/
    ``fp8_sub_8``: fractions of the nonzero entries that an unscaled E4M3 cast flushes
    to zero / makes subnormal, at k = 0 and 8. ``w_absmax``: largest absolute entry;
    ``<f>_max``/``<f>_tiny``: each format's largest and smallest normal number.
    """

    fp8_e4m3_scaled: float
    fp8_e5m2_scaled: float
    fp8_e4m3_raw0: float
    fp8_e4m3_raw8: float
    fp8_e5m2_raw16: float
    fp8_max_shift: int
    fp8_sub_stored: float
    fp8_zero_stored: float
    fp8_zero_8: float
    fp8_sub_8: float
    w_absmax: float
    e4m3_max: float
    e4m3_tiny: float
    e5m2_max: float
    e5m2_tiny: float


def fp8_summary(
    w: np.ndarray, shifts: np.ndarray, errors: Mapping[tuple[str, bool], np.ndarray]
) -> Fp8Summary:
    """:class:`Fp8Summary` of the matrix ``w`` and the relative ``errors``
    ``(format name, scaled) -> (len(shifts),)`` of its round trips after multiplying
    by ``2^−k`` for each k of ``shifts`` (ints, including 0, 8 and 16)."""
    w = as_float_array(w, "w")
    shifts = np.asarray(shifts)
    if shifts.ndim != 1 or not np.issubdtype(shifts.dtype, np.integer):
        raise TypeError("shifts must be a 1-d array of integers")
    if not {0, 8, 16} <= set(shifts.tolist()):
        raise ValueError("shifts must include 0, 8 and 16")
    if not isinstance(errors, Mapping):
        raise TypeError(f"errors must be a mapping, got {type(errors).__name__}")
    for key in ((f, scaled) for f in FP8_FORMATS for scaled in (False, True)):
        if key not in errors or np.shape(errors[key]) != shifts.shape:
            raise ValueError(f"errors[{key}] must be an array of shape {shifts.shape}")
    e4m3, e5m2 = FP8_FORMATS["E4M3"], FP8_FORMATS["E5M2"]
    stored = quant.fp8_underflow_fraction(w, e4m3)
    shrunk = quant.fp8_underflow_fraction(w * 2.0**-8, e4m3)
    return Fp8Summary(
        fp8_e4m3_scaled=float(errors["E4M3", True][shifts == 0][0]),
        fp8_e5m2_scaled=float(errors["E5M2", True][shifts == 0][0]),
        fp8_e4m3_raw0=float(errors["E4M3", False][shifts == 0][0]),
        fp8_e4m3_raw8=float(errors["E4M3", False][shifts == 8][0]),
        fp8_e5m2_raw16=float(errors["E5M2", False][shifts == 16][0]),
        fp8_max_shift=int(shifts.max()),
        fp8_sub_stored=stored["subnormal"],
        fp8_zero_stored=stored["zero"],
        fp8_zero_8=shrunk["zero"],
        fp8_sub_8=shrunk["subnormal"],
        w_absmax=float(np.abs(w).max()),
        e4m3_max=torch.finfo(e4m3).max,
        e4m3_tiny=torch.finfo(e4m3).smallest_normal,
        e5m2_max=torch.finfo(e5m2).max,
        e5m2_tiny=torch.finfo(e5m2).smallest_normal,
    )


def format_fp8_errors(errors: Mapping[tuple[str, bool], np.ndarray]) -> str:
    """One line per ``(format name, scaled) -> errors`` entry, rounded to 4 places."""
    return "\n".join(
        f"{f} {'scaled  ' if scaled else 'unscaled'} {np.round(e, 4)}"
        for (f, scaled), e in errors.items()
    )
