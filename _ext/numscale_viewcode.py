"""Sphinx extension: the package's [source] pages (``sphinx.ext.viewcode``), current
after any edit and made without importing the package.

A module's [source] page shows every comment: after an edit of comments only, which
re-reads no page, that one page is written again from the new source
(:func:`refresh_viewcode_sources`). viewcode finds the package's module files without
importing the modules (:func:`_patch_viewcode_module_filename`). Loaded by
``numscale_api`` (the package reference links each entry to its [source] page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from numscale_package_source import add_package_config, module_file
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer


def refresh_viewcode_sources(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: give ``sphinx.ext.viewcode`` the current source of every
    package module whose [source] page is older than its file.

    viewcode writes a module's [source] page from the source it stored when it read the
    reference page, and writes it again when the module's file is newer than the page.
    After an edit that leaves the reference page as it is (comments, blank lines: it is
    not re-read), the stored source would be the old one: it is replaced here, with the
    new line numbers of each object, so that only that [source] page is written again,
    with the new text (by Sphinx, or by :func:`write_refreshed_sources` when Sphinx
    writes nothing). Re-reads nothing (returns no document).
    """
    from sphinx.ext import viewcode

    if not viewcode.is_supported_builder(app.builder):
        return []
    modules = getattr(env, "_viewcode_modules", {})
    package = app.config.numscale_package
    for modname, entry in list(modules.items()):
        if entry is False or not (
            modname == package or modname.startswith(package + ".")
        ):
            continue
        filename = viewcode.get_module_filename(app, modname)
        if filename is None or not viewcode.should_generate_module_page(app, modname):
            continue
        code, _, used, refname = entry
        try:
            analyzer = ModuleAnalyzer.for_file(filename, modname)
            if analyzer.code != code:
                analyzer.find_tags()
                modules[modname] = (analyzer.code, analyzer.tags, used, refname)
        except Exception:  # noqa: BLE001 - unreadable now: the reference page re-reads it
            continue
        app._numscale_refreshed = True  # type: ignore[attr-defined]
    return []


def note_collected(app: Sphinx) -> list:
    """``html-collect-pages``: Sphinx is writing the extensions' pages (viewcode's among
    them) itself this build."""
    app._numscale_collected = True  # type: ignore[attr-defined]
    return []


def write_refreshed_sources(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: write the [source] pages :func:`refresh_viewcode_sources`
    refreshed when Sphinx did not (with no document to write, it stops before writing
    any page); viewcode writes those whose module file is newer than the page."""
    if (
        exception is not None
        or not getattr(app, "_numscale_refreshed", False)
        or getattr(app, "_numscale_collected", False)
    ):
        return
    from sphinx.ext import viewcode

    builder = app.builder
    if not viewcode.is_supported_builder(builder):
        return
    if not hasattr(builder, "globalcontext"):
        builder.prepare_writing(set())
    for pagename, context, template in viewcode.collect_pages(app):
        builder.handle_page(pagename, context, template)


def _patch_viewcode_module_filename() -> None:
    """Let ``sphinx.ext.viewcode`` find the package's module files without importing them.

    To decide whether a ``_modules/<module>.html`` page is stale, viewcode asks for the
    module's file, and Sphinx imports the module to find it: every build imported every
    helper (torch among them, seconds each time) even when the reference was not re-read.
    For the package's own modules the file is known (``numscale_src_dir``, from which
    :func:`numscale_api._add_src_to_path` makes them import), so it is found without
    importing; any other module, and a name with no file there, goes to Sphinx as
    before.
    """
    from sphinx.ext import viewcode

    original = viewcode.get_module_filename
    if getattr(original, "numscale", False):
        return

    def get_module_filename(app: Sphinx, modname: str) -> str | None:
        package = app.config.numscale_package
        if (
            modname == package or modname.startswith(package + ".")
        ) and not app.emit_firstresult("viewcode-find-source", modname):
            src_dir = Path(app.confdir, app.config.numscale_src_dir).resolve()
            found = module_file(modname, src_dir)
            if found is not None:
                return str(found)
        return original(app, modname)

    get_module_filename.numscale = True  # type: ignore[attr-defined]
    viewcode.get_module_filename = get_module_filename


def setup(app: Sphinx) -> dict[str, Any]:
    add_package_config(app)
    app.setup_extension("sphinx.ext.viewcode")
    _patch_viewcode_module_filename()
    app.connect("env-get-outdated", refresh_viewcode_sources)
    app.connect("html-collect-pages", note_collected)
    app.connect("build-finished", write_refreshed_sources)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
