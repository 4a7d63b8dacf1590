"""Tests of numscale.stable_softmax_summary: each field against a hand recomputation on
small made-up sweeps, the format limits against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import report, streaming
from numscale import stable_softmax_summary as records
from numscale.fp import SoftmaxErrors

NAN = float("nan")


def test_exp_limits_against_definitions():
    limits = records.exp_limits(709.78, 88.72)
    # ln(2^1024 (1 − 2^-53)) = 1024 ln 2 − 2^-53 to float64 accuracy
    assert limits.lnmax64 == pytest.approx(1024 * math.log(2), rel=1e-15)
    # float32's max is 2^128 (1 − 2^-24); the log is rounded to float32 (rel 2^-24)
    assert limits.lnmax32 == pytest.approx(128 * math.log(2), rel=2**-23)
    assert (limits.thr64, limits.thr32) == (709.78, 88.72)
    lines = str(limits).splitlines()
    assert lines == [
        f"float64: ln(max) = {limits.lnmax64:.4f}, last x with finite exp: 709.78",
        f"float32: ln(max) = {limits.lnmax32:.4f}, last x with finite exp: 88.72",
    ]
    with pytest.raises(ValueError, match="thr32"):
        records.exp_limits(709.78, math.inf)


def _errors(naive_abs, stable_abs, naive_rel, stable_rel):
    arrays = [np.array(a, dtype=float) for a in (naive_abs, stable_abs)]
    rel = [np.array(a, dtype=float) for a in (naive_rel, stable_rel)]
    return SoftmaxErrors(np.array([1.0, 10.0, 100.0]), *arrays, *rel)


def test_naive_stable_summary():
    tops = np.array([1.0, 10.0, 100.0])
    errors = {
        "float32": _errors(
            [0.5, NAN, NAN], [0.25, 0.5, 0.75], [1, NAN, NAN], [1, 5, 9]
        ),
        "float64": _errors([0.5, 1.5, NAN], [0.5, 1.0, 0.5], [2, 3, NAN], [1, 2, 40]),
    }
    s = records.naive_stable_summary(errors, tops)
    assert (s.naive_last32, s.naive_last64) == (1.0, 10.0)
    # the largest absolute error of either formula: here the naive one's, 1.5 (float64)
    assert s.abs_max == 1.5
    assert (s.rel_max32, s.rel_max64, s.naive_rel_max) == (9.0, 40.0, 3.0)
    with pytest.raises(ValueError, match="float64"):
        records.naive_stable_summary({"float32": errors["float32"]}, tops)
    with pytest.raises(ValueError, match="tops"):
        records.naive_stable_summary(errors, tops[:2])


def test_format_naive_stable_table():
    errors = {
        "float32": _errors(
            [0.5, NAN, NAN], [0.25, 0.5, 0.75], [1, NAN, NAN], [1, 5, 9]
        ),
        "float64": _errors([0.5, 1.5, NAN], [0.5, 1.0, 0.5], [2, 3, NAN], [1, 2, 40]),
    }
    lines = records.format_naive_stable(errors).splitlines()
    assert [line.split() for line in lines[1:]] == [
        # name, naive: last finite top logit, max abs, max rel; stable: max abs, max rel
        ["float32", "1.0", "0.50", "1.00", "0.75", "9.0"],
        ["float64", "10.0", "1.50", "3.00", "1.00", "40.0"],
    ]
    assert "naive" in lines[0] and "stable" in lines[0] and "eps" in lines[0]
    with pytest.raises(ValueError, match="never finite"):
        records.format_naive_stable(
            {"float32": _errors([NAN] * 3, [0.1] * 3, [NAN] * 3, [1] * 3)}
        )


def test_format_online_trace_matches_the_states():
    z = np.array([1.0, 3.0, 2.0, 6.0])
    trace = streaming.online_state_trace(z, block_size=2)
    text = records.format_online_trace(trace, 6.25, 6.5)
    # block 1 [1, 3]: m = 3, s = e^-2 + 1; block 2 [2, 6]: m = 6, the old s rescaled by
    # e^(3 − 6), plus e^(2 − 6) + e^0
    s2 = (1 + math.exp(-2)) * math.exp(-3) + math.exp(-4) + 1
    assert text.splitlines() == [
        f"after block 1:  m =  3.0   s = {1 + math.exp(-2):.6f}",
        f"after block 2:  m =  6.0   s = {s2:.6f}",
        "online LSE   = 6.250000000000",
        "two-pass LSE = 6.500000000000",
    ]
    with pytest.raises(TypeError, match=r"trace\[0\]"):
        records.format_online_trace([1.0], 0.0, 0.0)


def test_format_merged_lse_one_line_per_state():
    # two one-row states: m = 2, s = 1 -> LSE 2; m = 0, s = e -> LSE 1
    a = streaming.OnlineState(m=np.array(2.0), s=np.array(1.0))
    b = streaming.OnlineState(m=np.array(0.0), s=np.array(math.e))
    assert records.format_merged_lse([a, b], 1.5).splitlines() == [
        f"merged LSE = {2.0:.15f}",
        f"merged LSE = {1.0:.15f}",
        f"two-pass   = {1.5:.15f}",
    ]
    with pytest.raises(TypeError, match="merged"):
        records.format_merged_lse(a, 1.5)
    with pytest.raises(ValueError, match="merged"):
        records.format_merged_lse([], 1.5)
    with pytest.raises(TypeError, match=r"merged\[1\]"):
        records.format_merged_lse([a, 2.0], 1.5)


def test_attention_diffs():
    d = records.attention_diffs({1: 2.5, 64: 1.5, 1000: 3.0})
    assert (d.attn_diff64, d.attn_diff_max) == (1.5, 3.0)
    with pytest.raises(ValueError, match="diffs"):
        records.attention_diffs({1: 2.5})


def test_block_size_summary():
    sweeps = {
        ("float32", "random order"): np.array([9.0, 1.0, 0.0]),
        ("float32", "increasing"): np.array([2.0, 3.0, 0.0]),
        ("float64", "random order"): np.array([1.0, 0.5, 0.0]),
    }
    s = records.block_size_summary(sweeps)
    assert report.record_numbers(s) == {
        "block_worst_eps": 9.0,
        "block_one32_eps": 9.0,
        "block_rest_eps": 3.0,
        "block_one_others_eps": 2.0,
    }
    # the worst difference away from the outlier's first entry (there it coincided):
    # a later block size of another sweep
    sweeps[("float64", "increasing")] = np.array([0.5, 12.0, 0.0])
    s = records.block_size_summary(sweeps)
    assert report.record_numbers(s) == {
        "block_worst_eps": 12.0,
        "block_one32_eps": 9.0,
        "block_rest_eps": 12.0,
        "block_one_others_eps": 2.0,
    }
    with pytest.raises(ValueError, match="sweeps"):
        records.block_size_summary(sweeps, outlier=("float16", "random order"))
    with pytest.raises(ValueError, match="besides"):
        records.block_size_summary({("float32", "random order"): np.ones(3)})


def test_swamping_summary_and_table():
    swamp = {
        "float32": streaming.Swamping(count=12, lost=3.5, error=-1.25),
        "float64": streaming.Swamping(count=0, lost=0.0, error=0.5),
    }
    s = records.swamping_summary(swamp)
    assert (s.swamped32, s.swamped_lost32, s.swamped_err32) == (12, 3.5, -1.25)
    assert (s.swamped64, s.swamped_err64) == (0, 0.5)
    assert records.format_swamping(swamp).splitlines()[0] == (
        "float32: 12 terms swamped, worth 3.5 eps of ℓ; computed ℓ off by -1.2 eps"
    )
    with pytest.raises(ValueError, match="float32"):
        records.swamping_summary({"float64": swamp["float64"]})


def test_format_tree_difference():
    rel = np.array([0.0, 0.5, 0.0, 1.25])
    assert records.format_tree_difference(rel) == (
        "the trees differ in 50% of the rows, by at most 1.25 float32 eps"
    )
    with pytest.raises(ValueError, match="rel"):
        records.format_tree_difference(np.ones((2, 2)))
