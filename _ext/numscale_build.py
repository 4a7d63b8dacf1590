"""Sphinx extension: parallel, dependency-aware execution of the book's pages, and
MathJax served from the built site.

Jupyter Book 1 (myst-nb's ``cache`` mode) executes pages one after another and keys
its cache on a page's code cells only, so editing a helper module in ``src/`` leaves
stale outputs. This extension runs before Sphinx reads any page and

1. computes for every notebook page a *dependency key*: the page's code cells, the
   code of every module of the helper package it imports (directly or through other
   modules, found with ``ast``; keyed on the module's syntax tree, so an edit of comments
   or blank lines changes nothing), the values of environment variables those modules
   read (e.g. ``NUMSCALE_GPT2``, with the size and mtime of a local path it names), and
   the requirements in ``requirements.txt``;
2. executes the pages whose key changed, in parallel (one kernel per worker process),
   longest-running pages first, and stores the results in myst-nb's jupyter-cache, so
   myst-nb then finds every page in the cache and executes nothing itself;
3. tells Sphinx to re-read exactly those pages, even when their ``.md`` did not change.

A cell error fails the build unless the cell is tagged ``raises-exception``: one line
per failed page names the page, the cell and the exception (``book/x.md, code cell 3
(line 57): numscale.models.sources.SourceError: ...``), the traceback goes to
``<outdir>/../.numscale_exec/failed/<docname>.txt``, and the page's previous HTML is
removed so that no stale page passes for a current one. Kernels talk to the build over
local IPC sockets (not TCP). What ran, and for how long, is written to
``<outdir>/../.numscale_exec/report.json`` (read by the benchmark and the tests), and
each executed notebook to ``<outdir>/../.numscale_exec/executed/<docname>.ipynb``.

Also: MathJax is served from the built site when ``node_modules/mathjax`` is there (``make``
installs it), and otherwise loaded from Sphinx's default CDN, with one info line; every
page's "last updated" date is its source's last commit (its file's mtime when it has
uncommitted edits or outside git), which is both true and reproducible.

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
import functools
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
ENV_VAR_PATTERN = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["']([A-Z0-9_]+)["']"""
)
KEY_VERSION = "3"
#: Threads per kernel: pages run side by side, so each gets one BLAS/torch thread.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


# --------------------------------------------------------------------------- imports


def _strip_magics(code: str) -> str:
    """Drop IPython magics and shell escapes so ``ast`` can parse a cell."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in code.splitlines()
    )


def imported_modules(
    code: str, package: str, *, current_package: str | None = None
) -> set[str]:
    """Names of ``package`` modules that ``code`` imports (``package.sub`` form).

    ``current_package`` is the dotted package holding ``code`` (``a.b`` for both
    ``a/b/c.py`` and ``a/b/__init__.py``), to resolve relative imports. ``from package import name`` counts ``package.name`` (kept only if such a
    module exists; the caller filters). Unparsable code yields an empty set.
    """
    return set(_imported_modules(code, package, current_package))


@functools.cache
def _imported_modules(
    code: str, package: str, current_package: str | None
) -> frozenset[str]:
    """:func:`imported_modules`, memoized: every page's key walks the same modules, and
    parsing each once per build instead of once per page is most of the key's cost."""
    try:
        tree = ast.parse(_strip_magics(code))
    except SyntaxError:
        return frozenset()
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
    return frozenset(found)


@functools.cache
def module_path(name: str, src_dir: Path) -> Path | None:
    """File of dotted module ``name`` under ``src_dir`` (module or package), or None.
    Memoized for one build: :func:`execute_outdated` clears it when it starts."""
    parts = name.split(".")
    candidate = src_dir.joinpath(*parts)
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def read_source(path: Path) -> str:
    """Text of a module file, read once per build however many pages import it (keyed
    on the file's size and modification time, so an edited file is read again)."""
    stat = path.stat()
    return _read_source(str(path), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _read_source(path: str, mtime_ns: int, size: int) -> str:
    return Path(path).read_text(encoding="utf-8")


def module_facts(
    path: Path, package: str, holder: str, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a page's key needs of one module file: ``code`` (digest of
    :func:`code_fingerprint`), ``imports`` (:func:`imported_modules`, relative imports
    resolved from the dotted package ``holder``) and ``env`` (:func:`environment_names`).

    Parsing every module on every build was most of a no-op build's key time: the facts
    are kept in ``store`` (saved between builds by :func:`execute_outdated`), keyed on the
    file's content, so an unchanged file is not parsed again.
    """
    source = read_source(path)
    content = hashlib.sha256(source.encode()).hexdigest()
    entry_key = f"{package}:{holder}:{content}"
    if store is not None and entry_key in store:
        return store[entry_key]
    facts = {
        "code": hashlib.sha256(code_fingerprint(source).encode()).hexdigest(),
        "imports": sorted(imported_modules(source, package, current_package=holder)),
        "env": sorted(environment_names(source, package)),
    }
    if store is not None:
        store[entry_key] = facts
    return facts


def _holder(name: str, path: Path) -> str:
    """The dotted package holding module ``name`` (itself for a package's ``__init__``)."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def module_closure(
    roots: set[str], src_dir: Path, package: str, store: dict[str, Any] | None = None
) -> dict[str, Path]:
    """All package modules reached from ``roots``, with every parent ``__init__``."""
    seen: dict[str, Path] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(
            1, len(parts) + 1
        ):  # importing a.b.c runs a/__init__ and a/b/__init__
            parent = ".".join(parts[:i])
            path = module_path(parent, src_dir)
            if path is None or parent in seen:
                continue
            seen[parent] = path
            todo.extend(
                module_facts(path, package, _holder(parent, path), store)["imports"]
            )
    return seen


# ------------------------------------------------------------------ dependency key


@functools.cache
def code_fingerprint(source: str) -> str:
    """What Python runs of a module: its syntax tree, without comments, blank lines or
    layout (``ast.dump`` leaves out line numbers). Unparsable source is kept as text."""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return source


def requirements_fingerprint(text: str) -> str:
    """The requirement lines of a requirements file, without comments or blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def environment_names(source: str, package: str) -> set[str]:
    """Environment variables a module reads: literal ``os.environ``/``os.getenv`` keys,
    and string constants named like the package's variables (``NUMSCALE_GPT2`` assigned
    to ``ENV_VAR`` and read through a helper)."""
    return set(_environment_names(source, package))


@functools.cache
def _environment_names(source: str, package: str) -> frozenset[str]:
    """Environment variables a module reads: literal ``os.environ``/``os.getenv`` keys,
    and string constants named like the package's variables (``NUMSCALE_GPT2`` assigned
    to ``ENV_VAR`` and read through a helper)."""
    names = set(ENV_VAR_PATTERN.findall(source))
    own = re.compile(re.escape(package.upper()) + r"_[A-Z0-9_]+")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset(names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and own.fullmatch(node.value)
        ):
            names.add(node.value)
    return frozenset(names)


def _env_fingerprint(
    modules: dict[str, Path], package: str, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Values of the environment variables the modules read; for a local path, its
    size and mtime (of every file directly inside it, for a directory)."""
    names: set[str] = set()
    for name, path in modules.items():
        names.update(module_facts(path, package, _holder(name, path), store)["env"])
    return {name: _env_entry(name, os.environ.get(name)) for name in sorted(names)}


@functools.cache
def _env_entry(name: str, value: str | None) -> dict[str, Any]:
    """One variable's value and, for a local path, the files it names (size, mtime).
    Memoized for one build: :func:`execute_outdated` clears it when it starts."""
    entry: dict[str, Any] = {"value": value}
    if value:
        target = Path(value).expanduser()
        files = (
            sorted(target.iterdir())
            if target.is_dir()
            else [target]
            if target.is_file()
            else []
        )
        entry["files"] = [
            (f.name, f.stat().st_size, f.stat().st_mtime_ns)
            for f in files
            if f.is_file()
        ]
    return entry


def code_imports(code_cells: list[str], package: str) -> list[str]:
    """The package modules a page's code cells import (:func:`imported_modules`)."""
    roots: set[str] = set()
    for code in code_cells:
        roots |= imported_modules(code, package)
    return sorted(roots)


def dependency_key(
    code_cells: list[str],
    src_dir: Path,
    package: str,
    extra: str = "",
    store: dict[str, Any] | None = None,
    roots: list[str] | None = None,
) -> tuple[str, list[str]]:
    """Hash of a page's code and everything it depends on, and its module list.

    ``store``: facts of module files from earlier builds (:func:`module_facts`);
    ``roots``: :func:`code_imports` of the cells, when known already."""
    if roots is None:
        roots = code_imports(code_cells, package)
    modules = module_closure(set(roots), src_dir, package, store)
    digest = hashlib.sha256(KEY_VERSION.encode())
    for code in code_cells:
        digest.update(b"\0cell\0" + code.encode())
    for name in sorted(modules):
        path = modules[name]
        code = module_facts(path, package, _holder(name, path), store)["code"]
        digest.update(f"\0module {name}\0".encode() + code.encode())
    digest.update(
        json.dumps(_env_fingerprint(modules, package, store), sort_keys=True).encode()
    )
    digest.update(extra.encode())
    return digest.hexdigest(), sorted(modules)


# ----------------------------------------------------------------------- execution


#: Evaluated in the kernel after a cell error: the exception's full class name.
_QUALNAME = "(lambda e: type(e).__module__ + '.' + type(e).__qualname__)(__import__('sys').last_value)"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def merge_streams(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Consecutive stream outputs of one name (stdout, stderr) joined into one, exactly.

    How a cell's printed text is cut into stream messages depends on when the kernel
    flushes (``print`` writes its text and its newline separately), that is on timing;
    myst-nb's ``merge_streams`` strips each piece before joining, so a cut just before a
    newline renders as an extra blank line in one build and not in another. Joining the
    pieces as they are, before myst-nb sees them, leaves one piece per run of output and
    the page the same in every build. Other outputs are returned as they are.
    """
    merged: list[dict[str, Any]] = []
    for output in outputs:
        previous = merged[-1] if merged else None
        if (
            output.get("output_type") == "stream"
            and previous is not None
            and previous.get("output_type") == "stream"
            and previous.get("name") == output.get("name")
        ):
            previous["text"] = previous["text"] + output["text"]
        else:
            merged.append(output)
    return merged


def _execute(nb_json: str, cwd: str, timeout: int, pythonpath: str) -> dict[str, Any]:
    """Run one notebook in a fresh kernel (in a worker process).

    Returns the executed notebook and its time, or, when a cell fails, ``error``: the index
    of the failing cell, the exception's class (with its module) and message, and the
    traceback as plain text. The kernel listens on IPC sockets in a private temporary
    folder, so it neither opens TCP ports nor warns that TCP is unencrypted.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from traitlets.config import Config

    os.environ.update(KERNEL_ENV)
    os.environ["PYTHONPATH"] = (
        pythonpath + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    notebook = nbformat.reads(nb_json, as_version=4)
    failure: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="numscale-kernel-") as sockets:
        config = Config(
            {
                "KernelManager": {
                    "transport": "ipc",
                    "ip": os.path.join(sockets, "kernel"),
                }
            }
        )
        # The same client settings as jupyter-cache's executor, so outputs are unchanged.
        client = NotebookClient(
            notebook,
            timeout=timeout,
            allow_errors=False,
            record_timing=False,
            resources={"metadata": {"path": cwd}},
            config=config,
        )

        async def on_cell_error(cell, cell_index, execute_reply) -> None:
            if "raises-exception" in cell.metadata.get("tags", []):
                return  # an expected error: the cell shows it and execution goes on
            content = execute_reply["content"]
            failure.update(
                cell=cell_index,
                ename=content.get("ename", "Exception"),
                evalue=content.get("evalue", ""),
            )
            try:  # the class's module, from the kernel that raised it
                msg_id = client.kc.execute(
                    "",
                    silent=True,
                    store_history=False,
                    user_expressions={"q": _QUALNAME},
                )
                reply = await client.async_wait_for_reply(msg_id)
                answer = reply["content"]["user_expressions"]["q"]
                if answer.get("status") == "ok":
                    failure["ename"] = ast.literal_eval(
                        answer["data"]["text/plain"]
                    ).removeprefix("builtins.")
            except Exception:  # noqa: BLE001 - the short class name is still right
                pass

        client.on_cell_error = on_cell_error
        start = time.perf_counter()
        try:
            client.execute()
        except CellExecutionError as exc:
            failure.setdefault("ename", exc.ename)
            failure.setdefault("evalue", exc.evalue)
            failure["traceback"] = _ANSI.sub("", str(exc))
        except Exception as exc:  # noqa: BLE001 - a timeout or a dead kernel: report it the same way
            failure.setdefault("ename", type(exc).__name__)
            failure.setdefault(
                "evalue", str(exc).strip().splitlines()[-1] if str(exc).strip() else ""
            )
            failure["traceback"] = _ANSI.sub("", traceback.format_exc())
        seconds = time.perf_counter() - start
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = merge_streams(cell.outputs)
    return {
        "notebook": nbformat.writes(notebook),
        "seconds": seconds,
        "error": failure if "traceback" in failure else None,
    }


def cell_location(path: Path, notebook, cell_index: int | None) -> str:
    """Where cell ``cell_index`` of ``notebook`` (read from ``path``) is, for a reader:
    ``code cell 3 (line 57)`` for a MyST page, ``cell 4`` for an ``.ipynb``."""
    if cell_index is None:  # a timeout or a kernel that died: no cell reported an error
        return "execution"
    number = sum(
        1 for cell in notebook.cells[: cell_index + 1] if cell.cell_type == "code"
    )
    if path.suffix != ".md":
        return f"cell {cell_index + 1}"
    fences = [
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.match(r"^\s*(`{3,}|~{3,})\s*\{code-cell\}", line)
    ]
    where = f" (line {fences[number - 1]})" if 0 < number <= len(fences) else ""
    return f"code cell {number}{where}"


def _remove_stale_output(app: Sphinx, docname: str, state_dir: Path) -> None:
    """Delete what an earlier build wrote for a page that now fails, so it cannot be
    mistaken for the current page."""
    suffix = getattr(app.builder, "out_suffix", ".html")
    for stale in (
        Path(app.outdir) / f"{docname}{suffix}",
        state_dir / "executed" / f"{docname}.ipynb",
    ):
        stale.unlink(missing_ok=True)


def _notebook_pages(app: Sphinx, env) -> dict[str, Path]:
    """docname -> source path of every page that myst-nb would execute."""
    from myst_nb.core.read import is_myst_markdown_notebook

    pages = {}
    for docname in sorted(env.found_docs):
        path = Path(env.doc2path(docname))
        if path.suffix == ".ipynb" or (
            path.suffix == ".md"
            and is_myst_markdown_notebook(path.read_text(encoding="utf-8"))
        ):
            pages[docname] = path
    return pages


def _page_text(app: Sphinx, path: Path) -> str:
    """The text Sphinx reads for a page: its file, or what ``numscale-page-source``
    (_ext/numscale_data.py: a page whose data is missing) puts in its place."""
    text = path.read_text(encoding="utf-8")
    if "numscale-page-source" in app.events.events:
        text = app.emit_firstresult("numscale-page-source", path, text) or text
    return text


def _read_notebook(app: Sphinx, env, path: Path, text: str | None = None):
    from myst_nb.core.read import create_nb_reader

    text = _page_text(app, path) if text is None else text
    reader = create_nb_reader(str(path), env.myst_config, env.mystnb_config, text)
    return reader.read(text), reader


def fail_build(
    app: Sphinx, env, plan: dict, failures: dict[str, dict[str, Any]], state_dir: Path
) -> None:
    """Stop the build with one line per failed page, and nothing stale left behind.

    Raising an exception here would make Sphinx and then jupyter-book's command line print
    it again and again inside their tracebacks; the build exits instead (status 1) after
    the lines, and the full traceback of each page goes to a file.
    """
    root = Path(app.confdir)
    lines = []
    for docname in sorted(failures):
        error = failures[docname]
        path, notebook = plan[docname][0], plan[docname][1]
        where = cell_location(path, notebook, error.get("cell"))
        message = " ".join(str(error.get("evalue", "")).split())  # one line
        source = path.relative_to(root) if path.is_relative_to(root) else path
        lines.append(
            f"{source}, {where}: {error['ename']}" + (f": {message}" if message else "")
        )
        log = state_dir / "failed" / f"{docname}.txt"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(error.get("traceback", ""), encoding="utf-8")
        _remove_stale_output(app, docname, state_dir)
    where_logs = state_dir / "failed"
    try:
        where_logs = where_logs.relative_to(Path.cwd())
    except ValueError:
        pass
    sys.stdout.flush()
    sys.stderr.write(
        "".join(f"ERROR: [numscale] {line}\n" for line in lines)
        + f"ERROR: [numscale] {len(lines)} page(s) failed; tracebacks in {where_logs}/\n"
    )
    sys.stderr.flush()
    raise SystemExit(1)


class _UsedStore(dict):
    """A store of :func:`module_facts` that remembers the entries this build used (the
    ones worth keeping for the next build)."""

    def __init__(self, entries: dict[str, Any]) -> None:
        super().__init__(entries)
        self.used: dict[str, Any] = {}

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        if found:
            self.used[key] = super().__getitem__(key)  # type: ignore[index]
        return found

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.used[key] = value


def execute_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated`` handler: execute stale pages, return them for re-reading."""
    if env.mystnb_config.execution_mode != "cache":
        return []
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    _env_entry.cache_clear()  # files a variable names may have changed since the last build
    module_path.cache_clear()  # so may the package's files
    root = Path(app.confdir)
    src_dir = root / app.config.numscale_src_dir
    package = app.config.numscale_package
    requirements = root / "requirements.txt"
    extra = (
        requirements_fingerprint(requirements.read_text(encoding="utf-8"))
        if requirements.is_file()
        else ""
    )
    state_dir = Path(app.outdir).parent / ".numscale_exec"
    state_dir.mkdir(parents=True, exist_ok=True)
    keys_file = state_dir / "keys.json"
    old_keys: dict[str, Any] = (
        json.loads(keys_file.read_text()) if keys_file.is_file() else {}
    )
    cache = get_cache(env.mystnb_config.execution_cache_path or ".jupyter_cache")
    # What the key needs of each module file, from earlier builds (keyed on content).
    facts_file = state_dir / "modules.json"
    old_facts: dict[str, Any] = (
        json.loads(facts_file.read_text()) if facts_file.is_file() else {}
    )
    facts = _UsedStore(old_facts)
    cached = {record.hashkey for record in cache.list_cache_records()}

    plan: dict[str, tuple[Path, Any, str, list[str]]] = {}
    new_keys: dict[str, Any] = {}
    for docname, path in _notebook_pages(app, env).items():
        text = _page_text(app, path)
        text_digest = hashlib.sha256(text.encode()).hexdigest()
        previous = old_keys.get(docname, {})
        notebook = None
        if previous.get("text") == text_digest and "roots" in previous:
            # The same text as last time: its code cells, their imports and its
            # cache hash are known.
            code, hashkey = previous["code"], previous["hashkey"]
            roots = previous["roots"]
        else:
            notebook, _ = _read_notebook(app, env, path, text)
            code = [c.source for c in notebook.cells if c.cell_type == "code"]
            hashkey = cache.create_hashed_notebook(notebook)[1]
            roots = code_imports(code, package)
        key, modules = dependency_key(code, src_dir, package, extra, facts, roots)
        new_keys[docname] = {
            "key": key,
            "modules": modules,
            "seconds": previous.get("seconds", 0.0),
            "text": text_digest,
            "code": code,
            "hashkey": hashkey,
            "roots": roots,
        }
        if previous.get("key") != key or hashkey not in cached:
            if notebook is None:
                notebook, _ = _read_notebook(app, env, path, text)
            plan[docname] = (path, notebook, key, modules)
    facts_file.write_text(json.dumps(facts.used, sort_keys=True))

    report: dict[str, Any] = {"executed": {}, "workers": 0, "wall_seconds": 0.0}
    if plan:
        configured = int(
            os.environ.get("NUMSCALE_EXEC_WORKERS")
            or app.config.numscale_exec_workers
            or 0
        )
        workers = max(1, min(configured or os.cpu_count() or 1, len(plan)))
        report["workers"] = workers
        order = sorted(plan, key=lambda d: -new_keys[d]["seconds"])  # longest first
        LOGGER.info(
            f"[numscale] executing {len(order)} page(s) on {workers} worker(s): {', '.join(order)}"
        )
        timeout = int(env.mystnb_config.execution_timeout or 300)
        start = time.perf_counter()
        failures: dict[str, dict[str, Any]] = {}
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = {
                pool.submit(
                    _execute,
                    nbformat.writes(plan[d][1]),
                    str(plan[d][0].parent),
                    timeout,
                    str(src_dir.resolve()),
                ): d
                for d in order
            }
            for future in cf.as_completed(futures):
                docname = futures[future]
                path = plan[docname][0]
                try:
                    outcome = future.result()
                except Exception:  # the worker itself died
                    outcome = {
                        "error": {
                            "ename": "worker crash",
                            "evalue": "",
                            "traceback": traceback.format_exc(),
                        }
                    }
                if outcome["error"] is not None:
                    failures[docname] = outcome["error"]
                    new_keys.pop(docname, None)
                    continue
                executed = nbformat.reads(outcome["notebook"], as_version=4)
                copy = (
                    state_dir / "executed" / f"{docname}.ipynb"
                )  # for tests and readers
                copy.parent.mkdir(parents=True, exist_ok=True)
                copy.write_text(outcome["notebook"], encoding="utf-8")
                (state_dir / "failed" / f"{docname}.txt").unlink(missing_ok=True)
                record = cache.add_nb_to_project(
                    str(path),
                    read_data={"name": "myst_nb_md", "type": "plugin"}
                    if path.suffix == ".md"
                    else {"name": "nbformat", "type": "plugin"},
                )
                cache.cache_notebook_bundle(
                    CacheBundleIn(
                        executed,
                        record.uri,
                        data={"execution_seconds": outcome["seconds"]},
                    ),
                    check_validity=False,
                    overwrite=True,
                )
                new_keys[docname]["seconds"] = outcome["seconds"]
                report["executed"][docname] = round(outcome["seconds"], 3)
                LOGGER.info(
                    f"[numscale] executed {docname} in {outcome['seconds']:.1f} s"
                )
        report["wall_seconds"] = round(time.perf_counter() - start, 3)
        keys_file.write_text(json.dumps(new_keys, indent=1, sort_keys=True))
        if failures:
            report["failed"] = sorted(failures)
            (state_dir / "report.json").write_text(
                json.dumps(report, indent=1, sort_keys=True)
            )
            fail_build(app, env, plan, failures, state_dir)
    else:
        keys_file.write_text(json.dumps(new_keys, indent=1, sort_keys=True))
    (state_dir / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    return sorted(set(plan) - set(added) - set(changed))


# ------------------------------------------------------------------ figure numbers


def note_read_docs(app: Sphinx, env, docnames: list[str]) -> None:
    """``env-before-read-docs``: the pages this build reads (the list itself, which later
    handlers may extend; see :func:`_patch_figure_numbers`)."""
    app._numscale_reading = docnames  # type: ignore[attr-defined]


def note_removed_docs(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: whether pages were removed (see
    :func:`_patch_figure_numbers`)."""
    app._numscale_removed = bool(removed)  # type: ignore[attr-defined]
    return []


def figure_skeleton(env, doctree) -> Any:
    """What Sphinx's figure numbering reads of a doctree: its sections (with their ids),
    ``toctree`` nodes, and every node some domain numbers (figures, tables, code blocks,
    exercises ...) whole, in document order; any other element is replaced by what it
    holds of these (numbering walks every element alike, with its section's number).
    The package reference's doctree (35,000 nodes) has a skeleton of a few dozen."""
    from docutils import nodes
    from sphinx import addnodes

    domains = list(env.domains.values())

    def numbered(node) -> bool:
        return any(domain.get_enumerable_node_type(node) for domain in domains)

    def prune(node) -> list[Any]:
        kept: list[Any] = []
        for child in node.children:
            if isinstance(child, nodes.section):
                copy = child.copy()  # attributes, no children
                copy.extend(prune(child))
                kept.append(copy)
            elif isinstance(child, addnodes.toctree) or (
                isinstance(child, nodes.Element) and numbered(child)
            ):
                kept.append(child.deepcopy())
            elif isinstance(child, nodes.Element):
                kept.extend(prune(child))
        return kept

    root = nodes.Element()
    root.extend(prune(doctree))
    for node in root.findall():
        node.document = None  # copies point at the whole document: keep them small
    return root


def _patch_figure_numbers() -> None:
    """Sphinx's figure numbering, without reading back every page's doctree.

    Sphinx numbers the figures of the whole book after every build (``numfig``), reading
    every page's doctree from disk, the package reference's among them (about 1 s of an
    incremental build). The numbers depend only on the doctrees and the tables of
    contents. When no page was read or removed, nothing they depend on changed, and the
    numbers kept from the last build (``env.toc_fignumbers``) stand. Otherwise the
    numbering runs as Sphinx's own, on each page's :func:`figure_skeleton`: computed
    from the doctree and kept (``numscale_figure_skeletons.pickle`` beside the
    doctrees) for as long as the doctree file is unchanged.
    """
    import pickle

    from sphinx.environment.collectors.toctree import TocTreeCollector

    original = TocTreeCollector.assign_figure_numbers
    if getattr(original, "numscale", False):
        return

    def assign_figure_numbers(self, env) -> list[str]:
        app = env.app
        if (
            getattr(app, "_numscale_reading", None) == []
            and getattr(app, "_numscale_removed", None) is False
        ):
            return []
        store = Path(env.doctreedir) / "numscale_figure_skeletons.pickle"
        version = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        try:
            saved_version, kept = pickle.loads(store.read_bytes())
        except Exception:  # noqa: BLE001 - none yet, or unreadable: start again
            saved_version, kept = None, {}
        if saved_version != version:  # made by other code
            kept = {}
        used: dict[str, Any] = {}
        get_doctree = env.get_doctree

        def skeleton(docname: str) -> Any:
            path = Path(env.doctreedir) / f"{docname}.doctree"
            try:
                stat = path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                stamp = None
            entry = kept.get(docname)
            if stamp is None or entry is None or entry[0] != stamp:
                entry = (stamp, figure_skeleton(env, get_doctree(docname)))
            used[docname] = entry
            return entry[1]

        env.get_doctree = skeleton
        try:
            result = original(self, env)
        finally:
            del env.get_doctree  # the instance attribute: the method again
        store.write_bytes(
            pickle.dumps((version, used), protocol=pickle.HIGHEST_PROTOCOL)
        )
        return result

    assign_figure_numbers.numscale = True  # type: ignore[attr-defined]
    TocTreeCollector.assign_figure_numbers = assign_figure_numbers  # type: ignore[method-assign]


# --------------------------------------------------------------------- search index

#: Where the search index's entries of every page are kept between builds.
INDEX_ENTRIES_FILE = "numscale_index_entries.pickle"


def restore_index_entries(app: Sphinx, env) -> None:
    """``env-updated``: the index entries (``{index}``, autodoc's) of every page for the
    search index, as the last build wrote them, for the pages this build does not write.

    Sphinx 7.4 keeps them in the environment, which it saves *before* writing pages, so
    the entries are lost for every page an incremental build does not write again: its
    ``searchindex.js`` then differed from a clean build's (sphinx-doc/sphinx#12599).
    A page this build writes replaces its entries when it is written; a removed page's
    are dropped.
    """
    import pickle

    entries = env._search_index_index_entries
    for docname in [d for d in entries if d not in env.found_docs]:
        del entries[docname]  # a removed page (the search index has no number for it)
    path = Path(env.doctreedir) / INDEX_ENTRIES_FILE
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - none yet, or unreadable: Sphinx's own behaviour
        return
    for docname, listed in saved.items():
        if docname in env.found_docs:  # the last written: newer than the environment's
            entries[docname] = listed


def _patch_search_terms() -> None:
    """Leave out of the search index the words no page has any more.

    An incremental build removes the pages it writes again from every word's list
    before indexing them anew: a word such a page no longer has keeps an empty list
    (``"word": []``), which a clean build, indexing only the words pages have, never
    writes. Dropping empty lists makes the two indexes the same.
    """
    from sphinx.search import IndexBuilder

    original = IndexBuilder.freeze
    if getattr(original, "numscale", False):
        return

    def freeze(self) -> dict[str, Any]:
        frozen = original(self)
        for name in ("terms", "titleterms"):
            frozen[name] = {k: v for k, v in frozen[name].items() if v != []}
        return frozen

    freeze.numscale = True  # type: ignore[attr-defined]
    IndexBuilder.freeze = freeze  # type: ignore[method-assign]


def save_index_entries(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: keep the entries :func:`restore_index_entries` restores."""
    if exception is not None or app.builder.format != "html":
        return
    import pickle

    entries = {
        docname: listed
        for docname, listed in app.env._search_index_index_entries.items()
        if docname in app.env.found_docs
    }
    path = Path(app.env.doctreedir) / INDEX_ENTRIES_FILE
    data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


# ------------------------------------------------------------------------- MathJax


#: ``mathjax_path`` of the copy this extension serves from the built site.
LOCAL_MATHJAX = "mathjax/tex-chtml.js"


def _local_mathjax(app: Sphinx) -> Path | None:
    source = Path(app.confdir) / app.config.numscale_mathjax_dir
    return source if (source / "tex-chtml.js").is_file() else None


def choose_mathjax(app: Sphinx, config) -> None:
    """``config-inited``: serve MathJax from the site when the npm package is there;
    otherwise (a reader who ran ``jupyter-book build .`` without ``npm ci``) keep Sphinx's
    default, MathJax from its CDN, so the maths still renders for a reader online."""
    if config.mathjax_path != LOCAL_MATHJAX or _local_mathjax(app) is not None:
        return
    from sphinx.ext.mathjax import MATHJAX_URL

    config.mathjax_path = MATHJAX_URL
    LOGGER.info(
        f"[numscale] {config.numscale_mathjax_dir} not found: pages load MathJax from {MATHJAX_URL} "
        "(`make book` runs `npm ci` and serves it from the site, for offline reading)"
    )


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the MathJax files a page needs into ``_static/mathjax`` of the built site."""
    if (
        exception is not None
        or app.builder.format != "html"
        or app.config.mathjax_path != LOCAL_MATHJAX
    ):
        return
    import shutil

    source = _local_mathjax(app)
    if source is None:
        raise ExtensionError(
            f"MathJax not found in {app.config.numscale_mathjax_dir}: run `npm ci` (make does)"
        )
    target = Path(app.outdir) / "_static" / "mathjax"
    for relative in (
        "tex-chtml.js",
        "output/chtml/fonts/woff-v2",
        "input/tex/extensions",
        "a11y",
        "sre",
        "ui",
        "adaptors",
    ):
        src = source / relative
        dst = target / relative
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


# --------------------------------------------------------------------------- dates


def source_dates(root: Path) -> dict[str, float]:
    """Time (Unix seconds) each file under ``root`` last changed, by relative POSIX path:
    its last commit, or its modification time when it has uncommitted changes. Empty
    outside git (callers fall back to modification times)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    log = git(
        "log", "--format=@%ct", "--name-only", "--no-renames", "--relative", "--", "."
    )
    if log is None:
        return {}
    dates: dict[str, float] = {}
    current = 0.0
    for line in log.splitlines():
        if line.startswith("@"):
            current = float(line[1:])
        elif line and line not in dates:  # newest commit first
            dates[line] = current
    prefix = (
        git("rev-parse", "--show-prefix") or ""
    ).strip()  # porcelain paths start at the top
    status = git("status", "--porcelain", "--untracked-files=all", "--", ".") or ""
    for line in status.splitlines():
        name = line[3:].split(" -> ")[-1].strip().strip('"').removeprefix(prefix)
        if (root / name).is_file():
            dates[name] = (root / name).stat().st_mtime
    return dates


def set_page_dates(app: Sphinx) -> None:
    """``builder-inited``: look up every file's date once per build."""
    app.numscale_dates = source_dates(Path(app.srcdir))  # type: ignore[attr-defined]


def page_date(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """``html-page-context``: "Last updated" is the date the page's source last changed
    (Sphinx's default is the build's date, or SOURCE_DATE_EPOCH for every page)."""
    if context.get("last_updated") is None or pagename not in app.env.all_docs:
        return
    from sphinx.util.i18n import format_date

    path = Path(app.env.doc2path(pagename))
    relative = (
        path.relative_to(app.srcdir).as_posix()
        if path.is_relative_to(app.srcdir)
        else ""
    )
    dates: dict[str, float] = getattr(app, "numscale_dates", {})
    when = dates.get(relative)
    if when is None:
        if not path.is_file():
            return
        when = path.stat().st_mtime
    fmt = app.config.html_last_updated_fmt or "%b %d, %Y"
    context["last_updated"] = format_date(
        fmt,
        date=datetime.fromtimestamp(when, tz=UTC),
        language=app.config.language,
    )


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
        path.write_text(
            json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8",
        )


def setup(app: Sphinx) -> dict[str, Any]:
    for name, default in (
        ("numscale_src_dir", "src"),
        ("numscale_package", "numscale"),
    ):
        if name not in app.config:  # also declared by numscale_api
            app.add_config_value(name, default, "env")
    app.add_config_value("numscale_exec_workers", 0, "env")
    app.add_config_value("numscale_mathjax_dir", "node_modules/mathjax/es5", "env")
    app.connect("config-inited", choose_mathjax)
    app.connect("builder-inited", set_page_dates)
    app.connect("env-get-outdated", execute_outdated)
    app.connect("env-get-outdated", note_removed_docs)
    app.connect("env-before-read-docs", note_read_docs)
    _patch_figure_numbers()
    _patch_search_terms()
    app.connect("env-updated", restore_index_entries)
    app.connect("build-finished", save_index_entries)
    app.connect("html-page-context", page_date)
    app.connect("build-finished", copy_mathjax)
    app.connect("build-finished", stable_source_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
