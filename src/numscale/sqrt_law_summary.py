"""What the √d-law chapter quotes and prints, as records and formatted text.

The sweeps and laws live in :mod:`numscale.dotprod`; the builders here take their
results (a :class:`numscale.dotprod.SqrtLawSweep`, fitted slopes, kurtoses) and return
what the chapter glues in one call; the ``format_*`` functions return what it prints.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import finite_float
from numscale.dotprod import SqrtLawSweep


@dataclass(frozen=True)
class SlopeFit:
    """A log–log slope of std against d, and how far it lies from 1/2. Its ``str``
    is the line the chapter prints: the slope, its fitted and its predicted standard
    error."""

    slope: float  #: least-squares slope
    slope_se: float  #: its standard error, from the scatter of the fit
    slope_se_theory: float  #: its standard error predicted by sampling theory
    slope_z: float  #: |slope − 1/2| in units of ``slope_se``

    def __str__(self) -> str:
        return (
            f"slope {self.slope:.4f} ± {self.slope_se:.4f} (fit) "
            f"± {self.slope_se_theory:.4f} (theory)"
        )


def slope_fit(slope: float, slope_se: float, slope_se_theory: float) -> SlopeFit:
    """Record a fitted ``slope`` with its two standard errors (both > 0)."""
    slope = finite_float(slope, "slope")
    slope_se = finite_float(slope_se, "slope_se", positive=True)
    slope_se_theory = finite_float(slope_se_theory, "slope_se_theory", positive=True)
    return SlopeFit(
        slope=slope,
        slope_se=slope_se,
        slope_se_theory=slope_se_theory,
        slope_z=abs(slope - 0.5) / slope_se,
    )


@dataclass(frozen=True)
class RangeRecord:
    """A log–log slope of std against d fitted over a range of lengths (passed
    through, not fitted here), and the square root of the range's largest length (the
    factor 1/√d_k divides by there; a function of the chosen range). Its ``str`` is
    the line the chapter prints: the slope and its standard error."""

    slope: float  #: least-squares slope
    slope_se: float  #: its standard error, from the scatter of the fit
    sqrt_dmax: float  #: √ of the largest length d

    def __str__(self) -> str:
        return f"slope {self.slope:.4f} ± {self.slope_se:.4f}"


def range_record(dims: np.ndarray, slope: float, slope_se: float) -> RangeRecord:
    """Record a ``slope`` (with its standard error ``slope_se`` > 0) that the caller
    fitted over the increasing lengths ``dims`` ``(m,)``, with √max(dims); the slope
    is checked and kept, not fitted."""
    dims = np.asarray(dims)
    if dims.ndim != 1 or dims.size == 0 or not np.issubdtype(dims.dtype, np.integer):
        raise TypeError(f"dims must be a non-empty (m,) integer array, got {dims!r}")
    if np.any(dims < 1) or np.any(np.diff(dims) <= 0):
        raise ValueError(f"dims must be increasing positive lengths, got {dims}")
    return RangeRecord(
        slope=finite_float(slope, "slope"),
        slope_se=finite_float(slope_se, "slope_se", positive=True),
        sqrt_dmax=float(np.sqrt(dims[-1])),
    )


def format_sweep(sweep: SqrtLawSweep, rows: Sequence[int]) -> str:
    """The sweep's size, then its std against √d at the indices ``rows`` of
    ``sweep.dims`` (m,), one line each."""
    if not isinstance(sweep, SqrtLawSweep):
        raise TypeError(f"sweep must be a SqrtLawSweep, got {type(sweep).__name__}")
    bad = [i for i in rows if not -sweep.dims.size <= i < sweep.dims.size]
    if bad:
        raise ValueError(f"rows must index the {sweep.dims.size} dims, got {bad}")
    dims = sweep.dims
    lines = [
        f"{dims.size} lengths d = {dims[0]}…{dims[-1]}, {sweep.n_pairs:,} pairs each",
        "d     std     √d",
    ]
    lines += [
        f"{dims[i]:<4d} {sweep.std[i]:7.3f} {np.sqrt(dims[i]):7.3f}" for i in rows
    ]
    return "\n".join(lines)


def _same_keys(kurtosis: Mapping[int, float], predicted: Mapping[int, float]) -> None:
    if not isinstance(kurtosis, Mapping) or not kurtosis:
        raise ValueError("kurtosis must be a non-empty mapping of d to a kurtosis")
    if not isinstance(predicted, Mapping) or set(predicted) != set(kurtosis):
        raise ValueError("predicted must map the same lengths d as kurtosis")


def kurtosis_numbers(
    kurtosis: Mapping[int, float], predicted: Mapping[int, float]
) -> dict[str, float]:
    """Glue names ``kurt_d<d>`` (measured) and ``kurt_d<d>_pred`` for each length d:
    the measured ones first, then the predicted, in the order of ``kurtosis``."""
    _same_keys(kurtosis, predicted)
    return {f"kurt_d{d}": kurtosis[d] for d in kurtosis} | {
        f"kurt_d{d}_pred": predicted[d] for d in kurtosis
    }


def format_kurtosis(
    kurtosis: Mapping[int, float], predicted: Mapping[int, float]
) -> str:
    """One line per length d: the measured and the predicted kurtosis."""
    _same_keys(kurtosis, predicted)
    return "\n".join(
        f"d = {d:3d}: kurtosis {kurtosis[d]:.3f}, predicted {predicted[d]:.3f}"
        for d in kurtosis
    )
