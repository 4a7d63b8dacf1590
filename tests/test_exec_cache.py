"""Which pages the build re-executes after which edit (behaviour, not timings), and what
a failed build, a missing MathJax and the page dates look like.

A small throw-away book uses the real extension ``_ext/numscale_execute.py`` (with
``numscale_mathjax.py`` and ``numscale_reproducible.py``): pages import a toy package
whose modules import each other. Each test edits one file, rebuilds, and checks the set
of pages the extension executed (its report) and that the rendered output is fresh.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import ROOT, build_book, write_toy_book_config

# Each test builds a small book with Sphinx (seconds per build, several builds): part of
# ``make test`` (its claims phase), not of ``make check``'s fast loop.
pytestmark = pytest.mark.build

HEADER = textwrap.dedent(
    """\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
    kernelspec:
      display_name: Python 3
      language: python
      name: python3
    ---
    """
)

MODULES = {
    "__init__.py": "",
    "base.py": "VALUE = 1\n",
    "derived.py": "from toypkg import base\n\nVALUE = base.VALUE * 10\n",
    "relative.py": "from .derived import VALUE as DERIVED\n\nVALUE = DERIVED + 1\n",
    "other.py": "VALUE = 7\n",
    "sourced.py": 'import os\n\nSOURCE = os.environ.get("TOY_SOURCE", "none")\n',
}

PAGES = {
    "uses_base": "from toypkg import base\nprint('uses_base', base.VALUE)",
    "uses_derived": "import toypkg.derived as derived\nprint('uses_derived', derived.VALUE)",
    "uses_relative": "from toypkg.relative import VALUE\nprint('uses_relative', VALUE)",
    "uses_other": "from toypkg import other\nprint('uses_other', other.VALUE)",
    "uses_source": "from toypkg import sourced\nprint('uses_source', sourced.SOURCE)",
    "plain": "print('plain', 2 + 2)",
}


def _page(name: str, code: str, prose: str = "Some prose.") -> str:
    return f"{HEADER}\n# Page {name}\n\n{prose}\n\n```{{code-cell}} ipython3\n{code}\n```\n"


def _write_toc_and_config(
    book: Path,
    title: str,
    chapters: list[str],
    mathjax_dir: str | Path,
    extra_config: dict[str, str] | None = None,
) -> None:
    """The toy book's _toc.yml (intro, then ``chapters``) and _config.yml: executed
    with the cache, built with numscale_execute (and the MathJax and page-date
    extensions) for the package ``toypkg`` in ``src``;
    ``extra_config`` is more of its Sphinx config."""
    write_toy_book_config(
        book,
        chapters,
        ("numscale_execute", "numscale_mathjax", "numscale_reproducible"),
        {
            "numscale_src_dir": "src",
            "numscale_package": "toypkg",
            "numscale_mathjax_dir": mathjax_dir,
            "mathjax_path": "mathjax/tex-chtml.js",
            **(extra_config or {}),
        },
        title=title,
        execute={"execute_notebooks": "cache", "raise_on_error": True},
    )


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    book = tmp_path_factory.mktemp("toybook")
    (book / "src" / "toypkg").mkdir(parents=True)
    for name, text in MODULES.items():
        (book / "src" / "toypkg" / name).write_text(text)
    for name, code in PAGES.items():
        (book / f"{name}.md").write_text(_page(name, code))
    (book / "intro.md").write_text("# Toy book\n\nNo code here, but maths: $x^2$.\n")
    _write_toc_and_config(
        book, "Toy", list(PAGES), ROOT / "node_modules" / "mathjax" / "es5"
    )
    return book


#: What ipykernel logs when the kernel's sockets are TCP (the build uses IPC instead).
TCP_WARNING = "Kernel is running over TCP without encryption"


def _build(book: Path, **env: str) -> set[str]:
    result = build_book(book, source=book, env={"TOY_SOURCE": "a", **env})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert TCP_WARNING not in result.stdout + result.stderr
    report = json.loads(
        (book / "_build" / ".numscale_exec" / "report.json").read_text()
    )
    return set(report["executed"])


def _html(book: Path, page: str) -> str:
    return (book / "_build" / "html" / f"{page}.html").read_text()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def _edit_and_build(
    book: Path,
    path: Path,
    old: str,
    new: str,
    executed: set[str],
    shown: tuple[tuple[str, str], ...] = (),
) -> None:
    """Replace ``old`` by ``new`` in ``path``, rebuild ``book``: exactly the pages
    ``executed`` run, and each (page, text) of ``shown`` is in that page's HTML."""
    _edit(path, old, new)
    assert _build(book) == executed
    for page, text in shown:
        assert text in _html(book, page)


def test_invalidation_sequence(toy_book: Path) -> None:
    src = toy_book / "src" / "toypkg"
    # A cold build executes every page with code, and nothing else.
    assert _build(toy_book) == set(PAGES)
    # A rebuild with nothing changed executes nothing.
    assert _build(toy_book) == set()

    # Editing a module re-executes the pages importing it directly or through other modules
    # (derived imports base; relative imports derived with a relative import) and no others,
    # and their outputs are fresh, not the cached ones.
    importers_of_base = {"uses_base", "uses_derived", "uses_relative"}
    _edit_and_build(
        toy_book,
        src / "base.py",
        "VALUE = 1",
        "VALUE = 2",
        importers_of_base,
        (("uses_derived", "uses_derived 20"), ("uses_relative", "uses_relative 21")),
    )
    _edit_and_build(
        toy_book,
        src / "other.py",
        "VALUE = 7",
        "VALUE = 8",
        {"uses_other"},
        (("uses_other", "uses_other 8"),),
    )

    # Comments and blank lines are not code: editing them in an imported module (even in
    # base, imported by three pages) re-executes nothing ...
    _edit_and_build(
        toy_book,
        src / "base.py",
        "VALUE = 2",
        "# The base value.\n\nVALUE = 2  # doubled\n",
        set(),
    )
    # ... while a change of behaviour still re-executes every importer.
    _edit_and_build(
        toy_book,
        src / "base.py",
        "VALUE = 2  # doubled",
        "VALUE = 3  # tripled",
        importers_of_base,
        (("uses_relative", "uses_relative 31"),),
    )

    # Editing one page's code re-executes only that page.
    _edit_and_build(
        toy_book,
        toy_book / "plain.md",
        "2 + 2",
        "3 + 3",
        {"plain"},
        (("plain", "plain 6"),),
    )

    # Editing prose only re-renders the page without executing anything.
    _edit_and_build(
        toy_book,
        toy_book / "uses_other.md",
        "Some prose.",
        "Other prose.",
        set(),
        (("uses_other", "Other prose."), ("uses_other", "uses_other 8")),
    )

    # An environment variable a module reads is part of the key of the pages importing it.
    assert _build(toy_book, TOY_SOURCE="b") == {"uses_source"}
    assert "uses_source b" in _html(toy_book, "uses_source")


def test_local_mathjax_is_served(toy_book: Path) -> None:
    """With node_modules/mathjax present (``make`` installs it), pages load the copy in
    the built site, which works offline."""
    if not (ROOT / "node_modules" / "mathjax" / "es5" / "tex-chtml.js").is_file():
        pytest.skip(
            "node_modules/mathjax is not installed (make installs it with npm ci)"
        )
    site = toy_book / "_build" / "html"
    if not (site / "intro.html").is_file():
        _build(toy_book)
    assert 'src="_static/mathjax/tex-chtml.js' in (site / "intro.html").read_text()
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


# ------------------------------------------------------------- a second, smaller book

CHECKED = textwrap.dedent("""\
    import os


    class ToyError(ValueError):
        \"\"\"A source the reader named cannot be used.\"\"\"


    SOURCE = os.environ.get("TOY_SOURCE", "none")
    if SOURCE == "bad":
        raise ToyError("TOY_SOURCE=bad: no such file or folder")
    """)


@pytest.fixture()
def small_book(tmp_path: Path) -> Path:
    """Two pages with code (one depends on TOY_SOURCE), maths in the intro, MathJax
    *not* installed (as for a reader who never ran npm), in a git repository whose
    commit has a known date."""
    book = tmp_path / "small"
    (book / "src" / "toypkg").mkdir(parents=True)
    (book / "src" / "toypkg" / "__init__.py").write_text("")
    (book / "src" / "toypkg" / "checked.py").write_text(CHECKED)
    (book / "intro.md").write_text(
        "# Small book\n\nInline maths $e^{i\\pi} + 1 = 0$.\n"
    )
    first = "import math\nprint('first', math.pi)"
    second = "from toypkg import checked\nprint('second', checked.SOURCE)"
    (book / "first.md").write_text(_page("first", first))
    (book / "second.md").write_text(
        _page("second", second, prose="Line one.\n\nLine two.")
    )
    _write_toc_and_config(
        book,
        "Small",
        ["first", "second"],
        "node_modules/mathjax/es5",
        extra_config={"html_last_updated_fmt": "%Y-%m-%d"},
    )
    return book


def _git(book: Path, *args: str, date: str | None = None) -> None:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    if date:
        env |= {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(
        ["git", "-C", str(book), *args], check=True, capture_output=True, env=env
    )


def test_plain_build_without_mathjax_and_page_dates(small_book: Path) -> None:
    """No node_modules: the build still succeeds strictly, says so in one info line, and
    pages load MathJax from the CDN. "Last updated" is the page's last commit, or its
    file's time when it has uncommitted changes; not the day of the build."""
    _git(small_book, "init", "-q")
    _git(small_book, "add", ".")
    _git(small_book, "commit", "-q", "-m", "toy", date="2024-03-14T12:00:00+00:00")
    _edit(small_book / "second.md", "Line two.", "Line two, edited.")  # uncommitted
    edited = datetime(2023, 7, 1, 12, tzinfo=UTC).timestamp()
    os.utime(small_book / "second.md", (edited, edited))
    result = build_book(small_book, source=small_book, env={"TOY_SOURCE": "a"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("pages load MathJax from") == 1
    site = small_book / "_build" / "html"
    intro = (site / "intro.html").read_text()
    assert re.search(
        r'<script[^>]+src="https://cdn\.jsdelivr\.net/npm/mathjax@3/[^"]+"', intro
    )
    assert not (site / "_static" / "mathjax").exists()
    assert (
        "2024-03-14" in (site / "first.html").read_text()
    )  # committed, unchanged since
    second = (site / "second.html").read_text()
    assert (
        "2023-07-01" in second and "2024-03-14" not in second
    )  # uncommitted edit: its mtime


def test_failed_page_is_one_line_and_leaves_no_stale_page(small_book: Path) -> None:
    """A named source that cannot be used: the build fails with one line naming the page,
    the cell, the exception's class and its message; the page's old HTML is gone."""
    site = small_book / "_build" / "html"
    result = build_book(small_book, source=small_book, env={"TOY_SOURCE": "a"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "second a" in (site / "second.html").read_text()

    result = build_book(small_book, source=small_book, env={"TOY_SOURCE": "bad"})
    output = result.stdout + result.stderr
    assert result.returncode != 0
    fence = next(
        i
        for i, text in enumerate((small_book / "second.md").read_text().splitlines(), 1)
        if text.startswith("```{code-cell}")
    )
    line = f"second.md, code cell 1 (line {fence}): toypkg.checked.ToyError: TOY_SOURCE=bad: no such file or folder"
    errors = [text for text in output.splitlines() if "TOY_SOURCE=bad" in text]
    assert len(errors) == 1 and errors[0].endswith(line), output[-3000:]
    assert "Traceback" not in output and "----> " not in output
    # No stale page passes for a current one; the page that did not fail is still there.
    assert not (site / "second.html").exists()
    assert (site / "first.html").is_file()
    traceback_file = small_book / "_build" / ".numscale_exec" / "failed" / "second.txt"
    assert "ToyError" in traceback_file.read_text()

    # Fixed source: the page is executed and written again.
    result = build_book(small_book, source=small_book, env={"TOY_SOURCE": "b"})
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "second b" in (site / "second.html").read_text()
    assert not traceback_file.exists()
