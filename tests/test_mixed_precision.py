"""Tests of numscale.mixed_precision on exact cases, torch's own scaler rule and a tiny
random llama2.c model (the real-model claims are in test_chapter_mixed_precision.py)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_fixtures import tiny_random_batch
from numscale import fp
from numscale import mixed_precision as mp
from numscale.models import llama


def test_half_format_limits_come_from_fp_format_info():
    fp16 = fp.format_info(torch.float16)
    assert fp16.max == 65504.0
    assert fp16.smallest_normal == 2.0**-14
    assert fp16.smallest_subnormal == 2.0**-24
    # the smallest subnormal is representable and half of it is not (ties to even → 0)
    assert torch.tensor(2.0**-24).half().item() == 2.0**-24
    assert torch.tensor(2.0**-25).half().item() == 0.0
    bf16 = fp.format_info(torch.bfloat16)
    assert bf16.smallest_normal == torch.finfo(torch.float32).tiny


def test_classify_exact_cases():
    values = torch.tensor([1e-9, 2.0**-20, 1e-3, 1e6, -1e-9, 0.0])
    out = mp.classify(values, torch.float16)
    # nonzero entries: 5; 1e-9 and -1e-9 flush, 2^-20 subnormal, 1e-3 normal, 1e6 inf
    assert out["n"] == 5
    assert out["zero"] == pytest.approx(2 / 5)
    assert out["subnormal"] == pytest.approx(1 / 5)
    assert out["normal"] == pytest.approx(1 / 5)
    assert out["overflow"] == pytest.approx(1 / 5)
    bf = mp.classify(values, torch.bfloat16)
    assert bf["normal"] == 1.0


def test_classify_bad_input():
    with pytest.raises(TypeError, match="values"):
        mp.classify(np.ones(3), torch.float16)
    with pytest.raises(ValueError, match="values"):
        mp.classify(torch.tensor([1.0, float("nan")]), torch.float16)
    with pytest.raises(ValueError, match="values"):
        mp.classify(torch.tensor([]), torch.float16)
    with pytest.raises(TypeError, match="dtype"):
        mp.classify(torch.ones(3), torch.float32)


def _torch_rule(scale, tracker, found, interval):
    s = torch.tensor([scale], dtype=torch.float32)
    t = torch.tensor([tracker], dtype=torch.int32)
    torch._amp_update_scale_(s, t, torch.tensor([float(found)]), 2.0, 0.5, interval)
    return float(s), int(t)


@pytest.mark.skipif(not hasattr(torch, "_amp_update_scale_"), reason="no torch op")
@settings(max_examples=50, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(1, 5))
def test_update_scale_matches_torch_gradscaler(found_infs, interval):
    # GradScaler.update calls torch._amp_update_scale_: the same rule, step by step
    state = mp.ScalerState(2.0**16)
    scale, tracker = 2.0**16, 0
    for found in found_infs:
        state = mp.update_scale(state, found, growth_interval=interval)
        scale, tracker = _torch_rule(scale, tracker, found, interval)
        assert state.scale == scale  # powers of two: exact in float32
        assert state.good_steps == tracker


def test_update_scale_documented_behaviour():
    state = mp.ScalerState(1024.0)
    state = mp.update_scale(state, True)
    assert state == mp.ScalerState(512.0, 0)  # back off ×0.5, tracker reset
    for _ in range(2):
        state = mp.update_scale(state, False, growth_interval=3)
    assert state == mp.ScalerState(512.0, 2)
    state = mp.update_scale(state, False, growth_interval=3)
    assert state == mp.ScalerState(1024.0, 0)  # grow ×2 after 3 good steps
    big = mp.update_scale(mp.ScalerState(1e308, 0), False, growth_interval=1)
    assert big.scale == 1e308  # growth to inf refused


def test_unscale_detects_inf():
    grads, found = mp.unscale({"a": torch.tensor([2.0, float("inf")])}, 2.0)
    assert found
    grads, found = mp.unscale({"a": torch.tensor([2.0, 4.0])}, 2.0)
    assert not found and torch.equal(grads["a"], torch.tensor([1.0, 2.0]))


@settings(max_examples=200, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1e-6, 1e2))
def test_swamped_is_the_half_ulp_rule(w_value, u_fraction):
    # |u| < ½ulp(w) ⇔ swamped, except at exact ties (resolved by round-to-even)
    w = torch.tensor([w_value]).to(torch.bfloat16)
    half = float(mp.half_ulp(w))
    u = torch.tensor([half * u_fraction], dtype=torch.float32)
    # the sum is formed in float32 first: an update within float32's rounding of the sum
    # (2^-24·|w + u|, doubled for safety) of the tie ½ulp rounds as the tie itself
    if abs(float(u) - half) <= 2 * 2.0**-24 * 2 * abs(float(w)):
        return
    assert bool(mp.swamped(w, u)) == (float(u) < half)


def test_swamped_fraction_and_bad_input():
    w = torch.full((4,), 1.0)
    # ½ulp(1) in bfloat16 is 2^-8: 1e-3 < 2^-8 is lost, 1e-2 is not
    u = torch.tensor([1e-3, 1e-2, -1e-3, 0.0])
    assert mp.swamped_fraction(w, u) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="differ"):
        mp.swamped_fraction(w, u[:3])
    with pytest.raises(ValueError, match="update"):
        mp.swamped_fraction(w, torch.zeros(4))


def test_stochastic_rounding_is_unbiased():
    # x = 1 + 0.25 ulp: rounds up with probability 1/4; n = 40,000 draws, the mean has
    # SE ulp·√(p(1−p)/n) ≈ 0.0022 ulp; 5 SE
    ulp = 2.0**-7
    x = torch.full((40_000,), 1.0 + 0.25 * ulp)
    rounded = mp.stochastic_round_bf16(x, torch.Generator().manual_seed(0)).float()
    assert set(rounded.unique().tolist()) == {1.0, 1.0 + ulp}
    mean_offset = float((rounded.double() - 1.0).mean() / ulp)
    assert mean_offset == pytest.approx(0.25, abs=5 * math.sqrt(0.25 * 0.75 / 40_000))
    # exact values are left alone
    exact = torch.tensor([1.0, -2.5, 0.0])
    again = mp.stochastic_round_bf16(exact, torch.Generator().manual_seed(1))
    assert torch.equal(again.float(), exact)


def test_accumulate_fixes_recover_swamped_updates():
    # u = 2^-10 on w = 1: a quarter of ½ulp, lost every step in plain bfloat16; after
    # 256 steps the exact sum is 1.25. The master copy reaches it exactly (1.25 is a
    # bfloat16 number and every float32 partial sum is exact); Kahan too.
    w0 = torch.ones(8)
    u = torch.full((8,), 2.0**-10)
    assert torch.equal(mp.accumulate(w0, u, 256, "bfloat16"), w0)
    assert torch.equal(mp.accumulate(w0, u, 256, "fp32 master"), torch.full((8,), 1.25))
    assert torch.equal(mp.accumulate(w0, u, 256, "Kahan"), torch.full((8,), 1.25))
    sr = mp.accumulate(
        torch.ones(4096),
        torch.full((4096,), 2.0**-10),
        256,
        "stochastic rounding",
        seed=1,
    )
    # unbiased: each rounding error has mean 0 and variance ≤ ulp²/4 (ulp = 2^-7 in
    # [1, 2)), so one walk's error has SD ≤ √256·ulp/2 = 8 ulp and the mean of 4,096
    # independent walks SD ≤ 8 ulp/64; 5 of those
    assert float(sr.mean()) == pytest.approx(1.25, abs=5 * 8 * 2.0**-7 / 64)
    done = mp.realized_fraction(w0, mp.accumulate(w0, u, 256, "Kahan"), u, 256)
    assert done["moved"] == pytest.approx(1.0, abs=1e-12)
    assert done["frozen"] == 0.0
    with pytest.raises(ValueError, match="rule"):
        mp.accumulate(w0, u, 3, "float8")


def test_adam_eps():
    g = torch.tensor([1e-10, 1e-3, -1.0])
    fractions = mp.eps_dominated_fraction(g, [1e-8, 1e-2]).tolist()
    assert fractions == pytest.approx([1 / 3, 2 / 3])
    # scale-free when ε ≪ |g| (relative change below 1e-6 for |g| ≥ 1e-3 at ε = 1e-12)
    assert abs(mp.scale_sensitivity(torch.tensor([1e-3, 1.0]), 1e-12, 0.1)) < 1e-6
    # SGD-like when |g| ≪ ε: the update shrinks with the gradient
    sgd_like = mp.scale_sensitivity(torch.tensor([1e-12]), 1e-6, 0.1)
    assert sgd_like == pytest.approx(-0.9, rel=1e-4)


def test_parameter_gradients_match_autograd_and_scale_linearly():
    weights, tokens, mask = tiny_random_batch(2)
    model = llama.LlamaModel(weights)
    loss, grads = mp.parameter_gradients(model, tokens, mask)
    _, scaled = mp.parameter_gradients(model, tokens, mask, loss_scale=1024.0)
    assert loss == pytest.approx(math.log(300), rel=0.05)  # near-uniform at init
    for name, g in grads.items():
        # a power-of-two scale: every float32 operation scales exactly (no underflow)
        torch.testing.assert_close(scaled[name] / 1024.0, g, rtol=1e-6, atol=1e-30)
    assert set(grads) == {n for n, _ in model.named_parameters()}


def test_train_fp16_backs_off_then_applies():
    weights, tokens, mask = tiny_random_batch(2)
    # at initialization (stream RMS 0.02) RMSNorm's backward overflows float16 at any
    # scale; an embedding of unit-size entries, as after training, does not
    weights = dataclasses.replace(weights, token_embedding=weights.token_embedding * 50)
    run = mp.train_fp16(
        weights, [(tokens, mask)] * 40, init_scale=2.0**40, growth_interval=2
    )
    # 2^40 overflows float16 (its gradients exceed 65504): skipped, halved each time
    assert run.skipped[0]
    first = int(np.argmin(run.skipped))
    assert first > 0 and np.all(run.skipped[:first])
    assert run.scale[first] == 2.0**40 / 2**first
    assert run.loss[-1] < run.loss[first]  # SGD steps on one batch lower its loss
