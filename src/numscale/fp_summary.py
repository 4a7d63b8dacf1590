"""Result records of the floating-point chapter: the numbers it quotes, in one call each.

Each builder takes values the chapter computed with :mod:`numscale.fp` (overflow
fractions, exact tails) and returns a frozen dataclass for
:func:`numscale.report.glue_record`; the ``format_*`` functions return the lines the
chapter prints. The formats and their laws live in :mod:`numscale.fp`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from numscale.checks import finite_float, positive_int


def _fraction(value: object, name: str) -> float:
    """``value`` as a float in [0, 1], or raise naming ``name``."""
    x = finite_float(value, name)
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"{name} must be a fraction in [0, 1], got {x}")
    return x


@dataclass(frozen=True)
class OverflowCheck:
    """Overflow of exp on unscaled logits in float16 against the exact tail.

    ``frac16_pct``: measured share of logits whose float16 exp is infinite (percent);
    ``frac16_pred_pct``: the exact tail probability (percent); ``frac16_se_pct``: the
    binomial standard error √(p(1 − p)/n) of the measured share at the predicted p
    (percent); ``count16_scaled`` and ``count_bf16``: how many of the ``n_logits``
    logits overflow (counts, not fractions) when scaled, in float16, and unscaled, in
    bfloat16.
    """

    frac16_pct: float
    frac16_pred_pct: float
    frac16_se_pct: float
    count16_scaled: int
    count_bf16: int
    n_logits: int


def _count(fraction: object, n: int, name: str) -> int:
    """The count behind ``fraction`` of ``n`` items, or raise naming ``name`` if
    ``fraction`` is no fraction or no multiple of 1/n."""
    x = _fraction(fraction, name)
    count = round(x * n)
    if abs(x * n - count) > 1e-6:  # a share of n items is k/n, to rounding
        raise ValueError(f"{name} must be a share of n = {n} items, got {x}")
    return count


def overflow_check(
    frac16: float, predicted: float, n: int, frac16_scaled: float, frac_bf16: float
) -> OverflowCheck:
    """:class:`OverflowCheck` of the measured fractions ``frac16``, ``frac16_scaled``,
    ``frac_bf16`` (each a share of the same ``n`` logits) and the ``predicted`` tail
    probability of ``frac16``; the standard error is √(p(1 − p)/n) at p = predicted."""
    p = _fraction(predicted, "predicted")
    n = positive_int(n, "n")
    standard_error = math.sqrt(p * (1 - p) / n)
    return OverflowCheck(
        frac16_pct=100 * _fraction(frac16, "frac16"),
        frac16_pred_pct=100 * p,
        frac16_se_pct=100 * standard_error,
        count16_scaled=_count(frac16_scaled, n, "frac16_scaled"),
        count_bf16=_count(frac_bf16, n, "frac_bf16"),
        n_logits=n,
    )


def format_overflow_check(rec: OverflowCheck) -> str:
    """Two lines: the float16 overflow share against its prediction (± its binomial
    standard error), then the overflow counts of the scaled logits in float16 and the
    unscaled ones in bfloat16, out of ``n_logits``."""
    return (
        f"overflow, unscaled, float16: {rec.frac16_pct:.2f}%,"
        f" predicted {rec.frac16_pred_pct:.2f}% ± {rec.frac16_se_pct:.2f}% (binomial SE)"
        f"\noverflows of {rec.n_logits:,}: scaled, float16: {rec.count16_scaled};"
        f"  unscaled, bfloat16: {rec.count_bf16}"
    )


@dataclass(frozen=True)
class WidthScan:
    """The exercise's scan of head widths for exp overflow in float16.

    ``d_first``: the first width whose unscaled tail exceeds the level;
    ``tail_first_pct`` and ``tail_before_pct``: the unscaled tail (percent) at
    ``d_first`` and at half of it; ``scaled_first``: the scaled tail (fraction) at
    ``d_first``; ``scaled``: width -> scaled tail at the smallest and the largest width
    scanned (glued as ``scaled_<width>``); ``gauss_tail``: the standard normal tail at
    the threshold, for comparison.
    """

    d_first: int
    tail_first_pct: float
    tail_before_pct: float
    scaled_first: float
    scaled: dict[int, float]
    gauss_tail: float


def width_scan(
    tails: Mapping[int, float],
    scaled: Mapping[int, float],
    d_first: int,
    gauss_tail: float,
) -> WidthScan:
    """:class:`WidthScan` of ``tails`` and ``scaled`` (width -> tail probability,
    unscaled and scaled logits, same widths), ``d_first`` (a width of the scan whose
    half is also one) and ``gauss_tail``."""
    if not isinstance(tails, Mapping) or not tails:
        raise ValueError("tails must be a non-empty mapping of width -> tail")
    if not isinstance(scaled, Mapping) or set(scaled) != set(tails):
        raise ValueError("scaled must map the same widths as tails")
    d_first = positive_int(d_first, "d_first", minimum=2)
    if d_first not in tails or d_first // 2 not in tails:
        raise ValueError(
            f"d_first and d_first // 2 must be widths of tails, got {d_first}"
        )
    ends = (min(scaled), max(scaled))
    return WidthScan(
        d_first=d_first,
        tail_first_pct=100 * _fraction(tails[d_first], "tails[d_first]"),
        tail_before_pct=100 * _fraction(tails[d_first // 2], "tails[d_first // 2]"),
        scaled_first=_fraction(scaled[d_first], "scaled[d_first]"),
        scaled={w: _fraction(scaled[w], f"scaled[{w}]") for w in ends},
        gauss_tail=_fraction(gauss_tail, "gauss_tail"),
    )


#: Readable names of the fp8 formats and storage modes in the exercise's glue keys.
FP8_LABELS = {"float8_e4m3fn": "E4M3", "float8_e5m2": "E5M2"}
STORAGE_LABELS = {"raw": "cast as is", "scaled": "scaled per row"}
_FP8_METRICS = ("zero_pct", "relerr_pct")


def format_fp8_errors(values: Mapping[str, float]) -> str:
    """A table of the fp8 exercise's percentages ``values``: keys
    ``zero_pct_<format>_<raw|scaled>`` (share of weights stored as 0) and
    ``relerr_pct_<format>_<raw|scaled>`` (median relative error), both for every
    format and storage. One row per format and storage, named by :data:`FP8_LABELS`
    and :data:`STORAGE_LABELS`; one column per measure, in percent."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of name -> percent")
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for key, value in values.items():
        metric = next((m for m in _FP8_METRICS if key.startswith(m + "_")), None)
        name, _, storage = key[len(metric or "") + 1 :].rpartition("_")
        if metric is None or not name or storage not in STORAGE_LABELS:
            raise ValueError(
                f"values[{key!r}]: keys must be <zero_pct|relerr_pct>_<format>_"
                "<raw|scaled>"
            )
        rows.setdefault((name, storage), {})[metric] = finite_float(
            value, f"values[{key!r}]"
        )
    lines = [f"{'':24}{'stored as 0':>12}{'median rel. error':>20}"]
    for (name, storage), row in rows.items():
        if set(row) != set(_FP8_METRICS):
            raise ValueError(f"values lacks a measure for {name}_{storage}")
        label = f"{FP8_LABELS.get(name, name)}, {STORAGE_LABELS[storage]}"
        lines.append(f"{label:24}{row['zero_pct']:11.2f}%{row['relerr_pct']:19.2f}%")
    return "\n".join(lines)
