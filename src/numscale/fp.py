"""Floating-point formats and where attention arithmetic leaves their range (torch).

Every number comes from ``torch.finfo`` or from running torch's own kernels in the
format: float16 and bfloat16 arithmetic runs on the CPU. The two fp8 formats
(``torch.float8_e4m3fn``, ``torch.float8_e5m2``) are storage formats with no ``exp``
kernel, so for them ``exp`` is computed in float32 and the result stored in fp8, as a
mixed-precision kernel would.

Thresholds are found by bisection over the *bit patterns* of a format: for positive
floats the integer bit pattern increases with the value, so bisection over integers
visits only representable numbers and ends on the exact boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, positive_int, rng_from
from numscale.softmax import naive_softmax, softmax

#: The formats of the chapter, widest first, with their display names.
FORMATS: dict[str, torch.dtype] = {
    "float64": torch.float64,
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "float8_e5m2": torch.float8_e5m2,
    "float8_e4m3fn": torch.float8_e4m3fn,
}
FP8 = (torch.float8_e4m3fn, torch.float8_e5m2)
_INT_OF_SIZE = {8: torch.uint8, 16: torch.int16, 32: torch.int32, 64: torch.int64}


def _check_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")
    if dtype not in FORMATS.values():
        raise ValueError(f"{name} must be one of {sorted(FORMATS)}, got {dtype}")
    return dtype


def _check_kernel_dtype(dtype: object, kernel: str) -> torch.dtype:
    """``dtype`` checked by :func:`_check_dtype` and not fp8: torch has no ``kernel``
    (``"exp"``, ``"softmax"``) for the fp8 formats."""
    dtype = _check_dtype(dtype)
    if dtype in FP8:
        raise ValueError(
            f"dtype {dtype} has no {kernel} kernel; "
            "use float64, float32, float16 or bfloat16"
        )
    return dtype


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16 -> "float16"``."""
    return str(_check_dtype(dtype)).removeprefix("torch.")


@dataclass(frozen=True)
class FormatInfo:
    """Range and precision of one format, read from ``torch.finfo`` (plus inf support).

    ``smallest_subnormal`` is ``smallest_normal · eps``, the gap between consecutive
    numbers below the smallest normal one (for the fp8 formats as for the others)."""

    name: str
    bits: int
    exponent_bits: int
    mantissa_bits: int
    max: float
    smallest_normal: float
    smallest_subnormal: float
    eps: float
    ln_max: float
    has_inf: bool


def format_info(dtype: torch.dtype) -> FormatInfo:
    """:class:`FormatInfo` of ``dtype``. Mantissa bits = −log2(eps).

    ``has_inf`` is measured: whether +inf is still infinite after conversion to the
    format in the running torch. E4M3FN has no infinity; what a conversion does with
    an out-of-range value is implementation-defined (torch 2.13 saturates +inf to the
    largest finite value, 448; see :func:`stored_in_format`).
    """
    dtype = _check_dtype(dtype)
    fi = torch.finfo(dtype)
    mantissa = int(round(-math.log2(fi.eps)))
    has_inf = bool(torch.isinf(torch.tensor(float("inf")).to(dtype).float()).item())
    return FormatInfo(
        name=dtype_name(dtype),
        bits=fi.bits,
        exponent_bits=fi.bits - 1 - mantissa,
        mantissa_bits=mantissa,
        max=float(fi.max),
        smallest_normal=float(fi.smallest_normal),
        smallest_subnormal=float(fi.smallest_normal) * float(fi.eps),
        eps=float(fi.eps),
        ln_max=math.log(fi.max),
        has_inf=has_inf,
    )


def markdown_table(dtypes: Sequence[torch.dtype]) -> str:
    """A Markdown table of :func:`format_info` for ``dtypes`` (one row per format).

    Columns: name, bit layout sign+exponent+mantissa, max, smallest normal, eps,
    ln(max), whether +inf is representable.
    """
    if len(dtypes) == 0:
        raise ValueError("dtypes must not be empty")
    rows = []
    for dtype in dtypes:
        f = format_info(dtype)
        largest = f"{f.max:,.0f}" if f.max < 1e6 else f"{f.max:.3g}"
        rows.append(
            [
                f.name,
                f"1+{f.exponent_bits}+{f.mantissa_bits}",
                largest,
                f"{f.smallest_normal:.2g}",
                f"{f.eps:.3g}",
                f"{f.ln_max:.2f}",
                "yes" if f.has_inf else "no",
            ]
        )
    return to_markdown(
        ["format", "bits s+e+m", "max", "min normal", "eps", "ln max", "inf"], rows
    )


def to_markdown(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table from a header and rows of cells (cells converted with ``str``).

    Every row must have as many cells as the header. Display it in a notebook with
    ``IPython.display.Markdown``.
    """
    if len(header) == 0:
        raise ValueError("header must not be empty")
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(
                f"rows[{i}] has {len(row)} cells, header has {len(header)}"
            )
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in rows]
    return "\n".join(lines)


def stored_in_format(
    values: Sequence[float], dtype: torch.dtype
) -> tuple[list[float], list[int]]:
    """What the running torch stores for each of ``values`` in format ``dtype``.

    Returns ``(stored, bits)``: the stored values read back as floats (NaN, ±inf
    included) and their integer bit patterns. Conversion of out-of-range values and
    infinities is implementation-defined, so this is a measurement of this torch,
    not a property of the format.
    """
    dtype = _check_dtype(dtype)
    if len(values) == 0:
        raise ValueError("values must not be empty")
    x = torch.tensor([float(v) for v in values], dtype=torch.float64).to(dtype)
    int_dtype = _INT_OF_SIZE[torch.finfo(dtype).bits]
    bits = x.view(int_dtype).to(torch.int64)
    if int_dtype is not torch.uint8:  # two's complement -> unsigned
        bits = bits & ((1 << torch.finfo(dtype).bits) - 1)
    return x.double().tolist(), [int(b) for b in bits.tolist()]


# ------------------------------------------------------------------ bisection on bits


def value_of_bits(bits: int, dtype: torch.dtype) -> torch.Tensor:
    """The scalar of format ``dtype`` whose bit pattern is the integer ``bits``."""
    dtype = _check_dtype(dtype)
    int_dtype = _INT_OF_SIZE[torch.finfo(dtype).bits]
    return torch.tensor([bits], dtype=int_dtype).view(dtype)[0]


def bits_of(x: float, dtype: torch.dtype) -> int:
    """The integer bit pattern of ``x`` rounded to format ``dtype`` (inverse of :func:`value_of_bits`)."""
    dtype = _check_dtype(dtype)
    int_dtype = _INT_OF_SIZE[torch.finfo(dtype).bits]
    return int(
        torch.tensor([x], dtype=torch.float64).to(dtype).view(int_dtype)[0].item()
    )


def _largest_bits_where(
    dtype: torch.dtype, holds: Callable[[torch.Tensor], bool]
) -> int:
    """Largest bit pattern b of a positive value of ``dtype`` with ``holds`` true."""
    lo, hi = 1, _max_bits(dtype)  # bits of the smallest and the largest positive value
    if not holds(value_of_bits(lo, dtype)):
        raise ValueError("holds must be true at the smallest positive value")
    if holds(value_of_bits(hi, dtype)):
        return hi
    while hi - lo > 1:  # invariant: holds(lo), not holds(hi)
        mid = (lo + hi) // 2
        if holds(value_of_bits(mid, dtype)):
            lo = mid
        else:
            hi = mid
    return lo


def largest_positive_where(
    dtype: torch.dtype, holds: Callable[[torch.Tensor], bool]
) -> float:
    """Largest finite positive value x of format ``dtype`` with ``holds(x)`` true.

    ``holds`` must be true at the smallest positive value and switch from true to false
    at most once as x grows (e.g. "exp(x) is finite"). Bisection over bit patterns:
    about as many calls as the format has bits. Returns ``x`` as a float.
    """
    dtype = _check_dtype(dtype)
    return float(value_of_bits(_largest_bits_where(dtype, holds), dtype).double())


def _max_bits(dtype: torch.dtype) -> int:
    """Bit pattern of the largest finite positive value (found, not assumed)."""
    fmax = torch.tensor(torch.finfo(dtype).max, dtype=torch.float64).to(dtype)
    int_dtype = _INT_OF_SIZE[torch.finfo(dtype).bits]
    return int(fmax.reshape(1).view(int_dtype)[0].item())


def exp_in_format(x: torch.Tensor) -> torch.Tensor:
    """``exp(x)`` as the format of ``x`` gives it: torch's own kernel for float64/32/16 and
    bfloat16; for fp8 (no kernel) exp in float32, then stored in fp8."""
    dtype = _check_dtype(x.dtype, "x")
    if dtype in FP8:
        return torch.exp(x.float()).to(dtype)
    return torch.exp(x)


def exp_fits(x: torch.Tensor) -> bool:
    """Whether ``exp(x)`` in the format of ``x`` is finite and not clipped at the format's max.

    For formats with an exp kernel: the result is finite. For fp8: the float32 exp is at
    most the format's max (E5M2 would round larger values to inf or max; torch's
    conversion to E4M3FN saturates at 448 instead of overflowing).
    """
    dtype = _check_dtype(x.dtype, "x")
    out = exp_in_format(x)
    if not bool(torch.isfinite(out.double()).all()):  # .float() overflows float64
        return False
    if dtype in FP8:
        return bool((torch.exp(x.float()) <= torch.finfo(dtype).max).all())
    return True


def exp_overflow_threshold(dtype: torch.dtype) -> float:
    """Largest value x of format ``dtype`` for which ``exp(x)`` still fits (see :func:`exp_fits`)."""
    return largest_positive_where(dtype, exp_fits)


def _softmax_of_gap(g: torch.Tensor) -> torch.Tensor:
    """``torch.softmax([g, 0])`` in the format of the scalar ``g``: shape ``(2,)``."""
    return torch.softmax(torch.stack([g, torch.zeros((), dtype=g.dtype)]), dim=0)


def softmax_one_gap(dtype: torch.dtype) -> float:
    """Smallest gap g between two logits at which ``softmax([g, 0])[0]`` is exactly 1.0.

    Uses ``torch.softmax`` in ``dtype`` (float64, float32, float16 or bfloat16). The
    rounding argument predicts g ≈ ln(1/u) with u = eps/2 the unit roundoff: the
    normaliser 1 + exp(−g) rounds to 1 once exp(−g) ≤ u.
    """
    dtype = _check_kernel_dtype(dtype, "softmax")
    last_below = _largest_bits_where(dtype, lambda g: bool(_softmax_of_gap(g)[0] < 1))
    # the next value up gives exactly 1
    return float(value_of_bits(last_below + 1, dtype).double())


def softmax_zero_gap(dtype: torch.dtype) -> float:
    """Smallest gap g between two logits at which ``softmax([g, 0])[1]`` is exactly 0.

    Uses ``torch.softmax`` in ``dtype`` (float64, float32, float16 or bfloat16). Below
    this gap the runner-up keeps a nonzero weight ≈ exp(−g) even where the top weight
    has already rounded to 1 (:func:`softmax_one_gap`). The rounding argument predicts
    g ≈ ln(2/s) with s the smallest positive subnormal: exp(−g) rounds to 0 below s/2.
    """
    dtype = _check_kernel_dtype(dtype, "softmax")
    last_positive = _largest_bits_where(
        dtype, lambda g: bool(_softmax_of_gap(g)[1] > 0)
    )
    return float(value_of_bits(last_positive + 1, dtype).double())


# ------------------------------------------------------------------ logits and masks


def dot_logits(
    d: int, n: int, seed: int | np.random.Generator, scale: float = 1.0
) -> np.ndarray:
    """``n`` independent logits ``scale · q·k`` of standard-normal length-``d`` vectors (float64, ``(n,)``)."""
    d = positive_int(d, "d")
    n = positive_int(n, "n")
    scale = finite_float(scale, "scale", positive=True)
    rng = rng_from(seed)
    q = rng.standard_normal((n, d))
    k = rng.standard_normal((n, d))
    return scale * np.einsum("ij,ij->i", q, k)


def exp_overflow_fraction(logits: np.ndarray, dtype: torch.dtype) -> float:
    """Fraction of ``logits`` whose exp is inf after the logits are cast to ``dtype``
    and exponentiated there (float16 / bfloat16 / float32 kernels)."""
    dtype = _check_kernel_dtype(dtype, "exp")
    z = torch.from_numpy(
        as_float_array(logits, "logits", ndim=1).astype(np.float64)
    ).to(dtype)
    return float(torch.isinf(torch.exp(z)).double().mean())


def normal_dot_tail(
    threshold: float, d: int, scale: float = 1.0, n_grid: int = 20_000
) -> float:
    """P(scale · q·k > threshold) for independent standard-normal q, k of length ``d``.

    Given q, q·k ~ N(0, |q|²) and |q|² ~ χ²_d, so the tail is
    E[Φ̄(threshold / (scale·|q|))] over the χ²_d density, integrated numerically
    (trapezoid on ``n_grid`` points out to the 1e-12 tail). Not the Gaussian tail
    Φ̄(threshold / (scale·√d)): q·k has kurtosis 3 + 6/d.
    """
    threshold = finite_float(threshold, "threshold")
    d = positive_int(d, "d")
    scale = finite_float(scale, "scale", positive=True)
    n_grid = positive_int(n_grid, "n_grid", minimum=100)
    hi = d + 60.0 * math.sqrt(2.0 * d) + 60.0
    r = np.linspace(0.0, hi, n_grid)[1:]
    log_density = (
        (d / 2 - 1) * np.log(r) - r / 2 - (d / 2) * math.log(2.0) - math.lgamma(d / 2)
    )
    density = np.exp(log_density)
    tail = 0.5 * np.array(
        [math.erfc(threshold / (scale * math.sqrt(x) * math.sqrt(2.0))) for x in r]
    )
    return float(np.trapezoid(density * tail, r))


def masked_row_softmax(
    n: int, fill: float, dtype: torch.dtype, *, subtract_max: bool = True
) -> torch.Tensor:
    """Softmax of a row of ``n`` logits that are *all* masked with ``fill``, in ``dtype``.

    The masked scores are built in float32 (where −1e9 is finite) and cast to ``dtype``,
    as a mixed-precision attention does. ``subtract_max=True`` uses ``torch.softmax``
    (which subtracts the row max); ``False`` computes exp(z) / Σ exp(z) directly.
    Shape ``(n,)``; NaN entries show the failure.
    """
    n = positive_int(n, "n")
    dtype = _check_dtype(dtype)
    if not isinstance(fill, (int, float)) or isinstance(fill, bool):
        raise TypeError(f"fill must be a real number, got {type(fill).__name__}")
    if math.isnan(fill):
        raise ValueError("fill must not be NaN")
    z = torch.full((n,), float(fill), dtype=torch.float32).to(dtype)
    if subtract_max:
        return torch.softmax(z, dim=0)
    e = torch.exp(z)
    return e / e.sum()


# ------------------------------------------------------------------ naive vs stable softmax


@dataclass(frozen=True)
class SoftmaxErrors:
    """Errors of the naive and the max-shifted softmax over a sweep of logit scales.

    ``tops``: the largest logit of each row, shape ``(k,)``. Errors are in units of the
    format's eps, against an exact reference (40 significant digits, :mod:`decimal`)
    computed from the same rounded logits, so the result is the same on every
    platform; NaN where the method returned a non-finite value.
    ``*_abs``: max_i |p̂_i − p_i|; ``*_rel``: max_i |p̂_i − p_i| / p_i over the entries
    with p_i above the format's smallest normal.
    """

    tops: np.ndarray
    naive_abs: np.ndarray
    stable_abs: np.ndarray
    naive_rel: np.ndarray
    stable_rel: np.ndarray


_REFERENCE_DIGITS = 40


def exact_softmax(logits: np.ndarray) -> list[Decimal]:
    """softmax of the float values ``logits`` ``(n,)`` to 40 significant digits.

    Each float converts to :class:`decimal.Decimal` exactly; exp and the sum are
    evaluated with 40-digit decimal arithmetic (correctly rounded exp), so the relative
    error of every entry is far below float64's 1.1e-16, on any platform.
    """
    z = as_float_array(logits, "logits", ndim=1)
    with localcontext() as ctx:
        ctx.prec = _REFERENCE_DIGITS
        exact = [Decimal(float(v)) for v in z]
        m = max(exact)
        terms = [(v - m).exp() for v in exact]
        total = sum(terms, Decimal(0))
        return [t / total for t in terms]


def _errors_in_eps(
    p: np.ndarray, ref: list[Decimal], ok: np.ndarray, eps: float
) -> tuple[float, float]:
    """(max |p − ref|, max |p − ref| / ref over ``ok``) in units of ``eps``; NaN if p
    is not finite."""
    if not np.all(np.isfinite(p)):
        return np.nan, np.nan
    with localcontext() as ctx:
        ctx.prec = _REFERENCE_DIGITS
        err = [abs(Decimal(float(v)) - r) for v, r in zip(p, ref)]
        rel = [e / r for e, r, keep in zip(err, ref, ok) if keep]
    return float(max(err)) / eps, float(max(rel)) / eps


def softmax_errors(row: np.ndarray, tops: np.ndarray, dtype: type) -> SoftmaxErrors:
    """Scale ``row`` so its largest entry is each value in ``tops``, round to ``dtype``
    (``np.float32`` or ``np.float64``) and measure naive and stable softmax errors
    against :func:`exact_softmax` of the rounded logits.

    ``row``: ``(n,)`` with a positive maximum; ``tops``: ``(k,)`` positive.
    """
    r = as_float_array(row, "row", ndim=1)
    t = as_float_array(tops, "tops", ndim=1)
    if r.max() <= 0:
        raise ValueError("row must have a positive maximum")
    if np.any(t <= 0):
        raise ValueError("tops must be positive")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be np.float32 or np.float64, got {dtype!r}")
    eps = float(np.finfo(dtype).eps)
    tiny = Decimal(float(np.finfo(dtype).smallest_normal))
    out: dict[str, list[float]] = {
        "naive_abs": [],
        "stable_abs": [],
        "naive_rel": [],
        "stable_rel": [],
    }
    for top in t:
        z = (r * (top / r.max())).astype(dtype)
        ref = exact_softmax(z)
        ok = np.array([v > tiny for v in ref])
        for name, p in (("naive", naive_softmax(z)), ("stable", softmax(z))):
            abs_err, rel_err = _errors_in_eps(p, ref, ok, eps)
            out[f"{name}_abs"].append(abs_err)
            out[f"{name}_rel"].append(rel_err)
    return SoftmaxErrors(tops=t, **{k: np.array(v) for k, v in out.items()})


# ------------------------------------------------------------------ fp8 storage with scales


def fp8_roundtrip(
    values: np.ndarray, dtype: torch.dtype, *, scaled: bool
) -> np.ndarray:
    """``values`` ``(rows, n)`` stored in fp8 format ``dtype`` and read back, as float64.

    ``scaled=False`` casts the values as they are. ``scaled=True`` first multiplies each
    row by its own scale factor ``max_finite / max|row|`` (a per-block scale, one block
    per row), so the row's largest magnitude maps to the format's largest finite number,
    casts, and divides the scale out again, as fp8 recipes do (Micikevicius et al. 2022).
    Rows that are all zero keep scale 1.
    """
    dtype = _check_dtype(dtype)
    if dtype not in FP8:
        raise ValueError(f"dtype must be an fp8 format, got {dtype}")
    x = as_float_array(values, "values", ndim=2).astype(np.float64)
    if x.size == 0:
        raise ValueError(f"values must not be empty, got shape {x.shape}")
    scale = np.ones((x.shape[0], 1))
    if scaled:
        peak = np.abs(x).max(axis=1, keepdims=True)
        scale = np.where(
            peak > 0, torch.finfo(dtype).max / np.where(peak > 0, peak, 1), 1
        )
    stored = torch.from_numpy(x * scale).to(dtype).double().numpy()
    return stored / scale
