"""Statistics of GPT-2's tensors for the two GPT-2 chapters.

Everything here works on plain arrays (the loader, :mod:`numscale.models.gpt2`, provides
them), so it is tested on small synthetic inputs. Shapes: ``L`` modules or blocks,
``d`` channels (768 for GPT-2 small).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np

from numscale.checks import as_float_array, finite_float, positive_int

#: GPT-2's initialization scale of every weight matrix (Radford et al. 2019; HF GPT2Config).
GPT2_INIT_STD = 0.02


# ------------------------------------------------------------------- selection


def select_rows(
    names: Sequence[str], values: np.ndarray, suffix: str
) -> tuple[tuple[str, ...], np.ndarray]:
    """Rows of ``values`` (L, d) whose module name ends with ``suffix`` (e.g. ``"ln_1"``).

    Returns the selected names and a new (k, d) array; ``ValueError`` when none match or
    when ``names`` and ``values`` disagree in length.
    """
    values = as_float_array(values, "values", ndim=2)
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError("names must be a sequence of str")
    if len(names) != values.shape[0]:
        raise ValueError(
            f"names has {len(names)} entries but values has {values.shape[0]} rows"
        )
    if not isinstance(suffix, str):
        raise TypeError(f"suffix must be a str, got {type(suffix).__name__}")
    keep = [i for i, n in enumerate(names) if n.endswith(suffix)]
    if not keep:
        raise ValueError(f"no module name ends with suffix {suffix!r}")
    return tuple(names[i] for i in keep), values[keep].copy()


def stack_blocks(
    tensors: Mapping[str, np.ndarray], template: str, n_layer: int
) -> np.ndarray:
    """``np.stack([tensors[template.format(i)] for i in range(n_layer)])``, checked.

    ``template`` holds ``{}`` for the block index, e.g. ``"h.{}.attn.c_proj.weight"``.
    A missing name raises ``KeyError`` naming it; tensors of different shapes ``ValueError``.
    """
    if not isinstance(template, str) or "{}" not in template:
        raise TypeError("template must be a str containing '{}' for the block index")
    n_layer = positive_int(n_layer, "n_layer")
    names = [template.format(i) for i in range(n_layer)]
    absent = [n for n in names if n not in tensors]
    if absent:
        raise KeyError(f"tensors lacks {', '.join(absent)}")
    arrays = [as_float_array(tensors[n], n) for n in names]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(
            f"tensors named by {template!r} differ in shape: {sorted({a.shape for a in arrays})}"
        )
    return np.stack(arrays)


# ---------------------------------------------------------------- distributions


def count_outside(values: np.ndarray, low: float, high: float) -> int:
    """Number of entries of ``values`` outside the closed interval [low, high].

    These are the values that ``np.histogram(values, range=(low, high))`` silently drops.
    """
    values = as_float_array(values, "values")
    low, high = finite_float(low, "low"), finite_float(high, "high")
    if not low < high:
        raise ValueError(f"low must be < high, got low={low}, high={high}")
    return int(np.count_nonzero((values < low) | (values > high)))


def full_range_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """``n_bins + 1`` equal-width bin edges from min to max of ``values``: no value dropped.

    A constant array gets edges spanning ±0.5 around its value.
    """
    values = as_float_array(values, "values")
    n_bins = positive_int(n_bins, "n_bins")
    low, high = float(values.min()), float(values.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    return np.linspace(low, high, n_bins + 1)


def plot_log_counts(
    ax: plt.Axes, values: np.ndarray, edges: np.ndarray, **bar_kwargs
) -> np.ndarray:
    """Histogram of ``values`` over ``edges`` with counts on a log axis; returns the counts.

    Empty bins are not drawn at all (a bar of height 0 has no logarithm: it would be
    −inf, which plotting libraries turn into a missing or a clipped bar). Values outside
    ``edges`` raise ``ValueError``, since a histogram that drops them misleads.
    """
    values = as_float_array(values, "values").ravel()
    edges = as_float_array(edges, "edges", ndim=1)
    if edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError("edges must be at least two strictly increasing numbers")
    outside = count_outside(values, float(edges[0]), float(edges[-1]))
    if outside:
        raise ValueError(
            f"{outside} values lie outside edges [{edges[0]}, {edges[-1]}]"
        )
    counts, _ = np.histogram(values, bins=edges)
    filled = counts > 0
    ax.bar(
        edges[:-1][filled],
        counts[filled],
        width=np.diff(edges)[filled],
        align="edge",
        **bar_kwargs,
    )
    ax.set_xlim(
        edges[0], edges[-1]
    )  # the whole binned range, even where bins are empty
    ax.set_yscale("log")
    ax.set_ylim(0.5, None)  # a count of 1 stays visible above the axis
    return counts


# ------------------------------------------------------------------------ scales


def residual_init_std(n_layer: int, std: float = GPT2_INIT_STD) -> float:
    """GPT-2's initial std of a residual output projection: ``std / sqrt(2 * n_layer)``.

    Each block adds two branches (attention and MLP) to the residual stream.
    """
    n_layer = positive_int(n_layer, "n_layer")
    std = finite_float(std, "std", positive=True)
    return std / math.sqrt(2 * n_layer)


def block_stds(stack: np.ndarray) -> np.ndarray:
    """Standard deviation (ddof=0) of each block's entries: (L, ...) -> (L,)."""
    stack = as_float_array(stack, "stack", ndim=(2, 3))
    return stack.reshape(stack.shape[0], -1).std(axis=1)


def row_norms(matrix: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row: (n, d) -> (n,). For ``wpe``, the norm of each position."""
    matrix = as_float_array(matrix, "matrix", ndim=2)
    return np.linalg.norm(matrix.astype(np.float64), axis=1)


def relative_to_row_median(values: np.ndarray) -> np.ndarray:
    """``values / median(values, axis=1)``: each module's gains relative to its typical gain.

    (L, d) -> (L, d). A row whose median is not positive raises ``ValueError``.
    """
    values = as_float_array(values, "values", ndim=2)
    medians = np.median(values, axis=1, keepdims=True)
    if np.any(medians <= 0):
        raise ValueError("values must have a positive median in every row")
    return values / medians


def cproj_numbers(
    stds: np.ndarray, init_std: float, openai_std: float
) -> dict[str, float]:
    """Glue names for the trained ``attn.c_proj`` stds (L,) against two initial stds.

    Each block's std (``cproj_std_<i>``), both baselines (``cproj_init_std``: the
    0.02/√(2L) reading; ``cproj_openai_std``: OpenAI's 0.02), the smallest and largest
    ratio of a trained std to each, and the block of the smallest std.
    """
    stds = as_float_array(stds, "stds", ndim=1)
    init_std = finite_float(init_std, "init_std", positive=True)
    openai_std = finite_float(openai_std, "openai_std", positive=True)
    return {f"cproj_std_{i}": value for i, value in enumerate(stds)} | {
        "cproj_init_std": init_std,
        "cproj_openai_std": openai_std,
        "cproj_ratio_min": stds.min() / init_std,
        "cproj_ratio_max": stds.max() / init_std,
        "cproj_openai_ratio_min": stds.min() / openai_std,
        "cproj_openai_ratio_max": stds.max() / openai_std,
        "cproj_std_argmin": int(np.argmin(stds)),
    }


def checked_wpe_norms(
    norms: np.ndarray,
    init_norm: float,
    openai_norm: float,
    positions: Sequence[int],
) -> tuple[np.ndarray, float, float]:
    """``(norms, init_norm, openai_norm)`` checked: the row norms (n,) of the position
    embeddings, and both initial norms (> 0); ``ValueError`` naming the argument, also
    for any of ``positions`` outside ``[0, n)``."""
    norms = as_float_array(norms, "norms", ndim=1)
    init_norm = finite_float(init_norm, "init_norm", positive=True)
    openai_norm = finite_float(openai_norm, "openai_norm", positive=True)
    bad = [p for p in positions if not 0 <= p < norms.size]
    if bad:
        raise ValueError(f"positions must lie in [0, {norms.size}), got {bad}")
    return norms, init_norm, openai_norm


def wpe_numbers(
    norms: np.ndarray,
    init_norm: float,
    openai_norm: float,
    positions: Sequence[int],
) -> dict[str, float]:
    """Glue names for the norms (n,) of the position embeddings' rows.

    The norm at each of ``positions`` (``wpe_norm_<p>``), both initial norms, the
    median, the number of positions, and how many rows are below each initial norm.
    """
    norms, init_norm, openai_norm = checked_wpe_norms(
        norms, init_norm, openai_norm, positions
    )
    return {f"wpe_norm_{p}": norms[p] for p in positions} | {
        "wpe_init_norm": init_norm,
        "wpe_openai_norm": openai_norm,
        "wpe_norm_median": np.median(norms),
        "wpe_positions": norms.size,
        "wpe_below_init_count": int(np.sum(norms < init_norm)),
        "wpe_below_openai_count": int(np.sum(norms < openai_norm)),
    }


# ---------------------------------------------------------------------- channels


def smallest_channels(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest entries of each row, smallest first: (L, d) -> (L, k).

    Ties are broken by the lower index (stable sort), so the result is deterministic.
    """
    values = as_float_array(values, "values", ndim=2)
    k = positive_int(k, "k")
    if k > values.shape[1]:
        raise ValueError(
            f"k must be <= the number of channels {values.shape[1]}, got {k}"
        )
    return np.argsort(values, axis=1, kind="stable")[:, :k]


def channel_ranks(values: np.ndarray) -> np.ndarray:
    """Rank of every channel within its row (0 = smallest): (L, d) -> (L, d) ints."""
    values = as_float_array(values, "values", ndim=2)
    order = np.argsort(values, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(
        ranks,
        order,
        np.arange(values.shape[1])[None, :].repeat(values.shape[0], 0),
        axis=1,
    )
    return ranks


def recurring_channels(
    indices: np.ndarray, min_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Channels that appear in at least ``min_rows`` rows of ``indices`` (L, k).

    Returns ``(channels, counts)`` sorted by decreasing count, then increasing channel.
    """
    indices = np.asarray(indices)
    if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer):
        raise TypeError("indices must be a 2-D array of integer channel indices")
    min_rows = positive_int(min_rows, "min_rows")
    per_row = [np.unique(row) for row in indices]  # count a channel once per row
    channels, counts = np.unique(np.concatenate(per_row), return_counts=True)
    keep = counts >= min_rows
    channels, counts = channels[keep], counts[keep]
    order = np.lexsort((channels, -counts))
    return channels[order], counts[order]


def column_abs_sum(stack: np.ndarray) -> np.ndarray:
    """Sum over rows of ``|stack|``: (L, d) -> (d,). With the blocks' output biases,
    how much constant signal all blocks together write into each residual channel."""
    stack = as_float_array(stack, "stack", ndim=2)
    return np.abs(stack).sum(axis=0)


def robust_outliers(values: np.ndarray, threshold: float = 6.0) -> np.ndarray:
    """Boolean mask of entries far from their row's median, in robust standard deviations.

    An entry is an outlier when ``|x − median| > threshold · 1.4826 · MAD`` of its row
    (1.4826·MAD estimates σ for Gaussian data). (L, d) -> (L, d) bool.
    """
    values = as_float_array(values, "values", ndim=2)
    threshold = finite_float(threshold, "threshold", positive=True)
    median = np.median(values, axis=1, keepdims=True)
    mad = np.median(np.abs(values - median), axis=1, keepdims=True)
    scale = 1.4826 * np.where(mad > 0, mad, np.finfo(np.float64).tiny)
    return np.abs(values - median) > threshold * scale


def most_frequent_channels(counts: np.ndarray, k: int) -> list[int]:
    """The ``k`` channels with the largest positive ``counts`` (d,), and every channel
    tied with the k-th; by decreasing count, ties by increasing index."""
    counts = np.asarray(counts)
    if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
        raise TypeError("counts must be a 1-D array of integer counts per channel")
    k = positive_int(k, "k")
    if k > counts.size:
        raise ValueError(f"k must be <= the number of channels {counts.size}, got {k}")
    order = np.lexsort((np.arange(counts.size), -counts))
    kth = counts[order[k - 1]]
    return [int(c) for c in order if counts[c] > 0 and counts[c] >= kth]


@dataclass(frozen=True)
class WriteReadTable:
    """The channels the blocks' output biases write most into, and how the next
    blocks' ``ln_1`` and ``c_attn`` read them. Every array is (n,), one entry per
    channel of ``channels`` (most written first; ``read`` holds four such arrays);
    "relative" means over the median channel. The reads are as the caller passes them
    (in the chapter, the median over blocks 1…L−1)."""

    channels: np.ndarray  #: channel indices
    written: np.ndarray  #: Σ |output bias| over blocks (attention and MLP)
    written_rel: np.ndarray  #: ``written`` over its median channel
    gain: np.ndarray  #: ln_1 gain, relative
    row: np.ndarray  #: ‖c_attn row‖, relative
    read: dict[str, np.ndarray]  #: γ‖W row‖, relative: "all", "query", "key", "value"

    def numbers(self) -> dict[str, float]:
        """Glue names: ``write_top_<k>``, ``write_<gain|row|read|query|key|value>_<k>``,
        the first and last channel's ``written_rel`` and the range of ``row``."""
        out: dict[str, float] = {
            f"write_top_{k}": int(c) for k, c in enumerate(self.channels)
        }
        columns = {"gain": self.gain, "row": self.row, "read": self.read["all"]}
        columns |= {part: self.read[part] for part in ("query", "key", "value")}
        for k in range(self.channels.size):
            out |= {f"write_{key}_{k}": value[k] for key, value in columns.items()}
        last = self.channels.size - 1
        return out | {
            "write_ratio_0": self.written_rel[0],
            f"write_ratio_{last}": self.written_rel[last],
            "row_rel_min": self.row.min(),
            "row_rel_max": self.row.max(),
        }

    def __str__(self) -> str:
        lines = [
            "all but Σ|bias| relative to the median channel (reads: median over blocks)",
            "channel  Σ|bias|  ×median   gain  ‖W row‖  γ‖W row‖:  query    key  value",
        ]
        for k, c in enumerate(self.channels):
            parts = " ".join(
                f"{self.read[p][k]:6.2f}" for p in ("query", "key", "value")
            )
            lines.append(
                f"{c:7d} {self.written[k]:8.2f} {self.written_rel[k]:8.1f} "
                f"{self.gain[k]:6.2f} {self.row[k]:8.2f} {self.read['all'][k]:9.2f}  "
                f"{parts}"
            )
        return "\n".join(lines)


def write_read_table(
    written: np.ndarray,
    gain_rel: np.ndarray,
    row_rel: np.ndarray,
    read_rel: Mapping[str, np.ndarray],
    n: int,
) -> WriteReadTable:
    """The ``n`` most written channels of ``written`` (d,) (ties: lower index first),
    with their entries of the (d,) relative reads ``gain_rel``, ``row_rel`` and
    ``read_rel`` ("all", "query", "key", "value")."""
    written = as_float_array(written, "written", ndim=1)
    n = positive_int(n, "n")
    missing = sorted({"all", "query", "key", "value"} - set(read_rel))
    if missing:
        raise ValueError(f"read_rel lacks {missing}")
    arrays = {"gain_rel": gain_rel, "row_rel": row_rel, **read_rel}
    for name, values in arrays.items():
        if np.shape(values) != written.shape:
            raise ValueError(f"{name} must have shape {written.shape}")
    median = np.median(written)
    # at initialization every bias, and so the median, is 0: no ratio then
    written_rel = written / median if median > 0 else 0 * written
    top = np.argsort(-written, kind="stable")[:n]
    return WriteReadTable(
        channels=top,
        written=written[top],
        written_rel=written_rel[top],
        gain=np.asarray(gain_rel)[top],
        row=np.asarray(row_rel)[top],
        read={part: np.asarray(values)[top] for part, values in read_rel.items()},
    )


# ----------------------------------------------------------------------- labels


def layernorm_tensors(
    names: Sequence[str], gains: np.ndarray, biases: np.ndarray
) -> dict[str, np.ndarray]:
    """The LayerNorm rows as state-dict tensors: ``{"h.0.ln_1.weight": gains[0], ...}``.

    ``names``: module names (``h.0.ln_1`` …, as in
    :class:`numscale.models.gpt2_names.LayerNormParameters`);
    ``gains``, ``biases``: (L, d). Rows keep their dtype, so checksums of the released model
    (``gpt2.model_label``) can be compared with them.
    """
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise TypeError("names must be a sequence of str")
    gains = as_float_array(gains, "gains", ndim=2)
    biases = as_float_array(biases, "biases", ndim=2)
    if gains.shape != biases.shape or gains.shape[0] != len(names):
        raise ValueError(
            f"gains {gains.shape} and biases {biases.shape} must both have "
            f"one row per name ({len(names)})"
        )
    result: dict[str, np.ndarray] = {}
    for name, gain, bias in zip(names, gains, biases):
        result[f"{name}.weight"], result[f"{name}.bias"] = gain, bias
    return result


def relative_read_strength(gains: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """How strongly a LayerNorm and the matrix after it read each channel, per block.

    ``gains``: (L, d) LayerNorm gains γ; ``weights``: (L, d, m) the next projection in
    Conv1D layout (input × output), e.g. ``attn.c_attn.weight``. The gain γ_i multiplies
    only row i of the matrix, so it folds into that row: the read strength of channel i is
    ``|γ_i|·‖W[i, :]‖``. Returned relative to each block's median channel: (L, d).
    """
    gains = as_float_array(gains, "gains", ndim=2).astype(np.float64)
    weights = as_float_array(weights, "weights", ndim=3)
    if weights.shape[:2] != gains.shape:
        raise ValueError(
            f"weights must have shape {gains.shape + ('m',)}, got {weights.shape}"
        )
    strength = np.abs(gains) * np.linalg.norm(weights.astype(np.float64), axis=2)
    return relative_to_row_median(strength)


def typical_row_norms(weights: np.ndarray) -> np.ndarray:
    """Norm of each row ``W[i, :]`` relative to its block's median row, median over
    blocks 1…L−1 (block 0 reads the embeddings): ``(L, d, m) -> (d,)``."""
    weights = as_float_array(weights, "weights", ndim=3)
    norms = np.linalg.norm(weights.astype(np.float64), axis=2)
    return np.median(relative_to_row_median(norms)[1:], axis=0)


def row_part_numbers(
    rows: Mapping[str, np.ndarray], channels: Sequence[int], strong: Sequence[int]
) -> dict[str, float]:
    """Glue names for how ordinary the rows reading ``channels`` are.

    ``rows`` maps "all", "key" and "value" to :func:`typical_row_norms` (d,) of the
    whole row and of its key and value parts. ``row_band_lo``/``_hi``: the 1st and
    99th percentiles of all rows; ``row_outside_band``: how many of ``channels`` lie
    outside that band; ``key_row_*``/``value_row_*``: the smallest and largest key and
    value parts over the channels ``strong``.
    """
    missing = sorted({"all", "key", "value"} - set(rows))
    if missing:
        raise ValueError(f"rows lacks {missing}")
    everything = as_float_array(rows["all"], "rows['all']", ndim=1)
    lo, hi = np.percentile(everything, [1, 99])
    picked = everything[list(channels)]
    strong = list(strong)
    return {
        "row_band_lo": lo,
        "row_band_hi": hi,
        "row_outside_band": int(((picked < lo) | (picked > hi)).sum()),
        "key_row_min": rows["key"][strong].min(),
        "key_row_max": rows["key"][strong].max(),
        "value_row_min": rows["value"][strong].min(),
        "value_row_max": rows["value"][strong].max(),
    }
