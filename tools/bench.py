"""Measure the book's build speed, page weights, GPT-2 loading I/O, reproducibility and
the test suite's time.

    python tools/bench.py [--runs 3] [--out _build/bench.json] [--no-test]

Works on a copy of the working tree in a temporary folder (so ``_build`` here is left
alone) and drives it through ``make book``, as a reader would. Writes a JSON report and
prints a table. Timings are medians over ``--runs`` runs; the execution phase is reported
as a ratio to the serial sum of page execution times (measured in a cold build with one
worker, pages executing alone). Incremental rebuilds are compared with their floor: the
execution time of the pages they re-executed plus 3 s of Sphinx work.

Then (unless ``--no-test``) ``make check`` and ``make test`` run in a fresh clone of the
repository's HEAD (``git clone``; ``_build`` absent, as on CI): ``make test`` wall time by
phase (setup, build, unit, claims, notebooks, browser, pdf, reproducibility, from
``tools/run_tests.py``) and its ratio to the cold ``make book`` of the same run.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
#: 25 LayerNorms × (gain, bias) × 768 float32 = 153,600 bytes
LN_BYTES = 25 * 2 * 768 * 4
TARGETS = {
    "noop_make_book_s": 3.0,
    "exec_phase_over_serial_sum": 0.65,
    "heaviest_page_bytes": 1.5e6,
    "ln_read_over_ln_bytes": 2.0,
}
#: Sphinx work allowed on top of the execution of the re-executed pages (incremental builds).
REBUILD_OVERHEAD_S = 3.0
#: A page Sphinx reads, in its log.
READ_LINE = re.compile(r"reading sources\.\.\. \[\s*\d+%\] (\S+)")
#: ``make test`` and ``make check`` on a fresh clone (2 cores).
TEST_TARGETS = {"make_test_s": 480.0, "make_check_s": 90.0}


def copy_tree(dest: Path) -> Path:
    """Copy the tracked and untracked (not ignored) files, keeping mtimes."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (dest / "node_modules").symlink_to(ROOT / "node_modules")
    return dest


def make_book(tree: Path, env: dict[str, str] | None = None) -> tuple[float, dict]:
    """Run ``make book`` in ``tree``; return (seconds, execution report of that run)."""
    report_file = tree / "_build" / ".numscale_exec" / "report.json"
    if report_file.exists():
        report_file.unlink()
    start = time.perf_counter()
    result = subprocess.run(
        ["make", "--no-print-directory", "book", f"VENV={VENV}"],
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(
            f"make book failed in {tree}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    report = (
        json.loads(report_file.read_text())
        if report_file.exists()
        else {"executed": {}, "wall_seconds": 0.0}
    )
    # The pages Sphinx read again (parsed from its log, colours removed).
    log = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)
    report["read"] = sorted(set(READ_LINE.findall(log)))
    return seconds, report


def cold_build(tree: Path, workers: int) -> tuple[float, dict]:
    shutil.rmtree(tree / "_build", ignore_errors=True)
    return make_book(tree, {"NUMSCALE_EXEC_WORKERS": str(workers)})


def append_line(path: Path, marker: str, line: str) -> None:
    """Insert ``line`` right after the first occurrence of ``marker`` in ``path``."""
    text = path.read_text()
    index = text.index(marker) + len(marker)
    path.write_text(text[:index] + "\n" + line + text[index:])


def append_text(path: Path, text: str) -> None:
    """Append ``text`` to the file ``path``."""
    with open(path, "a") as handle:
        handle.write(text)


def time_rebuilds(
    tree: Path, runs: int, file: str, edit: Callable[[Path, int], None]
) -> tuple[dict, list[float]]:
    """``runs`` times: ``edit(tree / file, run)``, then ``make book`` in ``tree``.

    Returns the record of the edit (``file``; ``rebuild_s``, the median wall time of the
    rebuilds; ``exec_s``, the median of their execution phases; ``executed`` and
    ``read``, the pages executed and read by any of them) and the execution-phase
    seconds of each run (for :func:`rebuild_floor`).
    """
    seconds, exec_seconds, executed, read = [], [], set(), set()
    for run in range(runs):
        edit(tree / file, run)
        rebuild_s, report = make_book(tree)
        seconds.append(rebuild_s)
        exec_seconds.append(report["wall_seconds"])
        executed |= set(report["executed"])
        read |= set(report["read"])
    record = {
        "file": file,
        "rebuild_s": round(statistics.median(seconds), 2),
        "exec_s": round(statistics.median(exec_seconds), 2),
        "executed": sorted(executed),
        "read": sorted(read),
    }
    return record, exec_seconds


def page_weights(site: Path) -> dict[str, int]:
    """Bytes of each page: its HTML plus every image it references."""
    weights = {}
    for html in sorted(site.glob("book/*.html")):
        text = html.read_text(encoding="utf-8")
        images = set(re.findall(r'src="(\.\./_images/[^"]+)"', text))
        weights[f"book/{html.stem}"] = html.stat().st_size + sum(
            (html.parent / src).stat().st_size for src in images
        )
    return weights


def run_python(script: str) -> dict:
    """Run ``script`` in a fresh process of this Python; the JSON object its last line
    prints."""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def ln_read_bytes(workdir: Path) -> dict[str, int]:
    """Bytes read from a GPT-2 .safetensors file to load the LayerNorm parameters."""
    script = f"""
import json, torch, transformers
from pathlib import Path
model_dir = Path({str(workdir)!r}) / "gpt2-random"
model = transformers.GPT2LMHeadModel(transformers.GPT2Config())
generator = torch.Generator().manual_seed(0)
with torch.no_grad():  # GPT-2's N(0, 0.02²) from a seeded generator (LayerNorms: 1 and 0)
    for name, tensor in model.named_parameters():
        if ".ln_" not in name and "ln_f" not in name:
            tensor.copy_(0.02 * torch.randn(tensor.shape, generator=generator))
model.save_pretrained(model_dir)
print(json.dumps({{"file": str(next(model_dir.glob("*.safetensors")))}}))
"""
    file = run_python(script)["file"]
    measure = f"""
import json
def rchar():
    for line in open("/proc/self/io"):
        if line.startswith("rchar"):
            return int(line.split()[1])
from numscale.models import gpt2
before = rchar()
params = gpt2.layernorm_parameters(source={file!r})
after = rchar()
print(json.dumps({{"read": after - before}}))
"""
    read = run_python(measure)["read"]
    return {
        "file_bytes": Path(file).stat().st_size,
        "ln_bytes": LN_BYTES,
        "read_bytes": read,
    }


def compare_trees(a: Path, b: Path) -> list[str]:
    """Relative paths of files that differ (or exist in one tree only)."""
    differ: list[str] = []

    def walk(cmp: filecmp.dircmp, prefix: str) -> None:
        differ.extend(
            prefix + n for n in cmp.left_only + cmp.right_only + cmp.funny_files
        )
        _, mismatch, errors = filecmp.cmpfiles(
            cmp.left, cmp.right, cmp.common_files, shallow=False
        )
        differ.extend(prefix + n for n in mismatch + errors)
        for name, sub in cmp.subdirs.items():
            walk(sub, prefix + name + "/")

    walk(filecmp.dircmp(a, b), "")
    return sorted(differ)


def time_tests(workdir: Path) -> dict:
    """``make check`` then ``make test`` in a fresh clone of HEAD (no ``_build``)."""
    clone = workdir / "clone"
    subprocess.run(["git", "clone", "-q", "--local", str(ROOT), str(clone)], check=True)
    (clone / "node_modules").symlink_to(ROOT / "node_modules")
    # The venv and node_modules are this checkout's: give the files their stamps depend on
    # this checkout's times, so that make does not reinstall them (the clone's are newer).
    for name in (
        "requirements.txt",
        "requirements-test.txt",
        "pyproject.toml",
        "package.json",
        "package-lock.json",
    ):
        stat = (ROOT / name).stat()
        os.utime(clone / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    make = ["make", "--no-print-directory", f"VENV={VENV}"]
    start = time.perf_counter()
    check = subprocess.run(make + ["check"], cwd=clone, capture_output=True, text=True)
    check_s = time.perf_counter() - start
    start = time.perf_counter()
    test = subprocess.run(make + ["test"], cwd=clone, capture_output=True, text=True)
    test_s = time.perf_counter() - start
    phases_file = clone / "_build" / "test-phases.json"
    phases = json.loads(phases_file.read_text()) if phases_file.is_file() else {}
    return {
        "make_check_s": round(check_s, 1),
        "make_check_passed": check.returncode == 0,
        "make_test_s": round(test_s, 1),
        "make_test_passed": test.returncode == 0,
        "phases": phases.get("phases", {}),
        "cold_build": phases.get("cold_build"),
        "make_test_over_cold_build": phases.get("total_over_cold_build"),
        "failed_phases": phases.get("failed", []),
        "tail": "" if test.returncode == 0 else (test.stdout + test.stderr)[-3000:],
    }


def within(value: float, limit: float) -> dict:
    """A target of the report: its limit, the measured value, and whether it is met."""
    return {"target": limit, "value": value, "met": value <= limit}


def rebuild_floor(report_seconds: list[float]) -> float:
    """Execution seconds of a rebuild's re-executed pages (median over runs) + overhead."""
    return round(statistics.median(report_seconds) + REBUILD_OVERHEAD_S, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "bench.json")
    parser.add_argument(
        "--no-test", action="store_true", help="skip timing make check / make test"
    )
    args = parser.parse_args(argv)
    results: dict = {"runs": args.runs, "cpus": os.cpu_count()}

    with tempfile.TemporaryDirectory(prefix="numscale-bench-") as tmp:
        tree = copy_tree(Path(tmp) / "book")

        # Serial sum: one cold build with one worker, pages executing alone.
        _, serial = cold_build(tree, workers=1)
        page_seconds = serial["executed"]
        results["page_exec_s"] = page_seconds
        results["serial_sum_s"] = round(sum(page_seconds.values()), 2)

        # Cold builds with all workers; keep the first site for the reproducibility check.
        cold_total, cold_exec = [], []
        first_site = Path(tmp) / "first_site"
        for run in range(args.runs):
            seconds, report = cold_build(tree, workers=os.cpu_count() or 1)
            cold_total.append(seconds)
            cold_exec.append(report["wall_seconds"])
            if run == 0:
                shutil.copytree(tree / "_build" / "html", first_site)
        results["cold_build_s"] = round(statistics.median(cold_total), 2)
        results["cold_exec_phase_s"] = round(statistics.median(cold_exec), 2)
        results["exec_phase_over_serial_sum"] = round(
            results["cold_exec_phase_s"] / results["serial_sum_s"], 3
        )
        differing = compare_trees(first_site, tree / "_build" / "html")
        results["reproducibility"] = {
            "differing_files": differing,
            "identical": not differing,
        }

        # No-op rebuilds.
        results["noop_make_book_s"] = round(
            statistics.median(make_book(tree)[0] for _ in range(max(5, args.runs))), 3
        )

        # Add a sentence to a chapter's prose: nothing executes, only that page is read.
        prose, _ = time_rebuilds(
            tree,
            args.runs,
            "book/dot_products.md",
            lambda path, run: append_text(path, f"\nBench edit {run}.\n"),
        )
        results["edit_prose"] = {**prose, "target_s": REBUILD_OVERHEAD_S}

        # Edit one chapter's code: only that chapter re-executes.
        chapter, chapter_exec = time_rebuilds(
            tree,
            args.runs,
            "book/dot_products.md",
            lambda path, run: append_line(
                path, "```{code-cell} ipython3", f"# bench edit {run}"
            ),
        )
        results["edit_chapter"] = {**chapter, "target_s": rebuild_floor(chapter_exec)}

        # Edit one helper module's code: exactly the chapters importing it re-execute.
        keys = json.loads(
            (tree / "_build" / ".numscale_exec" / "keys.json").read_text()
        )
        importers = sorted(
            d for d, entry in keys.items() if "numscale.dotprod" in entry["modules"]
        )
        module, module_exec = time_rebuilds(
            tree,
            args.runs,
            "src/numscale/dotprod.py",  # a change of code: a new constant
            lambda path, run: append_text(path, f"_BENCH_EDIT = {run}\n"),
        )
        results["edit_module"] = {
            **module,
            "importers": importers,
            "target_s": rebuild_floor(module_exec),
        }

        # Edit only a comment of the same module: nothing re-executes (pages are keyed on code).
        def add_comment(path: Path, run: int) -> None:
            append_text(path, f"# bench comment {run}\n\n")

        comment, _ = time_rebuilds(
            tree, args.runs, "src/numscale/dotprod.py", add_comment
        )
        results["edit_comment"] = {**comment, "target_s": REBUILD_OVERHEAD_S}

        # The same in a module most chapters import: nothing executes and no page is read
        # (only that module's [source] page is written again).
        many, _ = time_rebuilds(tree, args.runs, "src/numscale/checks.py", add_comment)
        results["edit_comment_many"] = {**many, "target_s": REBUILD_OVERHEAD_S}

        weights = page_weights(tree / "_build" / "html")
        results["page_bytes"] = weights
        results["heaviest_page_bytes"] = max(weights.values())
        ln = ln_read_bytes(Path(tmp))
        results["gpt2_ln_load"] = ln
        results["ln_read_over_ln_bytes"] = round(ln["read_bytes"] / ln["ln_bytes"], 3)
        if not args.no_test:
            results["tests"] = time_tests(Path(tmp))

    targets = {name: within(results[name], limit) for name, limit in TARGETS.items()}
    for name, edit in results.items():
        if name.startswith("edit_"):  # a rebuild within its target time
            targets[f"{name}_rebuild_s"] = within(edit["rebuild_s"], edit["target_s"])
    page = ["book/dot_products"]  # the chapter the edits touch
    met = {  # targets that are met or not
        "edit_chapter_only_that_chapter": chapter["executed"] == page,
        "edit_module_exactly_importers": module["executed"] == importers,
        "edit_comment_executes_nothing": not comment["executed"],
        "edit_comment_many_reads_and_executes_nothing": not many["executed"]
        and not many["read"],
        "edit_prose_executes_nothing_reads_that_page": not prose["executed"]
        and prose["read"] == page,
        "two_cold_builds_identical": results["reproducibility"]["identical"],
    }
    if "tests" in results:
        for name, limit in TEST_TARGETS.items():
            targets[name] = within(results["tests"][name], limit)
        met["make_test_passes"] = results["tests"]["make_test_passed"]
        met["make_check_passes"] = results["tests"]["make_check_passed"]
    targets.update({name: {"met": flag} for name, flag in met.items()})
    results["targets"] = targets
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1, sort_keys=True))
    print_table(results)
    return 0 if all(t["met"] for t in results["targets"].values()) else 1


def print_table(r: dict) -> None:
    rows = [
        ("cold build (make book, no cache)", f"{r['cold_build_s']:.1f} s"),
        ("  execution phase, 2 workers", f"{r['cold_exec_phase_s']:.1f} s"),
        ("  serial sum of page execution times", f"{r['serial_sum_s']:.1f} s"),
        (
            "  execution phase / serial sum",
            f"{r['exec_phase_over_serial_sum']:.2f}  (target <= 0.65)",
        ),
        ("no-op make book", f"{r['noop_make_book_s']:.2f} s  (target < 3 s)"),
        (
            "rebuild after editing a word of a chapter",
            f"{r['edit_prose']['rebuild_s']:.1f} s (target <= 3 s), read {r['edit_prose']['read']}",
        ),
        (
            "rebuild after editing one chapter",
            f"{r['edit_chapter']['rebuild_s']:.1f} s (target <= {r['edit_chapter']['target_s']:.1f} s = execution {r['edit_chapter']['exec_s']:.1f} s + 3 s), executed {r['edit_chapter']['executed']}",
        ),
        (
            "rebuild after editing src/numscale/dotprod.py",
            f"{r['edit_module']['rebuild_s']:.1f} s (target <= {r['edit_module']['target_s']:.1f} s), executed {len(r['edit_module']['executed'])} page(s) = importers: {r['edit_module']['executed'] == r['edit_module']['importers']}",
        ),
        (
            "rebuild after a comment-only edit of dotprod.py",
            f"{r['edit_comment']['rebuild_s']:.1f} s (target <= 3 s), executed {r['edit_comment']['executed']}",
        ),
        (
            "rebuild after a comment-only edit of checks.py",
            f"{r['edit_comment_many']['rebuild_s']:.1f} s (target <= 3 s), read {r['edit_comment_many']['read']}, executed {r['edit_comment_many']['executed']}",
        ),
        (
            "heaviest page (HTML + images)",
            f"{r['heaviest_page_bytes'] / 1e6:.2f} MB  (target <= 1.5 MB)",
        ),
        (
            "bytes read for GPT-2 LayerNorms",
            f"{r['gpt2_ln_load']['read_bytes']:,} of a {r['gpt2_ln_load']['file_bytes']:,}-byte file = {r['ln_read_over_ln_bytes']:.2f} x 153,600",
        ),
        (
            "two cold builds byte-identical",
            f"{r['reproducibility']['identical']} ({len(r['reproducibility']['differing_files'])} differing files)",
        ),
    ]
    if "tests" in r:
        t = r["tests"]
        rows.append(
            (
                "make check (fresh clone)",
                f"{t['make_check_s']:.0f} s  (target <= 90 s), passed: {t['make_check_passed']}",
            )
        )
        rows.append(
            (
                "make test (fresh clone)",
                f"{t['make_test_s']:.0f} s  (target <= 480 s), passed: {t['make_test_passed']}, "
                f"{t['make_test_over_cold_build']} x its cold build",
            )
        )
        for name, phase in t["phases"].items():
            rows.append(
                (
                    f"  {name}",
                    f"{phase['seconds']:.0f} s"
                    + ("" if phase["exit"] == 0 else "  FAILED"),
                )
            )
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("\npage execution (s, alone) and weight (MB):")
    for page, seconds in sorted(r["page_exec_s"].items(), key=lambda kv: -kv[1]):
        print(
            f"  {page:<32} {seconds:6.1f} s  {r['page_bytes'].get(page, 0) / 1e6:6.2f} MB"
        )


if __name__ == "__main__":
    sys.exit(main())
