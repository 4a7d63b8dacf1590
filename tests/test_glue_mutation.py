"""tests/glue_mutation.py: what the check counts (the plugin itself runs in `make test`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import glue_mutation
from glue_mutation import Target


def test_a_page_built_without_its_data_is_listed_but_not_counted() -> None:
    # a stranger's machine without GPT-2's tensors builds gpt2_qk as a note: its chapter
    # tests skip, so its quoted numbers must neither count as unguarded nor as guarded
    targets = {
        "a": Target("book/x", "result", 2.0, caught={0, 1}),
        "b": Target("book/x", "result", 3.0),
        "c": Target("book/x", "input", 7),
        "q1": Target("book/gpt2_qk", "no data"),
        "q2": Target("book/gpt2_qk", "no data"),
    }
    text, overall = glue_mutation.table(targets)
    assert overall == 0.5  # a guarded, b not; the two no-data names left out
    lines = text.splitlines()
    assert "| gpt2_qk | 2 | built without its data: not checked" in lines[2]
    assert lines[3].startswith("| x | 3 | 1 | 0 | 2 | 1 | 50 |")
    assert lines[-1].startswith("| **all** | 3 | 1 | 0 | 2 | 1 | 50 |")


def test_find_targets_marks_the_pages_the_build_replaced(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import conftest
    import test_build

    monkeypatch.setattr(
        conftest, "pages_without_data", lambda site: frozenset({"book/gpt2_qk"})
    )

    def no_notebook(site: Path, page: str):
        raise FileNotFoundError(page)  # what a replaced page (no notebook) gives

    monkeypatch.setattr(test_build, "glued_values", no_notebook)
    targets = glue_mutation.find_targets(tmp_path)
    on_page = [t for t in targets.values() if t.page == "book/gpt2_qk"]
    assert on_page and all(t.kind == "no data" for t in on_page)
    # every other quoting page, read from no notebook at all, stays "missing": counted
    others = [t for t in targets.values() if t.page != "book/gpt2_qk"]
    assert others and all(t.kind == "missing" for t in others)
