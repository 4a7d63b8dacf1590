"""Sphinx extension: a runnable ``.ipynb`` of every chapter that reads well in plain
Jupyter, its download link, and launch buttons that open it; plus fixes to the stock
theme's assets.

The chapters are MyST markdown. sphinx-book-theme's download menu offers the ``.md``
source and a copy of myst-nb's ``jupyter_execute`` notebook (no install cell, outputs
stripped, MyST roles shown raw), and its launch buttons point at ``<page>.md`` on the
source branch, which Colab cannot open. This extension

1. converts every notebook page with jupytext (:func:`chapter_notebook`, the same
   function the tests use), keeps its code cells as they are and rewrites its prose
   so that plain Jupyter or Colab shows what the site shows (:func:`convert_markdown`):
   glued numbers as the build computed them (read from the executed notebook, formatted
   by myst-nb's own function), ``{ref}``/``{doc}``/``{numref}`` as links to the online
   book (``numscale_site_url``, default the GitHub Pages address of ``repository.url``),
   ``{cite:p}`` as "(Author, Year)", ``{eq}`` as the equation's number (and ``\\tag`` on
   the equation), exercises and solutions as Markdown (solutions folded in
   ``<details>``), ``literalinclude`` as a fenced listing read by Sphinx's own
   ``LiteralIncludeReader`` (the same lines the page shows), labels and comments
   removed, a figure's caption after its cell;
2. prepends a hidden install cell (:func:`install_cell`) that, **only when the import
   fails**, pip-installs ``numscale @ git+<repository url>@<commit>`` (the commit the
   site was built from: ``git rev-parse HEAD``, the branch outside git) plus
   ``myst-nb``, and raises at once, naming what failed and what to do, if pip fails or
   the packages still do not import;
3. writes it to ``<html>/_notebooks/<docname>.ipynb`` (e.g.
   ``_notebooks/book/dot_products.ipynb``), byte-identical from build to build
   (deterministic cell ids, no timestamps);
4. points the ``.ipynb`` entry of each page's download menu at that file (and adds it
   if the theme did not), and rewrites the launch buttons:

   * **Colab** opens ``github/<org>/<repo>/blob/<numscale_notebooks_branch>/_notebooks/<docname>.ipynb``.
     Colab can only open a notebook that is committed to GitHub, and the generated
     notebooks exist only in the built site: this book's
     ``.github/workflows/publish.yml`` pushes ``_build/html/_notebooks`` to the branch
     ``notebooks`` that ``_config.yml`` names.
   * **Binder** builds the repository's ``repository.branch`` (``main``) with the
     environment in ``binder/``; its ``postBuild`` installs the package and runs this
     file as a script to generate the notebooks at the same ``_notebooks/...`` path
     (without a build, glued values are shown by name: they are computed when the
     reader runs the cells).

5. Asset fixes for the stock theme: Sphinx 7.4 adds a script registered after the
   builder started (sphinx-thebe's inline config) twice, once with filename ``None``
   and once with ``''``, so every page logged "Identifier 'THEBE_JS_URL' has already
   been declared"; :func:`dedupe_assets` drops the duplicate. docutils marks citations
   with the deprecated role ``doc-biblioentry`` inside a ``role="list"``, a critical
   axe-core violation on the bibliography; :func:`fix_aria_roles` makes them list items.
   pydata-sphinx-theme writes ``data-mode=""`` for a first visitor (empty storage)
   unless ``html_context.default_mode`` is set: ``_config.yml`` sets it to ``auto``.

Configuration (``sphinx: config:``): ``numscale_notebooks_dir`` (default
``"_notebooks"``), ``numscale_notebooks_branch`` (branch holding the built site, for
Colab; default ``"gh-pages"``), ``numscale_binder_branch`` (default: ``repository.branch``),
``numscale_site_url`` (the published book; default from ``repository.url``).

As a script: ``python _ext/numscale_notebooks.py [--out DIR] [--repo-url URL]
[--ref REF] [--build DIR] book/*.md`` writes ``DIR/book/<name>.ipynb`` for each
notebook page (``binder/postBuild`` uses it; ``--build`` reads glued values from a build).
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

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
            capture_output=True, text=True, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return fallback
    sha = result.stdout.strip()
    return sha if result.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", sha) else fallback


def _imported_top_level(code_cells: list[str]) -> set[str]:
    found: set[str] = set()
    for code in code_cells:
        cleaned = "\n".join(
            "" if line.lstrip().startswith(("%", "!")) else line for line in code.splitlines()
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


def install_requirements(repo_url: str, ref: str | None, modules: list[str] | None) -> tuple[list[str], list[str]]:
    """(modules to import, pip requirements) for the install cell; numscale always."""
    wanted = ["numscale"] + [m for m in (modules or []) if m != "numscale" and m in INSTALLABLE]
    requirements = [
        helper_requirement(repo_url, ref) if INSTALLABLE[m] is None else INSTALLABLE[m] for m in wanted
    ]
    return wanted, requirements


def install_cell_source(repo_url: str, ref: str | None = DEFAULT_REF, modules: list[str] | None = None) -> str:
    """Source of the install cell: ``pip install`` only if importing ``modules`` fails.

    ``modules`` defaults to ``["numscale"]``; ``numscale`` is always included. pip runs
    in the kernel's own Python (what ``%pip`` does), with one retry; if it fails, or the
    packages still cannot be imported afterwards, the cell raises at once with pip's
    message and what to do, instead of letting a later cell fail on a missing module.
    """
    wanted, requirements = install_requirements(repo_url, ref, modules)
    imports = ", ".join(wanted)
    listed = "".join(f"\n        {r!r}," for r in requirements)
    return f'''\
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
    print("Installed", ", ".join(_requirements))'''


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


# ------------------------------------------------------------------ the book's index


def site_url_from_repository(repo_url: str) -> str:
    """GitHub Pages address of a GitHub repository (``https://<org>.github.io/<repo>/``)."""
    github = _split_github(repo_url)
    if github is None:
        return ""
    org, name = github
    if name.lower() == f"{org.lower()}.github.io":
        return f"https://{org.lower()}.github.io/"
    return f"https://{org.lower()}.github.io/{name}/"


def toc_entries(root: Path) -> list[tuple[str, bool]]:
    """``(docname, numbered)`` for every page of ``_toc.yml``, root first, in order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = [(str(toc["root"]), False)]

    def walk(entries, numbered: bool) -> None:
        for entry in entries or []:
            if "file" in entry:
                found.append((str(Path(entry["file"]).with_suffix("")), numbered))
            for key in ("chapters", "sections"):
                walk(entry.get(key), numbered)
            if "parts" in entry:
                walk(entry["parts"], numbered)

    for part in toc.get("parts") or []:
        walk(part.get("chapters"), bool(part.get("numbered")))
    walk(toc.get("chapters"), bool(toc.get("defaults", {}).get("numbered")))
    return found


_LABEL_LINE = re.compile(r"^\((?P<label>[^()\s]+)\)=\s*$")
_HEADING = re.compile(r"^(?P<hashes>#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_EQ_LABEL = re.compile(r"^(?P<before>.*?\$\$)\s*\((?P<label>[^()\s]+)\)\s*$")
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})(?P<info>.*)$")
_DIRECTIVE_INFO = re.compile(r"^\{(?P<name>[\w:.-]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<key>[\w-]+):\s*(?P<value>.*)$")


class BookIndex:
    """What the notebooks need to know about the whole book, read from the sources.

    ``labels``: label -> (docname, anchor or "" for the page top, title or None);
    ``equations`` / ``figures`` / ``exercises``: label -> (docname, number as printed,
    e.g. "3.2"); ``titles``: docname -> page title; ``citations``: key -> (author text,
    year). Numbers follow Sphinx's rules for this book (numbered parts, continuous
    chapter numbers, per-chapter counters, captioned figures only); the tests compare
    them with the built HTML.
    """

    def __init__(self, site_url: str = "") -> None:
        self.site_url = site_url
        self.titles: dict[str, str] = {}
        self.chapter_numbers: dict[str, int] = {}
        self.labels: dict[str, tuple[str, str, str | None]] = {}
        self.equations: dict[str, tuple[str, str]] = {}
        self.figures: dict[str, tuple[str, str]] = {}
        self.figure_cells: dict[tuple[str, int], str] = {}
        self.exercises: dict[str, tuple[str, str]] = {}
        self.citations: dict[str, tuple[str, str]] = {}
        self.bibliography_doc: str | None = None
        self.reference_doc: str | None = None

    def page_url(self, docname: str, anchor: str = "") -> str:
        return f"{self.site_url}{docname}.html" + (f"#{anchor}" if anchor else "")


def _read_cells(path: Path) -> list[Any]:
    import jupytext
    import nbformat

    if path.suffix == ".ipynb":
        return list(nbformat.read(path, as_version=4).cells)
    if is_notebook_source(path):
        return list(jupytext.read(path).cells)
    text = path.read_text(encoding="utf-8")
    if text.startswith("---") and text.count("---") >= 2:
        text = text.split("---", 2)[2]
    return [nbformat.v4.new_markdown_cell(text)]


def _outside_code(lines: list[str]):
    """Yield ``(index, line, fence_info)`` of markdown lines outside plain code fences;
    ``fence_info`` is the info string of a directive fence that opens at this line ("" if
    none). Directive fences nest (their bodies are yielded); code fences are skipped."""
    code_fence = None
    directives: list[str] = []
    for index, line in enumerate(lines):
        match = _FENCE.match(line)
        if code_fence is not None:
            if match and match["fence"][0] == code_fence[0] and len(match["fence"]) >= len(code_fence) and not match["info"].strip():
                code_fence = None
            continue
        if match:
            info = match["info"].strip()
            if _DIRECTIVE_INFO.match(info):
                directives.append(match["fence"])
                yield index, line, info
                continue
            if not info and directives and match["fence"][0] == directives[-1][0] and len(match["fence"]) >= len(directives[-1]):
                directives.pop()
                continue
            code_fence = match["fence"]
            continue
        yield index, line, ""


def _citation_text(entry) -> tuple[str, str]:
    import codecs

    import latexcodec  # noqa: F401  (registers the "ulatex" codec)

    def plain(text: str) -> str:
        return codecs.decode(text, "ulatex").replace("{", "").replace("}", "").strip()

    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [plain(" ".join(p.prelast_names + p.last_names)) for p in people]
    if not names:
        authors = plain(entry.fields.get("title", "?"))
    elif len(names) == 1:
        authors = names[0]
    elif len(names) == 2:
        authors = f"{names[0]} and {names[1]}"
    else:
        authors = f"{names[0]} et al."
    return authors, plain(entry.fields.get("year", "n.d."))


def _executed_cells(build_dir: str | Path | None, docname: str) -> list[Any] | None:
    if build_dir is None:
        return None
    import nbformat

    for folder in (Path(build_dir) / ".numscale_exec" / "executed", Path(build_dir) / "jupyter_execute"):
        path = folder / f"{docname}.ipynb"
        if path.is_file():
            return list(nbformat.read(str(path), as_version=4).cells)
    return None


def _draws_figure(executed: list[Any] | None, cell_index: int, cell) -> bool:
    """Whether a figure cell drew its figure in the build (Sphinx numbers only figures
    that exist); ``True`` when the page has not been executed."""
    if executed is None:
        return True
    if cell_index >= len(executed) or executed[cell_index].source != cell.source:
        raise NotebookMarkdownError("the executed notebook does not match its source: rebuild")
    return any(
        key.startswith("image/")
        for output in executed[cell_index].get("outputs", [])
        for key in (output.get("data") or {})
    )


def book_index(root: str | Path, site_url: str = "", bibfiles: list[str] | None = None,
               build_dir: str | Path | None = None,
               without_data: frozenset[str] = frozenset()) -> BookIndex:
    """Labels, numbers, titles and citations of the book in ``root`` (see :class:`BookIndex`).

    With ``build_dir`` (a build folder holding ``html/``), a figure cell is numbered only if
    it drew a figure in that build, as Sphinx does. ``without_data``: pages the build
    replaced by a note because their data was missing (_ext/numscale_data.py); their
    executed notebook is the note's, so it is not read.
    """
    root = Path(root)
    index = BookIndex(site_url=site_url.rstrip("/") + "/" if site_url else "")
    chapter = 0
    for docname, numbered in toc_entries(root):
        path = next((p for p in (root / f"{docname}.md", root / f"{docname}.ipynb") if p.is_file()), None)
        if path is None:
            continue
        if numbered:
            chapter += 1
            index.chapter_numbers[docname] = chapter
        prefix = f"{chapter}." if numbered else ""
        counts = {"eq": 0, "fig": 0, "ex": 0}
        pending: list[str] = []
        executed = None if docname in without_data else _executed_cells(build_dir, docname)
        for cell_index, cell in enumerate(_read_cells(path)):
            if cell.cell_type == "code":
                figure = ((cell.metadata.get("mystnb") or {}).get("figure") or {})
                if figure.get("caption") and _draws_figure(executed, cell_index, cell):
                    counts["fig"] += 1
                    number = f"{prefix}{counts['fig']}"
                    index.figure_cells[docname, cell_index] = number
                    if figure.get("name"):
                        index.figures[str(figure["name"])] = (docname, number)
                continue
            if cell.cell_type != "markdown":
                continue
            lines = cell.source.splitlines()
            for i, line, info in _outside_code(lines):
                if (match := _LABEL_LINE.match(line)):
                    pending.append(match["label"])
                    continue
                if (match := _HEADING.match(line)):
                    title = _plain_title(match["title"])
                    if len(match["hashes"]) == 1 and docname not in index.titles:
                        index.titles[docname] = title
                        for label in pending:
                            index.labels[label] = (docname, "", title)
                    else:
                        for label in pending:
                            index.labels[label] = (docname, label, title)
                    pending = []
                    continue
                if line.strip():
                    for label in pending:
                        index.labels[label] = (docname, label, None)
                    pending = []
                if (match := _EQ_LABEL.match(line)):
                    counts["eq"] += 1
                    index.equations[match["label"]] = (docname, f"{prefix}{counts['eq']}")
                directive = _DIRECTIVE_INFO.match(info) if info else None
                if directive and directive["name"] == "exercise":
                    options = _directive_options(lines[i + 1:])
                    if "nonumber" in options:
                        continue
                    counts["ex"] += 1
                    if options.get("label"):
                        index.exercises[options["label"]] = (docname, f"{prefix}{counts['ex']}")
                elif directive and directive["name"] == "math":
                    options = _directive_options(lines[i + 1:])
                    if options.get("label"):
                        counts["eq"] += 1
                        index.equations[options["label"]] = (docname, f"{prefix}{counts['eq']}")
                elif directive and directive["name"] == "bibliography":
                    index.bibliography_doc = docname
                if index.reference_doc is None and re.search(
                    r"\b(automodule|autofunction|autosummary|numscale-api)\b", line
                ):
                    index.reference_doc = docname
                elif directive and directive["name"] == "figure":
                    options = _directive_options(lines[i + 1:])
                    counts["fig"] += 1
                    if options.get("name"):
                        index.figures[options["name"]] = (docname, f"{prefix}{counts['fig']}")
    for bibfile in bibfiles or []:
        path = root / bibfile
        if path.is_file():
            from pybtex.database import parse_file

            for key, entry in parse_file(str(path)).entries.items():
                index.citations[key] = _citation_text(entry)
    return index


def _plain_title(title: str) -> str:
    """A heading's text without markup (roles, emphasis, code ticks)."""
    title = _ROLE.sub(lambda m: m["content"].split("<")[0].strip(), title)
    return re.sub(r"[*_`]", "", title).strip()


def split_options(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    """A directive body's options (``:key: value`` lines, or a ``---`` YAML block) and
    the rest of its lines."""
    if lines and lines[0].strip() == "---":
        import yaml

        end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
        if end is not None:
            loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
            return {str(k): "" if v is None else str(v) for k, v in loaded.items()}, lines[end + 1:]
    options: dict[str, str] = {}
    used = 0
    for line in lines:
        match = _OPTION.match(line.strip())
        if not match:
            break
        options[match["key"]] = match["value"].strip()
        used += 1
    return options, lines[used:]


def _directive_options(lines: list[str]) -> dict[str, str]:
    return split_options(lines)[0]


# ------------------------------------------------------------------ readable markdown


_ROLE = re.compile(r"\{(?P<role>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]+)`")
_EXPLICIT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.S)
#: Admonition directives and the title a reader sees.
ADMONITIONS = {
    "note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
    "warning": "Warning", "caution": "Caution", "attention": "Attention", "danger": "Danger",
    "error": "Error", "seealso": "See also", "admonition": "",
}
CODE_DIRECTIVES = {"code", "code-block", "sourcecode"}
#: Options of ``literalinclude`` that Sphinx's reader takes as integers.
_INT_OPTIONS = {"dedent", "lineno-start", "tab-width"}


class NotebookMarkdownError(ValueError):
    """A role or directive the notebook conversion cannot make readable."""


class PageContext:
    """What converting one page needs: the book index, the page's glued values
    (name -> MIME bundle, ``None`` when the page has not been executed), its docname
    and the folder of its source (for ``literalinclude``)."""

    def __init__(self, index: BookIndex, docname: str, source_dir: Path,
                 glue: dict[str, dict[str, Any]] | None = None) -> None:
        self.index = index
        self.docname = docname
        self.source_dir = Path(source_dir)
        self.glue = glue


def glue_text(context: PageContext, content: str, markdown: bool = False) -> str:
    """The text myst-nb pastes for ``{glue:text}`` / ``{glue:md}`` (same formatting)."""
    key, _, fmt = content.strip().rpartition(":") if ":" in content else ("", "", "")
    if not key:
        key, fmt = content.strip(), ""
    if "::" in key:
        raise NotebookMarkdownError(f"glue from another page ({content!r}) is not supported")
    if context.glue is None:
        return f"`{key}`"
    if key not in context.glue:
        raise NotebookMarkdownError(f"{context.docname}: no glued value {key!r}")
    data = context.glue[key]
    if markdown:
        if "text/markdown" not in data:
            raise NotebookMarkdownError(f"{context.docname}: glued {key!r} has no text/markdown")
        return str(data["text/markdown"]).strip()
    from myst_nb.core.variables import format_plain_text

    return format_plain_text(str(data["text/plain"]), fmt)


def _target(content: str) -> tuple[str | None, str]:
    match = _EXPLICIT_TARGET.match(content)
    if match:
        return match["text"].strip() or None, match["target"].strip()
    return None, content.strip()


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def convert_role(context: PageContext, role: str, content: str) -> str:
    """Plain-Markdown text for one MyST role."""
    index = context.index
    role = role.removeprefix("std:")
    if role == "glue" or role == "glue:text":
        return glue_text(context, content)
    if role == "glue:md":
        return glue_text(context, content, markdown=True)
    if role in ("ref", "numref"):
        text, label = _target(content)
        if label in index.figures or (role == "numref" and label in index.equations):
            docname, number = index.figures.get(label) or index.equations[label]
            kind = "Fig." if label in index.figures else "Equation"
            shown = (text.replace("%s", number).replace("{number}", number) if text else f"{kind} {number}")
            return _link(shown, index.page_url(docname, label))
        if label in index.exercises:
            docname, number = index.exercises[label]
            shown = (text.replace("%s", number) if text else f"Exercise {number}")
            return _link(shown, index.page_url(docname, label))
        if label not in index.labels:
            raise NotebookMarkdownError(f"{context.docname}: unknown label {label!r} in {{{role}}}")
        docname, anchor, title = index.labels[label]
        if role == "numref":
            number = str(index.chapter_numbers.get(docname, ""))
            shown = text.replace("%s", number).replace("{number}", number) if text else f"Section {number}"
        else:
            shown = text or title or label
        return _link(shown, index.page_url(docname, anchor))
    if role == "doc":
        text, target = _target(content)
        target = target.removesuffix(".md").removesuffix(".ipynb")
        docname = target.lstrip("/") if target.startswith("/") else str(
            Path(context.docname).parent / target
        ).replace("\\", "/")
        docname = str(Path(docname)).replace("\\", "/")
        return _link(text or index.titles.get(docname, docname), index.page_url(docname))
    if role == "eq":
        label = content.strip()
        if label not in index.equations:
            raise NotebookMarkdownError(f"{context.docname}: unknown equation {label!r}")
        docname, number = index.equations[label]
        if docname == context.docname:
            return f"({number})"
        return _link(f"({number})", index.page_url(docname, f"equation-{label}"))
    if role.startswith("cite"):
        keys = [k.strip() for k in content.split(",") if k.strip()]
        missing = [k for k in keys if k not in index.citations]
        if missing:
            raise NotebookMarkdownError(f"{context.docname}: unknown citation(s) {missing}")
        url = index.page_url(index.bibliography_doc) if index.bibliography_doc else ""
        if role in ("cite:t", "cite:ts"):
            return "; ".join(
                _link(f"{index.citations[k][0]} ({index.citations[k][1]})", url) for k in keys
            )
        inner = "; ".join(_link(f"{index.citations[k][0]}, {index.citations[k][1]}", url) for k in keys)
        return inner if role in ("cite:ps", "cite:alp") else f"({inner})"
    if role in ("math",):
        return f"${content}$"
    if role.removeprefix("py:") in ("func", "class", "mod", "meth", "attr", "data", "obj", "exc"):
        text, target = _target(content)
        target = target.lstrip("~.")
        shown = text or (target.rsplit(".", 1)[-1] if content.strip().startswith("~") else target)
        if role.endswith(("func", "meth")) and not text:
            shown += "()"
        if index.reference_doc and target.startswith("numscale"):
            anchor = f"module-{target}" if role.endswith("mod") else target
            return _link(f"`{shown}`", index.page_url(index.reference_doc, anchor))
        return f"`{shown}`"
    if role in ("code", "literal", "file", "samp", "command", "kbd"):
        text, target = _target(content)
        return f"`{text or target}`"
    if role in ("sub", "sup"):
        return f"<{role}>{content}</{role}>"
    if role in ("abbr", "term", "index"):
        return _target(content)[0] or _target(content)[1]
    raise NotebookMarkdownError(f"{context.docname}: no notebook form for the role {{{role}}}")


_ROLE_OR_CODE = re.compile(
    r"(?P<full>\{(?P<role>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]+)`)|(?P<code>``[^`].*?``|`[^`\n]+`)",
    re.S,
)


def convert_roles(context: PageContext, text: str) -> str:
    """Replace every role in ``text`` with readable Markdown (inline code is kept)."""

    def replace(match: re.Match) -> str:
        if match["code"] is not None:
            return match["code"]
        return convert_role(context, match["role"], match["content"])

    return _ROLE_OR_CODE.sub(replace, text)


def _blockquote(title: str, body: str) -> str:
    lines = ([f"**{title}**", ""] if title else []) + body.splitlines()
    return "\n".join(">" if not line.strip() else f"> {line}" for line in lines)


def literalinclude_text(source_dir: Path, argument: str, options: dict[str, str]) -> tuple[str, str]:
    """(language, text) of a ``literalinclude``, read by Sphinx's own reader: exactly the
    lines the page shows."""
    from types import SimpleNamespace

    from sphinx.directives.code import LiteralIncludeReader

    filename = (source_dir / argument.strip()).resolve()
    reader_options: dict[str, Any] = {}
    for key, value in options.items():
        if key in _INT_OPTIONS:
            reader_options[key] = int(value)
        elif key in ("lineno-match",):
            reader_options[key] = True
        else:
            reader_options[key] = value
    text, _ = LiteralIncludeReader(
        str(filename), reader_options, SimpleNamespace(source_encoding="utf-8-sig")
    ).read()
    language = options.get("language") or ("python" if filename.suffix == ".py" else "")
    return language, text


def _fenced(language: str, text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text.rstrip()}\n{fence}"


def convert_directive(context: PageContext, name: str, argument: str, body_lines: list[str]) -> str:
    """Plain-Markdown for one directive (its body already split from the fences)."""
    index = context.index
    options, content = split_options(body_lines)
    body = "\n".join(content).strip("\n")
    if name == "literalinclude":
        language, text = literalinclude_text(context.source_dir, argument, options)
        caption = options.get("caption")
        listing = _fenced(language, text)
        return (f"**{convert_markdown(context, caption)}**\n\n" if caption else "") + listing
    if name in CODE_DIRECTIVES:
        return _fenced(argument.strip() or options.get("language", ""), body)
    if name == "math":
        label = options.get("label")
        tag = f"\n\\tag{{{index.equations[label][1]}}}" if label in index.equations else ""
        return f"$$\n{body}{tag}\n$$"
    if name == "exercise":
        label = options.get("label", "")
        number = index.exercises.get(label, (None, ""))[1]
        title = f"Exercise {number}".strip() + (f" ({convert_markdown(context, argument)})" if argument.strip() else "")
        return _blockquote(title, convert_markdown(context, body))
    if name == "solution":
        number = index.exercises.get(argument.strip(), (None, ""))[1]
        title = f"Solution to Exercise {number}".strip()
        inner = convert_markdown(context, body)
        return f"<details>\n<summary>{title}</summary>\n\n{inner}\n\n</details>"
    if name == "solution-start":
        number = index.exercises.get(argument.strip(), (None, ""))[1]
        return f"**Solution to Exercise {number}**".replace("  ", " ")
    if name == "solution-end":
        return ""
    if name in ADMONITIONS:
        title = convert_markdown(context, argument.strip()) if name == "admonition" else ADMONITIONS[name]
        return _blockquote(title, convert_markdown(context, body))
    if name in ("dropdown", "toggle"):
        return f"<details>\n<summary>{convert_markdown(context, argument.strip()) or 'Details'}</summary>\n\n{convert_markdown(context, body)}\n\n</details>"
    if name == "bibliography":
        return "The works cited are listed in the " + _link(
            "bibliography of the online book", index.page_url(context.docname)
        ) + "."
    if name in ("figure", "image"):
        alt = options.get("alt", "")
        url = index.page_url(str(Path(context.docname).parent / argument.strip()).replace("\\", "/")).removesuffix(".html")
        caption = convert_markdown(context, body)
        return f"![{alt}]({url})" + (f"\n\n*{caption}*" if caption else "")
    if name == "glue:md":
        return glue_text(context, argument, markdown=True)
    if name in ("glue", "glue:text"):
        return glue_text(context, argument)
    raise NotebookMarkdownError(f"{context.docname}: no notebook form for the directive {{{name}}}")


def convert_markdown(context: PageContext, text: str) -> str:
    """A MyST markdown cell as plain (Jupyter) Markdown: directives, roles, targets,
    labelled equations and comments replaced by what a reader of the site sees."""
    lines = text.splitlines()
    out: list[str] = []
    prose: list[str] = []

    def flush() -> None:
        if prose:
            out.append(convert_roles(context, "\n".join(prose)))
            prose.clear()

    i = 0
    in_math = False
    while i < len(lines):
        line = lines[i]
        fence = _FENCE.match(line) if not in_math else None
        if fence:
            info = fence["info"].strip()
            marker = fence["fence"]
            end = i + 1
            while end < len(lines):
                closing = _FENCE.match(lines[end])
                if closing and closing["fence"][0] == marker[0] and len(closing["fence"]) >= len(marker) and not closing["info"].strip():
                    break
                end += 1
            body = lines[i + 1:end]
            directive = _DIRECTIVE_INFO.match(info)
            flush()
            if directive:
                out.append(convert_directive(context, directive["name"], directive["argument"], body))
            else:
                out.append("\n".join(lines[i:end + 1]))  # a plain code block stays as is
            i = end + 1
            continue
        stripped = line.strip()
        if not in_math and _LABEL_LINE.match(line):
            i += 1
            continue
        if not in_math and stripped.startswith("%"):  # a MyST comment
            i += 1
            continue
        if (match := _EQ_LABEL.match(line)) and (in_math or stripped.startswith("$$")):
            number = context.index.equations.get(match["label"], (None, ""))[1]
            before = match["before"]
            tag = f"\\tag{{{number}}}" if number else ""
            if before.strip() == "$$":
                prose.append(tag)
                prose.append("$$")
            else:  # $$ ... $$ (label) on one line
                prose.append(before[:-2].rstrip() + (f" {tag}" if tag else "") + " $$")
            in_math = False
            i += 1
            continue
        if stripped.startswith("$$"):
            opens_and_closes = stripped.count("$$") >= 2 and stripped != "$$"
            if not opens_and_closes:
                in_math = not in_math
        prose.append(line)
        i += 1
    flush()
    result = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", result).strip("\n")


def load_glue(executed_notebook: str | Path) -> dict[str, dict[str, Any]]:
    """name -> MIME bundle of every ``glue`` output of an executed notebook."""
    import nbformat

    notebook = nbformat.read(str(executed_notebook), as_version=4)
    prefix = "application/papermill.record/"
    values: dict[str, dict[str, Any]] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = (output.get("metadata") or {}).get("scrapbook", {}).get("name")
            if name is None:
                continue
            values[name] = {k.removeprefix(prefix): v for k, v in (output.get("data") or {}).items()}
    return values


def executed_glue(build_dir: str | Path, docname: str) -> dict[str, dict[str, Any]] | None:
    """Glued values of ``docname`` from a build (``<build>/.numscale_exec/executed`` or
    myst-nb's ``<build>/jupyter_execute``); ``None`` if the page has no executed notebook."""
    build_dir = Path(build_dir)
    for folder in (build_dir / ".numscale_exec" / "executed", build_dir / "jupyter_execute"):
        path = folder / f"{docname}.ipynb"
        if path.is_file():
            return load_glue(path)
    return None


# ------------------------------------------------------------------ conversion


def chapter_notebook(
    path: str | Path,
    repo_url: str = DEFAULT_REPOSITORY,
    ref: str | None = DEFAULT_REF,
    *,
    index: BookIndex | None = None,
    docname: str | None = None,
    glue: dict[str, dict[str, Any]] | None = None,
):
    """A chapter as a standalone notebook that reads well in plain Jupyter or Colab.

    ``path`` is a MyST markdown notebook (``.md`` with jupytext front matter) or an
    ``.ipynb``. The code cells are the page's code cells, unchanged (outputs stripped),
    after a hidden install cell. With ``index`` (:func:`book_index`) the markdown cells
    are converted (:func:`convert_markdown`): glued values as the build computed them
    (``glue``; shown by name when ``None``), links to the online chapters, citations as
    text, numbered equations, exercises and solutions as Markdown, ``literalinclude``
    listings as fenced code; a figure's caption follows its cell. Cell ids are derived
    from position and content, so the same input gives the same notebook.
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
    if index is not None:
        docname = docname or path.with_suffix("").name
        context = PageContext(index=index, docname=docname, source_dir=path.parent, glue=glue)
        cells = []
        for cell_index, cell in enumerate(notebook.cells):
            if cell.cell_type == "markdown":
                cell.source = convert_markdown(context, cell.source)
                if not cell.source.strip():
                    continue
                cells.append(cell)
                continue
            cells.append(cell)
            number = index.figure_cells.get((docname, cell_index))
            if cell.cell_type == "code" and number:
                caption = str(cell.metadata["mystnb"]["figure"]["caption"])
                text = convert_roles(context, caption)
                cells.append(nbformat.v4.new_markdown_cell(f"**Fig. {number}.** {text}"))
        notebook.cells = cells
    notebook.cells.insert(0, install_cell(repo_url, ref, modules))
    for position, cell in enumerate(notebook.cells):
        digest = hashlib.sha256(f"{position}\0{cell.cell_type}\0{cell.source}".encode()).hexdigest()[:8]
        cell["id"] = f"c{position:03d}-{digest}"
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


def book_config(root: str | Path) -> dict[str, Any]:
    """``<root>/_config.yml`` (empty if absent)."""
    config = Path(root) / "_config.yml"
    if not config.is_file():
        return {}
    import yaml

    return yaml.safe_load(config.read_text(encoding="utf-8")) or {}


def book_settings(root: str | Path) -> dict[str, Any]:
    """Repository URL, branch, commit, site URL and bibliography files of the book in
    ``root``, from its ``_config.yml`` and git, the same for the build and the script."""
    config = book_config(root)
    repository = config.get("repository") or {}
    sphinx_config = (config.get("sphinx") or {}).get("config") or {}
    repo_url = (repository.get("url") or DEFAULT_REPOSITORY).rstrip("/")
    branch = repository.get("branch") or DEFAULT_REF
    site = sphinx_config.get("numscale_site_url") or site_url_from_repository(repo_url)
    return {
        "repo_url": repo_url,
        "branch": branch,
        "ref": source_ref(root, branch),
        "site_url": site,
        "bibfiles": list(config.get("bibtex_bibfiles") or []),
    }


def site_notebook(root: str | Path, docname: str, build_dir: str | Path | None = None, settings=None, index=None):
    """The notebook the site serves for ``docname`` (glued values from ``build_dir``,
    the folder holding ``html/``; by name when ``None``)."""
    root = Path(root)
    settings = settings or book_settings(root)
    index = index or book_index(root, settings["site_url"], settings["bibfiles"], build_dir)
    source = next(p for p in (root / f"{docname}.md", root / f"{docname}.ipynb") if p.is_file())
    glue = executed_glue(build_dir, docname) if build_dir is not None else None
    return chapter_notebook(
        source, settings["repo_url"], settings["ref"], index=index, docname=docname, glue=glue
    )


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


def _settings(app) -> dict[str, Any]:
    """The book's settings (:func:`book_settings`) with this build's configuration."""
    settings = book_settings(app.srcdir)
    settings["repo_url"], settings["branch"] = _repository(app)
    settings["ref"] = source_ref(app.srcdir, settings["branch"])
    if app.config.numscale_site_url:
        settings["site_url"] = app.config.numscale_site_url
    return settings


def write_notebooks(app, exception) -> None:
    """``build-finished``: write ``_notebooks/<docname>.ipynb`` for every notebook page."""
    if exception is not None or app.builder.format != "html" or app.builder.name != "html":
        return
    settings = _settings(app)
    # pages built without their data (_ext/numscale_data.py) get no notebook: their
    # page says what they need
    without_data = frozenset(d for d, why in app.__dict__.get("_numscale_missing", {}).items()
                             if why)
    index = book_index(app.srcdir, settings["site_url"], settings["bibfiles"],
                       Path(app.outdir).parent, without_data)
    out = Path(app.outdir)
    for docname in sorted(app.env.found_docs):
        if not _is_notebook_page(app, docname) or docname in without_data:
            continue
        source = Path(app.env.doc2path(docname))
        target = out / notebook_relpath(app, docname)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            notebook = site_notebook(app.srcdir, docname, out.parent, settings, index)
        except NotebookMarkdownError as error:
            from sphinx.util import logging

            logging.getLogger(__name__).warning(
                f"the downloadable notebook of {docname} could not be written: {error}",
                type="numscale", subtype="notebook", location=docname,
            )
            continue
        text = notebook_text(notebook)
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
    return path if app.builder.name == "html" and app.config.numscale_pdf and path.is_file() else None


def add_pdf_button(app, pagename: str, templatename: str, context: dict[str, Any], doctree) -> None:
    """``html-page-context``: "Book (.pdf)" in every page's download menu, only when the
    PDF exists (it is copied into the site by :func:`copy_pdf`): never a dead link."""
    if "header_buttons" not in context or built_pdf(app) is None:
        return
    for group in context["header_buttons"]:
        if group.get("type") == "group" and group.get("label") == "download-buttons":
            group["buttons"].append({
                "type": "link",
                "url": context["pathto"](PDF_NAME, 1),
                "text": "Book (.pdf)",
                "icon": "fas fa-file-pdf",
                "tooltip": "Download the whole book as one PDF",
                "label": "download-book-pdf-button",
            })


def copy_pdf(app, exception) -> None:
    """``build-finished``: put the book's PDF at ``<html>/numscale-book.pdf``."""
    if exception is not None or (pdf := built_pdf(app)) is None:
        return
    import shutil

    target = Path(app.outdir) / PDF_NAME
    if not target.is_file() or target.read_bytes() != pdf.read_bytes():
        shutil.copyfile(pdf, target)


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
    app.add_config_value("numscale_site_url", "", "html")
    app.add_config_value("numscale_pdf", False, "html")
    app.connect("config-inited", note_pdf)
    app.connect("html-page-context", dedupe_assets, priority=100)
    app.connect("html-page-context", fix_aria_roles, priority=100)
    app.connect("html-page-context", update_buttons, priority=900)
    app.connect("html-page-context", add_pdf_button, priority=901)
    app.connect("build-finished", write_notebooks)
    app.connect("build-finished", copy_pdf)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


# ------------------------------------------------------------------ script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write each chapter as a runnable notebook.")
    parser.add_argument("sources", nargs="+", type=Path, help="chapter files (.md / .ipynb)")
    parser.add_argument("--out", type=Path, default=Path("_notebooks"), help="output folder (default _notebooks)")
    parser.add_argument("--root", type=Path, default=Path("."), help="book root: output paths are relative to it")
    parser.add_argument("--repo-url", help="default: repository.url of <root>/_config.yml")
    parser.add_argument("--ref", help="default: the checkout's commit, else repository.branch")
    parser.add_argument("--build", type=Path, help="a build folder (holding html/): glued values from it")
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
        target = args.out / relative.with_suffix(".ipynb")
        target.parent.mkdir(parents=True, exist_ok=True)
        notebook = site_notebook(root, relative.as_posix(), args.build, settings, index)
        target.write_text(notebook_text(notebook), encoding="utf-8")
        print(target)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
