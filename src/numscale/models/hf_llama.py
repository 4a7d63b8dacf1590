"""stories260K (any llama2.c model) as a ``transformers`` ``LlamaForCausalLM``.

The book's own forward pass (:mod:`numscale.models.llama`) is the code readers read;
``transformers`` is the code they run. The two differ in one layout: llama2.c rotates
*interleaved* pairs of a head's query and key entries, ``(x[2j], x[2j+1])``, while
``transformers`` rotates *halves*, ``(x[j], x[j + d_k/2])`` (``rotate_half``). The
conversion permutes the rows of ``W_Q`` and ``W_K`` within each head so that entry
``2j`` moves to ``j`` and ``2j+1`` to ``j + d_k/2``; llama2.c's own ``export.py`` does
the inverse (``permute_reverse``) when it writes a Hugging Face model. The logits
``q·k`` do not change: a permutation applied to both ``q`` and ``k`` leaves their dot
product alone, and the rotation pairs the same two entries in both layouts.

Everything else maps one to one: the token embedding is ``embed_tokens`` (and, shared,
the classifier: ``tie_word_embeddings``), ``rms_att``/``rms_ffn`` the two RMSNorm gains
of a block, ``w1``/``w3``/``w2`` the gate, up and down projections of the SwiGLU MLP.
The rotary base is llama2.c's θ = 10000; RMSNorm's ε is run.c's 1e-5.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from numscale.models.llama import RMS_EPS, ROPE_THETA
from numscale.models.llama_tokenizer import BOS, EOS
from numscale.models.llama_weights import LlamaWeights


def interleaved_to_halves(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Permute the rows of a query or key matrix (n_heads·d_k, dim) from llama2.c's
    interleaved rotary layout to ``transformers``' halves layout, head by head: row
    ``2j + i`` of a head (i = 0, 1) becomes row ``i·d_k/2 + j``."""
    w = np.asarray(w)
    if w.ndim != 2 or w.shape[0] % n_heads or (w.shape[0] // n_heads) % 2:
        raise ValueError(
            f"w must be (n_heads·d_k, dim) with d_k even, got {w.shape} "
            f"for n_heads={n_heads}"
        )
    rows, cols = w.shape
    half = rows // n_heads // 2
    return w.reshape(n_heads, half, 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def hf_config(weights: LlamaWeights):
    """The ``transformers.LlamaConfig`` of a llama2.c model (its header)."""
    from transformers import LlamaConfig as HFLlamaConfig

    c = weights.config
    return HFLlamaConfig(
        vocab_size=c.vocab_size,
        hidden_size=c.dim,
        intermediate_size=c.hidden_dim,
        num_hidden_layers=c.n_layers,
        num_attention_heads=c.n_heads,
        num_key_value_heads=c.n_kv_heads,
        head_dim=c.head_size,
        hidden_act="silu",
        max_position_embeddings=c.seq_len,
        rms_norm_eps=RMS_EPS,
        rope_parameters={"rope_type": "default", "rope_theta": ROPE_THETA},
        tie_word_embeddings=c.shared_classifier,
        bos_token_id=BOS,
        eos_token_id=EOS,
        attention_bias=False,
        mlp_bias=False,
        architectures=["LlamaForCausalLM"],
    )


def state_dict(weights: LlamaWeights) -> dict[str, torch.Tensor]:
    """The ``LlamaForCausalLM`` parameters of ``weights`` by name, float32 (query and
    key rows permuted by :func:`interleaved_to_halves`)."""
    if not isinstance(weights, LlamaWeights):
        raise TypeError(f"weights must be LlamaWeights, got {type(weights).__name__}")
    c = weights.config

    def t(array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(array, dtype=np.float32))

    out = {
        "model.embed_tokens.weight": t(weights.token_embedding),
        "model.norm.weight": t(weights.rms_final),
    }
    for i in range(c.n_layers):
        p = f"model.layers.{i}."
        out |= {
            p + "input_layernorm.weight": t(weights.rms_att[i]),
            p + "self_attn.q_proj.weight": t(
                interleaved_to_halves(weights.wq[i], c.n_heads)
            ),
            p + "self_attn.k_proj.weight": t(
                interleaved_to_halves(weights.wk[i], c.n_kv_heads)
            ),
            p + "self_attn.v_proj.weight": t(weights.wv[i]),
            p + "self_attn.o_proj.weight": t(weights.wo[i]),
            p + "post_attention_layernorm.weight": t(weights.rms_ffn[i]),
            p + "mlp.gate_proj.weight": t(weights.w1[i]),
            p + "mlp.up_proj.weight": t(weights.w3[i]),
            p + "mlp.down_proj.weight": t(weights.w2[i]),
        }
    out["lm_head.weight"] = t(weights.classifier)
    return out


def to_transformers(weights: LlamaWeights, attn_implementation: str = "sdpa"):
    """A ``transformers.LlamaForCausalLM`` (float32, eval mode) computing the same
    function as :class:`numscale.models.llama.LlamaModel` of ``weights``."""
    from transformers import LlamaForCausalLM

    config = hf_config(weights)
    model = LlamaForCausalLM(config)  # 260K parameters: initializing them is instant
    model.load_state_dict(state_dict(weights), strict=True)
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def save_transformers(weights: LlamaWeights, folder: str | os.PathLike) -> Path:
    """Write ``weights`` as a ``transformers`` model folder (``config.json`` and
    ``model.safetensors``), readable by ``LlamaForCausalLM.from_pretrained``; returns
    the folder."""
    folder = Path(folder)
    to_transformers(weights).save_pretrained(folder, safe_serialization=True)
    return folder
