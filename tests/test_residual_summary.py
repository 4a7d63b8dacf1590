"""Tests for numscale.residual_summary: the residual-stream chapter's result records.

Every field is checked against a recomputation written here by hand (plain Python and
the ``statistics`` module) on small made-up profiles whose values are exact in binary
floating point where possible; where a division rounds, ``rel=1e-15`` allows the one
rounding of a float64 division.
"""

from __future__ import annotations

import dataclasses
import math
import statistics

import numpy as np
import pytest

from numscale import residual_summary
from numscale.residual import DepthSweep, GradientProfile


def profile(weights, stream, stream_norm) -> GradientProfile:
    weights, stream, stream_norm = map(np.array, (weights, stream, stream_norm))
    return GradientProfile(
        weights=weights,
        stream=stream,
        stream_norm=stream_norm,
        token_cosine=np.zeros(stream_norm.size),
    )


# The stream gradients are chosen so that dividing the weight gradients by the stream
# gradient at each block's output (g_l: 8, 8, 1) and at its input (g_{l-1}: 16, 8, 8)
# give different spreads (4 and 2): the record must use the output.
PRE = profile([4.0, 2.0, 1.0], [16.0, 8.0, 8.0, 1.0], [2.0, 3.0, 5.0, 10.0])
POST = profile([1.0, 3.0, 8.0], [1.0, 1.0, 1.0, 1.0], [2.0, 1.5, 1.25, 1.75])


def test_stream_norm_summary_fields() -> None:
    rec = residual_summary.stream_norm_summary(PRE, POST, 16)
    assert dataclasses.asdict(rec) == {
        "sqrt_d": 4.0,
        "pre_norm_0": 2.0,
        "pre_norm_1": 3.0,
        "pre_norm_L": 10.0,
        "pre_growth": 5.0,
        "post_norm_min": 1.25,  # blocks 1…L only: the embedding's 2.0 is not counted
        "post_norm_max": 1.75,
    }


def test_gradient_summary_fields() -> None:
    rec = residual_summary.gradient_summary(PRE, POST)
    # per unit of the stream gradient at each block's output: 4/8, 2/8, 1/1
    # (at its input instead, 4/16, 2/8, 1/8, the spread would be 2)
    assert dataclasses.asdict(rec) == {
        "grad_pre_first": 4.0,
        "grad_pre_last": 1.0,
        "grad_post_first": 1.0,
        "grad_post_last": 8.0,
        "grad_ratio_first": 0.25,
        "grad_ratio_last": 8.0,
        "pre_grad_fall": 4.0,
        "pre_stream_grad_rise": 16.0,
        "pre_per_stream_spread": 4.0,  # 1 / (1/4)
    }


def test_profile_records_reject_bad_input() -> None:
    with pytest.raises(TypeError, match="pre"):
        residual_summary.stream_norm_summary(np.ones(4), POST, 16)
    with pytest.raises(TypeError, match="post"):
        residual_summary.gradient_summary(PRE, {"weights": 1})
    short = profile([1.0], [1.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="same depth"):
        residual_summary.gradient_summary(PRE, short)
    with pytest.raises(ValueError, match="d"):
        residual_summary.stream_norm_summary(PRE, POST, 0)


def test_format_profiles_rows() -> None:
    text = residual_summary.format_profiles({"pre": PRE, "post": POST}, "stream_norm")
    assert text.splitlines() == [
        "pre-LN  stream norm, depth 0 (embedding) … 3:",
        "[ 2.  3.  5. 10.]",
        "post-LN stream norm, depth 0 (embedding) … 3:",
        "[2.   1.5  1.25 1.75]",
    ]
    text = residual_summary.format_profiles({"pre": PRE, "post": POST}, "weights")
    assert text.splitlines()[0] == "pre-LN: gradient norm, blocks 1…3:"
    assert text.splitlines()[3] == "[1. 3. 8.]"
    with pytest.raises(ValueError, match="field"):
        residual_summary.format_profiles({"pre": PRE, "post": POST}, "stream")
    with pytest.raises(TypeError, match="profiles\\['post'\\]"):
        residual_summary.format_profiles({"pre": PRE}, "weights")
    with pytest.raises(TypeError, match="profiles"):
        residual_summary.format_profiles([PRE, POST], "weights")


# ------------------------------------------------------------------ the depth sweep
SLOPES = {
    "pre": [-0.4, -0.5, -0.55, -0.45],
    "post": [0.1, 0.3, 0.2, 0.2],
    "growth": [-0.6, -0.7, -0.65, -0.55],
    "corrected": [0.05, 0.1, 0.15, 0.1],
}
FIT_SE = [0.02, 0.03, 0.01, 0.04]


def fits() -> dict[str, np.ndarray]:
    return {k: np.column_stack([v, FIT_SE]) for k, v in SLOPES.items()}


FIRST_BLOCK = [0.5, 1.0, 1.5, 1.0]  # what block 1 adds, per seed
LAST_BLOCK = [-0.25, 3.0, 4.0, 6.0]  # what block 12 adds, per seed


def added_rows() -> list[list[float]]:
    """(4 seeds, 12 blocks): seed i adds FIRST_BLOCK[i] in block 1, 1 in blocks 2-6,
    i + 2 in blocks 7-11 and LAST_BLOCK[i] in block 12."""
    return [
        [FIRST_BLOCK[i]] + [1.0] * 5 + [float(i + 2)] * 5 + [LAST_BLOCK[i]]
        for i in range(4)
    ]


def added() -> np.ndarray:
    return np.array(added_rows())


COSINE = {
    "pre": np.array([[0.1, 0.3], [0.2, 0.4], [0.0, 0.2], [0.1, 0.5]]),
    "post": np.array([[0.2, 0.5], [0.1, 0.6], [0.3, 0.4], [0.2, 0.5]]),
}


def mean_se(values) -> tuple[float, float]:
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def test_depth_summary_fields() -> None:
    rec = residual_summary.depth_summary(fits(), -0.42, added(), COSINE, rho=0.6)
    expected = {}
    for key, name in (
        ("pre", "slope_pre"),
        ("post", "slope_post"),
        ("growth", "slope_growth"),
        ("corrected", "slope_corrected"),
    ):
        expected[name], expected[f"{name}_se"] = mean_se(SLOPES[key])
    expected["slope_pre_z"] = (expected["slope_pre"] + 0.5) / expected["slope_pre_se"]
    expected["slope_post_z"] = expected["slope_post"] / expected["slope_post_se"]
    expected["slope_pre_seed0"] = -0.4
    expected["slope_pre_seed0_fit_se"] = 0.02
    expected["slope_pre_seed_sd"] = statistics.stdev(SLOPES["pre"])
    expected["equal_updates_slope"] = -0.42
    expected["rho"] = 0.6
    expected["added_first"], expected["added_first_se"] = mean_se(FIRST_BLOCK)
    expected["added_last"], expected["added_last_se"] = mean_se(LAST_BLOCK)
    expected["added_last_seed0"] = -0.25
    ratios = [math.fsum(row[6:]) / math.fsum(row[:6]) for row in added_rows()]
    expected["late_over_early"], expected["late_over_early_se"] = mean_se(ratios)
    for pos in ("pre", "post"):
        for col, where in ((0, "first"), (1, "last")):
            m, se = mean_se(COSINE[pos][:, col])
            expected[f"cos_{pos}_{where}"] = m
            expected[f"cos_{pos}_{where}_se"] = se
    got = dataclasses.asdict(rec)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        # float64 means and standard deviations of four numbers: a few roundings
        assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name


def test_depth_summary_rejects_bad_input() -> None:
    good = fits()
    with pytest.raises(ValueError, match="corrected"):
        residual_summary.depth_summary(
            {k: v for k, v in good.items() if k != "corrected"},
            -0.4,
            added(),
            COSINE,
            rho=0.6,
        )
    with pytest.raises(ValueError, match="fits\\['pre'\\]"):
        residual_summary.depth_summary(
            {**good, "pre": good["pre"][:, :1]}, -0.4, added(), COSINE, rho=0.6
        )
    with pytest.raises(ValueError, match="added"):
        residual_summary.depth_summary(good, -0.4, added()[:, :8], COSINE, rho=0.6)
    with pytest.raises(ValueError, match="equal_updates_slope"):
        residual_summary.depth_summary(good, float("nan"), added(), COSINE, rho=0.6)
    with pytest.raises(TypeError, match="cosine\\['post'\\]"):
        residual_summary.depth_summary(
            good, -0.4, added(), {"pre": COSINE["pre"]}, rho=0.6
        )
    with pytest.raises(ValueError, match="rho"):
        residual_summary.depth_summary(good, -0.4, added(), COSINE, rho=0.0)
    with pytest.raises(TypeError, match="fits"):
        residual_summary.depth_summary([1.0], -0.4, added(), COSINE, rho=0.6)


def _sweep(cosine, depths) -> DepthSweep:
    """A made-up DepthSweep: only ``cosine`` and ``depths`` matter to the table."""
    return DepthSweep(
        depths=depths,
        seeds=np.arange(4),
        last_grad={},
        growth=np.ones((4, len(depths))),
        cosine=cosine,
        profiles={},
    )


def test_format_depth_table() -> None:
    lines = residual_summary.format_depth_table(
        np.array(SLOPES["pre"]), _sweep(COSINE, np.array([3, 24]))
    ).splitlines()
    assert lines == [
        "pre-LN slope per seed: [-0.4  -0.5  -0.55 -0.45]",
        "mean token cosine at the last block's input, L = [3, 24]:",
        "  post-LN: [0.2 0.5]",
        "   pre-LN: [0.1  0.35]",
    ]
    with pytest.raises(ValueError, match="one column per depth"):
        residual_summary.format_depth_table(
            np.array(SLOPES["pre"]), _sweep(COSINE, np.array([3, 6, 24]))
        )
    with pytest.raises(TypeError, match="depths"):
        residual_summary.format_depth_table(
            np.array(SLOPES["pre"]), _sweep(COSINE, np.array([3.0, 24.0]))
        )
    with pytest.raises(TypeError, match="sweep"):
        residual_summary.format_depth_table(np.array(SLOPES["pre"]), COSINE)
