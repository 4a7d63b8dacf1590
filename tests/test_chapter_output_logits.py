"""Claims of book/output_logits.md, asserted on the glued values of the executed page
(real stories260K; skipped without the reference files). The helpers are tested on a
tiny random model in tests/test_logit_caps.py."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from conftest import check_runs_on_embedded_data
from references import adam_step_

pytestmark = pytest.mark.build
PAGE = "book/output_logits"
PREFIX = "ologit_"
CAPS = (5, 10, 15, 20, 30, 50)


def test_embedding_scales(v):
    assert v["unit_entry_rms"] == pytest.approx(1 / 8)
    assert v["sqrt_d"] == pytest.approx(8)
    # "larger than √d_model": the trained final gains exceed 1 (measured ~16.7 vs 8)
    assert v["hidden_norm"] > v["sqrt_d"]
    assert v["entry_over_unit"] > 1
    # growth through training: at init the logit std is about ‖h‖·0.02 ≈ 8·0.02 = 0.16.
    # The input token's own row (tied) adds one logit of ≈ ‖h‖‖E_tok‖ ≈ 1.3 to the 512,
    # about +6% on the std, and the std of 512 logits has sampling error ~3%: within
    # 10%. Trained: tens of times larger (measured ~43×)
    assert v["init_logit_std"] == pytest.approx(v["init_hidden_norm"] * 0.02, rel=0.1)
    assert v["logit_growth"] > 10
    # "the two norms grew ...-fold and by aligning them": the norms' growth is a real
    # part of the logits' growth but not all of it (measured 32× of 43×; a ratio of
    # deterministic norms, no sampling error: require at least a 10% shortfall)
    assert 1 < v["norm_growth"] < 0.9 * v["logit_growth"]


def test_caps_cost_more_the_smaller_they_are(v):
    # c·tanh(z/c) is increasing in |z|: the largest capped logit is the cap applied to
    # the largest logit (float32 on the page: 1e-5 relative)
    for c in CAPS:
        assert v[f"max_cap{c}"] == pytest.approx(
            c * math.tanh(v["max_logit"] / c), rel=1e-5
        )
    # cap 30 costs a loss increase detectable at > 3 paired SE; cap 50 within 3 SE of 0
    assert v["diff_cap30"] > 3 * v["diff_cap30_se"]
    assert abs(v["diff_cap50"]) < 3 * v["diff_cap50_se"] + 1e-3
    # monotone in the cap: each smaller cap costs more by more than 2 combined SE
    for small, large in zip(CAPS, CAPS[1:]):
        se = math.hypot(v[f"diff_cap{small}_se"], v[f"diff_cap{large}_se"])
        assert v[f"diff_cap{small}"] - v[f"diff_cap{large}"] > 2 * se


def test_z_loss_moves_log_z(v):
    # deterministic runs on the same batches: the order is exact, not statistical
    assert v["ft_log_z_large"] < v["ft_log_z_palm"] < v["ft_log_z_none"]
    assert v["mean_log_z"] > 5  # the model's normalizer is far from 0


@functools.lru_cache(maxsize=1)
def _reference() -> dict:
    """Per-story logits of the page's stories from llama.forward_numpy (the float64
    transcription of run.c, independent of the torch model that made the page's
    numbers), for the trained weights and llama2.c's initialization drawn with the
    page's seed, and the page's inputs: 16 stories of at most 256 ids."""
    from numscale.models import llama, llama2c

    data = llama2c.load()
    init = llama.init_weights(data.weights.config, seed=0)
    ids = [
        np.array(data.tokenizer.encode(s, bos=True)[:256]) for s in data.stories[:16]
    ]
    out = {"ids": ids, "data": data}
    for name, weights in (("trained", data.weights), ("init", init)):
        logits, hidden = [], []
        for row in ids:
            z, stream = llama.forward_numpy(weights, row, return_residual=True)
            x = stream[-1]
            gain = np.asarray(weights.rms_final, dtype=np.float64)
            h = x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5) * gain
            logits.append(z[:-1]), hidden.append(h[:-1])  # predicting positions
        out[name] = (logits, hidden, np.asarray(weights.token_embedding, np.float64))
    return out


def _ratio_se(sums, counts):
    mean = sums.sum() / counts.sum()
    return mean, math.sqrt(
        ((sums - mean * counts) ** 2).sum() / (len(sums) * (len(sums) - 1))
    ) / counts.mean()


def test_scales_and_caps_recomputed_with_the_numpy_forward(v):
    ref = _reference()
    # float64 reference vs the float32 page: relative agreement ~1e-5; 1e-3 allowed
    rel = 1e-3
    scales = {}
    for name in ("trained", "init"):
        logits, hidden, e = ref[name]
        z = np.concatenate(logits[:8])  # the first 8 stories
        h = np.concatenate(hidden[:8])
        rows = np.linalg.norm(e, axis=1)
        scales[name] = {
            "entry_rms": np.sqrt(np.mean(e * e)),
            "row": rows.mean(),
            "row_max": rows.max(),
            "hidden": np.linalg.norm(h, axis=1).mean(),
            "std": z.std(axis=1, ddof=1).mean(),
        }
    tr, init = scales["trained"], scales["init"]
    assert v["entry_rms"] == pytest.approx(tr["entry_rms"], rel=rel)
    assert v["entry_over_unit"] == pytest.approx(tr["entry_rms"] * 8, rel=rel)
    assert v["row_norm_mean"] == pytest.approx(tr["row"], rel=rel)
    assert v["row_norm_max"] == pytest.approx(tr["row_max"], rel=rel)
    assert v["hidden_norm"] == pytest.approx(tr["hidden"], rel=rel)
    assert v["logit_std"] == pytest.approx(tr["std"], rel=rel)
    # the initialization: N(0, 0.02²) entries, 32,768 of them: RMS 0.02 within 5 SE
    # (relative SE 1/√(2·32768) = 0.4%)
    assert v["init_entry_rms"] == pytest.approx(0.02, rel=5 * 0.004)
    assert v["init_hidden_norm"] == pytest.approx(init["hidden"], rel=rel)
    assert v["init_logit_std"] == pytest.approx(init["std"], rel=rel)
    assert v["logit_growth"] == pytest.approx(tr["std"] / init["std"], rel=rel)
    assert v["norm_growth"] == pytest.approx(
        tr["row"] / init["row"] * tr["hidden"] / init["hidden"], rel=rel
    )
    # the cap sweep over all 16 stories
    logits, _, _ = ref["trained"]
    ids = ref["ids"]
    counts = np.array([len(r) - 1 for r in ids], dtype=float)
    assert v["n_predicted"] == int(counts.sum())

    def story_sums(cap):
        sums = []
        for z, row in zip(logits, ids):
            z = z if cap is None else cap * np.tanh(z / cap)
            m = z.max(1, keepdims=True)
            log_z = (m + np.log(np.exp(z - m).sum(1, keepdims=True)))[:, 0]
            sums.append(np.sum(log_z - z[np.arange(len(z)), row[1:]]))
        return np.array(sums)

    base = story_sums(None)
    loss, se = _ratio_se(base, counts)
    assert v["loss_uncapped"] == pytest.approx(loss, rel=1e-4)
    assert v["loss_uncapped_se"] == pytest.approx(se, rel=0.01)
    assert v["max_logit"] == pytest.approx(
        max(np.abs(z).max() for z in logits), rel=1e-4
    )
    all_z = np.concatenate(logits)
    m = all_z.max(1, keepdims=True)
    assert v["mean_log_z"] == pytest.approx(
        np.mean(m[:, 0] + np.log(np.exp(all_z - m).sum(1))), rel=1e-4
    )
    for c in CAPS:
        diff, diff_se = _ratio_se(story_sums(float(c)) - base, counts)
        # a difference of float32 losses: absolute error ~1e-6 per token
        assert v[f"diff_cap{c}"] == pytest.approx(diff, rel=0.01, abs=2e-5), c
        assert v[f"diff_cap{c}_se"] == pytest.approx(diff_se, rel=0.01, abs=2e-5), c


def test_z_loss_fine_tune_recomputed(v):
    # the 20-step fine-tune redone in float64 with an Adam written here (β 0.9, 0.99,
    # ε 1e-8, bias-corrected); float32 on the page: 1e-3 relative after 20 steps
    import torch

    from numscale.models import llama

    ref = _reference()
    data = ref["data"]

    def batch(stories, max_tokens):
        return llama.encode_stories(data.tokenizer, stories, max_tokens=max_tokens)

    batches = [batch(data.stories[100 + 2 * i : 102 + 2 * i], 64) for i in range(20)]
    tok, msk = batch(data.stories[16:24], 128)

    def heldout(model):
        with torch.no_grad():
            z = model(tok)[:, :-1][msk[:, 1:]]
        log_z = torch.logsumexp(z, -1)
        ce = (log_z - z.gather(-1, tok[:, 1:][msk[:, 1:]][:, None])[:, 0]).mean()
        return float(ce), float(log_z.mean())

    start = heldout(llama.LlamaModel(data.weights, dtype=torch.float64))
    assert v["ft_start_loss"] == pytest.approx(start[0], rel=1e-4)
    assert v["ft_start_log_z"] == pytest.approx(start[1], rel=1e-4)
    for coefficient, name in ((0.0, "none"), (1e-4, "palm"), (1e-2, "large")):
        model = llama.LlamaModel(data.weights, dtype=torch.float64)
        params = list(model.parameters())
        m1 = [torch.zeros_like(p) for p in params]
        m2 = [torch.zeros_like(p) for p in params]
        for step, (tokens, mask) in enumerate(batches, start=1):
            z = model(tokens)[:, :-1][mask[:, 1:]]
            log_z = torch.logsumexp(z, -1)
            target = tokens[:, 1:][mask[:, 1:]]
            ce = (log_z - z.gather(-1, target[:, None])[:, 0]).mean()
            loss = ce + coefficient * (log_z**2).mean()
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                adam_step_(params, grads, m1, m2, step, lr=1e-3, beta2=0.99)
        loss_after, log_z_after = heldout(model)
        assert v[f"ft_loss_{name}"] == pytest.approx(loss_after, rel=1e-3), name
        assert v[f"ft_log_z_{name}"] == pytest.approx(log_z_after, rel=1e-3), name


def test_page_builds_without_a_source(tmp_path):
    # no folder named, the hub offline and its cache empty: the page still runs, shows
    # the notice and writes nothing to stderr
    check_runs_on_embedded_data("output_logits", tmp_path)
