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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
LN_BYTES = (
    25 * 2 * 768 * 4
)  # 25 LayerNorms × (gain, bias) × 768 float32 = 153,600 bytes
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
    made = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    file = json.loads(made.stdout.strip().splitlines()[-1])["file"]
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
    out = subprocess.run(
        [sys.executable, "-c", measure], capture_output=True, text=True, check=True
    )
    read = json.loads(out.stdout.strip().splitlines()[-1])["read"]
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
        prose_runs, prose_pages, prose_read = [], set(), set()
        for run in range(args.runs):
            with open(tree / "book" / "dot_products.md", "a") as handle:
                handle.write(f"\nBench edit {run}.\n")  # a sentence of prose
            seconds, report = make_book(tree)
            prose_runs.append(seconds)
            prose_pages |= set(report["executed"])
            prose_read |= set(report["read"])
        results["edit_prose"] = {
            "file": "book/dot_products.md",
            "rebuild_s": round(statistics.median(prose_runs), 2),
            "executed": sorted(prose_pages),
            "read": sorted(prose_read),
            "target_s": REBUILD_OVERHEAD_S,
        }

        # Edit one chapter's code: only that chapter re-executes.
        chapter_runs, chapter_pages, chapter_exec = [], set(), []
        for run in range(args.runs):
            append_line(
                tree / "book" / "dot_products.md",
                "```{code-cell} ipython3",
                f"# bench edit {run}",
            )
            seconds, report = make_book(tree)
            chapter_runs.append(seconds)
            chapter_pages |= set(report["executed"])
            chapter_exec.append(report["wall_seconds"])
        results["edit_chapter"] = {
            "file": "book/dot_products.md",
            "rebuild_s": round(statistics.median(chapter_runs), 2),
            "executed": sorted(chapter_pages),
            "exec_s": round(statistics.median(chapter_exec), 2),
            "target_s": rebuild_floor(chapter_exec),
        }

        # Edit one helper module's code: exactly the chapters importing it re-execute.
        keys = json.loads(
            (tree / "_build" / ".numscale_exec" / "keys.json").read_text()
        )
        importers = sorted(
            d for d, entry in keys.items() if "numscale.dotprod" in entry["modules"]
        )
        module_runs, module_pages, module_exec = [], set(), []
        for run in range(args.runs):
            with open(tree / "src" / "numscale" / "dotprod.py", "a") as handle:
                handle.write(
                    f"_BENCH_EDIT = {run}\n"
                )  # a change of code (a new constant)
            seconds, report = make_book(tree)
            module_runs.append(seconds)
            module_pages |= set(report["executed"])
            module_exec.append(report["wall_seconds"])
        results["edit_module"] = {
            "file": "src/numscale/dotprod.py",
            "rebuild_s": round(statistics.median(module_runs), 2),
            "executed": sorted(module_pages),
            "importers": importers,
            "exec_s": round(statistics.median(module_exec), 2),
            "target_s": rebuild_floor(module_exec),
        }

        # Edit only a comment of the same module: nothing re-executes (pages are keyed on code).
        comment_runs, comment_pages = [], set()
        for run in range(args.runs):
            with open(tree / "src" / "numscale" / "dotprod.py", "a") as handle:
                handle.write(f"# bench comment {run}\n\n")
            seconds, report = make_book(tree)
            comment_runs.append(seconds)
            comment_pages |= set(report["executed"])
        results["edit_comment"] = {
            "file": "src/numscale/dotprod.py",
            "rebuild_s": round(statistics.median(comment_runs), 2),
            "executed": sorted(comment_pages),
            "target_s": REBUILD_OVERHEAD_S,
        }

        # The same in a module most chapters import: nothing executes and no page is read
        # (only that module's [source] page is written again).
        many_runs, many_pages, many_read = [], set(), set()
        for run in range(args.runs):
            with open(tree / "src" / "numscale" / "checks.py", "a") as handle:
                handle.write(f"# bench comment {run}\n\n")
            seconds, report = make_book(tree)
            many_runs.append(seconds)
            many_pages |= set(report["executed"])
            many_read |= set(report["read"])
        results["edit_comment_many"] = {
            "file": "src/numscale/checks.py",
            "rebuild_s": round(statistics.median(many_runs), 2),
            "executed": sorted(many_pages),
            "read": sorted(many_read),
            "target_s": REBUILD_OVERHEAD_S,
        }

        weights = page_weights(tree / "_build" / "html")
        results["page_bytes"] = weights
        results["heaviest_page_bytes"] = max(weights.values())
        ln = ln_read_bytes(Path(tmp))
        results["gpt2_ln_load"] = ln
        results["ln_read_over_ln_bytes"] = round(ln["read_bytes"] / ln["ln_bytes"], 3)
        if not args.no_test:
            results["tests"] = time_tests(Path(tmp))

    results["targets"] = {
        name: {"target": limit, "value": results[name], "met": results[name] <= limit}
        for name, limit in TARGETS.items()
    }
    results["targets"]["edit_chapter_only_that_chapter"] = {
        "met": results["edit_chapter"]["executed"] == ["book/dot_products"]
    }
    results["targets"]["edit_module_exactly_importers"] = {
        "met": results["edit_module"]["executed"] == results["edit_module"]["importers"]
    }
    results["targets"]["edit_comment_executes_nothing"] = {
        "met": results["edit_comment"]["executed"] == []
    }
    results["targets"]["edit_comment_many_reads_and_executes_nothing"] = {
        "met": results["edit_comment_many"]["executed"] == []
        and results["edit_comment_many"]["read"] == []
    }
    results["targets"]["edit_prose_executes_nothing_reads_that_page"] = {
        "met": results["edit_prose"]["executed"] == []
        and results["edit_prose"]["read"] == ["book/dot_products"]
    }
    results["targets"]["two_cold_builds_identical"] = {
        "met": results["reproducibility"]["identical"]
    }
    for edit in (
        "edit_prose",
        "edit_chapter",
        "edit_module",
        "edit_comment",
        "edit_comment_many",
    ):
        value, limit = results[edit]["rebuild_s"], results[edit]["target_s"]
        results["targets"][f"{edit}_rebuild_s"] = {
            "target": limit,
            "value": value,
            "met": value <= limit,
        }
    if "tests" in results:
        for name, limit in TEST_TARGETS.items():
            value = results["tests"][name]
            results["targets"][name] = {
                "target": limit,
                "value": value,
                "met": value <= limit,
            }
        results["targets"]["make_test_passes"] = {
            "met": results["tests"]["make_test_passed"]
        }
        results["targets"]["make_check_passes"] = {
            "met": results["tests"]["make_check_passed"]
        }
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
