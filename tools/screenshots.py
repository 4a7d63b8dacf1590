"""Screenshots of every page of the built book, in light and dark mode, for review.

    python tools/screenshots.py _build/html _build/screenshots [--phone] [--first-visit]
                                [--pages book/intro ...]

Writes ``<out>/<page>-light.png`` and ``<out>/<page>-dark.png`` (full page, desktop
width) for every page of ``_toc.yml`` and for ``search.html`` (with a query); with
``--phone``, also ``<page>-phone-<mode>.png`` (390 × 844, the first screen, and the
navigation opened); with ``--first-visit``, the pages as a first-time visitor sees them
(empty browser storage, the system scheme light or dark). The site is served on loopback and rendered by /usr/bin/chromium,
exactly as in the browser tests (tests/browser_support.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser_support import (
    MODES,
    PHONE,
    SETTLE_JS,
    SiteServer,
    launch_chromium,
    new_context,
    toc_docnames,
)  # noqa: E402


def _settle(page) -> None:
    page.wait_for_load_state("networkidle")
    page.evaluate(SETTLE_JS)


def _page_list(selected: list[str] | None) -> list[tuple[str, str]]:
    """(url path, file stem) pairs."""
    pages = [(f"{name}.html", name.replace("/", "_")) for name in toc_docnames(ROOT)]
    pages.append(("search.html?q=softmax", "search"))
    if selected:
        wanted = {s.removesuffix(".html") for s in selected}
        pages = [
            p
            for p in pages
            if p[0].split("?")[0].removesuffix(".html") in wanted or p[1] in wanted
        ]
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built HTML folder (_build/html)")
    parser.add_argument("out", type=Path, help="folder for the PNG files")
    parser.add_argument(
        "--phone", action="store_true", help="also phone-sized screenshots"
    )
    parser.add_argument(
        "--first-visit",
        action="store_true",
        help="open every page with empty browser storage (a first visit)",
    )
    parser.add_argument("--pages", nargs="*", help="only these pages (e.g. book/intro)")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        parser.error(
            f"{args.site} is not a built site (no index.html): run `make book` first"
        )
    args.out.mkdir(parents=True, exist_ok=True)

    from playwright.sync_api import sync_playwright

    start = time.perf_counter()
    written = 0
    with SiteServer(args.site) as server, sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        for mode in MODES:
            context = new_context(browser, mode, first_visit=args.first_visit)
            for path, stem in _page_list(args.pages):
                if args.first_visit:  # a fresh context per page: nothing stored
                    context.close()
                    context = new_context(browser, mode, first_visit=True)
                page = context.new_page()
                page.goto(server.url + path, wait_until="load")
                if path.startswith("search.html"):
                    page.wait_for_selector(
                        "#search-results .search-summary", timeout=20_000
                    )
                _settle(page)
                suffix = "-first-visit" if args.first_visit else ""
                page.screenshot(
                    path=str(args.out / f"{stem}-{mode}{suffix}.png"), full_page=True
                )
                written += 1
                page.close()
            context.close()
            if args.phone:
                context = new_context(
                    browser, mode, viewport=PHONE, is_mobile=True, has_touch=True
                )
                for path, stem in _page_list(args.pages):
                    page = context.new_page()
                    page.goto(server.url + path, wait_until="load")
                    _settle(page)
                    page.screenshot(path=str(args.out / f"{stem}-phone-{mode}.png"))
                    toggles = page.locator("button.primary-toggle")
                    visible = [
                        toggles.nth(i)
                        for i in range(toggles.count())
                        if toggles.nth(i).is_visible()
                    ]
                    if visible:
                        visible[0].click()
                        page.wait_for_timeout(400)
                        page.screenshot(
                            path=str(args.out / f"{stem}-phone-{mode}-nav.png")
                        )
                        written += 1
                    written += 1
                    page.close()
                context.close()
        browser.close()
    print(
        f"wrote {written} screenshots to {args.out} in {time.perf_counter() - start:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
