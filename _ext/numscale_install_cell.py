"""The hidden first cell of a downloaded chapter (``_ext/numscale_notebooks.py``).

Only when importing the chapter's packages fails, the cell pip-installs ``numscale @
git+<repository url>@<commit>`` (:func:`source_ref`: ``git rev-parse HEAD``, the branch
outside git) plus ``myst-nb`` if the chapter imports it, and raises at once, naming what
failed and what to do, if pip fails or the packages still do not import. A plain module
(not a Sphinx extension), imported by the converter.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

#: Top-level modules a chapter may import that a fresh kernel (Colab) lacks, and the pip
#: requirement that provides each; ``None`` means "the helper package from the repository".
INSTALLABLE: dict[str, str | None] = {"numscale": None, "myst_nb": "myst-nb"}
INSTALL_TAGS = ["remove-cell", "hide-cell"]
DEFAULT_REPOSITORY = "https://github.com/numscale/numscale-book"
DEFAULT_REF = "main"


# ------------------------------------------------------------------ install cell


def helper_requirement(repo_url: str, ref: str | None = None) -> str:
    """pip requirement for the helper package straight from the repository."""
    url = repo_url.rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return f"numscale @ git+{url}" + (f"@{ref}" if ref else "")


def source_ref(root: str | Path, fallback: str = DEFAULT_REF) -> str:
    """The commit the book is built from (``git rev-parse HEAD`` in ``root``), so that a
    downloaded notebook installs the helpers it was built with; ``fallback`` (the
    branch) outside a git checkout."""
    import subprocess

    try:
        result = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--verify", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    sha = result.stdout.strip()
    return (
        sha
        if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha)
        else fallback
    )


def _imported_top_level(code_cells: list[str]) -> set[str]:
    found: set[str] = set()
    for code in code_cells:
        cleaned = "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line
            for line in code.splitlines()
        )
        try:
            tree = ast.parse(cleaned)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module.split(".")[0])
    return found


def install_requirements(
    repo_url: str, ref: str | None, modules: list[str] | None
) -> tuple[list[str], list[str]]:
    """(modules to import, pip requirements) for the install cell; numscale always."""
    wanted = ["numscale"] + [
        m for m in (modules or []) if m != "numscale" and m in INSTALLABLE
    ]
    requirements = [
        helper_requirement(repo_url, ref) if INSTALLABLE[m] is None else INSTALLABLE[m]
        for m in wanted
    ]
    return wanted, requirements


def install_cell_source(
    repo_url: str, ref: str | None = DEFAULT_REF, modules: list[str] | None = None
) -> str:
    """Source of the install cell: ``pip install`` only if importing ``modules`` fails.

    ``modules`` defaults to ``["numscale"]``; ``numscale`` is always included. pip runs
    in the kernel's own Python (what ``%pip`` does), with one retry; if it fails, or the
    packages still cannot be imported afterwards, the cell raises at once with pip's
    message and what to do, instead of letting a later cell fail on a missing module.
    """
    wanted, requirements = install_requirements(repo_url, ref, modules)
    imports = ", ".join(wanted)
    listed = "".join(f"\n        {r!r}," for r in requirements)
    return f"""\
# @title Install the book's helper package if it is missing (e.g. on Colab)
# With the packages below importable (the book's own kernel, Binder, a local
# `pip install`), this cell installs nothing. Otherwise it installs the helper
# package at the commit this notebook was built from, or stops with the reason.
try:
    import {imports}  # noqa: F401
except ImportError:
    import importlib
    import subprocess
    import sys

    _requirements = [{listed}
    ]
    _pip = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--retries", "1",
         "--timeout", "20", *_requirements],
        capture_output=True, text=True,
    )
    if _pip.returncode != 0:
        raise RuntimeError(
            f"could not install {{', '.join(_requirements)}} "
            f"(pip exited with status {{_pip.returncode}}):\\n"
            f"{{_pip.stderr.strip()[-1500:]}}\\n"
            "This notebook needs them. Connect to the internet and run this cell "
            "again, or install them yourself: pip install " + " ".join(
                repr(r) for r in _requirements) + "\\n"
            "Offline, from a clone of the book's repository where `make book` has "
            "run: choose the clone's environment as this notebook's kernel "
            "(.venv/bin/python -m ipykernel install --user --name numscale), or run "
            "a chapter there with .venv/bin/python tools/run_pages.py book/<page>.md"
        ) from None
    importlib.invalidate_caches()
    try:
        import {imports}  # noqa: F401
    except ImportError as error:
        raise RuntimeError(
            f"pip installed the packages but {{error.name!r}} still cannot be "
            "imported: restart the kernel and run the notebook from the top"
        ) from error
    print("Installed", ", ".join(_requirements))"""


def install_cell(
    repo_url: str, ref: str | None = DEFAULT_REF, modules: list[str] | None = None
):
    """The hidden first cell of a downloaded chapter (an ``nbformat`` code cell)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(install_cell_source(repo_url, ref, modules))
    cell.metadata = {
        "tags": list(INSTALL_TAGS),
        "jupyter": {"source_hidden": True},  # JupyterLab / Notebook 7: collapsed input
        "cellView": "form",  # Colab: shows the @title line only
    }
    return cell
