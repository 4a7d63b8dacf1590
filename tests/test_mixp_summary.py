"""Tests of numscale.mixp_summary: each record against numbers worked out by hand on
small made-up inputs (exact arithmetic, or the format's rounding rule), the tables it
formats, and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import mixed_precision, mixp_summary


def test_range_summary_counts_by_hand():
    # float16: 1e-9 is below half the smallest subnormal 2^-24 (5.96e-8): zero;
    # 1e-6 lies between 2^-24 and the smallest normal 2^-14: subnormal
    grads = {
        "token_embedding": torch.tensor([1e-9, 1.0]),
        "w": torch.tensor([1e-9, 1e-6, -0.5]),
    }
    fp16 = mixed_precision.classify_tensors(grads, torch.float16)
    bf16 = mixed_precision.classify_tensors(grads, torch.bfloat16)
    flat = torch.cat([g.flatten() for g in grads.values()])
    r = mixp_summary.range_summary(fp16, bf16, flat, n_tokens=7)
    assert (r.fp16_max, r.fp16_tiny, r.fp16_subnormal) == (65504.0, 2**-14, 2**-24)
    assert r.bf16_tiny == 2.0**-126
    assert (r.n_grads, r.n_tokens) == (5, 7)
    assert r.fp16_zero_pct == pytest.approx(40)  # 2 of 5
    assert r.fp16_subnormal_pct == pytest.approx(20)  # 1 of 5
    assert r.fp16_emb_zero_pct == pytest.approx(50)  # 1 of 2
    assert (r.bf16_zero_pct, r.bf16_subnormal_pct) == (0, 0)
    assert r.grad_abs_max == 1.0
    assert r.grad_abs_median == pytest.approx(1e-6)  # median of 5 absolute values


def test_format_classes():
    table = {"w": {"zero": 0.125, "subnormal": 0.5}}
    assert mixp_summary.format_classes(table) == (
        "w                float16: zero  12.5%  subnormal  50.0%"
    )


def test_range_summary_bad_input():
    table = {"all": {"zero": 0, "subnormal": 0, "n": 1}}
    with pytest.raises(ValueError, match="fp16_table"):
        mixp_summary.range_summary(table, table, torch.ones(2), 1)
    with pytest.raises(TypeError, match="bf16_table"):
        mixp_summary.range_summary({**table, "token_embedding": {}}, [1], None, 1)


def scale_case():
    exponents = np.array([0, 4, 8, 12])
    cast = [
        {"zero": 0.3, "overflow": 0.0},
        {"zero": 0.1, "overflow": 0.0},
        {"zero": 0.02, "overflow": 0.0},
        {"zero": 0.0, "overflow": 0.25},
    ]
    sweep = {
        "zero": np.array([0.4, 0.2, 0.05, 0.5]),
        "nonfinite": np.array([0.0, 0.0, 0.6, 0.9]),
    }
    flat = torch.tensor([4096.0, 1.0, 2.0, 3.0])
    short_grads = {"a": torch.tensor([2048.0, -1.0]), "b": torch.tensor([5.0])}
    fine_k = np.array([5, 6, 7, 8])
    fine = {"zero": np.zeros(4), "nonfinite": np.array([0.0, 0.0, 0.1, 0.5])}
    return exponents, cast, sweep, flat, short_grads, fine_k, fine


def test_scale_summary_by_hand():
    r = mixp_summary.scale_summary(*scale_case())
    assert r.headroom_log2 == pytest.approx(math.log2(65504 / 4096))
    assert r.headroom_floor == 3  # 65504/4096 = 15.99
    # safe (no overflow): k = 0, 4, 8; least lost 2% at k = 8
    assert (r.best_k, r.best_lost_pct) == (8, pytest.approx(2.0))
    assert r.no_scale_lost_pct == pytest.approx(30)
    # overflow first at k = 12, 25% of 4 entries
    assert (r.first_overflow_k, r.first_overflow_n) == (12, 1)
    # backward: finite at k = 0, 4; fewest zeros (20%) at k = 4; inf first at k = 8
    assert r.half_zero_pct_s1 == pytest.approx(40)
    assert (r.half_zero_pct_min, r.half_zero_min_k) == (pytest.approx(20), 4)
    assert r.half_first_inf_k == 8
    assert r.short_grad_abs_max == 2048.0
    assert r.short_headroom_log2 == pytest.approx(math.log2(65504 / 2048))
    assert r.half_first_inf_fine_k == 7


def test_scale_summary_refuses_grids_without_a_transition():
    # no finite backward, a backward that never overflows, a cast that never
    # overflows, a fine grid without inf: there is no first overflow to report
    exponents, cast, sweep, flat, short_grads, fine_k, fine = scale_case()
    for nonfinite in (np.full(4, 0.5), np.zeros(4)):
        bad = {"zero": sweep["zero"], "nonfinite": nonfinite}
        with pytest.raises(ValueError, match="sweep must both fit and overflow"):
            mixp_summary.scale_summary(
                exponents, cast, bad, flat, short_grads, fine_k, fine
            )
    safe_cast = [dict(c, overflow=0.0) for c in cast]
    with pytest.raises(ValueError, match="cast must both fit and overflow"):
        mixp_summary.scale_summary(
            exponents, safe_cast, sweep, flat, short_grads, fine_k, fine
        )
    no_inf = {"zero": fine["zero"], "nonfinite": np.zeros(4)}
    with pytest.raises(ValueError, match="fine must overflow"):
        mixp_summary.scale_summary(
            exponents, cast, sweep, flat, short_grads, fine_k, no_inf
        )


def test_scale_summary_bad_input():
    exponents, cast, sweep, flat, short_grads, fine_k, fine = scale_case()
    with pytest.raises(TypeError, match="exponents"):
        mixp_summary.scale_summary(
            exponents * 1.0, cast, sweep, flat, short_grads, fine_k, fine
        )
    with pytest.raises(ValueError, match="cast"):
        mixp_summary.scale_summary(
            exponents, cast[:2], sweep, flat, short_grads, fine_k, fine
        )
    with pytest.raises(ValueError, match="sweep"):
        mixp_summary.scale_summary(
            exponents, cast, {"zero": 1}, flat, short_grads, fine_k, fine
        )
    with pytest.raises(ValueError, match="fine"):
        mixp_summary.scale_summary(
            exponents, cast, sweep, flat, short_grads, fine_k[:2], fine
        )
    with pytest.raises(ValueError, match="short_grads"):
        mixp_summary.scale_summary(exponents, cast, sweep, flat, {}, fine_k, fine)


def test_format_scale_sweep():
    exponents, cast, sweep, *_ = scale_case()
    lines = mixp_summary.format_scale_sweep(exponents, cast, sweep).splitlines()
    assert len(lines) == 4
    assert lines[3] == (
        "S = 2^12: cast zero  0.00%, overflow 25.0000% | fp16 backward zero 50.00%, "
        "inf/NaN 90.00%"
    )


def run(scale, skipped, zero):
    return mixed_precision.Fp16Run(
        np.array(scale, dtype=float),
        np.array(skipped),
        np.zeros(len(scale)),
        np.array(zero),
    )


def test_dynamic_summary_by_hand():
    r = mixp_summary.dynamic_summary(
        run(
            [2.0**24, 2.0**23, 2.0**22, 2.0**22, 2.0**23],
            [True, True, False, False, True],
            [0.5, 0.5, 0.01, 0.02, 0.3],
        )
    )
    assert (r.dyn_skipped, r.dyn_applied, r.dyn_first_good) == (3, 2, 2)
    assert (r.dyn_first_good_log2, r.dyn_log2_min) == (22.0, 22.0)
    assert r.dyn_zero_pct_max == pytest.approx(2.0)  # applied steps only


def test_dynamic_summary_every_step_skipped():
    r = mixp_summary.dynamic_summary(run([4.0, 2.0], [True, True], [0.1, 0.2]))
    assert (r.dyn_first_good, r.dyn_applied) == (2, 0)
    assert r.dyn_first_good_log2 == 0.0  # the last scale, 2, halved
    assert r.dyn_zero_pct_max == 0.0


def test_format_run_and_bad_input():
    text = mixp_summary.format_run(run([8.0, 4.0], [True, False], [0.0, 0.0]))
    assert text == "log2 S: [3 2]\nskipped: [1 0]"
    with pytest.raises(TypeError, match="run"):
        mixp_summary.dynamic_summary({"scale": [1.0]})
    with pytest.raises(ValueError, match="run"):
        mixp_summary.format_run(run([], [], []))


def test_swamp_summary_by_hand():
    # bfloat16 around 1: spacing 2^-7 above, 2^-8 below (bottom of the binade), so an
    # update is lost below 2^-8 = 0.0039 upwards and 2^-9 = 0.00195 downwards; around
    # 0.5 the spacing above is 2^-8 (lost below 0.00195).
    w = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.5])
    direction = torch.tensor([1.0, 1e-3, 0.0, -1.0, -2.0])
    eps_small = torch.tensor([False, True, True, False, False])
    swamp = {0.003: (0.1, 0.2), 1e-4: (0.3, 0.4)}
    # updates −0.003·direction: −0.003 (kept), −3e-6 (lost), 0 (no update),
    # +0.003 (lost), +0.006 at 0.5 (kept)
    r = mixp_summary.swamp_summary(w, direction, eps_small, swamp)
    assert r.sgd_swamped_pct == {"0": pytest.approx(10), "1": pytest.approx(30)}
    assert r.adam_swamped_pct == {"0": pytest.approx(20), "1": pytest.approx(40)}
    assert r.adam_lost_eps_share_0 == pytest.approx(50)  # 1 of the 2 lost
    assert r.adam_sign_like_swamped_pct_0 == pytest.approx(100 / 3)  # 1 of 3
    assert r.w_abs_median == 1.0


def test_swamp_summary_bad_input():
    w, d = torch.ones(3), torch.ones(3)
    mask = torch.zeros(3, dtype=torch.bool)
    with pytest.raises(TypeError, match="eps_small"):
        mixp_summary.swamp_summary(w, d, torch.zeros(3), {1e-3: (0, 0)})
    with pytest.raises(ValueError, match="one shape"):
        mixp_summary.swamp_summary(w, torch.ones(2), mask, {1e-3: (0, 0)})
    with pytest.raises(ValueError, match="swamp"):
        mixp_summary.swamp_summary(w, d, mask, {})


def test_format_swamp():
    assert mixp_summary.format_swamp({1e-3: (0.5, 0.0625)}) == (
        "lr 1e-03: SGD  50.0% swamped, Adam-like   6.2%"
    )


def fixes_case():
    lrs = (1e-4, 1e-5)
    fixes = {
        (lr, rule): {"moved": i + j / 10, "frozen": j / 100, "relative_error": -i}
        for i, lr in enumerate(lrs)
        for j, rule in enumerate(mixed_precision.RULES)
    }
    w_sample = torch.tensor([1.0, 2.0, 3.0, 4.0])
    finals = {(1e-5, "fp32 master"): torch.tensor([1.0, 2.0, 3.5, 4.0])}
    direction = torch.tensor([1.0, 0.0, 1.0, 1.0])
    eps_small = torch.tensor([True, True, False, False])
    return fixes, finals, w_sample, direction, eps_small


def test_fixes_summary_by_hand():
    r = mixp_summary.fixes_summary(*fixes_case())
    assert r.moved["bf16_0"] == 0.0 and r.moved["sr_1"] == pytest.approx(1.3)
    assert r.frozen["kahan_1"] == 0.02 and r.relative_error["master_1"] == -1
    assert len(r.moved) == len(r.frozen) == len(r.relative_error) == 8
    # frozen by the master copy at 1e-5: entries 0 and 3 (entry 1 has no update);
    # of them entry 0 is ε-dominated
    assert r.frozen_master_eps_share_1 == pytest.approx(50)


def test_fixes_summary_bad_input():
    fixes, finals, w_sample, direction, eps_small = fixes_case()
    one_lr = {k: v for k, v in fixes.items() if k[0] == 1e-4}
    with pytest.raises(ValueError, match="two learning rates"):
        mixp_summary.fixes_summary(one_lr, finals, w_sample, direction, eps_small)
    with pytest.raises(TypeError, match="fixes"):
        mixp_summary.fixes_summary([], finals, w_sample, direction, eps_small)


def test_format_fixes():
    text = mixp_summary.format_fixes(
        {(1e-4, "Kahan"): {"moved": 0.5, "frozen": 0.25, "relative_error": 1.0}}
    )
    assert text == (
        "lr 1e-04 Kahan                moved 0.500  frozen 0.250  relative error 1.000"
    )


def test_eps_summary_by_hand():
    eps_grid = 10.0 ** np.arange(-12, -1)  # 1e-8 is entry 4, 1e-6 entry 6, 1e-4 8
    dominated = np.arange(11) / 100
    emb, rest = dominated / 2, dominated / 4
    grads = {
        "token_embedding": torch.tensor([1e-9, 1e-3, 1e-2]),
        "w": torch.tensor([1.0, -2.0, 3.0]),
    }
    r = mixp_summary.eps_summary(eps_grid, dominated, emb, rest, grads)
    assert (r.eps8_pct, r.eps6_pct, r.eps4_pct) == pytest.approx((4, 6, 8))
    assert r.eps8_emb_pct == pytest.approx(2)
    assert (r.eps6_rest_pct, r.eps4_rest_pct) == pytest.approx((1.5, 2))
    assert r.rest_median == 2.0
    assert r.emb_median == pytest.approx(1e-3)
    # Adam's first update g/(|g| + ε), independently: only the 1e-9 entry feels ε
    g = torch.cat(list(grads.values())).double()
    norm = (g / (g.abs() + 1e-8)).norm()
    scaled = (1e-3 * g / (1e-3 * g.abs() + 1e-8)).norm()
    assert r.sens_eps8 == pytest.approx(100 * float(scaled / norm - 1), rel=1e-9)
    assert r.sens_eps8 < 0  # the ε-dominated entry shrinks with the loss


def test_eps_summary_bad_input():
    grid = np.array([1e-8, 1e-6])
    grads = {"token_embedding": torch.ones(2)}
    with pytest.raises(ValueError, match="eps_grid"):
        mixp_summary.eps_summary(grid, np.ones(3), np.ones(2), np.ones(2), grads)
    with pytest.raises(ValueError, match="token_embedding"):
        mixp_summary.eps_summary(
            grid, np.ones(2), np.ones(2), np.ones(2), {"w": torch.ones(2)}
        )


def test_format_eps():
    assert mixp_summary.format_eps(np.array([1e-8]), [0.5], [0.0125]) == (
        "eps 1e-08: embedding  50.0% dominated, other weights  1.25%"
    )


def test_rule_keys_cover_the_rules():
    assert tuple(mixp_summary.RULE_KEYS) == mixed_precision.RULES
