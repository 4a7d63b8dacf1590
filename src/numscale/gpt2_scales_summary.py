"""What the GPT-2 scales chapter quotes and prints, as records and formatted text.

The arrays come from :mod:`numscale.gpt2_stats` (channel counts ``(d,)``, per-block
channel indices ``(L, k)``, ranks ``(L, d)``); the builders return a frozen dataclass
the chapter glues in one call, and the ``format_*`` functions return what it prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import positive_int
from numscale.gpt2_stats import checked_wpe_norms


def _int_array(value: object, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(value)
    if array.ndim != ndim or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{name} must be a {ndim}-D array of integers")
    return array


def count_list(
    channels: Sequence[int],
    counts: Sequence[int],
    total: int,
    *,
    unit: str = "",
    empty: str = "none",
) -> str:
    """``"c (n of total unit), ..."`` for paired ``channels`` and ``counts`` (k,), or
    ``empty`` when there are none: the lists the chapter's prose quotes."""
    total = positive_int(total, "total")
    if len(channels) != len(counts):
        raise ValueError(
            f"channels and counts must have one length, got {len(channels)} "
            f"and {len(counts)}"
        )
    suffix = f" {unit}" if unit else ""
    text = ", ".join(f"{c} ({n} of {total}{suffix})" for c, n in zip(channels, counts))
    return text or empty


@dataclass(frozen=True)
class LnMapSummary:
    """The outlier counts of the LayerNorm map (see :func:`ln_map_summary`)."""

    ln_map_outlier_top: int  #: channel that is an outlier in the most modules
    ln_map_n_listed: int  #: channels listed (the first k and any tied with the k-th)
    ln_map_n_most: int  #: channels that are outliers in >= ``most_modules`` modules
    ln_modules: int  #: LayerNorm modules (rows of the map)
    ln_width: int  #: channels (columns of the map)


def ln_map_summary(
    per_channel: np.ndarray, listed: Sequence[int], *, modules: int, most_modules: int
) -> LnMapSummary:
    """Summarize ``per_channel`` (d,): in how many of ``modules`` modules each channel
    is an outlier; ``listed`` are the channels the chapter names."""
    per_channel = _int_array(per_channel, "per_channel", 1)
    modules = positive_int(modules, "modules")
    most_modules = positive_int(most_modules, "most_modules")
    if per_channel.size == 0 or per_channel.min() < 0 or per_channel.max() > modules:
        raise ValueError(f"per_channel must hold counts in [0, {modules}]")
    return LnMapSummary(
        ln_map_outlier_top=int(np.argmax(per_channel)),
        ln_map_n_listed=len(listed),
        ln_map_n_most=int((per_channel >= most_modules).sum()),
        ln_modules=modules,
        ln_width=per_channel.size,
    )


def format_wpe_norms(
    norms: np.ndarray, positions: Sequence[int], init_norm: float, openai_norm: float
) -> str:
    """Two lines: the norms (n,) at ``positions`` (3 decimals), and both initial norms
    (Hugging Face's 0.02·√d reading and OpenAI's 0.01·√d)."""
    norms, init_norm, openai_norm = checked_wpe_norms(
        norms, init_norm, openai_norm, positions
    )
    shown = {p: round(float(norms[p]), 3) for p in positions}
    return (
        f"‖wpe[p]‖ at positions p: {shown}\n"
        f"initial ≈ {round(init_norm, 3)} (0.02·√d) or {round(openai_norm, 3)} "
        "(OpenAI's 0.01·√d)"
    )


_WORDS = ("zero", "one", "two", "three", "four", "five")


def format_smallest(
    names: Sequence[str],
    smallest: np.ndarray,
    channels: np.ndarray,
    counts: np.ndarray,
    *,
    min_rows: int,
) -> str:
    """One line per module of ``names`` with its smallest channels ``smallest`` (L, k),
    then the recurring ``channels`` with their ``counts`` (m,) as a dict."""
    smallest = _int_array(smallest, "smallest", 2)
    if len(names) != smallest.shape[0]:
        raise ValueError(
            f"names must have one entry per row of smallest ({smallest.shape[0]}), "
            f"got {len(names)}"
        )
    k = smallest.shape[1]
    word = _WORDS[k] if k < len(_WORDS) else str(k)
    lines = [
        f"{name:9s} {word} smallest gains in channels {row.tolist()}"
        for name, row in zip(names, smallest)
    ]
    recurring = dict(zip(np.asarray(channels).tolist(), np.asarray(counts).tolist()))
    lines.append(f"in the {word} smallest of at least {min_rows} blocks: {recurring}")
    return "\n".join(lines)


def format_ranks(ranks: np.ndarray, channels: Sequence[int]) -> str:
    """One line per channel of ``channels``: its rank in each row of ``ranks`` (L, d)."""
    ranks = _int_array(ranks, "ranks", 2)
    bad = [c for c in channels if not 0 <= c < ranks.shape[1]]
    if bad:
        raise ValueError(f"channels must lie in [0, {ranks.shape[1]}), got {bad}")
    return "\n".join(
        f"channel {c}: ln_1 gain rank by block {ranks[:, c].tolist()}" for c in channels
    )
