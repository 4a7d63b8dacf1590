"""What an incremental build reads and writes again (behaviour, not timings).

Figure numbers: ``_ext/numscale_incremental.py`` numbers figures from each page's skeleton
(its sections, toctrees and numbered nodes), kept while the page's doctree is unchanged.
A book of two numbered chapters with captioned tables: after a table is added at the
top of the first, its tables are renumbered and the second chapter, not read again,
keeps its number, as in a clean build, and its index entry in the search index.

Helper modules: which pages an edit of a helper module makes Sphinx read again.

A small throw-away book uses the real extensions ``_ext/numscale_api.py`` and
``_ext/numscale_listings.py``: a package reference page (the ``numscale-api``
directive: autodoc of every module, viewcode [source] pages) and a page showing one
function with ``literalinclude :pyobject:``.
Each step edits the module, rebuilds, and checks the pages Sphinx read and that what the
site shows is the edited text:

* a comment outside the shown function: no page is read, yet the module's [source]
  page shows the new comment;
* a comment inside the shown function: only the page showing it is read;
* a docstring, or a ``#:`` comment documenting a constant: only the reference is read.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from conftest import build_book, write_toy_book_config

# Each test builds a small book with Sphinx several times: part of ``make test``'s
# claims phase, not of ``make check``.
pytestmark = pytest.mark.build

MODULE = textwrap.dedent('''\
    """A toy module."""

    #: How many things there are.
    COUNT = 3


    def shown(x: int) -> int:
        """Double ``x``."""
        return 2 * x


    def other(x: int) -> int:
        """Add one to ``x``."""
        return x + 1
    ''')

READ = re.compile(r"reading sources\.\.\. \[\s*\d+%\] (\S+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def api_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    book = tmp_path_factory.mktemp("apibook")
    (book / "src" / "toypkg").mkdir(parents=True)
    (book / "src" / "toypkg" / "__init__.py").write_text("")
    (book / "src" / "toypkg" / "base.py").write_text(MODULE)
    (book / "intro.md").write_text("# Toy book\n\nNo code here.\n")
    (book / "reference.md").write_text(
        "# Reference\n\n```{eval-rst}\n.. numscale-api::\n```\n"
    )
    (book / "shows.md").write_text(
        "# Shows\n\n```{literalinclude} src/toypkg/base.py\n"
        ":pyobject: shown\n:language: python\n```\n"
    )
    write_toy_book_config(
        book,
        ["reference", "shows"],
        ("numscale_api", "numscale_listings"),
        {
            "numscale_src_dir": "src",
            "numscale_package": "toypkg",
            "numscale_api_pages": "*.md",
        },
        exclude=["src"],
    )
    return book


def _build(book: Path) -> set[str]:
    """Build ``book`` (strict); the pages Sphinx read."""
    result = build_book(book, source=book)
    output = ANSI.sub("", result.stdout + result.stderr)
    assert result.returncode == 0, output[-3000:]
    return set(READ.findall(output))


def _edit_and_build(book: Path, old: str, new: str) -> set[str]:
    module = book / "src" / "toypkg" / "base.py"
    text = module.read_text()
    assert old in text
    module.write_text(text.replace(old, new))
    return _build(book)


def _site(book: Path, page: str) -> str:
    return (book / "_build" / "html" / page).read_text(encoding="utf-8")


def test_module_edits_read_only_the_pages_showing_them(api_book: Path) -> None:
    # The first build reads every page; a rebuild with nothing changed reads none.
    assert _build(api_book) == {"intro", "reference", "shows"}
    assert _build(api_book) == set()
    source_page = "_modules/toypkg/base.html"
    assert "How many things" in _site(api_book, source_page)

    # A comment outside the shown function (and a blank line): no page is read, and
    # the module's [source] page, which shows every comment, shows the new one.
    assert (
        _edit_and_build(
            api_book, "    return x + 1\n", "    return x + 1\n\n# A closing remark.\n"
        )
        == set()
    )
    assert "A closing remark." in _site(api_book, source_page)

    # A comment inside the shown function: the page showing it is read again (and shows
    # it); the reference, which shows no comment of it, is not.
    assert _edit_and_build(
        api_book, "    return 2 * x\n", "    # twice\n    return 2 * x\n"
    ) == {"shows"}
    assert "twice" in _site(api_book, "shows.html")
    assert "twice" in _site(api_book, source_page)

    # A docstring of a function no page shows: only the reference is read again.
    assert _edit_and_build(api_book, "Add one to", "Add exactly one to") == {
        "reference"
    }
    assert "Add exactly one to" in _site(api_book, "reference.html")

    # A ``#:`` comment is a constant's documentation: the reference is read again.
    assert _edit_and_build(api_book, "#: How many things", "#: How many items") == {
        "reference"
    }
    assert "How many items" in _site(api_book, "reference.html")
    assert "How many items" in _site(api_book, source_page)


def _table(caption: str, name: str) -> str:
    return f"```{{table}} {caption}\n:name: {name}\n\n| a |\n|---|\n| 1 |\n```\n"


@pytest.fixture(scope="module")
def figure_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    book = tmp_path_factory.mktemp("figurebook")
    (book / "intro.md").write_text("# Toy book\n\nNo tables here.\n")
    (book / "first.md").write_text(
        "# First\n\nSee {numref}`tab-second`, zebraword.\n\n" + _table("One", "tab-one")
    )
    (book / "second.md").write_text(
        "# Second\n\n```{index} single: toyterm\n```\n\n"
        + _table("Other", "tab-second")
    )
    write_toy_book_config(
        book, ["first", "second"], "numscale_incremental", numbered=True
    )
    return book


def test_figure_numbers_of_pages_not_read_are_kept(figure_book: Path) -> None:
    assert _build(figure_book) == {"intro", "first", "second"}
    assert "Table 1.1" in _site(figure_book, "first.html")
    assert "Table 2.1" in _site(figure_book, "first.html")  # the reference to second's
    assert "Table 2.1" in _site(figure_book, "second.html")
    assert _build(figure_book) == set()

    # A table added at the top of the first chapter: its own becomes 1.2; the second
    # chapter is not read again and its table is still 2.1 (in its page and where the
    # first chapter refers to it).
    first = figure_book / "first.md"
    text = first.read_text()
    assert '"zebraword"' in _site(figure_book, "searchindex.js")
    text = text.replace(", zebraword", "")  # and a word it had is gone
    first.write_text(text.replace("See ", _table("New", "tab-new") + "\nSee ", 1))
    assert _build(figure_book) == {"first"}
    html = _site(figure_book, "first.html")
    assert "Table 1.1" in html and "Table 1.2" in html
    assert "Table 2.1" in html
    assert "Table 2.1" in _site(figure_book, "second.html")
    assert "Table 2.2" not in _site(figure_book, "second.html")
    # The search index still has the index entry of the page it did not write again
    # (Sphinx 7.4 alone loses it: sphinx-doc/sphinx#12599).
    assert '"toyterm"' in _site(figure_book, "searchindex.js")
    # ... and no longer the word no page has (not even with an empty list of pages).
    assert "zebraword" not in _site(figure_book, "searchindex.js")
