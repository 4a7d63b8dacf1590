"""Pages whose data this build does not have: a short page saying so, never stand-in numbers.

The small real data (stories260K, its tokenizer and stories, GPT-2 small's LayerNorms) is
built into the package, so every page that uses only it always runs on it. GPT-2's large
tensors (117 MB) are not: a page that reads them is listed in ``_config.yml`` under
``numscale_page_data`` (docname -> requirement). When the requirement is not met, the page
is replaced, for execution and for Sphinx alike, by its front matter, its label and title,
and a note naming what it needs and how to provide it; its sections, whose prose describes
that data, are not rendered. The build log says so in one line per page
(``[numscale] book/gpt2_qk: built without its data ...``).

Requirements (:data:`REQUIREMENTS`): ``gpt2-tensors``, the tensors of
:data:`numscale.models.gpt2_model.LARGE_TENSORS` from ``NUMSCALE_GPT2`` (or the hub). A
source named in ``NUMSCALE_GPT2`` that cannot be used fails the build with its one-line
reason. :func:`replacement` is pure and tested on its own (tests/test_data_pages.py).

``_ext/numscale_execute.py`` reads the pages it executes through the event
``numscale-page-source`` that this extension answers, so the page it executes is the page
Sphinx renders.
"""

from __future__ import annotations

import logging as std_logging
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

#: requirement -> (what it is, the environment variable that provides it).
REQUIREMENTS: dict[str, tuple[str, str]] = {
    "gpt2-tensors": (
        "GPT-2 small's attention weights and biases, output projections and "
        "position embeddings (117 MB, not part of the repository)",
        "NUMSCALE_GPT2",
    ),
}

_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_TITLE = re.compile(r"^(?:\((?P<label>[\w.-]+)\)=\n)?(?P<title># .+)$", re.M)


def missing(requirement: str) -> str | None:
    """``None`` when this build has the data of ``requirement``, else why not and how to
    provide it (one paragraph). ``KeyError`` for an unknown requirement."""
    if requirement not in REQUIREMENTS:
        raise KeyError(
            f"unknown data requirement {requirement!r}; known: "
            f"{', '.join(REQUIREMENTS)}"
        )
    from numscale.models import gpt2_model

    return gpt2_model.missing_tensors()


def replacement(text: str, requirement: str, reason: str) -> str:
    """The short page that stands for a page whose data is missing: its front matter,
    label and first title, and a note saying what the page needs, why this build did
    not have it (``reason``) and how to provide it. No code cell, no glued number."""
    what, variable = REQUIREMENTS[requirement]
    front = _FRONT_MATTER.match(text)
    title = _TITLE.search(text)
    if title is None:
        raise ValueError("the page has no '# title' line to keep")
    label = f"({title.group('label')})=\n" if title.group("label") else ""
    return (
        (front.group(0) if front else "") + "\n" + label + title.group("title") + "\n\n"
        "```{important}\n"
        "**This page was built without its data.** It reads " + what + ", which this "
        "build did not have: " + reason.rstrip(".") + ".\n\n"
        "Its sections are left out here rather than shown beside numbers that are not "
        "GPT-2's. To read the page, set `"
        + variable
        + "` to a folder or file that holds GPT-2 small's tensors (for example the "
        "project's `../shared/reference`), or give the build access to the Hugging Face "
        "hub, and rebuild: `" + variable + "=/path/to/gpt2 make book`.\n"
        "```\n"
    )


def _decide(app: Sphinx, docname: str) -> tuple[str, str] | None:
    """(requirement, reason) when ``docname`` lacks its data in this build, else None;
    decided once per build and logged once per page."""
    table: dict[str, str] = app.config.numscale_page_data or {}
    requirement = table.get(docname)
    if requirement is None:
        return None
    decided: dict[str, tuple[str, str] | None] = app.__dict__.setdefault(
        "_numscale_missing", {}
    )
    if docname not in decided:
        try:
            reason = missing(requirement)
        except ValueError:  # SourceError: a named source that cannot be used.
            # Not reported here: the page runs as written and fails at the cell that
            # reads the source, with that cell and the reason in one line
            # (_ext/numscale_execute.py), so the log names each failure once.
            reason = None
        decided[docname] = None if reason is None else (requirement, reason)
        if reason is not None:
            variable = REQUIREMENTS[requirement][1]
            LOGGER.info(
                f"[numscale] {docname}: built without its data ({requirement}); "
                f"{variable} would provide it"
            )
    return decided[docname]


def page_source(app: Sphinx, path: Path, text: str) -> str | None:
    """``numscale-page-source`` handler: the text to execute for the page at ``path``."""
    docname = app.env.path2doc(str(path)) if app.env else None
    decision = _decide(app, docname) if docname else None
    return replacement(text, *decision) if decision else None


def source_read(app: Sphinx, docname: str, source: list[str]) -> None:
    """``source-read`` handler: the same replacement for what Sphinx renders."""
    decision = _decide(app, docname)
    if decision:
        source[0] = replacement(source[0], *decision)


def report(app: Sphinx, exception: Exception | None) -> None:
    """At the end: the pages built without their data, in one line."""
    decided = app.__dict__.get("_numscale_missing", {})
    pages = sorted(d for d, decision in decided.items() if decision)
    if pages and exception is None:
        LOGGER.info(
            f"[numscale] {len(pages)} page(s) built without their data: "
            f"{', '.join(pages)}"
        )


class _NoCacheChatter(std_logging.Filter):
    """Drops myst-nb's "Using cached notebook: ID=…", one line per page on every build:
    the executor (_ext/numscale_execute.py) already says which pages it ran."""

    def filter(self, record: std_logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Using cached notebook")


def quiet_cache_messages(app: Sphinx) -> None:
    """``builder-inited`` handler: filter Sphinx's log handlers (set up by then)."""
    for handler in std_logging.getLogger("sphinx").handlers:
        if not any(isinstance(f, _NoCacheChatter) for f in handler.filters):
            handler.addFilter(_NoCacheChatter())


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("numscale_page_data", {}, "env")
    app.add_event("numscale-page-source")
    app.connect("numscale-page-source", page_source)
    app.connect("source-read", source_read)
    app.connect("build-finished", report)
    app.connect("builder-inited", quiet_cache_messages)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
