"""Sphinx extension: the package reference, generated from the package itself.

The directive ``numscale-api`` (used in ``book/reference.md`` inside ``{eval-rst}``)
writes, for every module of the helper package found in ``numscale_src_dir`` at build
time (so a new module appears with no edit here), a section with the module's docstring
(``automodule``) and one ``autofunction`` / ``autoclass`` entry per public object:
defined in that module, name without a leading underscore. Each entry ends with the
chapters that use it and the chapters that show its source (what is listed, and the
uses, are read by ``numscale_api_scan.py``). ``sphinx.ext.viewcode`` adds the [source] links
(``numscale_viewcode.py``, which this extension loads).

The page is re-read when what it shows of a module changes (:func:`doc_fingerprint`:
its code, docstrings, signatures as written and ``#:`` comments, not its other comments
or blank lines) and when what the chapters use or show changes; any other edit leaves it
alone (autodoc over every module is the most expensive page of an incremental build).

Configuration (``_config.yml`` → ``sphinx: config:``): ``numscale_src_dir`` and
``numscale_package`` (``numscale_package_source.py``), ``numscale_api_pages`` (glob of
the pages scanned for uses, default ``"book/*.md"``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import re
import sys
import tokenize
from pathlib import Path
from typing import Any

import numscale_api_scan
import numscale_package_source
from docutils import nodes
from docutils.statemachine import StringList
from numscale_api_scan import (
    chapter_uses,
    public_constants,
    public_modules,
    public_objects,
)
from numscale_package_source import add_package_config
from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

LOGGER = logging.getLogger(__name__)
#: The files whose rules make the page: a new rule in one re-reads the page.
RULE_FILES = (__file__, numscale_api_scan.__file__, numscale_package_source.__file__)


# ----------------------------------------------------------------------- directive


class NumscaleApi(SphinxDirective):
    """``.. numscale-api::``: the reference of every module of the package."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        config = self.env.config
        root = Path(self.env.srcdir)
        src_dir = root / config.numscale_src_dir
        package = config.numscale_package
        used, shown = page_uses(self.env, self.env.docname)
        # The chapters matter only through what they use and show, and the modules
        # through what the page shows of them: the page is re-read when either changes
        # (:func:`reread_reference`), not when any chapter or any comment is edited,
        # which would re-run autodoc on every module after every edit.
        _api_docs(self.env)[self.env.docname] = (
            uses_digest(used, shown),
            modules_digest(self.env, src_dir, package),
        )
        for rules in RULE_FILES:  # a new rule re-reads the page
            self.env.note_dependency(rules)
        lines: list[str] = []
        for module_name in public_modules(src_dir, package):
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - reported as a warning, the build fails with -W
                LOGGER.warning(
                    f"[numscale] cannot import {module_name}: {exc}",
                    location=(self.env.docname, self.lineno),
                )
                continue
            lines += [
                f"``{module_name}``",
                "-" * (len(module_name) + 4),
                "",
                f".. automodule:: {module_name}",
                "   :no-members:",
                "",
            ]
            module_file = src_dir.joinpath(*module_name.split(".")).with_suffix(".py")
            try:
                documented = {
                    name
                    for (_, name) in ModuleAnalyzer.for_module(
                        module_name
                    ).find_attr_docs()
                }
            except Exception:  # noqa: BLE001 - no comment docs found: plain entries
                documented = set()
            for name in public_constants(module_file):
                if (
                    name in documented
                ):  # a ``#:`` comment or a string after the assignment
                    lines += [
                        f".. autodata:: {module_name}.{name}",
                        "   :no-value:",
                        "",
                    ]
                else:  # autodoc would show the docstring of the value's type (dict, tuple ...)
                    lines += [f".. py:data:: {name}", f"   :module: {module_name}", ""]
            for kind, name in public_objects(module):
                dotted = f"{module_name}.{name}"
                if kind == "function":
                    lines += [f".. autofunction:: {dotted}", ""]
                else:
                    lines += [
                        f".. autoclass:: {dotted}",
                        "   :members:",
                        "   :undoc-members:",
                        "   :member-order: bysource",
                        "",
                    ]
                for label, docnames in (
                    ("Used in", used.get(dotted)),
                    ("Source shown in", shown.get(dotted)),
                ):
                    if docnames:
                        links = ", ".join(f":doc:`/{d}`" for d in docnames)
                        lines += [f"   *{label}:* {links}.", ""]
        container = nodes.container(classes=["numscale-api"])
        nested_parse_with_titles(
            self.state, StringList(lines, source="numscale-api"), container
        )
        return container.children


def page_uses(env, docname: str) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """:func:`numscale_api_scan.chapter_uses` of the book's pages
    (``numscale_api_pages``) other than ``docname`` (the reference page itself)."""
    root = Path(env.srcdir)
    package = env.config.numscale_package
    # {page: (digest of its text, its uses)}: a page is scanned again only when edited.
    cache = env.__dict__.setdefault("numscale_page_uses", {})
    used: dict[str, set[str]] = {}
    shown: dict[str, set[str]] = {}
    for path in sorted(root.glob(env.config.numscale_api_pages)):
        name = env.path2doc(str(path))
        if name not in env.found_docs or name == docname:
            continue
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(f"{package}\0{text}".encode()).hexdigest()
        if name not in cache or cache[name][0] != digest:
            cache[name] = (digest, *chapter_uses({name: text}, package))
        for found, into in zip(cache[name][1:], (used, shown), strict=True):
            for dotted, names in found.items():
                into.setdefault(dotted, set()).update(names)
    return (
        {k: sorted(v) for k, v in used.items()},
        {k: sorted(v) for k, v in shown.items()},
    )


def uses_digest(used: dict[str, list[str]], shown: dict[str, list[str]]) -> str:
    """A digest of what the pages use and show (what the reference page prints of them)."""
    return hashlib.sha256(
        json.dumps([used, shown], sort_keys=True).encode()
    ).hexdigest()


def doc_fingerprint(source: str) -> str:
    """What the reference page can show of a module's source: its tokens as written
    (docstrings, signatures and defaults as autodoc prints them), without comments and
    blank lines, except ``#:`` comments (autodoc documents a constant with them) and how
    many lines separate each from the code after it. Unparsable source is kept whole.

    An edit of other comments or of blank lines leaves it unchanged; any edit of code,
    a docstring, a default's spelling or a ``#:`` comment changes it.
    """
    kept: list[str] = []
    pending: list[tokenize.TokenInfo] = []  # ``#:`` comments awaiting the next code
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER}
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT and token.string.startswith("#:"):
                pending.append(token)
                continue
            if token.type in skip:
                continue
            for comment in pending:
                kept.append(f"{comment.string}@{token.start[0] - comment.start[0]}")
            pending.clear()
            kept.append(f"{token.type}:{token.string}")
    except (tokenize.TokenError, SyntaxError):
        return source
    kept += [comment.string for comment in pending]
    return "\n".join(kept)


def _fingerprints(env) -> dict[str, tuple[str, str]]:
    """{module file: (sha256 of its bytes, digest of its :func:`doc_fingerprint`)},
    kept in the environment so that an unchanged file is not tokenized again."""
    if not hasattr(env, "numscale_doc_fingerprints"):
        env.numscale_doc_fingerprints = {}
    return env.numscale_doc_fingerprints


def modules_digest(env, src_dir: Path, package: str) -> str:
    """A digest of what the reference page shows of every module file of ``package``
    under ``src_dir`` (private modules and ``__init__`` included: they can change what
    the public ones define): their names and :func:`doc_fingerprint`."""
    cache = _fingerprints(env)
    digest = hashlib.sha256()
    folder = src_dir.joinpath(*package.split("."))
    for path in sorted(folder.rglob("*.py")):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        key = str(path)
        if key not in cache or cache[key][0] != sha:
            text = data.decode("utf-8")
            cache[key] = (
                sha,
                hashlib.sha256(doc_fingerprint(text).encode()).hexdigest(),
            )
        relative = path.relative_to(src_dir).as_posix()
        digest.update(f"\0{relative}\0{cache[key][1]}".encode())
    return digest.hexdigest()


def _api_docs(env) -> dict[str, tuple[str, str]]:
    """{docname of a page with the directive: (digest of the uses, digest of the
    modules) it was read with}."""
    if not hasattr(env, "numscale_api_docs"):
        env.numscale_api_docs = {}
    return env.numscale_api_docs


def reread_reference(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: the reference pages whose chapters' uses changed (a chapter
    that calls or shows another helper, a chapter added or removed) or whose modules
    changed what the page shows of them (:func:`modules_digest`)."""
    stale = []
    src_dir = Path(env.srcdir) / env.config.numscale_src_dir
    package = env.config.numscale_package
    for docname, digests in sorted(_api_docs(env).items()):
        if docname not in env.found_docs or docname in changed:
            continue
        now = (
            uses_digest(*page_uses(env, docname)),
            modules_digest(env, src_dir, package),
        )
        if tuple(digests) != now:
            stale.append(docname)
    return stale


def drop_module_dependencies(app: Sphinx, doctree: nodes.document) -> None:
    """``doctree-read`` (after Sphinx records a page's dependencies): a reference page
    depends on the package's module files through :func:`modules_digest`, checked by
    :func:`reread_reference`, not through their modification times, which autodoc
    records for every module it documents (any edit, a comment's included, would re-read
    the page and re-run autodoc on every module)."""
    env = app.env
    if env.docname not in _api_docs(env):
        return
    folder = (
        Path(env.srcdir, env.config.numscale_src_dir)
        .joinpath(*env.config.numscale_package.split("."))
        .resolve()
    )
    dependencies = env.dependencies.get(env.docname, set())
    for dependency in list(dependencies):
        if Path(env.srcdir, dependency).resolve().is_relative_to(folder):
            dependencies.discard(dependency)


def purge_api_doc(app: Sphinx, env, docname: str) -> None:
    _api_docs(env).pop(docname, None)


def merge_api_docs(app: Sphinx, env, docnames, other) -> None:
    _api_docs(env).update({d: v for d, v in _api_docs(other).items() if d in docnames})
    _fingerprints(env).update(_fingerprints(other))


def _add_src_to_path(app: Sphinx, config) -> None:
    """Import the book's own package (autodoc, viewcode), not another installed copy."""
    src = str((Path(app.confdir) / config.numscale_src_dir).resolve())
    if src not in sys.path:
        sys.path.insert(0, src)
    package = sys.modules.get(config.numscale_package)
    if package is not None and not str(getattr(package, "__file__", "")).startswith(
        src
    ):
        for name in [
            n
            for n in sys.modules
            if n == config.numscale_package
            or n.startswith(config.numscale_package + ".")
        ]:
            del sys.modules[name]
    # Annotations name NumPy, torch and typing classes, which have no entry in this book
    # (there is no intersphinx: the build runs offline). Only those class references are
    # exempt from nitpicky mode; references to the package's own objects must resolve.
    package_name = re.escape(config.numscale_package)
    config.nitpick_ignore_regex = [
        *config.nitpick_ignore_regex,
        ("py:class", rf"(?!{package_name}\.).*"),
    ]


_LITERAL_OR_ROLE = re.compile(r"(``.+?``|:[\w:-]+:`[^`]*`)")


def escape_bars(
    app: Sphinx, what: str, name: str, obj: Any, options: Any, lines: list[str]
) -> None:
    """``autodoc-process-docstring``: the docstrings are plain text with mathematical
    notation, where ``|x|`` is an absolute value or a norm; in reStructuredText it would be
    a substitution reference (an error). Escape ``|`` outside inline literals and roles,
    so it renders as written; inside ``...`` it is literal already."""
    for index, line in enumerate(lines):
        if "|" in line:
            parts = _LITERAL_OR_ROLE.split(line)
            lines[index] = "".join(
                part if i % 2 else part.replace("|", "\\|")
                for i, part in enumerate(parts)
            )


def external_reference(app: Sphinx, domain, node) -> bool | None:
    """``warn-missing-reference``: stay quiet about references to other libraries
    (``numpy.exp``, ``decimal``, ``myst_nb.glue``): the book has no inventory of theirs.
    A reference into the package itself that does not resolve is still an error."""
    if domain is None or domain.name != "py":
        return None
    target = str(node.get("reftarget", "")).lstrip(".~")
    head = target.split(".", 1)[0]
    package = app.config.numscale_package
    if not head or head == package:
        return None
    if head in _ALIASES:
        return True
    try:
        return True if importlib.util.find_spec(head) is not None else None
    except (ImportError, ValueError):
        return None


_ALIASES = {"np", "npt", "plt", "mpl", "nn", "F"}


def setup(app: Sphinx) -> dict[str, Any]:
    add_package_config(app)
    app.add_config_value("numscale_api_pages", "book/*.md", "env")
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("numscale_viewcode")
    app.connect("config-inited", _add_src_to_path)
    app.connect("warn-missing-reference", external_reference)
    app.connect("autodoc-process-docstring", escape_bars)
    app.connect("env-get-outdated", reread_reference)
    app.connect("doctree-read", drop_module_dependencies, priority=900)
    app.connect("env-purge-doc", purge_api_doc)
    app.connect("env-merge-info", merge_api_docs)
    app.add_directive("numscale-api", NumscaleApi)
    return {
        "version": "1.0",
        # what it keeps in the environment: another layout re-reads every page once
        "env_version": 2,
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
