"""Tests for numscale.attention_summary: the trained-attention chapter's records.

Records are compared with values worked out by hand on small made-up ``(L, H)`` arrays
and a made-up loss curve (exact binary fractions where possible); the float16 and
bfloat16 limits with ``torch.finfo`` read here.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from numscale import attention_summary

POOLED = np.array([[0.5, 1.0], [2.0, 0.5]])


def test_init_summary_fields() -> None:
    entropy = np.array([[0.99, 0.98], [0.995, 0.97]])
    rec = attention_summary.init_summary(
        POOLED, entropy, predicted=0.0256, corrected=0.0125
    )
    assert dataclasses.asdict(rec) == {
        "init_std_predicted": 0.0256,
        "init_std_corrected": 0.0125,
        "init_std_min": 0.5,
        "init_std_max": 2.0,
        "init_std_mean": 1.0,
        "init_std_sd": math.sqrt(0.5),  # deviations -.5, 0, 1, -.5: 1.5 / 3
        "init_norm_entropy_min": 0.97,
        "init_unit_ratio": 80.0,
    }
    assert attention_summary.format_init(rec) == (
        "pooled std of the scaled logits at initialization:\n"
        "predicted 0.0125; measured per head 0.5000 … 2.0000 (mean 1.0000)"
    )
    with pytest.raises(ValueError, match="corrected"):
        attention_summary.init_summary(POOLED, entropy, predicted=1.0, corrected=0.0)
    with pytest.raises(ValueError, match="pooled"):
        attention_summary.init_summary(
            POOLED.ravel(), entropy, predicted=1.0, corrected=1.0
        )
    with pytest.raises(TypeError, match="summary"):
        attention_summary.format_init(dataclasses.asdict(rec))


def test_logit_scale_summary_fields() -> None:
    within = np.array([[2.0, 4.0], [8.0, 3.0]])
    init_within = np.array([[0.5, 0.5], [0.5, 0.25]])
    rec = attention_summary.logit_scale_summary(POOLED, within, init_within, 100)
    assert dataclasses.asdict(rec) == {
        "n_predicted": 100,
        "within_min": 2.0,
        "within_max": 8.0,
        "within_median": 3.5,
        "pooled_min": 0.5,
        "pooled_max": 2.0,
        "within_over_init_median": 10.0,  # ratios 4, 8, 16, 12
    }
    with pytest.raises(ValueError, match="init_within"):
        attention_summary.logit_scale_summary(POOLED, within, init_within[:1], 100)
    with pytest.raises(ValueError, match="n_predicted"):
        attention_summary.logit_scale_summary(POOLED, within, init_within, 0)


def test_entropy_summary_fields() -> None:
    entropy = np.array([[1.0, 2.5], [0.5, 2.0]])
    normalized = np.array([[0.25, 0.75], [0.5, 0.125]])
    rec = attention_summary.entropy_summary(entropy, normalized, {"entropy": 4.5})
    assert dataclasses.asdict(rec) == {
        "entropy_min": 0.5,
        "entropy_max": 2.5,
        "uniform_entropy": 4.5,
        "norm_entropy_min": 0.125,
        "norm_entropy_max": 0.75,
        "norm_entropy_median": 0.375,
    }
    with pytest.raises(ValueError, match="uniform"):
        attention_summary.entropy_summary(entropy, normalized, {"first_weight": 1.0})


def test_sink_summary_fields() -> None:
    first = np.array([[0.01, 0.04], [0.02, 0.1]])
    rec = attention_summary.sink_summary(
        first,
        np.array([[0.001, 0.008], [0.002, 0.003]]),
        np.array([[0.02, 0.03], [0.025, 0.02]]),
        uniform={"entropy": 3.0, "first_weight": 0.025},
        uniform_late={"first_weight": 0.005},
        uniform_init={"first_weight": 0.03},
    )
    assert dataclasses.asdict(rec) == pytest.approx(
        {
            "first_min": 0.01,
            "first_max": 0.1,
            "first_uniform": 0.025,
            "first_max_over_uniform": 4.0,  # one division: rel 1e-15 below
            "heads_above_uniform": 2,
            "late_first_max": 0.008,
            "late_uniform": 0.005,
            "init_first_max": 0.03,
            "init_first_uniform": 0.03,
        },
        rel=1e-15,
    )
    assert isinstance(rec.heads_above_uniform, int)
    with pytest.raises(ValueError, match="uniform_late"):
        attention_summary.sink_summary(
            first,
            first,
            first,
            uniform={"first_weight": 0.1},
            uniform_late={},
            uniform_init={"first_weight": 0.1},
        )


# ------------------------------------------------------------------- the sweep
# No two entries of one array are equal, and the smallest loss is not at c = 1, so a
# record that reads any field at a wrong index (e.g. the last point for 1/√8) fails.
C = 2.0 ** (np.arange(-4, 5) / 2)  # 1/4 … 4, nine points; 1 is index 4
LOSS = np.array([3.0, 2.5, 1.75, 1.25, 1.0, 0.875, 1.375, 1.5, 2.0])
LOSS_SE = np.arange(1, 10) / 16
DIFF = LOSS - 1.0  # exact in binary
DIFF_SE = np.arange(9) / 64


def test_sweep_grid_points() -> None:
    grid = attention_summary.sweep_grid(C, 1 / math.sqrt(8))
    assert dataclasses.asdict(grid) == {
        "n_multipliers": 9,
        "c_inv_sqrt_dk": 1 / math.sqrt(8),
        "c_dk_on_grid": C[1],  # 2^(-3/2) is the grid point k = -3
        "c_above": C[5],
        "c_below": C[3],
    }
    with pytest.raises(ValueError, match="each side of 1"):
        attention_summary.sweep_grid(C[4:], 0.5)
    with pytest.raises(ValueError, match="inverse_sqrt_dk"):
        attention_summary.sweep_grid(C, -1.0)


def test_sweep_summary_reads_the_named_points() -> None:
    rec = attention_summary.sweep_summary(
        C, (LOSS, LOSS_SE), (DIFF, DIFF_SE), (1.1, 0.9, 1.3), 1 / math.sqrt(8)
    )
    assert dataclasses.asdict(rec) == {
        "loss_c1": 1.0,  # index 4
        "loss_c1_se": 5 / 16,
        "loss_dk": 2.5,  # index 1, c = 2^(-3/2) = 1/√8
        "diff_dk": 1.5,
        "diff_dk_se": 1 / 64,
        "c_best_grid": C[5],  # loss 0.875
        "c_vertex": 1.1,
        "c_vertex_lo": 0.9,
        "c_vertex_hi": 1.3,
        "diff_above": -0.125,  # index 5
        "diff_above_se": 5 / 64,
        "diff_below": 0.25,  # index 3
        "diff_below_se": 3 / 64,
        "loss_c_max": 2.0,  # index 8, c = 4
        "loss_c_min": 3.0,  # index 0, c = 1/4
    }
    with pytest.raises(ValueError, match="loss and diff"):
        attention_summary.sweep_summary(
            C, (LOSS[:8], LOSS_SE), (DIFF, DIFF_SE), (1.0, 0.9, 1.1), 0.35
        )
    with pytest.raises(ValueError, match="vertex"):
        attention_summary.sweep_summary(
            C, (LOSS, LOSS_SE), (DIFF, DIFF_SE), (1.0, 0.9), 0.35
        )
    lines = attention_summary.format_sweep(C, (LOSS, LOSS_SE), (DIFF, DIFF_SE))
    assert lines.splitlines()[4] == (
        "c = 1.000: loss 1.0000 ± 0.3125;  minus loss at c = 1: +0.0000 ± 0.0625"
    )


def test_headroom_summary_fields() -> None:
    ln16 = math.log(torch.finfo(torch.float16).max)
    # (L, H) shares of each head's rows above ln16; every head has the same rows, so
    # the share of all rows is their mean: (0.5 + 0.125) / 4
    above = np.array([[0.0, 0.5], [0.0, 0.125]])
    rec = attention_summary.headroom_summary(above, 20.0, np.float32(9.5))
    assert dataclasses.asdict(rec) == {
        "fp16_ln_max": ln16,
        "fp16_max": 65504.0,
        "bf16_ln_max": math.log(torch.finfo(torch.bfloat16).max),
        "attn_logit_max": 20.0,
        "rows_above_pct": 15.625,
        "heads_with_rows_above": 2,
        "output_logit_max": 9.5,
    }
    assert attention_summary.format_headroom(rec) == (
        "ln(float16 max) = 11.090; largest attention logit 20.00; "
        "largest |output logit| 9.50"
    )
    with pytest.raises(ValueError, match="fraction_above"):
        attention_summary.headroom_summary(above.ravel(), 20.0, 9.5)
    with pytest.raises(ValueError, match="fraction_above"):
        attention_summary.headroom_summary(above * 3, 20.0, 9.5)
    with pytest.raises(ValueError, match="attn_logit_max"):
        attention_summary.headroom_summary(above, math.nan, 9.5)
