"""Two builds of the book are byte-identical: figures, HTML and everything else.

The session's build (fixture ``built_site``: ``make test``'s ``make book``, clean on CI
where ``.ci/run`` removes ``_build``, incremental on a developer's machine) is compared
with a second clean build in another folder: two clean builds agree, and an incremental
build agrees with a clean one. Figures are checked first and separately, since they are what
unseeded randomness or timestamps would break.
"""

from __future__ import annotations

import difflib
import filecmp
import shutil
from pathlib import Path

import pytest

from conftest import build_book

pytestmark = pytest.mark.build


@pytest.fixture(scope="module")
def second_site(built_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean build in another folder, from the same inputs as the run's build: its
    sources, and the book's PDF when ``make pdf`` left one in ``<build>/pdf`` (the HTML
    build links and copies it)."""
    output = tmp_path_factory.mktemp("book-again")
    pdf = built_site.parent / "pdf"
    if pdf.is_dir():
        shutil.copytree(pdf, output / "_build" / "pdf")
    result = build_book(output)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output / "_build" / "html"


def _files(site: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(site)): p
        for p in sorted(site.rglob("*"))
        if p.is_file() and p.name != ".built"
    }


def test_figures_are_byte_identical(built_site: Path, second_site: Path) -> None:
    first = {k: v for k, v in _files(built_site).items() if k.startswith("_images/")}
    second = {k: v for k, v in _files(second_site).items() if k.startswith("_images/")}
    assert first, "the build wrote no figures"
    assert sorted(first) == sorted(second), (
        "the two builds wrote different figure files"
    )
    different = [
        name for name in first if first[name].read_bytes() != second[name].read_bytes()
    ]
    assert not different, f"figures differ between builds: {different}"


def test_whole_site_is_byte_identical(built_site: Path, second_site: Path) -> None:
    first, second = _files(built_site), _files(second_site)
    assert sorted(first) == sorted(second)
    different = [
        name
        for name in first
        if not filecmp.cmp(first[name], second[name], shallow=False)
    ]
    assert not different, (
        f"files differ between builds: {different[:20]}\n"
        + _first_lines(
            first[different[0]] if different else None,
            second[different[0]] if different else None,
        )
    )


def _first_lines(a: Path | None, b: Path | None, limit: int = 40) -> str:
    """The first ``limit`` lines of a unified diff of two text files (tags split onto
    their own lines, so one changed attribute shows as one line), or "" for binary
    files: what differed is in the failure message, not only which file."""
    if a is None or b is None:
        return ""
    try:
        old = a.read_text(encoding="utf-8").replace("><", ">\n<").splitlines()
        new = b.read_text(encoding="utf-8").replace("><", ">\n<").splitlines()
    except UnicodeDecodeError:
        return ""
    diff = difflib.unified_diff(old, new, str(a), str(b), n=1, lineterm="")
    return "\n".join(line[:300] for line in list(diff)[:limit])
