"""Sphinx extension: an incremental build that gives the site a clean build gives, fast.

* Figure numbers without reading back every page's doctree
  (:func:`_patch_figure_numbers`): kept when no page was read or removed, otherwise
  computed by Sphinx's own numbering from each page's small :func:`figure_skeleton`,
  kept while its doctree is unchanged.
* The search index of a clean build: the index entries of the pages this build does not
  write are restored (:func:`restore_index_entries`, sphinx-doc/sphinx#12599), and words
  no page has any more are left out (:func:`_patch_search_terms`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

# ------------------------------------------------------------------ figure numbers


def note_read_docs(app: Sphinx, env, docnames: list[str]) -> None:
    """``env-before-read-docs``: the pages this build reads (the list itself, which later
    handlers may extend; see :func:`_patch_figure_numbers`)."""
    app._numscale_reading = docnames  # type: ignore[attr-defined]


def note_removed_docs(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: whether pages were removed (see
    :func:`_patch_figure_numbers`)."""
    app._numscale_removed = bool(removed)  # type: ignore[attr-defined]
    return []


def figure_skeleton(env, doctree) -> Any:
    """What Sphinx's figure numbering reads of a doctree: its sections (with their ids),
    ``toctree`` nodes, and every node some domain numbers (figures, tables, code blocks,
    exercises ...) whole, in document order; any other element is replaced by what it
    holds of these (numbering walks every element alike, with its section's number).
    The package reference's doctree (35,000 nodes) has a skeleton of a few dozen."""
    from docutils import nodes
    from sphinx import addnodes

    domains = list(env.domains.values())

    def numbered(node) -> bool:
        return any(domain.get_enumerable_node_type(node) for domain in domains)

    def prune(node) -> list[Any]:
        kept: list[Any] = []
        for child in node.children:
            if isinstance(child, nodes.section):
                copy = child.copy()  # attributes, no children
                copy.extend(prune(child))
                kept.append(copy)
            elif isinstance(child, addnodes.toctree) or (
                isinstance(child, nodes.Element) and numbered(child)
            ):
                kept.append(child.deepcopy())
            elif isinstance(child, nodes.Element):
                kept.extend(prune(child))
        return kept

    root = nodes.Element()
    root.extend(prune(doctree))
    for node in root.findall():
        node.document = None  # copies point at the whole document: keep them small
    return root


def _patch_figure_numbers() -> None:
    """Sphinx's figure numbering, without reading back every page's doctree.

    Sphinx numbers the figures of the whole book after every build (``numfig``), reading
    every page's doctree from disk, the package reference's among them (about 1 s of an
    incremental build). The numbers depend only on the doctrees and the tables of
    contents. When no page was read or removed, nothing they depend on changed, and the
    numbers kept from the last build (``env.toc_fignumbers``) stand. Otherwise the
    numbering runs as Sphinx's own, on each page's :func:`figure_skeleton`: computed
    from the doctree and kept (``numscale_figure_skeletons.pickle`` beside the
    doctrees) for as long as the doctree file is unchanged.
    """
    import pickle

    from sphinx.environment.collectors.toctree import TocTreeCollector

    original = TocTreeCollector.assign_figure_numbers
    if getattr(original, "numscale", False):
        return

    def assign_figure_numbers(self, env) -> list[str]:
        app = env.app
        if (
            getattr(app, "_numscale_reading", None) == []
            and getattr(app, "_numscale_removed", None) is False
        ):
            return []
        store = Path(env.doctreedir) / "numscale_figure_skeletons.pickle"
        version = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
        try:
            saved_version, kept = pickle.loads(store.read_bytes())
        except Exception:  # noqa: BLE001 - none yet, or unreadable: start again
            saved_version, kept = None, {}
        if saved_version != version:  # made by other code
            kept = {}
        used: dict[str, Any] = {}
        get_doctree = env.get_doctree

        def skeleton(docname: str) -> Any:
            path = Path(env.doctreedir) / f"{docname}.doctree"
            try:
                stat = path.stat()
                stamp = (stat.st_mtime_ns, stat.st_size)
            except OSError:
                stamp = None
            entry = kept.get(docname)
            if stamp is None or entry is None or entry[0] != stamp:
                entry = (stamp, figure_skeleton(env, get_doctree(docname)))
            used[docname] = entry
            return entry[1]

        env.get_doctree = skeleton
        try:
            result = original(self, env)
        finally:
            del env.get_doctree  # the instance attribute: the method again
        store.write_bytes(
            pickle.dumps((version, used), protocol=pickle.HIGHEST_PROTOCOL)
        )
        return result

    assign_figure_numbers.numscale = True  # type: ignore[attr-defined]
    TocTreeCollector.assign_figure_numbers = assign_figure_numbers  # type: ignore[method-assign]


# --------------------------------------------------------------------- search index

#: Where the search index's entries of every page are kept between builds.
INDEX_ENTRIES_FILE = "numscale_index_entries.pickle"


def restore_index_entries(app: Sphinx, env) -> None:
    """``env-updated``: the index entries (``{index}``, autodoc's) of every page for the
    search index, as the last build wrote them, for the pages this build does not write.

    Sphinx 7.4 keeps them in the environment, which it saves *before* writing pages, so
    the entries are lost for every page an incremental build does not write again: its
    ``searchindex.js`` then differed from a clean build's (sphinx-doc/sphinx#12599).
    A page this build writes replaces its entries when it is written; a removed page's
    are dropped.
    """
    import pickle

    entries = env._search_index_index_entries
    for docname in [d for d in entries if d not in env.found_docs]:
        del entries[docname]  # a removed page (the search index has no number for it)
    path = Path(env.doctreedir) / INDEX_ENTRIES_FILE
    try:
        saved = pickle.loads(path.read_bytes())
    except Exception:  # noqa: BLE001 - none yet, or unreadable: Sphinx's own behaviour
        return
    for docname, listed in saved.items():
        if docname in env.found_docs:  # the last written: newer than the environment's
            entries[docname] = listed


def _patch_search_terms() -> None:
    """Leave out of the search index the words no page has any more.

    An incremental build removes the pages it writes again from every word's list
    before indexing them anew: a word such a page no longer has keeps an empty list
    (``"word": []``), which a clean build, indexing only the words pages have, never
    writes. Dropping empty lists makes the two indexes the same.
    """
    from sphinx.search import IndexBuilder

    original = IndexBuilder.freeze
    if getattr(original, "numscale", False):
        return

    def freeze(self) -> dict[str, Any]:
        frozen = original(self)
        for name in ("terms", "titleterms"):
            frozen[name] = {k: v for k, v in frozen[name].items() if v != []}
        return frozen

    freeze.numscale = True  # type: ignore[attr-defined]
    IndexBuilder.freeze = freeze  # type: ignore[method-assign]


def save_index_entries(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: keep the entries :func:`restore_index_entries` restores."""
    if exception is not None or app.builder.format != "html":
        return
    import pickle

    entries = {
        docname: listed
        for docname, listed in app.env._search_index_index_entries.items()
        if docname in app.env.found_docs
    }
    path = Path(app.env.doctreedir) / INDEX_ENTRIES_FILE
    data = pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL)
    if not path.is_file() or path.read_bytes() != data:
        path.write_bytes(data)


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", note_removed_docs)
    app.connect("env-before-read-docs", note_read_docs)
    _patch_figure_numbers()
    _patch_search_terms()
    app.connect("env-updated", restore_index_entries)
    app.connect("build-finished", save_index_entries)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
