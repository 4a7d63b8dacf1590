"""Claims of book/gpt2_scales.md on GPT-2's real tensors (skipped without them)."""

from __future__ import annotations

import pytest

from conftest import REFERENCE, needs_gpt2_reference

pytestmark = [pytest.mark.build, needs_gpt2_reference]
PAGE = "book/gpt2_scales"


@pytest.fixture(scope="module")
def values(values):
    assert values["scales_released"] == 1, (
        "the tensors are not the released GPT-2 small"
    )
    return values


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
    assert values["wpe_below_openai_count"] == 1  # only that row
    assert values["wpe_norm_median"] > 5 * values["wpe_init_norm"]


def test_where_the_blocks_write(values):
    top = [values[f"scales_write_top_{k}"] for k in range(7)]
    assert set(top[:3]) == {447, 373, 481} and set(top[3:]) == {64, 480, 266, 87}
    # the rows reading them are not ordinary: the 1–99% band of all rows is narrow
    # around 1 and the seven's range reaches outside it on both sides
    lo, hi = values["scales_row_band_lo"], values["scales_row_band_hi"]
    assert lo < 1 < hi
    assert values["scales_row_rel_min"] < lo and values["scales_row_rel_max"] > hi
    # W, not the gain, splits the parts: key parts long, value parts short
    assert values["scales_key_row_min"] > 1 > 0.5 > values["scales_value_row_max"]
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


# ---------------------------------------------------------------- independent recomputation
# The quoted numbers recomputed from the reference .npz files with NumPy directly (not
# through numscale.gpt2's loader or gpt2_stats). Float32 tensors, float64 arithmetic:
# REL = 1e-4 covers summation order and fails a value 1.5 times too large or too small.
REL = 1e-4


@pytest.fixture(scope="module")
def reference():
    import numpy as np

    ln = np.load(REFERENCE / "gpt2_small_layernorm.npz")
    part = np.load(REFERENCE / "gpt2_small_partial.npz")
    att = np.load(REFERENCE / "gpt2_small_attention.npz")
    L = 12
    t = "transformer."
    r: dict[str, float] = {}
    cproj = np.stack(
        [part[f"{t}h.{i}.attn.c_proj.weight"].astype(np.float64) for i in range(L)]
    )
    stds = cproj.reshape(L, -1).std(axis=1)
    init, openai = 0.02 / np.sqrt(2 * L), 0.02
    r.update(
        cproj_std_0=stds[0],
        cproj_std_5=stds[5],
        cproj_std_11=stds[11],
        cproj_ratio_min=stds.min() / init,
        cproj_ratio_max=stds.max() / init,
        cproj_openai_ratio_min=stds.min() / openai,
        cproj_openai_ratio_max=stds.max() / openai,
        cproj_std_argmin=int(np.argmin(stds)),
    )
    wpe = part[f"{t}wpe.weight"].astype(np.float64)
    norms = np.sqrt((wpe**2).sum(axis=1))
    r.update({f"wpe_norm_{p}": norms[p] for p in (0, 1, 2, 100, 1023)})
    r.update(
        wpe_norm_median=np.median(norms),
        wpe_positions=norms.size,
        wpe_below_init_count=int((norms < 0.02 * np.sqrt(768)).sum()),
        wpe_below_openai_count=int((norms < 0.01 * np.sqrt(768)).sum()),
    )
    names = [f"h.{i}.ln_{k}" for i in range(L) for k in (1, 2)] + ["ln_f"]
    gains = np.stack([ln[f"{t}{n}.weight"] for n in names]).astype(np.float64)
    biases = np.stack([ln[f"{t}{n}.bias"] for n in names]).astype(np.float64)

    def outliers(v):
        med = np.median(v, axis=1, keepdims=True)
        mad = np.median(np.abs(v - med), axis=1, keepdims=True)
        return np.abs(v - med) > 6.0 * 1.4826 * mad

    per_channel = (outliers(gains) | outliers(biases)).sum(axis=0)
    r.update(
        scales_ln_modules=len(names),
        scales_ln_width=gains.shape[1],
        scales_ln_map_n_most=int((per_channel >= 20).sum()),
    )
    written = sum(
        np.abs(part[f"{t}h.{i}.{b}.c_proj.bias"].astype(np.float64))
        for i in range(L)
        for b in ("attn", "mlp")
    )
    top = np.argsort(-written, kind="stable")[:7]
    ln1 = gains[0::2][:L]  # (12, 768) ln_1 gains
    c_attn = np.stack(
        [att[f"{t}h.{i}.attn.c_attn.weight"].astype(np.float64) for i in range(L)]
    )  # (12, 768, 2304)

    def relative(a):  # to each block's median
        return a / np.median(a, axis=1, keepdims=True)

    def read(cols):  # median over blocks 1–11
        strength = np.abs(ln1) * np.sqrt((c_attn[:, :, cols] ** 2).sum(axis=2))
        return np.median(relative(strength)[1:], axis=0)

    d = 768
    parts = {
        "read": slice(None),
        "query": slice(0, d),
        "key": slice(d, 2 * d),
        "value": slice(2 * d, 3 * d),
    }
    strengths = {k: read(cols) for k, cols in parts.items()}

    def rows(cols):  # ‖row (part)‖ relative to the block's median, median over 1–11
        return np.median(
            relative(np.sqrt((c_attn[:, :, cols] ** 2).sum(axis=2)))[1:], 0
        )

    row_rel = rows(parts["read"])
    key_rows, value_rows = rows(parts["key"]), rows(parts["value"])
    band = np.percentile(row_rel, [1, 99])
    gain_rel = np.median(relative(np.clip(ln1, 1e-3, None))[1:], axis=0)
    r.update(
        scales_write_ratio_0=written[top[0]] / np.median(written),
        scales_write_ratio_6=written[top[6]] / np.median(written),
        scales_row_rel_min=row_rel[top].min(),
        scales_row_rel_max=row_rel[top].max(),
        scales_key_row_min=key_rows[top[3:]].min(),
        scales_key_row_max=key_rows[top[3:]].max(),
        scales_value_row_min=value_rows[top[3:]].min(),
        scales_value_row_max=value_rows[top[3:]].max(),
        scales_row_band_lo=band[0],
        scales_row_band_hi=band[1],
        scales_row_outside_band=(
            (row_rel[top] < band[0]) | (row_rel[top] > band[1])
        ).sum(),
    )
    for k, c in enumerate(top):
        r[f"scales_write_top_{k}"] = int(c)
        r[f"scales_write_gain_{k}"] = gain_rel[c]
        for part_name, s in strengths.items():
            r[f"scales_write_{part_name}_{k}"] = s[c]
    return {k: float(v) for k, v in r.items()}


def test_quoted_numbers_match_the_tensors(values, reference):
    wrong = {
        name: (values[name], expected)
        for name, expected in reference.items()
        if values[name] != pytest.approx(expected, rel=REL, abs=0)
    }
    assert not wrong, wrong


def test_shapes_are_gpt2_small(values):
    # GPT-2 small: 12 blocks of two LayerNorms plus ln_f, width 768, 1,024 positions
    assert values["scales_ln_modules"] == 2 * 12 + 1
    assert values["scales_ln_width"] == 768
    assert values["wpe_positions"] == 1024


def test_outlier_channels_beyond_the_listed_ones(values):
    # the prose: more channels are outliers in most modules than the list shows
    assert values["scales_most_modules__is_input"] == 1
    assert values["scales_ln_map_n_most"] > values["scales_ln_map_n_listed"]
