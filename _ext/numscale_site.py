"""Sphinx extension: the site's header buttons and fixes to the stock theme's assets.
Nothing here converts a page: the notebooks themselves are written by
``_ext/numscale_notebooks.py``, which this extension loads.

* Download and launch buttons (:func:`update_buttons`): the ``.ipynb`` entry of each
  page's download menu points at ``_notebooks/<docname>.ipynb`` (added if the theme did
  not), Colab opens ``github/<org>/<repo>/blob/<numscale_notebooks_branch>/_notebooks/
  <docname>.ipynb`` (Colab only opens a notebook committed to GitHub: the publish
  workflow pushes ``_build/html/_notebooks`` to that branch), Binder builds
  ``numscale_binder_branch`` (default ``repository.branch``) with ``binder/``, whose
  ``postBuild`` writes the notebooks at the same path.
* The book's PDF (``tools/pdf.py``, ``make pdf``): when ``<build>/pdf/numscale-book.pdf``
  exists it is copied into the site (:func:`copy_pdf`) and every page's download menu
  offers it (:func:`add_pdf_button`); otherwise no page links it.
* Asset fixes: Sphinx 7.4 adds a script registered after the builder started
  (sphinx-thebe's inline config) twice, once with filename ``None`` and once with ``''``,
  so every page logged "Identifier 'THEBE_JS_URL' has already been declared":
  :func:`dedupe_assets` drops the duplicate. docutils marks citations with the
  deprecated role ``doc-biblioentry`` inside a ``role="list"``, a critical axe-core
  violation on the bibliography: :func:`fix_aria_roles` makes them list items.
  (pydata-sphinx-theme writes ``data-mode=""`` for a first visitor unless
  ``html_context.default_mode`` is set: ``_config.yml`` sets it to ``auto``.)

Configuration (``sphinx: config:``): ``numscale_notebooks_branch`` (branch holding the
built site, for Colab; default ``"gh-pages"``), ``numscale_binder_branch`` (default:
``repository.branch``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from numscale_book_index import WITHOUT_DATA_MARKER, split_github
from numscale_notebook_writer import is_notebook_page, notebook_relpath, repository

#: The whole book as one PDF (tools/pdf.py), next to the pages of the site.
PDF_NAME = "numscale-book.pdf"


def note_pdf(app, config) -> None:
    """``config-inited``: whether ``make pdf`` has written ``<build>/pdf/numscale-book.pdf``.
    Kept as a config value so that Sphinx rewrites every page when it changes (the link
    appears, or goes, on all pages at once)."""
    config.numscale_pdf = (Path(app.outdir).parent / "pdf" / PDF_NAME).is_file()


def built_pdf(app) -> Path | None:
    """The book's PDF for this HTML build (see :func:`note_pdf`), or ``None``."""
    path = Path(app.outdir).parent / "pdf" / PDF_NAME
    return (
        path
        if app.builder.name == "html" and app.config.numscale_pdf and path.is_file()
        else None
    )


def add_pdf_button(
    app, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """``html-page-context``: "Book (.pdf)" in every page's download menu, only when the
    PDF exists (it is copied into the site by :func:`copy_pdf`): never a dead link."""
    if "header_buttons" not in context or built_pdf(app) is None:
        return
    for group in context["header_buttons"]:
        if group.get("type") == "group" and group.get("label") == "download-buttons":
            group["buttons"].append(
                {
                    "type": "link",
                    "url": context["pathto"](PDF_NAME, 1),
                    "text": "Book (.pdf)",
                    "icon": "fas fa-file-pdf",
                    "tooltip": "Download the whole book as one PDF",
                    "label": "download-book-pdf-button",
                }
            )


def copy_pdf(app, exception) -> None:
    """``build-finished``: put the book's PDF at ``<html>/numscale-book.pdf``."""
    if exception is not None or (pdf := built_pdf(app)) is None:
        return
    import shutil

    target = Path(app.outdir) / PDF_NAME
    if not target.is_file() or target.read_bytes() != pdf.read_bytes():
        shutil.copyfile(pdf, target)


def update_buttons(
    app, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """``html-page-context`` (after the theme): download link and launch URLs."""
    if (
        doctree is None
        or "header_buttons" not in context
        or not is_notebook_page(app, pagename)
    ):
        return
    if WITHOUT_DATA_MARKER in doctree.astext():
        # built without its data (_ext/numscale_data.py): no notebook is written for
        # it, so no button may point at one
        for group in context["header_buttons"]:
            if group.get("label") == "download-buttons":
                group["buttons"] = [
                    b
                    for b in group["buttons"]
                    if b.get("label") != "download-notebook-button"
                ]
        context["header_buttons"] = [
            g for g in context["header_buttons"] if g.get("label") != "launch-buttons"
        ]
        return
    relpath = notebook_relpath(app, pagename)
    notebook_url = context["pathto"](relpath, 1)
    repo_url, branch = repository(app)
    for group in context["header_buttons"]:
        if group.get("type") != "group":
            continue
        if group.get("label") == "download-buttons":
            buttons = group["buttons"]
            entry = {
                "type": "link",
                "url": notebook_url,
                "text": ".ipynb",
                "icon": "fas fa-code",
                "tooltip": "Download this chapter as a notebook",
                "label": "download-notebook-button",
            }
            for i, button in enumerate(buttons):
                if button.get("label") == "download-notebook-button":
                    buttons[i] = entry
                    break
            else:
                buttons.insert(0, entry)
        elif group.get("label") == "launch-buttons":
            github = split_github(repo_url)
            launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
            ui = {"classic": "tree", "jupyterlab": "lab/tree"}.get(
                launch.get("notebook_interface", "classic"), "tree"
            )
            for button in group["buttons"]:
                if button.get("text") == "Colab" and github:
                    colab = (
                        launch.get("colab_url") or "https://colab.research.google.com"
                    ).rstrip("/")
                    nb_branch = app.config.numscale_notebooks_branch
                    button["url"] = (
                        f"{colab}/github/{github[0]}/{github[1]}/blob/{nb_branch}/{relpath}"
                    )
                elif button.get("text") == "Binder" and github:
                    binder = (
                        launch.get("binderhub_url") or "https://mybinder.org"
                    ).rstrip("/")
                    binder_branch = app.config.numscale_binder_branch or branch
                    button["url"] = (
                        f"{binder}/v2/gh/{github[0]}/{github[1]}/{binder_branch}?urlpath={ui}/{relpath}"
                    )


def _asset_key(asset) -> tuple:
    filename = getattr(asset, "filename", asset) or ""
    attributes = getattr(asset, "attributes", {}) or {}
    return (
        filename,
        getattr(asset, "priority", 500),
        tuple(sorted((k, str(v)) for k, v in attributes.items())),
    )


def dedupe_assets(
    app, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """``html-page-context``: drop a script or stylesheet listed twice.

    Sphinx 7.4 registers a script added after ``Builder.init()`` (sphinx-thebe's inline
    ``const THEBE_JS_URL = ...``) twice: as filename ``None`` right away and as ``''``
    in ``prepare_writing``; the second ``const`` throws a SyntaxError on every page.
    """
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not isinstance(assets, list):
            continue
        seen: set[tuple] = set()
        unique = []
        for asset in assets:
            marker = _asset_key(asset)
            if marker in seen:
                continue
            seen.add(marker)
            unique.append(asset)
        assets[:] = unique


#: ARIA roles docutils writes that axe-core rejects, and their replacement. Citations are
#: written as ``<div role="list" class="citation-list"><div role="doc-biblioentry">``:
#: ``doc-biblioentry`` is deprecated (DPUB-ARIA 1.1) and not a ``listitem``, so the list
#: has no items ("aria-required-children", critical).
ARIA_ROLE_FIXES = {'role="doc-biblioentry"': 'role="listitem"'}


def fix_aria_roles(
    app, pagename: str, templatename: str, context: dict[str, Any], doctree
) -> None:
    """``html-page-context``: replace ARIA roles that break the accessibility tree."""
    body = context.get("body")
    if isinstance(body, str):
        for old, new in ARIA_ROLE_FIXES.items():
            body = body.replace(old, new)
        context["body"] = body


def setup(app) -> dict[str, Any]:
    app.setup_extension("numscale_notebooks")
    app.add_config_value("numscale_notebooks_branch", "gh-pages", "html")
    app.add_config_value("numscale_binder_branch", "", "html")
    app.add_config_value("numscale_pdf", False, "html")
    app.connect("config-inited", note_pdf)
    app.connect("html-page-context", dedupe_assets, priority=100)
    app.connect("html-page-context", fix_aria_roles, priority=100)
    app.connect("html-page-context", update_buttons, priority=900)
    app.connect("html-page-context", add_pdf_button, priority=901)
    app.connect("build-finished", copy_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
