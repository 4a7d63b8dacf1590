"""Sphinx extension: the package reference, generated from the package itself.

The directive ``numscale-api`` (used in ``book/reference.md`` inside ``{eval-rst}``) writes,
for every module of the helper package found in ``numscale_src_dir`` at build time (so a
new module appears with no edit here), a section with the module's docstring
(``automodule``) and one ``autofunction`` / ``autoclass`` entry per public object: defined
in that module, name without a leading underscore. ``sphinx.ext.viewcode`` adds the
[source] links. Each entry ends with the chapters that use it, found by scanning the code
cells of the book's pages (``softmax.stable_softmax(...)`` after
``from numscale import softmax``, or a name imported with ``from numscale.softmax import``),
and the chapters that show its source (``literalinclude`` with ``:pyobject:``).

The page is re-read when what it shows of a module changes (:func:`doc_fingerprint`:
its code, docstrings, signatures as written and ``#:`` comments, not its other comments
or blank lines) and when what the chapters use or show changes; any other edit leaves it
alone (autodoc over every module is the most expensive page of an incremental build).
A module's [source] page shows every comment: after an edit of comments only, that one
page is written again from the new source (:func:`refresh_viewcode_sources`), and no
document is re-read. Likewise a chapter that shows package source with
``literalinclude`` is re-read when the listing it shows changes, not when any other
part of the file does (:class:`LiteralIncludeListing`).

Configuration (``_config.yml`` → ``sphinx: config:``): ``numscale_src_dir`` and
``numscale_package`` (``numscale_package_source.py``), ``numscale_api_pages`` (glob of the
pages scanned for uses, default ``"book/*.md"``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import io
import json
import pkgutil
import re
import sys
import tokenize
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from numscale_package_source import add_package_config, module_file, strip_magics
from sphinx.application import Sphinx
from sphinx.directives.code import LiteralInclude, LiteralIncludeReader
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

LOGGER = logging.getLogger(__name__)
_CODE_CELL = re.compile(
    r"^(`{3,}|~{3,})\s*\{code-cell\}[^\n]*\n(.*?)^\1\s*$", re.S | re.M
)
_INCLUDE = re.compile(
    r"^(`{3,}|~{3,})\s*\{literalinclude\}\s*(\S+)\s*\n(.*?)^\1\s*$", re.S | re.M
)


# ------------------------------------------------------------------------- objects


def public_modules(src_dir: Path, package: str) -> list[str]:
    """Dotted names of the package's modules, those of its subpackages included (not the
    packages themselves, none private)."""
    names: list[str] = []
    for info in pkgutil.iter_modules([str(src_dir.joinpath(*package.split(".")))]):
        if info.name.startswith("_"):
            continue
        if info.ispkg:
            names += public_modules(src_dir, f"{package}.{info.name}")
        else:
            names.append(f"{package}.{info.name}")
    return sorted(names)


def public_objects(module: Any) -> list[tuple[str, str]]:
    """(kind, name) of the module's public functions and classes, in source order.

    Public: defined in this module (not imported into it) and named without a leading
    underscore. ``kind`` is ``"function"`` or ``"class"``.
    """
    found = []
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        target = inspect.unwrap(obj) if callable(obj) else obj
        if inspect.isclass(obj):
            kind = "class"
        elif inspect.isfunction(target):
            kind = "function"
        else:
            continue
        try:
            line = inspect.getsourcelines(target)[1]
        except (OSError, TypeError):
            line = 10**9
        found.append((line, kind, name))
    return [(kind, name) for _, kind, name in sorted(found)]


def public_constants(path: Path) -> list[str]:
    """UPPER_CASE names a module assigns at its top level (its documented constants)."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return []
    names: list[str] = []
    for node in tree.body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        for target in targets:
            if (
                isinstance(target, ast.Name)
                and re.fullmatch(r"[A-Z][A-Z0-9_]*", target.id)
                and target.id not in names
            ):
                names.append(target.id)
    return names


# ---------------------------------------------------------------------------- uses


def code_start(lines: list[str]) -> int:
    """Index of a code cell's first code line: after its options (a ``---`` YAML block
    or ``:key: value`` lines at the top), which the page does not show as code."""
    start = 0
    if lines and lines[0].strip() == "---":
        start = next(
            (i + 1 for i in range(1, len(lines)) if lines[i].strip() == "---"), 0
        )
    while start < len(lines) and re.match(r"^:[\w-]+:", lines[start]):
        start += 1
    return start


def cell_code(body: str) -> str:
    """The code of a code cell's body: without its options (:func:`code_start`) and
    magics; empty if it does not parse (the cell would fail anyway, and one such cell
    must not hide the others' uses)."""
    lines = body.splitlines()
    code = strip_magics("\n".join(lines[code_start(lines) :]))
    try:
        ast.parse(code)
    except SyntaxError:
        return ""
    return code


def names_used(code: str, package: str) -> set[str]:
    """Dotted names of package objects that ``code`` refers to (``pkg.mod.func``).

    Understands ``from pkg import mod [as m]`` then ``m.func``, ``import pkg.mod [as m]``
    then ``m.func`` (or ``pkg.mod.func``), and ``from pkg.mod import func [as f]`` then
    ``f``. A name is used when it is referred to (called, or passed as a value).
    """
    try:
        tree = ast.parse(strip_magics(code))
    except SyntaxError:
        return set()
    modules: dict[str, str] = {}  # local name -> dotted module
    objects: dict[str, str] = {}  # local name -> dotted object
    bound_package = False
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == package:
                for alias in node.names:
                    modules[alias.asname or alias.name] = f"{package}.{alias.name}"
            elif node.module.startswith(package + "."):
                for alias in node.names:
                    objects[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(package + ".") and alias.asname:
                    modules[alias.asname] = alias.name
                elif (
                    alias.name == package or alias.name.startswith(package + ".")
                ) and not alias.asname:
                    bound_package = True  # ``import pkg.mod`` binds ``pkg``
    used: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            parts = []
            inner: ast.AST = node
            while isinstance(inner, ast.Attribute):
                parts.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name):
                parts.append(inner.id)
                parts.reverse()  # e.g. ["softmax", "stable_softmax"] or ["numscale", "softmax", "f"]
                head = parts[0]
                if head in modules and len(parts) >= 2:
                    used.add(f"{modules[head]}.{parts[1]}")
                elif head == package and bound_package and len(parts) >= 3:
                    used.add(".".join(parts[:3]))
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in objects
        ):
            used.add(objects[node.id])
    return used


def shown_objects(text: str, package: str) -> set[str]:
    """Dotted names of the package objects a page shows with ``literalinclude :pyobject:``."""
    shown = set()
    for match in _INCLUDE.finditer(text):
        path, body = match.group(2), match.group(3)
        pyobject = re.search(r"^:pyobject:\s*(\S+)", body, re.M)
        parts = Path(path).with_suffix("").parts
        if pyobject and package in parts:
            module = ".".join(parts[parts.index(package) :])
            shown.add(f"{module}.{pyobject.group(1)}")
    return shown


def chapter_uses(
    pages: dict[str, str], package: str
) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """From {docname: MyST text}: {object: docnames using it}, {object: docnames showing it}."""
    used: dict[str, set[str]] = {}
    shown: dict[str, set[str]] = {}
    for docname, text in pages.items():
        code = "\n".join(
            cell_code(match.group(2)) for match in _CODE_CELL.finditer(text)
        )
        for name in names_used(code, package):
            used.setdefault(name, set()).add(docname)
        for name in shown_objects(text, package):
            shown.setdefault(name, set()).add(docname)
    return (
        {k: sorted(v) for k, v in used.items()},
        {k: sorted(v) for k, v in shown.items()},
    )


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
        self.env.note_dependency(__file__)  # a new rule here re-reads the page
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
    """:func:`chapter_uses` of the book's pages (``numscale_api_pages``) other than
    ``docname`` (the reference page itself)."""
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


def refresh_viewcode_sources(app: Sphinx, env, added, changed, removed) -> list[str]:
    """``env-get-outdated``: give ``sphinx.ext.viewcode`` the current source of every
    package module whose [source] page is older than its file.

    viewcode writes a module's [source] page from the source it stored when it read the
    reference page, and writes it again when the module's file is newer than the page.
    After an edit that leaves the reference page as it is (comments, blank lines: it is
    not re-read), the stored source would be the old one: it is replaced here, with the
    new line numbers of each object, so that only that [source] page is written again,
    with the new text (by Sphinx, or by :func:`write_refreshed_sources` when Sphinx
    writes nothing). Re-reads nothing (returns no document).
    """
    from sphinx.ext import viewcode

    if not viewcode.is_supported_builder(app.builder):
        return []
    modules = getattr(env, "_viewcode_modules", {})
    package = app.config.numscale_package
    for modname, entry in list(modules.items()):
        if entry is False or not (
            modname == package or modname.startswith(package + ".")
        ):
            continue
        filename = viewcode.get_module_filename(app, modname)
        if filename is None or not viewcode.should_generate_module_page(app, modname):
            continue
        code, _, used, refname = entry
        try:
            analyzer = ModuleAnalyzer.for_file(filename, modname)
            if analyzer.code != code:
                analyzer.find_tags()
                modules[modname] = (analyzer.code, analyzer.tags, used, refname)
        except Exception:  # noqa: BLE001 - unreadable now: the reference page re-reads it
            continue
        app._numscale_refreshed = True  # type: ignore[attr-defined]
    return []


def note_collected(app: Sphinx) -> list:
    """``html-collect-pages``: Sphinx is writing the extensions' pages (viewcode's among
    them) itself this build."""
    app._numscale_collected = True  # type: ignore[attr-defined]
    return []


def write_refreshed_sources(app: Sphinx, exception: Exception | None) -> None:
    """``build-finished``: write the [source] pages :func:`refresh_viewcode_sources`
    refreshed when Sphinx did not (with no document to write, it stops before writing
    any page); viewcode writes those whose module file is newer than the page."""
    if (
        exception is not None
        or not getattr(app, "_numscale_refreshed", False)
        or getattr(app, "_numscale_collected", False)
    ):
        return
    from sphinx.ext import viewcode

    builder = app.builder
    if not viewcode.is_supported_builder(builder):
        return
    if not hasattr(builder, "globalcontext"):
        builder.prepare_writing(set())
    for pagename, context, template in viewcode.collect_pages(app):
        builder.handle_page(pagename, context, template)


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


def purge_api_doc(app: Sphinx, env, docname: str) -> None:
    _api_docs(env).pop(docname, None)
    _includes(env).pop(docname, None)


def merge_api_docs(app: Sphinx, env, docnames, other) -> None:
    _api_docs(env).update({d: v for d, v in _api_docs(other).items() if d in docnames})
    _includes(env).update({d: v for d, v in _includes(other).items() if d in docnames})
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


def _patch_viewcode_module_filename() -> None:
    """Let ``sphinx.ext.viewcode`` find the package's module files without importing them.

    To decide whether a ``_modules/<module>.html`` page is stale, viewcode asks for the
    module's file, and Sphinx imports the module to find it: every build imported every
    helper (torch among them, seconds each time) even when the reference was not re-read.
    For the package's own modules the file is known (``numscale_src_dir``, from which
    :func:`_add_src_to_path` makes them import), so it is found without importing; any
    other module, and a name with no file there, goes to Sphinx as before.
    """
    from sphinx.ext import viewcode

    original = viewcode.get_module_filename
    if getattr(original, "numscale", False):
        return

    def get_module_filename(app: Sphinx, modname: str) -> str | None:
        package = app.config.numscale_package
        if (
            modname == package or modname.startswith(package + ".")
        ) and not app.emit_firstresult("viewcode-find-source", modname):
            src_dir = Path(app.confdir, app.config.numscale_src_dir).resolve()
            found = module_file(modname, src_dir)
            if found is not None:
                return str(found)
        return original(app, modname)

    get_module_filename.numscale = True  # type: ignore[attr-defined]
    viewcode.get_module_filename = get_module_filename


def setup(app: Sphinx) -> dict[str, Any]:
    add_package_config(app)
    app.add_config_value("numscale_api_pages", "book/*.md", "env")
    app.setup_extension("sphinx.ext.autodoc")
    app.setup_extension("sphinx.ext.viewcode")
    _patch_viewcode_module_filename()
    app.connect("config-inited", _add_src_to_path)
    app.connect("warn-missing-reference", external_reference)
    app.connect("autodoc-process-docstring", escape_bars)
    app.connect("env-get-outdated", reread_reference)
    app.connect("env-get-outdated", reread_changed_listings)
    app.connect("env-get-outdated", refresh_viewcode_sources)
    app.connect("doctree-read", drop_module_dependencies, priority=900)
    app.connect("html-collect-pages", note_collected)
    app.connect("build-finished", write_refreshed_sources)
    app.add_directive("literalinclude", LiteralIncludeListing, override=True)
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
