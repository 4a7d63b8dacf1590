"""Unit tests for numscale.plotting: the book style and the strip plot helper."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display in tests

import matplotlib as mpl  # noqa: E402
import matplotlib.colors as mcolors  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from numscale import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_style():
    """Every test starts from, and restores, matplotlib's own defaults."""
    with mpl.rc_context(mpl.rcParamsDefault):
        yield
    plt.close("all")


# ----------------------------------------------------------------------------- palette


def test_okabe_ito_palette_is_distinct_valid_hex_without_yellow():
    colours = plotting.OKABE_ITO
    assert len(colours) == 7 and len(set(colours)) == 7
    assert all(
        mcolors.is_color_like(c) and c.startswith("#") and len(c) == 7 for c in colours
    )
    assert "#F0E442" not in colours  # Okabe-Ito yellow: too faint on white


def test_colour_maps_exist():
    assert plotting.SEQUENTIAL_CMAP in mpl.colormaps
    assert plotting.DIVERGING_CMAP in mpl.colormaps


# ----------------------------------------------------------------------------- use_book_style


def test_use_book_style_sets_the_rc_params():
    plotting.use_book_style()
    assert mcolors.to_hex(mpl.rcParams["figure.facecolor"]) == "#ffffff"
    assert mcolors.to_hex(mpl.rcParams["savefig.facecolor"]) == "#ffffff"
    assert mpl.rcParams["savefig.transparent"] is False
    assert mpl.rcParams["svg.hashsalt"] == "numscale"
    assert mpl.rcParams["image.cmap"] == plotting.SEQUENTIAL_CMAP
    cycle = [
        mcolors.to_hex(c).lower()
        for c in mpl.rcParams["axes.prop_cycle"].by_key()["color"]
    ]
    assert cycle == [c.lower() for c in plotting.OKABE_ITO]


def test_use_book_style_accepts_png_outside_ipython():
    plotting.use_book_style("png")  # no kernel here: only the rc params change
    assert mpl.rcParams["svg.hashsalt"] == "numscale"


@pytest.mark.parametrize("bad", ["pdf", "SVG", ""])
def test_use_book_style_rejects_unknown_format(bad):
    with pytest.raises(ValueError, match="figure_format"):
        plotting.use_book_style(bad)


def test_svg_output_is_byte_identical_across_saves():
    plotting.use_book_style()

    def render() -> bytes:
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [1, 3, 2], label="a")
        ax.legend()
        buffer = io.BytesIO()
        fig.savefig(
            buffer, format="svg", metadata={"Date": None}
        )  # as the inline backend is set up
        plt.close(fig)
        return buffer.getvalue()

    first, second = render(), render()
    assert (
        first == second
    )  # fixed svg.hashsalt: ids in the SVG do not change between builds
    assert b"fill: #ffffff" in first  # opaque white figure background


# ----------------------------------------------------------------------------- strip_plot


def test_strip_plot_draws_one_rasterized_group_per_array():
    rng = np.random.default_rng(0)
    groups = [
        rng.standard_normal((5, 4)),
        rng.standard_normal(7),
        rng.standard_normal((2, 3)),
    ]
    fig, ax = plt.subplots()
    plotting.strip_plot(ax, groups, ["a", "b", "c"], seed=1, jitter=0.2)
    collections = ax.collections
    assert len(collections) == 3
    for i, (collection, values) in enumerate(zip(collections, groups)):
        offsets = collection.get_offsets()
        assert offsets.shape == (values.size, 2)
        np.testing.assert_array_equal(
            offsets[:, 1], values.ravel()
        )  # y: the values, flattened
        assert np.all(np.abs(offsets[:, 0] - i) <= 0.2)  # x: group index ± jitter
        assert collection.get_rasterized()
        assert (
            mcolors.to_hex(collection.get_facecolor()[0]).lower()
            == plotting.OKABE_ITO[i].lower()
        )
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert [c.get_label() for c in collections] == ["a", "b", "c"]


def test_strip_plot_jitter_is_seeded():
    values = [np.linspace(-1.0, 1.0, 50)]

    def offsets(seed):
        fig, ax = plt.subplots()
        plotting.strip_plot(ax, values, ["x"], seed=seed)
        out = ax.collections[0].get_offsets().copy()
        plt.close(fig)
        return out

    np.testing.assert_array_equal(offsets(3), offsets(3))
    assert not np.array_equal(offsets(3), offsets(4))


def test_strip_plot_mismatched_lengths():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="groups and labels must have the same length"):
        plotting.strip_plot(ax, [np.zeros(3)], ["a", "b"])


def test_strip_plot_empty_groups():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match="groups must not be empty"):
        plotting.strip_plot(ax, [], [])


def test_strip_plot_names_the_bad_group():
    fig, ax = plt.subplots()
    with pytest.raises(ValueError, match=r"groups\[1\] must be finite"):
        plotting.strip_plot(ax, [np.zeros(3), np.array([1.0, np.nan])], ["a", "b"])
    with pytest.raises(ValueError, match=r"groups\[0\] must not be empty"):
        plotting.strip_plot(ax, [np.zeros(0)], ["a"])
    with pytest.raises(
        TypeError, match=r"groups\[0\] must hold floating-point numbers"
    ):
        plotting.strip_plot(ax, [np.arange(3)], ["a"])


def test_strip_plot_rejects_a_bad_seed():
    fig, ax = plt.subplots()
    with pytest.raises(TypeError, match="seed"):
        plotting.strip_plot(ax, [np.zeros(3)], ["a"], seed=None)
