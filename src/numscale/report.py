"""Glue a chapter's numbers for its prose, so cells show computation, not bookkeeping.

- ``glue_record(record, prefix=, exclude=, inputs=, show=)``: glue the fields of a
  helper's result record (a dataclass) in one call, with the page's chosen inputs.
- ``glue_inputs(values, prefix=)``: glue numbers the page chose (a seed, a count),
  marked as inputs for the glue-mutation check.
- ``glue_numbers(values, prefix=)``: glue every ``name -> value`` of a mapping.
- ``MarkdownText``: a string glued as Markdown, for prose that reads it with ``{glue:md}``.

Every glue is hidden from the cell's output (``display=False``); NumPy scalars are cast to
plain ``int``/``float`` (glue's text formatting fails on ``np.float64``), and a value
that is not a finite number or a string raises naming its entry before anything is
glued. Names must be unique across the book, as for :func:`myst_nb.glue` itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from typing import Any

import numpy as np


class MarkdownText(str):
    """Text that :func:`glue_numbers` glues as Markdown, for prose that reads it with
    ``{glue:md}`` (code spans such as a module name in backticks render as code). A record
    field of this type is glued the same way by :func:`glue_record`."""


def plain_number(value: Any, name: str) -> int | float | str:
    """``value`` as a built-in ``int``/``float`` (or ``str``), or raise naming ``name``.

    Bools are rejected (``TypeError``): a glued number is a measurement, never a flag.
    NaN and inf are rejected (``ValueError``): the prose would print them as numbers.
    A 0-d or one-element array is unwrapped.
    """
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(
                f"{name} must be a single number, got an array of shape {value.shape}"
            )
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a number, got a bool")
    if isinstance(value, str):
        return value  # a MarkdownText stays one
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, Real):
        number = float(value)
        if not np.isfinite(number):
            raise ValueError(f"{name} must be finite, got {number}")
        return number
    raise TypeError(f"{name} must be a number or a string, got {type(value).__name__}")


class Glued(dict):
    """The mapping a glue helper returns (full names -> plain values). It displays
    nothing, so a cell that ends with a glue call shows no dictionary of glue names
    (the numbers reach the reader through the prose)."""

    def _ipython_display_(self) -> None:  # IPython calls this instead of showing repr
        return None


def glue_numbers(
    values: Mapping[str, Any], *, prefix: str = ""
) -> dict[str, int | float | str]:
    """Glue every ``name -> value`` of ``values`` (as ``prefix + name``), hidden from output.

    Returns the glued mapping (full names -> plain values), which tests and later cells may use.
    Raises ``TypeError``/``ValueError`` naming the entry for a value that is not a finite number
    or a string, before anything is glued.
    """
    from myst_nb import (
        glue,
    )  # imported here: only chapters (kernels with myst_nb) call this

    if not isinstance(values, Mapping) or not values:
        raise ValueError("values must be a non-empty mapping of glue names to numbers")
    plain = {
        f"{prefix}{key}": plain_number(value, f"values[{key!r}]")
        for key, value in values.items()
    }
    for key, value in plain.items():
        glue(key, _glued_object(value), display=False)
    return Glued(plain)


def _glued_object(value: int | float | str) -> Any:
    """What :func:`myst_nb.glue` receives: an IPython ``Markdown`` for
    :class:`MarkdownText`, the value itself otherwise."""
    if isinstance(value, MarkdownText):
        from IPython.display import Markdown

        return Markdown(str(value))
    return value


def record_numbers(record: Any, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a dataclass ``record`` as a flat ``name -> value`` mapping.

    A field holding a mapping contributes ``field_key`` for each of its keys (one
    level); fields named in ``exclude`` (arrays kept for a figure, say) are left out.
    Raises ``TypeError`` if ``record`` is not a dataclass instance and ``ValueError``
    naming an ``exclude`` entry that is not a field.
    """
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(
            f"record must be a dataclass instance, got {type(record).__name__}"
        )
    names = [f.name for f in dataclasses.fields(record)]
    unknown = sorted(set(exclude) - set(names))
    if unknown:
        raise ValueError(
            f"exclude names no field of {type(record).__name__}: {unknown}"
        )
    flat: dict[str, Any] = {}
    for name in names:
        if name in exclude:
            continue
        value = getattr(record, name)
        if isinstance(value, Mapping):
            flat.update({f"{name}_{key}": item for key, item in value.items()})
        else:
            flat[name] = value
    return flat


def glue_record(
    record: Any,
    *,
    prefix: str = "",
    exclude: tuple[str, ...] = (),
    inputs: Mapping[str, Any] | None = None,
    show: bool = False,
) -> dict[str, int | float | str]:
    """Glue the fields of a helper's result record in one call (see
    :func:`record_numbers` for the names; checked as in :func:`glue_numbers`).

    ``inputs`` (optional): the numbers the page chose for this computation, glued with
    the same ``prefix`` as inputs (:func:`glue_inputs`). ``show=True`` prints the
    record (its ``str``) after gluing it, for a cell whose output the prose reads.
    Returns the glued mapping (full names -> plain values), inputs included.
    Raises ``TypeError``/``ValueError`` naming the entry (a bad field, a bad input, an
    input named like a field) before anything is glued.
    """
    numbers = record_numbers(record, exclude=exclude)
    # every check comes before anything is glued (glue_numbers checks the fields)
    if inputs is not None and (not isinstance(inputs, Mapping) or not inputs):
        raise ValueError("inputs must be a non-empty mapping of names to numbers")
    clash = sorted(set(numbers) & set(inputs or {}))
    if clash:
        raise ValueError(f"inputs repeat fields of the record: {clash}")
    for key, value in (inputs or {}).items():
        plain_number(value, f"inputs[{key!r}]")
    glued = glue_numbers(numbers, prefix=prefix)
    if inputs is not None:
        glued.update(glue_inputs(inputs, prefix=prefix))
    if show:
        print(record)
    return glued


def text_table(
    columns: Sequence[object],
    rows: Mapping[str, Sequence[float]],
    *,
    corner: str = "",
    number_format: str = "8.4f",
) -> str:
    """A plain-text table for a cell to print: a header of ``columns`` after
    ``corner``, then one line per row label with its values in ``number_format``.

    Each row needs one value per column (``ValueError`` naming the row otherwise).
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    cell = len(format(0.0, number_format))
    label = max(len(corner), *(len(name) for name in rows))
    lines = [f"{corner:>{label}}: " + "".join(f"{c!s:>{cell}}" for c in columns)]
    for name, values in rows.items():
        if len(values) != len(columns):
            raise ValueError(
                f"row {name!r} has {len(values)} values for {len(columns)} columns"
            )
        numbers = "".join(f"{v:{number_format}}" for v in values)
        lines.append(f"{name:>{label}}: {numbers}")
    return "\n".join(lines)


INPUT_MARKER = "__is_input"


def glue_inputs(
    values: Mapping[str, Any], *, prefix: str = ""
) -> dict[str, int | float | str]:
    """Glue the page's chosen inputs (a seed, a count, a grid size) like
    :func:`glue_numbers`, and mark each one as an input.

    Each ``prefix + name`` also gets a hidden marker ``prefix + name + "__is_input"``
    (value 1), so that readers of the executed notebook (the glue-mutation check of
    ``tools/glue_mutation.py``) can tell a number the page chose from a result it
    measured. Returns the glued mapping without the markers.
    """
    from myst_nb import glue

    plain = glue_numbers(values, prefix=prefix)
    for key in plain:
        glue(f"{key}{INPUT_MARKER}", 1, display=False)
    return plain
