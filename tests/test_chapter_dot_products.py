"""Chapter checks for book/dot_products.md, and source checks shared by the chapters of
issue 9/13 that show helper code (imported by the other tests/test_chapter_*.py files).

The glued values of this chapter are asserted in tests/test_build.py (EXPECTED); here:
every code line of the page fits the book's 88-character code column.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import jupytext

ROOT = Path(__file__).resolve().parents[1]
CODE_COLUMN = 88  # characters: the book's code column (CONTRIBUTING / issue 13)
LITERALINCLUDE = re.compile(
    r"```\{literalinclude\}\s+\.\./src/(?P<path>[\w/]+)\.py\s*\n:pyobject:\s*(?P<name>\w+)"
)


def long_code_lines(page: str) -> list[str]:
    """Lines of the page's code cells longer than the code column."""
    notebook = jupytext.read(ROOT / f"{page}.md")
    return [line for cell in notebook.cells if cell.cell_type == "code"
            for line in cell.source.splitlines() if len(line) > CODE_COLUMN]


def shown_functions(page: str) -> list[tuple[str, str]]:
    """(module, function name) of every ``literalinclude :pyobject:`` in the page."""
    text = (ROOT / f"{page}.md").read_text(encoding="utf-8")
    return [(m["path"].replace("/", "."), m["name"]) for m in LITERALINCLUDE.finditer(text)]


def check_shown_sources(page: str, expected: set[tuple[str, str]]) -> None:
    """The page shows exactly ``expected``; each is a function of the package whose source
    (what Sphinx includes: inspect.getsource of the same object) fits the code column."""
    shown = shown_functions(page)
    assert set(shown) == expected, f"{page} shows {shown}"
    for module_name, name in shown:
        function = getattr(importlib.import_module(module_name), name)
        assert inspect.isfunction(function), f"{module_name}.{name} is not a function"
        source = inspect.getsource(function)
        too_long = [line for line in source.splitlines() if len(line) > CODE_COLUMN]
        assert not too_long, f"{module_name}.{name} has lines over {CODE_COLUMN}: {too_long}"


def test_code_lines_fit_the_column():
    assert long_code_lines("book/dot_products") == []
