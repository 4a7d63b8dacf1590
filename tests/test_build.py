"""A fresh, strict build of the whole book: every page has its figures, its glued numbers
(within their tolerances) and no error output.

The glued values are read from the executed notebooks the build writes
(``_build/jupyter_execute``) and checked against theory; the HTML is checked to show them.
"""

from __future__ import annotations

import ast
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, REFERENCE

pytestmark = pytest.mark.build


def toc_pages() -> list[str]:
    """docnames of every page in _toc.yml, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def notebook_pages() -> list[str]:
    return [p for p in toc_pages() if (ROOT / f"{p}.md").read_text().startswith("---\njupytext:")]


class _PageParser(HTMLParser):
    """Collects <img> sources/alts, pasted (glued) text and the visible text of <main>."""

    def __init__(self) -> None:
        super().__init__()
        self.images: list[dict[str, str]] = []
        self.pasted: list[str] = []
        self.text: list[str] = []
        self._in_pasted = 0
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "img":
            self.images.append(attributes)
        if tag in {"script", "style"}:
            self._skip += 1
        if "pasted-text" in attributes.get("class", ""):
            self._in_pasted += 1
            self.pasted.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"script", "style"}:
            self._skip -= 1
        if tag == "span" and self._in_pasted:
            self._in_pasted -= 1

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        self.text.append(data)
        if self._in_pasted:
            self.pasted[-1] += data


def parse_page(site: Path, page: str) -> _PageParser:
    parser = _PageParser()
    parser.feed((site / f"{page}.html").read_text(encoding="utf-8"))
    return parser


def glued_values(site: Path, page: str) -> dict[str, object]:
    """name -> Python value of every glue() call in the page's executed notebook."""
    notebook = json.loads((site.parent / "jupyter_execute" / f"{page}.ipynb").read_text())
    values: dict[str, object] = {}
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            text = output["data"].get("application/papermill.record/text/plain")
            try:
                values[name] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                values[name] = text
    return values


# name -> (expected, absolute tolerance, why). Tolerances come from sampling theory or from
# the exact count; see ../shared/notes/science.md.
EXPECTED: dict[str, dict[str, tuple[float, float, str]]] = {
    "book/dot_products": {
        # std(QKᵀ) of one 50×50 product: 7.07 with ≈2.5% seed-to-seed spread; 4 spreads.
        "qk_std": (math.sqrt(50), 4 * 0.025 * math.sqrt(50), "4 × 2.5% seed spread"),
        # uniform entries: √(50/9) with relative SE √((2+κ)/(4n)) ≈ 0.5% at n = 20,000; 5 SE.
        "uniform_std": (math.sqrt(50 / 9), 5 * 0.005 * math.sqrt(50 / 9), "5 SE of a std"),
    },
    "book/sqrt_law": {
        # log–log slope over d = 2…99 at N = 1000: SE 0.003 (science notes); 5 SE.
        "sqrt_law_slope": (0.5, 5 * 0.003, "5 SE of the fitted slope"),
    },
    "book/softmax_saturation": {
        # means over many seeds (science notes, 500 seeds): 0.77 and 0.12; generous ±0.05/±0.02
        # covers a smaller number of seeds (row max p has sd ≈ 0.25 unscaled over 50 rows·seeds).
        "softmax_maxp_unscaled": (0.77, 0.05, "mean over seeds, ≥ 20 seeds"),
        "softmax_maxp_scaled": (0.12, 0.02, "mean over seeds, ≥ 20 seeds"),
    },
}

REAL_GPT2 = {
    # Exact counts, and the extremes given by the provenance file (float32 values).
    "ln_gain_count": (19200, 0, "exact count"),
    "ln_gain_max": (17.419317, 1e-5, "float32 value from the provenance file"),
    "ln_bias_min": (-4.191765, 1e-5, "float32 value from the provenance file"),
    "ln_bias_max": (7.368324, 1e-5, "float32 value from the provenance file"),
}


@pytest.mark.parametrize("page", toc_pages())
def test_page_has_no_error_output(built_site: Path, page: str) -> None:
    html = (built_site / f"{page}.html").read_text(encoding="utf-8")
    for marker in ("Traceback (most recent call last)", "output stderr", "output error", "Error: ", "Warning: "):
        assert marker not in html, f"{page} shows {marker!r}"


@pytest.mark.parametrize("page", notebook_pages())
def test_figures_exist_and_have_alt_text(built_site: Path, page: str) -> None:
    parsed = parse_page(built_site, page)
    figures = [img for img in parsed.images if "_images/" in img.get("src", "")]
    assert figures, f"{page} has no figure"
    for img in figures:
        path = (built_site / page).parent / img["src"]
        assert path.is_file() and path.stat().st_size > 200, f"{page}: missing or empty {img['src']}"
        alt = img.get("alt", "").strip()
        assert len(alt) > 20 and not alt.endswith((".svg", ".png")), f"{page}: figure without real alt text: {alt!r}"


@pytest.mark.parametrize("page", notebook_pages())
def test_glued_numbers_render(built_site: Path, page: str) -> None:
    parsed = parse_page(built_site, page)
    values = glued_values(built_site, page)
    assert values, f"{page} glues no numbers"
    assert parsed.pasted, f"{page} quotes no glued number"
    for text in parsed.pasted:
        assert text.strip() and "nan" not in text.lower(), f"{page}: bad glued text {text!r}"


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_glued_numbers_within_tolerance(built_site: Path, page: str) -> None:
    values = glued_values(built_site, page)
    for name, (expected, tolerance, why) in EXPECTED[page].items():
        assert name in values, f"{page} does not glue {name}"
        assert abs(float(values[name]) - expected) <= tolerance, f"{page}: {name} = {values[name]}, expected {expected} ± {tolerance} ({why})"
    # The page shows the values, formatted as the prose asks.
    html = (built_site / f"{page}.html").read_text(encoding="utf-8")
    assert html.count('class="pasted-text"') >= len(EXPECTED[page])


@pytest.mark.skipif(not (REFERENCE / "gpt2_small_layernorm.npz").is_file(), reason="no reference GPT-2 tensors")
def test_gpt2_chapter_shows_real_values(built_site: Path) -> None:
    values = glued_values(built_site, "book/gpt2_layernorm")
    for name, (expected, tolerance, why) in REAL_GPT2.items():
        assert abs(float(values[name]) - expected) <= tolerance, f"{name} = {values[name]}, expected {expected} ({why})"
    text = " ".join(parse_page(built_site, "book/gpt2_layernorm").pasted)
    assert "17.4" in text and "19,200" in text.replace("19200", "19,200")


def test_mathjax_is_served_locally(built_site: Path) -> None:
    html = (built_site / "book" / "dot_products.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script[^>]+src="([^"]+)"', html)
    mathjax = [s for s in sources if "mathjax" in s.lower()]
    assert mathjax and all(not s.startswith(("http:", "https:", "//")) for s in mathjax), mathjax
    assert (built_site / "_static" / "mathjax" / "tex-chtml.js").stat().st_size > 100_000


def test_no_notebook_outputs_committed(root: Path) -> None:
    """Pages are text notebooks; no executed .ipynb is part of the source tree."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    assert not [f for f in tracked if f.endswith(".ipynb")]
