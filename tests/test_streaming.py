"""Tests for numscale.streaming: online softmax and attention equal the two-pass result to rounding.

Error bound used throughout. Both methods compute p_i = exp(z_i − m)/s with the same
numerator; they differ only in the normaliser s (≥ 1, a sum of n terms ≤ 1). Two-pass
sums n exactly-shifted terms: relative error ≤ (n − 1)u plus one exp rounding. Online
adds per term at most one rescale product exp(m_k − m') and one rounding of z − m_k
whose effect is ≤ u·|Δ|·e^{−|Δ|} ≤ u/e: a few u per term. So
|p_online/p_two_pass − 1| ≤ c·n·u, and c = 4 is safe (u = eps/2, so 2·n·eps).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from numscale import streaming
from numscale.softmax import logsumexp, softmax


def rel_bound(n: int, dtype: type) -> float:
    """c·n·u with c = 4 and u = eps/2 (see the module docstring)."""
    return 4 * n * np.finfo(dtype).eps / 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_size", [1, 2, 3, 7, 64, 999, 1000, 5000])
def test_online_softmax_equals_two_pass(dtype, block_size):
    rng = np.random.default_rng(0)
    z = (rng.standard_normal(1000) * 10).astype(dtype)
    p2 = softmax(z)
    p1 = streaming.online_softmax(z, block_size)
    assert p1.dtype == dtype
    # relative bound c·n·u, plus the smallest normal as absolute floor for subnormal p
    np.testing.assert_allclose(
        p1, p2, rtol=rel_bound(z.size, dtype), atol=np.finfo(dtype).smallest_normal
    )


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_growing_max_rescales_every_block(order):
    # Ascending logits raise the max in every block (a rescale per block); descending never do.
    z = np.sort(np.random.default_rng(1).standard_normal(300) * 20)
    z = z if order == "ascending" else z[::-1].copy()
    for b in (1, 4, 300):
        # same c·n·u bound as above
        np.testing.assert_allclose(
            streaming.online_softmax(z, b),
            softmax(z),
            rtol=rel_bound(300, np.float64),
            atol=1e-300,
        )


def test_rows_are_independent():
    z = np.random.default_rng(2).standard_normal((5, 40)) * 3
    rows = np.stack([streaming.online_softmax(r, 6) for r in z])
    # identical arithmetic row by row: exactly equal
    np.testing.assert_array_equal(streaming.online_softmax(z, 6), rows)


def test_trace_and_logsumexp():
    z = np.array([1.0, 3.0, 2.0, 5.0, 0.0])
    states = streaming.online_state_trace(z, 2)
    assert len(states) == 3  # ceil(5/2) blocks
    assert [float(s.m) for s in states] == [3.0, 5.0, 5.0]  # running max is exact
    # s after two blocks: Σ_{j<4} exp(z_j − 5); 4 terms, bound c·n·u with n = 4
    expected = np.exp(np.array([1.0, 3.0, 2.0, 5.0]) - 5).sum()
    assert float(states[1].s) == pytest.approx(expected, rel=rel_bound(4, np.float64))
    # logsumexp from the final state: m + log s, relative error a few u on a value ~5
    assert float(streaming.online_logsumexp(z, 2)) == pytest.approx(
        float(logsumexp(z)), rel=rel_bound(5, np.float64)
    )


def test_combine_states_is_the_online_step():
    z = np.random.default_rng(3).standard_normal(64) * 5
    left = streaming.online_state_trace(z[:20], 64)[-1]
    right = streaming.online_state_trace(z[20:], 64)[-1]
    merged = streaming.combine_states(left, right)
    swapped = streaming.combine_states(right, left)
    whole = streaming.online_state_trace(z, 64)[-1]
    assert float(merged.m) == float(whole.m) == float(swapped.m)  # max is exact
    # two partial sums of ≤ 64 terms, each rescaled once: c·n·u with n = 64
    assert float(merged.s) == pytest.approx(
        float(whole.s), rel=rel_bound(64, np.float64)
    )
    assert float(swapped.s) == pytest.approx(
        float(merged.s), rel=rel_bound(64, np.float64)
    )


def test_combine_states_shape_mismatch():
    a = streaming.OnlineState(m=np.zeros(2), s=np.ones(2))
    b = streaming.OnlineState(m=np.zeros(3), s=np.ones(3))
    with pytest.raises(ValueError, match="shapes"):
        streaming.combine_states(a, b)


@pytest.mark.parametrize(
    "m, s, match",
    [
        (np.nan, 1.0, "a.m"),
        (np.inf, 1.0, "a.m"),
        (0.0, np.nan, "a.s"),
        (0.0, np.inf, "a.s"),
        (0.0, -1.0, "a.s"),
    ],
)
def test_combine_states_rejects_invalid_states(m, s, match):
    # referee report core-chapters #13: NaN and negative states used to pass silently
    bad = streaming.OnlineState(m=np.float64(m), s=np.float64(s))
    good = streaming.OnlineState(m=np.float64(0.0), s=np.float64(1.0))
    with pytest.raises(ValueError, match=match):
        streaming.combine_states(bad, good)
    with pytest.raises(ValueError, match=match.replace("a.", "b.")):
        streaming.combine_states(good, bad)


def test_combine_states_rejects_non_states():
    good = streaming.OnlineState(m=np.float64(0.0), s=np.float64(1.0))
    with pytest.raises(TypeError, match="b must be an OnlineState"):
        streaming.combine_states(good, (0.0, 1.0))
    with pytest.raises(TypeError, match="a.m must be a floating"):
        streaming.combine_states(streaming.OnlineState(m=np.int64(0), s=1.0), good)


def test_combine_states_accepts_the_empty_state():
    # (−inf, 0) is the state of no keys: merging it changes nothing, exactly
    empty = streaming.OnlineState(m=np.float64(-np.inf), s=np.float64(0.0))
    state = streaming.OnlineState(m=np.float64(2.5), s=np.float64(3.25))
    merged = streaming.combine_states(empty, state)
    assert (float(merged.m), float(merged.s)) == (2.5, 3.25)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("block_size", [1, 5, 128, 512])
def test_online_attention_equals_two_pass(dtype, block_size):
    rng = np.random.default_rng(4)
    n, dv = 512, 16
    z = (rng.standard_normal((3, n)) * 8).astype(dtype)
    v = rng.standard_normal((n, dv)).astype(dtype)
    o1 = streaming.online_attention(z, v, block_size)
    o2 = streaming.two_pass_attention(z, v)
    assert o1.shape == (3, dv) and o1.dtype == dtype
    # o_c = Σ w_j v_jc / s: each of the n terms carries a relative error of a few u (as for s),
    # so |Δo_c| ≤ c·n·u·Σ_j p_j|v_jc| (+ the same for s, absorbed in c = 4).
    scale = softmax(z.astype(np.float64)) @ np.abs(v.astype(np.float64))
    assert np.all(np.abs(o1.astype(np.float64) - o2) <= 2 * rel_bound(n, dtype) * scale)


def test_online_attention_single_row_and_one_key():
    v = np.array([[2.0, -1.0]])
    # one key: the weight is exactly 1, output is exactly v
    np.testing.assert_array_equal(
        streaming.online_attention(np.array([7.0]), v, 1), v[0]
    )


def test_block_size_errors_below_bound():
    z = (np.random.default_rng(5).standard_normal(256) * 6).astype(np.float32)
    errs = streaming.block_size_errors(z, [1, 2, 16, 256])
    assert errs.shape == (4,)
    assert np.all(errs <= rel_bound(256, np.float32))  # c·n·u, module docstring
    assert errs[-1] == 0.0  # one block = the two-pass arithmetic: identical


# ---------------------------------------------------------------- property tests

logit_rows = arrays(
    np.float64, st.integers(1, 200), elements=st.floats(-1e4, 1e4, allow_nan=False)
)


@settings(max_examples=150, deadline=None)
@given(z=logit_rows, block_size=st.integers(1, 250))
def test_property_online_equals_two_pass(z, block_size):
    p1 = streaming.online_softmax(z, block_size)
    assert np.all(np.isfinite(p1))  # finite for logits up to ±1e4
    # the sum of the probabilities is 1 to within c·n·u
    assert abs(p1.sum() - 1.0) <= rel_bound(z.size, np.float64)
    np.testing.assert_allclose(
        p1,
        softmax(z),
        rtol=rel_bound(z.size, np.float64),
        atol=np.finfo(np.float64).smallest_normal,
    )


@settings(max_examples=80, deadline=None)
@given(z=logit_rows, block_size=st.integers(1, 250), seed=st.integers(0, 2**32 - 1))
def test_property_online_attention(z, block_size, seed):
    v = np.random.default_rng(seed).standard_normal((z.size, 3))
    o1 = streaming.online_attention(z, v, block_size)
    assert np.all(np.isfinite(o1))
    scale = softmax(z) @ np.abs(v)
    assert np.all(
        np.abs(o1 - streaming.two_pass_attention(z, v))
        <= 2 * rel_bound(z.size, np.float64) * scale + 1e-300
    )


# ---------------------------------------------------------------- bad input


def test_wrong_shape():
    with pytest.raises(ValueError, match="logits"):
        streaming.online_softmax(np.zeros((2, 3, 4)), 2)
    with pytest.raises(ValueError, match="values"):
        streaming.online_attention(np.zeros(4), np.zeros((5, 2)), 2)
    with pytest.raises(ValueError, match="values"):
        streaming.online_attention(np.zeros(4), np.zeros(4), 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(bad):
    with pytest.raises(ValueError, match="logits"):
        streaming.online_softmax(np.array([0.0, bad]), 1)
    with pytest.raises(ValueError, match="values"):
        streaming.online_attention(np.zeros(2), np.array([[0.0], [bad]]), 1)


def test_empty():
    with pytest.raises(ValueError, match="logits"):
        streaming.online_softmax(np.zeros(0), 1)
    with pytest.raises(ValueError, match="logits"):
        streaming.online_softmax(np.zeros((3, 0)), 1)


def test_wrong_dtype():
    with pytest.raises(TypeError, match="logits"):
        streaming.online_softmax(np.arange(4), 2)
    with pytest.raises(TypeError, match="block_size"):
        streaming.online_softmax(np.zeros(4), 2.0)


@pytest.mark.parametrize("block_size", [0, -3])
def test_block_size_below_one(block_size):
    with pytest.raises(ValueError, match="block_size"):
        streaming.online_softmax(np.zeros(4), block_size)
    with pytest.raises(ValueError, match="block_size"):
        streaming.online_attention(np.zeros(4), np.zeros((4, 1)), block_size)


def test_swamping_counts_terms_the_sum_swallows():
    # 1 followed by 1,000 terms e^-20 ≈ 2.1e-9: in float32 each is below half an ulp of
    # 1 (2^-24 ≈ 6e-8), so the sum stays exactly 1 and the whole tail is lost
    z = np.array([0.0] + [-20.0] * 1000, dtype=np.float32)
    result = streaming.swamping(z)
    assert result.count == 1000
    tail = 1000 * math.exp(-20.0)
    lost_eps = tail / (1 + tail) / float(np.finfo(np.float32).eps)
    assert result.lost == pytest.approx(lost_eps, rel=1e-6)  # float32 rounding of −20
    assert result.error == pytest.approx(
        -result.lost, rel=1e-12
    )  # all of it, one-sided
    # in float64 half an ulp of 1 is 1.1e-16: nothing is swallowed, the error is rounding
    result64 = streaming.swamping(z.astype(np.float64))
    assert result64.count == 0 and result64.lost == 0
    assert abs(result64.error) <= 1000  # at most n·u relative, in eps: ≤ n/2


def test_swamping_rejects_a_matrix():
    with pytest.raises(ValueError, match="one row"):
        streaming.swamping(np.zeros((2, 3)))
