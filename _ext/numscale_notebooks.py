"""Sphinx extension and script: every chapter as a runnable ``.ipynb`` that reads well
in plain Jupyter or Colab, written to ``<html>/_notebooks/<docname>.ipynb``.

Maintained tools do the generic work: jupytext splits the MyST page into cells (code
cells as they are, with their metadata), nbformat writes the notebook, myst-nb formats
glued values, Sphinx's ``LiteralIncludeReader`` reads listings. What is left here is
what this book needs on top, none of which those tools do (what was measured
is at the end of this docstring):

* glued numbers as the build computed them (read from the executed notebook and
  formatted by myst-nb's own function); by name when there is no build;
* ``{cite:p}``/``{cite:t}`` as "(Author et al., Year)" / "Author et al. (Year)", the
  text sphinxcontrib-bibtex prints, linked to the bibliography page;
* ``{ref}``/``{numref}``/``{eq}``/``{py:func}`` as links to the online book
  (``numscale_site_url``, default the GitHub Pages address of ``repository.url``) with
  the numbers the site prints (:func:`book_index`), and ``\\tag{n}`` on labelled
  ``$$ … $$ (label)`` maths;
* exercises and solutions (sphinx-exercise) as Markdown, solutions folded in
  ``<details>``; admonitions as block quotes; ``literalinclude`` as a fenced listing;
  labels and comments removed; a figure's caption after its cell;
* a hidden install cell first (:func:`install_cell`) that, **only when the import
  fails**, pip-installs ``numscale @ git+<repository url>@<commit>`` (``git rev-parse
  HEAD``, the branch outside git) plus ``myst-nb``, and raises at once, naming what
  failed and what to do, if pip fails or the packages still do not import.

A role or directive with no notebook form raises :class:`NotebookMarkdownError`, a
build warning: the strict build (``-W``) fails rather than serve raw MyST. Notebooks are
byte-identical from build to build (cell ids from position and content). The download
and launch buttons that open them, and the theme fixes, are ``_ext/numscale_site.py``.

Configuration (``sphinx: config:``): ``numscale_notebooks_dir`` (default
``"_notebooks"``), ``numscale_site_url`` (default from ``repository.url``).

As a script: ``python _ext/numscale_notebooks.py [--out DIR] [--repo-url URL]
[--ref REF] [--build DIR] book/*.md`` writes ``DIR/book/<name>.ipynb`` for each
notebook page (``binder/postBuild`` uses it; ``--build`` reads glued values from a
build).

What was measured (2026-12-06) on dot_products, softmax_saturation and gpt2_qk:

* jupytext 1.19.6 (``jupytext.read``) alone: the cell structure is right (7/15/14 code
  cells, sources and ``mystnb``/``tags`` metadata kept) but every markdown cell keeps
  its MyST as written: 22/61/90 roles (``{glue:text}``, ``{eq}``, ``{ref}``,
  ``{cite:p}``, ``{glue:md}``, ``{cite:t}``), the ``{exercise}``, ``{solution}``,
  ``{solution-start/end}``, ``{note}``, ``{literalinclude}`` fences, ``(label)=`` lines
  and ``$$ … $$ (label)``; ``jupytext.writes(nb, "ipynb")`` changes none of it. So
  jupytext is used for the cells and the prose is converted here.
* sphinx-tojupyter 0.6.0 (QuantEcon; a Sphinx builder, ``-b jupyter``, run on a copy of
  the book with jupyter-book 1.0.4.post1, myst-nb 1.4.0, sphinx 7.4.7, sphinx-exercise
  1.2.1): with its defaults it wrote **no code cell** (myst-nb marks cells
  ``ipython3``, which it turns into Markdown fences); with
  ``tojupyter_lang_synonyms = ["ipython3"]`` it wrote 7/16/17 code cells: each
  ``literalinclude`` listing of package source became an extra *runnable* code cell.
  It resolves ``{eq}`` (``[(1.1)](#equation-...)`` and ``\\tag{1.1}``), numbers
  exercises ("## Exercise 2.1") and renders ``{note}`` as a block quote. But glued
  values are empty ("standard deviation  and ,") unless the source page is itself the
  executed notebook (then right: 0.997, 6.93); citations are ``[[Vaswani *et al.*,
  2017](bibliography.ipynb#id2)]`` and ``{ref}`` ``[...](dot_products.ipynb#...)``:
  links to sibling notebooks that a downloaded chapter does not have; solutions are
  "## Solution" headings (no exercise number, not folded); figure captions and the
  cells' ``mystnb``/``tags`` metadata are dropped; there is no install cell; inline
  maths is rewritten ``$ q $``; and it is a second Sphinx build (41-68 s for these
  five unexecuted pages) beside the HTML one. Every book-specific part would still
  need code on top of it, plus repairs to its cells, so it is not used.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import re
import sys
from collections.abc import Iterator
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


# ------------------------------------------------------------------ the book's index


def site_url_from_repository(repo_url: str) -> str:
    """GitHub Pages address of a GitHub repository (``https://<org>.github.io/<repo>/``)."""
    github = split_github(repo_url)
    if github is None:
        return ""
    org, name = github
    if name.lower() == f"{org.lower()}.github.io":
        return f"https://{org.lower()}.github.io/"
    return f"https://{org.lower()}.github.io/{name}/"


def split_github(url: str) -> tuple[str, str] | None:
    """``(org, repo)`` of a ``github.com`` URL, else ``None``."""
    if "github.com/" not in url:
        return None
    parts = url.split("github.com/", 1)[1].strip("/").split("/")
    return (parts[0], parts[1].removesuffix(".git")) if len(parts) >= 2 else None


def toc_entries(root: Path) -> list[tuple[str, bool]]:
    """``(docname, numbered)`` for every page of ``_toc.yml``, root first, in order."""
    import yaml

    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    found: list[tuple[str, bool]] = [(str(toc["root"]), False)]

    def walk(entries: list[dict[str, Any]] | None, numbered: bool) -> None:
        for entry in entries or []:
            if "file" in entry:
                found.append((str(Path(entry["file"]).with_suffix("")), numbered))
            for key in ("chapters", "sections", "parts"):
                walk(entry.get(key), numbered)

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
_ROLE = re.compile(r"\{(?P<role>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]+)`")


class BookIndex:
    """What the notebooks need to know about the whole book, read from the sources.

    ``labels``: label -> (docname, anchor or "" for the page top, title or None);
    ``equations`` / ``figures`` / ``exercises``: label -> (docname, number as printed,
    e.g. "3.2"); ``figure_cells``: (docname, cell index) -> number; ``titles``: docname
    -> page title; ``citations``: key -> (author text, year). Numbers follow Sphinx's
    rules for this book (numbered parts, continuous chapter numbers, per-chapter
    counters, captioned figures that were drawn); the tests compare them with the HTML.
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
    """The cells of a page: jupytext's for a notebook, one markdown cell otherwise."""
    import nbformat

    if is_notebook_source(path):
        return list(_read_notebook(path).cells)
    text = path.read_text(encoding="utf-8")
    if text.startswith("---") and text.count("---") >= 2:
        text = text.split("---", 2)[2]
    return [nbformat.v4.new_markdown_cell(text)]


def _read_notebook(path: Path) -> Any:
    import jupytext
    import nbformat

    if path.suffix == ".ipynb":
        return nbformat.read(path, as_version=4)
    return jupytext.read(path)


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a fence opened with ``fence`` (same character, as long)."""
    match = _FENCE.match(line)
    return bool(
        match
        and match["fence"][0] == fence[0]
        and len(match["fence"]) >= len(fence)
        and not match["info"].strip()
    )


def _outside_code(lines: list[str]) -> Iterator[tuple[int, str, str]]:
    """Yield ``(index, line, fence_info)`` of markdown lines outside plain code fences;
    ``fence_info`` is the info string of a directive fence that opens at this line ("" if
    none). Directive fences nest (their bodies are yielded); code fences are skipped."""
    code_fence = None
    directives: list[str] = []
    for index, line in enumerate(lines):
        if code_fence is not None:
            if _closes(line, code_fence):
                code_fence = None
            continue
        match = _FENCE.match(line)
        if not match:
            yield index, line, ""
            continue
        info = match["info"].strip()
        if _DIRECTIVE_INFO.match(info):
            directives.append(match["fence"])
            yield index, line, info
        elif directives and _closes(line, directives[-1]):
            directives.pop()
        else:
            code_fence = match["fence"]


def _citation_text(entry: Any) -> tuple[str, str]:
    """("Author", "Author and Other" or "Author et al.", year) of a pybtex entry."""
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


def executed_notebook(build_dir: str | Path | None, docname: str) -> Any | None:
    """The executed notebook of ``docname`` in a build (``.numscale_exec/executed`` or
    myst-nb's ``jupyter_execute``), or ``None``."""
    return _load_executed(_executed_file(build_dir, docname))


def _executed_file(build_dir: str | Path | None, docname: str) -> Path | None:
    """The file :func:`executed_notebook` reads, or ``None``."""
    if build_dir is None:
        return None
    for folder in (".numscale_exec/executed", "jupyter_execute"):
        path = Path(build_dir) / folder / f"{docname}.ipynb"
        if path.is_file():
            return path
    return None


def _load_executed(path: Path | None) -> Any | None:
    if path is None:
        return None
    import nbformat

    return nbformat.read(str(path), as_version=4)


def _draws_figure(executed: Any | None, cell_index: int, cell: Any) -> bool:
    """Whether a figure cell drew its figure in the build (Sphinx numbers only figures
    that exist); ``True`` when the page has not been executed."""
    if executed is None:
        return True
    cells = executed.cells
    if cell_index >= len(cells) or cells[cell_index].source != cell.source:
        raise NotebookMarkdownError(
            "the executed notebook does not match its source: rebuild"
        )
    outputs = cells[cell_index].get("outputs", [])
    return any(
        key.startswith("image/") for o in outputs for key in (o.get("data") or {})
    )


def _index_figure(
    index: BookIndex, docname: str, number: str, cell_index: int, name: str | None
) -> None:
    index.figure_cells[docname, cell_index] = number
    if name:
        index.figures[name] = (docname, number)


def _index_markdown(
    index: BookIndex,
    docname: str,
    text: str,
    prefix: str,
    counts: dict[str, int],
    pending: list[str],
) -> None:
    """Record the labels, headings, equations, exercises of one markdown cell."""
    lines = text.splitlines()
    for i, line, info in _outside_code(lines):
        if match := _LABEL_LINE.match(line):
            pending.append(match["label"])
            continue
        if match := _HEADING.match(line):
            title = _plain_title(match["title"])
            is_title = len(match["hashes"]) == 1 and docname not in index.titles
            if is_title:
                index.titles[docname] = title
            for label in pending:
                index.labels[label] = (docname, "" if is_title else label, title)
            pending.clear()
            continue
        if line.strip():
            for label in pending:
                index.labels[label] = (docname, label, None)
            pending.clear()
        if match := _EQ_LABEL.match(line):
            counts["eq"] += 1
            index.equations[match["label"]] = (docname, f"{prefix}{counts['eq']}")
        name = (_DIRECTIVE_INFO.match(info) or {"name": ""})["name"] if info else ""
        if name == "exercise":
            options = split_options(lines[i + 1 :])[0]
            if "nonumber" not in options:
                counts["ex"] += 1
                if options.get("label"):
                    index.exercises[options["label"]] = (
                        docname,
                        f"{prefix}{counts['ex']}",
                    )
        elif name == "bibliography":
            index.bibliography_doc = docname
        if index.reference_doc is None and re.search(
            r"\b(automodule|autofunction|autosummary|numscale-api)\b", line
        ):
            index.reference_doc = docname


#: What the page of a build that lacked its data says (``_ext/numscale_data.py``'s note).
WITHOUT_DATA_MARKER = "This page was built without its data"


def replaced_in_build(build_dir: str | Path | None, docname: str) -> bool:
    """Whether the build in ``build_dir`` (holding ``html/``) replaced ``docname`` by the
    note naming its missing data: its executed notebook is the note's, not the page's."""
    if build_dir is None:
        return False
    page = Path(build_dir) / "html" / f"{docname}.html"
    return page.is_file() and WITHOUT_DATA_MARKER in page.read_text(encoding="utf-8")


def book_index(
    root: str | Path,
    site_url: str = "",
    bibfiles: list[str] | None = None,
    build_dir: str | Path | None = None,
    without_data: frozenset[str] = frozenset(),
    cache: IndexCache | None = None,
) -> BookIndex:
    """Labels, numbers, titles and citations of the book in ``root`` (:class:`BookIndex`).

    With ``build_dir`` (a build folder holding ``html/``), a figure cell is numbered
    only if it drew a figure in that build, as Sphinx does. ``without_data``: pages the
    build replaced by a note because their data was missing (_ext/numscale_data.py);
    their executed notebook is the note's, so it is not read. ``cache``: pages' parts
    from an earlier call (:class:`IndexCache`), reused when the page, its number and
    its executed notebook are unchanged (reading every page again was most of the
    time a build spent on notebooks).
    """
    root = Path(root)
    index = BookIndex(site_url=site_url.rstrip("/") + "/" if site_url else "")
    chapter = 0
    for docname, numbered in toc_entries(root):
        path = _source_path(root, docname)
        if path is None:
            continue
        if numbered:
            chapter += 1
            index.chapter_numbers[docname] = chapter
        prefix = f"{chapter}." if numbered else ""
        replaced = docname in without_data or replaced_in_build(build_dir, docname)
        executed_file = None if replaced else _executed_file(build_dir, docname)
        key = None
        if cache is not None:  # a page's part depends on these only
            digest = hashlib.sha256(Path(__file__).read_bytes())  # this code
            digest.update(f"\0{docname}\0{prefix}\0".encode())
            digest.update(path.read_bytes() + b"\0executed\0")
            digest.update(executed_file.read_bytes() if executed_file else b"none")
            key = digest.hexdigest()
        if key is not None and key in cache:
            part = cache[key]
        else:
            part = _page_index(docname, path, prefix, _load_executed(executed_file))
        if key is not None:
            cache.used[key] = part
        _merge_index(index, part)
    for bibfile in bibfiles or []:
        path = root / bibfile
        if path.is_file():
            from pybtex.database import parse_file

            for key, entry in parse_file(str(path)).entries.items():
                index.citations[key] = _citation_text(entry)
    return index


class IndexCache(dict):
    """Parts of a :class:`BookIndex` (one page's each), by digest of what the part is
    made from; ``used`` collects the parts one :func:`book_index` used (to keep)."""

    def __init__(self, entries: dict[str, BookIndex] | None = None) -> None:
        super().__init__(entries or {})
        self.used: dict[str, BookIndex] = {}


def _page_index(
    docname: str, path: Path, prefix: str, executed: Any | None
) -> BookIndex:
    """The part of the book's index one page makes (its labels, titles, numbers)."""
    index = BookIndex()
    counts = {"eq": 0, "fig": 0, "ex": 0}
    pending: list[str] = []
    for cell_index, cell in enumerate(_read_cells(path)):
        if cell.cell_type == "markdown":
            _index_markdown(index, docname, cell.source, prefix, counts, pending)
            continue
        figure = (cell.metadata.get("mystnb") or {}).get("figure") or {}
        if (
            cell.cell_type == "code"
            and figure.get("caption")
            and _draws_figure(executed, cell_index, cell)
        ):
            counts["fig"] += 1
            number = f"{prefix}{counts['fig']}"
            _index_figure(index, docname, number, cell_index, figure.get("name"))
    return index


def _merge_index(index: BookIndex, part: BookIndex) -> None:
    """Add one page's part to the book's index, as if read after the pages before it."""
    for name in ("titles", "labels", "equations", "figures", "figure_cells"):
        getattr(index, name).update(getattr(part, name))
    index.exercises.update(part.exercises)
    if part.bibliography_doc is not None:
        index.bibliography_doc = part.bibliography_doc
    if index.reference_doc is None:
        index.reference_doc = part.reference_doc


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
            options = {str(k): "" if v is None else str(v) for k, v in loaded.items()}
            return options, lines[end + 1 :]
    options: dict[str, str] = {}
    used = 0
    for line in lines:
        match = _OPTION.match(line.strip())
        if not match:
            break
        options[match["key"]] = match["value"].strip()
        used += 1
    return options, lines[used:]


# ------------------------------------------------------------------ readable markdown


_EXPLICIT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.DOTALL)
#: Admonition directives and the title a reader sees.
ADMONITIONS = {
    "note": "Note",
    "tip": "Tip",
    "hint": "Hint",
    "important": "Important",
    "warning": "Warning",
    "caution": "Caution",
    "attention": "Attention",
    "danger": "Danger",
    "error": "Error",
    "seealso": "See also",
    "admonition": "",
}
#: Options of ``literalinclude`` that Sphinx's reader takes as integers.
_INT_OPTIONS = {"dedent", "lineno-start", "tab-width"}
_PY_ROLES = ("func", "class", "mod", "meth", "attr", "data", "obj", "exc")


class NotebookMarkdownError(ValueError):
    """A role or directive the notebook conversion cannot make readable."""


class PageContext:
    """What converting one page needs: the book index, the page's glued values
    (name -> MIME bundle, ``None`` when the page has not been executed), its docname
    and the folder of its source (for ``literalinclude``)."""

    def __init__(
        self,
        index: BookIndex,
        docname: str,
        source_dir: Path,
        glue: dict[str, dict[str, Any]] | None = None,
    ) -> None:
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
        raise NotebookMarkdownError(
            f"glue from another page ({content!r}) is not supported"
        )
    if context.glue is None:
        return f"`{key}`"
    if key not in context.glue:
        raise NotebookMarkdownError(f"{context.docname}: no glued value {key!r}")
    data = context.glue[key]
    if markdown:
        if "text/markdown" not in data:
            raise NotebookMarkdownError(
                f"{context.docname}: glued {key!r} has no text/markdown"
            )
        return str(data["text/markdown"]).strip()
    from myst_nb.core.variables import format_plain_text

    return format_plain_text(str(data["text/plain"]), fmt)


def _target(content: str) -> tuple[str | None, str]:
    """``("text", "target")`` of ``text <target>``; ``(None, content)`` otherwise."""
    match = _EXPLICIT_TARGET.match(content)
    if match:
        return match["text"].strip() or None, match["target"].strip()
    return None, content.strip()


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def _numbered(text: str | None, number: str, default: str) -> str:
    """A reference's text with its number (``%s`` / ``{number}``), or ``default``."""
    return text.replace("%s", number).replace("{number}", number) if text else default


def _reference(context: PageContext, role: str, content: str) -> str:
    """``{ref}`` / ``{numref}``: a link to the label's page, numbered as on the site."""
    index = context.index
    text, label = _target(content)
    if label in index.figures or (role == "numref" and label in index.equations):
        docname, number = index.figures.get(label) or index.equations[label]
        kind = "Fig." if label in index.figures else "Equation"
        return _link(
            _numbered(text, number, f"{kind} {number}"), index.page_url(docname, label)
        )
    if label in index.exercises:
        docname, number = index.exercises[label]
        shown = text.replace("%s", number) if text else f"Exercise {number}"
        return _link(shown, index.page_url(docname, label))
    if label not in index.labels:
        raise NotebookMarkdownError(
            f"{context.docname}: unknown label {label!r} in {{{role}}}"
        )
    docname, anchor, title = index.labels[label]
    if role == "numref":
        number = str(index.chapter_numbers.get(docname, ""))
        shown = _numbered(text, number, f"Section {number}")
    else:
        shown = text or title or label
    return _link(shown, index.page_url(docname, anchor))


def _equation(context: PageContext, content: str) -> str:
    """``{eq}``: "(n)", a link when the equation is on another page."""
    index = context.index
    label = content.strip()
    if label not in index.equations:
        raise NotebookMarkdownError(f"{context.docname}: unknown equation {label!r}")
    docname, number = index.equations[label]
    if docname == context.docname:
        return f"({number})"
    return _link(f"({number})", index.page_url(docname, f"equation-{label}"))


def _citation(context: PageContext, role: str, content: str) -> str:
    """``{cite:p}`` as "(Author et al., Year)", ``{cite:t}`` as "Author et al. (Year)",
    linked to the bibliography page: the text sphinxcontrib-bibtex prints."""
    index = context.index
    keys = [k.strip() for k in content.split(",") if k.strip()]
    missing = [k for k in keys if k not in index.citations]
    if missing:
        raise NotebookMarkdownError(f"{context.docname}: unknown citation(s) {missing}")
    url = index.page_url(index.bibliography_doc) if index.bibliography_doc else ""
    cited = [index.citations[k] for k in keys]
    if role in ("cite:t", "cite:ts"):
        return "; ".join(_link(f"{authors} ({year})", url) for authors, year in cited)
    inner = "; ".join(_link(f"{authors}, {year}", url) for authors, year in cited)
    return inner if role in ("cite:ps", "cite:alp") else f"({inner})"


def _api_reference(context: PageContext, role: str, content: str) -> str:
    """``{py:func}`` and friends: code text, linked to the package reference."""
    index = context.index
    text, target = _target(content)
    target = target.lstrip("~.")
    shown = text or (
        target.rsplit(".", 1)[-1] if content.strip().startswith("~") else target
    )
    if role.endswith(("func", "meth")) and not text:
        shown += "()"
    if index.reference_doc and target.startswith("numscale"):
        anchor = f"module-{target}" if role.endswith("mod") else target
        return _link(f"`{shown}`", index.page_url(index.reference_doc, anchor))
    return f"`{shown}`"


def convert_role(context: PageContext, role: str, content: str) -> str:
    """Plain-Markdown text for one MyST role; an unknown role raises
    :class:`NotebookMarkdownError` (a build warning, so the strict build fails)."""
    role = role.removeprefix("std:")
    if role in ("glue", "glue:text"):
        return glue_text(context, content)
    if role == "glue:md":
        return glue_text(context, content, markdown=True)
    if role in ("ref", "numref"):
        return _reference(context, role, content)
    if role == "eq":
        return _equation(context, content)
    if role.startswith("cite"):
        return _citation(context, role, content)
    if role.removeprefix("py:") in _PY_ROLES:
        return _api_reference(context, role, content)
    raise NotebookMarkdownError(
        f"{context.docname}: no notebook form for the role {{{role}}}"
    )


_ROLE_OR_CODE = re.compile(
    r"(?P<full>\{(?P<role>[A-Za-z][\w:.-]*)\}`(?P<content>[^`]+)`)"
    r"|(?P<code>``[^`].*?``|`[^`\n]+`)",
    re.DOTALL,
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


def literalinclude_text(
    source_dir: Path, argument: str, options: dict[str, str]
) -> tuple[str, str]:
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


def convert_directive(
    context: PageContext, name: str, argument: str, body_lines: list[str]
) -> str:
    """Plain-Markdown for one directive (its body already split from the fences); an
    unknown directive raises :class:`NotebookMarkdownError`."""
    index = context.index
    options, content = split_options(body_lines)
    body = "\n".join(content).strip("\n")
    exercise = index.exercises.get(argument.strip(), (None, ""))[1]
    if name == "literalinclude":
        language, text = literalinclude_text(context.source_dir, argument, options)
        caption = options.get("caption")
        listing = _fenced(language, text)
        return (
            f"**{convert_markdown(context, caption)}**\n\n" if caption else ""
        ) + listing
    if name == "exercise":
        number = index.exercises.get(options.get("label", ""), (None, ""))[1]
        title = f"Exercise {number}".strip()
        if argument.strip():
            title += f" ({convert_markdown(context, argument)})"
        return _blockquote(title, convert_markdown(context, body))
    if name == "solution":
        title = f"Solution to Exercise {exercise}".strip()
        inner = convert_markdown(context, body)
        return f"<details>\n<summary>{title}</summary>\n\n{inner}\n\n</details>"
    if name == "solution-start":
        return f"**Solution to Exercise {exercise}**".replace("  ", " ")
    if name == "solution-end":
        return ""
    if name in ADMONITIONS:
        title = ADMONITIONS[name] or convert_markdown(context, argument.strip())
        return _blockquote(title, convert_markdown(context, body))
    if name == "bibliography":
        link = _link("bibliography of the online book", index.page_url(context.docname))
        return f"The works cited are listed in the {link}."
    raise NotebookMarkdownError(
        f"{context.docname}: no notebook form for the directive {{{name}}}"
    )


def _fence_end(lines: list[str], start: int) -> int:
    """Index of the line closing the fence opened at ``lines[start]`` (or ``len``)."""
    marker = _FENCE.match(lines[start])["fence"]
    end = start + 1
    while end < len(lines) and not _closes(lines[end], marker):
        end += 1
    return end


def _tagged_equation_end(context: PageContext, match: re.Match) -> str:
    """The closing ``$$ (label)`` line of a display equation, with ``\\tag{n}``."""
    number = context.index.equations.get(match["label"], (None, ""))[1]
    before = match["before"]
    tag = f"\\tag{{{number}}}" if number else ""
    if before.strip() == "$$":
        return f"{tag}\n$$"
    return before[:-2].rstrip() + (f" {tag}" if tag else "") + " $$"  # one-line $$ … $$


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
        stripped = line.strip()
        if not in_math and _FENCE.match(line):
            end = _fence_end(lines, i)
            directive = _DIRECTIVE_INFO.match(_FENCE.match(line)["info"].strip())
            flush()
            if directive:
                out.append(
                    convert_directive(
                        context,
                        directive["name"],
                        directive["argument"],
                        lines[i + 1 : end],
                    )
                )
            else:
                out.append(
                    "\n".join(lines[i : end + 1])
                )  # a plain code block stays as is
            i = end + 1
            continue
        if not in_math and (_LABEL_LINE.match(line) or stripped.startswith("%")):
            i += 1  # a target label or a MyST comment
            continue
        if (match := _EQ_LABEL.match(line)) and (in_math or stripped.startswith("$$")):
            prose.append(_tagged_equation_end(context, match))
            in_math = False
            i += 1
            continue
        if stripped.startswith("$$") and not (
            stripped.count("$$") >= 2 and stripped != "$$"
        ):
            in_math = not in_math
        prose.append(line)
        i += 1
    flush()
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


def load_glue(executed: Any) -> dict[str, dict[str, Any]]:
    """name -> MIME bundle of every ``glue`` output of an executed notebook (a path or
    an ``nbformat`` notebook)."""
    import nbformat

    if isinstance(executed, (str, Path)):
        executed = nbformat.read(str(executed), as_version=4)
    prefix = "application/papermill.record/"
    values: dict[str, dict[str, Any]] = {}
    for cell in executed.cells:
        for output in cell.get("outputs", []):
            name = (output.get("metadata") or {}).get("scrapbook", {}).get("name")
            if name is not None:
                data = output.get("data") or {}
                values[name] = {k.removeprefix(prefix): v for k, v in data.items()}
    return values


def executed_glue(
    build_dir: str | Path, docname: str
) -> dict[str, dict[str, Any]] | None:
    """Glued values of ``docname`` from a build; ``None`` if it has no executed notebook."""
    executed = executed_notebook(build_dir, docname)
    return None if executed is None else load_glue(executed)


# ------------------------------------------------------------------ conversion


def chapter_notebook(
    path: str | Path,
    repo_url: str = DEFAULT_REPOSITORY,
    ref: str | None = DEFAULT_REF,
    *,
    index: BookIndex | None = None,
    docname: str | None = None,
    glue: dict[str, dict[str, Any]] | None = None,
) -> Any:
    """A chapter as a standalone notebook that reads well in plain Jupyter or Colab.

    ``path`` is a MyST markdown notebook (``.md`` with jupytext front matter) or an
    ``.ipynb``; jupytext splits it into cells. The code cells are the page's code cells,
    unchanged (outputs stripped), after a hidden install cell. With ``index``
    (:func:`book_index`) the markdown cells are converted (:func:`convert_markdown`) and
    a figure's caption follows its cell. Cell ids are derived from position and content,
    so the same input gives the same notebook.
    """
    import nbformat

    path = Path(path)
    notebook = copy.deepcopy(_read_notebook(path))
    notebook.metadata.pop("jupytext", None)
    notebook.metadata.setdefault(
        "kernelspec",
        {"display_name": "Python 3", "language": "python", "name": "python3"},
    )
    notebook.metadata["language_info"] = {"name": "python"}
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    modules = sorted(_imported_top_level(code) & set(INSTALLABLE))
    if index is not None:
        docname = docname or path.with_suffix("").name
        context = PageContext(
            index=index, docname=docname, source_dir=path.parent, glue=glue
        )
        notebook.cells = _readable_cells(context, notebook.cells)
    notebook.cells.insert(0, install_cell(repo_url, ref, modules))
    for position, cell in enumerate(notebook.cells):
        key = f"{position}\0{cell.cell_type}\0{cell.source}".encode()
        cell["id"] = f"c{position:03d}-{hashlib.sha256(key).hexdigest()[:8]}"
        if cell.cell_type == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    notebook.nbformat, notebook.nbformat_minor = 4, 5
    nbformat.validate(notebook)
    return notebook


def _readable_cells(context: PageContext, cells: list[Any]) -> list[Any]:
    """Markdown cells converted (empty ones dropped), "**Fig. n.** caption" after each
    numbered figure cell."""
    import nbformat

    result = []
    for cell_index, cell in enumerate(cells):
        if cell.cell_type == "markdown":
            cell.source = convert_markdown(context, cell.source)
            if cell.source.strip():
                result.append(cell)
            continue
        result.append(cell)
        number = context.index.figure_cells.get((context.docname, cell_index))
        if cell.cell_type == "code" and number:
            caption = str(cell.metadata["mystnb"]["figure"]["caption"])
            text = convert_roles(context, caption)
            result.append(nbformat.v4.new_markdown_cell(f"**Fig. {number}.** {text}"))
    return result


def notebook_text(notebook: Any) -> str:
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


def _source_path(root: Path, docname: str) -> Path | None:
    candidates = (root / f"{docname}.md", root / f"{docname}.ipynb")
    return next((p for p in candidates if p.is_file()), None)


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


def site_notebook(
    root: str | Path,
    docname: str,
    build_dir: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    index: BookIndex | None = None,
    without_data: frozenset[str] = frozenset(),
) -> Any:
    """The notebook the site serves for ``docname`` (glued values from ``build_dir``,
    the folder holding ``html/``; by name when ``None``). ``without_data``: the pages
    that build replaced by a note (see :func:`book_index`)."""
    root = Path(root)
    settings = settings or book_settings(root)
    index = index or book_index(
        root, settings["site_url"], settings["bibfiles"], build_dir, without_data
    )
    source = _source_path(root, docname)
    if source is None:
        raise FileNotFoundError(f"no {docname}.md or {docname}.ipynb in {root}")
    glue = executed_glue(build_dir, docname) if build_dir is not None else None
    return chapter_notebook(
        source,
        settings["repo_url"],
        settings["ref"],
        index=index,
        docname=docname,
        glue=glue,
    )


# ------------------------------------------------------------------ Sphinx side


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


def _load_pickle(path: Path) -> dict[str, Any]:
    """What :func:`_save_pickle` saved in ``path`` (empty if absent or unreadable,
    e.g. written by another version of this module)."""
    import pickle

    try:
        loaded = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - a cache: start again
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _save_pickle(path: Path, value: dict[str, Any]) -> None:
    import pickle

    path.write_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


_LITERALINCLUDE = re.compile(r"^\s*(`{3,}|~{3,}|:{3,})\{literalinclude\}\s+(\S+)", re.M)


def _common_inputs(settings: dict[str, Any], index: BookIndex) -> str:
    """Digest of what every chapter's notebook is made from: the book's settings (the
    commit the install cell pins, the site's address), the book's index (numbers,
    labels, citations), this converter's code and jupytext's version."""
    import jupytext

    digest = hashlib.sha256(repr(sorted(settings.items())).encode())
    digest.update(repr(vars(index)).encode())
    digest.update(Path(__file__).read_bytes())
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


def setup(app: Any) -> dict[str, Any]:
    app.add_config_value("numscale_notebooks_dir", "_notebooks", "html")
    app.add_config_value("numscale_site_url", "", "html")
    app.connect("build-finished", write_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


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
