"""Text from the Llama model: greedy (temperature-0) sampling, as run.c ``-t 0``.

:func:`greedy_sample` runs run.c's incremental forward (``_step``: one position at a
time with a key/value cache), the same arithmetic as
:meth:`numscale.models.llama.LlamaModel.forward`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from numscale.models.llama import LlamaModel, _rmsnorm, _rotate
from numscale.models.llama_tokenizer import BOS

if TYPE_CHECKING:
    from numscale.models.llama_tokenizer import Tokenizer


def _step(model: LlamaModel, token: int, pos: int, cache: list) -> torch.Tensor:
    """Logits (vocab,) at position ``pos`` for one token, with the keys and values of
    earlier positions in ``cache`` (one [keys, values] pair per block, appended to):
    run.c's incremental forward, the same arithmetic as :meth:`LlamaModel.forward`."""
    c = model.config
    H, KV, hs = c.n_heads, c.n_kv_heads, c.head_size
    cos = model.freq_cis_real[pos : pos + 1]
    sin = model.freq_cis_imag[pos : pos + 1]
    x = model.token_embedding[token][None, None]  # (1, 1, dim)
    for layer in range(c.n_layers):
        h = _rmsnorm(x, model.rms_att[layer])
        q = _rotate((h @ model.wq[layer].T).unflatten(-1, (H, hs)), cos, sin)
        k = _rotate((h @ model.wk[layer].T).unflatten(-1, (KV, hs)), cos, sin)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        v = (h @ model.wv[layer].T).unflatten(-1, (KV, hs)).transpose(1, 2)
        if len(cache) <= layer:
            cache.append([k, v])
        else:
            cache[layer] = [
                torch.cat([cache[layer][0], k], 2),
                torch.cat([cache[layer][1], v], 2),
            ]
        keys = cache[layer][0].repeat_interleave(H // KV, dim=1)
        values = cache[layer][1].repeat_interleave(H // KV, dim=1)
        weights = torch.softmax((q @ keys.transpose(-1, -2)) / math.sqrt(hs), dim=-1)
        x = x + (weights @ values).transpose(1, 2).flatten(-2) @ model.wo[layer].T
        h = _rmsnorm(x, model.rms_ffn[layer])
        gate = torch.nn.functional.silu(h @ model.w1[layer].T) * (h @ model.w3[layer].T)
        x = x + gate @ model.w2[layer].T
    return (_rmsnorm(x, model.rms_final) @ model.classifier.T)[0, 0]


def greedy_sample(model: LlamaModel, tokenizer: Tokenizer, steps: int = 256) -> str:
    """Temperature-0 text from BOS, as run.c ``-t 0``: forwards at positions
    0..steps−1, each appending the argmax token; stops early on a generated BOS.
    Uses a key/value cache like run.c (one position per step), at the scale 1/√d_k."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    steps = min(steps, model.config.seq_len)
    ids = [BOS]
    cache: list = []
    threads = torch.get_num_threads()
    # thousands of tiny operations: one thread avoids the thread pool's hand-offs (and
    # its spinning on a busy machine); restored on return
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for pos in range(steps):
                token = int(torch.argmax(_step(model, ids[-1], pos, cache)))
                if token == BOS:
                    break
                ids.append(token)
    finally:
        torch.set_num_threads(threads)
    return tokenizer.decode(ids)
