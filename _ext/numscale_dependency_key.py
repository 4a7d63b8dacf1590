"""A page's *dependency key*: what its outputs depend on, hashed (``numscale_execute``
re-executes a page when its key changes).

The key covers the page's code cells, the code of every module of the helper package
it imports (directly or through other modules, found with ``ast``; keyed on the
module's syntax tree, so an edit of comments or blank lines changes nothing), the values
of environment variables those modules read (e.g. ``NUMSCALE_GPT2``, with the size and
mtime of a local path it names), and the requirements in ``requirements.txt``
(:func:`dependency_key`). What the key needs of each module file is kept between builds,
keyed on the file's content (:func:`module_facts`, :class:`UsedStore`).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from numscale_package_source import module_file, strip_magics

ENV_VAR_PATTERN = re.compile(
    r"""(?:os\.environ\.get|os\.getenv|os\.environ\[)\(?\s*["']([A-Z0-9_]+)["']"""
)
KEY_VERSION = "3"


# --------------------------------------------------------------------------- imports


def imported_modules(
    code: str, package: str, *, current_package: str | None = None
) -> set[str]:
    """Names of ``package`` modules that ``code`` imports (``package.sub`` form).

    ``current_package`` is the dotted package holding ``code`` (``a.b`` for both
    ``a/b/c.py`` and ``a/b/__init__.py``), to resolve relative imports. ``from package import name`` counts ``package.name`` (kept only if such a
    module exists; the caller filters). Unparsable code yields an empty set.
    """
    return set(_imported_modules(code, package, current_package))


@functools.cache
def _imported_modules(
    code: str, package: str, current_package: str | None
) -> frozenset[str]:
    """:func:`imported_modules`, memoized: every page's key walks the same modules, and
    parsing each once per build instead of once per page is most of the key's cost."""
    try:
        tree = ast.parse(strip_magics(code))
    except SyntaxError:
        return frozenset()
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == package or alias.name.startswith(package + "."):
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level and current_package:
                parts = current_package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base == package or base.startswith(package + "."):
                found.add(base)
                for alias in node.names:
                    found.add(f"{base}.{alias.name}")
    return frozenset(found)


@functools.cache
def module_path(name: str, src_dir: Path) -> Path | None:
    """File of dotted module ``name`` under ``src_dir`` (module or package), or None
    (:func:`numscale_package_source.module_file`). Memoized for one build:
    :func:`forget_file_state` clears it when a build starts."""
    return module_file(name, src_dir)


def read_source(path: Path) -> str:
    """Text of a module file, read once per build however many pages import it (keyed
    on the file's size and modification time, so an edited file is read again)."""
    stat = path.stat()
    return _read_source(str(path), stat.st_mtime_ns, stat.st_size)


@functools.cache
def _read_source(path: str, mtime_ns: int, size: int) -> str:
    return Path(path).read_text(encoding="utf-8")


def module_facts(
    path: Path, package: str, holder: str, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What a page's key needs of one module file: ``code`` (digest of
    :func:`code_fingerprint`), ``imports`` (:func:`imported_modules`, relative imports
    resolved from the dotted package ``holder``) and ``env`` (:func:`environment_names`).

    Parsing every module on every build was most of a no-op build's key time: the facts
    are kept in ``store`` (saved between builds by
    :func:`numscale_execute.execute_outdated`), keyed on the file's content, so an
    unchanged file is not parsed again.
    """
    source = read_source(path)
    content = hashlib.sha256(source.encode()).hexdigest()
    entry_key = f"{package}:{holder}:{content}"
    if store is not None and entry_key in store:
        return store[entry_key]
    facts = {
        "code": hashlib.sha256(code_fingerprint(source).encode()).hexdigest(),
        "imports": sorted(imported_modules(source, package, current_package=holder)),
        "env": sorted(environment_names(source, package)),
    }
    if store is not None:
        store[entry_key] = facts
    return facts


def _holder(name: str, path: Path) -> str:
    """The dotted package holding module ``name`` (itself for a package's ``__init__``)."""
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def module_closure(
    roots: set[str], src_dir: Path, package: str, store: dict[str, Any] | None = None
) -> dict[str, Path]:
    """All package modules reached from ``roots``, with every parent ``__init__``."""
    seen: dict[str, Path] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for i in range(
            1, len(parts) + 1
        ):  # importing a.b.c runs a/__init__ and a/b/__init__
            parent = ".".join(parts[:i])
            path = module_path(parent, src_dir)
            if path is None or parent in seen:
                continue
            seen[parent] = path
            todo.extend(
                module_facts(path, package, _holder(parent, path), store)["imports"]
            )
    return seen


# ------------------------------------------------------------------ dependency key


@functools.cache
def code_fingerprint(source: str) -> str:
    """What Python runs of a module: its syntax tree, without comments, blank lines or
    layout (``ast.dump`` leaves out line numbers). Unparsable source is kept as text."""
    try:
        return ast.dump(ast.parse(source))
    except SyntaxError:
        return source


def requirements_fingerprint(text: str) -> str:
    """The requirement lines of a requirements file, without comments or blank lines."""
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def environment_names(source: str, package: str) -> set[str]:
    """Environment variables a module reads: literal ``os.environ``/``os.getenv`` keys,
    and string constants named like the package's variables (``NUMSCALE_GPT2`` assigned
    to ``ENV_VAR`` and read through a helper)."""
    return set(_environment_names(source, package))


@functools.cache
def _environment_names(source: str, package: str) -> frozenset[str]:
    """Environment variables a module reads: literal ``os.environ``/``os.getenv`` keys,
    and string constants named like the package's variables (``NUMSCALE_GPT2`` assigned
    to ``ENV_VAR`` and read through a helper)."""
    names = set(ENV_VAR_PATTERN.findall(source))
    own = re.compile(re.escape(package.upper()) + r"_[A-Z0-9_]+")
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return frozenset(names)
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and own.fullmatch(node.value)
        ):
            names.add(node.value)
    return frozenset(names)


def _env_fingerprint(
    modules: dict[str, Path], package: str, store: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Values of the environment variables the modules read; for a local path, its
    size and mtime (of every file directly inside it, for a directory)."""
    names: set[str] = set()
    for name, path in modules.items():
        names.update(module_facts(path, package, _holder(name, path), store)["env"])
    return {name: _env_entry(name, os.environ.get(name)) for name in sorted(names)}


@functools.cache
def _env_entry(name: str, value: str | None) -> dict[str, Any]:
    """One variable's value and, for a local path, the files it names (size, mtime).
    Memoized for one build: :func:`forget_file_state` clears it when a build starts."""
    entry: dict[str, Any] = {"value": value}
    if value:
        target = Path(value).expanduser()
        files = (
            sorted(target.iterdir())
            if target.is_dir()
            else [target]
            if target.is_file()
            else []
        )
        entry["files"] = [
            (f.name, f.stat().st_size, f.stat().st_mtime_ns)
            for f in files
            if f.is_file()
        ]
    return entry


def code_imports(code_cells: list[str], package: str) -> list[str]:
    """The package modules a page's code cells import (:func:`imported_modules`)."""
    roots: set[str] = set()
    for code in code_cells:
        roots |= imported_modules(code, package)
    return sorted(roots)


def dependency_key(
    code_cells: list[str],
    src_dir: Path,
    package: str,
    extra: str = "",
    store: dict[str, Any] | None = None,
    roots: list[str] | None = None,
) -> tuple[str, list[str]]:
    """Hash of a page's code and everything it depends on, and its module list.

    ``store``: facts of module files from earlier builds (:func:`module_facts`);
    ``roots``: :func:`code_imports` of the cells, when known already."""
    if roots is None:
        roots = code_imports(code_cells, package)
    modules = module_closure(set(roots), src_dir, package, store)
    digest = hashlib.sha256(KEY_VERSION.encode())
    for code in code_cells:
        digest.update(b"\0cell\0" + code.encode())
    for name in sorted(modules):
        path = modules[name]
        code = module_facts(path, package, _holder(name, path), store)["code"]
        digest.update(f"\0module {name}\0".encode() + code.encode())
    digest.update(
        json.dumps(_env_fingerprint(modules, package, store), sort_keys=True).encode()
    )
    digest.update(extra.encode())
    return digest.hexdigest(), sorted(modules)


def forget_file_state() -> None:
    """Forget what a build memoized of files (the package's modules, the files an
    environment variable names): they may have changed since the last build."""
    _env_entry.cache_clear()
    module_path.cache_clear()


class UsedStore(dict):
    """A store of :func:`module_facts` that remembers the entries this build used (the
    ones worth keeping for the next build)."""

    def __init__(self, entries: dict[str, Any]) -> None:
        super().__init__(entries)
        self.used: dict[str, Any] = {}

    def __contains__(self, key: object) -> bool:
        found = super().__contains__(key)
        if found:
            self.used[key] = super().__getitem__(key)  # type: ignore[index]
        return found

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.used[key] = value
