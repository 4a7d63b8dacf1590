"""Attention over long contexts: dilution, log-n scaling, the kernel's scale, rotary.

Helpers for ``book/long_context.md``:

- iid logits: the mean entropy and the weight on one "signal" key against the number of
  keys n, with an optional multiplier c on the logits (:func:`iid_attention`), and the
  formulas they are compared with (:func:`signal_weight_formula`);
- the log-n multiplier ``max(1, ln n / ln n_train)`` (:func:`log_n_multiplier`);
- a stories260K forward with a per-position multiplier on the attention scale and rotary
  tables of any length (:func:`forward_position_scaled`; its loss at each position is
  :func:`numscale.models.next_token.token_nll`);
- attention entropy by query position from recorded queries and keys
  (:func:`entropy_by_position`); the logit against relative distance
  (:func:`logit_by_offset`); the rotary identity (:func:`rotate_pairs`);
- the softmax as a kernel computes it, ``exp2`` with ``s·log₂e`` folded into one
  multiply (:func:`exp2_softmax`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, positive_int, rng_from
from numscale.models import llama
from numscale.models.llama import rotary_tables

LOG2E = math.log2(math.e)


# ------------------------------------------------------------------ iid logits


def log_n_multiplier(n: np.ndarray | int, n_train: int) -> np.ndarray:
    """The log-n multiplier c(n) = max(1, ln n / ln n_train) on the attention logits.

    ``n``: number of keys (an int or an int array, each >= 1); ``n_train``: the training
    length (>= 2). Rows with at most ``n_train`` keys keep c = 1; longer rows are
    sharpened so that a logit gap worth ln n_train nats at n_train is worth ln n at n.
    Shape: that of ``n``.
    """
    n_train = positive_int(n_train, "n_train", minimum=2)
    n = np.asarray(n)
    if not np.issubdtype(n.dtype, np.integer) or n.size == 0 or n.min() < 1:
        raise ValueError("n must hold integers >= 1")
    return np.maximum(1.0, np.log(n) / math.log(n_train))


@dataclass(frozen=True)
class IidAttention:
    """Statistics of softmax rows over n keys, for each n of a sweep (arrays (len(n),)).

    ``entropy`` and ``signal_weight`` are row means, ``*_se`` their standard errors
    (row-to-row spread / √rows)."""

    n: np.ndarray
    entropy: np.ndarray
    entropy_se: np.ndarray
    signal_weight: np.ndarray
    signal_weight_se: np.ndarray


def iid_attention(
    n_values, sigma: float, delta: float, rows: int, seed, multiplier=None
) -> IidAttention:
    """Rows of n logits: key 0 is the "signal" with logit ``delta`` + noise, the other
    n − 1 keys pure noise N(0, ``sigma``²). Each row is multiplied by c (``multiplier``:
    a function of n, default c = 1) before the softmax.

    ``n_values``: ints >= 2; one generator (``seed``) draws every row, n after n.
    """
    n_values = np.asarray(n_values)
    if (
        n_values.ndim != 1
        or n_values.size == 0
        or n_values.min() < 2
        or not np.issubdtype(n_values.dtype, np.integer)
    ):
        raise ValueError("n_values must be a non-empty 1-d array of ints >= 2")
    sigma = finite_float(sigma, "sigma")
    delta = finite_float(delta, "delta")
    rows = positive_int(rows, "rows", minimum=2)
    rng = rng_from(seed)
    stats = np.empty((4, n_values.size))
    for i, n in enumerate(n_values):
        c = 1.0 if multiplier is None else float(multiplier(int(n)))
        z = sigma * rng.standard_normal((rows, int(n)))
        z[:, 0] += delta
        z = c * z
        logp = z - z.max(1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
        p = np.exp(logp)
        h = -(p * logp).sum(1)
        stats[:, i] = (
            h.mean(),
            h.std(ddof=1) / math.sqrt(rows),
            p[:, 0].mean(),
            p[:, 0].std(ddof=1) / math.sqrt(rows),
        )
    return IidAttention(n_values, *stats)


def signal_weight_formula(n, sigma: float, delta: float, c=1.0) -> np.ndarray:
    """Weight on the signal key, law-of-large-numbers form:
    e^{cΔ} / (e^{cΔ} + (n − 1) e^{c²σ²/2}) (the noise keys' e^{cz} averaged, and the
    signal's own noise ignored). Shape: broadcast of ``n`` and ``c``."""
    n = as_float_array(np.asarray(n, dtype=float), "n", ndim=(0, 1))
    c = as_float_array(np.asarray(c, dtype=float), "c", ndim=(0, 1))
    log_noise = np.log(n - 1) + c**2 * sigma**2 / 2
    return 1 / (1 + np.exp(log_noise - c * delta))


# ------------------------------------------------------------------ the kernel


def exp2_softmax(scores: torch.Tensor, scale: float) -> torch.Tensor:
    """softmax(scale · scores) over the last axis, computed as a FlashAttention-style
    kernel does: one multiply by scale·log₂e, the row maximum subtracted, then exp2."""
    scale_log2 = scale * LOG2E
    shifted = scores * scale_log2 - (scores.amax(-1, keepdim=True) * scale_log2)
    unnormalized = torch.exp2(shifted)
    return unnormalized / unnormalized.sum(-1, keepdim=True)


def explicit_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, causal: bool = True
) -> torch.Tensor:
    """softmax(scale · q kᵀ + mask) v, written out; q (…, T, d_k), k, v (…, T, d)."""
    scores = q @ k.transpose(-1, -2)
    if causal:
        T = scores.shape[-1]
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return exp2_softmax(scores, scale) @ v


# ------------------------------------------------------------------ rotary embeddings


def rotate_pairs(x: np.ndarray, position: int, theta: float = 10000.0) -> np.ndarray:
    """Rotate the interleaved pairs (x[2j], x[2j+1]) of ``x`` (…, d_k) by the angles
    position · θ^(−2j/d_k), as llama2.c does. Returns an array of the same shape."""
    x = as_float_array(x, "x")
    d = x.shape[-1]
    if d % 2:
        raise ValueError(f"x must have an even last dimension, got {d}")
    angle = position * theta ** (-np.arange(0, d, 2) / d)
    cos, sin = np.cos(angle), np.sin(angle)
    out = np.empty_like(x)
    out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
    out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
    return out


# ------------------------------------------------------------------ the real model


def forward_position_scaled(
    model: llama.LlamaModel,
    tokens: torch.Tensor,
    multipliers: np.ndarray | None = None,
    return_qk: bool = False,
):
    """stories260K's forward with attention scale c_t/√d_k for the query at position t.

    ``tokens`` (B, T): T may exceed the model's ``seq_len``: the rotary tables are
    recomputed for T positions (θ = 10000). ``multipliers`` (T,), default all 1 (then
    the result equals ``model(tokens)``). Multiplying query t by c_t is the same as
    multiplying its logits by c_t. Returns logits (B, T, vocab), and with ``return_qk``
    also queries and keys (L, B, H, T, d_k) after rotation (keys repeated per head).
    """
    c = model.config
    B, T = tokens.shape
    H, KV, hs = c.n_heads, c.n_kv_heads, c.head_size
    if multipliers is None:
        multipliers = np.ones(T)
    multipliers = as_float_array(multipliers, "multipliers", ndim=1)
    if multipliers.shape != (T,):
        raise ValueError(f"multipliers must have shape ({T},), got {multipliers.shape}")
    cos, sin = (torch.from_numpy(t) for t in rotary_tables(hs, T))
    row_scale = torch.from_numpy(multipliers.astype(np.float32))[None, None, :, None]
    queries, keys = [], []
    x = model.token_embedding[tokens]
    for layer in range(c.n_layers):
        h = llama._rmsnorm(x, model.rms_att[layer])
        q = llama._rotate((h @ model.wq[layer].T).unflatten(-1, (H, hs)), cos, sin)
        k = llama._rotate((h @ model.wk[layer].T).unflatten(-1, (KV, hs)), cos, sin)
        v = (h @ model.wv[layer].T).unflatten(-1, (KV, hs))
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        if return_qk:
            queries.append(q)
            keys.append(k.repeat_interleave(H // KV, dim=1))
        attended = torch.nn.functional.scaled_dot_product_attention(
            q * row_scale,
            k,
            v,
            is_causal=True,
            scale=1 / math.sqrt(hs),
            enable_gqa=True,
        )
        x = x + attended.transpose(1, 2).flatten(-2) @ model.wo[layer].T
        h = llama._rmsnorm(x, model.rms_ffn[layer])
        gate = torch.nn.functional.silu(h @ model.w1[layer].T) * (h @ model.w3[layer].T)
        x = x + gate @ model.w2[layer].T
    logits = llama._rmsnorm(x, model.rms_final) @ model.classifier.T
    if return_qk:
        return logits, torch.stack(queries), torch.stack(keys)
    return logits


def concatenated_stories(
    tokenizer, stories, length: int, n_sequences: int
) -> torch.Tensor:
    """(n_sequences, length) token ids: stories encoded with BOS first, concatenated
    in order and cut into consecutive windows of ``length`` (the first starts at a BOS);
    the way llama2.c trains on a stream of stories. Raises if the text is too short."""
    length = positive_int(length, "length", minimum=2)
    n_sequences = positive_int(n_sequences, "n_sequences")
    stream: list[int] = []
    for story in stories:
        stream.extend(tokenizer.encode(story, bos=True))
        if len(stream) >= length * n_sequences:
            break
    if len(stream) < length * n_sequences:
        raise ValueError(
            f"stories hold {len(stream)} tokens, fewer than {length} × {n_sequences}"
        )
    ids = torch.tensor(stream[: length * n_sequences], dtype=torch.long)
    return ids.view(n_sequences, length)


def entropy_by_position(
    queries: torch.Tensor,
    keys: torch.Tensor,
    scale: float,
    multipliers: np.ndarray | None = None,
) -> np.ndarray:
    """Attention entropy (nats) of every causal row, (L, B, H, T), from queries and keys
    (L, B, H, T, d_k): logits c_t · scale · q_t·k_j for j ≤ t. ``multipliers`` (T,)
    rescales the logits of row t *in this layer only* (nothing is propagated)."""
    L, B, H, T, _ = queries.shape
    c = (
        torch.ones(T)
        if multipliers is None
        else torch.as_tensor(np.asarray(multipliers, dtype=np.float32))
    )
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    out = np.empty((L, B, H, T))
    for layer in range(L):
        z = (queries[layer] @ keys[layer].transpose(-1, -2)) * scale * c[:, None]
        logp = torch.log_softmax(z.masked_fill(future, float("-inf")), dim=-1)
        p = logp.exp()
        out[layer] = -(p * logp.masked_fill(future, 0.0)).sum(-1).double().numpy()
    return out


def logit_by_offset(
    queries: torch.Tensor, keys: torch.Tensor, scale: float, max_offset: int
) -> np.ndarray:
    """Mean scaled logit s·q_t·k_{t−r} for distances r = 0…max_offset, per layer and
    head: (L, H, max_offset + 1), averaged over sequences and query positions t ≥ r."""
    L, B, H, T, _ = queries.shape
    max_offset = positive_int(max_offset, "max_offset", minimum=0)
    if max_offset >= T:
        raise ValueError(f"max_offset must be < T = {T}")
    out = np.empty((L, H, max_offset + 1))
    for delta in range(max_offset + 1):
        dots = (queries[..., delta:, :] * keys[..., : T - delta, :]).sum(-1) * scale
        out[:, :, delta] = dots.mean(dim=(1, 3)).double().numpy()
    return out


# ------------------------------------------------------------------ small samples


def student_t_two_sided_p(t: float, df: int) -> float:
    """Two-sided p-value of a Student t statistic ``t`` on ``df`` degrees of freedom.

    With x = √df·tan θ the tail integral of the t density becomes
    Γ((df+1)/2) / (√π Γ(df/2)) ∫ cos^(df−1) θ dθ from θ₀ = arctan(|t|/√df) to π/2,
    a smooth integrand, integrated here by the trapezoid rule on 20,001 points.
    """
    t = finite_float(t, "t")
    df = positive_int(df, "df")
    theta = np.linspace(math.atan(abs(t) / math.sqrt(df)), math.pi / 2, 20001)
    constant = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(
        math.pi
    )
    return float(2 * constant * np.trapezoid(np.cos(theta) ** (df - 1), theta))
