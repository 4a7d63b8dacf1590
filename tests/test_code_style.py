"""Code the book shows fits its code column: at most 88 characters a line.

88 is the formatter's line length (``[tool.ruff] line-length`` in pyproject.toml, stated in
CONTRIBUTING.md). Checked: every line of every code cell in ``book/*.md``, and every line of
package source that a chapter shows with ``literalinclude`` (the ``:pyobject:`` it names, the
``:lines:`` it selects, or the whole file). A longer line scrolls sideways on the page.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT, load_extension

API_SCAN = load_extension("numscale_api_scan")  # the build's reading of a code cell

LIMIT = 88
FENCE = re.compile(
    r"^(`{3,}|~{3,})\s*\{(code-cell|literalinclude)\}([^\n]*)\n(.*?)^\1\s*$",
    re.S | re.M,
)
PAGES = sorted((ROOT / "book").glob("*.md"))


def _blocks(page: Path, kind: str) -> list[tuple[int, str, str]]:
    """(line of the fence, argument, body) of each ``{kind}`` block of ``page``."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(3).strip(), match.group(4))
        for match in FENCE.finditer(text)
        if match.group(2) == kind
    ]


def _code_lines(body: str) -> list[tuple[int, str]]:
    """(offset in the block, text) of a code cell's code: its options, a ``---`` YAML block
    or ``:key: value`` lines at the top, are metadata the page does not show as code."""
    lines = body.splitlines()
    start = API_SCAN.code_start(lines)
    return [(i + 1, lines[i]) for i in range(start, len(lines))]


def _shown_lines(path: Path, options: dict[str, str]) -> list[tuple[int, str]]:
    """(line number, text) of the lines of ``path`` a literalinclude with ``options`` shows."""
    lines = path.read_text(encoding="utf-8").splitlines()
    if "pyobject" in options:
        tree = ast.parse("\n".join(lines))
        node: ast.AST = tree
        for part in options["pyobject"].split("."):
            node = next(
                child
                for child in ast.iter_child_nodes(node)
                if isinstance(
                    child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
                )
                and child.name == part
            )
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        return [(i, lines[i - 1]) for i in range(first, node.end_lineno + 1)]
    if "lines" in options:
        chosen: list[int] = []
        for piece in options["lines"].split(","):
            start, _, end = piece.strip().partition("-")
            chosen += (
                range(int(start or 1), int(end or len(lines)) + 1)
                if _
                else [int(start)]
            )
        return [(i, lines[i - 1]) for i in chosen if 0 < i <= len(lines)]
    return list(enumerate(lines, 1))


def test_line_length_is_the_formatters() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["ruff"]["line-length"] == LIMIT
    assert f"{LIMIT} characters" in (ROOT / "CONTRIBUTING.md").read_text()


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_code_cell_lines_fit_the_column(page: Path) -> None:
    long = [
        f"{page.name}:{fence + offset + 1}: {len(line)} chars: {line.strip()[:60]}"
        for fence, _, body in _blocks(page, "code-cell")
        for offset, line in _code_lines(body)
        if len(line) > LIMIT
    ]
    assert not long, (
        f"{len(long)} code line(s) longer than {LIMIT} characters:\n" + "\n".join(long)
    )


def _included() -> list[tuple[Path, int, Path, dict[str, str]]]:
    found = []
    for page in PAGES:
        for fence, argument, body in _blocks(page, "literalinclude"):
            path = (page.parent / argument).resolve()
            options = dict(re.findall(r"^:(\w+):\s*(.*?)\s*$", body, re.M))
            if path.suffix == ".py" and path.is_relative_to(ROOT / "src"):
                found.append((page, fence, path, options))
    return found


@pytest.mark.parametrize(
    "page, fence, path, options",
    _included(),
    ids=[f"{p.stem}:{o.get('pyobject', f.name)}" for p, _, f, o in _included()] or None,
)
def test_shown_package_source_fits_the_column(
    page: Path, fence: int, path: Path, options: dict[str, str]
) -> None:
    long = [
        f"{path.relative_to(ROOT)}:{number}: {len(line)} chars"
        for number, line in _shown_lines(path, options)
        if len(line) > LIMIT
    ]
    assert not long, (
        f"{page.name}:{fence} shows lines longer than {LIMIT} characters:\n"
        + "\n".join(long)
    )


def test_the_check_sees_a_long_line(tmp_path: Path) -> None:
    """The fence parser finds a code cell's lines (a check that cannot fail is no check)."""
    page = tmp_path / "p.md"
    page.write_text(
        "# P\n\n```{code-cell} ipython3\nx = 1\n" + "y = " + "1 + " * 30 + "1\n```\n"
    )
    bodies = [body for _, _, body in _blocks(page, "code-cell")]
    assert (
        len(bodies) == 1 and max(len(line) for line in bodies[0].splitlines()) > LIMIT
    )


PYTHON_TREES = ["src", "tests", "_ext", "tools"]


def _ruff(*args: str) -> subprocess.CompletedProcess:
    ruff = Path(sys.executable).with_name("ruff")
    return subprocess.run(
        [str(ruff), *args, *PYTHON_TREES],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_all_python_is_formatted():
    # one formatter for all code (line length 88, pyproject.toml): `ruff format` fixes it
    result = _ruff("format", "--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_all_python_passes_the_linter():
    # the rules of [tool.ruff.lint] in pyproject.toml: `ruff check --fix` fixes most
    result = _ruff("check", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
