"""The whole book as one PDF (``make pdf`` → ``tools/pdf.py``), read back with poppler.

The PDF is printed from the single-page build by Chromium. It is built once per session
from the session's book build (``built_site``: the single-page build reuses its
execution cache), or taken from ``NUMSCALE_TEST_PDF``. The checks read the file with
poppler-utils (``pdfinfo``, ``pdftotext``, ``pdfimages``; ``make browser`` installs
them with Chromium): a plausible page count, every chapter in order after a table of
contents, PDF bookmarks, no raw TeX in the text, and every figure printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser_support import ROOT, toc_docnames

pytestmark = [pytest.mark.build, pytest.mark.browser]

POPPLER = ("pdfinfo", "pdftotext", "pdfimages")
#: TeX that MathJax replaces: if any of it is left in the prose, maths was not typeset.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{|\\frac\{|\\sqrt\{|\\operatorname\{|\\mathbb\{|\\tfrac"
)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} not found: the PDF tests need poppler-utils (`make browser`, or "
            "`sudo apt-get install poppler-utils`)",
            pytrace=False,
        )
    return path


def _run(*command: str) -> str:
    return subprocess.run(command, capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="session")
def book_pdf(built_site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PDF, printed from a single-page build next to the session's build (which
    shares its execution cache and doctrees, so nothing is executed or read again).
    The file goes to a temporary folder, not ``<build>/pdf``: there the next HTML build
    would link it from every page, and the run's build would no longer be the one tested."""
    existing = os.environ.get("NUMSCALE_TEST_PDF")
    if existing:
        return Path(existing)
    path_output = built_site.parent.parent  # <out>/_build/html -> <out>
    pdf = tmp_path_factory.mktemp("pdf") / "numscale-book.pdf"
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "pdf.py"),
            "--source",
            str(ROOT),
            "--path-output",
            str(path_output),
            "--pdf",
            str(pdf),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, (
        f"tools/pdf.py failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return pdf


@pytest.fixture(scope="session")
def singlehtml(book_pdf: Path, built_site: Path) -> str:
    """The page that was printed: ``<build>/singlehtml`` of the session's build, or, for
    ``NUMSCALE_TEST_PDF``, next to that PDF's build folder."""
    build = (
        book_pdf.parent.parent
        if os.environ.get("NUMSCALE_TEST_PDF")
        else built_site.parent
    )
    site = build / "singlehtml"
    page = site / "book.html" if (site / "book.html").is_file() else site / "index.html"
    return page.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def pdf_text(book_pdf: Path) -> str:
    return _run(_tool("pdftotext"), "-enc", "UTF-8", str(book_pdf), "-")


@pytest.fixture(scope="session")
def pdf_pages(book_pdf: Path) -> int:
    info = _run(_tool("pdfinfo"), str(book_pdf))
    return int(re.search(r"^Pages:\s+(\d+)", info, re.M).group(1))


def _chapter_titles(singlehtml: str) -> list[str]:
    """Titles of the chapters, in reading order, from the printed table of contents
    (``#jb-print-toc``: "1. Dot products grow with dimension", ...)."""
    import html

    toc = re.search(r'<div id="jb-print-toc">(.*?)</nav>', singlehtml, re.S)
    if toc:
        links = re.findall(r"<a [^>]*>(.*?)</a>", toc.group(1), re.S)
    else:
        # The theme left its print contents empty: tools/pdf.py (TOC_JS) then builds the
        # contents from the numbered chapter headings, so those are the titles to find.
        links = re.findall(
            r'<h2><span class="section-number">(.*?)</h2>', singlehtml, re.S
        )
        links = [
            re.sub(r'<a class="headerlink".*', "", link, flags=re.S) for link in links
        ]
    assert links, "the printed page has no table of contents and no numbered chapters"
    return [
        re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", t))).strip()
        for t in links
    ]


def _numbered_chapters() -> list[str]:
    """Chapters of the numbered parts of ``_toc.yml`` (each prints as "N. Title")."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [
        chapter["file"]
        for part in toc.get("parts", [])
        if part.get("numbered")
        for chapter in part["chapters"]
    ]


def _squash(text: str) -> str:
    """Text without spaces and hyphens: line breaks and hyphenation in the PDF
    ("QK-normalization" split as "QK-" / "normalization") do not matter."""
    return re.sub(r"[\s\-\u00ad\u2010\u2011]+", "", text)


def test_page_count_is_plausible(pdf_pages, singlehtml):
    pages = toc_docnames(ROOT)
    # Every chapter starts on a new page, after the contents: at least one page each.
    # An upper bound of 25 A4 pages per page of the book would mean a broken layout (e.g.
    # one formula or figure per page); the book's longest chapter prints on about 15.
    assert len(pages) + 1 <= pdf_pages <= 25 * len(pages), (
        f"{pdf_pages} pages for {len(pages)} pages of the book"
    )


def test_contents_then_every_chapter_in_order(pdf_text, singlehtml):
    """The PDF opens with a table of contents listing every chapter, in order, and then
    has every chapter, in the same order."""
    titles = _chapter_titles(singlehtml)
    numbered = [t for t in titles if re.match(r"\d+\.\s", t)]
    assert len(numbered) == len(_numbered_chapters()), f"contents: {titles}"
    flat = _squash(pdf_text)
    titles = [_squash(t) for t in titles]
    contents = flat.find("Contents")
    assert 0 <= contents < len(flat) // 20, "no table of contents at the front"
    position = contents
    for title in titles:  # the contents
        found = flat.find(title, position)
        assert found >= 0, f"{title!r} not listed in the contents (in order)"
        position = found + len(title)
    end_of_contents = position
    assert end_of_contents < len(flat) // 10, "the contents do not fit the first pages"
    for title in titles:  # the chapters themselves
        found = flat.find(title, position)
        assert found >= 0, (
            f"chapter {title!r} missing from the PDF after the contents (or out of order)"
        )
        position = found + len(title)


def test_pdf_has_bookmarks(book_pdf, singlehtml):
    """Chromium's ``outline`` option writes the headings as PDF bookmarks: the catalog
    has an /Outlines tree with at least one entry per chapter (/Title strings; Skia
    writes the outline uncompressed)."""
    data = book_pdf.read_bytes()
    assert b"/Outlines" in data, "the PDF has no bookmarks"
    assert data.count(b"/Title") >= len(_chapter_titles(singlehtml)), (
        "fewer bookmarks than chapters"
    )


def test_no_raw_tex(pdf_text, singlehtml):
    """Raw TeX in the printed text means MathJax had not typeset it. Code listings may
    legitimately contain TeX (matplotlib labels): the PDF may hold as many of each TeX
    token as the code blocks of the printed page, and no more."""
    import html

    code = " ".join(
        html.unescape(re.sub(r"<[^>]+>", "", block))
        for block in re.findall(r"<pre[^>]*>(.*?)</pre>", singlehtml, re.S)
    )
    in_code: dict[str, int] = {}
    for match in RAW_TEX.finditer(code):
        in_code[match.group(0)] = in_code.get(match.group(0), 0) + 1
    in_pdf: dict[str, int] = {}
    for match in RAW_TEX.finditer(pdf_text):
        in_pdf[match.group(0)] = in_pdf.get(match.group(0), 0) + 1
    extra = {
        token: n - in_code.get(token, 0)
        for token, n in in_pdf.items()
        if n > in_code.get(token, 0)
    }
    assert not extra, f"raw TeX in the PDF beyond what the code blocks contain: {extra}"


def test_every_figure_is_printed(book_pdf, pdf_text, singlehtml):
    """Every figure of the page is in the PDF: its caption ("Fig. N.M") is in the text,
    and the PDF holds at least as many images as the page has figures (Chromium prints
    each figure's SVG with its raster parts as images; pdfimages lists them)."""
    figures = re.findall(r"<figure[^>]*>.*?</figure>", singlehtml, re.S)
    numbers = sorted({m for f in figures for m in re.findall(r"Fig\. (\d+\.\d+)", f)})
    assert figures and numbers, "no numbered figures in the printed page"
    missing = [n for n in numbers if f"Fig. {n}" not in pdf_text]
    assert not missing, f"figure captions missing from the PDF: {missing}"
    listing = _run(_tool("pdfimages"), "-list", str(book_pdf)).splitlines()[2:]
    images = [line.split() for line in listing if line.split()[2:3] == ["image"]]
    assert len(images) >= len(figures), (
        f"{len(images)} images in the PDF for {len(figures)} figures"
    )
