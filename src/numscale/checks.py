"""Input validation shared by every helper.

Each function raises ``TypeError`` (wrong type or dtype) or ``ValueError`` (wrong
shape, empty, non-finite, out of range) with a message that names the argument, and
otherwise returns the input as a NumPy array so callers can write
``x = as_float_array(x, "x")`` (or, for torch tensors, unchanged:
``x = as_float_tensor(x, "x")``).
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np


def _check_shape(
    shape: tuple[int, ...],
    name: str,
    ndim: int | tuple[int, ...] | None,
    allow_empty: bool,
) -> None:
    """Raise ``ValueError`` naming ``name`` for a number of dimensions outside ``ndim``
    (an int or a tuple of allowed ints; None: any) or, unless allowed, no entries."""
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if len(shape) not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s), "
                f"got shape {shape}"
            )
    if 0 in shape and not allow_empty:
        raise ValueError(f"{name} must not be empty, got shape {shape}")


def as_float_array(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    allow_empty: bool = False,
    allow_nonfinite: bool = False,
) -> np.ndarray:
    """Return ``value`` as a floating-point ndarray, or raise naming ``name``.

    Accepts NumPy arrays, nested sequences and torch tensors (converted on the CPU).
    Integer and boolean input is rejected with ``TypeError``: silently promoting it
    would hide a caller's mistake (logits are never integers in this book).
    ``ndim`` restricts the number of dimensions (an int or a tuple of allowed ints).
    Empty arrays and NaN/inf values raise ``ValueError`` unless explicitly allowed.
    """
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu()
        if str(value.dtype) in {"torch.bfloat16", "torch.float16"}:
            value = value.float()
        value = value.numpy()
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"{name} must be an array of floats, got {type(value).__name__}"
        )
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise ValueError(f"{name} could not be read as an array: {exc}") from exc
    if array.dtype == object or not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name} must hold floating-point numbers, got dtype {array.dtype}"
        )
    _check_shape(tuple(array.shape), name, ndim, allow_empty)
    if not allow_nonfinite and array.size and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    return array


def as_float_tensor(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    allow_empty: bool = False,
    allow_nonfinite: bool = False,
):
    """Return ``value``, a floating-point ``torch.Tensor``, or raise naming ``name``.

    The torch counterpart of :func:`as_float_array`, with the same contract: anything
    but a tensor, and integer, boolean or complex tensors, raise ``TypeError``; a
    number of dimensions outside ``ndim`` (an int or a tuple of allowed ints), an empty
    tensor or NaN/inf values raise ``ValueError`` unless explicitly allowed. The tensor
    is returned as it is (same object: no copy, no detach, autograd intact), so callers
    can write ``x = as_float_tensor(x, "x")``.
    """
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if not value.dtype.is_floating_point:
        raise TypeError(
            f"{name} must hold floating-point numbers, got dtype {value.dtype}"
        )
    _check_shape(tuple(value.shape), name, ndim, allow_empty)
    if (
        not allow_nonfinite
        and value.numel()
        and not bool(torch.isfinite(value.detach()).all())
    ):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")
    return value


def as_index_tensor(
    value: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] | None = None,
    high: int | None = None,
):
    """Return ``value`` (a torch tensor of integer indices, e.g. token ids) as int64.

    Anything but a tensor, and floating, complex or boolean tensors, raise
    ``TypeError``; a number of dimensions outside ``ndim``, an empty tensor, or an
    index outside ``[0, high)`` (``[0, ∞)`` without ``high``) raise ``ValueError``;
    every message names ``name``. An int64 tensor is returned as it is.
    """
    import torch

    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of indices, got {type(value).__name__}"
        )
    if value.dtype == torch.bool or value.dtype.is_floating_point or value.is_complex():
        raise TypeError(f"{name} must hold integer indices, got dtype {value.dtype}")
    _check_shape(tuple(value.shape), name, ndim, allow_empty=False)
    low, top = int(value.min()), int(value.max())
    if low < 0 or (high is not None and top >= high):
        raise ValueError(
            f"{name} must lie in [0, {'∞' if high is None else high}), "
            f"got values in [{low}, {top}]"
        )
    return value.long()


def of_type(value: Any, kind: type, name: str) -> Any:
    """Return ``value`` if it is an instance of ``kind`` (a record of a summary module,
    say), else raise ``TypeError`` naming ``name``, ``kind`` and what was given."""
    if not isinstance(value, kind):
        article = "an" if kind.__name__[:1] in "AEIOU" else "a"
        raise TypeError(
            f"{name} must be {article} {kind.__name__}, got {type(value).__name__}"
        )
    return value


def positive_int(value: Any, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum`` or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def finite_float(value: Any, name: str, *, positive: bool = False) -> float:
    """Return ``value`` as a finite float (optionally > 0) or raise naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    result = float(value)
    if not np.isfinite(result):
        raise ValueError(f"{name} must be finite, got {result}")
    if positive and result <= 0:
        raise ValueError(f"{name} must be > 0, got {result}")
    return result


def float_dtype(value: Any, name: str = "dtype") -> np.dtype:
    """Return ``value`` as a NumPy floating dtype, or raise ``TypeError`` naming ``name``."""
    try:
        dtype = np.dtype(value)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a NumPy floating dtype, got {value!r}"
        ) from exc
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{name} must be a floating dtype, got {dtype}")
    return dtype


def rng_from(seed: Any, name: str = "seed") -> np.random.Generator:
    """Return a seeded ``np.random.Generator``; a Generator passes through unchanged.

    ``None`` is rejected: every random draw in the book is reproducible.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, Integral):
        raise TypeError(
            f"{name} must be an int or np.random.Generator, got {type(seed).__name__}"
        )
    return np.random.default_rng(int(seed))


def spawn_rngs(seed: Any, count: int, name: str = "seed") -> list[np.random.Generator]:
    """``count`` independent generators spawned from one integer ``seed``.

    Sweeps give each point (each dimension d, say) its own child stream, so adding a point
    to a sweep leaves the draws of the others unchanged.
    """
    root = np.random.SeedSequence(positive_int(seed, name, minimum=0))
    return [
        np.random.default_rng(child)
        for child in root.spawn(positive_int(count, "count", minimum=0))
    ]
