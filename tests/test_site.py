"""The built site in a real browser (Chromium via Playwright), as a reader gets it.

Every page of the toc plus ``search.html`` is loaded once per visit of ``VISITS``, from a
loopback server: in the light and the dark theme as a returning reader has stored it,
and as a first visit (a fresh browser context, empty storage) with the system scheme
light or dark. Each load records console messages, page errors, every request, the
images, the maths, the colours and an axe-core run (including the experimental
"label-content-name-mismatch" rule), and ``test_page_visit`` runs every check on that
one load, reporting each failed check by name. The light visit, opened at the laptop
width (1280 px), also measures the code column there and, with the window widened,
at the desktop width (1300 px); a chapter's light visit also opens its download and
launch buttons. Separate loads check search and the phone layout (their own URLs and
window). The build is the session's ``built_site`` (``NUMSCALE_TEST_SITE`` reuses one).

The tests are independent of each other, so ``pytest -n 2`` (pytest-xdist) spreads them
over two processes, each with its own Chromium and loopback server. Chromium must be at
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
    DESKTOP,
    MODES,
    PHONE,
    ROOT,
    VISITS,
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
from conftest import load_extension

PAGES = [f"{name}.html" for name in toc_docnames()] + ["search.html"]
CHAPTERS = notebook_docnames()
SERIOUS = {"serious", "critical"}
#: Raw TeX that MathJax should have replaced: display and inline delimiters, commands.
RAW_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]|\\[A-Za-z]{2,}|(?<![\w$])\$[^$\s][^$\n]{0,80}?\$(?!\w)"
)
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
    """One context per theme for returning visits (storage holds the theme)."""
    opened = {mode: new_context(browser, mode) for mode in MODES}
    yield opened
    for context in opened.values():
        context.close()


def _fmt(items) -> str:
    return "\n  ".join(str(item) for item in items)


def test_toc_pages_were_built(built_site: Path):
    missing = [page for page in PAGES if not (built_site / page).is_file()]
    assert not missing, f"pages of _toc.yml missing from the site: {missing}"
    assert CHAPTERS, "no notebook chapters found in _toc.yml"


# ------------------------------------------------------ the checks of one page load
#
# Each check reads the record of one visit (a PageReport, or the code-column record)
# and raises AssertionError with what is wrong; test_page_visit runs every check that
# applies to a visit on that visit's single page load and reports each failure by name.


def check_console(report, path, mode):
    """No uncaught error and no console error while the page loads and settles."""
    assert not report.page_errors, (
        f"{path} ({mode}): uncaught errors:\n  {_fmt(report.page_errors)}"
    )
    assert not report.console_errors, (
        f"{path} ({mode}): console errors:\n  {_fmt(report.console_errors)}"
    )


def check_requests(report, path, mode):
    """Every request succeeds, and none leaves the site (the book works offline)."""
    assert report.requests, f"{path}: no request recorded"
    assert not report.offsite_requests, (
        f"{path} ({mode}) requested URLs outside the site (the book must work offline):\n  "
        f"{_fmt(report.offsite_requests)}"
    )
    assert not report.failed_requests, (
        f"{path} ({mode}): failed requests:\n  {_fmt(report.failed_requests)}"
    )


def check_images(report, path, mode):
    """Every image of the page is fetched and decodes."""
    images = report.info["images"]
    broken = [
        img["src"] for img in images if not img["complete"] or img["naturalWidth"] == 0
    ]
    assert not broken, (
        f"{path} ({mode}): images that did not load or decode:\n  {_fmt(broken)}"
    )


def check_maths(report, path, mode):
    """MathJax typeset every formula; no raw TeX is left in the visible prose."""
    info = report.info
    assert not info["untypeset"], (
        f"{path} ({mode}): maths MathJax did not typeset:\n  {_fmt(info['untypeset'])}"
    )
    leftovers = sorted({m.group(0) for m in RAW_TEX.finditer(info["prose"])})
    assert not leftovers, (
        f"{path} ({mode}): raw TeX in the visible text (outside code): {leftovers}"
    )
    if info["mathCount"]:
        assert info["mjxCount"] >= info["mathCount"], (
            f"{path}: {info['mathCount']} maths elements but {info['mjxCount']} MathJax containers"
        )


def check_theme(report, path, mode):
    """The page is in the theme the visit asks for: the stored one, or for a first
    visitor "auto" following the system scheme; its colours are dark or light."""
    info = report.info
    scheme, first = visit_mode(mode)
    if first:  # a first visitor gets "auto": the theme follows the system scheme
        assert info["dataMode"] == "auto", (
            f"{path} ({mode}): data-mode is {info['dataMode']!r}, expected 'auto'"
        )
    mode = scheme
    assert info["dataTheme"] == mode, (
        f"{path}: data-theme is {info['dataTheme']!r}, expected {mode!r}"
    )
    background, text = info["bodyBackgroundLuminance"], info["textLuminance"]
    if mode == "dark":
        assert background < 0.05 and text > 0.4, (
            f"{path} is not dark: background {info['bodyBackground']}, text {info['textColor']}"
        )
    else:
        assert background > 0.9 and text < 0.2, (
            f"{path} is not light: background {info['bodyBackground']}, text {info['textColor']}"
        )


def check_axe(report, path, mode):
    """No serious or critical axe-core violation (experimental label-in-name rule on)."""
    violations = [v for v in report.axe if v["impact"] in SERIOUS]
    details = [
        f"{v['impact']} {v['id']}: {v['help']} ({v['helpUrl']})\n    "
        + "\n    ".join(f"{n['target']}: {n['summary']}" for n in v["nodes"][:5])
        for v in violations
    ]
    assert not violations, f"{path} ({mode}): axe-core violations:\n  {_fmt(details)}"


def check_alt_text(report, path, mode):
    """Content figures have alt text that says what they show."""
    bad = []
    for img in report.info["images"]:
        if not img["inContent"]:
            continue
        alt = (img["alt"] or "").strip()
        basename = (img["src"] or "").rsplit("/", 1)[-1]
        if (
            not alt
            or GENERIC_ALT.match(alt)
            or alt == basename
            or basename
            and basename in alt
            or re.fullmatch(r"[0-9a-f]{16,}\S*", alt)
            or len(alt.split()) < 4
        ):
            bad.append(f"{img['src']}: alt={alt!r}")
    assert not bad, (
        f"{path}: figures need alt text that says what they show "
        f"(`mystnb: image: alt:` in the cell metadata):\n  {_fmt(bad)}"
    )


def check_dark_figures(report, path, mode):
    """Figures are drawn on opaque white; in dark mode the theme must not invert, dim or
    make them transparent."""
    problems = []
    for figure in report.info["figures"]:
        where = figure["src"]
        if figure["error"]:
            problems.append(f"{where}: could not read pixels ({figure['error']})")
            continue
        if figure["filter"] != "none":
            problems.append(
                f"{where}: CSS filter {figure['filter']!r} (inverted/dimmed)"
            )
        if float(figure["opacity"]) < 1 or figure["mixBlendMode"] != "normal":
            problems.append(
                f"{where}: opacity {figure['opacity']}, blend {figure['mixBlendMode']}"
            )
        for r, g, b, a in figure["corners"]:
            if a < 255 or min(r, g, b) < 235:
                problems.append(
                    f"{where}: corner pixel rgba({r},{g},{b},{a}) is not opaque white"
                )
                break
    assert not problems, (
        f"{path} (dark): figures not shown as drawn:\n  {_fmt(problems)}"
    )


def _overflow_details(result: dict, kind: str) -> list[str]:
    return [
        f"{block['longestChars']} chars, {block['overflowPx']} px too wide: {block['longest']!r}"
        for block in result["overflowing"]
        if block["kind"] == kind
    ]


def check_code_fits(result, path, width):
    """No code block (code cell or listing) scrolls sideways at a desktop or laptop width:
    the column holds the book's 88-character lines (CONTRIBUTING, ruff line-length)."""
    if result["columnChars"] is not None:
        assert result["columnChars"] >= 88, (
            f"{path}: at {width} px the code column holds {result['columnChars']} characters, fewer than 88"
        )
    wide = _overflow_details(result, "code")
    assert not wide, (
        f"{path} at {width} px: code blocks scroll sideways (reflow to 88 chars):\n  {_fmt(wide)}"
    )


def check_output_fits(result, path, width):
    """Printed cell output (notices, tables) does not scroll sideways either."""
    wide = _overflow_details(result, "output")
    assert not wide, (
        f"{path} at {width} px: printed output scrolls sideways:\n  {_fmt(wide)}"
    )


#: Checks of every visit's record, by the name a failure is reported under.
VISIT_CHECKS = {
    "console": check_console,
    "requests": check_requests,
    "images": check_images,
    "maths": check_maths,
    "theme": check_theme,
    "axe": check_axe,
}
#: Checks made on one visit only (the visit the separate tests used before).
ONLY_ON = {
    "alt-text": ("light", check_alt_text),
    "dark-figures": ("dark", check_dark_figures),
}


def _settle_layout(page) -> None:
    """Two animation frames: the layout after a viewport change is final."""
    page.evaluate(
        "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
    )


def check_notebook_buttons(page, site_url, built_site, docname):
    """The chapter's download menu offers its notebook (the conversion of its page, as
    the site serves it) and the launch buttons open that notebook in Colab and Binder."""
    from conftest import pages_without_data

    notebooks = load_extension("numscale_notebooks")
    without = pages_without_data(built_site)
    if docname in without:  # the page is the note naming its data: no notebook at all
        assert page.locator("a.btn-download-notebook-button").count() == 0
        assert page.locator(".dropdown-launch-buttons").count() == 0
        assert not (built_site / "_notebooks" / f"{docname}.ipynb").exists()
        return
    repo, branch = repository_url(), repository_branch()
    org, name = repo.split("github.com/")[1].split("/")[:2]
    relpath = f"_notebooks/{docname}.ipynb"
    page.click(".dropdown-download-buttons button.dropdown-toggle")
    link = page.locator("a.btn-download-notebook-button")
    link.wait_for(state="visible", timeout=5_000)
    href = urljoin(page.url, link.get_attribute("href"))
    assert href == f"{site_url}{relpath}", f"{docname}: notebook link {href}"
    assert link.get_attribute("download"), (
        f"{docname}: the notebook link does not download"
    )
    response = page.request.get(href)
    assert response.ok, f"{docname}: {href} answered {response.status}"
    served = response.text()
    launch = {
        text: page.locator(
            f".dropdown-launch-buttons a:has-text('{text}')"
        ).get_attribute("href")
        for text in ("Colab", "Binder")
    }
    expected = notebooks.notebook_text(
        notebooks.site_notebook(ROOT, docname, built_site.parent, without_data=without)
    )
    assert served == expected, (
        f"{docname}: the served notebook is not the conversion of its page"
    )
    first = json.loads(served)["cells"][0]
    assert "remove-cell" in first["metadata"]["tags"]
    ref = load_extension("numscale_install_cell").source_ref(ROOT, branch)
    assert f"numscale @ git+{repo}@{ref}" in "".join(first["source"])
    # Colab opens the notebook from the branch the publish workflow pushes (_config.yml).
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    nb_branch = config["sphinx"]["config"]["numscale_notebooks_branch"]
    workflow = yaml.safe_load(
        (ROOT / ".github" / "workflows" / "publish.yml").read_text()
    )
    pushes = [
        step.get("run", "")
        for job in workflow["jobs"].values()
        for step in job["steps"]
    ]
    assert any(
        re.search(rf"git push -f .+ {re.escape(nb_branch)}\s*$", run, re.M)
        for run in pushes
    ), f"no publish step pushes the notebooks to the {nb_branch!r} branch Colab opens"
    assert (
        launch["Colab"]
        == f"https://colab.research.google.com/github/{org}/{name}/blob/{nb_branch}/{relpath}"
    )
    assert (
        launch["Binder"]
        == f"https://mybinder.org/v2/gh/{org}/{name}/{branch}?urlpath=lab/tree/{relpath}"
    )


# ------------------------------------------------------------- every page, every visit


@pytest.mark.browser
@pytest.mark.parametrize("visit_name", VISITS)
@pytest.mark.parametrize("path", PAGES)
def test_page_visit(built_site, site_url, browser, contexts, path, visit_name):
    """One load of ``path`` per visit of :data:`VISITS`, and every check on that load.

    "light"/"dark" reuse a context whose storage holds that theme (a returning reader);
    "first-visit-light"/"first-visit-dark" open the page in a fresh context with empty
    storage and that system scheme, so that every page is checked as a reader's first
    page of the book. Every visit: console, requests, images, maths, theme, axe-core.
    The light visit (1280 px, the laptop width) also checks the figures' alt text, the
    code column at 1280 px and then, with the window widened to the desktop's 1300 px,
    again at 1300 px, and for a chapter its notebook and launch buttons; the dark visit
    checks that figures are shown as drawn. Each failed check is reported by name.
    """
    mode, first = visit_mode(visit_name)
    context = new_context(browser, mode, first_visit=True) if first else contexts[mode]
    failures: dict[str, str] = {}

    def run(name: str, check, *args) -> None:
        try:
            check(*args)
        except Exception as error:  # noqa: BLE001 - a timeout fails the check, not the rest
            failures[name] = (
                str(error)
                if isinstance(error, AssertionError)
                else f"{type(error).__name__}: {error}"
            )

    try:
        page, report = visit(context, site_url, path, mode)
        try:
            overflow = {}
            if (
                visit_name == "light" and DESKTOP["width"] in CODE_WIDTHS
            ):  # the width it opened at
                overflow[DESKTOP["width"]] = page.evaluate(
                    CODE_OVERFLOW_JS
                )  # before axe's script
            report.axe = run_axe(page)
            if visit_name == "light":
                for width in (w for w in CODE_WIDTHS if w != DESKTOP["width"]):
                    page.set_viewport_size(
                        {"width": width, "height": DESKTOP["height"]}
                    )
                    _settle_layout(page)
                    overflow[width] = page.evaluate(CODE_OVERFLOW_JS)
            for name, check in VISIT_CHECKS.items():
                run(name, check, report, path, visit_name)
            for name, (only, check) in ONLY_ON.items():
                if visit_name == only:
                    run(name, check, report, path, visit_name)
            for width in CODE_WIDTHS:
                if width in overflow:
                    run(
                        f"code-fits-{width}",
                        check_code_fits,
                        overflow[width],
                        path,
                        width,
                    )
                    run(
                        f"output-fits-{width}",
                        check_output_fits,
                        overflow[width],
                        path,
                        width,
                    )
            docname = path.removesuffix(".html")
            if visit_name == "light" and docname in CHAPTERS:
                run(
                    "notebook-buttons",
                    check_notebook_buttons,
                    page,
                    site_url,
                    built_site,
                    docname,
                )
        finally:
            page.close()
    finally:
        if first:
            context.close()
    assert not failures, (
        f"{path} ({visit_name}): {len(failures)} check(s) failed: {', '.join(failures)}\n"
        + "\n".join(f"[{name}] {message}" for name, message in failures.items())
    )


# ----------------------------------------------------------------------- search


def _body_words(page_html: str) -> Counter:
    """Words of a chapter's prose (no title, code, maths or glued numbers)."""
    match = re.search(
        r'<article class="bd-article"[^>]*>(.*?)</article>', page_html, re.S
    )
    text = match.group(1) if match else page_html
    for pattern in (
        r"<h1.*?</h1>",
        r"<pre.*?</pre>",
        r"<code.*?</code>",
        r"<script.*?</script>",
        r'<span class="math[^"]*">.*?</span>',
        r'<div class="math[^"]*"[^>]*>.*?</div>',
        r'<span class="pasted-text">.*?</span>',
    ):
        text = re.sub(pattern, " ", text, flags=re.S)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return Counter(word.lower() for word in re.findall(r"\b[A-Za-z]{7,}\b", text))


def _search_word(built_site: Path, docname: str) -> str:
    """The word of the chapter's body that the fewest other chapters use."""
    words = {
        name: _body_words((built_site / f"{name}.html").read_text(encoding="utf-8"))
        for name in CHAPTERS
    }
    own = words[docname]
    assert own, f"{docname}: no prose words to search for"
    elsewhere = Counter(
        w for name, counter in words.items() if name != docname for w in counter
    )
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
def test_search_finds_chapter_by_a_word_of_its_body(
    built_site, site_url, contexts, docname
):
    word = _search_word(built_site, docname)
    page = contexts["light"].new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: (
            errors.append(message.text) if message.type == "error" else None
        ),
    )
    try:
        page.goto(f"{site_url}search.html?q={word}", wait_until="load")
        _wait_for_search(page)
        hrefs = page.eval_on_selector_all(
            "#search-results ul.search li a", "els => els.map(e => e.href)"
        )
        snippets = page.evaluate(SNIPPETS_JS)
    finally:
        page.close()
    found = [
        h for h in hrefs if h.split("?")[0].split("#")[0].endswith(f"{docname}.html")
    ]
    assert found, (
        f"search for {word!r} (from {docname}) did not list {docname}.html; results: {hrefs}"
    )
    assert not errors, f"search for {word!r}: errors {errors}"
    leftovers = sorted({m.group(0) for m in RAW_TEX.finditer(snippets)})
    assert not leftovers, (
        f"search for {word!r}: raw TeX in the result snippets: {leftovers}"
    )


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
    context = new_context(
        browser, "light", viewport=PHONE, is_mobile=True, has_touch=True
    )
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
        overflow = page.evaluate(
            "document.scrollingElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 1, (
            f"{path}: the page scrolls sideways by {overflow}px on a phone"
        )
        nav = page.locator("nav.bd-links a.reference").first
        assert not nav.is_visible(), (
            f"{path}: the navigation is already visible on a phone"
        )
        toggles = page.locator("button.primary-toggle")
        visible = [
            toggles.nth(i)
            for i in range(toggles.count())
            if toggles.nth(i).is_visible()
        ]
        assert visible, f"{path}: no visible sidebar toggle on a phone"
        visible[0].click()
        nav.wait_for(state="visible", timeout=5_000)
        box = nav.bounding_box()
        assert (
            box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 1
        ), f"{path}: the opened navigation is off screen: {box}"
        page.keyboard.press("Escape")
        nav.wait_for(state="hidden", timeout=5_000)
    finally:
        page.close()
    assert not errors, f"{path}: errors on the phone layout: {errors}"


# ------------------------------------------------------------------- the PDF link


def test_site_links_the_pdf_only_when_it_exists(built_site):
    """With ``make pdf`` run before the HTML build, every page's download menu offers the
    whole book as a PDF that the site serves; without it, no page links a missing file."""
    pdf = built_site / "numscale-book.pdf"
    pages = [page for page in PAGES if page != "search.html"]
    linked = [
        page
        for page in pages
        if "btn-download-book-pdf-button"
        in (built_site / page).read_text(encoding="utf-8")
    ]
    if pdf.is_file():
        assert pdf.read_bytes()[:5] == b"%PDF-", f"{pdf} is not a PDF"
        assert linked == pages, (
            f"pages without the PDF link: {sorted(set(pages) - set(linked))}"
        )
        for page in pages:
            href = re.search(
                r'href="([^"]*numscale-book\.pdf)"',
                (built_site / page).read_text(encoding="utf-8"),
            )
            assert (
                href
                and (built_site / page).parent.joinpath(href.group(1)).resolve()
                == pdf.resolve()
            ), page
    else:
        assert not linked, f"pages linking a PDF the site does not have: {linked}"


def test_binder_generates_the_same_notebooks(built_site, tmp_path):
    """Binder opens ``_notebooks/<page>.ipynb`` from ``main``: binder/postBuild must make
    exactly the files the site serves (and Colab opens from the notebooks branch)."""
    post_build = (ROOT / "binder" / "postBuild").read_text(encoding="utf-8")
    assert (
        "_ext/numscale_notebooks.py" in post_build and "--out _notebooks" in post_build
    )
    requirements = (ROOT / "binder" / "requirements.txt").read_text(encoding="utf-8")
    for package in ("numpy", "matplotlib", "myst-nb", "jupytext"):
        assert re.search(rf"^{package}\b", requirements, re.M | re.I), (
            f"binder/requirements.txt lacks {package}"
        )
    notebooks = load_extension("numscale_notebooks")
    sources = [next(ROOT.glob(f"{name}.*")) for name in CHAPTERS]
    assert (
        load_extension("numscale_notebook_writer").main(
            ["--root", str(ROOT), "--out", str(tmp_path), *map(str, sources)]
        )
        == 0
    )
    from conftest import pages_without_data

    without = pages_without_data(built_site)
    for name in CHAPTERS:
        if name in without:  # this build serves no notebook for it (Binder's has data)
            assert not (built_site / "_notebooks" / f"{name}.ipynb").exists()
            continue
        made = json.loads((tmp_path / f"{name}.ipynb").read_text(encoding="utf-8"))
        served = json.loads(
            (built_site / "_notebooks" / f"{name}.ipynb").read_text(encoding="utf-8")
        )
        # Binder has no build: its prose names the glued values instead of quoting them
        # (the reader computes them by running the cells); the code is the same.
        code = [
            [c["source"] for c in nb["cells"] if c["cell_type"] == "code"]
            for nb in (made, served)
        ]
        assert code[0] == code[1], (
            f"{name}: Binder's notebook runs different code from the site's"
        )
        assert made == json.loads(
            notebooks.notebook_text(notebooks.site_notebook(ROOT, name))
        ), name
    # With the build's executed notebooks the script writes exactly the site's notebooks.
    built = tmp_path / "with-build"
    args = [
        "--root",
        str(ROOT),
        "--out",
        str(built),
        "--build",
        str(built_site.parent),
        *map(str, sources),
    ]
    assert load_extension("numscale_notebook_writer").main(args) == 0
    for name in CHAPTERS:
        if name in without:  # neither the site nor the script writes one
            assert not (built / f"{name}.ipynb").exists()
            continue
        made = (built / f"{name}.ipynb").read_text(encoding="utf-8")
        served = (built_site / "_notebooks" / f"{name}.ipynb").read_text(
            encoding="utf-8"
        )
        assert made == served, f"{name}: the script's notebook differs from the site's"


# ------------------------------------------------------------------- figure files


def _content_figures(built_site: Path) -> dict[str, list[str]]:
    figures: dict[str, list[str]] = {}
    for name in CHAPTERS:
        text = (built_site / f"{name}.html").read_text(encoding="utf-8")
        match = re.search(
            r'<article class="bd-article"[^>]*>(.*?)</article>', text, re.S
        )
        srcs = re.findall(
            r'<img[^>]*\ssrc="([^"]+)"', match.group(1) if match else text
        )
        figures[name] = [str((built_site / name).parent / src) for src in srcs]
    return figures


def test_figures_are_svg(built_site):
    """CONTRIBUTING: figures are SVG (crisp at any zoom; the colours can be checked)."""
    raster = [
        f"{name}: {Path(src).name}"
        for name, srcs in _content_figures(built_site).items()
        for src in srcs
        if Path(src).suffix != ".svg"
    ]
    assert not raster, (
        "figures written as raster images; numscale.plotting.use_book_style() should make them SVG "
        "(with MPLBACKEND=Agg, as the Makefile exports, `%matplotlib inline` resets the inline "
        f"format to PNG if it runs after set_matplotlib_formats):\n  {_fmt(raster)}"
    )


def _allowed_colours() -> list[tuple[float, float, float]]:
    import matplotlib
    import numpy as np

    okabe_ito = [
        "#E69F00",
        "#56B4E9",
        "#009E73",
        "#F0E442",
        "#0072B2",
        "#D55E00",
        "#CC79A7",
        "#000000",
    ]
    colours = [matplotlib.colors.to_rgb(c) for c in okabe_ito]
    for name in (
        "viridis",
        "cividis",
        "RdBu_r",
        "RdBu",
        "magma",
        "inferno",
        "plasma",
        "Greys",
        "gray",
    ):
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
            for colour in sorted(
                set(
                    re.findall(
                        r"(?:fill|stroke|stop-color)\s*[:=]\s*\"?(#[0-9a-fA-F]{6})", svg
                    )
                )
            ):
                rgb = matplotlib.colors.to_rgb(colour)
                _, saturation, value = colorsys.rgb_to_hsv(*rgb)
                if saturation < 0.15 or value < 0.15:
                    continue  # grey, black or white
                distance = min(
                    sum((a - b) ** 2 for a, b in zip(rgb, ok)) ** 0.5 for ok in allowed
                )
                if distance > 0.02:
                    bad.append(f"{name}: {Path(src).name} uses {colour}")
    assert not bad, (
        "figure colours outside the Okabe–Ito palette and the viridis/cividis/RdBu maps "
        f"(use numscale.plotting.OKABE_ITO):\n  {_fmt(bad)}"
    )
