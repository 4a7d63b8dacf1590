"""Writing the downloadable notebooks: the Sphinx side and the script.

``build-finished`` (:func:`write_notebooks`, connected by ``numscale_notebooks.setup``)
writes ``<html>/_notebooks/<docname>.ipynb`` for every notebook page, converting a page
again only when something it is made from changed (:func:`notebook_inputs`). Also the
helpers ``_ext/numscale_site.py`` uses for its buttons (:func:`repository`,
:func:`notebook_relpath`, :func:`is_notebook_page`).

As a script (``python _ext/numscale_notebooks.py`` runs :func:`main`): ``[--out DIR]
[--repo-url URL] [--ref REF] [--build DIR] book/*.md`` writes ``DIR/book/<name>.ipynb``
for each notebook page (``binder/postBuild`` uses it; ``--build`` reads glued values
from a build).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

from numscale_book_index import (
    BookIndex,
    IndexCache,
    NotebookMarkdownError,
    _load_pickle,
    _save_pickle,
    book_index,
    book_settings,
    is_notebook_source,
    replaced_in_build,
    toc_entries,
)
from numscale_install_cell import DEFAULT_REF, DEFAULT_REPOSITORY, source_ref
from numscale_notebooks import notebook_text, site_notebook

#: The modules the notebooks are made by (their code is part of every notebook's digest).
CONVERTER_MODULES = (
    "numscale_notebooks",
    "numscale_notebook_roles",
    "numscale_book_index",
    "numscale_install_cell",
    "numscale_notebook_writer",
)


def repository(app: Any) -> tuple[str, str]:
    """``(repository url, branch)`` of this build (the theme's options)."""
    options = app.config.html_theme_options or {}
    url = (options.get("repository_url") or DEFAULT_REPOSITORY).rstrip("/")
    branch = options.get("repository_branch") or DEFAULT_REF
    return url, branch


def is_notebook_page(app: Any, docname: str) -> bool:
    return "kernelspec" in app.env.metadata.get(docname, {})


def notebook_relpath(app: Any, docname: str) -> str:
    """Where the site serves ``docname``'s notebook, relative to the HTML root."""
    return f"{app.config.numscale_notebooks_dir.strip('/')}/{docname}.ipynb"


def _settings(app: Any) -> dict[str, Any]:
    """The book's settings (:func:`book_settings`) with this build's configuration."""
    settings = book_settings(app.srcdir)
    settings["repo_url"], settings["branch"] = repository(app)
    settings["ref"] = source_ref(app.srcdir, settings["branch"])
    if app.config.numscale_site_url:
        settings["site_url"] = app.config.numscale_site_url
    return settings


def write_notebooks(app: Any, exception: Exception | None) -> None:
    """``build-finished``: write ``_notebooks/<docname>.ipynb`` for every notebook page.

    A notebook is converted again only when something it is made from changed
    (:func:`notebook_inputs`): converting every chapter after every edit was most of an
    incremental build's time. What was made is kept in ``.numscale_notebooks.json``.
    """
    if (
        exception is not None
        or app.builder.format != "html"
        or app.builder.name != "html"
    ):
        return
    import json

    from sphinx.util import logging

    settings = _settings(app)
    out = Path(app.outdir)
    # pages built without their data (_ext/numscale_data.py) get no notebook: their
    # page says what they need
    missing = app.__dict__.get("_numscale_missing", {})
    without_data = frozenset(d for d, why in missing.items() if why)
    index_file = out.parent / ".numscale_index.pickle"
    cache = IndexCache(_load_pickle(index_file))
    index = book_index(
        app.srcdir,
        settings["site_url"],
        settings["bibfiles"],
        out.parent,
        without_data,
        cache,
    )
    _save_pickle(index_file, cache.used)
    state = out.parent / ".numscale_notebooks.json"
    done: dict[str, str] = json.loads(state.read_text()) if state.is_file() else {}
    common = _common_inputs(settings, index)
    made: dict[str, str] = {}
    for docname in sorted(app.env.found_docs):
        if not is_notebook_page(app, docname) or docname in without_data:
            continue
        source = Path(app.env.doc2path(docname))
        target = out / notebook_relpath(app, docname)
        target.parent.mkdir(parents=True, exist_ok=True)
        digest = notebook_inputs(common, source, out.parent, docname)
        if done.get(docname) != digest or not target.is_file():
            try:
                notebook = site_notebook(
                    app.srcdir, docname, out.parent, settings, index
                )
            except NotebookMarkdownError as error:
                logging.getLogger(__name__).warning(
                    f"the downloadable notebook of {docname} could not be written: "
                    f"{error}",
                    type="numscale",
                    subtype="notebook",
                    location=docname,
                )
                continue
            text = notebook_text(notebook)
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                target.write_text(text, encoding="utf-8")
        made[docname] = digest
        # The theme copies myst-nb's jupyter_execute notebook (no install cell, outputs
        # stripped) to _sources/ for its own .ipynb link, which numscale_site points
        # here instead: remove the copy so that the site offers one notebook per chapter.
        theme_copy = out / "_sources" / f"{docname}.ipynb"
        if source.suffix != ".ipynb" and theme_copy.is_file():
            theme_copy.unlink()
    state.write_text(json.dumps(made, indent=1, sort_keys=True), encoding="utf-8")


_LITERALINCLUDE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\{literalinclude\}\s+(\S+)", re.M)


def _common_inputs(settings: dict[str, Any], index: BookIndex) -> str:
    """Digest of what every chapter's notebook is made from: the book's settings (the
    commit the install cell pins, the site's address), the book's index (numbers,
    labels, citations), the converter's code (its four modules) and jupytext's version."""
    import jupytext

    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    digest.update(repr(vars(index)).encode())
    for module in CONVERTER_MODULES:
        digest.update(Path(__file__).with_name(f"{module}.py").read_bytes())
    digest.update(jupytext.__version__.encode())
    return digest.hexdigest()


def notebook_inputs(common: str, source: Path, build_dir: Path, docname: str) -> str:
    """Digest of everything the notebook of ``docname`` is made from: ``common``
    (:func:`_common_inputs`), the page's source, the files it shows with
    ``literalinclude`` and its executed notebook in ``build_dir`` (the glued values)."""
    digest = hashlib.sha256(common.encode())
    text = source.read_bytes()
    digest.update(b"\0source\0" + text)
    for match in _LITERALINCLUDE.finditer(text.decode("utf-8")):
        included = source.parent / match.group(2)
        digest.update(b"\0include\0" + match.group(2).encode())
        digest.update(included.read_bytes() if included.is_file() else b"\0missing")
    for folder in (".numscale_exec/executed", "jupyter_execute"):  # as executed_glue
        executed = Path(build_dir) / folder / f"{docname}.ipynb"
        content = executed.read_bytes() if executed.is_file() else b"\0missing"
        digest.update(f"\0{folder}\0".encode() + content)
    return digest.hexdigest()


# ------------------------------------------------------------------ script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write each chapter as a runnable notebook."
    )
    parser.add_argument(
        "sources", nargs="+", type=Path, help="chapter files (.md / .ipynb)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("_notebooks"),
        help="output folder (default _notebooks)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=Path("."),
        help="book root: output paths are relative to it",
    )
    parser.add_argument(
        "--repo-url", help="default: repository.url of <root>/_config.yml"
    )
    parser.add_argument(
        "--ref", help="default: the checkout's commit, else repository.branch"
    )
    parser.add_argument(
        "--build",
        type=Path,
        help="a build folder (holding html/): glued values from it",
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    settings = book_settings(root)
    if args.repo_url:
        settings["repo_url"] = args.repo_url.rstrip("/")
    if args.ref:
        settings["ref"] = args.ref
    index = book_index(root, settings["site_url"], settings["bibfiles"], args.build)
    in_toc = {docname for docname, _ in toc_entries(root)}
    for source in args.sources:
        if not is_notebook_source(source):
            continue
        relative = source.resolve().relative_to(root).with_suffix("")
        if relative.as_posix() not in in_toc:  # the site has no notebook for it either
            print(f"{source}: not in _toc.yml, skipped", file=sys.stderr)
            continue
        if replaced_in_build(args.build, relative.as_posix()):  # nor for this one
            print(f"{source}: built without its data, skipped", file=sys.stderr)
            continue
        target = args.out / relative.with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        notebook = site_notebook(root, relative.as_posix(), args.build, settings, index)
        target.write_text(notebook_text(notebook), encoding="utf-8")
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
