"""The book's one plotting style.

Call :func:`use_book_style` once at the top of a chapter. It sets

* SVG output for inline figures (crisp line plots; dense scatters are rasterized by
  the helpers that draw them, see :func:`strip_plot`),
* an opaque white figure background, so figures stay legible on the dark theme,
* the Okabe–Ito palette, which stays distinguishable under the common forms of colour
  blindness,
* a fixed SVG hash salt and no timestamps, so two builds write byte-identical images.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

from numscale.checks import as_float_array, rng_from

#: Okabe & Ito (2008) colour-blind-safe palette, without the yellow that vanishes on white.
OKABE_ITO: tuple[str, ...] = (
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#000000",  # black
)

#: Sequential and diverging colour maps that are perceptually uniform and CVD-safe.
SEQUENTIAL_CMAP = "viridis"
DIVERGING_CMAP = "RdBu_r"

BOOK_RC: dict[str, object] = {
    "figure.figsize": (7.0, 3.6),
    "figure.dpi": 100,
    "figure.facecolor": "white",
    "axes.facecolor": "white",
    "savefig.facecolor": "white",
    "savefig.transparent": False,
    "savefig.bbox": "tight",
    "axes.prop_cycle": mpl.cycler(color=list(OKABE_ITO)),
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 10.5,
    "legend.frameon": False,
    "image.cmap": SEQUENTIAL_CMAP,
    "svg.hashsalt": "numscale",
    "svg.fonttype": "path",
    "path.simplify": True,
}


def use_book_style(figure_format: str = "svg") -> None:
    """Apply the book's matplotlib style and inline figure format (``"svg"`` or ``"png"``)."""
    if figure_format not in {"svg", "png"}:
        raise ValueError(f"figure_format must be 'svg' or 'png', got {figure_format!r}")
    mpl.rcParams.update(BOOK_RC)
    try:  # only inside an IPython kernel
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        shell = get_ipython()
        if shell is not None:
            # Activate the inline backend first: activating it resets the figure formats.
            shell.run_line_magic("matplotlib", "inline")
            set_matplotlib_formats(figure_format, metadata={"Date": None})
    except ImportError:  # pragma: no cover - plain Python has no inline backend
        pass


def strip_plot(
    ax: plt.Axes,
    groups: Sequence[np.ndarray],
    labels: Sequence[str],
    *,
    seed: int = 0,
    jitter: float = 0.18,
    size: float = 4.0,
    alpha: float = 0.35,
) -> None:
    """Draw a jittered strip plot of several groups of values on ``ax``.

    ``groups`` is a sequence of arrays (any shape, flattened); group ``i`` is drawn at
    x = i with uniform horizontal jitter of half-width ``jitter`` drawn from a seeded
    generator. The points are rasterized (an SVG with 7,500 vector dots is heavy and
    slow); the axes, ticks and labels stay vector.
    """
    if len(groups) != len(labels):
        raise ValueError(
            f"groups and labels must have the same length, got {len(groups)} and {len(labels)}"
        )
    if len(groups) == 0:
        raise ValueError("groups must not be empty")
    rng = rng_from(seed)
    for i, (values, label) in enumerate(zip(groups, labels)):
        flat = as_float_array(values, f"groups[{i}]").ravel()
        x = i + rng.uniform(-jitter, jitter, size=flat.size)
        ax.scatter(
            x,
            flat,
            s=size,
            alpha=alpha,
            color=OKABE_ITO[i % len(OKABE_ITO)],
            linewidths=0,
            rasterized=True,
            label=label,
        )
    ax.set_xticks(range(len(labels)), labels)


def plot_head_grid(
    ax,
    values: np.ndarray,
    *,
    cmap: str = "viridis",
    fmt: str = "{:.1f}",
    norm=None,
    label: str = "",
):
    """Draw an (L, H) array as a grid of coloured cells with each value written in it.

    Rows are layers, columns heads, both numbered from 1 (layer 1 at the top); returns
    the image for a colour bar.
    """
    values = as_float_array(values, "values", ndim=2)
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    n_layers, n_heads = values.shape
    for i in range(n_layers):
        for j in range(n_heads):
            level = image.norm(values[i, j])
            colour = "white" if level < 0.55 else "black"
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_xticks(range(n_heads), [str(h + 1) for h in range(n_heads)])
    ax.set_yticks(range(n_layers), [str(layer + 1) for layer in range(n_layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.grid(False)
    if label:
        ax.set_title(label)
    return image
