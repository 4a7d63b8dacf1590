"""The book's index for the downloadable notebooks (``_ext/numscale_notebooks.py``).

:func:`book_index` reads every page of ``_toc.yml`` (and the bibliography) and records
what a notebook that stands alone needs to print the numbers and links the site prints:
labels, titles, equation/figure/exercise numbers (Sphinx's rules for this book) and
citation texts. :class:`IndexCache` keeps each page's part between builds
(``_load_pickle``/``_save_pickle``). Also here: the book's settings from ``_config.yml``
(:func:`book_settings`), where a page's source and executed notebook are, and
:class:`NotebookMarkdownError`. A plain module (not a Sphinx extension).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from numscale_install_cell import DEFAULT_REF, DEFAULT_REPOSITORY, source_ref


class NotebookMarkdownError(ValueError):
    """A role or directive the notebook conversion cannot make readable."""


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
