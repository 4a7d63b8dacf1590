"""What the chapters' code cells spend their lines on: ``python tools/cell_stats.py``.

Every line of every ``{code-cell}`` in ``book/*.md`` is put in one class, by the top-level
statement it belongs to (parsed with :mod:`ast`):

``glue``
    a call of ``report.glue_numbers``/``report.glue_inputs``/``report.glue_record``/
    ``glue`` (myst-nb), or an assignment of one;
``print``
    a ``print(...)`` call, or a loop whose body only prints;
``fallback``
    a ``try`` statement whose handlers catch a data-source exception (``...Unavailable``);
``plot``
    a statement that uses ``plt``, a figure or an axes (names ``fig``, ``ax``, ``ax1``...);
``compute``
    everything else (comments and blank lines are not counted).

Bookkeeping is glue + print + fallback. ``--json FILE`` writes the table; ``--max-share``
and ``--max-cell`` make the exit status non-zero when a chapter exceeds them.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("compute", "plot", "glue", "print", "fallback")
BOOKKEEPING = ("glue", "print", "fallback")
GLUE_CALLS = {"glue_numbers", "glue_inputs", "glue_record", "glue"}
PLOT_NAMES = re.compile(r"^(plt|fig|ax\d*|axes|axs|plotting)$")
FENCE = re.compile(r"^(`{3,}|~{3,})\{code-cell\}")


@dataclass
class PageStats:
    """Line counts of one chapter's code cells, by class, and its longest cell."""

    page: str
    lines: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CLASSES, 0))
    cells: int = 0
    longest_cell: int = 0

    @property
    def total(self) -> int:
        return sum(self.lines.values())

    @property
    def bookkeeping_share(self) -> float:
        return (
            sum(self.lines[c] for c in BOOKKEEPING) / self.total if self.total else 0.0
        )


def code_cells(text: str) -> list[str]:
    """The sources of the ``{code-cell}`` fences of a MyST page, without their options
    (``:tags:`` lines and a ``---`` front matter block)."""
    cells, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        match = FENCE.match(lines[i].strip())
        if not match:
            i += 1
            continue
        fence, body, i = match.group(1), [], i + 1
        while i < len(lines) and lines[i].strip() != fence:
            body.append(lines[i])
            i += 1
        i += 1
        if body and body[0].strip() == "---":  # options block
            end = next(j for j in range(1, len(body)) if body[j].strip() == "---")
            body = body[end + 1 :]
        while body and body[0].startswith(":"):
            body = body[1:]
        cells.append("\n".join(body))
    return cells


def _called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Expr):
        node = node.value
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        node = node.value
    if isinstance(node, ast.Call):
        func = node.func
        return (
            func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        )
    return None


def _is_print_only(node: ast.AST) -> bool:
    if _called_name(node) == "print":
        return True
    if isinstance(node, (ast.For, ast.With)):
        return all(_is_print_only(child) for child in node.body)
    return False


def _class_of(node: ast.stmt) -> str:
    name = _called_name(node)
    if name in GLUE_CALLS:
        return "glue"
    if _is_print_only(node):
        return "print"
    if isinstance(node, ast.Try) and any(
        "Unavailable" in ast.unparse(h.type) for h in node.handlers if h.type
    ):
        return "fallback"
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    if any(PLOT_NAMES.match(n) for n in names):
        return "plot"
    return "compute"


def cell_lines(source: str) -> dict[str, int]:
    """Counted lines of one cell by class (magics and shell escapes count as compute)."""
    counts = dict.fromkeys(CLASSES, 0)
    cleaned = "\n".join(
        "pass" if line.lstrip().startswith(("%", "!")) else line
        for line in source.splitlines()
    )
    tree = ast.parse(cleaned)
    code_lines = {
        i
        for i, line in enumerate(cleaned.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#")
    }
    for node in tree.body:
        span = set(range(node.lineno, (node.end_lineno or node.lineno) + 1))
        counts[_class_of(node)] += len(span & code_lines)
    return counts


def page_stats(path: Path) -> PageStats:
    stats = PageStats(page=path.stem)
    for source in code_cells(path.read_text(encoding="utf-8")):
        counts = cell_lines(source)
        stats.cells += 1
        stats.longest_cell = max(stats.longest_cell, sum(counts.values()))
        for name, n in counts.items():
            stats.lines[name] += n
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, default=ROOT / "book")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--max-share", type=float, default=None)
    parser.add_argument("--max-cell", type=int, default=None)
    args = parser.parse_args(argv)
    pages = [page_stats(p) for p in sorted(args.book.glob("*.md"))]
    pages = [p for p in pages if p.cells]
    print(
        f"{'page':22s} {'lines':>5s} "
        + " ".join(f"{c:>8s}" for c in CLASSES)
        + f" {'bookkeeping':>11s} {'longest':>7s}"
    )
    failed = []
    for p in pages:
        print(
            f"{p.page:22s} {p.total:5d} "
            + " ".join(f"{p.lines[c]:8d}" for c in CLASSES)
            + f" {100 * p.bookkeeping_share:10.0f}% {p.longest_cell:7d}"
        )
        if args.max_share is not None and p.bookkeeping_share > args.max_share:
            failed.append(f"{p.page}: bookkeeping {100 * p.bookkeeping_share:.0f}%")
        if args.max_cell is not None and p.longest_cell > args.max_cell:
            failed.append(f"{p.page}: a cell of {p.longest_cell} lines")
    total = {c: sum(p.lines[c] for p in pages) for c in CLASSES}
    n = sum(total.values())
    print(
        f"{'all':22s} {n:5d} "
        + " ".join(f"{total[c]:8d}" for c in CLASSES)
        + f" {100 * sum(total[c] for c in BOOKKEEPING) / n:10.0f}%"
    )
    if args.json:
        args.json.write_text(json.dumps([asdict(p) for p in pages], indent=1))
    for line in failed:
        print("over the limit:", line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
