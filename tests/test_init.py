"""Tests for numscale.init: initialization rules, deep ReLU moments, GPT-2's residual scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from numscale import dotprod, init

# ---------------------------------------------------------------- init_std


def test_init_std_formulas():
    # exact formulas; float64 rounding only (1e-15 relative)
    assert init.init_std("lecun", 512) == pytest.approx(1 / np.sqrt(512), rel=1e-15)
    assert init.init_std("he", 512) == pytest.approx(np.sqrt(2 / 512), rel=1e-15)
    assert init.init_std("xavier", 768, 3072) == pytest.approx(
        np.sqrt(2 / (768 + 3072)), rel=1e-15
    )


@given(st.integers(1, 10**6), st.integers(1, 10**6))
def test_init_std_relations(fan_in, fan_out):
    # He doubles LeCun's variance; Xavier is LeCun's for square layers and lies between
    # the forward (1/fan_in) and backward (1/fan_out) variances. Tolerance: a few ulps.
    lecun, he = init.init_std("lecun", fan_in), init.init_std("he", fan_in)
    assert he**2 == pytest.approx(2 * lecun**2, rel=1e-12)
    assert init.init_std("xavier", fan_in, fan_in) == pytest.approx(lecun, rel=1e-12)
    xav2 = init.init_std("xavier", fan_in, fan_out) ** 2
    lo, hi = sorted([1 / fan_in, 1 / fan_out])
    assert lo * (1 - 1e-12) <= xav2 <= hi * (1 + 1e-12)


def test_init_variance_core_is_the_three_rules():
    # the function shown in the chapter: exact formulas (float64 rounding only)
    assert init._init_variance("lecun", 512, None) == 1 / 512
    assert init._init_variance("he", 512, None) == 2 / 512
    assert init._init_variance("xavier", 768, 3072) == 2 / (768 + 3072)


def test_init_std_bad_input():
    with pytest.raises(ValueError, match="scheme"):
        init.init_std("orthogonal", 4)
    with pytest.raises(ValueError, match="fan_out"):
        init.init_std("xavier", 4)
    with pytest.raises(ValueError, match="fan_in"):
        init.init_std("he", 0)
    with pytest.raises(TypeError, match="fan_in"):
        init.init_std("he", 4.0)


def test_relu_layer_gain():
    # ReLU keeps half the second moment: He's gain is 1, LeCun's 1/2 (exact up to rounding)
    assert init.relu_layer_gain("he", 512) == pytest.approx(1.0, rel=1e-14)
    assert init.relu_layer_gain("lecun", 512) == pytest.approx(0.5, rel=1e-14)


# ------------------------------------------------------- deep ReLU moments


@pytest.fixture(scope="module")
def moments():
    # the chapter's configuration: width 512, 50 layers, 256 inputs, seed 0
    return {
        s: init.relu_mlp_second_moments(512, 50, s, 256, seed=0) for s in init.SCHEMES
    }


def test_relu_moments_shape_and_input(moments):
    for m in moments.values():
        assert m.shape == (51,)
    # input is N(0,1): mean of 512·256 squares has relative SE √(2/131072) = 0.4%; 5 SE
    assert moments["he"][0] == pytest.approx(1.0, abs=5 * np.sqrt(2 / (512 * 256)))


def test_xavier_equals_lecun_for_square_layers(moments):
    # same rule for fan_in == fan_out and the same seed: identical draws, identical results
    np.testing.assert_array_equal(moments["xavier"], moments["lecun"])


def test_relu_moments_final_ratio_within_sampling_band(moments):
    # For one input, log2(|x_L|²/|x_0|²) is a sum of 50 iid log-factors (see
    # init.log2_moment_spread): mean ≈ −0.35, sd ≈ 1.01 bits under He; LeCun is the
    # same shifted by 50·log2(1/2) = −50 bits. The batch ratio is a weighted average of
    # the 256 per-input ratios, so it lies within their range; a 6-sd band holds for all
    # 256 inputs at once with probability > 1 − 256·2e-9 (union bound, Gaussian tail).
    mean, sd = init.log2_moment_spread(512, 50)
    he = np.log2(moments["he"][-1] / moments["he"][0])
    lecun = np.log2(moments["lecun"][-1] / moments["lecun"][0])
    assert abs(he - mean) < 6 * sd
    assert abs(lecun - (mean - 50)) < 6 * sd
    # With a common seed the two rules' weights differ only by the factor 1/√2, and ReLU is
    # positively homogeneous, so LeCun's activations are He's times (1/√2)^l at layer l and
    # the second moments differ by exactly 2^-l (float64 rounding: ~50 ulps).
    np.testing.assert_allclose(
        moments["lecun"], moments["he"] * 0.5 ** np.arange(51), rtol=1e-10
    )


def test_log2_moment_spread_against_simulation():
    # Check the delta-method formula with 400 independent single-input networks (width
    # 64, depth 10): the sample mean of log2 ratios has SE sd/√400 and the sample sd has
    # relative SE ≈ 1/√(2·400) = 3.5%. Delta-method bias at n = 64 is O(1/n²) per layer;
    # allow 5 SE plus 10% of sd for it.
    width, depth, n = 64, 10, 400
    mean, sd = init.log2_moment_spread(width, depth)
    rng = np.random.default_rng(5)
    logs = []
    for _ in range(n):
        m = init.relu_mlp_second_moments(width, depth, "he", 1, seed=rng)
        logs.append(np.log2(m[-1] / m[0]))
    logs = np.array(logs)
    assert abs(logs.mean() - mean) < 5 * sd / np.sqrt(n) + 0.1 * sd
    assert abs(logs.std(ddof=1) / sd - 1) < 5 / np.sqrt(2 * n) + 0.1


def test_relu_moments_reproducible_and_seeded():
    a = init.relu_mlp_second_moments(16, 3, "he", 4, seed=3)
    b = init.relu_mlp_second_moments(16, 3, "he", 4, seed=3)
    c = init.relu_mlp_second_moments(16, 3, "he", 4, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_relu_moments_bad_input():
    with pytest.raises(ValueError, match="width"):
        init.relu_mlp_second_moments(0, 3, "he", 4, seed=0)
    with pytest.raises(TypeError, match="depth"):
        init.relu_mlp_second_moments(8, 2.5, "he", 4, seed=0)
    with pytest.raises(ValueError, match="n_samples"):
        init.relu_mlp_second_moments(8, 3, "he", 0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        init.relu_mlp_second_moments(8, 3, "he", 4, seed=None)
    with pytest.raises(ValueError, match="scheme"):
        init.relu_mlp_second_moments(8, 3, "tanh", 4, seed=0)


# ------------------------------------------------------------------- GPT-2


def test_gpt2_residual_proj_std():
    # 0.02/√24 = 0.0040825 (science notes: 0.00408); exact formula, float rounding only
    assert init.gpt2_residual_proj_std(12) == pytest.approx(
        0.02 / np.sqrt(24), rel=1e-15
    )
    assert round(init.gpt2_residual_proj_std(12), 5) == 0.00408
    # four times the depth halves it (GPT-2 XL, 48 layers: the chapter's exercise)
    assert init.gpt2_residual_proj_std(48) == pytest.approx(
        init.gpt2_residual_proj_std(12) / 2, rel=1e-15
    )
    with pytest.raises(ValueError, match="n_layer"):
        init.gpt2_residual_proj_std(0)
    with pytest.raises(ValueError, match="base_std"):
        init.gpt2_residual_proj_std(12, base_std=float("nan"))
    with pytest.raises(TypeError, match="n_layer"):
        init.gpt2_residual_proj_std("12")


def test_hf_gpt2_init_stds_match_formula():
    # The chapter's narrow model: per group 12 layers × 64×64 (c_proj) or 64×192 / 64×256
    # weights. Sample std of n normal draws has relative SE 1/√(2n); n ≥ 49,152, so 5 SE
    # is 1.6%.
    before = torch.random.get_rng_state()
    stds = init.hf_gpt2_init_stds(12, 64, seed=0)
    assert torch.equal(before, torch.random.get_rng_state())  # global RNG untouched
    tol = 5 / np.sqrt(2 * 12 * 64 * 64)
    for name in ("attn.c_proj", "mlp.c_proj"):
        assert stds[name] == pytest.approx(init.gpt2_residual_proj_std(12), rel=tol)
    for name in ("attn.c_attn", "mlp.c_fc"):
        assert stds[name] == pytest.approx(0.02, rel=tol)
    # The reconstruction draws wpe with 0.02, where OpenAI's released model.py declares
    # 0.01: 16 × 64 = 1,024 draws, relative SE 1/√2048 = 2.2%, 5 SE = 11%, so 0.02 and
    # 0.01 are told apart. wte: 64 × 64 draws, same band.
    emb_tol = 5 / np.sqrt(2 * 16 * 64)
    assert stds["wpe"] == pytest.approx(0.02, rel=emb_tol)
    assert stds["wte"] == pytest.approx(0.02, rel=emb_tol)
    with pytest.raises(ValueError, match="n_embd"):
        init.hf_gpt2_init_stds(2, 30, seed=0)


# ------------------------------------------------------- residual growth


@pytest.fixture(scope="module")
def growth():
    return init.pre_ln_residual_rms(
        [1, 2, 4, 8, 16, 32, 64], d=128, n_tokens=16, seed=1
    )


def test_residual_growth_sqrt_law(growth):
    # E[RMS²_N] = r0² + 2N·c² (eq-init-stream). Each branch's mean square fluctuates by a
    # relative ρ ≈ √(2/d) = 0.125 (its fresh W_proj: a χ²_d-like sum); log RMS_N then has
    # sd ≤ ρ/(2√(2N)) ≤ 0.045. A slope fitted over ln 64 = 4.16 moves by at most about
    # 2·(5 sd)/4.16 = 0.11 if the endpoints err by 5 sd in opposite directions; the r0²
    # term (r0 = 0.02, c ≈ 0.05) bends the small-N end by ½·ln(1 + r0²/(2c²)) ≈ 0.04,
    # i.e. ≤ 0.01 in slope. So |slope − ½| < 0.12 and |scaled slope| < 0.12.
    slope_u, _ = dotprod.loglog_slope(growth.depths, growth.rms_unscaled)
    slope_s, _ = dotprod.loglog_slope(growth.depths, growth.rms_scaled)
    assert abs(slope_u - 0.5) < 0.12
    assert abs(slope_s) < 0.12


def test_residual_growth_levels(growth):
    # Unscaled: RMS_64 / RMS_1 = √((r0² + 128c²)/(r0² + 2c²)) ≈ √64 = 8 (r0² ≪ c²).
    # With the per-depth log-RMS sd above (≤ 0.045 at N=1, 0.004 at N=64) a 5-sd band on
    # the log of the ratio is ±0.25, plus the r0² bend of 0.04.
    assert (
        abs(np.log(growth.rms_unscaled[-1] / growth.rms_unscaled[0]) - np.log(8)) < 0.3
    )
    # Scaled: every depth has E[RMS²] = r0² + c², same ±0.3 band on the log.
    expected = np.sqrt(0.02**2 + growth.branch_rms**2)
    assert np.all(np.abs(np.log(growth.rms_scaled / expected)) < 0.3)
    # Unscaled level at N = 64 against c·√(2N), same band.
    assert (
        abs(np.log(growth.rms_unscaled[-1] / (growth.branch_rms * np.sqrt(128)))) < 0.3
    )


def test_residual_growth_common_random_numbers():
    # depth 1 in a sweep equals depth 1 alone (same first draws, same scale) to rounding
    a = init.pre_ln_residual_rms([1], d=16, n_tokens=4, seed=7)
    b = init.pre_ln_residual_rms([1, 3], d=16, n_tokens=4, seed=7)
    assert a.rms_unscaled[0] == pytest.approx(b.rms_unscaled[0], rel=1e-12)
    assert a.rms_scaled[0] == pytest.approx(b.rms_scaled[0], rel=1e-12)


def test_residual_growth_bad_input():
    with pytest.raises(ValueError, match="depths"):
        init.pre_ln_residual_rms([], d=8, n_tokens=2, seed=0)
    with pytest.raises(ValueError, match="depths"):
        init.pre_ln_residual_rms([1, 0], d=8, n_tokens=2, seed=0)
    with pytest.raises(ValueError, match="depths"):
        init.pre_ln_residual_rms([1.5], d=8, n_tokens=2, seed=0)
    with pytest.raises(ValueError, match="d must"):
        init.pre_ln_residual_rms([1], d=0, n_tokens=2, seed=0)
    with pytest.raises(ValueError, match="base_std"):
        init.pre_ln_residual_rms([1], d=8, n_tokens=2, seed=0, base_std=float("inf"))


@settings(max_examples=30, deadline=None)
@given(st.floats(-5, 5, allow_nan=False))
def test_gelu_matches_torch(x):
    # GPT-2's tanh GELU; torch float64 against numpy float64: a few ulps of |x|
    expected = torch.nn.functional.gelu(
        torch.tensor(x, dtype=torch.float64), approximate="tanh"
    ).item()
    assert init.gelu(np.array(x)) == pytest.approx(expected, abs=1e-14)


# ------------------------------------------------------- the chapter's result records


def test_format_init_stds_and_named_stds():
    lines = init.format_init_stds([(4, 4), (16, 64)]).splitlines()
    # 1/√4 = 0.5, 2/(4+4) → 0.5, √(2/4) = 0.7071; 1/√16 = 0.25, √(2/80) = 0.1581
    assert lines[0].split()[3:] == [
        "lecun:",
        "0.5000",
        "xavier:",
        "0.5000",
        "he:",
        "0.7071",
    ]
    assert "xavier: 0.1581" in lines[1] and "lecun: 0.2500" in lines[1]
    assert init.named_stds(("he", "lecun"), fan_in=8) == {
        "he_8": 0.5,
        "lecun_8": 8**-0.5,
    }
    with pytest.raises(ValueError, match="shapes"):
        init.format_init_stds([])
    with pytest.raises(ValueError, match="schemes"):
        init.named_stds("he", fan_in=8)


def test_depth_summary_made_up_moments():
    moments = {
        "lecun": np.array([2.0, 1.0, 0.5]),
        "xavier": np.array([2.0, 1.0, 0.5]),
        "he": np.array([2.0, 2.0, 4.0]),
    }
    rec = init.depth_summary(moments)
    assert rec.final_ratio == {"lecun": 0.25, "xavier": 0.25, "he": 2.0}
    assert rec.final_log2 == {"lecun": -2.0, "xavier": -2.0, "he": 1.0}
    assert rec.two_pow_minus_depth == 0.25  # depth 2
    assert rec.xavier_is_lecun is True
    # last over first: 0.5/2 = 0.25 (log2 −2), 4/2 = 2 (log2 1), after 3 − 1 = 2 layers
    assert str(rec).splitlines() == [
        " lecun: E[x²] after 2 layers / at the input = 0.25  (log2: -2.00)",
        "xavier: E[x²] after 2 layers / at the input = 0.25  (log2: -2.00)",
        "    he: E[x²] after 2 layers / at the input = 2  (log2: 1.00)",
        "Xavier and LeCun identical for square layers: True",
    ]
    other = init.depth_summary({**moments, "xavier": np.array([2.0, 1.0, 0.25])})
    assert other.xavier_is_lecun is False
    with pytest.raises(ValueError, match="one length"):
        init.depth_summary({"he": np.ones(3), "lecun": np.ones(4)})
    with pytest.raises(ValueError, match="moments"):
        init.depth_summary({})


def test_log2_spread_is_the_formula():
    rec = init.log2_spread(512, 50)
    # −5·50/(2·512·ln 2) and √(5·50/512)/ln 2, written out (the derivation's result)
    assert rec.log2_mean == pytest.approx(-250 / 1024 / np.log(2), rel=1e-12)
    assert rec.log2_sd == pytest.approx(np.sqrt(250 / 512) / np.log(2), rel=1e-12)


def test_gpt2_start_scales_arithmetic():
    rec = init.gpt2_start_scales(d_model=100, w_std=0.05)
    # 0.05·√100 = 0.5; logits q·k/√d_k with entries of std 0.5: std 0.5² = 0.25
    assert rec.gpt2_qk_std == pytest.approx(0.5, rel=1e-15)
    assert rec.gpt2_logit_std == pytest.approx(0.25, rel=1e-15)
    assert rec.gpt2_entropy_gap == pytest.approx(0.25**2 / 2, rel=1e-15)
    assert rec.lecun == {100: pytest.approx(0.1), 400: pytest.approx(0.05)}
    assert rec.w_std == 0.05
    assert str(rec).splitlines() == [
        "1/√100 = 0.1000   1/√400 = 0.0500   GPT-2: 0.05",
        "q, k entries: std 0.500;  scaled logits: std 0.250",
    ]
    with pytest.raises(ValueError, match="w_std"):
        init.gpt2_start_scales(w_std=0.0)


def test_growth_fit_on_a_made_up_power_law():
    depths = np.array([1, 2, 4, 8])
    growth = init.ResidualGrowth(
        depths=depths,
        rms_unscaled=0.1 * depths**0.5,  # exact slope ½, no residual
        # exact slope 0.1, not flat: the deepest (0.3·8^0.1 ≈ 0.37) and the shallowest
        # (0.3) stacks differ, so swapping the two entries fails the test
        rms_scaled=0.3 * depths**0.1,
        branch_rms=0.07,
    )
    fit = init.growth_fit(growth)
    assert fit.slope_unscaled == pytest.approx(0.5, abs=1e-12)
    assert fit.slope_scaled == pytest.approx(0.1, abs=1e-12)
    assert fit.slope_unscaled_se == pytest.approx(0.0, abs=1e-12)
    assert fit.slope_scaled_se == pytest.approx(0.0, abs=1e-12)
    assert fit.rms_unscaled == {8: pytest.approx(0.1 * 8**0.5)}
    assert fit.rms_scaled == {8: pytest.approx(0.3 * 8**0.1), 1: pytest.approx(0.3)}
    assert fit.branch_rms == 0.07
    with pytest.raises(TypeError, match="growth"):
        init.growth_fit({"depths": depths})
