"""Execute chapters as notebooks, outside the book build, and report errors.

    python tools/run_pages.py book/dot_products.md [more pages...] [--out DIR]

Each page is read as a notebook (jupytext), executed top to bottom in a fresh kernel
with nbclient in a temporary directory, and written to ``--out`` (default a temporary
folder) as ``.ipynb``. Exits non-zero if any page fails. Useful while writing a chapter;
the book build itself executes pages through ``_ext/numscale_execute.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient
import nbformat


def run_page(page: Path, out_dir: Path, timeout: int = 600) -> float:
    """Execute ``page`` in a temporary working directory; return seconds taken."""
    notebook = jupytext.read(page)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cwd:
        nbclient.NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": cwd}},
        ).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out_dir / (page.stem + ".ipynb"))
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.mkdtemp(prefix="numscale-pages-"))
    )
    args = parser.parse_args(argv)
    failed = 0
    for page in args.pages:
        try:
            seconds = run_page(page, args.out)
            print(
                f"ok    {page}  {seconds:.1f} s  -> {args.out / (page.stem + '.ipynb')}"
            )
        except nbclient.exceptions.CellExecutionError as exc:
            failed += 1
            print(f"FAIL  {page}\n{exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
