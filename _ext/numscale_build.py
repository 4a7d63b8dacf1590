"""Sphinx extension: parallel, dependency-aware execution of the book's pages, and
MathJax served from the built site.

Jupyter Book 1 (myst-nb's ``cache`` mode) executes pages one after another and keys
its cache on a page's code cells only, so editing a helper module in ``src/`` leaves
stale outputs. This extension runs before Sphinx reads any page and

1. computes for every notebook page a *dependency key*: the page's code cells, the
   source of every module of the helper package it imports (directly or through other
   modules, found with ``ast``), the values of environment variables those modules read
   (e.g. ``NUMSCALE_GPT2``, with the size and mtime of a local path it names), and
   ``requirements.txt``;
2. executes the pages whose key changed, in parallel (one kernel per worker process),
   longest-running pages first, and stores the results in myst-nb's jupyter-cache, so
   myst-nb then finds every page in the cache and executes nothing itself;
3. tells Sphinx to re-read exactly those pages, even when their ``.md`` did not change.

A cell error fails the build (with the traceback) unless the cell is tagged
``raises-exception``. What ran, and for how long, is written to
``<outdir>/../.numscale_exec/report.json`` (read by the benchmark and the tests), and
each executed notebook to ``<outdir>/../.numscale_exec/executed/<docname>.ipynb``.

Configuration (``_config.yml`` → ``sphinx: config:``):
``numscale_src_dir`` (package source root, default ``"src"``), ``numscale_package``
(default ``"numscale"``), ``numscale_exec_workers`` (default: number of CPUs; the
environment variable ``NUMSCALE_EXEC_WORKERS`` overrides it),
``numscale_mathjax_dir`` (MathJax ``es5`` folder to serve, default
``"node_modules/mathjax/es5"``).
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
ENV_VAR_PATTERN = re.compile(r"""(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["']([A-Z0-9_]+)["']""")
KEY_VERSION = "1"
#: Threads per kernel: pages run side by side, so each gets one BLAS/torch thread.
KERNEL_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --------------------------------------------------------------------------- imports


def _strip_magics(code: str) -> str:
    """Drop IPython magics and shell escapes so ``ast`` can parse a cell."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
    )


def imported_modules(code: str, package: str, *, current_package: str | None = None) -> set[str]:
    """Names of ``package`` modules that ``code`` imports (``package.sub`` form).

    ``current_package`` is the dotted package holding ``code`` (``a.b`` for both
    ``a/b/c.py`` and ``a/b/__init__.py``), to resolve relative imports. ``from package import name`` counts ``package.name`` (kept only if such a
    module exists; the caller filters). Unparsable code yields an empty set.
    """
    try:
        tree = ast.parse(_strip_magics(code))
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level and current_package:
                parts = current_package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == package or base.startswith(package + "."):
                found.add(base)
                for alias in node.names:
                    found.add(f"{base}.{alias.name}")
    return found


def module_path(name: str, src_dir: Path) -> Path | None:
    """File of dotted module ``name`` under ``src_dir`` (module or package), or None."""
    parts = name.split(".")
    candidate = src_dir.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def module_closure(roots: set[str], src_dir: Path, package: str) -> dict[str, Path]:
    """All package modules reached from ``roots``, with every parent ``__init__``."""
    seen: dict[str, Path] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__
            parent = ".".join(parts[:i])
            path = module_path(parent, src_dir)
            if path is None or parent in seen:
                continue
            seen[parent] = path
            holder = parent if path.name == "__init__.py" else parent.rpartition(".")[0]
            todo.extend(imported_modules(path.read_text(encoding="utf-8"), package, current_package=holder))
    return seen


# ------------------------------------------------------------------ dependency key


def _env_fingerprint(modules: dict[str, Path]) -> dict[str, Any]:
    """Values of the environment variables the modules read; for a local path, its
    size and mtime (of every file directly inside it, for a directory)."""
    names: set[str] = set()
    for path in modules.values():
        names.update(ENV_VAR_PATTERN.findall(path.read_text(encoding="utf-8")))
    result: dict[str, Any] = {}
    for name in sorted(names):
        value = os.environ.get(name)
        entry: dict[str, Any] = {"value": value}
        if value:
            target = Path(value).expanduser()
            files = sorted(target.iterdir()) if target.is_dir() else [target] if target.is_file() else []
            entry["files"] = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
        result[name] = entry
    return result


def dependency_key(code_cells: list[str], src_dir: Path, package: str, extra: str = "") -> tuple[str, list[str]]:
    """Hash of a page's code and everything it depends on, and its module list."""
    roots: set[str] = set()
    for code in code_cells:
        roots |= imported_modules(code, package)
    modules = module_closure(roots, src_dir, package)
    digest = hashlib.sha256(KEY_VERSION.encode())
    for code in code_cells:
        digest.update(b"\0cell\0" + code.encode())
    for name in sorted(modules):
        digest.update(f"\0module {name}\0".encode() + modules[name].read_bytes())
    digest.update(json.dumps(_env_fingerprint(modules), sort_keys=True).encode())
    digest.update(extra.encode())
    return digest.hexdigest(), sorted(modules)


# ----------------------------------------------------------------------- execution


def _execute(nb_json: str, cwd: str, timeout: int, pythonpath: str) -> dict[str, Any]:
    """Run one notebook in a fresh kernel (in a worker process)."""
    import nbformat
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(KERNEL_ENV)
    os.environ["PYTHONPATH"] = pythonpath + os.pathsep + os.environ.get("PYTHONPATH", "")
    notebook = nbformat.reads(nb_json, as_version=4)
    result = single_nb_execution(notebook, cwd=cwd, timeout=timeout, allow_errors=False)
    return {
        "notebook": nbformat.writes(notebook),
        "seconds": result.time,
        "error": None if result.err is None else f"{type(result.err).__name__}: {result.exc_string}",
    }


def _notebook_pages(app: Sphinx, env) -> dict[str, Path]:
    """docname -> source path of every page that myst-nb would execute."""
    from myst_nb.core.read import is_myst_markdown_notebook

    pages = {}
    for docname in sorted(env.found_docs):
        path = Path(env.doc2path(docname))
        if path.suffix == ".ipynb" or (path.suffix == ".md" and is_myst_markdown_notebook(path.read_text(encoding="utf-8"))):
            pages[docname] = path
    return pages


def _read_notebook(app: Sphinx, env, path: Path):
    from myst_nb.core.read import create_nb_reader

    text = path.read_text(encoding="utf-8")
    reader = create_nb_reader(str(path), env.myst_config, env.mystnb_config, text)
    return reader.read(text), reader


def execute_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated`` handler: execute stale pages, return them for re-reading."""
    if env.mystnb_config.execution_mode != "cache":
        return []
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    root = Path(app.confdir)
    src_dir = root / app.config.numscale_src_dir
    package = app.config.numscale_package
    requirements = root / "requirements.txt"
    extra = requirements.read_text(encoding="utf-8") if requirements.is_file() else ""
    state_dir = Path(app.outdir).parent / ".numscale_exec"
    state_dir.mkdir(parents=True, exist_ok=True)
    keys_file = state_dir / "keys.json"
    old_keys: dict[str, Any] = json.loads(keys_file.read_text()) if keys_file.is_file() else {}
    cache = get_cache(env.mystnb_config.execution_cache_path or ".jupyter_cache")

    plan: dict[str, tuple[Path, Any, str, list[str]]] = {}
    new_keys: dict[str, Any] = {}
    for docname, path in _notebook_pages(app, env).items():
        notebook, _ = _read_notebook(app, env, path)
        code = [c.source for c in notebook.cells if c.cell_type == "code"]
        key, modules = dependency_key(code, src_dir, package, extra)
        previous = old_keys.get(docname, {})
        new_keys[docname] = {"key": key, "modules": modules, "seconds": previous.get("seconds", 0.0)}
        in_cache = True
        try:
            cache.match_cache_notebook(notebook)
        except KeyError:
            in_cache = False
        if previous.get("key") != key or not in_cache:
            plan[docname] = (path, notebook, key, modules)

    report: dict[str, Any] = {"executed": {}, "workers": 0, "wall_seconds": 0.0}
    if plan:
        configured = int(os.environ.get("NUMSCALE_EXEC_WORKERS") or app.config.numscale_exec_workers or 0)
        workers = max(1, min(configured or os.cpu_count() or 1, len(plan)))
        report["workers"] = workers
        order = sorted(plan, key=lambda d: -new_keys[d]["seconds"])  # longest first
        LOGGER.info(f"[numscale] executing {len(order)} page(s) on {workers} worker(s): {', '.join(order)}")
        timeout = int(env.mystnb_config.execution_timeout or 300)
        start = time.perf_counter()
        failures: list[str] = []
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(_execute, nbformat.writes(plan[d][1]), str(plan[d][0].parent), timeout, str(src_dir.resolve())): d
                for d in order
            }
            for future in cf.as_completed(futures):
                docname = futures[future]
                path = plan[docname][0]
                try:
                    outcome = future.result()
                except Exception:  # the worker itself died
                    failures.append(f"{docname}: {traceback.format_exc()}")
                    new_keys.pop(docname, None)
                    continue
                if outcome["error"] is not None:
                    failures.append(f"{docname}: {outcome['error']}")
                    new_keys.pop(docname, None)
                    continue
                executed = nbformat.reads(outcome["notebook"], as_version=4)
                copy = state_dir / "executed" / f"{docname}.ipynb"  # for tests and readers
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(outcome["notebook"], encoding="utf-8")
                record = cache.add_nb_to_project(str(path), read_data={"name": "myst_nb_md", "type": "plugin"} if path.suffix == ".md" else {"name": "nbformat", "type": "plugin"})
                cache.cache_notebook_bundle(
                    CacheBundleIn(executed, record.uri, data={"execution_seconds": outcome["seconds"]}),
                    check_validity=False,
                    overwrite=True,
                )
                new_keys[docname]["seconds"] = outcome["seconds"]
                report["executed"][docname] = round(outcome["seconds"], 3)
                LOGGER.info(f"[numscale] executed {docname} in {outcome['seconds']:.1f} s")
        report["wall_seconds"] = round(time.perf_counter() - start, 3)
        keys_file.write_text(json.dumps(new_keys, indent=1, sort_keys=True))
        if failures:
            raise ExtensionError("Executing pages failed:\n\n" + "\n\n".join(failures))
    else:
        keys_file.write_text(json.dumps(new_keys, indent=1, sort_keys=True))
    (state_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return sorted(set(plan) - set(added) - set(changed))


# ------------------------------------------------------------------------- MathJax


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the MathJax files a page needs into ``_static/mathjax`` of the built site."""
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    source = Path(app.confdir) / app.config.numscale_mathjax_dir
    if not (source / "tex-chtml.js").is_file():
        raise ExtensionError(
            f"MathJax not found at {source}: run `npm ci` (make does) so the book can serve it offline"
        )
    target = Path(app.outdir) / "_static" / "mathjax"
    for relative in ("tex-chtml.js", "output/chtml/fonts/woff-v2", "input/tex/extensions", "a11y", "sre", "ui", "adaptors"):
        src = source / relative
        dst = target / relative
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def stable_source_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Give the copied ``_sources/**/*.ipynb`` deterministic cell ids.

    myst-nb writes each text notebook's source as ``.ipynb``; nbformat gives every cell a
    random id, so two builds would differ. The id becomes a hash of position and source.
    """
    if exception is not None or app.builder.format != "html":
        return
    for path in sorted((Path(app.outdir) / "_sources").rglob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook.get("cells", [])):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            cell["id"] = hashlib.sha1(f"{index}:{text}".encode()).hexdigest()[:8]
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("numscale_src_dir", "src", "env")
    app.add_config_value("numscale_package", "numscale", "env")
    app.add_config_value("numscale_exec_workers", 0, "env")
    app.add_config_value("numscale_mathjax_dir", "node_modules/mathjax/es5", "env")
    app.connect("env-get-outdated", execute_outdated)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", stable_source_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
