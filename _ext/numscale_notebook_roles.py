"""MyST roles as the plain Markdown a downloaded chapter shows (``numscale_notebooks``
converts the rest of a page).

* ``{glue:text}``/``{glue:md}``: the glued value as the build computed it, formatted by
  myst-nb's own function; by name when there is no build (:func:`glue_text`);
* ``{ref}``/``{numref}``/``{eq}``: links to the online book with the numbers the site
  prints;
* ``{cite:p}``/``{cite:t}``: "(Author et al., Year)" / "Author et al. (Year)", the text
  sphinxcontrib-bibtex prints, linked to the bibliography page;
* ``{py:func}`` and kin: code text linked to the package reference.

Any other role raises :class:`NotebookMarkdownError` (:func:`convert_role`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from numscale_book_index import BookIndex, NotebookMarkdownError

_EXPLICIT_TARGET = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>\s*$", re.DOTALL)
_PY_ROLES = ("func", "class", "mod", "meth", "attr", "data", "obj", "exc")


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
