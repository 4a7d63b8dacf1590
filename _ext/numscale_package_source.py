"""The book's helper package as the extensions see it: where its source is, its code.

Its settings (``_config.yml`` → ``sphinx: config:``): ``numscale_src_dir`` (package
source root, default ``"src"``) and ``numscale_package`` (default ``"numscale"``),
declared by :func:`add_package_config` for every extension that reads them
(``numscale_execute``, ``numscale_api``, ``numscale_viewcode``). Also how a dotted module name maps to its file
(:func:`module_file`) and a code cell's text as Python (:func:`strip_magics`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: The package settings and their defaults.
PACKAGE_CONFIG = (("numscale_src_dir", "src"), ("numscale_package", "numscale"))


def add_package_config(app: Any) -> None:
    """Declare :data:`PACKAGE_CONFIG` once, whichever extension loads first."""
    for name, default in PACKAGE_CONFIG:
        if name not in app.config:
            app.add_config_value(name, default, "env")


def module_file(name: str, src_dir: Path) -> Path | None:
    """File of dotted module ``name`` under ``src_dir`` (``a/b.py``, or
    ``a/b/__init__.py`` for a package), or None."""
    candidate = src_dir.joinpath(*name.split("."))
    if candidate.with_suffix(".py").is_file():
        return candidate.with_suffix(".py")
    if (candidate / "__init__.py").is_file():
        return candidate / "__init__.py"
    return None


def strip_magics(code: str) -> str:
    """Drop IPython magics and shell escapes so ``ast`` can parse a cell."""
    return "\n".join(
        "" if line.lstrip().startswith(("%", "!")) else line
        for line in code.splitlines()
    )
