"""What `make book`, `make test` and `make lab` run, read from the Makefile by make.

``make -n -B`` prints the exact commands a fresh machine runs (nothing is executed). The
torch step is also resolved by pip (``--dry-run --report``) with the Makefile's own index
options, here against this machine's indexes: the CPU build, and no CUDA package.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
TEST_ONLY = {"pytest", "pytest-xdist", "hypothesis", "playwright", "ruff"}
CUDA = re.compile(r"^(nvidia-|triton$|cuda-)", re.I)


def make_commands(target: str, *variables: str, cwd: Path = ROOT) -> list[str]:
    """The shell commands ``make <target>`` runs on a machine with nothing installed."""
    done = subprocess.run(
        [
            "make",
            "--no-print-directory",
            "-n",
            "-B",
            target,
            "VENV=/nonexistent/venv",
            *variables,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.splitlines()


def requirements(path: Path) -> dict[str, str]:
    """{normalised name: specifier} of a requirements file (options and comments left out)."""
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)\s*(.*)", line).groups()
            found[re.sub(r"[-_.]+", "-", name).lower()] = spec
    return found


def _pip_installs(commands: list[str]) -> list[list[str]]:
    return [shlex.split(c) for c in commands if re.search(r"/pip\b.* install\b", c)]


# ------------------------------------------------------------------- torch: CPU build


def test_make_installs_torch_from_the_cpu_index_first() -> None:
    installs = _pip_installs(make_commands("book"))
    torch_step = installs[0]
    pin = [a for a in torch_step if a.startswith("torch==")]
    assert pin == [
        f"torch=={requirements(ROOT / 'requirements.txt')['torch'].removeprefix('==')}"
    ]
    assert torch_step[torch_step.index("--index-url") + 1] == CPU_INDEX
    # pip's default is 5 retries with back-off per page (107 s for this step here when the
    # index is unreachable, against 19 s with one retry).
    assert torch_step[torch_step.index("--retries") + 1] == "1"
    assert int(torch_step[torch_step.index("--timeout") + 1]) <= 30
    # The requirements come after torch, so the pin is already met and torch is not fetched
    # again from PyPI, whose build of the same version carries CUDA.
    assert any("requirements.txt" in step for step in installs[1:])
    assert not any(
        "--extra-index-url" in step or "--index-url" in step for step in installs[1:]
    )


def test_another_torch_build_is_one_variable_away() -> None:
    other = "https://download.pytorch.org/whl/cu126"
    torch_step = _pip_installs(make_commands("book", f"TORCH_INDEX={other}"))[0]
    assert torch_step[torch_step.index("--index-url") + 1] == other


def test_no_requirement_file_asks_for_cuda() -> None:
    for path in [
        ROOT / "requirements.txt",
        ROOT / "requirements-test.txt",
        ROOT / "binder" / "requirements.txt",
    ]:
        assert not [name for name in requirements(path) if CUDA.match(name)], path


def test_binder_gets_the_cpu_build_and_the_same_pins() -> None:
    binder = ROOT / "binder" / "requirements.txt"
    assert f"--extra-index-url {CPU_INDEX}" in binder.read_text().splitlines()
    book = requirements(ROOT / "requirements.txt")
    for name, spec in requirements(binder).items():
        assert book.get(name) == spec, (
            f"binder pins {name}{spec}, requirements.txt {book.get(name)}"
        )


def test_publish_workflow_builds_with_make() -> None:
    workflow = (ROOT / ".github" / "workflows" / "publish.yml").read_text()
    assert "run: make book" in workflow
    # The Makefile chooses torch's index; a global extra index would be tried (and, with
    # pip's retries, waited for) on every package.
    assert "PIP_EXTRA_INDEX_URL" not in workflow
    assert "fetch-depth: 0" in workflow  # page dates come from each page's last commit


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_pip_resolves_the_torch_step_to_the_cpu_build(tmp_path: Path) -> None:
    """Resolve (without installing) exactly the Makefile's torch step, with a fresh
    environment's view (``--ignore-installed``)."""
    step = _pip_installs(make_commands("book"))[0]
    args = step[step.index("install") + 1 :]
    args = [a for a in args if a != "--quiet"]
    report = tmp_path / "report.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--report",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    installed = {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in json.loads(report.read_text())["install"]
    }
    assert installed["torch"].split("+")[0] == requirements(ROOT / "requirements.txt")[
        "torch"
    ].removeprefix("==")
    assert not [name for name in installed if CUDA.match(name)], installed
    # A Linux x86-64 wheel of torch without CUDA is the "+cpu" build (macOS wheels carry no label).
    if sys.platform == "linux":
        assert installed["torch"].endswith("+cpu")
    # When the index cannot be reached (as on this machine), each page is retried once,
    # not five times.
    retries = re.findall(
        r"Retrying \(Retry\(total=\d+.*?\)\)[^\n]*?: (/\S+)", done.stderr
    )
    assert all(retries.count(url) <= 1 for url in retries)


# ------------------------------------------------------------- book vs test packages


def test_book_requirements_hold_no_test_package() -> None:
    book, tests = (
        requirements(ROOT / "requirements.txt"),
        requirements(ROOT / "requirements-test.txt"),
    )
    assert not TEST_ONLY & set(book)
    assert TEST_ONLY <= set(tests)
    assert not set(book) & set(tests)
    for name, spec in {**book, **tests}.items():
        assert spec.startswith("=="), f"{name} is not pinned"


def test_make_book_installs_the_book_and_make_test_both() -> None:
    book = " ".join(" ".join(step) for step in _pip_installs(make_commands("book")))
    test = " ".join(" ".join(step) for step in _pip_installs(make_commands("test")))
    assert "requirements.txt" in book and "requirements-test.txt" not in book
    assert "requirements.txt" in test and "requirements-test.txt" in test


# ------------------------------------------------------------------ stamp, variables


def test_every_file_the_build_reads_is_a_prerequisite_of_the_build() -> None:
    # `make book` rebuilds only when a prerequisite is newer than the stamp: a helper
    # module left out (numscale/inspect/ was, once) would leave a stale site after an edit
    database = subprocess.run(
        ["make", "-pq", "_build/.built", "VENV=/nonexistent/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout
    rule = next(
        line for line in database.splitlines() if line.startswith("_build/.built:")
    )
    prerequisites = set(rule.split(":", 1)[1].split())
    read = [
        *ROOT.glob("book/*.md"),
        *(p for p in ROOT.glob("src/numscale/**/*.py") if "__pycache__" not in p.parts),
        *(p for p in ROOT.glob("src/numscale/models/data/*") if p.is_file()),
        *ROOT.glob("_ext/*.py"),
        ROOT / "_config.yml",
        ROOT / "_toc.yml",
    ]
    missing = sorted({str(p.relative_to(ROOT)) for p in read} - prerequisites)
    assert not missing, f"the build reads these but make does not watch them: {missing}"


def test_the_built_stamp_is_outside_the_published_folder() -> None:
    commands = make_commands("book")
    stamps = [c for c in commands if re.search(r"\btouch\b.*\.built\b", c)]
    assert stamps and all(
        "_build/.built" in c and "_build/html" not in c for c in stamps
    )
    # The stamp goes before the build starts: a failed build leaves none behind.
    build = next(i for i, c in enumerate(commands) if "jupyter-book build" in c)
    assert any("rm -f _build/.built" in c for c in commands[:build])


def _show(repo: Path, *names: str) -> list[str]:
    """Values of exported variables in the Makefile's environment, run from ``repo``."""
    recipe = " ".join(f'"$${n}"' for n in names)
    done = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "--eval",
            f"show: ; @printf '%s\\n' {recipe}",
            "show",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
        env={
            k: v
            for k, v in os.environ.items()
            if k not in {"NUMSCALE_GPT2", "NUMSCALE_TINYSTORIES", "SOURCE_DATE_EPOCH"}
        },
    )
    return done.stdout.splitlines()


def test_sources_and_date_the_makefile_exports(tmp_path: Path) -> None:
    repo = tmp_path / "book"
    repo.mkdir()
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    shutil.copy(ROOT / "requirements.txt", repo / "requirements.txt")
    # No shared folder beside the checkout, no git: nothing set.
    assert _show(
        repo, "NUMSCALE_GPT2", "NUMSCALE_TINYSTORIES", "SOURCE_DATE_EPOCH"
    ) == ["", "", ""]

    reference = tmp_path / "shared" / "reference"
    (reference / "tinystories").mkdir(parents=True)
    (reference / "tinystories" / "stories260K.bin").write_bytes(b"")
    (reference / "gpt2_small_layernorm.npz").write_bytes(b"")
    # the small data is built into the package: only GPT-2's large tensors come from the
    # shared folder, so NUMSCALE_TINYSTORIES is never set and NUMSCALE_GPT2 only once the
    # attention tensors are there
    assert _show(repo, "NUMSCALE_GPT2", "NUMSCALE_TINYSTORIES") == ["", ""]
    (reference / "gpt2_small_attention.npz").write_bytes(b"")
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_COMMITTER_DATE": "@1700000000 +0000",
        "GIT_AUTHOR_DATE": "@1700000000 +0000",
    }
    for command in (["init", "-q"], ["add", "Makefile"], ["commit", "-q", "-m", "m"]):
        subprocess.run(
            ["git", *command],
            cwd=repo,
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
    assert _show(
        repo, "NUMSCALE_GPT2", "NUMSCALE_TINYSTORIES", "SOURCE_DATE_EPOCH"
    ) == [
        str(reference),
        "",
        "1700000000",
    ]


# ------------------------------------------------------------------------- make lab


def test_make_lab_builds_then_opens_jupyterlab_within_the_pins() -> None:
    commands = make_commands("lab")
    build = next(i for i, c in enumerate(commands) if "jupyter-book build" in c)
    lab = next(i for i, c in enumerate(commands) if re.search(r"/jupyter lab\b", c))
    assert build < lab
    step = next(
        s for s in _pip_installs(commands) if "jupyterlab" in s[s.index("install") :]
    )
    # JupyterLab may add packages to the venv, never move one of the book's pins.
    assert step[step.index("-c") + 1] == "requirements.txt"
    assert step[step.index("--retries") + 1] == "1"
    assert "--notebook-dir=_build/notebooks" in shlex.split(commands[lab])


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_lab_copies_the_notebooks_and_keeps_a_changed_copy(tmp_path: Path) -> None:
    """The recipe as make runs it, on a fake build, with a stand-in for ``jupyter``."""
    repo = tmp_path / "book"
    site = repo / "_build" / "html" / "_notebooks" / "book"
    site.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", repo / "Makefile")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    jupyter = venv / "bin" / "jupyter"
    jupyter.write_text('#!/bin/sh\necho "$0 $*"\n')
    jupyter.chmod(0o755)

    # -o: the build and JupyterLab's install count as done.
    make = ["make", "-s", "-o", "book", "-o", f"{venv}/.installed-lab"]

    def lab() -> str:
        done = subprocess.run(
            [*make, "lab", f"VENV={venv}", "LAB_ARGS=--no-browser"],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    notebooks = repo / "_build" / "notebooks"
    for name in ("a", "b", "c"):
        (site / f"{name}.ipynb").write_text(f"{name} 1")
    opened = f"{venv}/bin/jupyter lab --notebook-dir=_build/notebooks --no-browser"
    assert opened in lab()
    assert {p.name: p.read_text() for p in notebooks.glob("*.ipynb")} == {
        "a.ipynb": "a 1",
        "b.ipynb": "b 1",
        "c.ipynb": "c 1",
    }
    # A new build: the copy the reader changed is kept and named, the others follow the
    # build, and a deleted copy comes back.
    (notebooks / "a.ipynb").write_text("a, edited")
    (notebooks / "c.ipynb").unlink()
    for name in ("a", "b", "c"):
        (site / f"{name}.ipynb").write_text(f"{name} 2")
    out = lab()
    assert "kept your changed copies (delete one for this build's): a.ipynb" in out
    assert {p.name: p.read_text() for p in notebooks.glob("*.ipynb")} == {
        "a.ipynb": "a, edited",
        "b.ipynb": "b 2",
        "c.ipynb": "c 2",
    }
    (notebooks / "a.ipynb").unlink()
    assert "kept" not in lab()
    assert (notebooks / "a.ipynb").read_text() == "a 2"
