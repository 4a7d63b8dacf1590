"""Claims of book/gpt2_scales.md on GPT-2's real tensors (skipped without them)."""

from __future__ import annotations

import pytest
from conftest import REFERENCE
from test_build import built_without_data, glued_values

pytestmark = [
    pytest.mark.build,
    pytest.mark.skipif(not (REFERENCE / "gpt2_small_attention.npz").is_file(),
                       reason="reference GPT-2 tensors not present"),
]
PAGE = "book/gpt2_scales"


@pytest.fixture(scope="module")
def values(built_site):
    if built_without_data(built_site, PAGE):  # no GPT-2 tensors: tests/test_data_pages.py
        pytest.skip("the page was built without GPT-2's tensors")
    v = glued_values(built_site, PAGE)
    assert v["scales_trained"] == 1 and v["scales_released"] == 1, "page built without data"
    return v


def test_output_projections_far_above_both_initializations(values):
    # exact constants of the two readings
    assert values["cproj_init_std"] == pytest.approx(0.02 / 24**0.5, rel=1e-12)
    assert values["cproj_openai_std"] == 0.02
    # the prose: every block far above the reconstruction and above OpenAI's 0.02
    assert values["cproj_ratio_min"] > 10
    assert values["cproj_openai_ratio_min"] > 2


def test_last_position_embedding_below_both_initial_norms(values):
    # the hypothesis in the prose rests on wpe[1023] being shorter than either init gives
    assert values["wpe_init_norm"] == pytest.approx(0.02 * 768**0.5, rel=1e-12)
    assert values["wpe_openai_norm"] == pytest.approx(0.01 * 768**0.5, rel=1e-12)
    assert values["wpe_norm_1023"] < values["wpe_openai_norm"] < values["wpe_init_norm"]
    assert values["wpe_below_openai_count"] == 1     # only that row
    assert values["wpe_norm_median"] > 5 * values["wpe_init_norm"]


def test_where_the_blocks_write(values):
    top = [values[f"scales_write_top_{k}"] for k in range(7)]
    assert set(top[:3]) == {447, 373, 481} and set(top[3:]) == {64, 480, 266, 87}
    # rows of c_attn that read them are ordinary (prose: 0.8-1.2 × the median row)
    assert 0.75 < values["scales_row_rel_min"] and values["scales_row_rel_max"] < 1.25
    # the three most written are read weakly by every part of the projection
    for k in range(3):
        for part in ("read", "query", "key", "value"):
            assert values[f"scales_write_{part}_{k}"] < 0.5
    # the next four: gains about twice the median, read strongly by keys and queries,
    # weakly by values
    for k in range(3, 7):
        assert 1.8 < values[f"scales_write_gain_{k}"] < 2.5
        assert values[f"scales_write_key_{k}"] > 3
        assert values[f"scales_write_query_{k}"] > 1.5
        assert values[f"scales_write_value_{k}"] < 0.5
