"""Shared inputs of the Llama-statistics tests: target masks, causal attention tensors,
a tiny random Llama model (llama.init_weights(TINY_CONFIG, seed)) and random token
batches for it; and the shared check that a function of tokens refuses bad ones."""

from __future__ import annotations

import pytest
import torch

from numscale import llama_runs
from numscale.models import llama, llama_tokenizer, llama_weights

#: layers, batch, heads and positions of the synthetic attention tensors
L, B, H, T = 2, 3, 2, 6


def target_mask(lengths: list[int], T: int = T) -> torch.Tensor:
    """encode_stories' mask: False at BOS, True on positions 1..length-1."""
    mask = torch.zeros(len(lengths), T, dtype=torch.bool)
    for row, n in enumerate(lengths):
        mask[row, 1:n] = True
    return mask


def causal(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask the future with -inf and softmax, as the model does."""
    Tz = z.shape[-1]
    future = torch.ones(Tz, Tz, dtype=torch.bool).triu(1)
    z = z.masked_fill(future, float("-inf"))
    return z, torch.softmax(z, dim=-1)


def random_logits(seed: int, scale: float = 3.0) -> torch.Tensor:
    """(L, B, H, T, T) float64 Gaussian logits of std ``scale``, seeded."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(L, B, H, T, T, generator=g, dtype=torch.float64) * scale


def tiny_model(seed: int = 0) -> tuple[llama.LlamaModel, torch.Tensor, torch.Tensor]:
    """The TINY_CONFIG model at initialization and 5 random stories of lengths
    32, 32, 20, 9 and 2 (BOS first, padding 0), with their target mask."""
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed)
    g = torch.Generator().manual_seed(seed + 100)
    V, Tm = llama_weights.TINY_CONFIG.vocab_size, llama_weights.TINY_CONFIG.seq_len
    tokens = torch.randint(3, V, (5, Tm), generator=g)
    tokens[:, 0] = llama_tokenizer.BOS
    lengths = [Tm, Tm, 20, 9, 2]
    mask = target_mask(lengths, Tm)
    tokens = torch.where(
        mask | (torch.arange(Tm) == 0), tokens, torch.zeros_like(tokens)
    )
    return llama.LlamaModel(weights), tokens, mask


def tiny_random_batch(
    n_sequences: int, length: int = 16
) -> tuple[llama_weights.LlamaWeights, torch.Tensor, torch.Tensor]:
    """The TINY_CONFIG weights at initialization (seed 0) and ``n_sequences`` random
    token sequences of ``length`` (llama_runs.random_token_batch, seed 1): tokens and
    their target mask, both (n_sequences, length)."""
    weights = llama.init_weights(llama_weights.TINY_CONFIG, seed=0)
    tokens, mask = llama_runs.random_token_batch(
        weights.config, n_sequences, length, seed=1
    )
    return weights, tokens, mask


def check_refuses_bad_tokens(function, model, tokens, mask) -> None:
    """``function(model, tokens, mask)`` refuses float tokens (TypeError) and tokens
    whose shape differs from the mask's (ValueError), naming ``tokens``."""
    with pytest.raises(TypeError, match="tokens"):
        function(model, tokens.float(), mask)
    with pytest.raises(ValueError, match="tokens"):
        function(model, tokens[:, :-1], mask)
