"""Sphinx extension: a runnable ``.ipynb`` of every chapter, its download link, and
launch buttons that open that notebook; plus two fixes to the stock theme's assets.

The chapters are MyST markdown. sphinx-book-theme's download menu offers the ``.md``
source and a copy of myst-nb's ``jupyter_execute`` notebook (no install cell, outputs
stripped), and its launch buttons point at ``<page>.md`` on the source branch, which
Colab cannot open. This extension

1. converts every notebook page with jupytext (:func:`chapter_notebook`, the same
   function the tests use) and prepends a hidden install cell (:func:`install_cell`)
   that runs ``%pip install "numscale @ git+<repository url>@<branch>"`` (plus
   ``myst-nb``, whose ``glue`` the chapters import) **only when the import fails**;
   with the packages installed (the book's own kernel, Binder) the cell does nothing;
2. writes it to ``<html>/_notebooks/<docname>.ipynb`` (e.g.
   ``_notebooks/book/dot_products.ipynb``), byte-identical from build to build
   (deterministic cell ids, no timestamps);
3. points the ``.ipynb`` entry of each page's download menu at that file (and adds it
   if the theme did not), and rewrites the launch buttons:

   * **Colab** opens ``github/<org>/<repo>/blob/<numscale_notebooks_branch>/_notebooks/<docname>.ipynb``.
     Colab can only open a notebook that is committed to GitHub, and the generated
     notebooks exist only in the built site. The default branch is ``gh-pages``: when
     the publish workflow pushes ``_build/html`` to ``gh-pages`` (``ghp-import -n -p -f
     _build/html`` or ``peaceiris/actions-gh-pages``) the notebooks are on that branch
     at exactly this path. A workflow that deploys with ``actions/deploy-pages``
     (no branch) must also push ``_build/html/_notebooks`` to that branch: this book's
     ``.github/workflows/publish.yml`` does, to the branch ``notebooks`` that
     ``_config.yml`` names.
   * **Binder** builds the repository's ``repository.branch`` (``main``) with the
     environment in ``binder/``; its ``postBuild`` installs the package and runs this
     file as a script to generate the same notebooks at the same ``_notebooks/...``
     path, which the button opens (JupyterLab, ``launch_buttons.notebook_interface``).

4. Asset fixes for the stock theme: Sphinx 7.4 adds a script registered after the
   builder started (sphinx-thebe's inline config) twice, once with filename ``None``
   and once with ``''``, so every page logged "Identifier 'THEBE_JS_URL' has already
   been declared"; :func:`dedupe_assets` drops the duplicate. docutils marks citations
   with the deprecated role ``doc-biblioentry`` inside a ``role="list"``, a critical
   axe-core violation on the bibliography; :func:`fix_aria_roles` makes them list items.

Configuration (``sphinx: config:``): ``numscale_notebooks_dir`` (default
``"_notebooks"``), ``numscale_notebooks_branch`` (branch holding the built site, for
Colab; default ``"gh-pages"``), ``numscale_binder_branch`` (default: ``repository.branch``).

As a script: ``python _ext/numscale_notebooks.py [--out DIR] [--repo-url URL]
[--ref BRANCH] book/*.md`` writes ``DIR/book/<name>.ipynb`` for each notebook page
(``binder/postBuild`` uses it).
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
from pathlib import Path
from typing import Any

#: Top-level modules a chapter may import that a fresh kernel (Colab) lacks, and the pip
#: requirement that provides each; ``None`` means "the helper package from the repository".
INSTALLABLE: dict[str, str | None] = {"numscale": None, "myst_nb": "myst-nb"}
INSTALL_TAGS = ["remove-cell", "hide-cell"]
DEFAULT_REPOSITORY = "https://github.com/numscale/numscale-book"
DEFAULT_REF = "main"


# ------------------------------------------------------------------ conversion


def helper_requirement(repo_url: str, ref: str | None = None) -> str:
    """pip requirement for the helper package straight from the repository."""
    url = repo_url.rstrip("/")
    if url.endswith(".git"):
        url = url[: -len(".git")]
    return f"numscale @ git+{url}" + (f"@{ref}" if ref else "")


def _imported_top_level(code_cells: list[str]) -> set[str]:
    found: set[str] = set()
    for code in code_cells:
        cleaned = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines())
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


def install_cell_source(repo_url: str, ref: str | None = DEFAULT_REF, modules: list[str] | None = None) -> str:
    """Source of the install cell: ``%pip install`` only if importing ``modules`` fails.

    ``modules`` defaults to ``["numscale"]``; ``numscale`` is always included.
    """
    wanted = ["numscale"] + [m for m in (modules or []) if m != "numscale" and m in INSTALLABLE]
    requirements = [
        helper_requirement(repo_url, ref) if INSTALLABLE[m] is None else INSTALLABLE[m] for m in wanted
    ]
    quoted = " ".join(f'"{r}"' for r in requirements)
    return "\n".join(
        [
            "# @title Install the book's helper package if it is missing (e.g. on Colab)",
            "# With the packages below importable (the book's own kernel, Binder, a local",
            "# `pip install`), this cell installs nothing.",
            "try:",
            f"    import {', '.join(wanted)}  # noqa: F401",
            "except ImportError:",
            f"    %pip install --quiet {quoted}",
        ]
    )


def install_cell(repo_url: str, ref: str | None = DEFAULT_REF, modules: list[str] | None = None):
    """The hidden first cell of a downloaded chapter (an ``nbformat`` code cell)."""
    import nbformat

    cell = nbformat.v4.new_code_cell(install_cell_source(repo_url, ref, modules))
    cell.metadata = {
        "tags": list(INSTALL_TAGS),
        "jupyter": {"source_hidden": True},  # JupyterLab / Notebook 7: collapsed input
        "cellView": "form",  # Colab: shows the @title line only
    }
    return cell


def chapter_notebook(path: str | Path, repo_url: str = DEFAULT_REPOSITORY, ref: str | None = DEFAULT_REF):
    """A chapter as a standalone notebook: jupytext conversion plus the install cell.

    ``path`` is a MyST markdown notebook (``.md`` with jupytext front matter) or an
    ``.ipynb``. Cell ids are derived from position and content, so the same source gives
    the same notebook.
    """
    import jupytext
    import nbformat

    path = Path(path)
    notebook = nbformat.read(path, as_version=4) if path.suffix == ".ipynb" else jupytext.read(path)
    notebook = copy.deepcopy(notebook)
    notebook.metadata.pop("jupytext", None)
    notebook.metadata.setdefault(
        "kernelspec", {"display_name": "Python 3", "language": "python", "name": "python3"}
    )
    notebook.metadata["language_info"] = {"name": "python"}
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    modules = sorted(_imported_top_level(code) & set(INSTALLABLE))
    notebook.cells.insert(0, install_cell(repo_url, ref, modules))
    for index, cell in enumerate(notebook.cells):
        digest = hashlib.sha256(f"{index}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:8]
        cell["id"] = f"c{index:03d}-{digest}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def notebook_text(notebook) -> str:
    """Serialized notebook (stable key order, trailing newline)."""
    import nbformat

    return nbformat.writes(notebook) + "\n"


def is_notebook_source(path: Path) -> bool:
    """True for an ``.ipynb`` or a MyST markdown file with jupytext notebook front matter."""
    if path.suffix == ".ipynb":
        return True
    if path.suffix != ".md":
        return False
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---"):
        return False
    header = text.split("---", 2)[1] if text.count("---") >= 2 else ""
    return "kernelspec" in header and "jupytext" in header


# ------------------------------------------------------------------ Sphinx side


def _repository(app) -> tuple[str, str]:
    options = app.config.html_theme_options or {}
    url = (options.get("repository_url") or DEFAULT_REPOSITORY).rstrip("/")
    branch = options.get("repository_branch") or DEFAULT_REF
    return url, branch


def _is_notebook_page(app, docname: str) -> bool:
    return "kernelspec" in app.env.metadata.get(docname, {})


def notebook_relpath(app, docname: str) -> str:
    return f"{app.config.numscale_notebooks_dir.strip('/')}/{docname}.ipynb"


def write_notebooks(app, exception) -> None:
    """``build-finished``: write ``_notebooks/<docname>.ipynb`` for every notebook page."""
    if exception is not None or app.builder.format != "html":
        return
    repo_url, branch = _repository(app)
    out = Path(app.outdir)
    for docname in sorted(app.env.found_docs):
        if not _is_notebook_page(app, docname):
            continue
        source = Path(app.env.doc2path(docname))
        target = out / notebook_relpath(app, docname)
        target.parent.mkdir(parents=True, exist_ok=True)
        text = notebook_text(chapter_notebook(source, repo_url, branch))
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        # The theme copies myst-nb's jupyter_execute notebook (no install cell, outputs
        # stripped) to _sources/ for its own .ipynb link, which now points here instead:
        # remove the copy so that the site offers one notebook per chapter.
        theme_copy = out / "_sources" / f"{docname}.ipynb"
        if source.suffix != ".ipynb" and theme_copy.is_file():
            theme_copy.unlink()


def _split_github(url: str) -> tuple[str, str] | None:
    if "github.com/" not in url:
        return None
    parts = url.split("github.com/", 1)[1].strip("/").split("/")
    return (parts[0], parts[1].removesuffix(".git")) if len(parts) >= 2 else None


def update_buttons(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """``html-page-context`` (after the theme): download link and launch URLs."""
    if doctree is None or "header_buttons" not in context or not _is_notebook_page(app, pagename):
        return
    relpath = notebook_relpath(app, pagename)
    notebook_url = context["pathto"](relpath, 1)
    repo_url, branch = _repository(app)
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
            github = _split_github(repo_url)
            launch = app.config.html_theme_options.get("launch_buttons", {}) or {}
            ui = {"classic": "tree", "jupyterlab": "lab/tree"}.get(launch.get("notebook_interface", "classic"), "tree")
            for button in group["buttons"]:
                if button.get("text") == "Colab" and github:
                    colab = (launch.get("colab_url") or "https://colab.research.google.com").rstrip("/")
                    nb_branch = app.config.numscale_notebooks_branch
                    button["url"] = f"{colab}/github/{github[0]}/{github[1]}/blob/{nb_branch}/{relpath}"
                elif button.get("text") == "Binder" and github:
                    binder = (launch.get("binderhub_url") or "https://mybinder.org").rstrip("/")
                    binder_branch = app.config.numscale_binder_branch or branch
                    button["url"] = f"{binder}/v2/gh/{github[0]}/{github[1]}/{binder_branch}?urlpath={ui}/{relpath}"


def _asset_key(asset) -> tuple:
    filename = getattr(asset, "filename", asset) or ""
    attributes = getattr(asset, "attributes", {}) or {}
    return (filename, getattr(asset, "priority", 500), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def dedupe_assets(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
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


def fix_aria_roles(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """``html-page-context``: replace ARIA roles that break the accessibility tree."""
    body = context.get("body")
    if isinstance(body, str):
        for old, new in ARIA_ROLE_FIXES.items():
            body = body.replace(old, new)
        context["body"] = body


def setup(app) -> dict[str, Any]:
    app.add_config_value("numscale_notebooks_dir", "_notebooks", "html")
    app.add_config_value("numscale_notebooks_branch", "gh-pages", "html")
    app.add_config_value("numscale_binder_branch", "", "html")
    app.connect("html-page-context", dedupe_assets, priority=100)
    app.connect("html-page-context", fix_aria_roles, priority=100)
    app.connect("html-page-context", update_buttons, priority=900)
    app.connect("build-finished", write_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


# ------------------------------------------------------------------ script


def _config_repository(root: Path) -> dict[str, Any]:
    """The ``repository:`` section of ``<root>/_config.yml`` (empty if absent)."""
    config = root / "_config.yml"
    if not config.is_file():
        return {}
    import yaml

    return (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("repository") or {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write each chapter as a runnable notebook.")
    parser.add_argument("sources", nargs="+", type=Path, help="chapter files (.md / .ipynb)")
    parser.add_argument("--out", type=Path, default=Path("_notebooks"), help="output folder (default _notebooks)")
    parser.add_argument("--root", type=Path, default=Path("."), help="book root: output paths are relative to it")
    parser.add_argument("--repo-url", help="default: repository.url of <root>/_config.yml")
    parser.add_argument("--ref", help="default: repository.branch of <root>/_config.yml")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    repository = _config_repository(root)
    repo_url = args.repo_url or repository.get("url") or DEFAULT_REPOSITORY
    ref = args.ref or repository.get("branch") or DEFAULT_REF
    for source in args.sources:
        if not is_notebook_source(source):
            continue
        relative = source.resolve().relative_to(root).with_suffix(".ipynb")
        target = args.out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(notebook_text(chapter_notebook(source, repo_url, ref)), encoding="utf-8")
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
