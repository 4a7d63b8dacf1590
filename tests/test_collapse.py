"""Tests for numscale.collapse: the entropy-collapse chapter's result records, on
made-up sweeps and runs whose summaries are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import attention, collapse
from numscale.toy_training import TrainingRuns

SIGMAS = np.linspace(0.0, 5.0, 11)  # contains 1.0


def _sweep(n, mean):
    return attention.EntropySweep(
        sigmas=SIGMAS, mean=mean, se=np.full(SIGMAS.size, 0.01), n_keys=n, rows=100
    )


def test_sweep_summary_on_linear_curves():
    # mean entropy ln n − σ/2: linear, so the interpolation at σ* is exact
    sweeps = {n: _sweep(n, math.log(n) - SIGMAS / 2) for n in (50, 1000)}
    rec = collapse.sweep_summary(sweeps)
    assert rec.h50_sigma1 == pytest.approx(math.log(50) - 0.5, rel=1e-15)
    assert rec.h50_sigma1_se == 0.01
    # the approximation ln n − σ²/2 equals the made-up curve at σ = 1: error 0
    assert rec.h50_sigma1_approx == pytest.approx(math.log(50) - 0.5, rel=1e-15)
    assert rec.h50_sigma1_relerr_pct == pytest.approx(0.0, abs=1e-12)
    for n in (50, 1000):
        star = math.sqrt(2 * math.log(n))
        assert getattr(rec, f"collapse{n}") == pytest.approx(star, rel=1e-15)
        h = math.log(n) - star / 2
        assert getattr(rec, f"h_at_collapse{n}") == pytest.approx(h, rel=1e-12)
        assert getattr(rec, f"keys_at_collapse{n}") == pytest.approx(
            math.exp(h), rel=1e-12
        )
    # both lines, with the values worked out above (not read back from the record)
    assert str(rec).splitlines() == [
        f"n = {n}: √(2 ln n) = {math.sqrt(2 * math.log(n)):.2f}, measured entropy "
        f"there {math.log(n) - math.sqrt(2 * math.log(n)) / 2:.2f} nats "
        "(interpolated on the σ grid)"
        for n in (50, 1000)
    ]


def test_sweep_summary_relative_error_sign():
    # measured 1% above the approximation at σ = 1 → +0.99…%
    mean = np.full(SIGMAS.size, 1.01 * (math.log(50) - 0.5))
    rec = collapse.sweep_summary({50: _sweep(50, mean), 1000: _sweep(1000, mean)})
    assert rec.h50_sigma1_relerr_pct == pytest.approx(100 * 0.01 / 1.01, rel=1e-12)


def test_sweep_summary_bad_input():
    with pytest.raises(ValueError, match="sweeps"):
        collapse.sweep_summary({50: _sweep(50, np.ones(11))})
    with pytest.raises(TypeError, match="sweeps"):
        collapse.sweep_summary({50: _sweep(50, np.ones(11)), 1000: "sweep"})
    off_grid = attention.EntropySweep(
        sigmas=SIGMAS + 0.25, mean=np.ones(11), se=np.ones(11), n_keys=50, rows=10
    )
    with pytest.raises(ValueError, match="σ = 1"):
        collapse.sweep_summary({50: off_grid, 1000: _sweep(1000, np.ones(11))})


def _growth(max_logit, entropy):
    f = np.array([1.0, 2.0, 4.0])
    return attention.GrowthSweep(
        factors=f,
        max_logit=np.asarray(max_logit, float),
        logit_std=np.ones(3),
        entropy=np.asarray(entropy, float),
    )


def test_growth_summary_by_hand():
    growth = {
        "none": _growth([2.0, 4.0, 8.0], [3.0, 2.0, 0.5]),
        # first, last and largest entries differ, so picking the wrong one fails
        "layernorm": _growth([5.0, 5.5, 5.25], [3.9, 3.85, 3.8]),
        "l2": _growth([5.75, 6.0, 5.9], [3.8, 3.8, 3.8]),
    }
    rec = collapse.growth_summary(growth, n_keys=16, d_head=36)
    assert (rec.plain_max_c1, rec.plain_max_cmax) == (2.0, 8.0)
    assert (rec.plain_entropy_c1, rec.plain_entropy_cmax) == (3.0, 0.5)
    assert rec.ln64 == pytest.approx(math.log(16), rel=1e-15)
    assert (rec.ln_max, rec.ln_spread, rec.ln_entropy) == (5.5, 0.5, 3.9)
    assert rec.ln_bound64 == pytest.approx(6.0, rel=1e-15)  # √36, unit gains
    assert rec.l2_max == 6.0
    assert rec.l2_spread == pytest.approx(0.25, abs=1e-15)
    lines = collapse.format_growth(growth).splitlines()
    assert lines[0] == (
        "none     : max |logit|    2.00 →    8.00, entropy 3.000 → 0.500 nats"
    )
    with pytest.raises(ValueError, match="growth"):
        collapse.growth_summary({"none": growth["none"]}, n_keys=16, d_head=36)


def _runs(variant, lrs, max_logit, test_mse, collapsed, locked, loss, bound):
    steps, n = np.asarray(loss).shape
    return TrainingRuns(
        variant=variant,
        lrs=np.asarray(lrs, float),
        seeds=np.tile(np.arange(n // len(set(lrs))), len(set(lrs))),
        loss=np.asarray(loss, float),
        max_logit=np.asarray(max_logit, float),
        entropy=np.ones((steps, n)),
        bound=np.asarray(bound, float),
        test_mse=np.asarray(test_mse, float),
        test_entropy_gap=np.array([0.1, 0.2, 1.5, 1.2])[:n],
        collapsed_fraction=np.asarray(collapsed, float),
        collapsed_mse=np.full(n, np.nan),
        diffuse_mse=np.zeros(n),
        locked_fraction=np.asarray(locked, float),
        target_variance=0.08,
        seconds=0.0,
        config={"d_head": 16, "seq_len": 8},
    )


def _made_up_runs():
    steps = 12
    lrs = (0.01, 0.01, 0.5, 0.5)  # two seeds at a low and at a high learning rate
    loss = np.full((steps, 4), 0.01)
    loss[:, 2] = np.r_[np.full(6, 0.4), np.full(6, 0.05)]
    loss[:, 3] = np.r_[np.full(6, 0.2), np.full(6, 0.03)]
    logits = np.array([[1.0, 1.5, 2.0, 3.0], *[[1.2, 1.0, 500.0, 900.0]] * 11])
    plain = _runs(
        "none",
        lrs,
        logits,
        test_mse=[0.001, 0.002, 0.07, 0.06],
        collapsed=[0.0, 0.0, 0.9987, 1.0],
        locked=[np.nan, np.nan, 0.8, 0.9],
        loss=loss,
        bound=np.full((steps, 4), np.inf),
    )

    def fixed(name, top_logit, bound, mse, hi_loss):
        """hi_loss: (first step, every later step) of the two high-lr runs' loss, so
        that their 10-step trailing mean peaks at the later value."""
        logit = np.full((steps, 4), 2.0)
        logit[5, 3] = top_logit
        loss = np.full((steps, 4), 0.01)
        for col, (first, later) in zip((2, 3), hi_loss):
            loss[:, col] = np.r_[first, np.full(steps - 1, later)]
        return _runs(name, lrs, logit, mse, [0, 0, 0, 0.01], [np.nan] * 4, loss, bound)

    ln_loss, l2_loss = ((0.1, 0.6), (0.15, 0.3)), ((0.1, 0.95), (0.45, 0.7))
    sigma_loss = ((0.1, 0.9), (0.1, 0.15))
    bounds = [np.full((steps, 4), b) for b in (4.2, 4.0, 1.0)]
    return {
        "none": plain,
        "qk_layernorm": fixed("qk_layernorm", 4.5, bounds[0], [0] * 4, ln_loss),
        "qk_l2": fixed("qk_l2", 3.0, bounds[1], [0, 0, 0.002, 0.003], l2_loss),
        "sigma_reparam": fixed("sigma_reparam", 2.5, bounds[2], [0] * 4, sigma_loss),
    }


def test_training_summary_by_hand():
    rec = collapse.training_summary(_made_up_runs(), hi_lr=0.1)
    assert rec.target_var == 0.08
    assert (rec.hi_logit_min, rec.hi_logit_max, rec.hi_init_logit) == (500, 900, 3)
    assert (rec.hi_mse_min, rec.hi_mse_max) == (0.06, 0.07)
    assert rec.hi_gap_min == 1.2
    assert rec.hi_collapsed_min == 99.8  # 99.87% rounded down to 0.1
    assert rec.hi_locked_min == pytest.approx(80.0, rel=1e-15)
    # last 10 steps of the two high-lr runs: (4·0.4 + 6·0.05 + 4·0.2 + 6·0.03)/20
    assert rec.hi_loss_last == pytest.approx(0.144, rel=1e-12)
    assert rec.hi_loss_last_pct == pytest.approx(180.0, rel=1e-12)
    # the 10-step trailing mean peaks at the flat start (0.4 and 0.2): the smaller
    assert rec.hi_loss_peak == pytest.approx(0.2, rel=1e-12)
    # every high-lr run: the largest first-step loss (ℓ2's 0.45, above the plain 0.4)
    # and the smallest peak (σReparam's 0.15, below the plain runs' 0.2)
    assert rec.hi_loss_start_max == 0.45
    assert rec.all_hi_loss_peak_min == pytest.approx(0.15, rel=1e-12)
    # σReparam's high-lr runs: the larger peak (0.9; ℓ2 reaches 0.95), and the largest
    # |logit| over the steps over the first step's: 2.0/2.0 and 2.5/2.0
    assert rec.sigma_hi_loss_peak_max == pytest.approx(0.9, rel=1e-12)
    assert rec.sigma_hi_logit_rise == 1.25
    # low-lr runs: the first step's largest |logit| (1.0, 1.5) and the last's (1.2, 1.0)
    assert (rec.lo_mse_max, rec.lo_init_logit, rec.lo_logit_max) == (0.002, 1.5, 1.2)
    assert rec.fixed_hi_mse_max == 0.003
    assert rec.fixed_hi_logit_max == 4.5  # a step in the middle counts
    assert rec.fixed_collapsed_max == 1.0  # %
    assert rec.ln_bound_init == 4.0 and rec.ln_gain_bound_max == 4.2  # √16
    assert rec.top_at_init_bound == pytest.approx(
        math.exp(4) / (math.exp(4) + 7), rel=1e-14
    )
    assert rec.sigma_final_logit_max == 2.0 and rec.l2_g_max == 4.0


def test_training_summary_and_table_bad_input():
    runs = _made_up_runs()
    with pytest.raises(ValueError, match="hi_lr"):
        collapse.training_summary(runs, hi_lr=1.0)
    with pytest.raises(ValueError, match="runs"):
        collapse.training_summary({"none": runs["none"]})
    with pytest.raises(TypeError, match="runs"):
        collapse.format_runs({**runs, "qk_l2": {}})


def test_format_runs_table():
    lines = collapse.format_runs(_made_up_runs()).splitlines()
    assert len(lines) == 2 + 4 * 4
    assert lines[0].split() == ["max", "|logit|", "in", "batch", "entropy", "gap"]
    assert lines[1].split() == [
        "variant", "lr", "seed", "first", "peak", "final", "test", "MSE", "(nats)",
        "collapsed", "locked",
    ]  # fmt: skip
    # no collapsed row: the locked fraction is undefined and shown as "-"
    assert lines[2].split()[-1] == "-"
    # the largest |logit| at the first step, over all steps and at the last step
    assert lines[3].split()[3:6] == ["1.5", "1.5", "1.0"]
    assert lines[4].split() == [
        "none", "0.50", "0", "2.0", "500.0", "500.0", "0.0700", "1.50", "1.00", "0.80"
    ]  # fmt: skip
    # a fixed run whose largest |logit| peaks mid-run (4.5 at step 5), ends at 2.0
    assert lines[9].split()[:6] == ["qk_layernorm", "0.50", "1", "2.0", "4.5", "2.0"]
