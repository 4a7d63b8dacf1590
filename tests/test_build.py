"""A fresh, strict build of the whole book: every page has its figures, its glued numbers
(within their tolerances) and no error output.

The glued values are read from the executed notebooks the build writes
(``_build/.numscale_exec/executed``) and checked against theory; the HTML is checked to show them.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.build


def toc_pages() -> list[str]:
    """docnames of every page in _toc.yml, in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        pages += [chapter["file"] for chapter in part["chapters"]]
    return pages


def notebook_pages() -> list[str]:
    return [
        p
        for p in toc_pages()
        if (ROOT / f"{p}.md").read_text().startswith("---\njupytext:")
    ]


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


class Mutation:
    """The one glued value the glue-mutation check (``tools/glue_mutation.py``) replaces.

    ``name`` is a full glue name (``None``: no mutation), ``value`` what every read of it
    returns while it is set. Chapter tests never set it.
    """

    name: str | None = None
    value: object = None


class GluedValues(Mapping):
    """The glued values of one page (name -> Python value), read live.

    Every read goes through ``__getitem__``, which returns the value of an active
    :class:`Mutation` for its name, and records the full name in ``reads`` (so the
    mutation check reruns only the tests that read a value). ``with_prefix(p)`` is the
    view of the names that start with ``p``, keyed without it.
    """

    reads: set[str] = set()

    def __init__(self, raw: dict[str, object], prefix: str = "") -> None:
        self._raw = raw
        self._prefix = prefix

    def __getitem__(self, key: str) -> object:
        full = self._prefix + key
        value = self._raw[full]
        GluedValues.reads.add(full)
        return Mutation.value if Mutation.name == full else value

    def __iter__(self):
        n = len(self._prefix)
        return (k[n:] for k in self._raw if k.startswith(self._prefix))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def with_prefix(self, prefix: str) -> GluedValues:
        return GluedValues(self._raw, self._prefix + prefix)

    def plain(self) -> dict[str, object]:
        """The values as a plain dict, neither recorded nor mutated: for tests that compare
        two builds of the same page, which must not count as guarding a value."""
        n = len(self._prefix)
        return {k[n:]: v for k, v in self._raw.items() if k.startswith(self._prefix)}


#: What _ext/numscale_data.py writes on a page it built without its data.
WITHOUT_DATA = "This page was built without its data"


def built_without_data(site: Path, page: str) -> bool:
    """Whether the build replaced ``page`` by the note naming the data it lacks."""
    return WITHOUT_DATA in (site / f"{page}.html").read_text(encoding="utf-8")


def glued_values(site: Path, page: str) -> GluedValues:
    """name -> Python value of every glue() call in the page's executed notebook."""
    path = site.parent / ".numscale_exec" / "executed" / f"{page}.ipynb"
    notebook = json.loads(path.read_text())
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
    return GluedValues(values)


# name -> (expected, absolute tolerance, why). Tolerances come from sampling theory or from
# the exact count; see ../shared/notes/science.md.
EXPECTED: dict[str, dict[str, tuple[float, float, str]]] = {
    "book/dot_products": {
        # std(QKᵀ) of one 50×50 product: 7.07 with ≈2.5% seed-to-seed spread; 4 spreads.
        "qk_std": (math.sqrt(50), 4 * 0.025 * math.sqrt(50), "4 × 2.5% seed spread"),
        # uniform entries: √(50/9) with relative SE √((2+κ)/(4n)) ≈ 0.5% at n = 20,000; 5 SE.
        "uniform_std": (
            math.sqrt(50 / 9),
            5 * 0.005 * math.sqrt(50 / 9),
            "5 SE of a std",
        ),
        # Over 2,000 seeds: mean std(QKᵀ) has SE 0.025·7.07/√2000 ≈ 0.004 (5 SE = 0.02); the
        # seed-to-seed spread ≈ 2.5% (science notes, rounded: ±0.05) is itself estimated to
        # a relative SE 1/√(2·2000) ≈ 1.6%, i.e. ±0.04 points (4 SE).
        "qk_seed_mean": (math.sqrt(50), 0.02, "5 SE of a mean over 2,000 seeds"),
        "qk_seed_spread_pct": (2.5, 0.05 + 4 * 0.04, "rounding + 4 SE of a spread"),
        # The iid formula √((1 + 3/d)/(2N)) with d = 50, N = 2,500: exact arithmetic.
        "qk_iid_spread_pct": (
            100 * math.sqrt((1 + 3 / 50) / 5000),
            1e-9,
            "closed form",
        ),
    },
    "book/sqrt_law": {
        # log–log slope over d = 2…99: SE 0.003 at N = 1000 pairs per d (science notes), and
        # SE ∝ 1/√N: 0.003/√10 at the page's N = 10,000; 5 SE (tests/test_chapter_sqrt_law.py
        # derives the SE from the page's own grid).
        "sqrt_law_slope": (
            0.5,
            5 * 0.003 / math.sqrt(10),
            "5 SE of the slope at N = 10,000",
        ),
    },
    "book/softmax_saturation": {
        # Science notes (500 seeds): 0.77, 0.12, 0.65 and 3.45, rounded to two decimals (±0.005).
        # The chapter averages 500 seeds too; the SE of such a mean is ≈0.0013 (max p, unscaled),
        # 0.0004 (scaled), 0.003 and 0.0014 nats (entropies). Tolerance: rounding + 4·√2·SE.
        "softmax_maxp_unscaled": (0.77, 0.005 + 4 * 1.42 * 0.0013, "rounding + 4√2 SE"),
        "softmax_maxp_scaled": (0.12, 0.005 + 4 * 1.42 * 0.0004, "rounding + 4√2 SE"),
        "softmax_entropy_unscaled": (
            0.65,
            0.005 + 4 * 1.42 * 0.003,
            "rounding + 4√2 SE",
        ),
        "softmax_entropy_scaled": (
            3.45,
            0.005 + 4 * 1.42 * 0.0014,
            "rounding + 4√2 SE",
        ),
        "softmax_entropy_max": (math.log(50), 1e-12, "ln 50, exact"),
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
    # myst-nb renders a cell's error as an "output traceback" block and anything written to
    # stderr (warnings included) as "output stderr"; neither may appear in the book.
    for marker in (
        "output traceback",
        "highlight-ipythontb",
        "output stderr",
        "Traceback (most recent call last)",
    ):
        assert marker not in html, f"{page} shows {marker!r}"


@pytest.fixture(params=notebook_pages())
def executed_page(request: pytest.FixtureRequest, built_site: Path) -> str:
    """Each notebook page in turn (the tests' parameter); a page the build replaced by
    the note naming the data it lacks is skipped (tests/test_data_pages.py checks it)."""
    if built_without_data(built_site, request.param):
        pytest.skip(f"{request.param} was built without its data")
    return request.param


def test_no_cell_shows_a_dictionary_of_glue_names(
    built_site: Path, executed_page: str
) -> None:
    """A cell ending in a glue call shows nothing (report.Glued), never the mapping."""
    path = built_site.parent / ".numscale_exec" / "executed" / f"{executed_page}.ipynb"
    names = set(glued_values(built_site, executed_page)._raw)
    for cell in json.loads(path.read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", ""))
            if output.get("output_type") == "execute_result" and text.startswith("{"):
                shown = {name for name in names if repr(name) in text}
                assert not shown, (
                    f"{executed_page} shows a dictionary of glue names: {text[:200]}"
                )


def test_figures_exist_and_have_alt_text(built_site: Path, executed_page: str) -> None:
    parsed = parse_page(built_site, executed_page)
    figures = [img for img in parsed.images if "_images/" in img.get("src", "")]
    assert figures, f"{executed_page} has no figure"
    for img in figures:
        path = (built_site / executed_page).parent / img["src"]
        assert path.is_file() and path.stat().st_size > 200, (
            f"{executed_page}: missing or empty {img['src']}"
        )
        # Vector figures (dense scatters are rasterized inside them): crisp at any zoom.
        assert path.suffix == ".svg", (
            f"{executed_page}: figure is not SVG: {img['src']}"
        )
        alt = img.get("alt", "").strip()
        assert len(alt) > 20 and not alt.endswith((".svg", ".png")), (
            f"{executed_page}: figure without real alt text: {alt!r}"
        )


def test_glued_numbers_render(built_site: Path, executed_page: str) -> None:
    parsed = parse_page(built_site, executed_page)
    values = glued_values(built_site, executed_page)
    assert values, f"{executed_page} glues no numbers"
    assert parsed.pasted, f"{executed_page} quotes no glued number"
    for text in parsed.pasted:
        assert text.strip() and "nan" not in text.lower(), (
            f"{executed_page}: bad glued text {text!r}"
        )


@pytest.mark.parametrize("page", sorted(EXPECTED))
def test_glued_numbers_within_tolerance(built_site: Path, page: str) -> None:
    values = glued_values(built_site, page)
    for name, (expected, tolerance, why) in EXPECTED[page].items():
        assert name in values, f"{page} does not glue {name}"
        assert abs(float(values[name]) - expected) <= tolerance, (
            f"{page}: {name} = {values[name]}, expected {expected} ± {tolerance} ({why})"
        )
    # The page shows the values, formatted as the prose asks.
    html = (built_site / f"{page}.html").read_text(encoding="utf-8")
    assert html.count('class="pasted-text"') >= len(EXPECTED[page])


def test_sqrt_law_slope_within_its_own_standard_error(built_site: Path) -> None:
    values = glued_values(built_site, "book/sqrt_law")
    # The page's sampling-theory SE of the slope (numscale.dotprod.predicted_slope_se, unit
    # tested); a correct law lands within 5 SE with probability 1 − 6e-7.
    assert abs(values["sqrt_law_slope"] - 0.5) <= 5 * values["sqrt_law_slope_se_theory"]


def test_gpt2_chapter_shows_real_values(built_site: Path) -> None:
    values = glued_values(built_site, "book/gpt2_layernorm")
    for name, (expected, tolerance, why) in REAL_GPT2.items():
        assert abs(float(values[name]) - expected) <= tolerance, (
            f"{name} = {values[name]}, expected {expected} ({why})"
        )
    text = " ".join(parse_page(built_site, "book/gpt2_layernorm").pasted)
    assert "17.4" in text and "19,200" in text.replace("19200", "19,200")


def test_mathjax_is_served_locally(built_site: Path) -> None:
    html = (built_site / "book" / "dot_products.html").read_text(encoding="utf-8")
    sources = re.findall(r'<script[^>]+src="([^"]+)"', html)
    mathjax = [s for s in sources if "mathjax" in s.lower()]
    assert mathjax and all(
        not s.startswith(("http:", "https:", "//")) for s in mathjax
    ), mathjax
    assert (
        built_site / "_static" / "mathjax" / "tex-chtml.js"
    ).stat().st_size > 100_000


def test_no_notebook_outputs_committed(root: Path) -> None:
    """Pages are text notebooks; no executed .ipynb is part of the source tree."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [f for f in tracked if f.endswith(".ipynb")]
