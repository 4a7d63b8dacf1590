"""numscale.report: values are cast to plain numbers, bad ones are refused naming the entry."""

from __future__ import annotations

import dataclasses

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


@dataclasses.dataclass(frozen=True)
class _Result:
    loss: float
    errors: dict
    curve: np.ndarray


def test_glue_record_glues_fields_and_flattens_mappings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=True: calls.append((name, value))
    )
    rec = _Result(
        np.float64(1.5), {"tensor": 0.25, "g32": np.float32(0.125)}, np.ones(3)
    )
    out = report.glue_record(rec, prefix="q_", exclude=("curve",))
    assert out == {"q_loss": 1.5, "q_errors_tensor": 0.25, "q_errors_g32": 0.125}
    assert calls == list(out.items())


def test_glue_record_glues_inputs_as_inputs_and_shows_the_record(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=True: calls.append((name, value))
    )
    rec = _Result(2.0, {}, np.ones(3))
    out = report.glue_record(
        rec, prefix="q_", exclude=("curve",), inputs={"seed": 7}, show=True
    )
    assert out == {"q_loss": 2.0, "q_seed": 7} and isinstance(out, report.Glued)
    # the input, and only the input, carries the marker the glue-mutation check reads
    assert calls == [("q_loss", 2.0), ("q_seed", 7), ("q_seed__is_input", 1)]
    assert capsys.readouterr().out == f"{rec}\n"
    report.glue_record(rec, prefix="q_", exclude=("curve",))  # show=False: silent
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="loss"):  # an input named like a field
        report.glue_record(rec, exclude=("curve",), inputs={"loss": 1.0})


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        ({"seed": float("nan")}, ValueError, "seed"),
        ({"seed": True}, TypeError, "seed"),
        ({"n": np.ones(2)}, ValueError, "n"),
        ({}, ValueError, "inputs"),
    ],
)
def test_glue_record_checks_inputs_before_gluing_anything(
    monkeypatch: pytest.MonkeyPatch, inputs: dict, error: type, match: str
) -> None:
    import myst_nb

    calls = []
    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=True: calls.append((name, value))
    )
    rec = _Result(2.0, {"tensor": 0.5}, np.ones(3))
    with pytest.raises(error, match=match):
        report.glue_record(rec, prefix="q_", exclude=("curve",), inputs=inputs)
    assert calls == []  # not even the record's own fields


def test_markdown_text_is_glued_as_markdown(monkeypatch: pytest.MonkeyPatch) -> None:
    import myst_nb
    from IPython.display import Markdown

    calls = {}
    monkeypatch.setattr(
        myst_nb, "glue", lambda name, value, display=True: calls.update({name: value})
    )
    out = report.glue_numbers({"where": report.MarkdownText("`ln_f`"), "plain": "x"})
    assert isinstance(calls["where"], Markdown) and calls["where"].data == "`ln_f`"
    assert calls["plain"] == "x"  # an ordinary string stays text
    assert out == {"where": "`ln_f`", "plain": "x"}


def test_glue_record_rejects_non_records_and_unknown_exclusions() -> None:
    rec = _Result(1.0, {}, np.ones(3))
    with pytest.raises(TypeError, match="record"):
        report.record_numbers({"loss": 1.0})
    with pytest.raises(TypeError, match="record"):
        report.record_numbers(_Result)
    with pytest.raises(ValueError, match="curve2"):
        report.record_numbers(rec, exclude=("curve2",))
    with pytest.raises(ValueError, match="curve"):  # an array field not excluded
        report.glue_numbers(report.record_numbers(rec), prefix="x_")


def test_text_table_aligns_columns_and_checks_rows() -> None:
    table = report.text_table(
        [16, 256], {"1/d": [0.5, 0.25], "1/sqrt(d)": [1, 2]}, corner="d"
    )
    assert table.splitlines() == [
        "        d:       16     256",
        "      1/d:   0.5000  0.2500",
        "1/sqrt(d):   1.0000  2.0000",
    ]
    with pytest.raises(ValueError, match="'1/d'"):
        report.text_table([16, 256], {"1/d": [0.5]})
    with pytest.raises(ValueError, match="rows"):
        report.text_table([16], {})


def test_glue_helpers_return_a_mapping_that_displays_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a cell ending in a glue call must not show a dictionary of glue names
    import myst_nb
    from IPython.core.interactiveshell import InteractiveShell

    monkeypatch.setattr(myst_nb, "glue", lambda *a, **k: None)
    out = report.glue_inputs({"n": 3}, prefix="p_")
    assert out == {"p_n": 3} and isinstance(out, report.Glued)
    formatter = InteractiveShell.instance().display_formatter
    assert formatter.format(out) == ({}, {})
    assert formatter.format(dict(out))[0] == {
        "text/plain": "{'p_n': 3}"
    }  # a dict would
