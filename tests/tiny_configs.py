"""Tiny GPT-2 configurations for tests that build random models (no download)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import GPT2Config


def tiny_gpt2_config(
    n_layer: int,
    n_embd: int,
    n_head: int,
    n_positions: int,
    vocab_size: int,
    token_id: int = 0,
) -> GPT2Config:
    """A ``transformers.GPT2Config`` of the given size whose BOS and EOS token are both
    ``token_id`` (GPT-2's own is 50256, the last of its 50257 tokens)."""
    from transformers import GPT2Config

    return GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=n_head,
        n_positions=n_positions,
        vocab_size=vocab_size,
        bos_token_id=token_id,
        eos_token_id=token_id,
    )
