"""Tests of numscale.models.next_token: the one next-token loss, against independent
computations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llama_fixtures import check_refuses_bad_tokens, target_mask, tiny_model
from numscale import llama_runs, stats
from numscale.models import llama, llama_weights, next_token


def test_check_mask():
    with pytest.raises(TypeError, match="mask"):
        next_token.check_mask(np.ones((2, 3), dtype=bool))
    with pytest.raises(TypeError, match="mask"):
        next_token.check_mask(torch.ones(2, 3))
    with pytest.raises(ValueError, match="position 0"):
        next_token.check_mask(torch.ones(2, 3, dtype=torch.bool))
    gap = target_mask([3, 3])
    gap[0, 1] = False
    with pytest.raises(ValueError, match="prefix"):
        next_token.check_mask(gap)
    with pytest.raises(ValueError, match="mask"):
        next_token.check_mask(torch.zeros(0, 3, dtype=torch.bool))
    real = next_token.real_tokens(target_mask([3, 1]))
    assert real.tolist() == [
        [True, True, True, False, False, False],
        [True, False, False, False, False, False],
    ]


def test_story_nll_from_recorded_logits_matches_the_model():
    model, tokens, mask = tiny_model(5)
    collected = llama_runs.collect(model, tokens, mask, batch_size=5, attention=False)
    sums, counts = next_token.story_nll(
        collected.logits, collected.tokens, collected.target, dtype=torch.float64
    )
    expected_sums, expected_counts = next_token.story_losses(model, tokens, mask)
    np.testing.assert_array_equal(counts, expected_counts)
    # float64 log-softmax here, float32 there, on sums of up to 31 losses ≈ ln 300:
    # float32 rounding ≈ 31 · 6 · 6e-8 ≈ 1e-5 per story; 1e-4 leaves room
    np.testing.assert_allclose(sums, expected_sums, atol=1e-4)
    with pytest.raises(ValueError, match="tokens"):
        next_token.story_nll(
            collected.logits, collected.tokens[:, :-1], collected.target
        )


def test_story_losses_in_float32_match_the_loss():
    model, tokens, mask = tiny_model(4)
    weights = llama.init_weights(llama_weights.TINY_CONFIG, 4)
    sums, counts = next_token.story_losses(
        llama.LlamaModel(weights, dtype=torch.float32), tokens, mask, batch_size=3
    )
    mean, _ = stats.ratio_mean_se(sums, counts)
    # same float32 arithmetic, different batch shapes: 1e-5 relative
    assert mean == pytest.approx(
        next_token.next_token_loss(model, tokens, mask)[0], rel=1e-5
    )
    sums16, _ = next_token.story_losses(
        llama.LlamaModel(weights, dtype=torch.bfloat16), tokens, mask, batch_size=3
    )
    diff, se = stats.paired_difference(sums16, sums, counts)
    # bfloat16 keeps 8 bits: at init the logits are ~0.02 and the loss ≈ ln 300; the
    # change is bounded by a few eps_bf16 (7.8e-3) of relative error in the logits
    assert abs(diff) < 0.05


def reference_nll(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """(B, T−1) loss of every prediction, written out in float64 NumPy: log Σ exp z
    minus the target's logit, position t predicting token t+1."""
    z = logits[:, :-1].astype(np.float64)
    top = z.max(axis=-1, keepdims=True)
    log_norm = top[..., 0] + np.log(np.exp(z - top).sum(axis=-1))
    picked = np.take_along_axis(z, tokens[:, 1:, None], axis=-1)[..., 0]
    return log_norm - picked


def test_token_nll_and_story_nll_against_a_direct_computation():
    g = np.random.default_rng(0)
    logits = (3 * g.standard_normal((3, 7, 11))).astype(np.float32)
    tokens = g.integers(0, 11, size=(3, 7))
    mask = target_mask([7, 4, 2], 7)
    expected = reference_nll(logits, tokens)
    # float32 log-softmax: a few float32 ulps (1.2e-7 relative) of values ≲ 15
    got = next_token.token_nll(torch.from_numpy(logits), torch.from_numpy(tokens))
    np.testing.assert_allclose(got.double().numpy(), expected, atol=1e-5)
    # float64 log-softmax of the same float32 inputs: only float64 rounding differs
    got64 = next_token.token_nll(logits, tokens, dtype=torch.float64)
    np.testing.assert_allclose(got64.numpy(), expected, atol=1e-12)
    sums, counts = next_token.story_nll(logits, tokens, mask, dtype=torch.float64)
    target = mask.numpy()[:, 1:]
    np.testing.assert_allclose(sums, (expected * target).sum(1), atol=1e-12)
    np.testing.assert_array_equal(counts, [6, 3, 1])
    # the mean over the batch's targets, differentiable: Σ nll·target / Σ target
    z = torch.from_numpy(logits).requires_grad_()
    mean = next_token.mean_nll(z, torch.from_numpy(tokens), mask)
    # float32: |nll| ≲ 10, 10 terms: 1e-5 absolute
    assert float(mean.detach()) == pytest.approx(
        (expected * target).sum() / 10, abs=1e-5
    )
    mean.backward()
    # d mean / d z at a target position: (softmax(z) − onehot) / 10; zero elsewhere
    p = np.exp(logits[0, 0] - logits[0, 0].max())
    p /= p.sum()
    onehot = np.eye(11)[tokens[0, 1]]
    np.testing.assert_allclose(z.grad[0, 0].numpy(), (p - onehot) / 10, atol=1e-6)
    assert float(z.grad[2, 1:].abs().sum()) == 0.0  # story 2: only position 0 counts


def test_next_token_bad_input():
    logits = torch.zeros(2, 5, 7)
    tokens = torch.zeros(2, 5, dtype=torch.long)
    with pytest.raises(TypeError, match="dtype"):
        next_token.token_nll(logits, tokens, dtype=torch.float16)
    with pytest.raises(ValueError, match="tokens"):
        next_token.token_nll(logits, tokens[:, :-1])
    with pytest.raises(ValueError, match="logits"):
        next_token.token_nll(logits[0], tokens)
    with pytest.raises(TypeError, match="logits"):
        next_token.token_nll([[0.0]], tokens)
    with pytest.raises(ValueError, match="mask"):
        next_token.story_nll(logits, tokens, torch.ones(2, 4, dtype=torch.bool))


def test_batches_and_trim():
    assert list(next_token.batches(5, 2)) == [slice(0, 2), slice(2, 4), slice(4, 5)]
    with pytest.raises(ValueError, match="batch_size"):
        list(next_token.batches(5, 0))
    mask = target_mask([4, 2], 6)
    tokens = torch.arange(12).reshape(2, 6)
    tok, msk = next_token.trim(tokens, mask)
    assert tok.shape == (2, 4) and torch.equal(msk, mask[:, :4])


def test_story_losses_checks_its_input():
    model, tokens, mask = tiny_model(7)
    check_refuses_bad_tokens(next_token.story_losses, model, tokens, mask)
    with pytest.raises(ValueError, match="position 0"):
        next_token.story_losses(model, tokens, torch.ones_like(mask))
    # one batch or batches of two: the same stories, the same counts; the sums agree to
    # float32 rounding of differently shaped matmuls (1e-5 relative, loss ≈ ln 300)
    one = next_token.story_losses(model, tokens, mask)
    two = next_token.story_losses(model, tokens, mask, batch_size=2)
    np.testing.assert_array_equal(one[1], two[1])
    np.testing.assert_allclose(one[0], two[0], rtol=1e-5)
