"""The Llama model of llama2.c (stories260K): its initialization and forward pass.

The shape and the arrays are :class:`~numscale.models.llama_weights.LlamaConfig` and
:class:`~numscale.models.llama_weights.LlamaWeights` (read from a file by
:mod:`numscale.models.llama2c`, or drawn by :func:`init_weights` as llama2.c's
``model.py`` initializes them, with :func:`rotary_tables`). The architecture is run.c's:
token embedding; per block a pre-RMSNorm grouped-query attention with rotary position
embeddings (interleaved pairs 2j, 2j+1) and a pre-RMSNorm SwiGLU MLP, both added to the
residual stream; a final RMSNorm and the classifier. :class:`LlamaModel` runs a batch of
sequences at once (one loop over blocks, none over positions), with a multiplier ``c``
on the attention scale s = c/√d_k, and can record what the chapters measure
(:class:`ForwardRecord`). :func:`forward_numpy` is the small reference it is tested
against. The loss of a run is :mod:`numscale.models.next_token`, greedy sampling
:mod:`numscale.models.llama_sample`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from numscale.checks import rng_from
from numscale.models.llama_weights import WEIGHT_ORDER, LlamaConfig, LlamaWeights
from numscale.norms import tensor_rms_norm

if TYPE_CHECKING:
    from numscale.models.llama_tokenizer import Tokenizer

#: RMSNorm's ε in run.c.
RMS_EPS = 1e-5
#: The rotary base θ.
ROPE_THETA = 10000.0


def rotary_tables(
    head_size: int, seq_len: int, theta: float = ROPE_THETA
) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin of the rotary angles, each (seq_len, head_size/2), float32:
    angle[t, j] = t · θ^(−2j/head_size) (llama2.c's ``precompute_freqs_cis``)."""
    freqs = 1.0 / theta ** (np.arange(0, head_size, 2)[: head_size // 2] / head_size)
    angles = np.outer(np.arange(seq_len), freqs)
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def init_weights(config: LlamaConfig, seed: Any) -> LlamaWeights:
    """The same architecture at initialization, by llama2.c ``model.py``'s scheme.

    Every linear and embedding weight ~ N(0, 0.02²), except those ``model.py`` names for
    its scaled residual init, ``wo`` and ``w3`` (its code names w3, the up projection
    beside the gate, not the down projection w2), ~ N(0, (0.02/√(2·n_layers))²); RMSNorm
    gains 1; rotary tables cos/sin with θ = 10000. Draws come from
    ``np.random.default_rng(seed)`` in file order; float32.
    """
    if not isinstance(config, LlamaConfig):
        raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
    rng = rng_from(seed)
    std_residual = 0.02 / np.sqrt(2 * config.n_layers)
    arrays: dict[str, np.ndarray] = {}
    for name, shape in config.shapes().items():
        if name.startswith("rms"):
            arrays[name] = np.ones(shape, np.float32)
        elif name.startswith("freq"):
            continue
        else:
            std = std_residual if name in ("wo", "w3") else 0.02
            arrays[name] = (rng.standard_normal(shape) * std).astype(np.float32)
    arrays["freq_cis_real"], arrays["freq_cis_imag"] = rotary_tables(
        config.head_size, config.seq_len
    )
    return LlamaWeights(config=config, **arrays)


#: The trainable arrays, in file order (the rotary tables are buffers).
_PARAMS = tuple(name for name in WEIGHT_ORDER if not name.startswith("freq"))


@dataclass
class ForwardRecord:
    """What one forward pass saw. L blocks, batch B, T positions, H query heads.

    ``logits`` (B, T, vocab); ``attn_logits`` (L, B, H, T, T): the scaled pre-softmax
    logits s·q·k, masked (future) entries −inf; ``attn_weights`` (L, B, H, T, T);
    ``residual`` (L+1, B, T, dim): the stream after the embedding and after each block;
    ``queries`` and ``keys`` (L, B, H, T, head_size) after the rotation (keys repeated
    per query head), or ``None`` unless asked.
    """

    logits: torch.Tensor
    attn_logits: torch.Tensor | None
    attn_weights: torch.Tensor | None
    residual: torch.Tensor
    queries: torch.Tensor | None = None
    keys: torch.Tensor | None = None


def _rmsnorm(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """x · rsqrt(mean(x²) + ε) · γ over the last axis (run.c's rmsnorm), computed by
    :func:`numscale.norms.tensor_rms_norm` (the book's one RMSNorm)."""
    return tensor_rms_norm(x, gain, RMS_EPS, algorithm="rsqrt")


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b. In a 16-bit format the products are accumulated in float32 and the result
    rounded to the format once, as GPU tensor cores (and CPU mixed-precision kernels)
    do; it is also far faster on a CPU without native 16-bit arithmetic."""
    if a.dtype in (torch.float16, torch.bfloat16):
        return (a.float() @ b.float()).to(a.dtype)
    return a @ b


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved pairs (x[2j], x[2j+1]) by the angles; x (B, T, heads, hs),
    cos/sin (T, hs/2)."""
    pairs = x.unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1).flatten(-2)


class LlamaModel(torch.nn.Module):
    """stories260K (or any llama2.c model) as a torch module; CPU.

    ``weights``: the arrays; ``dtype``: the format every parameter and activation is
    held in (float32 by default; bfloat16 or float16 run the whole forward in that
    format).
    Parameters are ``nn.Parameter`` (matrices (out, in)), so gradients of a loss with
    respect to the weights are available. The rotary tables are buffers.
    """

    def __init__(self, weights: LlamaWeights, dtype: torch.dtype = torch.float32):
        super().__init__()
        if not isinstance(weights, LlamaWeights):
            raise TypeError(
                f"weights must be LlamaWeights, got {type(weights).__name__}"
            )
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        self.config = weights.config
        self.dtype = dtype
        for name in _PARAMS:
            array = np.ascontiguousarray(getattr(weights, name), dtype=np.float32)
            param = torch.nn.Parameter(torch.from_numpy(array.copy()).to(dtype))
            self.register_parameter(name, param)
        if weights.wcls is not None:
            wcls = np.ascontiguousarray(weights.wcls, dtype=np.float32).copy()
            self.wcls = torch.nn.Parameter(torch.from_numpy(wcls).to(dtype))
        else:
            self.wcls = None
        for name in ("freq_cis_real", "freq_cis_imag"):
            table = np.array(getattr(weights, name), dtype=np.float32)
            table = torch.from_numpy(table).to(dtype)
            self.register_buffer(name, table, persistent=False)

    @property
    def classifier(self) -> torch.Tensor:
        return self.token_embedding if self.wcls is None else self.wcls

    def forward(
        self,
        tokens: torch.Tensor,
        *,
        attn_scale_multiplier: float = 1.0,
        record: bool = False,
        record_attention: bool = True,
        record_qk: bool = False,
        keep_graph: bool = False,
    ):
        """Logits (B, T, vocab) of token ids ``tokens`` (B, T), or a ForwardRecord.

        Attention scale s = ``attn_scale_multiplier`` / √head_size. With ``record``: the
        record; ``record_attention=False`` leaves out the two (L, B, H, T, T) attention
        arrays (4·L·B·H·T² bytes each in float32: 670 MB for 64 stories of 256 tokens),
        ``record_qk`` adds queries and keys; recorded tensors are detached unless
        ``keep_graph``.
        """
        if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
            raise TypeError("tokens must be a torch.LongTensor of shape (B, T)")
        if tokens.ndim != 2 or tokens.shape[1] == 0:
            raise ValueError(
                f"tokens must have shape (B, T) with T >= 1, got {tuple(tokens.shape)}"
            )
        c = self.config
        B, T = tokens.shape
        if T > c.seq_len:
            raise ValueError(f"tokens has {T} positions, more than seq_len {c.seq_len}")
        if int(tokens.min()) < 0 or int(tokens.max()) >= c.vocab_size:
            raise ValueError(f"tokens must lie in 0..{c.vocab_size - 1}")
        multiplier = float(attn_scale_multiplier)
        if not math.isfinite(multiplier):
            raise ValueError(f"attn_scale_multiplier must be finite, got {multiplier}")
        H, KV, hs = c.n_heads, c.n_kv_heads, c.head_size
        scale = multiplier / math.sqrt(hs)
        cos, sin = self.freq_cis_real[:T], self.freq_cis_imag[:T]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        # float32 without a record: PyTorch's fused attention (same maths, no T×T
        # arrays); any other format runs the explicit softmax in that format, so its
        # rounding and overflow are those of the format
        fused = (not record or not record_attention) and self.dtype == torch.float32
        keep = (lambda t: t) if keep_graph else (lambda t: t.detach())
        residuals, att_logits, att_weights, queries, keys = [], [], [], [], []
        x = self.token_embedding[tokens]  # (B, T, dim)
        residuals.append(keep(x))
        for layer in range(c.n_layers):
            h = _rmsnorm(x, self.rms_att[layer])
            q = _rotate(_matmul(h, self.wq[layer].T).unflatten(-1, (H, hs)), cos, sin)
            k = _rotate(_matmul(h, self.wk[layer].T).unflatten(-1, (KV, hs)), cos, sin)
            v = _matmul(h, self.wv[layer].T).unflatten(-1, (KV, hs))
            # (B, heads, T, hs); query head i uses key/value head i // (H/KV), as run.c
            q, k, v = (t.transpose(1, 2) for t in (q, k, v))
            if fused:  # the same arithmetic in one fused kernel, without the T×T arrays
                attended = torch.nn.functional.scaled_dot_product_attention(
                    q, k, v, is_causal=True, scale=scale, enable_gqa=True
                )
            else:
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
                logits = _matmul(q, k.transpose(-1, -2)) * scale
                logits = logits.masked_fill_(future, float("-inf"))
                weights = torch.softmax(logits, dim=-1)
                attended = _matmul(weights, v)
            attended = attended.transpose(1, 2).flatten(-2)  # (B, T, dim)
            x = x + _matmul(attended, self.wo[layer].T)
            h = _rmsnorm(x, self.rms_ffn[layer])
            gate = torch.nn.functional.silu(_matmul(h, self.w1[layer].T)) * _matmul(
                h, self.w3[layer].T
            )
            x = x + _matmul(gate, self.w2[layer].T)
            residuals.append(keep(x))
            if record and record_attention:
                att_logits.append(keep(logits))
                att_weights.append(keep(weights))
            if record and record_qk:
                queries.append(keep(q))
                keys.append(keep(k.repeat_interleave(H // KV, dim=1) if fused else k))
        out = _matmul(_rmsnorm(x, self.rms_final), self.classifier.T)
        if not record:
            return out
        return ForwardRecord(
            logits=keep(out),
            attn_logits=torch.stack(att_logits) if att_logits else None,
            attn_weights=torch.stack(att_weights) if att_weights else None,
            residual=torch.stack(residuals),
            queries=torch.stack(queries) if queries else None,
            keys=torch.stack(keys) if keys else None,
        )


def forward_numpy(
    weights: LlamaWeights,
    tokens: np.ndarray,
    dtype=np.float64,
    return_residual: bool = False,
):
    """Reference forward of one sequence, a direct transcription of run.c in numpy.

    ``tokens``: int array (T,); returns logits (T, vocab) in ``dtype`` (float64 by
    default), and with ``return_residual`` also the stream (L+1, T, dim).
    """
    tokens = np.asarray(tokens)
    integer = np.issubdtype(tokens.dtype, np.integer)
    if tokens.ndim != 1 or tokens.size == 0 or not integer:
        raise ValueError("tokens must be a non-empty 1-d integer array")
    c = weights.config
    if tokens.size > c.seq_len or tokens.min() < 0 or tokens.max() >= c.vocab_size:
        raise ValueError(
            f"tokens must have at most {c.seq_len} ids in 0..{c.vocab_size - 1}"
        )
    W = {k: np.asarray(v, dtype=dtype) for k, v in weights.arrays().items()}
    T, H, hs = tokens.size, c.n_heads, c.head_size
    group = c.n_heads // c.n_kv_heads

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + RMS_EPS) * g

    def rotate(x):  # x (T, heads, hs)
        cos, sin = W["freq_cis_real"][:T, None, :], W["freq_cis_imag"][:T, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * cos - x1 * sin
        out[..., 1::2] = x0 * sin + x1 * cos
        return out

    x = W["token_embedding"][tokens]
    stream = [x]
    causal = np.tril(np.ones((T, T), dtype=bool))
    for layer in range(c.n_layers):
        h = rmsnorm(x, W["rms_att"][layer])
        q = rotate((h @ W["wq"][layer].T).reshape(T, H, hs))
        k = rotate((h @ W["wk"][layer].T).reshape(T, c.n_kv_heads, hs))
        v = (h @ W["wv"][layer].T).reshape(T, c.n_kv_heads, hs)
        heads = []
        for head in range(H):
            z = q[:, head] @ k[:, head // group].T / np.sqrt(hs)
            z = np.where(causal, z, -np.inf)
            p = np.exp(z - z.max(axis=1, keepdims=True))
            p = p / p.sum(axis=1, keepdims=True)
            heads.append(p @ v[:, head // group])
        x = x + np.concatenate(heads, axis=1) @ W["wo"][layer].T
        h = rmsnorm(x, W["rms_ffn"][layer])
        a, b = h @ W["w1"][layer].T, h @ W["w3"][layer].T
        x = x + (a / (1 + np.exp(-a)) * b) @ W["w2"][layer].T
        stream.append(x)
    classifier = W.get("wcls", W["token_embedding"])
    logits = rmsnorm(x, W["rms_final"]) @ classifier.T
    return (logits, np.stack(stream)) if return_residual else logits


def encode_stories(
    tokenizer: Tokenizer, stories: Sequence[str], max_tokens: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, T) of ``stories``, BOS first, each cut to ``max_tokens`` ids
    (BOS included) and right-padded with 0; and the target mask (B, T): True where a
    position holds a token to be predicted (every real token after BOS)."""
    if isinstance(stories, str) or len(stories) == 0:
        raise ValueError("stories must be a non-empty sequence of str")
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or max_tokens < 2
    ):
        raise ValueError(f"max_tokens must be an int >= 2, got {max_tokens!r}")
    encoded = [tokenizer.encode(story, bos=True)[:max_tokens] for story in stories]
    T = max(len(ids) for ids in encoded)
    tokens = torch.zeros(len(encoded), T, dtype=torch.long)
    mask = torch.zeros(len(encoded), T, dtype=torch.bool)
    for row, ids in enumerate(encoded):
        tokens[row, : len(ids)] = torch.tensor(ids)
        mask[row, 1 : len(ids)] = True
    return tokens, mask
