"""Plumbing shared by the browser tests (tests/test_site.py) and tools/screenshots.py.

* :class:`SiteServer` serves a built site on loopback the way GitHub Pages serves it
  (static files, a threaded server, no directory tricks).
* :func:`launch_chromium` starts Debian's Chromium through Playwright (its own browser
  download does not work here); a missing ``/usr/bin/chromium`` is an error, never a skip.
* :func:`new_context` opens a browser context in the theme's light or dark mode, stored
  as a returning reader has it or (``first_visit=True``) with empty storage.
* :func:`visit` loads one page, waits for MathJax and every image, and returns a
  :class:`PageReport` with everything the tests assert on (console, network, images,
  maths, dark mode, figures); :func:`run_axe` runs axe-core on the loaded page.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
#: Debian's Chromium; ``NUMSCALE_CHROMIUM`` names another build (e.g. the one
#: ``browser-actions/setup-chrome`` installs on a CI runner, where /usr/bin/chromium is a snap stub).
CHROMIUM = Path(os.environ.get("NUMSCALE_CHROMIUM") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
MODES = ("light", "dark")
DESKTOP = {"width": 1280, "height": 900}
#: Window widths at which every code block must fit its column without scrolling
#: sideways: a desktop window and a laptop screen (both sidebars shown at both).
CODE_WIDTHS = (1300, 1280)
PHONE = {"width": 390, "height": 844}


# ----------------------------------------------------------------------- the book


def toc_docnames(root: Path = ROOT) -> list[str]:
    """Docnames of every page in ``_toc.yml`` (root first, in reading order)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    names = [toc["root"]]

    def walk(entries: list[dict[str, Any]]) -> None:
        for entry in entries or []:
            if "file" in entry:
                names.append(str(Path(entry["file"]).with_suffix("")))
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key, []))

    walk(toc.get("parts", []))
    walk(toc.get("chapters", []))
    return names


def notebook_docnames(root: Path = ROOT) -> list[str]:
    """The toc pages that are notebooks (MyST markdown with jupytext/kernelspec front matter)."""
    import importlib.util
    import sys

    if str(root / "_ext") not in sys.path:  # its imports (numscale_install_cell)
        sys.path.insert(0, str(root / "_ext"))
    spec = importlib.util.spec_from_file_location(
        "numscale_book_index", root / "_ext" / "numscale_book_index.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = []
    for name in toc_docnames(root):
        for suffix in (".md", ".ipynb"):
            path = root / f"{name}{suffix}"
            if path.is_file() and module.is_notebook_source(path):
                found.append(name)
                break
    return found


def repository_url(root: Path = ROOT) -> str:
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"]["url"].rstrip("/")


def repository_branch(root: Path = ROOT) -> str:
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    return config["repository"].get("branch") or "main"


# ------------------------------------------------------------------------- server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass


class SiteServer:
    """A built site on ``http://127.0.0.1:<free port>/`` in a background thread."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SiteServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# ------------------------------------------------------------------------ browser


def launch_chromium(playwright):
    """Debian's Chromium, headless. Raises ``RuntimeError`` (with the fix) if it is missing."""
    if not CHROMIUM.is_file():
        raise RuntimeError(
            f"{CHROMIUM} not found: the browser tests need Debian's Chromium "
            "(`make browser`, or `sudo apt-get install chromium`); Playwright's own download does not work here"
        )
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )


def new_context(
    browser,
    mode: str,
    viewport: dict[str, int] | None = None,
    *,
    first_visit: bool = False,
    **options: Any,
):
    """A context whose pages open in the theme's ``mode`` ("light" or "dark").

    pydata-sphinx-theme reads ``localStorage.mode`` / ``theme`` before the first paint;
    the OS preference is emulated as well, so "auto" would agree. With
    ``first_visit=True`` nothing is stored: the page opens as it does for a reader who
    has never been to the site, whose system scheme is ``mode`` (a fresh context has
    empty storage; use one context per page to keep every page a first visit).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    context = browser.new_context(
        viewport=viewport or DESKTOP,
        color_scheme=mode,
        reduced_motion="reduce",
        **options,
    )
    if not first_visit:
        context.add_init_script(
            f"try {{ localStorage.setItem('mode', '{mode}'); localStorage.setItem('theme', '{mode}'); }} catch (e) {{}}"
        )
    return context


#: The visits every page gets: the theme chosen by the reader (stored), and a first
#: visit (empty storage) with the system scheme light or dark.
VISITS = ("light", "dark", "first-visit-light", "first-visit-dark")


def visit_mode(visit_name: str) -> tuple[str, bool]:
    """``(mode, first_visit)`` of a name in :data:`VISITS`."""
    if visit_name not in VISITS:
        raise ValueError(f"visit must be one of {VISITS}, got {visit_name!r}")
    return visit_name.removeprefix("first-visit-"), visit_name.startswith(
        "first-visit-"
    )


# ------------------------------------------------------------------------ a visit


@dataclass
class PageReport:
    path: str
    mode: str
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed_requests: list[str] = field(default_factory=list)
    offsite_requests: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    axe: list[dict[str, Any]] = field(default_factory=list)


#: Waits for MathJax's first typeset and for every image to be fetched and decoded
#: (lazy images are switched to eager so that the whole page is checked).
SETTLE_JS = """
async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  const images = Array.from(document.images);
  for (const img of images) { if (img.loading === "lazy") img.loading = "eager"; }
  await Promise.all(images.map((img) => img.decode().catch(() => null)));
  if (document.fonts && document.fonts.ready) await document.fonts.ready;
}
"""

#: Everything the tests check, gathered from the DOM in one call.
INSPECT_JS = r"""
() => {
  const luminance = (color) => {
    const m = color.match(/rgba?\(([^)]+)\)/);
    if (!m) return null;
    const [r, g, b] = m[1].split(",").map((v) => parseFloat(v) / 255);
    const lin = (c) => (c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4));
    return 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
  };
  const article = document.querySelector("article.bd-article") || document.querySelector("main") || document.body;

  // Visible prose with code, maths and scripts removed: raw TeX left here was not typeset.
  const clone = article.cloneNode(true);
  clone.querySelectorAll("pre, code, kbd, samp, script, style, mjx-container, .highlight, noscript, textarea")
    .forEach((node) => node.remove());
  const prose = clone.textContent;

  const mathElements = Array.from(article.querySelectorAll(".math"));
  const untypeset = mathElements
    .filter((el) => !el.querySelector("mjx-container"))
    .map((el) => el.textContent.trim().slice(0, 120));

  const images = Array.from(document.images).map((img) => ({
    src: img.getAttribute("src"),
    complete: img.complete,
    naturalWidth: img.naturalWidth,
    inContent: article.contains(img),
    alt: img.getAttribute("alt"),
    visible: img.getClientRects().length > 0,
  }));

  const bodyStyle = getComputedStyle(document.body);
  const paragraph = article.querySelector("p") || article;
  return {
    title: document.title,
    dataTheme: document.documentElement.dataset.theme || "",
    dataMode: document.documentElement.dataset.mode || "",
    bodyBackground: bodyStyle.backgroundColor,
    bodyBackgroundLuminance: luminance(bodyStyle.backgroundColor),
    textColor: getComputedStyle(paragraph).color,
    textLuminance: luminance(getComputedStyle(paragraph).color),
    prose,
    mathCount: mathElements.length,
    mjxCount: article.querySelectorAll("mjx-container").length,
    untypeset,
    images,
  };
}
"""

#: For each content figure: how the theme draws it and what its own pixels are.
FIGURES_JS = r"""
() => {
  const article = document.querySelector("article.bd-article") || document.body;
  return Array.from(article.querySelectorAll("img")).map((img) => {
    const style = getComputedStyle(img);
    let corners = null, error = null;
    try {
      const canvas = document.createElement("canvas");
      const w = img.naturalWidth, h = img.naturalHeight;
      canvas.width = w; canvas.height = h;
      const ctx = canvas.getContext("2d");
      ctx.drawImage(img, 0, 0, w, h);
      const at = (x, y) => Array.from(ctx.getImageData(x, y, 1, 1).data);
      corners = [at(1, 1), at(w - 2, 1), at(1, h - 2), at(w - 2, h - 2)];
    } catch (e) { error = String(e); }
    return {
      src: img.getAttribute("src"),
      filter: style.filter,
      opacity: style.opacity,
      mixBlendMode: style.mixBlendMode,
      backgroundColor: style.backgroundColor,
      corners, error,
    };
  });
}
"""


def visit(context, base_url: str, path: str, mode: str) -> tuple[Any, PageReport]:
    """Open ``path`` in a new page of ``context``; return the page and its report.

    Console messages, page errors and requests are recorded from before the first
    request until the page has settled (before any test tool such as axe is injected).
    """
    report = PageReport(path=path, mode=mode)
    page = context.new_page()
    recording = [True]

    def on_console(message) -> None:
        if recording[0] and message.type == "error":
            location = message.location or {}
            report.console_errors.append(
                f"{message.text} ({location.get('url', '')}:{location.get('lineNumber', '')})"
            )

    def on_page_error(error) -> None:
        if recording[0]:
            report.page_errors.append(str(error))

    def on_request(request) -> None:
        if not recording[0]:
            return
        url = request.url
        report.requests.append(url)
        if not (
            url.startswith(base_url) or url.startswith(("data:", "blob:", "about:"))
        ):
            report.offsite_requests.append(url)

    def on_failed(request) -> None:
        if recording[0]:
            report.failed_requests.append(f"{request.url} ({request.failure})")

    def on_response(response) -> None:
        if recording[0] and response.status >= 400:
            report.failed_requests.append(f"{response.url} (HTTP {response.status})")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    page.on("request", on_request)
    page.on("requestfailed", on_failed)
    page.on("response", on_response)
    page.goto(base_url + path, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate(SETTLE_JS)
    page.wait_for_load_state("networkidle")
    report.info = page.evaluate(INSPECT_JS)
    report.info["figures"] = page.evaluate(FIGURES_JS)
    recording[0] = (
        False  # what test tools (axe) do from here on is not the page's doing
    )
    return page, report


def run_axe(page) -> list[dict[str, Any]]:
    """axe-core violations on the loaded page (all impacts), condensed."""
    page.add_script_tag(path=str(AXE))
    return page.evaluate(
        """async () => {
          // "label-content-name-mismatch" (WCAG 2.5.3 Label in Name) is tagged
          // experimental in axe-core 4.x and off by default: run it too.
          const result = await axe.run(document, {
            resultTypes: ["violations"],
            rules: {"label-content-name-mismatch": {enabled: true}},
          });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
            nodes: v.nodes.map((n) => ({target: n.target.join(" "), html: n.html.slice(0, 200),
                                        summary: (n.failureSummary || "").slice(0, 300)})),
          }));
        }"""
    )


#: Every ``pre`` of the article that scrolls sideways (scrollWidth > clientWidth + 1),
#: and how many characters of its font fit in a code cell's ``pre`` (the code column).
CODE_OVERFLOW_JS = r"""
() => {
  const article = document.querySelector("article.bd-article") || document.body;
  const columnChars = (pre) => {
    const style = getComputedStyle(pre);
    const probe = document.createElement("span");
    probe.textContent = "x".repeat(200);
    pre.appendChild(probe);
    const charWidth = probe.getBoundingClientRect().width / 200;
    probe.remove();
    const inner = pre.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    return Math.floor(inner / charWidth + 1e-6);
  };
  const pres = Array.from(article.querySelectorAll("pre")).filter((pre) => pre.getClientRects().length);
  const code = pres.find((pre) => pre.closest(".cell_input")) || pres.find((pre) => !pre.closest(".cell_output"));
  return {
    columnChars: code ? columnChars(code) : null,
    blocks: pres.length,
    overflowing: pres.filter((pre) => pre.scrollWidth > pre.clientWidth + 1).map((pre) => {
      const lines = pre.textContent.split("\n");
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), "");
      return {
        kind: pre.closest(".cell_output") ? "output" : "code",
        overflowPx: pre.scrollWidth - pre.clientWidth,
        longestChars: longest.length,
        longest: longest.slice(0, 120),
      };
    }),
  };
}
"""
