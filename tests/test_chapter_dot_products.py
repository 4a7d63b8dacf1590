"""Chapter checks for book/dot_products.md, and source checks shared by the chapters of
issue 9/13 that show helper code (imported by the other tests/test_chapter_*.py files).

Here: every number the page's prose quotes is checked against theory (the variance law,
the Wishart moments of QKᵀ, the sampling error of a standard deviation) or exact
arithmetic; the tolerances of tests/test_build.py (EXPECTED) remain as a second check.
That every code line of every page fits the 88-character code column is checked by
tests/test_code_style.py (test_code_cell_lines_fit_the_column).
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CODE_COLUMN = 88  # characters: the book's code column (CONTRIBUTING / issue 13)
LITERALINCLUDE = re.compile(
    r"```\{literalinclude\}\s+\.\./src/(?P<path>[\w/]+)\.py\s*\n:pyobject:\s*(?P<name>\w+)"
)


def shown_functions(page: str) -> list[tuple[str, str]]:
    """(module, function name) of every ``literalinclude :pyobject:`` in the page."""
    text = (ROOT / f"{page}.md").read_text(encoding="utf-8")
    return [
        (m["path"].replace("/", "."), m["name"]) for m in LITERALINCLUDE.finditer(text)
    ]


def check_shown_sources(page: str, expected: set[tuple[str, str]]) -> None:
    """The page shows exactly ``expected``; each is a function of the package whose source
    (what Sphinx includes: inspect.getsource of the same object) fits the code column."""
    shown = shown_functions(page)
    assert set(shown) == expected, f"{page} shows {shown}"
    for module_name, name in shown:
        function = getattr(importlib.import_module(module_name), name)
        assert inspect.isfunction(function), f"{module_name}.{name} is not a function"
        source = inspect.getsource(function)
        too_long = [line for line in source.splitlines() if len(line) > CODE_COLUMN]
        assert not too_long, (
            f"{module_name}.{name} has lines over {CODE_COLUMN}: {too_long}"
        )


# ----------------------------------------------------------------- the page's glued values
# Expectations come from theory (the variance law, the Wishart moments of QKᵀ, the
# sampling error of a standard deviation) or exact arithmetic, never from the values.

PAGE = "book/dot_products"
N, D = 50, 50  # the page's 50 queries and 50 keys of length 50 (inputs)


def wishart_spread(n: int, d: int) -> float:
    """Relative seed-to-seed SD of std(QKᵀ), Q and K (n, d) iid N(0, 1).

    ‖QKᵀ‖² = tr(AB), A, B independent Wishart(d, n): Var/mean² = 2(2n + d + 1)/(n²d);
    the square root halves a small relative spread.
    """
    return math.sqrt((2 * n + d + 1) / (2 * n**2 * d))


@pytest.mark.build
def test_one_product_is_near_sqrt_d(v):
    # entries of Q and K: std of 2,500 iid N(0, 1) draws, relative SE 1/√(2·2500); 5 SE
    for name in ("std_q", "std_k"):
        assert abs(v[name] - 1) <= 5 / math.sqrt(2 * N * D), name
    assert v["sqrt_d"] == pytest.approx(math.sqrt(D), rel=1e-15)
    # one product's std: relative seed-to-seed SD from the Wishart moments (2.46%); 4 SD
    assert abs(v["qk_std"] / math.sqrt(D) - 1) <= 4 * wishart_spread(N, D)


@pytest.mark.build
def test_uniform_entries_follow_the_law(v):
    n_pairs = v["uniform_n_pairs"]  # an input of the page
    assert v["uniform_predicted"] == pytest.approx(math.sqrt(D / 9), rel=1e-12)
    # excess kurtosis of q·k: one product of two U(−1, 1) has E[q⁴]E[k⁴]/σ⁸ =
    # (1/5)²/(1/3)⁴ = 81/25, excess 81/25 − 3; a sum of D terms divides it by D
    kappa = (81 / 25 - 3) / D
    rel_se = math.sqrt((2 + kappa) / (4 * n_pairs))
    assert v["uniform_rel_se_pct"] == pytest.approx(100 * rel_se, rel=1e-9)
    # the measured std within 5 of those standard errors
    assert abs(v["uniform_std"] / math.sqrt(D / 9) - 1) <= 5 * rel_se


@pytest.mark.build
def test_seed_to_seed_spread_is_the_shared_rows_not_iid(v):
    n_seeds = v["qk_n_seeds"]  # an input of the page
    wishart = wishart_spread(N, D)
    iid = math.sqrt((1 + 3 / D) / (2 * N * N))  # N² independent dot products
    assert v["qk_wishart_spread_pct"] == pytest.approx(100 * wishart, rel=1e-12)
    assert v["qk_iid_spread_pct"] == pytest.approx(100 * iid, rel=1e-12)
    # the spread measured over n_seeds seeds estimates the Wishart value to a relative
    # SE of 1/√(2(n_seeds − 1)) (1.6% at 2,000 seeds; the std of T is near Gaussian):
    # 4 SE, plus 1% for the first-order (delta-method) square root
    tolerance = 4 / math.sqrt(2 * (n_seeds - 1)) + 0.01
    assert abs(v["qk_seed_spread_pct"] / (100 * wishart) - 1) <= tolerance
    # and it is far from the iid value the prose contrasts it with
    assert v["qk_seed_spread_pct"] > 100 * iid * (1 + 10 / math.sqrt(2 * n_seeds))
    # mean over seeds: SE = spread·√d/√n_seeds; 5 SE
    se_mean = wishart * math.sqrt(D) / math.sqrt(n_seeds)
    assert abs(v["qk_seed_mean"] - math.sqrt(D)) <= 5 * se_mean
