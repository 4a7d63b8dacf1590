"""Tests of numscale.long_context: formulas against simulation with sampling-theory
tolerances, the kernel and rotary identities to rounding, and the position-scaled
forward on a tiny random Llama model against numscale.models.llama."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from numscale import attention
from numscale import long_context as lc
from numscale.models import llama, llama_tokenizer, llama_weights, next_token


def tiny_model(seed: int = 0) -> llama.LlamaModel:
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed=seed)
    return llama.LlamaModel(weights)


def tiny_tokens(B: int = 2, T: int = 12, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, llama_weights.TINY_CONFIG.vocab_size, (B, T), generator=g)
    ids[:, 0] = llama_tokenizer.BOS
    return ids


# ------------------------------------------------------------------ log-n multiplier


def test_log_n_multiplier_values():
    n = np.array([1, 100, 512, 1024, 512**2])
    c = lc.log_n_multiplier(n, 512)
    np.testing.assert_array_equal(c[:3], 1.0)  # within the training length
    assert c[3] == pytest.approx(10 / 9, rel=1e-15)  # ln 2^10 / ln 2^9
    assert c[4] == pytest.approx(2.0, rel=1e-15)


@pytest.mark.parametrize(
    "n, n_train, match",
    [(np.array([0]), 8, "n"), (np.array([1.5]), 8, "n"), (4, 1, "n_train")],
)
def test_log_n_multiplier_bad_input(n, n_train, match):
    with pytest.raises(ValueError, match=match):
        lc.log_n_multiplier(n, n_train)


# ------------------------------------------------------------------ iid logits


def test_iid_entropy_matches_formula_with_finite_n_correction():
    n, sigma = 1024, 1.0
    stats = lc.iid_attention(np.array([n]), sigma, 0.0, rows=400, seed=0)
    expected = attention.entropy_approximation(
        n, sigma
    ) + attention.entropy_finite_n_correction(n, sigma)
    # 5 standard errors of the mean over 400 rows; the next term is O(1/n²)
    assert abs(stats.entropy[0] - expected) < 5 * stats.entropy_se[0] + 1 / n


@pytest.mark.parametrize("c", [1.0, 2.0])
def test_signal_weight_matches_formula(c):
    n, sigma, delta = 256, 0.3, 5.0
    stats = lc.iid_attention(
        np.array([n]), sigma, delta, rows=400, seed=1, multiplier=lambda _: c
    )
    formula = float(lc.signal_weight_formula(n, sigma, delta, c))
    # the formula ignores the signal's own noise c·z0: by the delta method its mean
    # shift is ½(cσ)²·p(1−p)(1−2p), at most ½(cσ)²·0.0962; plus 5 SE of the mean
    bound = 0.5 * (c * sigma) ** 2 * 0.0962 + 5 * stats.signal_weight_se[0]
    assert abs(stats.signal_weight[0] - formula) < bound


def test_iid_attention_is_seeded_and_checks_input():
    a = lc.iid_attention(np.array([8, 16]), 1.0, 2.0, rows=10, seed=3)
    b = lc.iid_attention(np.array([8, 16]), 1.0, 2.0, rows=10, seed=3)
    np.testing.assert_array_equal(a.entropy, b.entropy)
    with pytest.raises(ValueError, match="n_values"):
        lc.iid_attention(np.array([1]), 1.0, 0.0, rows=10, seed=0)
    with pytest.raises(ValueError, match="sigma"):
        lc.iid_attention(np.array([8]), float("nan"), 0.0, rows=10, seed=0)
    with pytest.raises(TypeError, match="seed"):
        lc.iid_attention(np.array([8]), 1.0, 0.0, rows=10, seed=None)


# ------------------------------------------------------------------ kernel


def test_exp2_softmax_equals_softmax():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 33, generator=g, dtype=torch.float64) * 10
    # exp2(x·log2 e) vs exp(x): a few ulps per entry, well below 1e-13
    torch.testing.assert_close(
        lc.exp2_softmax(x, 0.3), torch.softmax(0.3 * x, -1), rtol=1e-13, atol=1e-15
    )


@pytest.mark.parametrize("scale", [0.1, 1 / math.sqrt(8), 2.0])
def test_explicit_attention_equals_sdpa(scale):
    g = torch.Generator().manual_seed(1)
    q, k, v = (
        torch.randn(2, 3, 20, 8, generator=g, dtype=torch.float64) for _ in range(3)
    )
    fused = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, is_causal=True, scale=scale
    )
    # float64, 20 keys: rounding of order 20·eps ≈ 4e-15 per output
    torch.testing.assert_close(
        lc.explicit_attention(q, k, v, scale), fused, rtol=1e-12, atol=1e-12
    )


# ------------------------------------------------------------------ rotary


def test_rotation_preserves_norm_and_depends_on_offset_only():
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 8))
    assert np.linalg.norm(lc.rotate_pairs(q, 37)) == pytest.approx(
        np.linalg.norm(q), rel=1e-14
    )
    logits = [lc.rotate_pairs(q, m) @ lc.rotate_pairs(k, m + 5) for m in (0, 3, 400)]
    # float64 rotations of 8 numbers: errors of order 10·eps·‖q‖‖k‖
    assert np.ptp(logits) < 1e-12 * np.linalg.norm(q) * np.linalg.norm(k)


def test_rotate_pairs_matches_the_model_rotation():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 1, 8)).astype(np.float32)  # (T, heads, hs)
    cos, sin = (torch.from_numpy(t) for t in llama.rotary_tables(8, 6))
    model_rot = llama._rotate(torch.from_numpy(x)[None], cos, sin)[0].numpy()
    ours = np.stack([lc.rotate_pairs(x[t].astype(np.float64), t) for t in range(6)])
    np.testing.assert_allclose(ours, model_rot, atol=1e-5)  # float32 tables


def test_rotate_pairs_bad_input():
    with pytest.raises(ValueError, match="even"):
        lc.rotate_pairs(np.ones(3), 1)
    with pytest.raises(ValueError, match="x"):
        lc.rotate_pairs(np.array([np.nan, 1.0]), 1)


# ------------------------------------------------------------------ the model


def test_forward_position_scaled_equals_the_model():
    model, tokens = tiny_model(), tiny_tokens()
    with torch.inference_mode():
        # float32, a handful of layers: differences of order 1e-6 between the two paths
        torch.testing.assert_close(
            lc.forward_position_scaled(model, tokens),
            model(tokens),
            rtol=1e-4,
            atol=1e-5,
        )
        c = np.full(tokens.shape[1], 2.5)
        torch.testing.assert_close(
            lc.forward_position_scaled(model, tokens, c),
            model(tokens, attn_scale_multiplier=2.5),
            rtol=1e-4,
            atol=1e-5,
        )


def test_forward_position_scaled_runs_past_seq_len():
    model = tiny_model()
    tokens = tiny_tokens(T=llama_weights.TINY_CONFIG.seq_len + 8)
    with torch.inference_mode():
        logits = lc.forward_position_scaled(model, tokens)
    assert logits.shape == (2, tokens.shape[1], llama_weights.TINY_CONFIG.vocab_size)
    assert torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="multipliers"):
        lc.forward_position_scaled(model, tokens, np.ones(3))


def test_entropy_and_offsets_match_the_recorded_attention():
    model, tokens = tiny_model(seed=2), tiny_tokens(seed=3)
    scale = 1 / math.sqrt(llama_weights.TINY_CONFIG.head_size)
    with torch.inference_mode():
        _, q, k = lc.forward_position_scaled(model, tokens, return_qk=True)
        record = model(tokens, record=True)
    p = record.attn_weights.double()
    logp = torch.where(p > 0, p.log(), torch.zeros((), dtype=p.dtype))
    expected = -(p * logp).sum(-1).numpy()
    # float32 logits; entropies of at most ln 12 nats agree to ~1e-5
    np.testing.assert_allclose(lc.entropy_by_position(q, k, scale), expected, atol=1e-4)
    z = record.attn_logits.double()
    T = tokens.shape[1]
    offsets = lc.logit_by_offset(q, k, scale, max_offset=3)
    for delta in range(4):
        diag = torch.diagonal(z, offset=-delta, dim1=-2, dim2=-1)  # (L, B, H, T−Δ)
        np.testing.assert_allclose(
            offsets[..., delta], diag.mean(dim=(1, 3)).numpy(), atol=1e-5
        )
    with pytest.raises(ValueError, match="max_offset"):
        lc.logit_by_offset(q, k, scale, max_offset=T)


def test_token_nll_of_the_scaled_forward_sums_to_the_story_losses():
    model, tokens = tiny_model(), tiny_tokens()
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 0] = False
    with torch.inference_mode():
        per_token = next_token.token_nll(
            lc.forward_position_scaled(model, tokens), tokens
        ).numpy()
    sums, _ = next_token.story_losses(model, tokens, mask)
    np.testing.assert_allclose(per_token.sum(1), sums, rtol=1e-6)


def test_concatenated_stories():
    tok = llama_tokenizer.byte_tokenizer()
    stories = ["once upon a time", "a cat sat", "the end of it all"]
    ids = lc.concatenated_stories(tok, stories, 10, 2)
    assert ids.shape == (2, 10) and int(ids[0, 0]) == llama_tokenizer.BOS
    stream = sum((tok.encode(s, bos=True) for s in stories), [])
    assert ids.flatten().tolist() == stream[:20]
    with pytest.raises(ValueError, match="fewer"):
        lc.concatenated_stories(tok, stories, 100, 2)


def test_student_t_p_value_matches_closed_forms_and_tables():
    # 2 df has the closed form 1 − |t|/√(t² + 2); 1 df is the Cauchy 1 − (2/π)atan|t|;
    # the trapezoid rule on 20,001 points of a smooth integrand is good to ~1e-8
    for t in (0.0, 0.7, 2.5, -4.0):
        assert lc.student_t_two_sided_p(t, 2) == pytest.approx(
            1 - abs(t) / math.sqrt(t * t + 2), abs=1e-7
        )
        assert lc.student_t_two_sided_p(t, 1) == pytest.approx(
            1 - 2 / math.pi * math.atan(abs(t)), abs=1e-7
        )
    # textbook 95% critical values (4.303 on 2 df, 1.960 for large df), to their 3-4
    # printed digits
    assert lc.student_t_two_sided_p(4.303, 2) == pytest.approx(0.05, abs=1e-4)
    assert lc.student_t_two_sided_p(1.960, 10_000) == pytest.approx(0.05, abs=2e-4)
    with pytest.raises(ValueError, match="df"):
        lc.student_t_two_sided_p(1.0, 0)
