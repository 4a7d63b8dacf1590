"""Shared fixtures: the repository root and one fresh build of the book per test session."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"


def build_book(output: Path, *, env: dict[str, str] | None = None, source: Path = ROOT) -> subprocess.CompletedProcess:
    """Build the book in ``source`` into ``output/_build/html`` (strict: -n -W --keep-going)."""
    command = [
        str(Path(sys.executable).with_name("jupyter-book")), "build", str(source),
        "--path-output", str(output), "-n", "-W", "--keep-going", "--builder", "html",
    ]
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(command, capture_output=True, text=True, env=full_env, timeout=1800)


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HTML folder of a fresh, strict build of the book (built once per session).

    Set ``NUMSCALE_TEST_SITE`` to an existing ``_build/html`` to skip the build while
    developing tests; CI never sets it.
    """
    existing = os.environ.get("NUMSCALE_TEST_SITE")
    if existing:
        return Path(existing)
    output = tmp_path_factory.mktemp("book")
    result = build_book(output)
    log = output / "build.log"
    log.write_text(result.stdout + "\n" + result.stderr)
    assert result.returncode == 0, f"book build failed (log: {log}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return output / "_build" / "html"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--glue-mutation", metavar="REPORT", type=Path, default=None,
                     help="run the glue-mutation check (tests/glue_mutation.py) and write "
                          "its JSON report to REPORT")
    parser.addoption("--glue-mutation-min", type=float, default=0.9,
                     help="share of quoted results that must be guarded (default 0.9)")


def pytest_configure(config: pytest.Config) -> None:
    report = config.getoption("glue_mutation")
    if report is not None:
        from glue_mutation import GlueMutation

        config.pluginmanager.register(
            GlueMutation(report, config.getoption("glue_mutation_min")), "glue_mutation")
