"""The executor joins a cell's stream pieces exactly, so how the kernel happened to cut
printed text (timing) no longer reaches the page (``_ext/numscale_execute.merge_streams``)."""

from __future__ import annotations

import copy

import pytest
from myst_nb.core.utils import coalesce_streams
from nbformat import NotebookNode

from conftest import load_extension

numscale_execute = load_extension("numscale_execute")

TEXT = "block    1: max = 51.0 eps\nblock   64: max = 4.5 eps\n"


def _pieces(cut: int) -> list[NotebookNode]:
    """TEXT printed as two stream messages, cut at character ``cut``, then a figure."""
    return [
        NotebookNode(output_type="stream", name="stdout", text=TEXT[:cut]),
        NotebookNode(output_type="stream", name="stdout", text=TEXT[cut:]),
        NotebookNode(
            output_type="display_data", data={"text/plain": "fig"}, metadata={}
        ),
    ]


def test_myst_nb_alone_renders_a_cut_before_a_newline_as_a_blank_line():
    """The failure this guards against (seen as two builds differing in one page)."""
    newline = TEXT.index("\n")
    before, after = coalesce_streams(_pieces(newline)), coalesce_streams(_pieces(5))
    assert before[0]["text"] != after[0]["text"]
    assert "\n\n" in before[0]["text"]


@pytest.mark.parametrize("cut", [1, 5, TEXT.index("\n"), TEXT.index("\n") + 1, 40])
def test_merged_pieces_render_the_same_wherever_the_cut(cut):
    merged = numscale_execute.merge_streams(_pieces(cut))
    assert [o["output_type"] for o in merged] == ["stream", "display_data"]
    assert merged[0]["text"] == TEXT  # exactly what was printed
    rendered = coalesce_streams(copy.deepcopy(merged))
    assert rendered[0]["text"] == TEXT


def test_only_consecutive_pieces_of_one_stream_are_joined():
    outputs = [
        NotebookNode(output_type="stream", name="stdout", text="a\n"),
        NotebookNode(output_type="stream", name="stderr", text="w\n"),
        NotebookNode(output_type="stream", name="stdout", text="b\n"),
        NotebookNode(output_type="display_data", data={}, metadata={}),
        NotebookNode(output_type="stream", name="stdout", text="c\n"),
        NotebookNode(output_type="stream", name="stdout", text="d\n"),
    ]
    merged = numscale_execute.merge_streams(outputs)
    assert [(o["output_type"], o.get("text")) for o in merged] == [
        ("stream", "a\n"),
        ("stream", "w\n"),
        ("stream", "b\n"),
        ("display_data", None),
        ("stream", "c\nd\n"),
    ]
