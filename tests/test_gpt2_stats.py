"""Tests of numscale.gpt2_stats, the analysis helpers of the two GPT-2 chapters."""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402

from conftest import REFERENCE  # noqa: E402
from numscale import gpt2_stats
from numscale.models import gpt2, gpt2_model  # noqa: E402

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False, width=32)


# ---------------------------------------------------------------------- selection


def test_select_rows_by_module_name():
    names = gpt2.layernorm_module_names(3)  # 7 modules
    values = np.arange(7 * 4, dtype=np.float64).reshape(7, 4)
    picked_names, picked = gpt2_stats.select_rows(names, values, "ln_1")
    assert picked_names == ("h.0.ln_1", "h.1.ln_1", "h.2.ln_1")
    np.testing.assert_array_equal(picked, values[[0, 2, 4]])
    picked[0, 0] = -1.0  # a copy: the input is untouched
    assert values[0, 0] == 0.0
    assert gpt2_stats.select_rows(names, values, "ln_f")[0] == ("ln_f",)


def test_select_rows_bad_input():
    names = gpt2.layernorm_module_names(1)
    with pytest.raises(ValueError, match="suffix"):
        gpt2_stats.select_rows(names, np.ones((3, 2)), "ln_3")
    with pytest.raises(ValueError, match="rows"):
        gpt2_stats.select_rows(names, np.ones((4, 2)), "ln_1")
    with pytest.raises(ValueError, match="values"):
        gpt2_stats.select_rows(names, np.ones(3), "ln_1")
    with pytest.raises(TypeError, match="values"):
        gpt2_stats.select_rows(names, np.ones((3, 2), dtype=int), "ln_1")
    with pytest.raises(TypeError, match="names"):
        gpt2_stats.select_rows("h.0.ln_1", np.ones((1, 2)), "ln_1")
    with pytest.raises(TypeError, match="suffix"):
        gpt2_stats.select_rows(names, np.ones((3, 2)), 1)


def test_stack_blocks_selects_tensors_by_name():
    tensors = {f"h.{i}.attn.c_proj.bias": np.full(5, float(i)) for i in range(3)}
    tensors["h.0.mlp.c_proj.bias"] = np.full(5, 99.0)  # a different tensor, not picked
    stack = gpt2_stats.stack_blocks(tensors, "h.{}.attn.c_proj.bias", 3)
    assert stack.shape == (3, 5)
    np.testing.assert_array_equal(stack[:, 0], [0.0, 1.0, 2.0])
    with pytest.raises(KeyError, match="h.3.attn.c_proj.bias"):
        gpt2_stats.stack_blocks(tensors, "h.{}.attn.c_proj.bias", 4)
    with pytest.raises(TypeError, match="template"):
        gpt2_stats.stack_blocks(tensors, "h.0.attn.c_proj.bias", 3)
    with pytest.raises(ValueError, match="n_layer"):
        gpt2_stats.stack_blocks(tensors, "h.{}.attn.c_proj.bias", 0)
    tensors["h.1.attn.c_proj.bias"] = np.ones(4)
    with pytest.raises(ValueError, match="shape"):
        gpt2_stats.stack_blocks(tensors, "h.{}.attn.c_proj.bias", 3)
    tensors["h.1.attn.c_proj.bias"] = np.array([1.0, np.nan, 0, 0, 0])
    with pytest.raises(ValueError, match="h.1.attn.c_proj.bias"):
        gpt2_stats.stack_blocks(tensors, "h.{}.attn.c_proj.bias", 3)


# ------------------------------------------------------------------ distributions


def test_count_outside_counts_what_a_fixed_range_drops():
    values = np.array([-6.0, -5.0, 0.0, 4.99, 5.0, 7.4])
    assert (
        gpt2_stats.count_outside(values, -5.0, 5.0) == 2
    )  # the edges themselves are inside
    kept = np.histogram(values, bins=10, range=(-5.0, 5.0))[0].sum()
    assert kept + gpt2_stats.count_outside(values, -5.0, 5.0) == values.size


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 200), elements=finite))
def test_count_outside_complements_numpy_histogram(values):
    # np.histogram over [low, high] keeps exactly the values in the closed interval.
    kept = np.histogram(values, bins=7, range=(-10.0, 10.0))[0].sum()
    assert kept + gpt2_stats.count_outside(values, -10.0, 10.0) == values.size


def test_count_outside_bad_input():
    with pytest.raises(ValueError, match="low"):
        gpt2_stats.count_outside(np.ones(3), 1.0, 1.0)
    with pytest.raises(ValueError, match="values"):
        gpt2_stats.count_outside(np.array([1.0, np.inf]), 0.0, 1.0)
    with pytest.raises(ValueError, match="values"):
        gpt2_stats.count_outside(np.array([]), 0.0, 1.0)
    with pytest.raises(TypeError, match="values"):
        gpt2_stats.count_outside(np.array([1, 2]), 0.0, 1.0)
    with pytest.raises(TypeError, match="high"):
        gpt2_stats.count_outside(np.ones(2), 0.0, "1")


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.integers(1, 100), elements=finite), st.integers(1, 50))
def test_full_range_edges_drop_nothing(values, n_bins):
    edges = gpt2_stats.full_range_edges(values, n_bins)
    assert edges.size == n_bins + 1
    assert np.histogram(values, bins=edges)[0].sum() == values.size


def test_full_range_edges_of_a_constant():
    edges = gpt2_stats.full_range_edges(np.ones(10), 4)
    assert edges[0] == 0.5 and edges[-1] == 1.5
    with pytest.raises(ValueError, match="n_bins"):
        gpt2_stats.full_range_edges(np.ones(3), 0)


def test_plot_log_counts_omits_empty_bins():
    values = np.array([0.1, 0.2, 0.2, 9.9])
    edges = np.linspace(0, 10, 11)
    fig, ax = plt.subplots()
    counts = gpt2_stats.plot_log_counts(ax, values, edges)
    assert counts.tolist() == [3, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [3, 1]  # two bars, no zero-height bar
    assert ax.get_yscale() == "log"
    assert ax.get_xlim() == (0.0, 10.0)  # the binned range, not just the bars
    with pytest.raises(ValueError, match="outside"):
        gpt2_stats.plot_log_counts(ax, np.array([11.0]), edges)
    with pytest.raises(ValueError, match="edges"):
        gpt2_stats.plot_log_counts(ax, values, np.array([1.0, 0.0]))
    plt.close(fig)


# ------------------------------------------------------------------------- scales


def test_residual_init_std():
    assert gpt2_stats.residual_init_std(12) == pytest.approx(
        0.02 / math.sqrt(24), rel=1e-15
    )
    assert gpt2_stats.residual_init_std(1, std=1.0) == pytest.approx(
        1 / math.sqrt(2), rel=1e-15
    )
    with pytest.raises(ValueError, match="n_layer"):
        gpt2_stats.residual_init_std(0)
    with pytest.raises(TypeError, match="n_layer"):
        gpt2_stats.residual_init_std(12.0)
    with pytest.raises(ValueError, match="std"):
        gpt2_stats.residual_init_std(12, std=-0.02)


def test_block_stds_recover_the_initial_scale():
    rng = np.random.default_rng(0)
    sigma = gpt2_stats.residual_init_std(12)
    stack = rng.normal(0.0, sigma, size=(3, 300, 300))
    stds = gpt2_stats.block_stds(stack)
    assert stds.shape == (3,)
    # n = 90,000 Gaussian draws per block: the sample std has relative standard error
    # 1/sqrt(2n) = 0.24%; allow 5 standard errors.
    np.testing.assert_allclose(stds, sigma, rtol=5 / math.sqrt(2 * 300 * 300))
    with pytest.raises(ValueError, match="stack"):
        gpt2_stats.block_stds(np.ones(4))


def test_row_norms():
    matrix = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(
        gpt2_stats.row_norms(matrix), [5.0, 0.0, math.sqrt(2)], rtol=1e-7
    )
    with pytest.raises(ValueError, match="matrix"):
        gpt2_stats.row_norms(np.ones(3))


def test_relative_to_row_median():
    values = np.array([[1.0, 2.0, 4.0], [0.5, 0.5, 5.0]])
    np.testing.assert_allclose(
        gpt2_stats.relative_to_row_median(values), [[0.5, 1, 2], [1, 1, 10]]
    )
    with pytest.raises(ValueError, match="positive median"):
        gpt2_stats.relative_to_row_median(np.array([[-1.0, 0.0, 1.0]]))


# ----------------------------------------------------------------------- channels


def test_smallest_channels_and_ranks():
    values = np.array([[5.0, 1.0, 3.0, 1.0], [0.0, 9.0, -2.0, 4.0]])
    np.testing.assert_array_equal(
        gpt2_stats.smallest_channels(values, 2), [[1, 3], [2, 0]]
    )  # ties: lower index
    np.testing.assert_array_equal(
        gpt2_stats.channel_ranks(values), [[3, 0, 2, 1], [1, 3, 0, 2]]
    )
    with pytest.raises(ValueError, match="k"):
        gpt2_stats.smallest_channels(values, 5)
    with pytest.raises(TypeError, match="k"):
        gpt2_stats.smallest_channels(values, 1.5)


@settings(max_examples=50, deadline=None)
@given(
    arrays(
        np.float64, st.tuples(st.integers(1, 5), st.integers(1, 30)), elements=finite
    )
)
def test_ranks_invert_the_sort(values):
    ranks = gpt2_stats.channel_ranks(values)
    order = np.argsort(values, axis=1, kind="stable")
    np.testing.assert_array_equal(
        np.take_along_axis(ranks, order, axis=1),
        np.broadcast_to(np.arange(values.shape[1]), values.shape),
    )
    np.testing.assert_array_equal(
        gpt2_stats.smallest_channels(values, 1)[:, 0], np.argmin(values, axis=1)
    )


def test_recurring_channels():
    indices = np.array([[7, 3, 1], [3, 7, 2], [3, 5, 7], [3, 3, 9]])
    channels, counts = gpt2_stats.recurring_channels(indices, min_rows=2)
    assert channels.tolist() == [3, 7]  # 3 counted once in the last row
    assert counts.tolist() == [4, 3]
    channels, _ = gpt2_stats.recurring_channels(indices, min_rows=5)
    assert channels.size == 0
    with pytest.raises(TypeError, match="indices"):
        gpt2_stats.recurring_channels(indices.astype(float), 1)
    with pytest.raises(ValueError, match="min_rows"):
        gpt2_stats.recurring_channels(indices, 0)


def test_column_abs_sum():
    stack = np.array([[1.0, -2.0], [-3.0, 0.5]])
    np.testing.assert_allclose(gpt2_stats.column_abs_sum(stack), [4.0, 2.5])
    with pytest.raises(ValueError, match="stack"):
        gpt2_stats.column_abs_sum(np.ones(3))


def test_robust_outliers_find_planted_channels():
    rng = np.random.default_rng(1)
    values = rng.normal(1.0, 0.1, size=(25, 768))
    values[:, 447] = 5.0  # 40 standard deviations out
    mask = gpt2_stats.robust_outliers(values, 6.0)
    assert mask[:, 447].all()
    # A N(1, 0.1²) entry lies beyond 6σ with probability 2e-9: among 19,175 none is expected;
    # the MAD estimate of σ is within a few percent at d = 768, far from moving that.
    assert mask.sum() == 25
    assert not gpt2_stats.robust_outliers(
        np.ones((2, 5))
    ).any()  # constant rows: no outliers
    with pytest.raises(ValueError, match="threshold"):
        gpt2_stats.robust_outliers(values, 0.0)


# ---------------------------------------------------------- initialization baseline


def test_init_tensors_follow_gpt2_initialization():
    names = [
        "transformer.h.0.attn.c_proj.weight",
        "h.1.mlp.c_fc.weight",
        "wpe.weight",
        "h.2.mlp.c_proj.bias",
        "ln_f.weight",
        "h.0.ln_1.bias",
    ]
    tensors = gpt2_model.init_tensors(names, seed=0)
    assert list(tensors) == [gpt2.canonical_name(n) for n in names]
    assert tensors["h.0.attn.c_proj.weight"].shape == (768, 768)
    assert tensors["h.1.mlp.c_fc.weight"].shape == (768, 3072)
    assert tensors["wpe.weight"].shape == (1024, 768)
    assert all(t.dtype == np.float32 for t in tensors.values())
    # Sample stds from n draws have relative standard error 1/sqrt(2n); 5 of them.
    for name, sigma in [
        ("h.0.attn.c_proj.weight", 0.02 / math.sqrt(24)),
        ("h.1.mlp.c_fc.weight", 0.02),
        ("wpe.weight", 0.02),
    ]:
        n = tensors[name].size
        assert float(tensors[name].std()) == pytest.approx(
            sigma, rel=5 / math.sqrt(2 * n)
        )
    assert np.all(tensors["h.2.mlp.c_proj.bias"] == 0) and np.all(
        tensors["h.0.ln_1.bias"] == 0
    )
    assert np.all(tensors["ln_f.weight"] == 1)
    again = gpt2_model.init_tensors(names, seed=0)
    np.testing.assert_array_equal(again["wpe.weight"], tensors["wpe.weight"])  # seeded


def test_init_tensors_bad_input():
    with pytest.raises(ValueError, match="h.12"):
        gpt2_model.init_tensors(["h.12.ln_1.weight"], seed=0)
    with pytest.raises(ValueError, match="not a tensor"):
        gpt2_model.init_tensors(["h.0.attn.q_proj.weight"], seed=0)
    with pytest.raises(TypeError, match="names"):
        gpt2_model.init_tensors("wpe.weight", seed=0)
    with pytest.raises(TypeError, match="seed"):
        gpt2_model.init_tensors(["wpe.weight"], seed=None)


# ------------------------------------------------------------ read strength, labels


def test_relative_read_strength_folds_the_gain_into_the_row():
    rng = np.random.default_rng(0)
    gains = rng.uniform(0.5, 2.0, size=(2, 5))
    weights = rng.normal(size=(2, 5, 7))
    strength = gpt2_stats.relative_read_strength(gains, weights)
    folded = gains[:, :, None] * weights  # diag(γ) W, row by row
    expected = np.linalg.norm(folded, axis=2)
    expected = expected / np.median(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(strength, expected, rtol=1e-12)  # float64, same sums
    # a gain scaled by c and its row by 1/c read the same: only the product matters
    gains2, weights2 = gains.copy(), weights.copy()
    gains2[0, 3] *= 4.0
    weights2[0, 3] /= 4.0
    np.testing.assert_allclose(
        gpt2_stats.relative_read_strength(gains2, weights2), strength, rtol=1e-12
    )


def test_relative_read_strength_bad_input():
    with pytest.raises(ValueError, match="weights"):
        gpt2_stats.relative_read_strength(np.ones((2, 5)), np.ones((2, 4, 3)))
    with pytest.raises(ValueError, match="weights"):
        gpt2_stats.relative_read_strength(np.ones((2, 5)), np.ones((2, 5)))
    with pytest.raises(ValueError, match="gains"):
        gpt2_stats.relative_read_strength(np.full((2, 5), np.nan), np.ones((2, 5, 3)))
    with pytest.raises(TypeError, match="gains"):
        gpt2_stats.relative_read_strength(
            np.ones((2, 5), dtype=int), np.ones((2, 5, 3))
        )


def test_layernorm_tensors_rebuild_state_dict_names():
    ln = gpt2_model.init_layernorm_parameters(n_layer=1, n_embd=4)
    tensors = gpt2_stats.layernorm_tensors(ln.names, ln.gains, ln.biases)
    assert list(tensors) == [
        "h.0.ln_1.weight",
        "h.0.ln_1.bias",
        "h.0.ln_2.weight",
        "h.0.ln_2.bias",
        "ln_f.weight",
        "ln_f.bias",
    ]
    assert tensors["ln_f.weight"].dtype == np.float32
    np.testing.assert_array_equal(tensors["h.0.ln_2.bias"], ln.biases[1])
    # not the released model: initialization has no matching checksums
    assert gpt2_model.model_label(tensors) == gpt2_model.OTHER_LABEL
    with pytest.raises(ValueError, match="one row per name"):
        gpt2_stats.layernorm_tensors(ln.names[:2], ln.gains, ln.biases)
    with pytest.raises(TypeError, match="names"):
        gpt2_stats.layernorm_tensors("h.0.ln_1", ln.gains, ln.biases)


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_layernorm.npz").is_file(),
    reason="reference GPT-2 tensors not present",
)
def test_layernorm_tensors_of_the_reference_are_the_released_model():
    ln = gpt2.layernorm_parameters(REFERENCE)
    tensors = gpt2_stats.layernorm_tensors(ln.names, ln.gains, ln.biases)
    assert gpt2_model.model_label(tensors) == gpt2_model.RELEASED_LABEL


# ------------------------------------------------------ the chapter's glued summaries


def test_cproj_numbers_ratios_to_both_baselines() -> None:
    out = gpt2_stats.cproj_numbers(np.array([0.1, 0.05, 0.2]), 0.01, 0.02)
    assert out["cproj_std_1"] == 0.05 and out["cproj_std_argmin"] == 1
    assert out["cproj_ratio_min"] == pytest.approx(5.0)
    assert out["cproj_ratio_max"] == pytest.approx(20.0)
    assert out["cproj_openai_ratio_min"] == pytest.approx(2.5)
    assert out["cproj_openai_ratio_max"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="init_std"):
        gpt2_stats.cproj_numbers(np.ones(3), 0.0, 0.02)


def test_wpe_numbers_counts_rows_below_each_baseline() -> None:
    norms = np.array([3.0, 0.1, 0.3, 0.5, 0.2])
    out = gpt2_stats.wpe_numbers(
        norms, init_norm=0.25, openai_norm=0.4, positions=(0, 4)
    )
    assert out["wpe_norm_0"] == 3.0 and out["wpe_norm_4"] == 0.2
    assert out["wpe_below_init_count"] == 2  # 0.1 and 0.2
    assert out["wpe_below_openai_count"] == 3  # and 0.3
    assert out["wpe_norm_median"] == 0.3 and out["wpe_positions"] == 5
    with pytest.raises(ValueError, match="positions"):
        gpt2_stats.wpe_numbers(norms, 0.25, 0.4, positions=(5,))


def test_most_frequent_channels_keeps_ties_and_drops_zeros() -> None:
    counts = np.array([0, 3, 1, 3, 2, 0, 2])
    assert gpt2_stats.most_frequent_channels(counts, 2) == [1, 3]
    assert gpt2_stats.most_frequent_channels(counts, 3) == [1, 3, 4, 6]  # tie at 2
    assert gpt2_stats.most_frequent_channels(np.array([0, 0, 1]), 2) == [2]
    with pytest.raises(TypeError, match="counts"):
        gpt2_stats.most_frequent_channels(np.array([0.5, 1.0]), 1)


def test_write_read_table_picks_the_most_written_channels() -> None:
    written = np.array([1.0, 8.0, 2.0, 8.0, 4.0])  # median 4; channel 1 before 3 (tie)
    gain, row = np.arange(5) / 10, np.arange(5) / 100
    read = {p: np.arange(5) + k for k, p in enumerate(("all", "query", "key", "value"))}
    table = gpt2_stats.write_read_table(written, gain, row, read, n=3)
    assert table.channels.tolist() == [1, 3, 4]
    assert table.written_rel.tolist() == [2.0, 2.0, 1.0]
    out = table.numbers()
    assert [out[f"write_top_{k}"] for k in range(3)] == [1, 3, 4]
    assert out["write_gain_2"] == 0.4 and out["write_key_0"] == 1 + 2
    assert out["write_ratio_0"] == 2.0 and out["write_ratio_2"] == 1.0
    assert out["row_rel_min"] == 0.01 and out["row_rel_max"] == 0.04
    assert len(str(table).splitlines()) == 2 + 3  # a note, the header, three rows
    zero = gpt2_stats.write_read_table(np.zeros(5), gain, row, read, n=2)
    assert zero.written_rel.tolist() == [0.0, 0.0]  # no median to divide by
    with pytest.raises(ValueError, match="read_rel"):
        gpt2_stats.write_read_table(written, gain, row, {"all": gain}, n=2)


def test_typical_row_norms_median_over_blocks_after_the_first() -> None:
    # block 0 (ignored) makes row 0 huge; blocks 1 and 2 give row norms 3, 1, 1 and
    # 5, 1, 1 over medians 1: relative 3 and 5, median over the two blocks 4
    w = np.zeros((3, 3, 2))
    w[:, :, 0] = 1.0
    w[0, 0, 0], w[1, 0, 0], w[2, 0, 0] = 100.0, 3.0, 5.0
    assert gpt2_stats.typical_row_norms(w).tolist() == [4.0, 1.0, 1.0]


def test_row_part_numbers_band_and_parts() -> None:
    everything = np.linspace(0.5, 1.5, 101)  # percentiles 1 and 99: 0.51 and 1.49
    rows = {"all": everything, "key": everything * 2, "value": everything / 10}
    out = gpt2_stats.row_part_numbers(rows, channels=[0, 50, 100], strong=[50, 100])
    assert out["row_band_lo"] == pytest.approx(0.51)
    assert out["row_band_hi"] == pytest.approx(1.49)
    assert out["row_outside_band"] == 2  # rows 0 and 100, not the median row 50
    assert (out["key_row_min"], out["key_row_max"]) == (2.0, 3.0)
    assert out["value_row_min"] == pytest.approx(0.1)
    assert out["value_row_max"] == pytest.approx(0.15)
    with pytest.raises(ValueError, match="value"):
        gpt2_stats.row_part_numbers({"all": everything, "key": everything}, [0], [0])
