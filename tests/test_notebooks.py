"""A downloaded chapter runs on its own.

Each chapter is converted exactly as the site's download button serves it
(``_ext/numscale_notebooks.py``: jupytext plus a hidden install cell) and executed with
nbclient in a fresh kernel whose working directory is a temporary folder outside the
repository. The kernel has the helper package installed (the venv's editable install; PYTHONPATH is
dropped so that the package cannot come from the checkout by accident),
so the install cell must do nothing: a guard replaces ``%pip`` with an error for the run.
Two small kernels check the install cell itself: silent when ``numscale`` imports,
``%pip install "numscale @ git+<repository>"`` when it does not.
"""

from __future__ import annotations

import importlib.util
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest
import yaml
from nbclient import NotebookClient

from browser_support import ROOT, notebook_docnames

CHAPTERS = notebook_docnames()
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
REPO = CONFIG["repository"]["url"].rstrip("/")
BRANCH = CONFIG["repository"].get("branch") or "main"
#: One BLAS/torch thread per kernel, as in the build (two shared cores).
KERNEL_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

#: Run before the install cell: any ``%pip`` is an error.
NO_PIP = """\
from IPython import get_ipython

def _pip_forbidden(line):
    raise AssertionError(f"the install cell ran `%pip {line}` although the packages are importable")

get_ipython().register_magic_function(_pip_forbidden, "line", "pip")
"""

#: Run before the install cell: numscale cannot be imported, ``%pip`` is recorded.
NUMSCALE_MISSING = """\
import sys
from IPython import get_ipython

sys.modules["numscale"] = None  # `import numscale` now raises ImportError
_pip_calls = []
get_ipython().register_magic_function(lambda line: _pip_calls.append(line), "line", "pip")
"""


def _load_extension():
    spec = importlib.util.spec_from_file_location("numscale_notebooks", ROOT / "_ext" / "numscale_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebooks = _load_extension()


def _source(docname: str) -> Path:
    return next(p for p in (ROOT / f"{docname}.md", ROOT / f"{docname}.ipynb") if p.is_file())


def _kernel_env() -> dict[str, str]:
    """The test's environment without PYTHONPATH: the package must come from the install."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(KERNEL_THREADS)
    return env


def _execute(notebook, cwd: Path, timeout: int = 600):
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", allow_errors=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute(env=_kernel_env())
    return notebook


def test_chapters_found():
    assert CHAPTERS, "no notebook chapters in _toc.yml"


@pytest.mark.parametrize("docname", CHAPTERS)
def test_install_cell_is_first_and_hidden(docname):
    notebook = notebooks.chapter_notebook(_source(docname), REPO, BRANCH)
    first = notebook.cells[0]
    assert first.cell_type == "code"
    assert {"remove-cell", "hide-cell"} <= set(first.metadata["tags"])
    assert first.metadata["jupyter"]["source_hidden"] is True
    source = first.source
    assert f'"numscale @ git+{REPO}@{BRANCH}"' in source
    lines = source.splitlines()
    pip_line = next(i for i, line in enumerate(lines) if "%pip install" in line)
    assert lines[pip_line - 1].strip() == "except ImportError:", "pip must run only when an import fails"
    assert any(line.startswith("    import numscale") for line in lines)
    # The rest is the chapter, cell for cell.
    import jupytext

    original = jupytext.read(_source(docname))
    assert [c.source for c in notebook.cells[1:]] == [c.source for c in original.cells]
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    nbformat.validate(notebook)


def test_conversion_is_deterministic():
    source = _source(CHAPTERS[0])
    first = notebooks.notebook_text(notebooks.chapter_notebook(source, REPO, BRANCH))
    second = notebooks.notebook_text(notebooks.chapter_notebook(source, REPO, BRANCH))
    assert first == second


def test_install_cell_does_nothing_when_numscale_imports(tmp_path):
    cell_source = notebooks.install_cell_source(REPO, BRANCH, ["numscale", "myst_nb"])
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(NO_PIP), nbformat.v4.new_code_cell(cell_source)])
    _execute(notebook, tmp_path, timeout=120)
    assert notebook.cells[1].outputs == []


def test_install_cell_installs_from_the_repository_when_numscale_is_missing(tmp_path):
    cell_source = notebooks.install_cell_source(REPO, BRANCH, ["numscale", "myst_nb"])
    notebook = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell(NUMSCALE_MISSING),
            nbformat.v4.new_code_cell(cell_source),
            nbformat.v4.new_code_cell("import json; print(json.dumps(_pip_calls))"),
        ]
    )
    _execute(notebook, tmp_path, timeout=120)
    calls = json.loads(notebook.cells[2].outputs[0]["text"])
    assert len(calls) == 1, calls
    assert f'"numscale @ git+{REPO}@{BRANCH}"' in calls[0] and '"myst-nb"' in calls[0]


@pytest.fixture(scope="session")
def executed_chapters(tmp_path_factory):
    """Every chapter's notebook executed in its own temporary folder, two kernels at a
    time (two cores): ``{docname: (notebook, error or None)}``."""
    workers = max(1, min(2, os.cpu_count() or 1))

    def run(docname: str):
        notebook = notebooks.chapter_notebook(_source(docname), REPO, BRANCH)
        notebook.cells.insert(0, nbformat.v4.new_code_cell(NO_PIP))
        workdir = tmp_path_factory.mktemp(docname.replace("/", "-"))
        if ROOT in workdir.resolve().parents:
            return notebook, AssertionError(f"{workdir} is inside the repository")
        try:
            _execute(notebook, workdir)
        except Exception as error:  # reported by the chapter's own test
            return notebook, error
        return notebook, None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(run, name) for name in CHAPTERS}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("docname", CHAPTERS)
def test_chapter_notebook_runs_outside_the_repository(executed_chapters, docname):
    notebook, error = executed_chapters[docname]
    if error is not None:
        pytest.fail(f"{docname}: the downloaded notebook failed outside the repository:\n{error}", pytrace=False)
    install = notebook.cells[1]
    assert "remove-cell" in install.metadata["tags"] and install.outputs == [], "the install cell printed something"
    executed = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in executed), "not every code cell ran"
