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

This module is the conversion; the rest lives beside it: the roles (glued values,
references, citations) in ``numscale_notebook_roles.py``, the install cell in
``numscale_install_cell.py``, the book's index (numbers, labels, citations, with its
per-page cache) and settings in ``numscale_book_index.py``, and writing the notebooks
(the ``build-finished`` handler, what is converted again, the script) in
``numscale_notebook_writer.py``.

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

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

from numscale_book_index import (
    _DIRECTIVE_INFO,
    _EQ_LABEL,
    _FENCE,
    _LABEL_LINE,
    BookIndex,
    NotebookMarkdownError,
    _closes,
    _read_notebook,
    _source_path,
    book_index,
    book_settings,
    executed_notebook,
    split_options,
)
from numscale_install_cell import (
    DEFAULT_REF,
    DEFAULT_REPOSITORY,
    INSTALLABLE,
    _imported_top_level,
    install_cell,
)
from numscale_notebook_roles import PageContext, _link, convert_roles

# ------------------------------------------------------------------ readable markdown


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


def setup(app: Any) -> dict[str, Any]:
    from numscale_notebook_writer import write_notebooks

    app.add_config_value("numscale_notebooks_dir", "_notebooks", "html")
    app.add_config_value("numscale_site_url", "", "html")
    app.connect("build-finished", write_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}


if __name__ == "__main__":
    from numscale_notebook_writer import main

    raise SystemExit(main())
