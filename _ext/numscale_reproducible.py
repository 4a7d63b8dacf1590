"""Sphinx extension: the same source gives the same site, in every build.

* Every page's "last updated" date is its source's last commit (its file's mtime when it
  has uncommitted edits, or outside git), which is both true and reproducible; Sphinx's
  default is the build's date (:func:`page_date`).
* The page sources myst-nb copies as ``_sources/**/*.ipynb`` get cell ids derived from
  position and content instead of random ones (:func:`stable_source_notebooks`).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx

# --------------------------------------------------------------------------- dates


def source_dates(root: Path) -> dict[str, float]:
    """Time (Unix seconds) each file under ``root`` last changed, by relative POSIX path:
    its last commit, or its modification time when it has uncommitted changes. Empty
    outside git (callers fall back to modification times)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True,
                text=True,
                timeout=60,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    log = git(
        "log", "--format=@%ct", "--name-only", "--no-renames", "--relative", "--", "."
    )
    if log is None:
        return {}
    dates: dict[str, float] = {}
    current = 0.0
    for line in log.splitlines():
        if line.startswith("@"):
            current = float(line[1:])
        elif line and line not in dates:  # newest commit first
            dates[line] = current
    prefix = (
        git("rev-parse", "--show-prefix") or ""
    ).strip()  # porcelain paths start at the top
    status = git("status", "--porcelain", "--untracked-files=all", "--", ".") or ""
    for line in status.splitlines():
        name = line[3:].split(" -> ")[-1].strip().strip('"').removeprefix(prefix)
        if (root / name).is_file():
            dates[name] = (root / name).stat().st_mtime
    return dates


def set_page_dates(app: Sphinx) -> None:
    """``builder-inited``: look up every file's date once per build."""
    app.numscale_dates = source_dates(Path(app.srcdir))  # type: ignore[attr-defined]


def page_date(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """``html-page-context``: "Last updated" is the date the page's source last changed
    (Sphinx's default is the build's date, or SOURCE_DATE_EPOCH for every page)."""
    if context.get("last_updated") is None or pagename not in app.env.all_docs:
        return
    from sphinx.util.i18n import format_date

    path = Path(app.env.doc2path(pagename))
    relative = (
        path.relative_to(app.srcdir).as_posix()
        if path.is_relative_to(app.srcdir)
        else ""
    )
    dates: dict[str, float] = getattr(app, "numscale_dates", {})
    when = dates.get(relative)
    if when is None:
        if not path.is_file():
            return
        when = path.stat().st_mtime
    fmt = app.config.html_last_updated_fmt or "%b %d, %Y"
    context["last_updated"] = format_date(
        fmt,
        date=datetime.fromtimestamp(when, tz=UTC),
        language=app.config.language,
    )


def stable_source_notebooks(app: Sphinx, exception: Exception | None) -> None:
    """Give the copied ``_sources/**/*.ipynb`` deterministic cell ids.

    myst-nb writes each text notebook's source as ``.ipynb``; nbformat gives every cell a
    random id, so two builds would differ. The id becomes a hash of position and source.
    """
    if exception is not None or app.builder.format != "html":
        return
    for path in sorted((Path(app.outdir) / "_sources").rglob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        for index, cell in enumerate(notebook.get("cells", [])):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            cell["id"] = hashlib.sha1(f"{index}:{text}".encode()).hexdigest()[:8]
        path.write_text(
            json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n",
            encoding="utf-8",
        )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("builder-inited", set_page_dates)
    app.connect("html-page-context", page_date)
    app.connect("build-finished", stable_source_notebooks)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
