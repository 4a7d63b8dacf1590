"""Which pages the build re-executes after which edit (behaviour, not timings).

A small throw-away book uses the real extension ``_ext/numscale_build.py``: pages import a
toy package whose modules import each other. Each test edits one file, rebuilds, and checks
the set of pages the extension executed (its report) and that the rendered output is fresh.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, build_book

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
    "sourced.py": "import os\n\nSOURCE = os.environ.get(\"TOY_SOURCE\", \"none\")\n",
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


@pytest.fixture(scope="module")
def toy_book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    book = tmp_path_factory.mktemp("toybook")
    (book / "src" / "toypkg").mkdir(parents=True)
    for name, text in MODULES.items():
        (book / "src" / "toypkg" / name).write_text(text)
    for name, code in PAGES.items():
        (book / f"{name}.md").write_text(_page(name, code))
    (book / "intro.md").write_text("# Toy book\n\nNo code here.\n")
    chapters = "\n".join(f"  - file: {name}" for name in PAGES)
    (book / "_toc.yml").write_text(f"format: jb-book\nroot: intro\nchapters:\n{chapters}\n")
    (book / "_config.yml").write_text(textwrap.dedent(f"""\
        title: Toy
        only_build_toc_files: true
        exclude_patterns: [".*", "**/.*", "_build"]
        execute:
          execute_notebooks: cache
          raise_on_error: true
        sphinx:
          local_extensions:
            numscale_build: {ROOT / '_ext'}
          config:
            numscale_src_dir: src
            numscale_package: toypkg
            numscale_mathjax_dir: {ROOT / 'node_modules' / 'mathjax' / 'es5'}
        """))
    return book


def _build(book: Path, **env: str) -> set[str]:
    result = build_book(book, source=book, env={"TOY_SOURCE": "a", **env})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((book / "_build" / ".numscale_exec" / "report.json").read_text())
    return set(report["executed"])


def _html(book: Path, page: str) -> str:
    return (book / "_build" / "html" / f"{page}.html").read_text()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_invalidation_sequence(toy_book: Path) -> None:
    src = toy_book / "src" / "toypkg"
    # A cold build executes every page with code, and nothing else.
    assert _build(toy_book) == set(PAGES)
    # A rebuild with nothing changed executes nothing.
    assert _build(toy_book) == set()

    # Editing a module re-executes the pages importing it directly or through other modules
    # (derived imports base; relative imports derived with a relative import) and no others.
    _edit(src / "base.py", "VALUE = 1", "VALUE = 2")
    assert _build(toy_book) == {"uses_base", "uses_derived", "uses_relative"}
    # ... and their outputs are fresh, not the cached ones.
    assert "uses_derived 20" in _html(toy_book, "uses_derived")
    assert "uses_relative 21" in _html(toy_book, "uses_relative")

    _edit(src / "other.py", "VALUE = 7", "VALUE = 8")
    assert _build(toy_book) == {"uses_other"}
    assert "uses_other 8" in _html(toy_book, "uses_other")

    # Editing one page's code re-executes only that page.
    _edit(toy_book / "plain.md", "2 + 2", "3 + 3")
    assert _build(toy_book) == {"plain"}
    assert "plain 6" in _html(toy_book, "plain")

    # Editing prose only re-renders the page without executing anything.
    _edit(toy_book / "uses_other.md", "Some prose.", "Other prose.")
    assert _build(toy_book) == set()
    assert "Other prose." in _html(toy_book, "uses_other")
    assert "uses_other 8" in _html(toy_book, "uses_other")

    # An environment variable a module reads is part of the key of the pages importing it.
    assert _build(toy_book, TOY_SOURCE="b") == {"uses_source"}
    assert "uses_source b" in _html(toy_book, "uses_source")


def test_cell_error_fails_the_build(tmp_path: Path, toy_book: Path) -> None:
    book = tmp_path / "broken"
    shutil.copytree(toy_book, book, ignore=shutil.ignore_patterns("_build"))
    _edit(book / "plain.md", "print('plain', 3 + 3)", "raise RuntimeError('boom from a cell')")
    result = build_book(book, source=book)
    assert result.returncode != 0
    assert "boom from a cell" in result.stdout + result.stderr
