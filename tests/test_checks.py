"""Unit tests for numscale.checks: every validator accepts good input unchanged and rejects
bad input with the right exception type and a message that names the argument."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from numscale import checks
from numscale.checks import as_float_array, finite_float, positive_int, rng_from

PROPERTY = settings(max_examples=60, deadline=None)


# ----------------------------------------------------------------------------- as_float_array


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_as_float_array_keeps_float_dtype_and_values(dtype):
    x = np.array([[1.5, -2.0], [0.25, 3.0]], dtype=dtype)
    out = as_float_array(x, "x", ndim=2)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, x)


def test_as_float_array_reads_nested_lists():
    out = as_float_array([[1.0, 2.0], [3.0, 4.0]], "x")
    assert out.shape == (2, 2) and out.dtype == np.float64


def test_as_float_array_reads_torch_tensors():
    torch = pytest.importorskip("torch")
    out = as_float_array(torch.tensor([1.0, 2.0], dtype=torch.float32), "x")
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    # bfloat16 has no NumPy dtype: it is widened to float32, exactly (every bfloat16 is a float32).
    bf = as_float_array(torch.tensor([1.5, -3.0], dtype=torch.bfloat16), "x")
    assert bf.dtype == np.float32
    np.testing.assert_array_equal(bf, [1.5, -3.0])


def test_as_float_array_ndim_tuple():
    assert as_float_array(np.zeros(3), "x", ndim=(1, 2)).ndim == 1
    with pytest.raises(ValueError, match=r"x must have 1 or 2 dimension"):
        as_float_array(np.zeros((1, 1, 1)), "x", ndim=(1, 2))


def test_as_float_array_wrong_shape():
    with pytest.raises(
        ValueError, match=r"queries must have 2 dimension\(s\), got shape \(3,\)"
    ):
        as_float_array(np.zeros(3), "queries", ndim=2)


@pytest.mark.parametrize(
    "bad",
    [
        np.arange(3),
        np.array([True, False]),
        [1, 2, 3],
        np.array([1 + 2j]),
        np.array(["a"]),
        np.array([1.0, None]),
    ],
)
def test_as_float_array_wrong_dtype(bad):
    with pytest.raises(TypeError, match="logits must hold floating-point numbers"):
        as_float_array(bad, "logits")


@pytest.mark.parametrize("bad", ["1.0", b"1.0", None])
def test_as_float_array_rejects_strings_and_none(bad):
    with pytest.raises(TypeError, match="logits must be an array of floats"):
        as_float_array(bad, "logits")


def test_as_float_array_ragged():
    with pytest.raises(ValueError, match="logits could not be read as an array"):
        as_float_array([[1.0, 2.0], [3.0]], "logits")


def test_as_float_array_empty():
    with pytest.raises(ValueError, match="logits must not be empty"):
        as_float_array(np.zeros((0, 3)), "logits")
    assert as_float_array(np.zeros((0, 3)), "logits", allow_empty=True).shape == (0, 3)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_as_float_array_nonfinite(bad_value):
    with pytest.raises(ValueError, match="logits must be finite"):
        as_float_array(np.array([0.0, bad_value]), "logits")
    out = as_float_array(np.array([0.0, bad_value]), "logits", allow_nonfinite=True)
    assert out.shape == (2,)


@PROPERTY
@given(
    hnp.arrays(
        hnp.floating_dtypes(),
        hnp.array_shapes(min_dims=0, max_dims=3),
        elements={"allow_nan": False, "allow_infinity": False},
    )
)
def test_as_float_array_passes_any_finite_float_array_through(x):
    out = as_float_array(x, "x", allow_empty=True)
    assert out.dtype == x.dtype and out.shape == x.shape
    np.testing.assert_array_equal(out, x)


# ----------------------------------------------------------------------------- positive_int


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_as_float_tensor_returns_the_same_tensor(dtype):
    import torch

    x = torch.ones(2, 3, dtype=getattr(torch, dtype), requires_grad=True)
    out = checks.as_float_tensor(x, "x", ndim=(1, 2))
    assert out is x and out.requires_grad  # no copy, no detach


@pytest.mark.parametrize("bad", [np.ones(3), [1.0, 2.0], 1.5, None, "x"])
def test_as_float_tensor_rejects_non_tensors(bad):
    with pytest.raises(TypeError, match="logits must be a torch.Tensor"):
        checks.as_float_tensor(bad, "logits")


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool", "complex64"])
def test_as_float_tensor_wrong_dtype(dtype):
    import torch

    with pytest.raises(TypeError, match="logits must hold floating-point"):
        checks.as_float_tensor(torch.zeros(3, dtype=getattr(torch, dtype)), "logits")


def test_as_float_tensor_wrong_shape_and_empty():
    import torch

    with pytest.raises(ValueError, match="logits must have 2 dimension"):
        checks.as_float_tensor(torch.zeros(3), "logits", ndim=2)
    with pytest.raises(ValueError, match="logits must have 1 or 3 dimension"):
        checks.as_float_tensor(torch.zeros(2, 3), "logits", ndim=(1, 3))
    with pytest.raises(ValueError, match="logits must not be empty"):
        checks.as_float_tensor(torch.zeros(0, 4), "logits")
    assert (
        checks.as_float_tensor(torch.zeros(0), "logits", allow_empty=True).numel() == 0
    )


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_as_float_tensor_nonfinite(bad_value):
    import torch

    x = torch.tensor([1.0, bad_value], requires_grad=True)
    with pytest.raises(ValueError, match="logits must be finite"):
        checks.as_float_tensor(x, "logits")
    assert checks.as_float_tensor(x, "logits", allow_nonfinite=True) is x


@pytest.mark.parametrize("dtype", ["int64", "int32", "int16", "uint8"])
def test_as_index_tensor_returns_int64(dtype):
    import torch

    ids = torch.tensor([[0, 3], [2, 1]], dtype=getattr(torch, dtype))
    out = checks.as_index_tensor(ids, "ids", ndim=2, high=4)
    assert out.dtype == torch.int64 and torch.equal(out, ids.long())
    assert checks.as_index_tensor(out, "ids") is out  # int64 passes through


def test_as_index_tensor_bad_input():
    import torch

    ids = torch.tensor([[0, 3], [2, 1]])
    with pytest.raises(TypeError, match="ids must be a torch.Tensor"):
        checks.as_index_tensor(ids.numpy(), "ids")
    for bad in (ids.float(), ids.bool(), ids.to(torch.complex64)):
        with pytest.raises(TypeError, match="ids must hold integer"):
            checks.as_index_tensor(bad, "ids")
    with pytest.raises(ValueError, match="ids must have 2 dimension"):
        checks.as_index_tensor(ids[0], "ids", ndim=2)
    with pytest.raises(ValueError, match="ids must not be empty"):
        checks.as_index_tensor(ids[:, :0], "ids")
    with pytest.raises(ValueError, match=r"ids must lie in \[0, 3\)"):
        checks.as_index_tensor(ids, "ids", high=3)  # 3 is out of range
    with pytest.raises(ValueError, match="ids must lie in"):
        checks.as_index_tensor(ids - 1, "ids")  # -1 is out of range
    assert checks.as_index_tensor(ids, "ids", high=4) is ids  # the edge 3 < 4 is in


def test_positive_int_accepts_python_and_numpy_ints():
    assert positive_int(3, "n") == 3
    out = positive_int(np.int64(7), "n")
    assert out == 7 and type(out) is int
    assert positive_int(0, "seed", minimum=0) == 0


@pytest.mark.parametrize("bad", [2.0, "3", None, True, np.float64(2.0)])
def test_positive_int_wrong_type(bad):
    with pytest.raises(TypeError, match="n_pairs must be an integer"):
        positive_int(bad, "n_pairs")


@pytest.mark.parametrize(("value", "minimum"), [(0, 1), (-3, 1), (1, 2)])
def test_positive_int_below_minimum(value, minimum):
    with pytest.raises(ValueError, match=f"d must be >= {minimum}, got {value}"):
        positive_int(value, "d", minimum=minimum)


@PROPERTY
@given(st.integers(-1000, 1000), st.integers(-10, 10))
def test_positive_int_accepts_exactly_the_integers_at_or_above_minimum(value, minimum):
    if value >= minimum:
        assert positive_int(value, "n", minimum=minimum) == value
    else:
        with pytest.raises(ValueError, match="n must be"):
            positive_int(value, "n", minimum=minimum)


# ----------------------------------------------------------------------------- finite_float


def test_finite_float_accepts_reals():
    assert finite_float(2, "scale") == 2.0 and type(finite_float(2, "scale")) is float
    assert finite_float(np.float32(0.5), "scale") == 0.5
    assert finite_float(-1.5, "scale") == -1.5


@pytest.mark.parametrize("bad", ["1.0", None, True, np.array([1.0]), 1 + 1j])
def test_finite_float_wrong_type(bad):
    with pytest.raises(TypeError, match="scale must be a real number"):
        finite_float(bad, "scale")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_finite_float_nonfinite(bad):
    with pytest.raises(ValueError, match="scale must be finite"):
        finite_float(bad, "scale")


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_finite_float_positive(bad):
    assert finite_float(bad, "scale") == bad
    with pytest.raises(ValueError, match="scale must be > 0"):
        finite_float(bad, "scale", positive=True)


# ----------------------------------------------------------------------------- rng_from


def test_rng_from_int_is_seeded():
    a = rng_from(42).standard_normal(5)
    b = rng_from(42).standard_normal(5)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, np.random.default_rng(42).standard_normal(5))
    assert not np.array_equal(a, rng_from(43).standard_normal(5))
    assert isinstance(rng_from(np.int64(1)), np.random.Generator)


def test_rng_from_passes_generators_through():
    rng = np.random.default_rng(0)
    assert rng_from(rng) is rng


def test_rng_from_does_not_touch_global_state():
    np.random.seed(123)
    expected = np.random.random_sample(3)
    np.random.seed(123)
    rng_from(5).standard_normal(100)
    np.testing.assert_array_equal(np.random.random_sample(3), expected)


@pytest.mark.parametrize("bad", [None, 1.5, "0", True, np.random.RandomState(0)])
def test_rng_from_wrong_type(bad):
    with pytest.raises(TypeError, match="seed must be an int or np.random.Generator"):
        rng_from(bad)
    with pytest.raises(TypeError, match="seeds must be"):
        rng_from(bad, "seeds")


# ------------------------------------------------------------------------------ float_dtype


@pytest.mark.parametrize(
    "dtype", [np.float16, np.float32, "float64", np.dtype("float32")]
)
def test_float_dtype_accepts_floating_dtypes(dtype):
    assert np.issubdtype(checks.float_dtype(dtype), np.floating)


@pytest.mark.parametrize("dtype", [np.int32, "int64", bool, "not-a-dtype", 3.5])
def test_float_dtype_rejects_others_naming_the_argument(dtype):
    with pytest.raises(TypeError, match="precision"):
        checks.float_dtype(dtype, "precision")


# ------------------------------------------------------------------------------ spawn_rngs


def test_spawn_rngs_is_reproducible_and_prefix_stable():
    first = [g.standard_normal(4) for g in checks.spawn_rngs(7, 3)]
    again = [g.standard_normal(4) for g in checks.spawn_rngs(7, 5)]
    # Same seed: the first three streams are identical whether 3 or 5 are spawned.
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    # Different streams differ (identical float64 draws would be a 2^-53-chance event).
    assert not np.array_equal(first[0], first[1])


@pytest.mark.parametrize(
    "bad, error", [(-1, ValueError), (1.5, TypeError), (None, TypeError)]
)
def test_spawn_rngs_rejects_bad_seeds(bad, error):
    with pytest.raises(error, match="seed"):
        checks.spawn_rngs(bad, 2)


def test_of_type_returns_the_record_or_names_what_is_wrong():
    from numscale.streaming import OnlineState

    assert checks.of_type(3, int, "n") == 3
    with pytest.raises(TypeError, match=r"^summary must be an OnlineState, got dict$"):
        checks.of_type({}, OnlineState, "summary")
    with pytest.raises(TypeError, match=r"^rec must be a Path, got int$"):
        checks.of_type(3, Path, "rec")
