"""numscale.report: values are cast to plain numbers, bad ones are refused naming the entry."""

from __future__ import annotations

import numpy as np
import pytest

from numscale import report


def test_plain_number_casts_numpy_scalars() -> None:
    assert type(report.plain_number(np.float64(1.5), "x")) is float
    assert type(report.plain_number(np.int64(3), "x")) is int
    assert report.plain_number(np.array([2.0]), "x") == 2.0
    assert report.plain_number("text", "x") == "text"


@pytest.mark.parametrize(
    "bad, error",
    [
        (np.nan, ValueError),
        (np.inf, ValueError),
        (True, TypeError),
        (np.zeros(3), ValueError),
        (None, TypeError),
        ([1.0], TypeError),
    ],
)
def test_plain_number_rejects_bad_values(bad, error) -> None:
    with pytest.raises(error, match="entry"):
        report.plain_number(bad, "entry")


def test_glue_numbers_glues_each_value(monkeypatch: pytest.MonkeyPatch) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(
        myst_nb,
        "glue",
        lambda name, value, display=True: calls.append((name, value, display)),
    )
    out = report.glue_numbers({"a": np.float32(0.5), "b": 2}, prefix="p_")
    assert out == {"p_a": 0.5, "p_b": 2}
    assert calls == [("p_a", 0.5, False), ("p_b", 2, False)]


def test_glue_numbers_checks_everything_before_gluing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: calls.append(a))
    with pytest.raises(ValueError, match="'bad'"):
        report.glue_numbers({"good": 1.0, "bad": float("nan")})
    assert calls == []
    with pytest.raises(ValueError, match="values"):
        report.glue_numbers({})
