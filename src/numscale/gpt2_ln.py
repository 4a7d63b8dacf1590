"""Result records of the GPT-2 LayerNorm chapter: what one cell glues, in one call.

Inputs are GPT-2's LayerNorm parameters as plain arrays, one row per module (``L``
rows: the block LayerNorms ``h.0.ln_1`` … ``h.11.ln_2``, then ``ln_f`` last) and ``d``
channels; the loader is :func:`numscale.models.gpt2.layernorm_parameters`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, positive_int
from numscale.gpt2_stats import count_outside
from numscale.models.gpt2_model import RELEASED_LABEL
from numscale.report import MarkdownText


def _gains_biases(
    gains, biases, second: str = "biases"
) -> tuple[np.ndarray, np.ndarray]:
    """``gains`` and ``biases`` checked: two arrays of one shape (L, d), L ≥ 2; errors
    call the second array ``second`` (the caller's argument name)."""
    gains = as_float_array(gains, "gains", ndim=2)
    biases = as_float_array(biases, second, ndim=2)
    if gains.shape != biases.shape:
        raise ValueError(
            f"gains {gains.shape} and {second} {biases.shape} must have one shape"
        )
    if gains.shape[0] < 2:
        raise ValueError("gains must have at least two rows (blocks and ln_f)")
    return gains, biases


def _row_names(names: Sequence[str], rows: int, array: str) -> tuple[str, ...]:
    """``names`` checked: one name per row of the array called ``array``."""
    if isinstance(names, str) or len(names) != rows:
        raise ValueError(f"names must name the {rows} rows of {array}")
    return tuple(names)


@dataclass(frozen=True)
class LayerNormSummary:
    """Summary of LayerNorm parameters (L, d): ``modules`` (L), ``gain_count`` and
    ``bias_count`` (L·d), the extremes ``gain_min``, ``gain_max``, ``bias_min``,
    ``bias_max``, ``gain_median``, ``gain_below_one_pct`` (% of gains below their
    initial value 1), ``gain_negative`` (number of gains below 0),
    ``bias_median`` (which the chapter prints but does not quote: exclude it when
    gluing) and ``gain_max_where`` (Markdown: the module, in backticks, and the
    channel of the largest gain). Its ``str`` is :func:`format_value_ranges` of the
    gains and biases."""

    modules: int
    gain_count: int
    bias_count: int
    gain_max: float
    gain_min: float
    bias_min: float
    bias_max: float
    gain_median: float
    gain_below_one_pct: float
    gain_negative: int
    bias_median: float
    gain_max_where: MarkdownText

    def __str__(self) -> str:
        gains = (self.gain_count, self.gain_min, self.gain_median, self.gain_max)
        biases = (self.bias_count, self.bias_min, self.bias_median, self.bias_max)
        return _range_line("gains", *gains) + "\n" + _range_line("biases", *biases)


def layernorm_summary(names: Sequence[str], gains, biases) -> LayerNormSummary:
    """:class:`LayerNormSummary` of ``gains`` and ``biases`` (L, d), whose rows are
    the modules ``names`` (L,)."""
    gains, biases = _gains_biases(gains, biases)
    names = _row_names(names, gains.shape[0], "gains")
    module, channel = np.unravel_index(np.argmax(gains), gains.shape)
    return LayerNormSummary(
        modules=gains.shape[0],
        gain_count=gains.size,
        bias_count=biases.size,
        gain_max=gains.max(),
        gain_min=gains.min(),
        bias_min=biases.min(),
        bias_max=biases.max(),
        gain_median=np.median(gains),
        gain_below_one_pct=100 * np.mean(gains < 1),
        gain_negative=int(np.sum(gains < 0)),
        bias_median=np.median(biases),
        gain_max_where=MarkdownText(f"`{names[module]}`, channel {channel}"),
    )


def _range_line(name: str, count: int, low: float, median: float, high: float) -> str:
    """One line of :func:`format_value_ranges`."""
    return (
        f"{name + ':':7s} {count:,} values, min {low:+.4f}, "
        f"median {median:+.4f}, max {high:+.4f}"
    )


def format_value_ranges(arrays: Mapping[str, np.ndarray]) -> str:
    """One line per ``name -> values``: count, min, median and max of the values."""
    if not isinstance(arrays, Mapping) or not arrays:
        raise ValueError("arrays must be a non-empty mapping name -> array")
    lines = []
    for name, v in arrays.items():
        v = as_float_array(v, f"arrays[{name!r}]")
        lines.append(_range_line(name, v.size, v.min(), np.median(v), v.max()))
    return "\n".join(lines)


#: The fixed histogram range of the gains that the LayerNorm chapter tests.
GAIN_RANGE = (0.0, 3.0)
#: The fixed histogram range of the biases.
BIAS_RANGE = (-5.0, 5.0)
#: The narrower gain range of the chapter's exercise.
NARROW_GAIN_RANGE = (0.0, 2.0)


@dataclass(frozen=True)
class RangeLosses:
    """What fixed histogram ranges drop, from LayerNorm parameters (L, d) whose last
    row is ln_f: ``gain_outside`` (gains outside :data:`GAIN_RANGE`) and
    ``gain_outside_lnf`` (of them in the last row), ``bias_outside`` (biases outside
    :data:`BIAS_RANGE`). The exercise's [0, 2] is :func:`gains_outside`'s."""

    gain_outside: int
    bias_outside: int
    gain_outside_lnf: int


def range_losses(gains, biases) -> RangeLosses:
    """:class:`RangeLosses` of ``gains`` and ``biases`` (L, d), last row ln_f."""
    gains, biases = _gains_biases(gains, biases)
    return RangeLosses(
        gain_outside=count_outside(gains, *GAIN_RANGE),
        bias_outside=count_outside(biases, *BIAS_RANGE),
        gain_outside_lnf=count_outside(gains[-1], *GAIN_RANGE),
    )


def outside_by_module(
    names: Sequence[str], values, low: float, high: float
) -> dict[str, int]:
    """Module name -> how many of its values lie outside [``low``, ``high``], for the
    modules that have any: ``values`` (L, d) has one row per name of ``names``."""
    values = as_float_array(values, "values", ndim=2)
    if isinstance(names, str) or len(names) != values.shape[0]:
        raise ValueError(f"names must name the {values.shape[0]} rows of values")
    if not low < high:
        raise ValueError(f"low must be below high, got [{low}, {high}]")
    counts = ((values < low) | (values > high)).sum(axis=1)
    return {name: int(c) for name, c in zip(names, counts) if c > 0}


@dataclass(frozen=True)
class GainsOutside:
    """Gains outside a range with ``edges`` (low, high): ``total`` (all modules,
    :func:`numscale.gpt2_stats.count_outside`), ``lnf`` (of them in the last
    module, ln_f), ``counts`` (module name -> how many, for the modules that have
    any) and ``blocks`` (Markdown: those of them other than ln_f, in backticks,
    comma-separated). Its ``str`` is the line the chapter prints."""

    edges: tuple[float, float]
    total: int
    lnf: int
    counts: dict[str, int]
    blocks: MarkdownText

    def __str__(self) -> str:
        low, high = self.edges
        return (
            f"gains outside [{low:g}, {high:g}]: {self.total:,} "
            f"(ln_f {self.lnf:,}); by module: {self.counts}"
        )


def gains_outside(names: Sequence[str], gains, low: float, high: float) -> GainsOutside:
    """:class:`GainsOutside` of ``gains`` (L, d), one row per name of ``names``
    (ln_f last): :func:`outside_by_module`, the total and the block modules."""
    counts = outside_by_module(names, gains, low, high)
    blocks = ", ".join(f"`{name}`" for name in counts if name != names[-1])
    return GainsOutside(
        edges=(low, high),
        total=count_outside(gains, low, high),
        lnf=count_outside(np.asarray(gains)[-1], low, high),
        counts=counts,
        blocks=MarkdownText(blocks),
    )


@dataclass(frozen=True)
class GainMedians:
    """Block LayerNorms (every row but the last) against ln_f (the last row):
    ``block_median_gain_max`` (the largest median gain of a block module),
    ``f_median_gain`` (ln_f's median gain), ``block_below_one_pct`` (% of block
    gains below 1), ``f_gain_max_ratio`` (ln_f's largest gain over its largest
    initial gain), ``block_modules`` (number of block modules); for the printout
    (exclude it when gluing), ``shown``: module name -> (median gain, largest gain,
    median initial gain) of the modules the chapter shows. Its ``str`` is one line
    per shown module, in the order of the rows."""

    block_median_gain_max: float
    f_median_gain: float
    block_below_one_pct: float
    f_gain_max_ratio: float
    block_modules: int
    shown: dict[str, tuple[float, float, float]]

    def __str__(self) -> str:
        return "\n".join(
            f"{name:10s} median gain {median:6.3f}  max {largest:7.3f}  "
            f"(init {init_median:.0f})"
            for name, (median, largest, init_median) in self.shown.items()
        )


def gain_medians(
    names: Sequence[str], gains, init_gains, show: Sequence[str]
) -> GainMedians:
    """:class:`GainMedians` of trained ``gains`` and ``init_gains`` (L, d), whose
    rows are the modules ``names`` (L,); it prints the modules named in ``show``."""
    gains, init_gains = _gains_biases(gains, init_gains, "init_gains")
    names = _row_names(names, gains.shape[0], "gains")
    if isinstance(show, str):
        raise TypeError("show must be a sequence of module names, not one str")
    unknown = sorted(set(show) - set(names))
    if unknown:
        raise ValueError(f"show names no module of names: {unknown}")
    medians, init_medians = np.median(gains, axis=1), np.median(init_gains, axis=1)
    return GainMedians(
        block_median_gain_max=medians[:-1].max(),
        f_median_gain=medians[-1],
        block_below_one_pct=100 * np.mean(gains[:-1] < 1),
        f_gain_max_ratio=gains[-1].max() / init_gains[-1].max(),
        block_modules=gains.shape[0] - 1,
        shown={
            name: (medians[i], gains[i].max(), init_medians[i])
            for i, name in enumerate(names)
            if name in show
        },
    )


@dataclass(frozen=True)
class OutputRms:
    """Output RMS √mean(γ² + β²) of LayerNorms (one per module, ln_f last):
    ``rms_largest`` and ``rms_block_median`` (the median over all modules but the
    last, ln_f), ``rms_largest_module`` (Markdown: the name of the module of largest
    output RMS, in backticks); for the printout (exclude them when gluing), the module ``names``
    (L,), their ``rms`` (L,) and ``rms_init`` (L,), the values at initialization.
    Its ``str`` is :func:`format_rms_extremes`."""

    rms_largest: float
    rms_block_median: float
    rms_largest_module: MarkdownText
    names: tuple[str, ...]
    rms: np.ndarray
    rms_init: np.ndarray

    def __str__(self) -> str:
        return format_rms_extremes(self.names, self.rms, self.rms_init)


def output_rms_summary(names: Sequence[str], rms, rms_init) -> OutputRms:
    """:class:`OutputRms` of per-module output RMS values ``rms`` (L,), L ≥ 2, of
    the modules ``names`` (L,), and of the same modules at initialization,
    ``rms_init`` (L,)."""
    rms = as_float_array(rms, "rms", ndim=1)
    if rms.size < 2:
        raise ValueError("rms must have at least two entries (blocks and ln_f)")
    rms_init = as_float_array(rms_init, "rms_init", ndim=1)
    if isinstance(names, str) or len(names) != rms.size or rms_init.size != rms.size:
        raise ValueError("names, rms and rms_init must have one entry per module")
    return OutputRms(
        rms_largest=rms.max(),
        rms_block_median=np.median(rms[:-1]),
        rms_largest_module=MarkdownText(f"`{names[int(np.argmax(rms))]}`"),
        names=tuple(names),
        rms=rms,
        rms_init=rms_init,
    )


def format_rms_extremes(names: Sequence[str], rms, rms_init) -> str:
    """The modules of largest and smallest output RMS ``rms`` (L,), and the distinct
    values of ``rms_init`` (L,) at initialization (3 decimals), three lines."""
    rms = as_float_array(rms, "rms", ndim=1)
    rms_init = as_float_array(rms_init, "rms_init", ndim=1)
    if isinstance(names, str) or len(names) != rms.size or rms_init.size != rms.size:
        raise ValueError("names, rms and rms_init must have one entry per module")
    return "\n".join(
        [
            f"largest output RMS: {names[int(np.argmax(rms))]} {rms.max():.3f}",
            f"smallest output RMS: {names[int(np.argmin(rms))]} {rms.min():.3f}",
            "at initialization: "
            + ("every module " if np.unique(rms_init).size == 1 else "values ")
            + ", ".join(f"{v:.3f}" for v in np.unique(rms_init)),
        ]
    )


@dataclass(frozen=True)
class LowChannel:
    """The channel most often among the smallest gains of a module: ``low_channel``,
    in how many modules (``low_channel_modules``) of ``n_modules``, and the ``k`` of
    "the k smallest"."""

    low_channel: int
    low_channel_modules: int
    n_modules: int
    k: int

    def __str__(self) -> str:
        return (
            f"channel {self.low_channel}: among the {self.k} smallest gains in "
            f"{self.low_channel_modules} of {self.n_modules} block LayerNorms"
        )


def low_channel(among_smallest, n_modules: int, k: int) -> LowChannel:
    """:class:`LowChannel` from ``among_smallest`` (d,): per channel, the number of
    the ``n_modules`` modules in whose ``k`` smallest gains it is."""
    counts = np.asarray(among_smallest)
    if (
        counts.ndim != 1
        or counts.size == 0
        or not np.issubdtype(counts.dtype, np.integer)
    ):
        raise TypeError("among_smallest must be a non-empty 1-D array of counts")
    channel = int(np.argmax(counts))
    return LowChannel(
        low_channel=channel,
        low_channel_modules=counts[channel],
        n_modules=positive_int(n_modules, "n_modules"),
        k=positive_int(k, "k"),
    )


@dataclass(frozen=True)
class ModelStatus:
    """Which model the page's LayerNorms come from: ``released`` (1 if it is the
    released GPT-2 small, :data:`~numscale.models.gpt2_model.RELEASED_LABEL`, else 0)
    and ``status`` (Markdown: the page's sentence naming the model,
    :func:`status_text`)."""

    released: int
    status: MarkdownText


def model_status(label: str) -> ModelStatus:
    """:class:`ModelStatus` of the model named ``label`` (a non-empty str, as
    :func:`numscale.models.gpt2_model.model_label` returns it)."""
    return ModelStatus(
        released=int(label == RELEASED_LABEL), status=MarkdownText(status_text(label))
    )


def status_text(label: str) -> str:
    """The page's sentence (Markdown) naming the model whose LayerNorms it shows."""
    if not isinstance(label, str) or not label:
        raise TypeError("label must be a non-empty str")
    return (
        f"**Trained values.** The gains and biases on this page are those of "
        f"{label}, read through the loader."
    )


def format_parameters(names: Sequence[str], gains, biases) -> str:
    """The shapes of ``gains`` and ``biases`` (L, d) and the first and last of the
    ``names`` of their rows, one line."""
    gains, biases = _gains_biases(gains, biases)
    names = _row_names(names, gains.shape[0], "gains")
    return f"gains {gains.shape} biases {biases.shape} rows {names[0]} ... {names[-1]}"
