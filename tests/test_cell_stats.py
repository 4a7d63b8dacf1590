"""tools/cell_stats.py classifies code-cell lines as the issue defines them."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import cell_stats  # noqa: E402

PAGE = """# A page

```{code-cell} ipython3
---
mystnb:
  image:
    alt: "x"
---
import numpy as np  # compute: 1
x = np.arange(3)    # compute: 2
fig, ax = plt.subplots()
ax.plot(x)
report.glue_numbers({
    "a": x.sum(),
}, prefix="p_")
values = report.glue_inputs({"n": 3}, prefix="p_")
report.glue_record(rec, prefix="p_")
print("sum", x.sum())
for v in x:
    print(v)
try:
    data = load()
except sources.DataUnavailable:
    data = None
```

```{code-cell} ipython3
:tags: [remove-input]
%matplotlib inline
glue("t", 1, display=False)
```
"""


def test_lines_are_classified(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text(PAGE)
    stats = cell_stats.page_stats(path)
    assert stats.cells == 2
    assert stats.lines == {
        "compute": 3,  # import, arange, the magic line
        "plot": 2,
        "glue": 6,  # a three-line call, an assignment of one, a record, the myst-nb glue
        "print": 3,  # a print, a loop that only prints
        "fallback": 4,
    }
    assert stats.longest_cell == 16  # the first cell; 18 lines in all
    assert stats.bookkeeping_share == 13 / 18


def test_a_glued_record_is_glue(tmp_path: Path) -> None:
    path = tmp_path / "page.md"
    path.write_text(
        "```{code-cell} ipython3\n"
        "rec = helper.summary(x)\n"
        'report.glue_record(rec, prefix="p_")\n'
        '_ = report.glue_record(rec, prefix="q_",\n'
        '                       exclude=("curve",))\n'
        "```\n"
    )
    stats = cell_stats.page_stats(path)
    assert stats.lines["glue"] == 3 and stats.lines["compute"] == 1


def test_the_book_has_code_cells() -> None:
    """The fence parser finds the chapters' cells (a scan of nothing passes any limit)."""
    pages = [cell_stats.page_stats(p) for p in sorted((ROOT / "book").glob("*.md"))]
    assert sum(p.cells for p in pages) > 100
