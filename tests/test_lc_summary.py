"""Tests of numscale.lc_summary: each record against numbers worked out by hand on
small made-up inputs (exact arithmetic or closed forms), the tables it formats, and
bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import lc_summary
from numscale.long_context import IidAttention

N = np.array([16, 128, 512, 1024])
FORMULA = np.log(N) - 0.5  # σ = 1
OFFSET = np.array([0.03, -0.01, 0.02, -0.005])


def iid_case():
    plain = IidAttention(
        N, FORMULA + OFFSET, np.array([0.01, 0.01, 0.004, 0.005]), N * 0.0, N * 0.0
    )
    signal = IidAttention(
        N, N * 0.0, N * 0.0, np.array([0.9, 0.8, 0.6, 0.4]), N * 0.0 + 0.01
    )
    scaled = IidAttention(
        N, N * 0.0, N * 0.0, np.array([0.9, 0.8, 0.6, 0.55]), N * 0.0 + 0.01
    )
    weights = (np.array([0.95, 0.8, 0.6, 0.42]), np.array([0.95, 0.8, 0.6, 0.57]))
    c_of_n = np.array([1.0, 1.0, 1.0, 1.11])
    return plain, signal, scaled, FORMULA, weights, c_of_n


def test_iid_summary_by_hand():
    r = lc_summary.iid_summary(*iid_case(), sigma=1.0, at_train=2, large_n=128)
    # over n ≥ 128: SEs 0.01, 0.004, 0.005; gaps 0.01, 0.02, 0.005 = 1, 5, 1 SE
    assert r.max_entropy_se == pytest.approx(0.01)
    assert r.max_entropy_gap == pytest.approx(0.02)
    assert r.max_entropy_gap_se == pytest.approx(5)
    assert r.gap_first == pytest.approx(0.03)
    assert r.gap_first_se == 0.01  # the SE at the smallest n, not at a large one
    # the delta-method correction ((2σ² − 1)e^{σ²} + 1)/(2n) at σ = 1, n = 16
    assert r.gap_first_predicted == pytest.approx((math.e + 1) / 32, rel=1e-12)
    # deficits ln n − H = 0.5 − offset: 0.47, 0.51, 0.48, 0.505
    assert (r.deficit_min, r.deficit_max) == pytest.approx((0.47, 0.51))
    assert (r.w_first, r.w_at_train, r.w_last) == (0.9, 0.6, 0.4)
    assert (r.w_at_train_scaled, r.w_last_scaled) == (0.6, 0.55)
    assert (r.w_formula_last, r.w_formula_last_scaled) == (0.42, 0.57)
    assert r.c_last == 1.11


def test_iid_summary_bad_input():
    plain, signal, scaled, formula, weights, c_of_n = iid_case()
    kw = dict(sigma=1.0, at_train=2, large_n=128)
    other = IidAttention(N * 2, *(np.zeros(4) for _ in range(4)))
    with pytest.raises(ValueError, match="same n"):
        lc_summary.iid_summary(plain, other, scaled, formula, weights, c_of_n, **kw)
    with pytest.raises(TypeError, match="scaled"):
        lc_summary.iid_summary(plain, signal, {}, formula, weights, c_of_n, **kw)
    with pytest.raises(ValueError, match="entropy_formula"):
        lc_summary.iid_summary(
            plain, signal, scaled, formula[:3], weights, c_of_n, **kw
        )
    arrays = (plain, signal, scaled, formula, weights, c_of_n)
    for bad, at_train, large_n in (("at_train", 4, 128), ("large_n", 2, 2048)):
        with pytest.raises(ValueError, match=bad):
            lc_summary.iid_summary(
                *arrays, sigma=1.0, at_train=at_train, large_n=large_n
            )


def test_format_iid():
    plain, signal, scaled, formula, *_ = iid_case()
    lines = lc_summary.format_iid(plain, formula, signal, scaled).splitlines()
    assert len(lines) == 4
    assert lines[0] == (
        f"n =    16: H {formula[0] + 0.03:.3f} (ln n − σ²/2 = {formula[0]:.3f});  "
        "signal weight 0.900, log-n scaled 0.900"
    )


BY_LAYER = np.array([[0.0, 1.0, 2.0, 3.0], [0.0, 0.5, 1.0, 1.5]])  # (L = 2, T = 4)


def test_position_summary_by_hand():
    r = lc_summary.position_summary(BY_LAYER, [0.25, 0.75], forward_match=1e-7)
    assert r.forward_match == 1e-7
    # second half t = 2, 3: layer means 2.5 and 1.25
    assert (r.h_late_min, r.h_late_max) == (1.25, 2.5)
    assert r.uniform_late == pytest.approx((math.log(3) + math.log(4)) / 2)
    # H/ln(t+1) for T/2 ≤ t < T, i.e. t = 2, 3: layer 1 has 2/ln 3 and 3/ln 4, layer 2
    # half of that; the larger layer mean, and the largest single value
    assert r.norm_late_max == pytest.approx((2 / math.log(3) + 3 / math.log(4)) / 2)
    assert r.norm_late_peak == pytest.approx(3 / math.log(4))
    assert (r.slope_min, r.slope_max) == (0.25, 0.75)


def test_position_summary_bad_input():
    with pytest.raises(ValueError, match="slope"):
        lc_summary.position_summary(BY_LAYER, [1.0], forward_match=0.0)
    with pytest.raises(ValueError, match="by_layer"):
        lc_summary.position_summary(np.ones((2, 2)), [1.0, 1.0], forward_match=0.0)
    with pytest.raises(ValueError, match="forward_match"):
        lc_summary.position_summary(BY_LAYER, [1.0, 1.0], forward_match=math.nan)


def test_format_position():
    text = lc_summary.format_position(BY_LAYER, [0.25, 0.751])
    assert text.splitlines() == [
        "per layer, t in [2, 4):",
        "  mean entropy (nats):      [2.5  1.25]",
        # (2/ln 3 + 3/ln 4)/2 = 1.99 and half of it; largest 3/ln 4 = 2.16 and half
        "  H / ln(t+1), mean over t: [1.99 1.  ]",
        "  H / ln(t+1), largest:     [2.16 1.08]",
        "slope dH / d ln(t+1) per layer: [0.25 0.75]",
    ]


INSIDE = (
    np.array([[1.0, 1.0, 1.0, 1.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 0.0, 0.0]]),
    np.array([[1.0, 1.0, 2.0, 2.0], [2.0, 2.0, 4.0, 4.0], [0.0, 0.0, 0.0, 0.0]]),
)
# two windows of 6 positions, n_train 4: changes past 4 of −0.5 and +1.5
BEYOND = (
    np.array([[1.0] * 6, [3.0] * 6]),
    np.array([[1.0] * 4 + [0.5] * 2, [3.0] * 4 + [4.5] * 2]),
)


def test_paired_change_by_hand():
    each, mean, se = lc_summary.paired_change(INSIDE, slice(2, None))
    np.testing.assert_array_equal(each, [1.0, 2.0, 0.0])
    assert mean == 1.0
    assert se == pytest.approx(1 / math.sqrt(3))  # std(1, 2, 0; ddof 1) = 1


def test_scaling_summary_by_hand():
    r = lc_summary.scaling_summary(
        INSIDE,
        BEYOND,
        np.array([1.0, 1.2]),
        np.array([1.0, 1.3]),
        n_short=2,
        n_train=4,
    )
    assert r.inside_loss == 1.0  # (1 + 1 + 2 + 2 + 0 + 0) / 6
    assert (r.inside_diff, r.inside_se) == (1.0, pytest.approx(1 / math.sqrt(3)))
    assert r.inside_z == pytest.approx(math.sqrt(3))
    assert r.inside_df == 2
    # Student t on 2 degrees of freedom: two-sided p = 1 − |t|/√(t² + 2)
    assert r.inside_p == pytest.approx(1 - math.sqrt(3 / 5), abs=1e-6)
    assert r.inside_worse == 2
    assert (r.beyond_loss_in, r.beyond_loss_out) == (2.0, 2.0)
    assert r.beyond_diff == 0.5  # mean of −0.5 and +1.5
    assert r.beyond_se == pytest.approx(1.0)  # std(−0.5, 1.5; ddof 1) / √2
    assert (r.c_short_max, r.c_long_max) == (1.2, 1.3)


def test_scaling_summary_bad_input():
    with pytest.raises(ValueError, match="inside"):
        lc_summary.scaling_summary(
            INSIDE[:1], BEYOND, np.ones(2), np.ones(2), n_short=2, n_train=4
        )
    with pytest.raises(ValueError, match="beyond"):
        lc_summary.scaling_summary(
            INSIDE,
            (BEYOND[0], BEYOND[1][:, :5]),
            np.ones(2),
            np.ones(2),
            n_short=2,
            n_train=4,
        )
    with pytest.raises(ValueError, match="n_train"):
        lc_summary.scaling_summary(
            INSIDE, BEYOND, np.ones(2), np.ones(2), n_short=2, n_train=6
        )


def test_format_scaling():
    r = lc_summary.scaling_summary(
        INSIDE, BEYOND, np.ones(2), np.ones(2), n_short=2, n_train=4
    )
    assert lc_summary.format_scaling(r, 2, 4) == (
        "inside, n_train = 2: loss 1.0000, change +1.0000 ± 0.5774\n"
        "beyond 4: loss 2.0000 (t < 4), 2.0000 (t ≥ 4); change +0.5000 ± 1.0000"
    )


def kernel_case(flash_default=True):
    errors = {
        (c, name): e
        for c, e0 in ((0.5, 1e-16), (1.0, 2e-16))
        for name, e in (("flash (CPU)", e0), ("math", 3 * e0))
    }
    default = {key: key[1] == "flash (CPU)" for key in errors}
    if not flash_default:
        default[1.0, "flash (CPU)"] = False
    return errors, default


def test_kernel_summary_by_hand():
    r = lc_summary.kernel_summary(*kernel_case())
    assert r.sdpa_max_diff == 6e-16
    assert r.default_is_flash == 1
    assert r.eps64 == 2.0**-52
    assert lc_summary.kernel_summary(*kernel_case(False)).default_is_flash == 0


def test_kernel_summary_bad_input():
    errors, default = kernel_case()
    with pytest.raises(ValueError, match="kernel_errors"):
        lc_summary.kernel_summary({}, default)
    with pytest.raises(ValueError, match="default_is"):
        lc_summary.kernel_summary(errors, {(0.5, "math"): True})
    with pytest.raises(ValueError, match="flash"):
        lc_summary.kernel_summary(errors, default, flash="cuda")


def test_format_kernels():
    errors, default = kernel_case()
    lines = lc_summary.format_kernels(errors, default).splitlines()
    assert lines[1] == (
        "c = 0.5: math        vs explicit exp2 softmax 3.0e-16, "
        "identical to the default call: False"
    )


def test_rope_summary_by_hand():
    offsets = np.array(
        [[[0.0, 1.0, 2.0], [0.0, 0.0, 5.0]], [[1.0, 8.0, 0.0], [1.0, 2.0, 1.5]]]
    )  # ranges: layer 1: 2, 5; layer 2: 8, 1
    r = lc_summary.rope_summary(
        [1.0, 1.0 + 2**-40, 1.0 - 2**-40],
        1e-15,
        np.array([3.0, 4.0]),
        np.array([1.0, 0.0]),
        offsets,
    )
    assert r.rope_spread == 2.0**-39
    assert r.rope_norm_change == 1e-15
    assert r.bound == 5.0
    assert r.offset_range_max == 8.0
    assert (r.offset_range_layer, r.offset_range_head) == (2, 1)
    assert r.offset_range_layer1 == 5.0


def test_rope_summary_bad_input():
    q = np.ones(2)
    with pytest.raises(ValueError, match="offsets"):
        lc_summary.rope_summary([1.0, 1.0], 0.0, q, q, np.ones((2, 3)))
    with pytest.raises(ValueError, match="norm_change"):
        lc_summary.rope_summary([1.0, 1.0], math.inf, q, q, np.ones((1, 1, 3)))
