"""Sphinx extension: a chapter that shows source with ``literalinclude`` is re-read when
the listing it shows changes, not when any other part of the file does.

Sphinx re-reads a page whenever a file it includes changes, so an edit of a comment in
a helper module re-read every chapter that shows any function of it. Here
``literalinclude`` is Sphinx's own directive (:class:`LiteralIncludeListing`, the same
output) that records the digest of the listing it shows, and a page is re-read when that
digest changes or the listing can no longer be read (:func:`reread_changed_listings`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralInclude, LiteralIncludeReader


def _includes(env) -> dict[str, list[tuple[str, dict[str, Any], str, str]]]:
    """{docname: [(file relative to the source folder, options, digest of the file,
    digest of the listing)]} of the ``literalinclude`` listings each page shows."""
    if not hasattr(env, "numscale_includes"):
        env.numscale_includes = {}
    return env.numscale_includes


def listing_digest(filename: str, options: dict[str, Any], config) -> str:
    """Digest of what ``literalinclude`` shows of ``filename`` with ``options``: the
    listing's text (after ``:pyobject:``, ``:lines:``, ``:dedent:`` ...) and, when it is
    numbered, its first line number."""
    reader = LiteralIncludeReader(filename, dict(options), config)
    text, _ = reader.read()
    numbered = {"linenos", "lineno-start", "lineno-match"} & set(options)
    start = reader.lineno_start if numbered else None
    return hashlib.sha256(f"{start}\0{text}".encode()).hexdigest()


class LiteralIncludeListing(LiteralInclude):
    """Sphinx's ``literalinclude``, on which a page depends through the listing it shows.

    Sphinx re-reads a page whenever an included file changes: an edit of a comment in a
    helper module re-read (and re-rendered) every chapter that shows any function of it.
    Here the page is re-read only when the listing it shows changes
    (:func:`reread_changed_listings`); the output is Sphinx's own.
    """

    def run(self) -> list[nodes.Node]:
        docname = self.env.docname
        rel_filename, filename = self.env.relfn2path(self.arguments[0])
        noted = rel_filename in self.env.dependencies.get(docname, set())
        result = super().run()
        options = dict(self.options)
        try:
            digest = listing_digest(filename, options, self.config)
        except Exception:  # noqa: BLE001 - Sphinx warned already; keep its dependency
            return result
        if not noted:  # this listing's dependency is on what it shows, not the file
            self.env.dependencies[docname].discard(rel_filename)
        content = hashlib.sha256(Path(filename).read_bytes()).hexdigest()
        _includes(self.env).setdefault(docname, []).append(
            (rel_filename, options, content, digest)
        )
        return result


def reread_changed_listings(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: the pages a ``literalinclude`` listing of which changed (or
    can no longer be read: the page is re-read and Sphinx reports it)."""
    stale = []
    for docname, listings in sorted(_includes(env).items()):
        if docname not in env.found_docs or docname in changed:
            continue
        for rel_filename, options, content, digest in listings:
            filename = Path(env.srcdir) / rel_filename
            try:
                if hashlib.sha256(filename.read_bytes()).hexdigest() == content:
                    continue  # the same file: the same listing
                now = listing_digest(str(filename), options, app.config)
            except Exception:  # noqa: BLE001 - a missing file or object
                now = None
            if now != digest:
                stale.append(docname)
                break
    return stale


def purge_listings(app: Sphinx, env, docname: str) -> None:
    _includes(env).pop(docname, None)


def merge_listings(app: Sphinx, env, docnames, other) -> None:
    _includes(env).update({d: v for d, v in _includes(other).items() if d in docnames})


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("env-get-outdated", reread_changed_listings)
    app.add_directive("literalinclude", LiteralIncludeListing, override=True)
    app.connect("env-purge-doc", purge_listings)
    app.connect("env-merge-info", merge_listings)
    # No env_version: what it keeps in the environment (``numscale_includes``) has the
    # layout it had in numscale_api (env_version 2), so environments stay valid; declare
    # one when that layout changes (another layout must re-read every page once).
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
