"""Tests of numscale.softmax_grad_summary: each field against a hand recomputation on
small made-up sweeps (no sampling: the records only pick and combine numbers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import report
from numscale import softmax_grad_summary as records
from numscale.softmax_grad import (
    Crossover,
    LogitScaleSweep,
    NormSweep,
    QueryGradientSweep,
)

DIMS = np.array([8, 16, 50, 64])


def _sweep(mean, stderr):
    return NormSweep(dims=DIMS, mean=np.array(mean), stderr=np.array(stderr))


def test_jacobian_check_fields():
    a = np.array([[0.25, -0.25], [-0.25, 0.25]])
    # offsets that are multiples of the spacing 2^-54 near 0.25: the sums are exact
    b = a + np.array([[0.0, 2.0**-52], [-(2.0**-54), 0.0]])
    check = records.jacobian_check(a, b, 0.5 + 2**-40)
    assert check.autograd_diff == 2.0**-52
    assert check.autograd_diff_eps == 1.0
    assert check.norm_explicit == 0.5  # four entries of 1/4: √(4/16), exact
    assert check.frob_diff == 2**-40
    text = records.format_jacobian_check(check)
    assert "2.22e-16 = 1.000 ε_mach" in text and "0.500000000000000" in text


def test_jacobian_check_rejects_bad_input():
    with pytest.raises(ValueError, match="jac"):
        records.jacobian_check(np.eye(2), np.eye(3), 1.0)
    with pytest.raises(ValueError, match="jac_autograd"):
        records.jacobian_check(np.eye(2), np.full((2, 2), np.nan), 1.0)
    with pytest.raises(ValueError, match="norm_closed"):
        records.jacobian_check(np.eye(2), np.eye(2), float("inf"))


def test_norm_sweep_summary_picks_and_combines():
    unscaled = _sweep([0.5, 0.4, 0.3, 0.1], [0.03, 0.02, 0.003, 0.01])
    scaled = _sweep([0.2, 0.21, 0.19, 0.2], [0.01, 0.01, 0.004, 0.01])
    s = records.norm_sweep_summary(unscaled, scaled, 60.0, quoted=(8, 64), se_at=(50,))
    assert s.unscaled == {8: 0.5, 64: 0.1}
    assert s.scaled == {8: 0.2, 64: 0.2}
    assert s.se == {50: pytest.approx(0.005, rel=1e-15)}  # 3-4-5 triangle
    assert (s.scaled_min, s.scaled_max, s.d_cross) == (0.19, 0.21, 60.0)
    names = report.record_numbers(s)
    assert set(names) == {
        "unscaled_8", "unscaled_64", "scaled_8", "scaled_64", "se_50",
        "scaled_min", "scaled_max", "d_cross",
    }  # fmt: skip
    lines = records.format_norm_sweep(unscaled, scaled).splitlines()
    assert lines[2] == "d_k =    50:  unscaled 0.300   scaled 0.190"


def test_norm_sweep_summary_rejects_bad_input():
    a = _sweep([0.5, 0.4, 0.3, 0.1], [0.1] * 4)
    with pytest.raises(ValueError, match="quoted"):
        records.norm_sweep_summary(a, a, 60.0, quoted=(32,), se_at=(50,))
    other = NormSweep(dims=DIMS * 2, mean=a.mean, stderr=a.stderr)
    with pytest.raises(ValueError, match="same dims"):
        records.norm_sweep_summary(a, other, 60.0, quoted=(8,), se_at=(8,))
    with pytest.raises(TypeError, match="scaled"):
        records.norm_sweep_summary(a, {"mean": 1}, 60.0, quoted=(8,), se_at=(8,))


def _crossover(n, d_cross, se, peak, at1, gap, gap_se):
    dims = np.array([1.0, 2.0, 4.0])
    return Crossover(
        n_keys=n, n_rows=10, norm_at_1=at1, sigma_peak=peak, peak_norm=0.3,
        crossed=True, d_cross=d_cross, d_cross_se=se, d_max=4.0, dims=dims,
        curve=np.ones(3), gap=np.array(gap), gap_se=np.array(gap_se),
    )  # fmt: skip


def test_crossover_summary_names_and_values():
    cross = {
        50: _crossover(50, 66.0, 5.0, 2.0, 0.26, [0.1, 0.2, 0.3], [1, 2, 3]),
        512: _crossover(512, 1200.0, 150.0, 4.0, 0.07, [0.4, 0.5, 0.6], [4, 5, 6]),
    }
    s = records.crossover_summary(cross, gap_n=512, gap_dims=(2, 4))
    flat = report.record_numbers(s)
    assert flat == {
        "cross_50": 66.0, "cross_50_se": 5.0, "cross_512": 1200.0,
        "cross_512_se": 150.0, "peak_sigma_50": 2.0, "peak_sigma_512": 4.0,
        "at1_50": 0.26, "at1_512": 0.07,
        "at1_pred_50": math.sqrt(math.e / 50), "at1_pred_512": math.sqrt(math.e / 512),
        "gap_512_at_2": 0.5, "gap_512_at_2_se": 5.0,
        "gap_512_at_4": 0.6, "gap_512_at_4_se": 6.0,
    }  # fmt: skip
    text = records.format_crossovers(cross)
    assert "crossover d_k = 1,200 ± 150" in text
    assert f"(√(e/n) = {math.sqrt(math.e / 50):.4f})" in text
    with pytest.raises(ValueError, match="gap_n"):
        records.crossover_summary(cross, gap_n=4096, gap_dims=(2,))
    with pytest.raises(ValueError, match="gap_dims"):
        records.crossover_summary(cross, gap_n=50, gap_dims=(3,))
    with pytest.raises(TypeError, match=r"cross\[7\]"):
        records.crossover_summary({7: 1.0}, gap_n=7, gap_dims=(2,))


def test_init_logit_scale():
    s = records.init_logit_scale(0.5, 16)
    assert (s.qk_std, s.sigma_factor) == (2.0, 4.0)  # 0.5·√16, 0.25·16: exact
    with pytest.raises(ValueError, match="weight_std"):
        records.init_logit_scale(-0.1, 16)
    with pytest.raises(TypeError, match="width"):
        records.init_logit_scale(0.1, 16.0)


def test_query_gradient_summary():
    n = len(DIMS)
    arr = np.arange(1.0, n + 1)
    sweep = QueryGradientSweep(
        dims=DIMS, unscaled=arr, scaled=arr, ratio=np.array([3.5, 7.0, 8.0, 6.0]),
        ratio_se=np.array([0.1, 0.2, 0.3, 0.4]),
        keys_unscaled=np.array([9.0, 5.0, 3.0, 2.5]),
        keys_scaled=np.array([20.0, 21.0, 19.5, 20.5]),
        keys_unscaled_se=arr, keys_scaled_se=arr, unscaled_se=arr, scaled_se=arr,
    )  # fmt: skip
    s = records.query_gradient_summary(sweep, quoted=(8, 64))
    assert report.record_numbers(s) == {
        "ratio_8": 3.5, "ratio_8_se": 0.1, "ratio_64": 6.0, "ratio_64_se": 0.4,
        "ratio_min": 3.5, "keys_unscaled_8": 9.0, "keys_unscaled_64": 2.5,
        "keys_scaled_min": 19.5, "keys_scaled_max": 21.0,
    }  # fmt: skip
    lines = records.format_query_gradients(sweep).splitlines()
    assert len(lines) == 2 * n
    assert lines[1].endswith(" 9.00 vs 20.00")
    with pytest.raises(ValueError, match="quoted"):
        records.query_gradient_summary(sweep, quoted=(128,))
    with pytest.raises(TypeError, match="sweep"):
        records.query_gradient_summary(None, quoted=(8,))


def test_format_reparam_gaps():
    text = records.format_reparam_gaps({("sgd", 2): 0.0, ("adam", 1): 3.14e-7})
    assert text.splitlines() == [
        "sgd  with learning rate s^2·η: max relative difference 0.0e+00",
        "adam with learning rate s^1·η: max relative difference 3.1e-07",
    ]


def test_logit_scale_ends():
    sweep = LogitScaleSweep(
        alphas=np.array([0.1, 1.0, 10.0]),
        jacobian=np.array([0.3, 0.2, 1e-9]),
        ce_wrong=np.array([0.9, 1.2, 1.41]),
        ce_right=np.array([0.8, 0.1, 1e-8]),
    )
    ends = records.logit_scale_ends(sweep)
    assert (ends.ce_wrong_start, ends.ce_wrong_end) == (0.9, 1.41)
    assert (ends.ce_right_end, ends.jac_end) == (1e-8, 1e-9)
    assert ends.sqrt2 == math.sqrt(2)
    with pytest.raises(TypeError, match="sweep"):
        records.logit_scale_ends(np.ones(3))


def test_rounded_two_keys():
    p = torch.tensor([0.75, 0.25])
    jac_rounded = np.array([[0.1875, -0.1875], [-0.1875, 0.1875]])
    jac_torch = torch.tensor([[3.0, 0.0], [0.0, 4.0]])
    rec = records.rounded_two_keys(2.5, p, jac_rounded, jac_torch)
    assert rec.probs == (0.75, 0.25) and rec.gap == 2.5
    assert rec.two_p1p2 == 0.375  # 2·3/4·1/4, exact in float32
    assert rec.norm_rounded == 0.375  # √(4·0.1875²)
    assert rec.norm_autograd == 5.0  # √(9 + 16)
    assert records.format_rounded_two_keys(rec).splitlines()[0] == (
        "gap 2.5000: p = [0.75, 0.25]"
    )
    with pytest.raises(ValueError, match="p must"):
        records.rounded_two_keys(2.5, p[:1], jac_rounded, jac_torch)
    with pytest.raises(ValueError, match="jac_torch"):
        records.rounded_two_keys(2.5, p, jac_rounded, jac_torch[0])
    with pytest.raises(ValueError, match="gap"):
        records.rounded_two_keys(float("nan"), p, jac_rounded, jac_torch)
