"""Claims of book/initialization.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest

pytestmark = pytest.mark.build
PAGE = "book/initialization"


def test_rules(values):
    # exact formulas, float64 rounding
    assert values["init_he_512"] == pytest.approx(math.sqrt(2 / 512), rel=1e-15)
    assert values["init_lecun_512"] == pytest.approx(1 / math.sqrt(512), rel=1e-15)
    assert values["init_lecun_768"] == pytest.approx(1 / math.sqrt(768), rel=1e-15)
    # "0.02 is below 1/√768" and above 1/√3072 (the prose's comparison)
    assert values["init_lecun_3072"] == pytest.approx(1 / math.sqrt(3072), rel=1e-15)
    assert values["init_lecun_3072"] < 0.02 < values["init_lecun_768"]


def test_fifty_relu_layers(values):
    # the page's inputs, for which the expectations below are written out
    assert (values["init_depth"], values["init_width"]) == (50, 512)
    assert values["init_n_samples"] == 256
    # log2 of the final ratio for one input: mean −5·50/(2·512·ln 2) and sd √(5·50/512)/ln 2
    # (delta method on the per-layer factor, derived in init.log2_moment_spread's docstring;
    # written out here so that the test does not call the formula it checks).
    mean = -50 * 5 / (2 * 512) / math.log(2)
    sd = math.sqrt(50 * 5 / 512) / math.log(2)
    assert values["init_log2_mean"] == pytest.approx(mean, rel=1e-12)
    assert values["init_log2_sd"] == pytest.approx(sd, rel=1e-12)
    # the batch ratio averages 256 inputs that share the weights: one draw, within 4 sd
    assert abs(values["init_final_log2_he"] - mean) < 4 * sd
    assert values["init_final_log2_lecun"] == pytest.approx(
        values["init_final_log2_he"] - 50, abs=1e-9
    )
    assert values["init_final_ratio_xavier"] == values["init_final_ratio_lecun"]
    assert values["init_two_pow_minus_depth"] == 2.0**-50


def test_reconstructed_gpt2_projection_std(values):
    assert values["init_gpt2_proj_std"] == pytest.approx(
        0.02 / math.sqrt(24), rel=1e-15
    )
    assert values["init_xl_proj_std"] == pytest.approx(
        values["init_gpt2_proj_std"] / 2, rel=1e-15
    )


def test_he_batch_ratio_by_an_independent_rerun(values):
    # The page's network rewritten here (seed 0 is the page's input; the draw order is that
    # of the docstring of init.relu_mlp_second_moments): input, then one matrix per layer.
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 512))
    m0 = np.mean(x**2)
    for _ in range(50):
        x = np.maximum(x @ (rng.standard_normal((512, 512)) * math.sqrt(2 / 512)), 0.0)
    ratio = np.mean(x**2) / m0
    assert values["init_final_ratio_he"] == pytest.approx(ratio, rel=1e-9)
    assert values["init_final_log2_he"] == pytest.approx(math.log2(ratio), abs=1e-9)
    # LeCun: the same draws with weights 1/√2 as large, through 50 homogeneous layers
    assert values["init_final_ratio_lecun"] == pytest.approx(ratio * 2.0**-50, rel=1e-9)


def _gelu(x):
    import numpy as np

    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _stack_rms(depths, rng, d: int = 128, tokens: int = 16):
    """RMS of pre-LN stacks of 2·L random MLP branches for every L in depths, unscaled and
    with the output projections scaled by 1/√(2L) (numpy, own draws). As on the page, the
    stacks share their weights (the depth-L stack is the first L blocks of the deepest one),
    so the fitted slope has the same correlated-points distribution as the page's."""
    import numpy as np

    x0 = rng.standard_normal((tokens, d)) * 0.02
    streams = {(L, sc): x0.copy() for L in depths for sc in (False, True)}
    for block in range(max(depths)):
        for _ in range(2):
            w_fc = rng.standard_normal((d, 4 * d)) * 0.02
            w_proj = rng.standard_normal((4 * d, d)) * 0.02
            for (L, sc), x in streams.items():
                if block < L:
                    h = (x - x.mean(1, keepdims=True)) / np.sqrt(
                        x.var(1, keepdims=True) + 1e-5
                    )
                    out = _gelu(h @ w_fc) @ w_proj
                    streams[(L, sc)] = x + out / (math.sqrt(2 * L) if sc else 1.0)
    return {k: float(np.sqrt(np.mean(x**2))) for k, x in streams.items()}


def _branch_rms_theory(d: int = 128) -> float:
    """ρ = 0.02·√(4d·E[gelu(h)²]) with h ~ N(0, 0.02²·d): LN output has unit-variance
    entries, so a pre-activation is a sum of d terms of variance 0.02²; quadrature."""
    import numpy as np

    s = 0.02 * math.sqrt(d)
    z = np.linspace(-12, 12, 24_001)
    density = np.exp(-(z**2) / 2) / math.sqrt(2 * math.pi)
    m2 = np.trapezoid(_gelu(s * z) ** 2 * density, z)
    return 0.02 * math.sqrt(4 * d * m2)


# Seed-to-seed SDs of the page's statistics (sim: _stack_rms above, 10 seeds from
# default_rng(2026), d = 128, 16 tokens, depths 1…64, weights shared across depths as on the
# page; about a minute per seed, so not rerun here): slope 0.494 ± 0.0065 unscaled and
# −0.0002 ± 0.0068 scaled; RMS after 64 blocks 0.609 ± 0.015 unscaled and 0.0567 ± 0.0010
# scaled; after one scaled block 0.0567 ± 0.0011. Tolerances below: 4.5 of those SDs around
# the theory of eq-init-stream (the t quantile with 9 degrees of freedom at 99.9% is 4.8).
SEED_SD = {
    "slope_unscaled": 0.0065,
    "slope_scaled": 0.0068,
    "rms_unscaled_64": 0.015,
    "rms_scaled_64": 0.0010,
    "rms_scaled_1": 0.0011,
}


def test_residual_growth_against_theory(values):
    rho = _branch_rms_theory()
    # the page's ρ is measured on 16 tokens of the first block's two branches: relative
    # sampling spread of a few percent (16·128 squares, two 512-wide weight draws); 15% is
    # more than 4 SD
    assert values["init_branch_rms"] == pytest.approx(rho, rel=0.15)
    expected = {
        "slope_unscaled": 0.5,
        "slope_scaled": 0.0,
        "rms_unscaled_64": math.sqrt(0.02**2 + 128 * rho**2),
        "rms_scaled_64": math.sqrt(0.02**2 + rho**2),
        "rms_scaled_1": math.sqrt(0.02**2 + rho**2),
    }
    for key, value in expected.items():
        # theory vs the simulated seed mean differs by < 1 SD for every entry (sim above)
        assert abs(values[f"init_{key}"] - value) < 4.5 * SEED_SD[key], key


def test_slope_standard_errors_are_least_squares_errors(values):
    # The quoted ± is the least-squares SE of a 7-point fit (the page says it understates the
    # uncertainty). Its size follows from the seed spread of the residuals: for a flat or
    # √L curve with ≈2-5% scatter per point the SE lies between 0.001 and 0.02.
    for tag in ("unscaled", "scaled"):
        assert 0.001 < values[f"init_slope_{tag}_se"] < 0.02


def test_gpt2_initial_attention_scale(values):
    # 0.02 on fan-in 768 with unit-scale inputs: std 0.02·√768; logits q·k/√d_k: its square
    assert values["init_gpt2_qk_std"] == pytest.approx(0.02 * math.sqrt(768), rel=1e-15)
    assert values["init_gpt2_logit_std"] == pytest.approx(0.02**2 * 768, rel=1e-15)
    assert values["init_gpt2_entropy_gap"] == pytest.approx(
        (0.02**2 * 768) ** 2 / 2, rel=1e-15
    )
