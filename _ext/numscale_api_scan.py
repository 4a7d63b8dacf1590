"""What the package reference lists, and which chapters use or show it (read from the
source; ``numscale_api`` turns it into the reference page).

The reference lists, for every module of the helper package (:func:`public_modules`),
its public functions and classes (:func:`public_objects`) and constants
(:func:`public_constants`). Each entry ends with the chapters that use it, found by
scanning the code cells of the book's pages (``softmax.stable_softmax(...)`` after
``from numscale import softmax``, or a name imported with ``from numscale.softmax
import``: :func:`names_used`), and the chapters that show its source (``literalinclude``
with ``:pyobject:``: :func:`shown_objects`).
"""

from __future__ import annotations

import ast
import inspect
import pkgutil
import re
from pathlib import Path
from typing import Any

from numscale_package_source import strip_magics

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
    then ``m.func`` (or ``pkg.mod.func``), ``from pkg.mod import func [as f]`` then
    ``f``, and ``from pkg.sub import mod [as m]`` then ``m.func``. A name is used when it is referred to (called, or passed as a value).
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
                    dotted = f"{node.module}.{alias.name}"
                    objects[alias.asname or alias.name] = dotted
                    # ``from pkg.sub import mod`` binds a module when ``mod`` is one
                    # (``from numscale.models import llama``, then ``llama.f``)
                    modules[alias.asname or alias.name] = dotted
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(package + ".") and alias.asname:
                    modules[alias.asname] = alias.name
                elif (
                    alias.name == package or alias.name.startswith(package + ".")
                ) and not alias.asname:
                    bound_package = True  # ``import pkg.mod`` binds ``pkg``
    used: set[str] = set()
    module_bases: set[int] = set()
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
                    module_bases.add(id(inner))  # ``mod`` of ``mod.f``: not an object
                elif head == package and bound_package and len(parts) >= 3:
                    used.add(".".join(parts[:3]))
        elif (
            isinstance(node, ast.Name)
            and isinstance(node.ctx, ast.Load)
            and node.id in objects
            and id(node) not in module_bases  # ast.walk visits ``mod.f`` before ``mod``
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
