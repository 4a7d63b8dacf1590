"""An independent float64 NumPy forward of stories260K, for the trained-model chapter
tests.

The chapters measure with ``numscale.models.llama.LlamaModel`` (torch, float32) and the
reducers of ``numscale.attention_rows``, ``numscale.activation_stats`` and
``numscale.llama_runs``. The chapter tests recompute the quoted numbers here instead: a
transcription of llama2.c's ``run.c`` in float64 (NumPy, matrix products through torch's
single-threaded kernels; as ``numscale.models.llama.forward_numpy``, with the attention
scale multiplier and the attention logits exposed), one story at a time, with the
statistics written out directly. Float32 rounding of the chapter's forward moves its
numbers by about 1e-6 relative, far below the tolerances used (≥ 1e-3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

EPS = 1e-5  # RMSNorm ε of llama2.c's run.c


@dataclass(frozen=True)
class StoryRun:
    """One story: ``logits`` (n, vocab), ``stream`` (L+1, n, d), ``attn`` (L, H, n, n)
    scaled logits with −inf above the diagonal, ``ids`` (n,) the tokens (BOS first)."""

    ids: np.ndarray
    logits: np.ndarray
    stream: np.ndarray
    attn: np.ndarray


def load_reference():
    """The reference stories260K folder (weights, tokenizer, stories)."""
    from numscale.models import llama2c

    return llama2c.load()


def story_ids(data, n_stories: int, max_tokens: int = 256) -> list[np.ndarray]:
    """Token ids of the first ``n_stories`` validation stories, BOS first, cut to
    ``max_tokens`` (the chapters' encoding)."""
    from numscale.models import llama

    tokens, mask = llama.encode_stories(
        data.tokenizer, data.stories[:n_stories], max_tokens=max_tokens
    )
    lengths = mask.numpy().sum(axis=1) + 1  # predicted tokens + BOS
    return [tokens[i, :n].numpy() for i, n in enumerate(lengths)]


def forward(
    weights, ids: np.ndarray, c: float = 1.0, *, keep_attention: bool = True
) -> StoryRun:
    """run.c's forward in float64 with attention scale c/√head_size (matrix products
    through torch's single-threaded CPU kernels, everything else NumPy)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _forward(weights, ids, c, keep_attention)
    finally:
        torch.set_num_threads(threads)


def _forward(weights, ids: np.ndarray, c: float, keep_attention: bool) -> StoryRun:
    cfg = weights.config
    W = {k: np.asarray(v, dtype=np.float64) for k, v in weights.arrays().items()}
    n, H, KV, hs = ids.size, cfg.n_heads, cfg.n_kv_heads, cfg.head_size

    def mm(
        a, b
    ):  # a @ b.T, single-threaded (BLAS threads only slow tiny matrices down)
        return (
            torch.from_numpy(np.ascontiguousarray(a))
            @ torch.from_numpy(np.ascontiguousarray(b)).mT
        ).numpy()

    def rmsnorm(x, g):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + EPS) * g

    def rotate(x):
        cos, sin = W["freq_cis_real"][:n, None, :], W["freq_cis_imag"][:n, None, :]
        out = np.empty_like(x)
        out[..., 0::2] = x[..., 0::2] * cos - x[..., 1::2] * sin
        out[..., 1::2] = x[..., 0::2] * sin + x[..., 1::2] * cos
        return out

    future = ~np.tril(np.ones((n, n), dtype=bool))
    x = W["token_embedding"][ids]
    stream, attn = [x], []
    for layer in range(cfg.n_layers):
        h = rmsnorm(x, W["rms_att"][layer])
        q = rotate(mm(h, W["wq"][layer]).reshape(n, H, hs)).transpose(1, 0, 2)
        k = rotate(mm(h, W["wk"][layer]).reshape(n, KV, hs)).transpose(1, 0, 2)
        v = mm(h, W["wv"][layer]).reshape(n, KV, hs).transpose(1, 0, 2)
        group = H // KV
        k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
        z = mm(q, k) * (c / np.sqrt(hs))
        z[:, future] = -np.inf
        p = np.exp(z - z.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        heads = (
            torch.from_numpy(p) @ torch.from_numpy(np.ascontiguousarray(v))
        ).numpy()
        heads = heads.transpose(1, 0, 2).reshape(n, H * hs)
        x = x + mm(heads, W["wo"][layer])
        h = rmsnorm(x, W["rms_ffn"][layer])
        a, b = mm(h, W["w1"][layer]), mm(h, W["w3"][layer])
        x = x + mm(a / (1 + np.exp(-a)) * b, W["w2"][layer])
        stream.append(x)
        if keep_attention:
            attn.append(z)
    classifier = W.get("wcls", W["token_embedding"])
    logits = mm(rmsnorm(x, W["rms_final"]), classifier)
    return StoryRun(
        ids, logits, np.stack(stream), np.stack(attn) if keep_attention else np.empty(0)
    )


def story_nll(run: StoryRun) -> tuple[float, int]:
    """Summed next-token NLL of a story (positions 0…n−2 predict tokens 1…n−1)."""
    z = run.logits[:-1]
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float((log_norm - z[np.arange(z.shape[0]), run.ids[1:]]).sum()), z.shape[0]


def ratio_mean_se(sums, counts) -> tuple[float, float]:
    """Σ sums / Σ counts and the ratio estimator's standard error, stories as draws."""
    sums, counts = np.asarray(sums, float), np.asarray(counts, float)
    m, mean = sums.size, sums.sum() / counts.sum()
    return mean, float(
        np.sqrt(((sums - mean * counts) ** 2).sum() / (m * (m - 1))) / counts.mean()
    )
