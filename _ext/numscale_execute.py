"""Sphinx extension: parallel, dependency-aware execution of the book's pages.

Jupyter Book 1 (myst-nb's ``cache`` mode) executes pages one after another and keys
its cache on a page's code cells only, so editing a helper module in ``src/`` leaves
stale outputs. This extension runs before Sphinx reads any page and

1. computes for every notebook page a *dependency key*: the page's code cells, the
   code of every helper module it imports, the environment variables those modules read
   and the requirements (``numscale_dependency_key.py``);
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

Configuration (``_config.yml`` → ``sphinx: config:``): ``numscale_src_dir`` and
``numscale_package`` (``numscale_package_source.py``), ``numscale_exec_workers``
(default: number of CPUs; the environment variable ``NUMSCALE_EXEC_WORKERS`` overrides
it).
"""

from __future__ import annotations

import ast
import concurrent.futures as cf
import hashlib
import json
import multiprocessing
import os
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from numscale_dependency_key import (
    UsedStore,
    code_imports,
    dependency_key,
    forget_file_state,
    requirements_fingerprint,
)
from numscale_package_source import add_package_config
from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)
#: Threads per kernel: pages run side by side, so each gets one BLAS/torch thread.
KERNEL_ENV = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}


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


def execute_outdated(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated`` handler: execute stale pages, return them for re-reading."""
    if env.mystnb_config.execution_mode != "cache":
        return []
    import nbformat
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    forget_file_state()  # modules, and files a variable names, may have changed
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
    facts = UsedStore(old_facts)
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


def setup(app: Sphinx) -> dict[str, Any]:
    add_package_config(app)
    app.add_config_value("numscale_exec_workers", 0, "env")
    app.connect("env-get-outdated", execute_outdated)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
