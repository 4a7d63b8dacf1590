"""Tests for numscale.residual: toy pre-LN / post-LN Transformers and GPT-2 stream norms."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import GPT2LMHeadModel

from numscale import dotprod, residual
from numscale.models import gpt2_model
from tiny_configs import tiny_gpt2_config

D, VOCAB = 128, 256


@pytest.fixture(scope="module")
def batch():
    return residual.toy_batch(VOCAB, batch=4, seq=64, seed=1)


@pytest.fixture(scope="module")
def chapter(batch):
    """The chapter's models, stream norms and gradients (depths 3, 6, 12, 24; seed 0)."""
    ids, targets = batch
    depths = [3, 6, 12, 24]
    models = {
        (L, p): residual.ToyTransformer(D, L, p, seed=0, vocab=VOCAB)
        for L in depths
        for p in residual.POSITIONS
    }
    grads = {k: residual.layer_grad_norms(m, ids, targets) for k, m in models.items()}
    norms = {k: residual.stream_norms(m, ids) for k, m in models.items()}
    return depths, models, grads, norms


# ------------------------------------------------------------------ toy model


def test_toy_batch_shapes_and_shift():
    ids, targets = residual.toy_batch(50, 3, 7, seed=0)
    assert ids.shape == targets.shape == (3, 7) and ids.dtype == torch.int64
    np.testing.assert_array_equal(
        ids[:, 1:].numpy(), targets[:, :-1].numpy()
    )  # next-token targets
    assert torch.equal(residual.toy_batch(50, 3, 7, seed=0)[0], ids)  # seeded


def test_pre_and_post_share_weights():
    a = residual.ToyTransformer(16, 2, "pre", seed=3, vocab=20)
    b = residual.ToyTransformer(16, 2, "post", seed=3, vocab=20)
    for (na, pa), (nb, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert na == nb and torch.equal(pa, pb)


def test_models_of_one_seed_are_nested():
    # the chapter says so: the 2-block model is the first 2 blocks of the 5-block one,
    # with the same embedding; only the unembedding (drawn last) differs
    short = residual.ToyTransformer(16, 2, "pre", seed=3, vocab=20)
    deep = residual.ToyTransformer(16, 5, "pre", seed=3, vocab=20)
    assert torch.equal(short.embed, deep.embed)
    for a, b in zip(short.blocks, deep.blocks):
        assert all(torch.equal(a[name], b[name]) for name in a)
    assert not torch.equal(short.unembed, deep.unembed)
    # hence the short model's streams are the deep model's first three
    ids = torch.arange(8).reshape(1, 8)
    _, s_short = short(ids)
    _, s_deep = deep(ids)
    for x, y in zip(s_short, s_deep):
        assert torch.equal(x, y)


def test_xavier_scale_of_weights():
    # Xavier std √(2/(fan_in+fan_out)); 6 blocks × 128×512 draws = 393,216 for fc: relative SE
    # of a sample std 1/√(2n) = 0.11%; 5 SE
    m = residual.ToyTransformer(D, 6, "pre", seed=0, vocab=VOCAB)
    fc = torch.cat([p["fc"].detach().ravel() for p in m.blocks])
    assert float(fc.std()) == pytest.approx(
        np.sqrt(2 / (5 * D)), rel=5 / np.sqrt(2 * fc.numel())
    )


def test_post_ln_stream_norm_is_sqrt_d(chapter):
    # after every post-LN block ‖x‖ = √d·√(σ²/(σ²+ε)) with σ² ≈ 1: within √d·ε/2 ≈ 6e-5 of √d,
    # plus float32 rounding of a norm of 128 terms (≈ √d·128·eps32 ≈ 2e-4)
    _, _, _, norms = chapter
    post = norms[24, "post"][1:]
    np.testing.assert_allclose(
        post, np.sqrt(D), atol=np.sqrt(D) * (1e-5 / 2 + 128 * 1.2e-7)
    )


def test_pre_ln_stream_grows_like_sqrt_of_branch_count(chapter):
    # ‖x_L‖²/d ≈ 1 + Σ_k c_k² over 2L = 48 branches (uncorrelated additions). Loose sanity
    # band on the growth √(1 + 48·c̄²): > 2 needs c̄² > 0.0625, < 7 needs c̄² < 1; a Xavier
    # branch fed a unit-RMS input has c² of order 2d/(d+4d)·E[gelu²]·4 ≈ 0.2–0.5.
    _, _, _, norms = chapter
    pre = norms[24, "pre"]
    assert 2 < pre[-1] / pre[0] < 7
    sq_increments = np.diff(pre**2)
    assert (
        np.mean(sq_increments > 0) > 0.8
    )  # mostly increasing (single blocks can dip: finite batch)


def test_post_ln_last_block_gradient_exceeds_pre_ln_by_about_sqrt_L(chapter):
    # Xiong et al.: last-layer gradient bounded by O(1) in L for post-LN, O(1/√L) for pre-LN.
    # One seed only: the per-seed slopes scatter by ≈ 0.03 (the chapter's four-seed sweep),
    # so ±0.15 around −½ is 5 seed sd; post-LN: not shrinking (≥ −0.1, its seeds scatter
    # by ≈ 0.05 around +0.12).
    depths, _, grads, _ = chapter
    pre = np.array([grads[L, "pre"][-1] for L in depths])
    post = np.array([grads[L, "post"][-1] for L in depths])
    slope_pre, _ = dotprod.loglog_slope(np.array(depths), pre)
    slope_post, _ = dotprod.loglog_slope(np.array(depths), post)
    assert abs(slope_pre + 0.5) < 0.15
    assert slope_post > -0.1
    assert np.all(post > pre)


def test_pre_ln_gradient_times_stream_growth_is_flat(chapter):
    # Mechanism: pre-LN's last-block gradient is divided by ‖x_L‖/√d at the final LN. The
    # product should not depend on L; allow ±25% (the branch Jacobians and a 256-token batch
    # add scatter of order 1/√(batch·seq/… ) ≈ 10%; 25% is a generous, argued band).
    depths, _, grads, norms = chapter
    corrected = np.array(
        [grads[L, "pre"][-1] * norms[L, "pre"][-1] / np.sqrt(D) for L in depths]
    )
    assert corrected.max() / corrected.min() < 1.25


def test_post_ln_early_blocks_smaller_than_late(chapter):
    # the 24-block post-LN model: mean gradient of the first 4 blocks below that of the last 4
    _, _, grads, _ = chapter
    g = grads[24, "post"]
    assert g[:4].mean() < g[-4:].mean()


def test_proj_scale_makes_final_norm_depth_independent(batch):
    # With o, proj scaled by 1/√(2L), E‖x_L‖² = d(1 + c²) for every L: final norms at L = 6
    # and 24 within 10% (observed ≈1%), and well below the unscaled 24-block norm.
    ids, targets = batch
    finals = [
        residual.stream_norms(
            residual.ToyTransformer(
                D, L, "pre", seed=0, vocab=VOCAB, proj_scale=1 / np.sqrt(2 * L)
            ),
            ids,
        )[-1]
        for L in (6, 24)
    ]
    assert abs(finals[0] / finals[1] - 1) < 0.1
    assert max(finals) < 1.5 * np.sqrt(D)


def test_blocks_are_the_two_equations():
    # pre_ln_block / post_ln_block are eq-res-pre-post: check against the formulas written
    # out with torch's own layer_norm (same ops in float32: identical results expected)
    m = residual.ToyTransformer(16, 1, "pre", seed=4, vocab=20)
    w = m.blocks[0]
    x = torch.randn(2, 5, 16, generator=torch.Generator().manual_seed(0))

    def ln(v):
        return torch.nn.functional.layer_norm(v, (16,), eps=1e-5)

    h = x + residual.attention_branch(ln(x), w)
    torch.testing.assert_close(
        residual.pre_ln_block(x, w), h + residual.mlp_branch(ln(h), w)
    )
    h = ln(x + residual.attention_branch(x, w))
    torch.testing.assert_close(
        residual.post_ln_block(x, w), ln(h + residual.mlp_branch(h, w))
    )
    # zero output projections: a pre-LN block is the identity, exactly
    zeroed = {
        k: (torch.zeros_like(v) if k in ("o", "proj") else v) for k, v in w.items()
    }
    assert torch.equal(residual.pre_ln_block(x, zeroed), x)
    # a post-LN block's output has norm √d·√(σ²/(σ²+ε)) per token: √16 to 1e-4
    norms = residual.post_ln_block(x, w).norm(dim=-1)
    torch.testing.assert_close(norms, torch.full_like(norms, 4.0), atol=1e-4, rtol=0)


def test_gradient_profile_matches_manual_autograd(batch):
    ids, targets = batch
    m = residual.ToyTransformer(16, 3, "pre", seed=2, vocab=VOCAB)
    prof = residual.gradient_profile(m, ids, targets)
    assert all(p.grad is None for p in m.parameters())  # cleared afterwards
    logits, streams = m(ids)
    for st in streams:
        st.retain_grad()
    torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), targets.reshape(-1)
    ).backward()
    # float32, same operations: agreement to rounding (rtol 1e-5)
    np.testing.assert_allclose(
        prof.stream, [float(st.grad.norm()) for st in streams], rtol=1e-5
    )
    np.testing.assert_allclose(
        prof.stream_norm,
        [float(st.detach().norm(dim=-1).mean()) for st in streams],
        rtol=1e-6,
    )
    assert prof.weights.shape == (
        3,
    ) and prof.stream.shape == prof.token_cosine.shape == (4,)


def test_pre_ln_stream_gradient_grows_backward(chapter, batch):
    # g_{l-1} = g_l + J_lᵀ g_l: the branch terms add to the identity path's g_l, so in the
    # chapter's 24-block pre-LN model the stream gradient at the embedding exceeds the one
    # after the last block, and each block's weight gradient follows ‖g_l‖ (its ratio to
    # ‖g_l‖ varies much less along the stack than the weight gradient itself).
    ids, targets = batch
    _, models, _, _ = chapter
    prof = residual.gradient_profile(models[24, "pre"], ids, targets)
    assert prof.stream[0] > 2 * prof.stream[-1]
    assert np.all(np.diff(prof.stream) < 0.05 * prof.stream[-1])  # (almost) monotone
    per_stream = prof.weights / prof.stream[1:]
    spread = lambda v: v.max() / v.min()  # noqa: E731
    assert spread(per_stream) < 0.5 * spread(prof.weights)


def test_mean_token_cosine():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 50, 256, generator=g)
    # brute force over all pairs of distinct tokens
    flat = x.reshape(-1, 256).double()
    flat = flat - flat.mean(dim=-1, keepdim=True)
    unit = flat / flat.norm(dim=-1, keepdim=True)
    c = unit @ unit.T
    n = c.shape[0]
    expected = float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))
    assert residual.mean_token_cosine(x) == pytest.approx(expected, abs=1e-12)
    # independent Gaussian tokens: each cosine has sd ≈ 1/√d; the mean over ~5,000 pairs
    # (not independent: SE at most 1/√d) is within 5/√d of 0
    assert abs(residual.mean_token_cosine(x)) < 5 / np.sqrt(256)
    # identical tokens: cosine 1 (float64 rounding)
    same = x[:1, :1].expand(2, 50, 256)
    assert residual.mean_token_cosine(same) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError, match="x must have 3 dimension"):
        residual.mean_token_cosine(x[0])
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        residual.mean_token_cosine(x.numpy())
    with pytest.raises(ValueError, match="two tokens"):
        residual.mean_token_cosine(x[:1, :1])


def test_last_block_sweep_small(batch):
    ids, targets = batch
    sweep = residual.last_block_sweep([1, 2], [0, 3], ids, targets, d=16, vocab=VOCAB)
    assert sweep.growth.shape == sweep.last_grad["pre"].shape == (2, 2)
    assert set(sweep.profiles) == {
        (s, L, p) for s in (0, 3) for L in (1, 2) for p in ("pre", "post")
    }
    # each entry is the profile of a freshly built model: rebuild one and compare exactly
    direct = residual.gradient_profile(
        residual.ToyTransformer(16, 2, "post", seed=3, vocab=VOCAB), ids, targets
    )
    assert sweep.last_grad["post"][1, 1] == direct.weights[-1]
    assert sweep.cosine["post"][1, 1] == direct.token_cosine[-2]
    pre = sweep.profiles[0, 2, "pre"]
    assert sweep.growth[0, 1] == pre.stream_norm[-1] / pre.stream_norm[0]
    with pytest.raises(ValueError, match="must not be empty"):
        residual.last_block_sweep([], [0], ids, targets, d=16, vocab=VOCAB)
    with pytest.raises(ValueError, match="depths"):
        residual.last_block_sweep([0], [0], ids, targets, d=16, vocab=VOCAB)


def test_layer_grad_norms_matches_manual_autograd(batch):
    ids, targets = batch
    m = residual.ToyTransformer(16, 2, "post", seed=2, vocab=VOCAB)
    got = residual.layer_grad_norms(m, ids, targets)
    logits, _ = m(ids)
    torch.nn.functional.cross_entropy(
        logits.reshape(-1, VOCAB), targets.reshape(-1)
    ).backward()
    manual = [
        float(torch.sqrt(p["fc"].grad.norm() ** 2 + p["proj"].grad.norm() ** 2))
        for p in m.blocks
    ]
    np.testing.assert_allclose(
        got, manual, rtol=1e-5
    )  # float32: same ops, order may differ
    assert got.shape == (2,)


def test_toy_bad_input(batch):
    ids, targets = batch
    m = residual.ToyTransformer(8, 1, "pre", seed=0, vocab=VOCAB)
    with pytest.raises(ValueError, match="position"):
        residual.ToyTransformer(8, 1, "middle", seed=0)
    with pytest.raises(ValueError, match="proj_scale"):
        residual.ToyTransformer(8, 1, "pre", seed=0, proj_scale=0.0)
    with pytest.raises(ValueError, match="ids must have 2 dimension"):
        residual.stream_norms(m, ids[0])
    with pytest.raises(TypeError, match="ids must hold integer"):
        residual.stream_norms(m, ids.float())
    with pytest.raises(TypeError, match="ids must be a torch.Tensor"):
        residual.stream_norms(m, ids.numpy())
    with pytest.raises(ValueError, match="ids must not be empty"):
        residual.stream_norms(m, ids[:, :0])
    with pytest.raises(ValueError, match="ids must lie in"):
        residual.stream_norms(m, ids + VOCAB)
    with pytest.raises(ValueError, match="targets must have the shape"):
        residual.layer_grad_norms(m, ids, targets[:, :3])
    with pytest.raises(ValueError, match="n_layer"):
        residual.ToyTransformer(8, 0, "pre", seed=0)


# --------------------------------------------------------------- real GPT-2


@pytest.fixture(scope="module")
def tiny_gpt2():
    config = tiny_gpt2_config(
        n_layer=3, n_embd=32, n_head=4, n_positions=32, vocab_size=100
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return GPT2LMHeadModel(config).eval()


def test_residual_stream_norms_against_hooks(tiny_gpt2):
    # Every row against forward hooks on each block; the last row is the stream *before* ln_f.
    ids = torch.tensor([[5, 17, 3, 99, 42, 0, 7]])
    captured = []
    handles = [
        b.register_forward_hook(
            lambda mod, args, out: captured.append(
                out[0] if isinstance(out, tuple) else out
            )
        )
        for b in tiny_gpt2.transformer.h
    ]
    with torch.no_grad():
        emb = (
            tiny_gpt2.transformer.wte(ids)
            + tiny_gpt2.transformer.wpe(torch.arange(7))[None]
        )
        tiny_gpt2(ids)
    for h in handles:
        h.remove()
    expected = torch.stack(
        [emb[0].norm(dim=-1)] + [c[0].norm(dim=-1) for c in captured]
    ).numpy()
    got = residual.residual_stream_norms(tiny_gpt2, ids, per_token=True)
    assert got.shape == (4, 7)
    np.testing.assert_allclose(got, expected, rtol=1e-6)  # same float32 ops, same order
    np.testing.assert_allclose(
        residual.residual_stream_norms(tiny_gpt2, ids), expected.mean(axis=1), rtol=1e-6
    )
    # the hook matters: hidden_states[-1] has ln_f applied
    with torch.no_grad():
        last = (
            tiny_gpt2(ids, output_hidden_states=True)
            .hidden_states[-1][0]
            .norm(dim=-1)
            .numpy()
        )
    # ln_f (γ = 1, β = 0 at init) gives norm √d·√(σ²/(σ²+ε)) exactly; σ² of a randomly
    # initialised GPT-2 stream is only ~1e-3, so ε = 1e-5 visibly shrinks it. float32: 1e-5.
    var = captured[-1][0].var(dim=-1, unbiased=False).numpy()
    np.testing.assert_allclose(last, np.sqrt(32 * var / (var + 1e-5)), rtol=1e-5)
    assert not np.allclose(got[-1], last, rtol=1e-2)


def test_residual_stream_norms_bad_input(tiny_gpt2):
    with pytest.raises(TypeError, match="model"):
        residual.residual_stream_norms(object(), torch.tensor([[1, 2]]))
    with pytest.raises(ValueError, match="input_ids must hold one sequence"):
        residual.residual_stream_norms(tiny_gpt2, torch.tensor([[1, 2], [3, 4]]))
    with pytest.raises(ValueError, match="input_ids must lie in"):
        residual.residual_stream_norms(tiny_gpt2, torch.tensor([[1, 200]]))
    with pytest.raises(ValueError, match="input_ids is longer"):
        residual.residual_stream_norms(
            tiny_gpt2, torch.zeros((1, 40), dtype=torch.int64)
        )
    with pytest.raises(TypeError, match="input_ids must hold integer"):
        residual.residual_stream_norms(tiny_gpt2, torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="input_ids must have 2 dimension"):
        residual.residual_stream_norms(tiny_gpt2, torch.tensor([1, 2]))


def test_fixed_token_ids():
    assert len(residual.FIXED_TOKEN_IDS) == 10
    assert all(0 <= t < 50257 for t in residual.FIXED_TOKEN_IDS)


def test_load_gpt2_partial_source_is_skipped(root):
    # the project's reference folder lacks the large matrices: skipped, with a reason that
    # says how to provide the model
    reference = root.parent / "shared" / "reference"
    if not reference.is_dir():
        pytest.skip("no ../shared/reference here")
    model, message = gpt2_model.load_gpt2(str(reference))
    assert model is None
    assert "only part" in message and "wte.weight" in message


def test_load_gpt2_missing_path(tmp_path):
    # a named source that does not exist is a configuration error, not a missing model:
    # the loader's SourceError (a ValueError) names the path and the reason
    with pytest.raises(ValueError, match="does not exist"):
        gpt2_model.load_gpt2(str(tmp_path / "nothing-here"))


def test_load_gpt2_full_save_pretrained_directory(tmp_path):
    # a full (tiny, random) model saved with save_pretrained loads and runs on the fixed ids
    config = tiny_gpt2_config(
        n_layer=2, n_embd=16, n_head=2, n_positions=16, vocab_size=50257, token_id=50256
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        GPT2LMHeadModel(config).save_pretrained(tmp_path)
    model, message = gpt2_model.load_gpt2(str(tmp_path))
    assert model is not None, message
    norms = residual.residual_stream_norms(
        model, torch.tensor([residual.FIXED_TOKEN_IDS]), per_token=True
    )
    assert norms.shape == (3, 10) and np.all(np.isfinite(norms)) and np.all(norms > 0)
