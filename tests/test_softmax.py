"""Unit and property tests for numscale.softmax.

Floating-point tolerances are written beside each assertion in units of the dtype's machine
epsilon eps (the spacing of floats just above 1; a correctly rounded operation errs by at
most eps/2 relative). Summing n terms errs by at most (n − 1)·eps/2 relative to the sum of
their magnitudes.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numscale import softmax

PROPERTY = settings(max_examples=120, deadline=None)
FLOATS = [np.float32, np.float64]
ROW_FUNCTIONS = [
    softmax.softmax,
    softmax.log_softmax,
    softmax.naive_softmax,
    softmax.surprisal,
]  # (..., n) -> (..., n)
REDUCING_FUNCTIONS = [softmax.logsumexp, softmax.entropy]  # (..., n) -> (...)
ALL_FUNCTIONS = ROW_FUNCTIONS + REDUCING_FUNCTIONS


def eps(dtype) -> float:
    return float(np.finfo(dtype).eps)


def logit_arrays(dtype, bound: float, max_dims: int = 3, max_side: int = 12):
    """Hypothesis strategy: arrays of ``dtype`` with finite entries in [−bound, bound]."""
    width = np.dtype(dtype).itemsize * 8
    return hnp.arrays(
        dtype,
        hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side),
        elements=st.floats(
            -bound, bound, width=width, allow_nan=False, allow_infinity=False
        ),
    )


def draw_along_an_axis(data, dtype) -> tuple[np.ndarray, int, int]:
    """Draw logits (``logit_arrays(dtype, 1e4)``), an axis of theirs (negative or not)
    and the length n along it, from Hypothesis' ``data``."""
    z = data.draw(logit_arrays(dtype, 1e4))
    axis = data.draw(st.integers(-z.ndim, z.ndim - 1))
    return z, axis, z.shape[axis]


# ----------------------------------------------------------------------------- known values


def test_softmax_known_values():
    p = softmax.softmax(np.array([0.0, math.log(2.0), math.log(5.0)]))
    np.testing.assert_allclose(p, [1 / 8, 2 / 8, 5 / 8], rtol=4 * eps(np.float64))
    np.testing.assert_allclose(
        softmax.logsumexp(np.array([0.0, math.log(3.0)])),
        math.log(4.0),
        rtol=4 * eps(np.float64),
    )


def test_uniform_logits_give_uniform_probabilities_and_maximum_entropy():
    for n in (1, 2, 50, 1000):
        z = np.full(n, 3.7)
        np.testing.assert_allclose(softmax.softmax(z), 1 / n, rtol=2 * eps(np.float64))
        # Entropy Σ (1/n)·ln n: n rounded terms, error below n·eps·ln n.
        assert softmax.entropy(z) == pytest.approx(
            math.log(n), abs=n * eps(np.float64) * max(math.log(n), 1)
        )


def test_each_axis_is_normalised_separately():
    z = np.random.default_rng(0).standard_normal((3, 4, 5))
    for axis in (0, 1, 2, -1, -3):
        p = softmax.softmax(z, axis=axis)
        np.testing.assert_allclose(p.sum(axis=axis), 1.0, atol=5 * eps(np.float64))
        np.testing.assert_allclose(
            np.exp(softmax.log_softmax(z, axis=axis)), p, rtol=16 * eps(np.float64)
        )
        assert softmax.logsumexp(z, axis=axis).shape == tuple(
            np.delete(np.array(z.shape), axis)
        )
        assert softmax.entropy(z, axis=axis).shape == tuple(
            np.delete(np.array(z.shape), axis)
        )


def test_inputs_are_not_modified():
    z = np.array([[1.0, 2.0, 800.0], [-3.0, 0.0, 3.0]])
    copy = z.copy()
    for function in ALL_FUNCTIONS:
        function(z)
        np.testing.assert_array_equal(z, copy)


def test_large_logits_naive_overflows_and_stable_does_not():
    z = np.array([1000.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither function may warn
        naive = softmax.naive_softmax(z)
        stable = softmax.softmax(z)
    assert np.isnan(naive[0])  # exp(1000) = inf, inf/inf = NaN
    np.testing.assert_array_equal(stable, [1.0, 0.0])
    assert softmax.logsumexp(z) == 1000.0
    np.testing.assert_array_equal(softmax.surprisal(z), [0.0, 1000.0])


def test_log_softmax_keeps_the_tiny_log_probability_of_the_top_entry():
    # For logits (g, 0) the top entry has log p = −log1p(e^(−g)), which 1 + e^(−g) rounds to 0
    # for g > 36.7. log_softmax computes it with log1p: relative error a few eps.
    gaps = np.array([1.0, 20.0, 36.0, 37.0, 40.0, 600.0])
    z = np.column_stack([gaps, np.zeros_like(gaps)])
    expected = np.log1p(np.exp(-gaps))
    np.testing.assert_allclose(
        softmax.surprisal(z)[:, 0], expected, rtol=4 * eps(np.float64)
    )
    np.testing.assert_allclose(
        softmax.log_softmax(z)[:, 1], -gaps - expected, rtol=4 * eps(np.float64)
    )


def test_surprisal_is_nonnegative_and_never_minus_zero():
    z = np.array([[5.0, 5.0], [800.0, 0.0], [0.0, -1e4]])
    s = softmax.surprisal(z)
    assert np.all(s >= 0) and not np.any(np.signbit(s))
    np.testing.assert_allclose(s, -softmax.log_softmax(z), rtol=0, atol=0)


def test_entropy_of_one_hot_rows_is_zero():
    assert (
        softmax.entropy(np.array([0.0, 1e4, -1e4])) == 0.0
    )  # the others underflow: 0·log 0 = 0


# ----------------------------------------------------------------------------- one_hot_gap


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_one_hot_gap_is_where_softmax_rounds_to_one(dtype):
    g = softmax.one_hot_gap(dtype)
    assert g == pytest.approx(math.log(2 / eps(dtype)), rel=1e-12)
    # 2% either side of the threshold e^(−g) = eps/2 changes e^(−g) by a factor e^(±0.02 g) ≥ 1.16:
    # far more than exp's rounding error, so the outcome on each side is certain.
    above = softmax.softmax(np.array([1.02 * g, 0.0], dtype=dtype))[0]
    below = softmax.softmax(np.array([0.98 * g, 0.0], dtype=dtype))[0]
    assert above == 1.0
    assert below < 1.0


def test_one_hot_gap_reference_values():
    assert softmax.one_hot_gap() == pytest.approx(
        36.74, abs=0.005
    )  # science notes: 36.7 (float64)
    assert softmax.one_hot_gap("float32") == pytest.approx(
        16.64, abs=0.005
    )  # 16.6 (float32)


@pytest.mark.parametrize("bad", [np.int32, "int64", bool, "no-such-dtype"])
def test_one_hot_gap_rejects_non_float_dtypes(bad):
    with pytest.raises(TypeError, match="dtype must be"):
        softmax.one_hot_gap(bad)


# ----------------------------------------------------------------------------- gaussian_logit_entropy


def test_gaussian_logit_entropy_matches_direct_computation():
    sigmas = np.array([0.0, 0.5, 3.0])
    out = softmax.gaussian_logit_entropy(10, sigmas, n_rows=200, seed=4)
    draws = np.random.default_rng(4).standard_normal((200, 10))
    expected = [softmax.entropy(s * draws).mean() for s in sigmas]
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    assert out[0] == pytest.approx(
        math.log(10), abs=10 * eps(np.float64) * math.log(10)
    )
    assert np.all(np.diff(out) < 0)  # wider logits, lower entropy


def test_gaussian_logit_entropy_small_sigma_expansion():
    # Exact cumulant expansion for one row: H = ln n − Σ_{r≥2} (r − 1) k_r / r!, with k_r the
    # empirical cumulants of the row. For iid N(0, σ²) logits E[k2] = σ²(n − 1)/n, E[k3] = 0,
    # E[k4] = −6σ⁴(n − 1)/n²; the k4 term is below 1e-5 here. Tolerance: 5 standard errors of the
    # mean over rows (per-row sd ≈ sd(k2)/2 = σ²/√(2n)) plus |E[k4]|/8 plus σ⁶ for the rest.
    n, sigma, rows = 50, 0.3, 4000
    mean_entropy = float(
        softmax.gaussian_logit_entropy(n, [sigma], n_rows=rows, seed=0)[0]
    )
    predicted = math.log(n) - sigma**2 * (n - 1) / (2 * n)
    se = sigma**2 / math.sqrt(2 * n) / math.sqrt(rows)
    assert (
        abs(mean_entropy - predicted)
        < 5 * se + 6 * sigma**4 * (n - 1) / n**2 / 8 + sigma**6
    )


def test_gaussian_entropy_expansion_small_sigma_limit():
    # ((2σ² − 1)e^{σ²} + 1)/(2n) = (σ² + 3σ⁴/2 + O(σ⁶))/(2n): the corrected form reduces to the
    # second-order expansion ln n − σ²(n − 1)/(2n), up to 3σ⁴/(4n) (+ rounding of ~1e-16).
    n, sigmas = 50, np.array([0.0, 1e-3, 1e-2])
    leading, corrected = softmax.gaussian_entropy_expansion(n, sigmas)
    np.testing.assert_array_equal(leading, np.log(n) - sigmas**2 / 2)
    second_order = np.log(n) - sigmas**2 * (n - 1) / (2 * n)
    assert np.all(np.abs(corrected - second_order) <= 0.76 * sigmas**4 / n + 1e-15)


@pytest.mark.parametrize(
    ("n", "sigma", "rows"),
    [(50, 1.0, 20_000), (1024, 0.5, 4000), (1024, 1.0, 4000), (1024, 1.5, 4000)],
)
def test_gaussian_entropy_expansion_matches_simulation(n, sigma, rows):
    # Mean entropy over iid rows against the 1/n-corrected expansion. Tolerance: 5 standard
    # errors of the mean over independent rows, plus 4·(c/n)² for the neglected next order of
    # the delta method (its size, measured at n = 50 for σ ≤ 1.25, is ≈ 3·(c/n)²).
    draws = np.random.default_rng(7).standard_normal((rows, n))
    entropies = softmax.entropy(sigma * draws)
    mean, se = entropies.mean(), entropies.std(ddof=1) / math.sqrt(rows)
    leading, corrected = (
        float(v[0]) for v in softmax.gaussian_entropy_expansion(n, [sigma])
    )
    correction = corrected - leading
    assert abs(mean - corrected) <= 5 * se + 4 * correction**2
    # positive for every σ > 0: f(x) = (2x − 1)eˣ + 1 has f(0) = 0 and f′(x) = (2x + 1)eˣ > 0
    assert correction > 0


def test_gaussian_entropy_expansion_bad_input():
    with pytest.raises(ValueError, match="sigmas must be >= 0"):
        softmax.gaussian_entropy_expansion(5, [-1.0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        softmax.gaussian_entropy_expansion(0, [1.0])
    with pytest.raises(ValueError, match="sigmas must not be empty"):
        softmax.gaussian_entropy_expansion(5, np.array([]))


def test_gaussian_logit_entropy_bad_input():
    with pytest.raises(ValueError, match="sigmas must be >= 0"):
        softmax.gaussian_logit_entropy(5, [-1.0], 10, seed=0)
    with pytest.raises(TypeError, match="sigmas must hold floating-point"):
        softmax.gaussian_logit_entropy(5, [1, 2], 10, seed=0)
    with pytest.raises(ValueError, match="sigmas must have 1 dimension"):
        softmax.gaussian_logit_entropy(5, np.ones((2, 2)), 10, seed=0)
    with pytest.raises(ValueError, match="sigmas must not be empty"):
        softmax.gaussian_logit_entropy(5, np.array([]), 10, seed=0)
    with pytest.raises(ValueError, match="n must be >= 1"):
        softmax.gaussian_logit_entropy(0, [1.0], 10, seed=0)
    with pytest.raises(ValueError, match="n_rows must be >= 1"):
        softmax.gaussian_logit_entropy(5, [1.0], 0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        softmax.gaussian_logit_entropy(5, [1.0], 10, seed=None)


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_bad_input_wrong_shape(function):
    with pytest.raises(ValueError, match="logits must have at least 1 dimension"):
        function(np.float64(1.0))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_bad_input_nonfinite(function, bad_value):
    with pytest.raises(ValueError, match="logits must be finite"):
        function(np.array([0.0, bad_value]))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize("shape", [(0,), (3, 0)])
def test_bad_input_empty(function, shape):
    with pytest.raises(ValueError, match="logits must not be empty"):
        function(np.zeros(shape))


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize(
    "bad", [np.arange(4), np.array([True, False]), [1, 2, 3], np.array([1 + 1j, 2])]
)
def test_bad_input_wrong_dtype(function, bad):
    with pytest.raises(TypeError, match="logits must hold floating-point numbers"):
        function(bad)


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
def test_bad_input_not_an_array(function):
    with pytest.raises(TypeError, match="logits"):
        function("1.0, 2.0")
    with pytest.raises(ValueError, match="logits could not be read"):
        function([[1.0, 2.0], [3.0]])


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize("axis", [2, -3, 10])
def test_bad_input_axis_out_of_range(function, axis):
    with pytest.raises(
        ValueError, match=rf"axis {axis} is out of range for logits of shape \(2, 3\)"
    ):
        function(np.zeros((2, 3)), axis=axis)


@pytest.mark.parametrize("function", ALL_FUNCTIONS)
@pytest.mark.parametrize("axis", [1.0, None, True, "0"])
def test_bad_input_axis_wrong_type(function, axis):
    with pytest.raises(TypeError, match="axis must be an integer"):
        function(np.zeros((2, 3)), axis=axis)


# ----------------------------------------------------------------------------- properties


@PROPERTY
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
def test_softmax_sums_to_one(dtype, data):
    z, axis, n = draw_along_an_axis(data, dtype)
    # The normaliser Σ e_i, the n divisions and the final sum each round: at most
    # (n − 1)/2 + 1/2 + (n − 1)/2 < n units of eps in all.
    np.testing.assert_allclose(
        softmax.softmax(z, axis=axis).sum(axis=axis, dtype=np.float64),
        1.0,
        rtol=0,
        atol=n * eps(dtype),
    )


@PROPERTY
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data(), c=st.floats(-1e4, 1e4))
def test_softmax_is_invariant_to_adding_a_constant(dtype, data, c):
    z = data.draw(logit_arrays(dtype, 1e4))
    shifted = (z + dtype(c)).astype(dtype)
    p, q = softmax.softmax(z), softmax.softmax(shifted)
    # Invariance is exact in real arithmetic. In floats, z + c rounds each entry by eps/2 of
    # |z| + |c| and z − max(z) by eps/2 again, so the exponents differ by at most
    # a = eps·(max|z| + |c|) (plus the ulp of the max, same bound), changing each e^(z − m) by a
    # relative e^a − 1 ≈ a; normalisation adds n·eps. Bound: |p − q| ≤ (2a + 2n·eps)·max(p, q).
    n = z.shape[-1]
    a = eps(dtype) * (float(np.max(np.abs(z))) + abs(float(dtype(c))) + 1.0)
    bound = (2 * a + 2 * n * eps(dtype)) * np.maximum(p, q)
    assert np.all(
        np.abs(p.astype(np.float64) - q) <= bound + np.finfo(dtype).smallest_normal
    )


@PROPERTY
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@given(data=st.data())
def test_everything_stays_finite_for_large_logits_and_keeps_the_dtype(dtype, data):
    z = data.draw(logit_arrays(dtype, 1e4))
    for function in [
        softmax.softmax,
        softmax.log_softmax,
        softmax.logsumexp,
        softmax.entropy,
        softmax.surprisal,
    ]:
        out = function(z)
        assert out.dtype == dtype, function.__name__
        assert np.all(np.isfinite(out)), function.__name__
    assert np.all((softmax.softmax(z) >= 0) & (softmax.softmax(z) <= 1))
    assert np.all(softmax.log_softmax(z) <= 0)


@PROPERTY
@pytest.mark.parametrize(("dtype", "bound"), [(np.float64, 80.0), (np.float32, 30.0)])
@given(data=st.data())
def test_softmax_matches_the_naive_formula_where_it_is_finite(dtype, bound, data):
    # With |z| <= bound neither exp(z) nor the result overflows or underflows below the smallest
    # normal (e^(−2·bound) > 1e-70 in float64, > 1e-27 in float32). The two differ only by
    # rounding: exp of the rounded z − m (relative eps·|z − m|), exp itself (a few eps) and the
    # two normalisations (n·eps each).
    z = data.draw(logit_arrays(dtype, bound))
    stable, naive = softmax.softmax(z), softmax.naive_softmax(z)
    assert np.all(np.isfinite(naive))
    n = z.shape[-1]
    spread = float(np.max(z) - np.min(z))
    rtol = eps(dtype) * (spread + 2 * n + 4)
    np.testing.assert_allclose(stable, naive, rtol=rtol, atol=0)


@PROPERTY
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
def test_log_softmax_is_log_of_softmax_where_p_is_not_tiny(dtype, data):
    z = data.draw(logit_arrays(dtype, 100.0))
    p = softmax.softmax(z).astype(np.float64)
    logp = softmax.log_softmax(z).astype(np.float64)
    keep = p > 1e-6  # |log p| < 14
    # log_softmax: (z − m) rounds by eps/2·|z − m|, log1p of a sum of n terms by n·eps/2, the
    # subtraction by eps/2·|log p|. log(softmax): p errs relatively by eps·(|z − m|/2 + n + 2),
    # which log turns into the same absolute error, plus eps/2·|log p|. Together:
    # eps·(|z − m| + 2n + |log p| + 4) with |log p| < 14.
    n = z.shape[-1]
    spread = float(np.max(z) - np.min(z))
    atol = eps(dtype) * (spread + 2 * n + 18)
    assert np.all(np.abs(logp[keep] - np.log(p[keep])) <= atol)


@PROPERTY
@pytest.mark.parametrize("dtype", FLOATS)
@given(data=st.data())
def test_entropy_lies_between_zero_and_log_n(dtype, data):
    z, axis, n = draw_along_an_axis(data, dtype)
    h = softmax.entropy(z, axis=axis)
    assert np.all(
        h >= 0
    )  # exactly: every log_softmax is <= 0 by construction, so every term is >= 0
    # Upper bound ln n, reached by uniform rows; n rounded terms of size ln(n)/n add at most
    # 4·n·eps·(ln n + 1) (a generous multiple of the summation and log error).
    assert np.all(h <= math.log(n) + 4 * n * eps(dtype) * (math.log(n) + 1))


@PROPERTY
@given(z=logit_arrays(np.float64, 50.0, max_dims=2))
def test_logsumexp_is_at_least_the_max_and_at_most_max_plus_log_n(z):
    lse = softmax.logsumexp(z)
    m = z.max(axis=-1)
    n = z.shape[-1]
    assert np.all(lse >= m)  # m + log1p(s) with s >= 0
    assert np.all(
        lse <= m + math.log(n) + 4 * eps(np.float64) * (np.abs(m) + math.log(n) + 1)
    )
