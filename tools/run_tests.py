"""``make test``: the whole suite, in phases that share one build of the book.

    python3 tools/run_tests.py [--phases build,unit,...] [--workers N] [--out FILE]

Phases, in order (each a separate, timed step; the names are ``make bench``'s):

``setup``
    ``make setup-test browser``: the venv, npm packages, Chromium and poppler (a no-op
    when they are installed). Under ``make test`` these are the target's prerequisites,
    timed from make's start (``--started``).
``build``
    ``make book``: the one build of the run, strict (``-n -W --keep-going``) into
    ``_build/html`` (cold on CI, where ``.ci/run`` removes ``_build``; incremental on a
    developer's machine, where the build re-executes exactly the pages whose code or
    helpers changed). Every later phase tests it (``NUMSCALE_TEST_SITE``).
``unit``
    Tests that need no build and no browser (``make check``), on every core
    (pytest-xdist).
``claims``
    Tests that read the built book: glued numbers and their tolerances, figures, the
    package reference, the served notebooks; and the incremental-build tests on toy books
    (markers ``build``, not ``browser``). With them the glue-mutation check
    (``tests/glue_mutation.py``): every quoted result made wrong, the tests that read it
    rerun; its table is printed and written to ``_build/glue_mutation.json``.
``notebooks``
    Every chapter's downloadable notebook executed outside the repository (marker
    ``notebooks``).
``browser``
    The site in Chromium (``tests/test_site.py``, marker ``browser``), two browsers side
    by side.
``pdf``
    The book printed to PDF and read back (``tests/test_pdf.py``).
``reproducibility``
    A second clean build, byte-identical to the run's build.

A failed phase does not stop the later ones (each reports its own failures), except a
failed setup or build, after which nothing can be tested. The exit status is non-zero
if any phase failed. Wall times go to ``_build/test-phases.json`` (read by
``tools/bench.py``) with whether the build was cold, and are printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: The venv's Python (make runs this script with it) and the venv make should use.
PYTEST = [sys.executable, "-m", "pytest"]
VENV = Path(sys.executable).parent.parent

#: Share of the numbers the prose quotes as results that a test must guard (the
#: glue-mutation check fails the claims phase below it).
GLUE_MUTATION_MIN = 0.9

#: (phase, pytest arguments after ``pytest``, parallel). Together the marker
#: expressions select every test exactly once (the unit phase is ``make check``).
PYTEST_PHASES: list[tuple[str, list[str], bool]] = [
    ("unit", ["tests", "-m", "not build and not browser and not notebooks"], True),
    (
        "claims",
        [
            "tests",
            "-m",
            "build and not browser and not notebooks",
            "--ignore",
            "tests/test_reproducibility.py",
            # the glue-mutation check (tests/glue_mutation.py) in the same session: each
            # test that read a quoted result runs again with that result made wrong
            "--glue-mutation",
            str(ROOT / "_build" / "glue_mutation.json"),
            f"--glue-mutation-min={GLUE_MUTATION_MIN}",
        ],
        True,
    ),
    ("notebooks", ["tests", "-m", "notebooks and not browser"], True),
    ("browser", ["tests", "-m", "browser", "--ignore", "tests/test_pdf.py"], True),
    ("pdf", ["tests/test_pdf.py"], False),
    ("reproducibility", ["tests/test_reproducibility.py"], False),
]
PHASES = ["setup", "build"] + [name for name, _, _ in PYTEST_PHASES]


def run(command: list[str], env: dict[str, str]) -> int:
    print(f"\n==> {' '.join(command)}", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="make test, in timed phases")
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)} (default: all)",
    )
    parser.add_argument(
        "--workers",
        default=os.environ.get("NUMSCALE_TEST_WORKERS", "auto"),
        help="pytest-xdist workers for the parallel phases (default: one per core)",
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "_build" / "test-phases.json"
    )
    parser.add_argument(
        "--started",
        type=float,
        default=None,
        help="Unix time make started: the setup phase was make's prerequisites",
    )
    args = parser.parse_args(argv)
    wanted = [p for p in args.phases.split(",") if p]
    unknown = sorted(set(wanted) - set(PHASES))
    if unknown:
        parser.error(f"unknown phase(s) {unknown}; choose from {PHASES}")

    env = dict(os.environ)
    make = ["make", "--no-print-directory", f"VENV={VENV}"]
    cold = not (ROOT / "_build" / ".built").exists()
    results: dict[str, dict] = {}
    started = time.perf_counter()

    def phase(name: str, command: list[str]) -> int:
        start = time.perf_counter()
        code = run(command, env)
        results[name] = {"seconds": round(time.perf_counter() - start, 2), "exit": code}
        return code

    if args.started is not None:  # make ran the setup as this target's prerequisites
        results["setup"] = {"seconds": round(time.time() - args.started, 2), "exit": 0}
        started -= results["setup"]["seconds"]
    elif "setup" in wanted and phase("setup", make + ["setup-test", "browser"]) != 0:
        return finish(results, started, cold, args.out)
    if "build" in wanted:
        build_start = time.time()
        if phase("build", make + ["book"]) != 0:
            return finish(results, started, cold, args.out)
        report = ROOT / "_build" / ".numscale_exec" / "report.json"
        ran = (
            report.is_file() and report.stat().st_mtime >= build_start
        )  # else make built nothing
        executed = json.loads(report.read_text()).get("executed", {}) if ran else {}
        results["build"]["executed_pages"] = len(executed)  # all of them when cold
    site = ROOT / "_build" / "html"
    env.setdefault("NUMSCALE_TEST_SITE", str(site))
    for name, selection, parallel in PYTEST_PHASES:
        if name not in wanted:
            continue
        extra = ["-n", str(args.workers), "--dist", "loadgroup"] if parallel else []
        code = phase(name, PYTEST + extra + selection)
        if code == 5:  # pytest: no test selected (e.g. a phase emptied by markers)
            results[name]["exit"] = 0
    return finish(results, started, cold, args.out)


def finish(results: dict[str, dict], started: float, cold: bool, out: Path) -> int:
    total = round(time.perf_counter() - started, 2)
    failed = [name for name, r in results.items() if r["exit"] != 0]
    report = {
        "phases": results,
        "total_seconds": total,
        "cold_build": cold,
        "cpus": os.cpu_count(),
        "failed": failed,
    }
    if "build" in results and cold:
        report["total_over_cold_build"] = round(total / results["build"]["seconds"], 2)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print("\nmake test, by phase (wall time):")
    for name, r in results.items():
        print(
            f"  {name:<16} {r['seconds']:8.1f} s  {'ok' if r['exit'] == 0 else 'FAILED'}"
        )
    print(
        f"  {'total':<16} {total:8.1f} s"
        + (
            f"  ({report['total_over_cold_build']} x the cold build)"
            if "total_over_cold_build" in report
            else ""
        )
    )
    if failed:
        print(f"failed phase(s): {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
