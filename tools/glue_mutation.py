"""Run the glue-mutation check on a built site (see tests/glue_mutation.py).

    python tools/glue_mutation.py SITE [--min-guarded 0.9] [--json OUT]

``SITE`` is a built ``_build/html``. Runs the chapter tests (and the glued-value checks
of tests/test_build.py) against it with ``--glue-mutation``: prints the per-chapter
table of quoted numbers, inputs and guarded results, writes the JSON report, and exits
non-zero when the share of guarded results is below ``--min-guarded``. ``make test``
runs the same check inside its one pytest session.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="a built _build/html")
    parser.add_argument("--min-guarded", type=float, default=0.9)
    parser.add_argument(
        "--json", type=Path, default=ROOT / "_build" / "glue_mutation.json"
    )
    args = parser.parse_args(argv)
    site = args.site.resolve()
    if not (site / "index.html").is_file():
        print(
            f"glue_mutation: {site} is not a built site (no index.html)",
            file=sys.stderr,
        )
        return 2
    os.environ["NUMSCALE_TEST_SITE"] = str(site)
    tests = sorted(str(p) for p in (ROOT / "tests").glob("test_chapter_*.py"))
    return int(
        pytest.main(
            [
                *tests,
                str(ROOT / "tests" / "test_build.py"),
                "-q",
                "-p",
                "no:cacheprovider",
                f"--glue-mutation={args.json.resolve()}",
                f"--glue-mutation-min={args.min_guarded}",
            ]
        )
    )


if __name__ == "__main__":
    sys.exit(main())
