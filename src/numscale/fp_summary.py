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
    binomial standard error of the measured share for that probability (percent);
    ``frac16_scaled`` and ``frac_bf16``: the measured fractions (not percent) for the
    scaled logits in float16 and the unscaled ones in bfloat16.
    """

    frac16_pct: float
    frac16_pred_pct: float
    frac16_se_pct: float
    frac16_scaled: float
    frac_bf16: float


def overflow_check(
    frac16: float, predicted: float, n: int, frac16_scaled: float, frac_bf16: float
) -> OverflowCheck:
    """:class:`OverflowCheck` of the measured fractions ``frac16``, ``frac16_scaled``,
    ``frac_bf16`` (each in [0, 1], over ``n`` logits) and the ``predicted`` tail
    probability of ``frac16``; the standard error is √(p(1 − p)/n) at p = predicted."""
    p = _fraction(predicted, "predicted")
    n = positive_int(n, "n")
    standard_error = math.sqrt(p * (1 - p) / n)
    return OverflowCheck(
        frac16_pct=100 * _fraction(frac16, "frac16"),
        frac16_pred_pct=100 * p,
        frac16_se_pct=100 * standard_error,
        frac16_scaled=_fraction(frac16_scaled, "frac16_scaled"),
        frac_bf16=_fraction(frac_bf16, "frac_bf16"),
    )


def format_overflow_check(rec: OverflowCheck) -> str:
    """Two lines: the float16 overflow share against its prediction, then the
    scaled-float16 and unscaled-bfloat16 fractions."""
    return (
        f"overflow, float16: {rec.frac16_pct:.2f}%, predicted {rec.frac16_pred_pct:.2f}%"
        f"\nscaled, float16: {rec.frac16_scaled};  unscaled, bfloat16: {rec.frac_bf16}"
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


def format_percentages(values: Mapping[str, float], width: int = 34) -> str:
    """One line per ``name -> value`` of ``values`` (already in percent):
    the name padded to ``width``, then the value with two decimals and ``%``."""
    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of name -> percent")
    return "\n".join(f"{name:{width}s} {value:6.2f}%" for name, value in values.items())
