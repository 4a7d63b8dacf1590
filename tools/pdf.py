"""The whole book as one PDF: the single-page HTML build printed by Chromium.

    python tools/pdf.py [--path-output DIR] [--pdf FILE] [--skip-build]

1. Builds the book with Sphinx's ``singlehtml`` builder into ``<DIR>/_build/singlehtml``
   (default DIR: the repository, as ``make book`` uses it), strictly (``-n -W``). The
   build shares ``<DIR>/_build/.jupyter_cache`` with the HTML build, so after
   ``make book`` no page is executed again; only the pages are read and written once more.
2. Serves that folder on loopback and opens it in /usr/bin/chromium (Playwright, the
   browser the tests use), light theme, waits until MathJax has typeset every formula and
   every figure has loaded and decoded, and fails if any formula or figure is missing.
3. Keeps the theme's table of contents (the parts and chapters, linked) at the front,
   starts every chapter on a new page and prints A4 pages with page numbers, PDF bookmarks (``outline``) and a tagged PDF, to
   ``<DIR>/_build/pdf/numscale-book.pdf`` (or ``--pdf``).

The HTML build links the PDF from every page's download menu ("Book (.pdf)") and copies
it to ``_build/html/numscale-book.pdf`` when ``_build/pdf/numscale-book.pdf`` exists as it
builds (``_ext/numscale_notebooks.py``): run ``make pdf`` before ``make book`` to publish
both. No TeX is needed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import SETTLE_JS, SiteServer, launch_chromium  # noqa: E402

PDF_NAME = "numscale-book.pdf"

#: After MathJax's first typeset and every image has decoded (SETTLE_JS): what is still
#: missing. Lazy images were made eager by SETTLE_JS.
CHECK_JS = r"""
() => {
  const maths = Array.from(document.querySelectorAll(".math"));
  const untypeset = maths.filter((el) => !el.querySelector("mjx-container")).map((el) => el.textContent.slice(0, 80));
  const figures = Array.from(document.querySelectorAll(".bd-article img, #jb-print-docs-body img, main img"));
  const broken = figures.filter((img) => !img.complete || img.naturalWidth === 0).map((img) => img.getAttribute("src"));
  return {maths: maths.length, untypeset, figures: figures.length, broken};
}
"""

#: The table of contents at the front: sphinx-book-theme prints one on the single page
#: (``#jb-print-toc``: the parts and their chapters, linked; the PDF keeps the links).
#: If a theme version lacks it, one is made from the chapter headings. Also unfolds
#: folded solutions.
TOC_JS = r"""
() => {
  document.querySelectorAll("details").forEach((d) => { d.open = true; });
  const theirs = document.querySelectorAll("#jb-print-toc a");
  if (theirs.length) return theirs.length;
  const article = document.querySelector("article.bd-article") || document.querySelector("main");
  const nav = document.createElement("nav");
  nav.id = "jb-print-toc";
  nav.setAttribute("aria-label", "Contents");
  nav.innerHTML = "<h2>Contents</h2>";
  const list = document.createElement("ul");
  for (const heading of article.querySelectorAll("section > h2")) {
    const id = heading.closest("section").id;
    if (!id || !heading.querySelector(".section-number")) continue;
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#" + id;
    link.textContent = heading.textContent.replace(/#\s*$/, "").trim();
    item.appendChild(link);
    list.appendChild(item);
  }
  nav.appendChild(list);
  article.prepend(nav);
  return list.children.length;
}
"""

#: Print layout: the article alone, full width, light colours, no buttons.
PRINT_CSS = r"""
@page { size: A4; margin: 18mm 16mm 20mm 16mm; }
.bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-footer, .bd-footer-article,
.bd-header-article, .header-article-items, .prev-next-area, .headerlink, .copybtn,
.toggle-button, button, .search-button, .theme-switch-button, footer, .bd-footer-content,
#pst-skip-link, .skip-link { display: none !important; }
.bd-main, .bd-content, .bd-article-container, article.bd-article, .bd-page-width, .bd-container,
.bd-container__inner { max-width: none !important; width: auto !important; margin: 0 !important;
  padding: 0 !important; display: block !important; }
#jb-print-docs-body { break-after: page; }
#jb-print-toc ul { list-style: none !important; padding-left: 1.2em !important; margin: 0.1em 0 0.5em !important; }
#jb-print-toc li { margin: 0 !important; padding: 0.1em 0 !important; }
#jb-print-toc .caption { margin: 0.7em 0 0.1em !important; font-weight: 600; }
section:has(> h2 > .section-number) > h2, section:has(> h1 > .section-number) > h1 { break-before: page; }
pre { white-space: pre-wrap !important; word-break: break-word; }
div.cell, figure, img, mjx-container[display="true"] { break-inside: avoid; }
"""

FOOTER = (
    '<div style="font-size:8px; width:100%; text-align:center; color:#555;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)


def _progress(message: str) -> None:
    print(f"pdf: {message}", flush=True)


def build_singlehtml(source: Path, path_output: Path) -> Path:
    """``jupyter-book build --builder singlehtml`` (strict); returns the output folder."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    command = [
        str(jupyter_book),
        "build",
        str(source),
        "--path-output",
        str(path_output),
        "--builder",
        "singlehtml",
        "-n",
        "-W",
        "--keep-going",
    ]
    result = subprocess.run(
        command, capture_output=True, text=True, env=os.environ.copy()
    )
    if result.returncode != 0:
        tail = "\n".join((result.stdout + "\n" + result.stderr).splitlines()[-40:])
        raise SystemExit(f"pdf: the single-page build failed:\n{tail}")
    return path_output / "_build" / "singlehtml"


def single_page(site: Path) -> str:
    """The page to print, relative to ``site``.

    The singlehtml builder writes the whole book into the root document's file
    (``book/intro.html``, which ``index.html`` redirects to) but with links relative to
    the build folder (``_static/...``, ``_images/...``): copied to the folder itself, as
    ``book.html``, every asset resolves.
    """
    redirect = (site / "index.html").read_text(encoding="utf-8")
    import re

    match = re.search(r'url=([^"\'>]+)', redirect)
    root_doc = site / (match.group(1) if match else "index.html")
    if root_doc.resolve() == (site / "index.html").resolve():
        return "index.html"
    (site / "book.html").write_text(
        root_doc.read_text(encoding="utf-8"), encoding="utf-8"
    )
    return "book.html"


def print_pdf(site: Path, pdf: Path) -> dict:
    """Print the single page of ``site`` to ``pdf``; returns what was checked."""
    from playwright.sync_api import sync_playwright

    pdf.parent.mkdir(parents=True, exist_ok=True)
    with SiteServer(site) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            context = browser.new_context(
                viewport={"width": 1000, "height": 1400},
                color_scheme="light",
                reduced_motion="reduce",
            )
            context.add_init_script(
                "try { localStorage.setItem('mode', 'light'); localStorage.setItem('theme', 'light'); } catch (e) {}"
            )
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            started = time.perf_counter()
            page.set_default_timeout(300_000)
            page.goto(server.url + single_page(site), wait_until="load")
            _progress(f"loaded in {time.perf_counter() - started:.0f} s; typesetting")
            page.wait_for_load_state("networkidle")
            page.evaluate(SETTLE_JS)
            page.wait_for_load_state("networkidle")
            _progress(f"typeset in {time.perf_counter() - started:.0f} s")
            checked = page.evaluate(CHECK_JS)
            if checked["untypeset"] or checked["broken"] or errors:
                raise SystemExit(
                    f"pdf: not ready to print: {len(checked['untypeset'])} formulas not typeset "
                    f"{checked['untypeset'][:3]}, figures not loaded {checked['broken'][:5]}, errors {errors[:3]}"
                )
            checked["typeset_seconds"] = time.perf_counter() - started
            checked["toc_entries"] = page.evaluate(TOC_JS)
            page.add_style_tag(content=PRINT_CSS)
            page.emulate_media(media="print")
            # Re-typesetting is not needed for print, but let layout settle after the CSS.
            page.wait_for_timeout(300)
            _progress("printing")
            page.pdf(
                path=str(pdf),
                format="A4",
                print_background=True,
                prefer_css_page_size=True,
                display_header_footer=True,
                header_template="<span></span>",
                footer_template=FOOTER,
                outline=True,
                tagged=True,
            )
            checked["print_seconds"] = (
                time.perf_counter() - started - checked["typeset_seconds"]
            )
            context.close()
        finally:
            browser.close()
    return checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the whole book to one PDF.")
    parser.add_argument(
        "--source", type=Path, default=ROOT, help="the book (default: this repository)"
    )
    parser.add_argument(
        "--path-output",
        type=Path,
        default=None,
        help="build folder parent, as for jupyter-book (default: the book)",
    )
    parser.add_argument(
        "--pdf",
        type=Path,
        default=None,
        help=f"output file (default <path-output>/_build/pdf/{PDF_NAME})",
    )
    parser.add_argument(
        "--skip-build", action="store_true", help="print an existing singlehtml build"
    )
    args = parser.parse_args(argv)
    path_output = (args.path_output or args.source).resolve()
    pdf = (args.pdf or path_output / "_build" / "pdf" / PDF_NAME).resolve()
    start = time.perf_counter()
    site = path_output / "_build" / "singlehtml"
    if not args.skip_build:
        site = build_singlehtml(args.source.resolve(), path_output)
    built = time.perf_counter()
    if not (site / "index.html").is_file():
        raise SystemExit(f"pdf: {site} has no index.html (run without --skip-build)")
    checked = print_pdf(site, pdf)
    done = time.perf_counter()
    print(
        f"pdf: wrote {pdf} ({pdf.stat().st_size / 1e6:.1f} MB): {checked['maths']} formulas typeset, "
        f"{checked['figures']} figures, {checked['toc_entries']} contents entries; "
        f"build {built - start:.0f} s, load and typeset {checked['typeset_seconds']:.0f} s, "
        f"print {checked['print_seconds']:.0f} s (total {done - start:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
