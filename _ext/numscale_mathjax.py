"""Sphinx extension: MathJax served from the built site, so the maths renders offline.

When ``node_modules/mathjax`` is there (``make`` installs it with ``npm ci``), the files
a page needs are copied into ``_static/mathjax`` of the site and pages load them from
there; otherwise pages load MathJax from Sphinx's default CDN, with one info line.

Configuration (``_config.yml`` → ``sphinx: config:``): ``mathjax_path`` set to
:data:`LOCAL_MATHJAX` asks for the local copy; ``numscale_mathjax_dir`` (MathJax ``es5``
folder to serve, default ``"node_modules/mathjax/es5"``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.errors import ExtensionError
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

#: ``mathjax_path`` of the copy this extension serves from the built site.
LOCAL_MATHJAX = "mathjax/tex-chtml.js"


def _local_mathjax(app: Sphinx) -> Path | None:
    source = Path(app.confdir) / app.config.numscale_mathjax_dir
    return source if (source / "tex-chtml.js").is_file() else None


def choose_mathjax(app: Sphinx, config) -> None:
    """``config-inited``: serve MathJax from the site when the npm package is there;
    otherwise (a reader who ran ``jupyter-book build .`` without ``npm ci``) keep Sphinx's
    default, MathJax from its CDN, so the maths still renders for a reader online."""
    if config.mathjax_path != LOCAL_MATHJAX or _local_mathjax(app) is not None:
        return
    from sphinx.ext.mathjax import MATHJAX_URL

    config.mathjax_path = MATHJAX_URL
    LOGGER.info(
        f"[numscale] {config.numscale_mathjax_dir} not found: pages load MathJax from {MATHJAX_URL} "
        "(`make book` runs `npm ci` and serves it from the site, for offline reading)"
    )


def copy_mathjax(app: Sphinx, exception: Exception | None) -> None:
    """Copy the MathJax files a page needs into ``_static/mathjax`` of the built site."""
    if (
        exception is not None
        or app.builder.format != "html"
        or app.config.mathjax_path != LOCAL_MATHJAX
    ):
        return
    import shutil

    source = _local_mathjax(app)
    if source is None:
        raise ExtensionError(
            f"MathJax not found in {app.config.numscale_mathjax_dir}: run `npm ci` (make does)"
        )
    target = Path(app.outdir) / "_static" / "mathjax"
    for relative in (
        "tex-chtml.js",
        "output/chtml/fonts/woff-v2",
        "input/tex/extensions",
        "a11y",
        "sre",
        "ui",
        "adaptors",
    ):
        src = source / relative
        dst = target / relative
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("numscale_mathjax_dir", "node_modules/mathjax/es5", "env")
    app.connect("config-inited", choose_mathjax)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
