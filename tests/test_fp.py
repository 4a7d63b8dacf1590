"""Tests for numscale.fp: format ranges, overflow thresholds, mask sentinels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import fp
from references import FORMAT_LAYOUTS

SOFTMAX_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


def next_up(x: float, dtype: torch.dtype, step: int = 1) -> float:
    """The representable value ``step`` places above positive x in the format (below if step < 0)."""
    return float(fp.value_of_bits(fp.bits_of(x, dtype) + step, dtype).double())


def spacing_at(x: float, dtype: torch.dtype) -> float:
    """Gap between positive x and the next larger value of the format (its ulp at x)."""
    return next_up(x, dtype) - float(
        torch.tensor(x, dtype=torch.float64).to(dtype).double()
    )


@pytest.mark.parametrize("dtype", list(fp.FORMATS.values()))
def test_format_info_matches_finfo(dtype):
    info = fp.format_info(dtype)
    fi = torch.finfo(dtype)
    assert (info.max, info.smallest_normal, info.eps) == (
        fi.max,
        fi.smallest_normal,
        fi.eps,
    )
    assert info.bits == 1 + info.exponent_bits + info.mantissa_bits
    # max = (2 − 2^{−m})·2^{emax} for IEEE-like formats; here only ln(max) consistency: exact by definition
    assert info.ln_max == math.log(fi.max)
    assert info.has_inf == (dtype != torch.float8_e4m3fn)  # E4M3FN: finite and NaN only


def test_e4m3fn_conversion_of_infinities_in_this_torch():
    # Measured, implementation-defined behaviour the chapter glues (issue 9, point 1): torch
    # saturates ±inf and out-of-range values to ±448 (bits 0x7E / 0xFE); only NaN stays NaN
    # (0x7F). If a torch release changes this, the chapter's prose must change with it.
    stored, bits = fp.stored_in_format(
        [math.inf, -math.inf, math.nan, 1000.0, -1000.0], torch.float8_e4m3fn
    )
    assert stored[:2] == [448.0, -448.0] and math.isnan(stored[2])
    assert stored[3:] == [448.0, -448.0]
    assert bits == [0x7E, 0xFE, 0x7F, 0x7E, 0xFE]
    # E5M2 has infinities (IEEE-like): +inf stays +inf, bits 0x7C
    stored, bits = fp.stored_in_format([math.inf], torch.float8_e5m2)
    assert stored == [math.inf] and bits == [0x7C]


def test_stored_in_format_bits_are_unsigned_patterns():
    # IEEE half: −1.0 is 0xBC00, +inf 0x7C00 (not negative two's-complement integers)
    assert fp.stored_in_format([-1.0, math.inf], torch.float16)[1] == [0xBC00, 0x7C00]
    assert fp.stored_in_format([1.0], torch.float32) == ([1.0], [0x3F800000])
    with pytest.raises(ValueError, match="values"):
        fp.stored_in_format([], torch.float16)
    with pytest.raises(TypeError, match="dtype"):
        fp.stored_in_format([1.0], np.float16)


def test_known_layouts():
    # bit layouts defined by IEEE 754 / the bfloat16 and OCP FP8 specifications
    layouts = {
        name: (fp.format_info(dt).exponent_bits, fp.format_info(dt).mantissa_bits)
        for name, dt in fp.FORMATS.items()
    }
    assert layouts == FORMAT_LAYOUTS


def test_markdown_table_has_a_row_per_format():
    table = fp.markdown_table(list(fp.FORMATS.values()))
    lines = table.splitlines()
    assert len(lines) == 2 + len(fp.FORMATS)
    assert (
        "| float8_e4m3fn | 1+4+3 | 448 |" in table
        and "| float16 | 1+5+10 | 65,504 |" in table
    )


def test_value_of_bits_round_trip():
    assert float(fp.value_of_bits(0x3C00, torch.float16)) == 1.0  # IEEE half 1.0
    assert float(fp.value_of_bits(0x3F80, torch.bfloat16)) == 1.0
    assert float(fp.value_of_bits(0x3F800000, torch.float32)) == 1.0
    assert float(fp.value_of_bits(0x7E, torch.float8_e4m3fn).float()) == 448.0


@pytest.mark.parametrize("dtype", list(fp.FORMATS.values()))
def test_exp_threshold_is_a_boundary(dtype):
    x = fp.exp_overflow_threshold(dtype)
    xt = torch.tensor(x, dtype=torch.float64).to(dtype)
    assert float(xt.double()) == x  # representable
    assert fp.exp_fits(xt.reshape(1))
    # one representable step up, exp no longer fits: the threshold is exact
    nxt = torch.tensor(next_up(x, dtype), dtype=torch.float64).to(dtype)
    assert not fp.exp_fits(nxt.reshape(1))
    # and it sits within one spacing of ln(max): exp(x) ≤ max < exp(x + spacing)
    assert x <= math.log(torch.finfo(dtype).max) + 1e-12
    assert x + spacing_at(x, dtype) > math.log(torch.finfo(dtype).max) - 1e-12


def test_exp_thresholds_known_values():
    # ln(max) of float64 / float32, to the printed precision of the science notes
    assert fp.exp_overflow_threshold(torch.float64) == pytest.approx(709.78, abs=0.005)
    assert fp.exp_overflow_threshold(torch.float32) == pytest.approx(88.72, abs=0.005)
    # float16: ln(65504) = 11.0899; the largest half below it is 11.0859375 (spacing 2^-7)
    assert fp.exp_overflow_threshold(torch.float16) == 11.0859375


def test_largest_positive_where_requires_true_at_zero():
    with pytest.raises(ValueError, match="holds"):
        fp.largest_positive_where(torch.float16, lambda x: False)
    assert fp.largest_positive_where(torch.float16, lambda x: True) == 65504.0


def softmax_against_zero(x: float, dtype: torch.dtype) -> torch.Tensor:
    """softmax([x, 0]) computed in ``dtype`` (shape (2,)), x rounded to the format."""
    xt = torch.tensor(x, dtype=torch.float64).to(dtype)
    return torch.softmax(torch.stack([xt, torch.zeros((), dtype=dtype)]), dim=0)


@pytest.mark.parametrize("dtype", SOFTMAX_DTYPES)
def test_softmax_one_gap(dtype):
    g = fp.softmax_one_gap(dtype)
    assert float(softmax_against_zero(g, dtype)[0]) == 1.0
    assert float(softmax_against_zero(next_up(g, dtype, -1), dtype)[0]) < 1.0
    # rounding argument: 1 + e^{−g} rounds to 1 for e^{−g} ≤ u (in-format arithmetic) or the
    # float32 result 1 − e^{−g} rounds to 1 in the format for e^{−g} < u/2 (upcasting kernels):
    # g lies between ln(1/u) and ln(2/u), within one spacing of the format.
    u = torch.finfo(dtype).eps / 2
    assert (
        math.log(1 / u) - spacing_at(g, dtype)
        <= g
        <= math.log(2 / u) + spacing_at(g, dtype)
    )


@pytest.mark.parametrize("dtype", SOFTMAX_DTYPES)
def test_softmax_zero_gap(dtype):
    g = fp.softmax_zero_gap(dtype)
    assert float(softmax_against_zero(g, dtype)[1]) == 0.0
    assert float(softmax_against_zero(next_up(g, dtype, -1), dtype)[1]) > 0.0
    # exp(−g) rounds to 0 below half the smallest subnormal s: g ≈ ln 2 − ln s, within one
    # spacing of the format near g (ln s from the bit layout: s = smallest normal · eps).
    fi = torch.finfo(dtype)
    predicted = math.log(2) - math.log(fi.smallest_normal) - math.log(fi.eps)
    assert abs(g - predicted) <= spacing_at(g, dtype)
    assert g > fp.softmax_one_gap(dtype)  # the top weight is 1 long before this


def test_softmax_one_gap_measured_values():
    # float64 / float32 arithmetic in-format: threshold ln(1/u) to the format's spacing
    assert fp.softmax_one_gap(torch.float64) == pytest.approx(
        53 * math.log(2), abs=1e-12
    )
    assert fp.softmax_one_gap(torch.float32) == pytest.approx(
        24 * math.log(2), abs=4e-6
    )  # float32 spacing at 16 is 2e-6


def test_dot_logits_std():
    z = fp.dot_logits(64, 40_000, seed=0)
    # std of q·k is √d = 8; relative SE of a sample std: √((1 + 3/d)/(2n)) = 0.0036, 5 SE
    assert z.std() == pytest.approx(8.0, rel=5 * math.sqrt((1 + 3 / 64) / (2 * 40_000)))
    # the scale multiplies every logit exactly (same seed, same draws)
    np.testing.assert_allclose(
        fp.dot_logits(64, 10, seed=1, scale=0.125),
        fp.dot_logits(64, 10, seed=1) * 0.125,
        rtol=1e-15,
    )


def test_exp_overflow_fraction_float16():
    z = fp.dot_logits(64, 100_000, seed=0)
    frac = fp.exp_overflow_fraction(z, torch.float16)
    threshold = math.log(torch.finfo(torch.float16).max)
    p = fp.normal_dot_tail(threshold, 64)
    # binomial SE √(p(1−p)/n) = 0.00087; allow 5 SE
    assert frac == pytest.approx(p, abs=5 * math.sqrt(p * (1 - p) / z.size))
    # the overflow set is exactly the logits above the float16 threshold, up to logits that
    # round across it when cast to float16 (a spacing of 2^-7 around 11.09: a fraction ~1e-4)
    assert abs(frac - float(np.mean(z > threshold))) < 1e-3
    assert fp.exp_overflow_fraction(z, torch.float32) == 0.0  # no logit reaches 88.7


def test_normal_dot_tail():
    # d → ∞: q·k/√d → N(0,1); at d = 4000, Φ̄(1) = 0.1587 within the 1/d kurtosis correction
    assert fp.normal_dot_tail(math.sqrt(4000), 4000) == pytest.approx(
        0.5 * math.erfc(1 / math.sqrt(2)), abs=2e-3
    )
    assert fp.normal_dot_tail(0.0, 10) == pytest.approx(
        0.5, abs=1e-6
    )  # symmetric: half above 0
    # Monte Carlo check at small d where the tail is heavier than Gaussian (kurtosis 3 + 6/d)
    z = fp.dot_logits(4, 200_000, seed=2)
    p = fp.normal_dot_tail(6.0, 4)
    assert np.mean(z > 6.0) == pytest.approx(
        p, abs=5 * math.sqrt(p * (1 - p) / z.size)
    )  # 5 binomial SE
    assert p > 0.5 * math.erfc(6.0 / 2 / math.sqrt(2))  # heavier than the Gaussian tail


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_masked_rows(dtype):
    n = 5
    uniform = torch.full((n,), 1 / n, dtype=dtype)
    # finite fill and max subtraction: every logit equals the max, exp(0) = 1, uniform weights
    assert torch.equal(
        fp.masked_row_softmax(n, float(torch.finfo(dtype).min), dtype), uniform
    )
    # −inf fill: −inf − (−inf) = NaN
    assert torch.isnan(fp.masked_row_softmax(n, -math.inf, dtype)).all()
    # no max subtraction: exp(very negative) = 0, so 0/0 = NaN even with a finite fill
    assert torch.isnan(
        fp.masked_row_softmax(
            n, float(torch.finfo(dtype).min), dtype, subtract_max=False
        )
    ).all()


def test_minus_1e9_in_float16():
    assert float(torch.tensor(-1e9).to(torch.float16)) == -math.inf  # |−1e9| > 65504
    assert torch.isnan(fp.masked_row_softmax(4, -1e9, torch.float16)).all()
    assert torch.equal(
        fp.masked_row_softmax(4, -1e9, torch.float32), torch.full((4,), 0.25)
    )
    assert torch.equal(
        fp.masked_row_softmax(4, -1e9, torch.bfloat16),
        torch.full((4,), 0.25, dtype=torch.bfloat16),
    )
    # finfo(float32).min (−3.4e38) is as far out of float16's range as −1e9
    assert (
        float(torch.tensor(torch.finfo(torch.float32).min).to(torch.float16))
        == -math.inf
    )


def test_e4m3_spacing_between_4_and_8():
    # 3 mantissa bits: 8 values per binade, so [4, 8) is spaced 4/8 = 0.5 apart (exact)
    assert next_up(4.0, torch.float8_e4m3fn) == 4.5
    assert next_up(7.5, torch.float8_e4m3fn) == 8.0
    assert (
        float(torch.tensor([5.3]).to(torch.float8_e4m3fn).float()[0]) == 5.5
    )  # nearest of 5.0, 5.5


def test_hugging_face_masks_use_finfo_min():
    # the chapter says HF's mask utilities fill with torch.finfo(dtype).min, not a constant
    import inspect

    masking_utils = pytest.importorskip("transformers.masking_utils")
    assert "torch.finfo(dtype).min" in inspect.getsource(masking_utils)


# ---------------------------------------------------------------- bad input


def test_wrong_dtype():
    with pytest.raises(TypeError, match="dtype"):
        fp.format_info(np.float16)
    with pytest.raises(TypeError, match="dtype"):
        fp.format_info(torch.int32)
    with pytest.raises(TypeError, match="dtype"):
        fp.format_info(torch.complex64)
    with pytest.raises(TypeError, match="logits"):
        fp.exp_overflow_fraction(np.arange(3), torch.float16)
    with pytest.raises(TypeError, match="fill"):
        fp.masked_row_softmax(3, "big", torch.float16)


@pytest.mark.parametrize(
    "call, kernel",
    [
        (lambda: fp.softmax_one_gap(torch.float8_e4m3fn), "softmax"),
        (lambda: fp.softmax_zero_gap(torch.float8_e5m2), "softmax"),
        (lambda: fp.exp_overflow_fraction(np.zeros(3), torch.float8_e5m2), "exp"),
    ],
)
def test_unsupported_format(call, kernel):
    # the fp8 formats have no softmax or exp kernel: each helper that runs one says so
    with pytest.raises(ValueError, match=f"dtype .* no {kernel} kernel"):
        call()


def test_wrong_shape_nonfinite_empty():
    with pytest.raises(ValueError, match="logits"):
        fp.exp_overflow_fraction(np.zeros((2, 2)), torch.float16)
    with pytest.raises(ValueError, match="logits"):
        fp.exp_overflow_fraction(np.array([0.0, np.nan]), torch.float16)
    with pytest.raises(ValueError, match="logits"):
        fp.exp_overflow_fraction(np.zeros(0), torch.float16)
    with pytest.raises(ValueError, match="fill"):
        fp.masked_row_softmax(3, math.nan, torch.float16)
    with pytest.raises(ValueError, match="dtypes"):
        fp.markdown_table([])


def test_bad_sizes():
    with pytest.raises(ValueError, match="d"):
        fp.dot_logits(0, 10, seed=0)
    with pytest.raises(ValueError, match="scale"):
        fp.dot_logits(4, 10, seed=0, scale=-1.0)
    with pytest.raises(ValueError, match="n"):
        fp.masked_row_softmax(0, -1.0, torch.float16)


# ---------------------------------------------------------------- tables and error sweeps


def test_to_markdown():
    table = fp.to_markdown(["a", "b"], [[1, "x"], [2.5, "y"]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | x |", "| 2.5 | y |"]
    with pytest.raises(ValueError, match="rows"):
        fp.to_markdown(["a", "b"], [[1]])
    with pytest.raises(ValueError, match="header"):
        fp.to_markdown([], [])


def test_softmax_errors():
    row = np.random.default_rng(0).standard_normal(30)
    tops = np.array([1.0, 50.0, 80.0, 100.0, 800.0])
    e32 = fp.softmax_errors(row, tops, np.float32)
    e64 = fp.softmax_errors(row, tops, np.float64)
    # naive fails exactly where the top logit passes ln(max): float32 above 88.72, float64 above 709.78
    assert np.array_equal(
        np.isnan(e32.naive_abs), tops > np.log(np.finfo(np.float32).max)
    )
    assert np.array_equal(
        np.isnan(e64.naive_abs), tops > np.log(np.finfo(np.float64).max)
    )
    # the stable softmax always works; absolute error: exp (≤1 ulp), a sum of n = 30 terms
    # (≤ (n−1)u relative) and one division: a few eps at most for p ≤ 1
    for e in (e32, e64):
        assert np.all(np.isfinite(e.stable_abs)) and np.all(e.stable_abs <= 4)
    # relative error of the shifted formula: u·|z_i − m| from rounding z_i − m, plus the same few
    # eps; the largest |z_i − m| is (max − min)/max · top
    spread = (row.max() - row.min()) / row.max()
    assert np.all(e64.stable_rel <= 0.5 * spread * tops + 4 * 30)
    # naive relative error, while finite: exp of an exact input (≤ 1 ulp) and the same sum: ≤ c·n·u
    assert np.nanmax(e64.naive_rel) <= 2 * 30


def test_exact_softmax_known_values():
    from decimal import Decimal, localcontext

    # logits 0, ln 2, ln 5 rounded to float64: p = (1, 2, 5)/8 up to the rounding of ln 2 and
    # ln 5 (relative ≤ 2^-53 each, so p moves by ≤ 1e-16 relative); the 40-digit reference must
    # sit within that, far tighter than any float64 softmax (which errs by ~1e-16 itself).
    p = fp.exact_softmax(np.array([0.0, math.log(2.0), math.log(5.0)]))
    for got, want in zip(p, (1 / 8, 2 / 8, 5 / 8)):
        assert abs(float(got) - want) <= 2e-16 * want
    assert abs(sum(p) - 1) < Decimal("1e-38")  # 40 digits: the sum is 1 to ~n·1e-40
    # a two-logit row has the closed form p_top = 1 / (1 + e^(−g)); Decimal's exp is correctly
    # rounded to 40 digits, so the reference matches a 40-digit evaluation of the closed form
    g = 30.0
    top = fp.exact_softmax(np.array([g, 0.0]))[0]
    with localcontext() as ctx:
        ctx.prec = 40
        assert abs(top - 1 / (1 + (-Decimal(g)).exp())) < Decimal("1e-39")


def test_softmax_errors_do_not_depend_on_long_double(monkeypatch):
    # The reference is decimal, not np.longdouble (float64 on macOS/arm64, 80-bit on x86):
    # making long double float64 must not change a single value.
    row = np.random.default_rng(2).standard_normal(20)
    tops = np.array([1.0, 30.0, 300.0])
    before = fp.softmax_errors(row, tops, np.float64)
    monkeypatch.setattr(np, "longdouble", np.float64)
    after = fp.softmax_errors(row, tops, np.float64)
    for name in ("naive_abs", "stable_abs", "naive_rel", "stable_rel"):
        np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
    # and float64's own stable softmax is seen to err: at top = 300 the relative error of the
    # smallest entries is u·|z_i − m| ≈ 1e-16·300·(spread/max) ≫ 0, which a float64 reference
    # could not resolve at all on a platform whose long double is float64
    assert before.stable_rel[-1] > 1


def test_softmax_errors_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        fp.softmax_errors(np.ones(3), np.ones(2), np.float16)
    with pytest.raises(ValueError, match="row"):
        fp.softmax_errors(-np.ones(3), np.ones(2), np.float32)
    with pytest.raises(ValueError, match="tops"):
        fp.softmax_errors(np.ones(3), np.array([1.0, -1.0]), np.float32)
    with pytest.raises(ValueError, match="row"):
        fp.softmax_errors(np.ones((2, 3)), np.ones(2), np.float32)


def test_gpt2_config_has_reorder_and_upcast_attn():
    # the chapter cites this Hugging Face flag; it exists and is off by default
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config()
    assert config.reorder_and_upcast_attn is False


def test_fp8_roundtrip_unscaled_is_a_plain_cast():
    x = np.array([[1.0, 0.3, 1e-3, 1e-6], [448.0, 1000.0, -2.0, 0.0]])
    for dt in fp.FP8:
        expected = torch.from_numpy(x).to(dt).double().numpy()
        np.testing.assert_array_equal(fp.fp8_roundtrip(x, dt, scaled=False), expected)


def test_fp8_roundtrip_scaled_maps_each_row_max_to_the_format_max():
    # with its scale, each row's largest entry is stored exactly (it becomes max_finite), and
    # every entry above the scaled smallest normal keeps a relative error ≤ eps/2 (round to
    # nearest); a zero row stays zero
    rng = np.random.default_rng(3)
    x = np.vstack([rng.uniform(1e-3, 1.0, (4, 64)), np.zeros((1, 64))])
    for dt in fp.FP8:
        fi = torch.finfo(dt)
        out = fp.fp8_roundtrip(x, dt, scaled=True)
        rows = x[:4]
        top = rows.argmax(axis=1)
        np.testing.assert_allclose(
            out[np.arange(4), top], rows[np.arange(4), top], rtol=1e-15
        )
        normal = rows * (fi.max / rows.max(axis=1, keepdims=True)) >= fi.smallest_normal
        rel = np.abs(out[:4] - rows)[normal] / rows[normal]
        assert rel.max() <= fi.eps / 2 * (1 + 1e-12)
        assert np.all(out[4] == 0)


def test_fp8_roundtrip_bad_input():
    with pytest.raises(ValueError, match="fp8"):
        fp.fp8_roundtrip(np.ones((2, 2)), torch.float16, scaled=True)
    with pytest.raises(ValueError, match="values"):
        fp.fp8_roundtrip(np.ones(3), torch.float8_e4m3fn, scaled=True)
    with pytest.raises(ValueError, match="values"):
        fp.fp8_roundtrip(np.array([[np.inf, 1.0]]), torch.float8_e4m3fn, scaled=False)
    with pytest.raises(TypeError, match="dtype"):
        fp.fp8_roundtrip(np.ones((2, 2)), np.float16, scaled=False)
