"""Tests of numscale.logit_caps: the soft cap and its gradient, the z-loss, the cap
sweep and the fine-tuning run on a tiny random llama2.c model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llama_fixtures import tiny_random_batch
from numscale import logit_caps as lc
from numscale.models import llama, llama_weights, next_token


@settings(max_examples=100, deadline=None)
@given(st.floats(-1e3, 1e3), st.floats(0.5, 100))
def test_soft_cap_bounded_and_gradient_matches_autograd(z_value, cap):
    z = torch.tensor([z_value], dtype=torch.float64, requires_grad=True)
    out = lc.soft_cap(z, cap)
    assert abs(float(out.detach())) <= cap
    out.sum().backward()
    # both are 1 − tanh² in float64: agree to a few ulp
    assert float(z.grad) == pytest.approx(
        float(lc.soft_cap_grad(z.detach(), cap)), abs=1e-15
    )


def test_soft_cap_small_logits_pass():
    z = torch.tensor([0.1, -0.2], dtype=torch.float64)
    # c·tanh(z/c) = z − z³/(3c²) + 2z⁵/(15c⁴) − …: the next term is ≤ 5.3e-11 here
    torch.testing.assert_close(
        lc.soft_cap(z, 30.0), z - z**3 / (3 * 900.0), rtol=0, atol=1e-10
    )


def test_z_loss_and_log_partition():
    z = torch.zeros(3, 4, dtype=torch.float64)
    torch.testing.assert_close(
        lc.log_partition(z), torch.full((3,), math.log(4), dtype=torch.float64)
    )
    assert float(lc.z_loss(z, 1e-4)) == pytest.approx(1e-4 * math.log(4) ** 2)
    # gradient with respect to logit i is 2·c·log Z·p_i / (positions)
    z = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    lc.z_loss(z, 0.5).backward()
    log_z = torch.logsumexp(z.detach(), -1)
    expected = 2 * 0.5 * log_z * torch.softmax(z.detach(), -1)
    torch.testing.assert_close(z.grad, expected)


def test_capped_bad_input():
    with pytest.raises(ValueError, match="cap"):
        lc.capped(torch.ones(3), -1.0)
    with pytest.raises(TypeError, match="z"):
        lc.capped(np.ones(3), 5.0)
    with pytest.raises(ValueError, match="z"):
        lc.capped(torch.tensor([float("inf")]), 5.0)


def test_cap_sweep_uncapped_equals_llama_loss_and_large_cap_is_inactive():
    weights, tokens, mask = tiny_random_batch(4)
    model = llama.LlamaModel(weights)
    sweep = lc.cap_sweep(model, tokens, mask, [0.01, 1e6], batch_size=3)
    sums, counts = next_token.story_losses(model, tokens, mask)
    np.testing.assert_allclose(sweep.sums[0], sums, rtol=1e-5)  # float32 vs float64
    np.testing.assert_array_equal(sweep.counts, counts)
    # a cap of 1e6 changes logits of size ~0.1 by z³/(3c²) ~ 1e-15: no loss change
    np.testing.assert_allclose(sweep.sums[2], sweep.sums[0], rtol=1e-9)
    # a cap of 0.01 squeezes every logit into ±0.01: the loss is ln(vocab) within 0.02
    assert sweep.max_logit[1] <= 0.01
    per_token = sweep.sums[1].sum() / sweep.counts.sum()
    assert per_token == pytest.approx(math.log(300), abs=0.02)


def test_final_hidden_reproduces_logits():
    weights, tokens, mask = tiny_random_batch(4)
    model = llama.LlamaModel(weights)
    h, z = lc.final_hidden(model, tokens, mask)
    torch.testing.assert_close(
        h @ model.token_embedding.detach().T, z, rtol=1e-5, atol=1e-6
    )
    assert h.shape[0] == int(mask.sum())
    scales = lc.embedding_scales(weights.token_embedding, h, z)
    # init entries are N(0, 0.02²): RMS 0.02 within 5 SE of a std from 4,800 draws
    assert scales.entry_rms == pytest.approx(0.02, rel=5 / math.sqrt(2 * 4800))
    assert scales.unit_entry_rms == pytest.approx(0.25)


def test_finetune_z_loss_lowers_log_z_and_is_deterministic():
    weights, tokens, mask = tiny_random_batch(4)
    # lift log Z: scale the embedding so the logits are large
    big = llama_weights.LlamaWeights(
        **{
            **{k: getattr(weights, k) for k in ("config", *llama_weights.WEIGHT_ORDER)},
            "token_embedding": weights.token_embedding * 20,
        }
    )
    batches = [(tokens, mask)] * 8
    plain = lc.finetune(big, batches, (tokens, mask), coefficient=0.0, lr=1e-2)
    again = lc.finetune(big, batches, (tokens, mask), coefficient=0.0, lr=1e-2)
    pulled = lc.finetune(big, batches, (tokens, mask), coefficient=0.1, lr=1e-2)
    np.testing.assert_array_equal(plain.log_z, again.log_z)  # deterministic
    assert plain.log_z[0] == pulled.log_z[0]  # same start
    assert pulled.heldout_log_z < plain.heldout_log_z
    with pytest.raises(ValueError, match="coefficient"):
        lc.finetune(big, batches, (tokens, mask), coefficient=-1.0)


# ------------------------------------------------------------------- the chapter's records


def _scales(entry, rows, hidden, logit_std, d=16):
    return lc.EmbeddingScales(
        entry_rms=entry, row_norm_mean=rows, row_norm_max=2 * rows,
        hidden_norm_mean=hidden, logit_std_mean=logit_std,
        unit_entry_rms=1 / math.sqrt(d),
    )  # fmt: skip


def test_compare_scales_against_hand_ratios():
    trained, init = _scales(0.5, 3.0, 8.0, 6.0), _scales(0.02, 0.5, 4.0, 0.25)
    c = lc.compare_scales(trained, init, 16)
    assert c.sqrt_d == 4.0 and c.unit_entry_rms == 0.25
    assert c.entry_over_unit == 2.0  # 0.5 / (1/4)
    assert c.logit_growth == 24.0  # 6 / 0.25
    assert c.norm_growth == 12.0  # (3 / 0.5)·(8 / 4)
    assert (c.hidden_norm, c.init_hidden_norm, c.init_logit_std) == (8.0, 4.0, 0.25)
    assert c.row_norm_max == 6.0 and c.init_entry_rms == 0.02
    with pytest.raises(TypeError, match="init"):
        lc.compare_scales(trained, {"entry_rms": 1.0}, 16)
    with pytest.raises(ValueError, match="d_model"):
        lc.compare_scales(trained, init, 0)
    lines = lc.format_scales({"trained": trained, "initialized": init}).splitlines()
    assert lines[0].split() == ["trained", "initialized"]
    # each row names its quantity; the columns hold trained, then initialized
    assert [line.rsplit(maxsplit=2)[1:] for line in lines[1:6]] == [
        ["0.5", "0.02"], ["3", "0.5"], ["6", "1"], ["8", "4"], ["6", "0.25"],
    ]  # fmt: skip
    assert lines[1].startswith("embedding E: RMS of its entries")
    assert lines[3].startswith("embedding E: row norm ‖E_i‖, largest")
    assert lines[4].startswith("final hidden state h: norm ‖h‖, mean")
    assert lines[5].startswith("logits z: std over the vocabulary, mean")
    # 1/√d_model, shared by both: printed once; per column when the widths differ
    assert lines[6:] == ["1/√d_model: entry RMS of a row of norm 1 = 0.25"]
    other = _scales(0.02, 0.5, 4.0, 0.25, d=64)
    last = lc.format_scales({"a": trained, "b": other}).splitlines()[-1]
    assert last.startswith("1/√d_model") and last.split()[-2:] == ["0.25", "0.125"]
    with pytest.raises(TypeError, match="scales"):
        lc.format_scales({"trained": {"entry_rms": 1.0}})


def _cap_sweep():
    return lc.CapSweep(
        caps=(None, 5.0, 30.0),
        sums=np.ones((3, 4)),
        counts=np.array([10, 20, 30, 40]),
        max_logit=np.array([40.0, 4.9, 25.0]),
        mean_log_z=np.array([7.5, 3.0, 7.0]),
    )


def test_cap_costs_names_values_and_table():
    from numscale import report

    costs = lc.cap_costs(_cap_sweep(), (1.25, 0.5), [(0.75, 0.125), (0.01, 0.02)])
    assert report.record_numbers(costs, exclude=("caps",)) == {
        "loss_uncapped": 1.25, "loss_uncapped_se": 0.5, "max_logit": 40.0,
        "mean_log_z": 7.5, "diff_cap5": 0.75, "diff_cap5_se": 0.125,
        "diff_cap30": 0.01, "diff_cap30_se": 0.02, "max_cap5": 4.9,
        "max_cap30": 25.0, "n_predicted": 100,
    }  # fmt: skip
    assert lc.format_cap_costs(costs).splitlines() == [
        "uncapped: loss 1.2500 ± 0.5000, largest |z| 40.0, mean log Z 7.50",
        "cap    5: loss change +0.7500 ± 0.1250, largest |z| 4.9",
        "cap   30: loss change +0.0100 ± 0.0200, largest |z| 25.0",
    ]
    with pytest.raises(ValueError, match="diffs"):
        lc.cap_costs(_cap_sweep(), (1.25, 0.5), [(0.75, 0.125)])
    with pytest.raises(TypeError, match="sweep"):
        lc.cap_costs(None, (1.25, 0.5), [])
    with pytest.raises(ValueError, match="uncapped"):
        lc.cap_costs(_cap_sweep(), (math.nan, 0.5), [(0.0, 0.0)] * 2)


def test_finetune_summary_and_table():
    def run(loss, log_z):
        return lc.Finetune(np.zeros(2), np.zeros(2), loss, log_z)

    start = run(1.5, 7.0)
    runs = {0.0: run(1.25, 6.5), 1e-2: run(1.375, 2.0)}
    s = lc.finetune_summary(start, {"none": runs[0.0], "large": runs[1e-2]})
    assert (s.start_loss, s.start_log_z) == (1.5, 7.0)
    assert s.loss == {"none": 1.25, "large": 1.375}
    assert s.log_z == {"none": 6.5, "large": 2.0}
    assert lc.format_finetunes(runs).splitlines()[1] == (
        "z-loss coefficient 1e-02: held-out loss 1.3750, log Z 2.00"
    )
    with pytest.raises(TypeError, match=r"runs\['x'\]"):
        lc.finetune_summary(start, {"x": 1.0})
    with pytest.raises(ValueError, match="runs"):
        lc.finetune_summary(start, {})
