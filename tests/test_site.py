"""The built site in a real browser (Chromium via Playwright), as a reader gets it.

Every page of the toc plus ``search.html`` is opened four times from a loopback server:
in the light and the dark theme as a returning reader has stored it, and as a first
visit (a fresh browser context, empty storage) with the system scheme light or dark
(``VISITS``). One visit records console messages, page errors, every request, the
images, the maths, the colours and an axe-core run (including the experimental
"label-content-name-mismatch" rule), and the tests below assert on that record.
Separate visits check that no code block scrolls sideways at a desktop (1300 px) and a
laptop (1280 px) window, search, the phone layout, the notebook/launch buttons and the
PDF link. The build is the session's ``built_site`` (``NUMSCALE_TEST_SITE`` reuses one).

One Chromium serves the whole module (closed when the module ends). Chromium must be at
/usr/bin/chromium (``make test`` installs it): if it is missing the tests fail with that
message; nothing is skipped.
"""

from __future__ import annotations

import colorsys
import html
import json
import re
from collections import Counter
from pathlib import Path
from urllib.parse import urljoin

import pytest
import yaml

from browser_support import (
    CODE_OVERFLOW_JS,
    CODE_WIDTHS,
    MODES,
    PHONE,
    SETTLE_JS,
    VISITS,
    ROOT,
    SiteServer,
    launch_chromium,
    new_context,
    notebook_docnames,
    repository_branch,
    repository_url,
    run_axe,
    toc_docnames,
    visit,
    visit_mode,
)

PAGES = [f"{name}.html" for name in toc_docnames()] + ["search.html"]
CHAPTERS = notebook_docnames()
SERIOUS = {"serious", "critical"}
#: Raw TeX that MathJax should have replaced: display and inline delimiters, commands.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\[A-Za-z]{2,}|(?<![\w$])\$[^$\s][^$\n]{0,80}?\$(?!\w)")
GENERIC_ALT = re.compile(
    r"^(image|figure|fig|img|plot|graph|chart|output|picture|png|svg|jpe?g|untitled|\S+\.(png|svg|jpe?g|gif|webp))$",
    re.IGNORECASE,
)


# ----------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def site_url(built_site: Path):
    with SiteServer(built_site) as server:
        yield server.url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        try:
            chromium = launch_chromium(playwright)
        except RuntimeError as error:
            pytest.fail(str(error), pytrace=False)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def contexts(browser):
    opened = {mode: new_context(browser, mode) for mode in MODES}
    yield opened
    for context in opened.values():
        context.close()


@pytest.fixture(scope="module")
def report_of(site_url, browser, contexts):
    """``report_of(path, visit)``: the (cached) record of one visit, with axe results.

    ``visit`` is one of :data:`VISITS`: "light"/"dark" reuse a context whose storage
    holds that theme (a returning reader); "first-visit-light"/"first-visit-dark" open
    the page in a fresh context with empty storage and that system scheme, so that
    every page is checked as a reader's first page of the book.
    """
    cache = {}

    def get(path: str, visit_name: str):
        if (path, visit_name) not in cache:
            mode, first = visit_mode(visit_name)
            context = new_context(browser, mode, first_visit=True) if first else contexts[mode]
            try:
                page, report = visit(context, site_url, path, mode)
                try:
                    report.axe = run_axe(page)
                finally:
                    page.close()
            finally:
                if first:
                    context.close()
            cache[path, visit_name] = report
        return cache[path, visit_name]

    return get


def _fmt(items) -> str:
    return "\n  ".join(str(item) for item in items)


# ------------------------------------------------------------- every page, both modes


def test_toc_pages_were_built(built_site: Path):
    missing = [page for page in PAGES if not (built_site / page).is_file()]
    assert not missing, f"pages of _toc.yml missing from the site: {missing}"
    assert CHAPTERS, "no notebook chapters found in _toc.yml"


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_no_console_or_page_errors(report_of, path, mode):
    report = report_of(path, mode)
    assert not report.page_errors, f"{path} ({mode}): uncaught errors:\n  {_fmt(report.page_errors)}"
    assert not report.console_errors, f"{path} ({mode}): console errors:\n  {_fmt(report.console_errors)}"


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_every_request_succeeds_on_the_site(report_of, path, mode):
    report = report_of(path, mode)
    assert report.requests, f"{path}: no request recorded"
    assert not report.offsite_requests, (
        f"{path} ({mode}) requested URLs outside the site (the book must work offline):\n  "
        f"{_fmt(report.offsite_requests)}"
    )
    assert not report.failed_requests, f"{path} ({mode}): failed requests:\n  {_fmt(report.failed_requests)}"


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_every_image_decodes(report_of, path, mode):
    images = report_of(path, mode).info["images"]
    broken = [img["src"] for img in images if not img["complete"] or img["naturalWidth"] == 0]
    assert not broken, f"{path} ({mode}): images that did not load or decode:\n  {_fmt(broken)}"


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_maths_is_typeset(report_of, path, mode):
    info = report_of(path, mode).info
    assert not info["untypeset"], f"{path} ({mode}): maths MathJax did not typeset:\n  {_fmt(info['untypeset'])}"
    leftovers = sorted({m.group(0) for m in RAW_TEX.finditer(info["prose"])})
    assert not leftovers, f"{path} ({mode}): raw TeX in the visible text (outside code): {leftovers}"
    if info["mathCount"]:
        assert info["mjxCount"] >= info["mathCount"], (
            f"{path}: {info['mathCount']} maths elements but {info['mjxCount']} MathJax containers"
        )


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_theme_mode_is_applied(report_of, path, mode):
    info = report_of(path, mode).info
    scheme, first = visit_mode(mode)
    if first:  # a first visitor gets "auto": the theme follows the system scheme
        assert info["dataMode"] == "auto", f"{path} ({mode}): data-mode is {info['dataMode']!r}, expected 'auto'"
    mode = scheme
    assert info["dataTheme"] == mode, f"{path}: data-theme is {info['dataTheme']!r}, expected {mode!r}"
    background, text = info["bodyBackgroundLuminance"], info["textLuminance"]
    if mode == "dark":
        assert background < 0.05 and text > 0.4, (
            f"{path} is not dark: background {info['bodyBackground']}, text {info['textColor']}"
        )
    else:
        assert background > 0.9 and text < 0.2, (
            f"{path} is not light: background {info['bodyBackground']}, text {info['textColor']}"
        )


@pytest.mark.browser
@pytest.mark.parametrize("mode", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_no_serious_accessibility_violations(report_of, path, mode):
    violations = [v for v in report_of(path, mode).axe if v["impact"] in SERIOUS]
    details = [
        f"{v['impact']} {v['id']}: {v['help']} ({v['helpUrl']})\n    "
        + "\n    ".join(f"{n['target']}: {n['summary']}" for n in v["nodes"][:5])
        for v in violations
    ]
    assert not violations, f"{path} ({mode}): axe-core violations:\n  {_fmt(details)}"


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_content_images_have_descriptive_alt_text(report_of, path):
    bad = []
    for img in report_of(path, "light").info["images"]:
        if not img["inContent"]:
            continue
        alt = (img["alt"] or "").strip()
        basename = (img["src"] or "").rsplit("/", 1)[-1]
        if (
            not alt
            or GENERIC_ALT.match(alt)
            or alt == basename
            or basename and basename in alt
            or re.fullmatch(r"[0-9a-f]{16,}\S*", alt)
            or len(alt.split()) < 4
        ):
            bad.append(f"{img['src']}: alt={alt!r}")
    assert not bad, (
        f"{path}: figures need alt text that says what they show "
        f"(`mystnb: image: alt:` in the cell metadata):\n  {_fmt(bad)}"
    )


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_figures_stay_legible_in_dark_mode(report_of, path):
    """Figures are drawn on opaque white; in dark mode the theme must not invert, dim or
    make them transparent."""
    problems = []
    for figure in report_of(path, "dark").info["figures"]:
        where = figure["src"]
        if figure["error"]:
            problems.append(f"{where}: could not read pixels ({figure['error']})")
            continue
        if figure["filter"] != "none":
            problems.append(f"{where}: CSS filter {figure['filter']!r} (inverted/dimmed)")
        if float(figure["opacity"]) < 1 or figure["mixBlendMode"] != "normal":
            problems.append(f"{where}: opacity {figure['opacity']}, blend {figure['mixBlendMode']}")
        for r, g, b, a in figure["corners"]:
            if a < 255 or min(r, g, b) < 235:
                problems.append(f"{where}: corner pixel rgba({r},{g},{b},{a}) is not opaque white")
                break
    assert not problems, f"{path} (dark): figures not shown as drawn:\n  {_fmt(problems)}"


# ---------------------------------------------------------------- the code column


@pytest.fixture(scope="module")
def code_overflow(site_url, browser):
    """``code_overflow(path, width)``: :data:`CODE_OVERFLOW_JS` for a page opened in a
    window ``width`` px wide (cached)."""
    cache: dict[tuple[str, int], dict] = {}
    contexts_by_width: dict[int, object] = {}

    def get(path: str, width: int) -> dict:
        if (path, width) not in cache:
            if width not in contexts_by_width:
                contexts_by_width[width] = new_context(browser, "light", viewport={"width": width, "height": 900})
            page = contexts_by_width[width].new_page()
            try:
                page.goto(site_url + path, wait_until="load")
                page.wait_for_load_state("networkidle")
                page.evaluate(SETTLE_JS)
                cache[path, width] = page.evaluate(CODE_OVERFLOW_JS)
            finally:
                page.close()
        return cache[path, width]

    yield get
    for context in contexts_by_width.values():
        context.close()


def _overflow_details(result: dict, kind: str) -> list[str]:
    return [
        f"{block['longestChars']} chars, {block['overflowPx']} px too wide: {block['longest']!r}"
        for block in result["overflowing"] if block["kind"] == kind
    ]


@pytest.mark.browser
@pytest.mark.parametrize("width", CODE_WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_code_fits_the_column(code_overflow, path, width):
    """No code block (code cell or listing) scrolls sideways at a desktop or laptop width:
    the column holds the book's 88-character lines (CONTRIBUTING, ruff line-length)."""
    result = code_overflow(path, width)
    if result["columnChars"] is not None:
        assert result["columnChars"] >= 88, (
            f"{path}: at {width} px the code column holds {result['columnChars']} characters, fewer than 88"
        )
    wide = _overflow_details(result, "code")
    assert not wide, f"{path} at {width} px: code blocks scroll sideways (reflow to 88 chars):\n  {_fmt(wide)}"


@pytest.mark.browser
@pytest.mark.parametrize("width", CODE_WIDTHS)
@pytest.mark.parametrize("path", PAGES)
def test_printed_output_fits_the_column(code_overflow, path, width):
    """Printed cell output (notices, tables) does not scroll sideways either."""
    wide = _overflow_details(code_overflow(path, width), "output")
    assert not wide, f"{path} at {width} px: printed output scrolls sideways:\n  {_fmt(wide)}"


# ----------------------------------------------------------------------- search


def _body_words(page_html: str) -> Counter:
    """Words of a chapter's prose (no title, code, maths or glued numbers)."""
    match = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', page_html, re.S)
    text = match.group(1) if match else page_html
    for pattern in (r"<h1.*?</h1>", r"<pre.*?</pre>", r"<code.*?</code>", r"<script.*?</script>",
                    r'<span class="math[^"]*">.*?</span>', r'<div class="math[^"]*"[^>]*>.*?</div>',
                    r'<span class="pasted-text">.*?</span>'):
        text = re.sub(pattern, " ", text, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return Counter(word.lower() for word in re.findall(r"\b[A-Za-z]{7,}\b", text))


def _search_word(built_site: Path, docname: str) -> str:
    """The word of the chapter's body that the fewest other chapters use."""
    words = {name: _body_words((built_site / f"{name}.html").read_text(encoding="utf-8")) for name in CHAPTERS}
    own = words[docname]
    assert own, f"{docname}: no prose words to search for"
    elsewhere = Counter(w for name, counter in words.items() if name != docname for w in counter)
    return min(own, key=lambda w: (elsewhere[w], -own[w], w))


SEARCH_DONE_JS = """() => {
  const results = document.querySelector('#search-results');
  const title = results && results.querySelector('h2');
  return title && title.textContent.trim() === 'Search Results'
    && results.dataset.numscaleTypeset !== 'pending';
}"""
#: Result snippets without typeset maths (MathJax output removed).
def _wait_for_search(page) -> None:
    """Wait until the results, their snippets and the snippets' maths are all in place.

    Sphinx writes "Search Results" when the list is complete, but it fetches each result's
    page to build its snippet and inserts the snippet when that fetch returns, possibly
    later; the snippet's maths is then typeset asynchronously. So: results listed, every
    fetch finished (network idle), then no typesetting pending.
    """
    page.wait_for_function(SEARCH_DONE_JS, timeout=20_000)
    page.wait_for_load_state("networkidle", timeout=20_000)
    page.wait_for_function(SEARCH_DONE_JS, timeout=20_000)


SNIPPETS_JS = """() => {
  const clone = document.querySelector('#search-results').cloneNode(true);
  clone.querySelectorAll('mjx-container').forEach((node) => node.remove());
  return clone.textContent;
}"""


@pytest.mark.browser
@pytest.mark.parametrize("docname", CHAPTERS)
def test_search_finds_chapter_by_a_word_of_its_body(built_site, site_url, contexts, docname):
    word = _search_word(built_site, docname)
    page = contexts["light"].new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(f"{site_url}search.html?q={word}", wait_until="load")
        _wait_for_search(page)
        hrefs = page.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.href)")
        snippets = page.evaluate(SNIPPETS_JS)
    finally:
        page.close()
    found = [h for h in hrefs if h.split("?")[0].split("#")[0].endswith(f"{docname}.html")]
    assert found, f"search for {word!r} (from {docname}) did not list {docname}.html; results: {hrefs}"
    assert not errors, f"search for {word!r}: errors {errors}"
    leftovers = sorted({m.group(0) for m in RAW_TEX.finditer(snippets)})
    assert not leftovers, f"search for {word!r}: raw TeX in the result snippets: {leftovers}"


@pytest.mark.browser
def test_search_snippets_typeset_their_maths(site_url, contexts):
    """The intro's snippet for "softmax" quotes q·k and √d: they must be typeset."""
    page = contexts["dark"].new_page()
    try:
        page.goto(f"{site_url}search.html?q=softmax", wait_until="load")
        _wait_for_search(page)
        snippets = page.evaluate(SNIPPETS_JS)
        typeset = page.locator("#search-results mjx-container").count()
    finally:
        page.close()
    leftovers = sorted({m.group(0) for m in RAW_TEX.finditer(snippets)})
    assert not leftovers, f"raw TeX in the search result snippets: {leftovers}"
    assert typeset > 0, "no maths typeset in the search results for 'softmax'"


# ------------------------------------------------------------------ phone layout


@pytest.fixture(scope="module")
def phone_context(browser):
    context = new_context(browser, "light", viewport=PHONE, is_mobile=True, has_touch=True)
    yield context
    context.close()


@pytest.mark.browser
@pytest.mark.parametrize("path", PAGES)
def test_phone_navigation_opens(site_url, phone_context, path):
    page = phone_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(site_url + path, wait_until="load")
        page.wait_for_load_state("networkidle")
        overflow = page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path}: the page scrolls sideways by {overflow}px on a phone"
        nav = page.locator("nav.bd-links a.reference").first
        assert not nav.is_visible(), f"{path}: the navigation is already visible on a phone"
        toggles = page.locator("button.primary-toggle")
        visible = [toggles.nth(i) for i in range(toggles.count()) if toggles.nth(i).is_visible()]
        assert visible, f"{path}: no visible sidebar toggle on a phone"
        visible[0].click()
        nav.wait_for(state="visible", timeout=5_000)
        box = nav.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1, (
            f"{path}: the opened navigation is off screen: {box}"
        )
        page.keyboard.press("Escape")
        nav.wait_for(state="hidden", timeout=5_000)
    finally:
        page.close()
    assert not errors, f"{path}: errors on the phone layout: {errors}"


# ---------------------------------------------------- notebook download and launch


def _notebooks_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("numscale_notebooks", ROOT / "_ext" / "numscale_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.browser
@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_offers_its_notebook_and_launch_buttons(built_site, site_url, contexts, docname):
    notebooks = _notebooks_module()
    repo, branch = repository_url(), repository_branch()
    org, name = repo.split("github.com/")[1].split("/")[:2]
    relpath = f"_notebooks/{docname}.ipynb"
    page = contexts["light"].new_page()
    try:
        page.goto(f"{site_url}{docname}.html", wait_until="load")
        page.click(".dropdown-download-buttons button.dropdown-toggle")
        link = page.locator("a.btn-download-notebook-button")
        link.wait_for(state="visible", timeout=5_000)
        href = urljoin(page.url, link.get_attribute("href"))
        assert href == f"{site_url}{relpath}", f"{docname}: notebook link {href}"
        assert link.get_attribute("download"), f"{docname}: the notebook link does not download"
        response = page.request.get(href)
        assert response.ok, f"{docname}: {href} answered {response.status}"
        served = response.text()
        launch = {
            text: page.locator(f".dropdown-launch-buttons a:has-text('{text}')").get_attribute("href")
            for text in ("Colab", "Binder")
        }
    finally:
        page.close()
    expected = notebooks.notebook_text(notebooks.site_notebook(ROOT, docname, built_site.parent))
    assert served == expected, f"{docname}: the served notebook is not the conversion of its page"
    first = json.loads(served)["cells"][0]
    assert "remove-cell" in first["metadata"]["tags"]
    ref = notebooks.source_ref(ROOT, branch)
    assert f"numscale @ git+{repo}@{ref}" in "".join(first["source"])
    # Colab opens the notebook from the branch the publish workflow pushes (_config.yml).
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    nb_branch = config["sphinx"]["config"]["numscale_notebooks_branch"]
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "publish.yml").read_text())
    pushes = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    assert any(re.search(rf"git push -f .+ {re.escape(nb_branch)}\s*$", run, re.M) for run in pushes), (
        f"no publish step pushes the notebooks to the {nb_branch!r} branch Colab opens"
    )
    assert launch["Colab"] == f"https://colab.research.google.com/github/{org}/{name}/blob/{nb_branch}/{relpath}"
    assert launch["Binder"] == f"https://mybinder.org/v2/gh/{org}/{name}/{branch}?urlpath=lab/tree/{relpath}"


def test_site_links_the_pdf_only_when_it_exists(built_site):
    """With ``make pdf`` run before the HTML build, every page's download menu offers the
    whole book as a PDF that the site serves; without it, no page links a missing file."""
    pdf = built_site / "numscale-book.pdf"
    pages = [page for page in PAGES if page != "search.html"]
    linked = [page for page in pages if "btn-download-book-pdf-button" in (built_site / page).read_text(encoding="utf-8")]
    if pdf.is_file():
        assert pdf.read_bytes()[:5] == b"%PDF-", f"{pdf} is not a PDF"
        assert linked == pages, f"pages without the PDF link: {sorted(set(pages) - set(linked))}"
        for page in pages:
            href = re.search(r'href="([^"]*numscale-book\.pdf)"', (built_site / page).read_text(encoding="utf-8"))
            assert href and (built_site / page).parent.joinpath(href.group(1)).resolve() == pdf.resolve(), page
    else:
        assert not linked, f"pages linking a PDF the site does not have: {linked}"


def test_binder_generates_the_same_notebooks(built_site, tmp_path):
    """Binder opens ``_notebooks/<page>.ipynb`` from ``main``: binder/postBuild must make
    exactly the files the site serves (and Colab opens from the notebooks branch)."""
    post_build = (ROOT / "binder" / "postBuild").read_text(encoding="utf-8")
    assert "_ext/numscale_notebooks.py" in post_build and "--out _notebooks" in post_build
    requirements = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    for package in ("numpy", "matplotlib", "myst-nb", "jupytext"):
        assert re.search(rf"^{package}\b", requirements, re.M | re.I), f"binder/requirements.txt lacks {package}"
    notebooks = _notebooks_module()
    sources = [next(ROOT.glob(f"{name}.*")) for name in CHAPTERS]
    assert notebooks.main(["--root", str(ROOT), "--out", str(tmp_path), *map(str, sources)]) == 0
    for name in CHAPTERS:
        made = json.loads((tmp_path / f"{name}.ipynb").read_text(encoding="utf-8"))
        served = json.loads((built_site / "_notebooks" / f"{name}.ipynb").read_text(encoding="utf-8"))
        # Binder has no build: its prose names the glued values instead of quoting them
        # (the reader computes them by running the cells); the code is the same.
        code = [[c["source"] for c in nb["cells"] if c["cell_type"] == "code"] for nb in (made, served)]
        assert code[0] == code[1], f"{name}: Binder's notebook runs different code from the site's"
        assert made == json.loads(notebooks.notebook_text(notebooks.site_notebook(ROOT, name))), name
    # With the build's executed notebooks the script writes exactly the site's notebooks.
    built = tmp_path / "with-build"
    args = ["--root", str(ROOT), "--out", str(built), "--build", str(built_site.parent), *map(str, sources)]
    assert notebooks.main(args) == 0
    for name in CHAPTERS:
        made = (built / f"{name}.ipynb").read_text(encoding="utf-8")
        served = (built_site / "_notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
        assert made == served, f"{name}: the script's notebook differs from the site's"


# ------------------------------------------------------------------- figure files


def _content_figures(built_site: Path) -> dict[str, list[str]]:
    figures: dict[str, list[str]] = {}
    for name in CHAPTERS:
        text = (built_site / f"{name}.html").read_text(encoding="utf-8")
        match = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', text, re.S)
        srcs = re.findall(r'<img[^>]*\ssrc="([^"]+)"', match.group(1) if match else text)
        figures[name] = [str((built_site / name).parent / src) for src in srcs]
    return figures


def test_figures_are_svg(built_site):
    """CONTRIBUTING: figures are SVG (crisp at any zoom; the colours can be checked)."""
    raster = [f"{name}: {Path(src).name}" for name, srcs in _content_figures(built_site).items()
              for src in srcs if Path(src).suffix != ".svg"]
    assert not raster, (
        "figures written as raster images; numscale.plotting.use_book_style() should make them SVG "
        "(with MPLBACKEND=Agg, as the Makefile exports, `%matplotlib inline` resets the inline "
        f"format to PNG if it runs after set_matplotlib_formats):\n  {_fmt(raster)}"
    )


def _allowed_colours() -> list[tuple[float, float, float]]:
    import matplotlib
    import numpy as np

    okabe_ito = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
    colours = [matplotlib.colors.to_rgb(c) for c in okabe_ito]
    for name in ("viridis", "cividis", "RdBu_r", "RdBu", "magma", "inferno", "plasma", "Greys", "gray"):
        cmap = matplotlib.colormaps[name]
        colours += [tuple(c[:3]) for c in cmap(np.linspace(0, 1, 256))]
    return colours


def test_figure_colours_are_colourblind_safe(built_site):
    """Every chromatic colour drawn in an SVG figure is an Okabe–Ito colour or comes from a
    perceptually uniform, colour-blind-safe map (greys, black and white are free)."""
    import matplotlib

    allowed = _allowed_colours()
    bad = []
    for name, srcs in _content_figures(built_site).items():
        for src in srcs:
            if not src.endswith(".svg"):
                continue
            svg = Path(src).read_text(encoding="utf-8")
            for colour in sorted(set(re.findall(r"(?:fill|stroke|stop-color)\s*[:=]\s*\"?(#[0-9a-fA-F]{6})", svg))):
                rgb = matplotlib.colors.to_rgb(colour)
                _, saturation, value = colorsys.rgb_to_hsv(*rgb)
                if saturation < 0.15 or value < 0.15:
                    continue  # grey, black or white
                distance = min(sum((a - b) ** 2 for a, b in zip(rgb, ok)) ** 0.5 for ok in allowed)
                if distance > 0.02:
                    bad.append(f"{name}: {Path(src).name} uses {colour}")
    assert not bad, (
        "figure colours outside the Okabe–Ito palette and the viridis/cividis/RdBu maps "
        f"(use numscale.plotting.OKABE_ITO):\n  {_fmt(bad)}"
    )
