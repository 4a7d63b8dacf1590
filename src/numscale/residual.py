"""The residual stream of pre-LN and post-LN Transformers: its norm and its gradients.

A toy Transformer (torch, no position embeddings, one attention head, GPT-2's 4×
MLP) built from a seeded ``torch.Generator``, in two arrangements of the same weights:

* pre-LN (GPT-2): ``x = x + attn(LN(x))``, ``x = x + mlp(LN(x))``, a final LN before
  the unembedding;
* post-LN (the original Transformer): ``x = LN(x + attn(x))``, ``x = LN(x + mlp(x))``.

Shapes: token ids are ``(batch, seq)`` int64; per-layer results have ``n_layer + 1``
entries (the embedding, then the stream after each block) or ``n_layer`` (one per
block). :func:`residual_stream_norms` measures a real transformers GPT-2 model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from numscale.checks import (
    as_float_tensor,
    as_index_tensor,
    finite_float,
    positive_int,
)
from numscale.norms import tensor_layer_norm

#: "The quick brown fox jumps over the lazy dog." in GPT-2's byte-pair encoding, fixed
#: so that measuring GPT-2 needs no tokenizer.
FIXED_TOKEN_IDS: tuple[int, ...] = (
    464,
    2068,
    7586,
    21831,
    18045,
    625,
    262,
    16931,
    3290,
    13,
)
FIXED_TEXT = "The quick brown fox jumps over the lazy dog."

POSITIONS = ("pre", "post")
#: Tensors without which no GPT-2 forward pass can run (canonical ``GPT2Model`` names).


def _xavier(generator: torch.Generator, fan_in: int, fan_out: int) -> torch.Tensor:
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return torch.randn(fan_in, fan_out, generator=generator) * std


def attention_branch(x: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """One causal attention head: ``(batch, seq, d) -> (batch, seq, d)``."""
    q, k, v = (x @ w["q"])[:, None], (x @ w["k"])[:, None], (x @ w["v"])[:, None]
    heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return heads[:, 0] @ w["o"]


def mlp_branch(x: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """GPT-2's MLP, ``gelu(x W_fc) W_proj`` (tanh GELU, no biases)."""
    return F.gelu(x @ w["fc"], approximate="tanh") @ w["proj"]


def pre_ln_block(x: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Pre-LN (GPT-2): each branch reads LN(x) and adds to the stream x."""
    x = x + attention_branch(tensor_layer_norm(x), w)
    x = x + mlp_branch(tensor_layer_norm(x), w)
    return x


def post_ln_block(x: torch.Tensor, w: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Post-LN (the original Transformer): normalize after each residual addition."""
    x = tensor_layer_norm(x + attention_branch(x, w))
    x = tensor_layer_norm(x + mlp_branch(x, w))
    return x


class ToyTransformer(torch.nn.Module):
    """A bias-free toy Transformer with Xavier-initialised weights.

    ``position`` is ``"pre"`` or ``"post"``; two models built with the same ``seed``
    share every weight, so they differ only in where LayerNorm sits. Embeddings are
    N(0, 1) (stream norm ≈ √d at the input). LayerNorms have γ = 1, β = 0 (their
    initial values) and no learnable parameters here. ``proj_scale`` multiplies the
    output matrices of both branches (``o`` and ``proj``) after drawing them:
    ``1/√(2·n_layer)`` is GPT-2's residual scaling as Hugging Face reads it.
    Blocks are :func:`pre_ln_block` or :func:`post_ln_block`. One generator draws the
    embedding, then the blocks in order, then the unembedding: models of one ``seed``
    are nested, the ``n_layer``-block model's embedding and blocks being the first
    blocks of any deeper model's (only the unembedding differs).
    """

    def __init__(
        self,
        d: int,
        n_layer: int,
        position: str,
        *,
        seed: int,
        vocab: int = 256,
        proj_scale: float = 1.0,
    ):
        super().__init__()
        self.d = positive_int(d, "d")
        self.n_layer = positive_int(n_layer, "n_layer")
        self.vocab = positive_int(vocab, "vocab", minimum=2)
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.position = position
        proj_scale = finite_float(proj_scale, "proj_scale", positive=True)
        g = torch.Generator().manual_seed(positive_int(seed, "seed", minimum=0))
        self.embed = torch.nn.Parameter(torch.randn(self.vocab, d, generator=g))
        shapes = {
            "q": (d, d),
            "k": (d, d),
            "v": (d, d),
            "o": (d, d),
            "fc": (d, 4 * d),
            "proj": (4 * d, d),
        }
        self.blocks = torch.nn.ModuleList()
        for _ in range(self.n_layer):
            block = torch.nn.ParameterDict(
                {
                    name: torch.nn.Parameter(_xavier(g, i, o))
                    for name, (i, o) in shapes.items()
                }
            )
            with torch.no_grad():
                block["o"].mul_(proj_scale)
                block["proj"].mul_(proj_scale)
            self.blocks.append(block)
        self.unembed = torch.nn.Parameter(
            torch.randn(d, self.vocab, generator=g) / math.sqrt(d)
        )

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(batch, seq, vocab)`` and the stream ``(batch, seq, d)`` at each depth."""
        block = pre_ln_block if self.position == "pre" else post_ln_block
        x = self.embed[ids]
        streams = [x]
        for w in self.blocks:
            x = block(x, w)
            streams.append(x)
        final = tensor_layer_norm(x) if self.position == "pre" else x
        return final @ self.unembed, streams


def toy_batch(
    vocab: int, batch: int, seq: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniformly random token ids and next-token targets, both ``(batch, seq)`` int64."""
    vocab = positive_int(vocab, "vocab", minimum=2)
    batch = positive_int(batch, "batch")
    seq = positive_int(seq, "seq")
    g = torch.Generator().manual_seed(positive_int(seed, "seed", minimum=0))
    ids = torch.randint(0, vocab, (batch, seq + 1), generator=g)
    return ids[:, :-1].contiguous(), ids[:, 1:].contiguous()


def stream_norms(model: ToyTransformer, ids: torch.Tensor) -> np.ndarray:
    """Mean over tokens of the L2 norm of the residual stream: ``(n_layer + 1,)``."""
    ids = as_index_tensor(ids, "ids", ndim=2, high=model.vocab)
    with torch.no_grad():
        _, streams = model(ids)
    return np.array([float(s.norm(dim=-1).mean()) for s in streams])


@dataclass(frozen=True)
class GradientProfile:
    """Gradients of one model at its current weights (see :func:`gradient_profile`)."""

    weights: np.ndarray  #: (n_layer,) ‖∂loss/∂(W_fc, W_proj)‖ of each block's MLP
    stream: np.ndarray  #: (n_layer + 1,) ‖∂loss/∂x_l‖ of the stream at each depth
    stream_norm: np.ndarray  #: (n_layer + 1,) mean over tokens of ‖x_l‖
    token_cosine: np.ndarray  #: (n_layer + 1,) :func:`mean_token_cosine` of x_l


def mean_token_cosine(x: torch.Tensor) -> float:
    """Mean cosine similarity between the centred vectors of different tokens.

    ``x`` is ``(batch, seq, d)``; each token's vector is centred over its d coordinates
    (what a LayerNorm sees) and normalized; the mean is over all pairs of distinct
    tokens of the batch. 0 for unrelated directions, 1 when all tokens coincide.
    """
    x = as_float_tensor(x, "x", ndim=3)
    flat = x.detach().reshape(-1, x.shape[-1]).double()
    flat = flat - flat.mean(dim=-1, keepdim=True)
    unit = flat / flat.norm(dim=-1, keepdim=True)
    n = unit.shape[0]
    if n < 2:
        raise ValueError("x must hold at least two tokens")
    total = unit.sum(dim=0)
    return float((total @ total - n) / (n * (n - 1)))  # Σ_{i≠j} cos = |Σ u|² − n


def gradient_profile(
    model: ToyTransformer, ids: torch.Tensor, targets: torch.Tensor
) -> GradientProfile:
    """Weight and stream gradients of the mean next-token cross-entropy, one backward pass.

    ``targets`` is ``(batch, seq)``. ``weights[l]`` is √(‖∂L/∂W_fc‖² + ‖∂L/∂W_proj‖²)
    of block l + 1 (Xiong et al. 2020 track these weights); ``stream[l]`` is the
    Frobenius norm of ∂L/∂x_l over the whole batch, l = 0 (embedding) … n_layer.
    The model's stored gradients are cleared before and after.
    """
    ids = as_index_tensor(ids, "ids", ndim=2, high=model.vocab)
    targets = as_index_tensor(targets, "targets", ndim=2, high=model.vocab)
    if targets.shape != ids.shape:
        raise ValueError(
            f"targets must have the shape of ids {tuple(ids.shape)}, "
            f"got {tuple(targets.shape)}"
        )
    model.zero_grad(set_to_none=True)
    logits, streams = model(ids)
    for stream in streams:
        stream.retain_grad()
    loss = F.cross_entropy(logits.reshape(-1, model.vocab), targets.reshape(-1))
    loss.backward()
    weights = np.array(
        [
            math.hypot(float(p["fc"].grad.norm()), float(p["proj"].grad.norm()))
            for p in model.blocks
        ]
    )
    profile = GradientProfile(
        weights=weights,
        stream=np.array([float(s.grad.norm()) for s in streams]),
        stream_norm=np.array([float(s.detach().norm(dim=-1).mean()) for s in streams]),
        token_cosine=np.array([mean_token_cosine(s) for s in streams]),
    )
    model.zero_grad(set_to_none=True)
    return profile


def layer_grad_norms(
    model: ToyTransformer, ids: torch.Tensor, targets: torch.Tensor
) -> np.ndarray:
    """Gradient norm of each block's MLP weights: ``gradient_profile(...).weights``."""
    return gradient_profile(model, ids, targets).weights


@dataclass(frozen=True)
class DepthSweep:
    """Last-block measurements over seeds and depths (see :func:`last_block_sweep`)."""

    depths: np.ndarray  #: (m,) number of blocks L
    seeds: np.ndarray  #: (s,) seeds of the models
    last_grad: dict[
        str, np.ndarray
    ]  #: position -> (s, m) last block's MLP gradient norm
    growth: np.ndarray  #: (s, m) pre-LN ‖x_L‖ / ‖x_0‖ (final LN divides by it)
    cosine: dict[
        str, np.ndarray
    ]  #: position -> (s, m) token cosine at the last block's input
    profiles: dict[
        tuple[int, int, str], GradientProfile
    ]  #: (seed, L, position) -> profile


def last_block_sweep(
    depths: Sequence[int],
    seeds: Sequence[int],
    ids: torch.Tensor,
    targets: torch.Tensor,
    *,
    d: int,
    vocab: int,
) -> DepthSweep:
    """For every seed and depth, build both arrangements and measure the last block.

    One :func:`gradient_profile` per (seed, depth, position); ``ids``/``targets`` are
    ``(batch, seq)``. Seeds give independent models, so their spread is the
    sampling error of a single model's numbers; the depths of one seed do not: its
    L-block model is the first L blocks of its deepest model (see
    :class:`ToyTransformer`), so one seed's values across depths are one stream read
    at several depths. Every profile is kept in ``profiles``.
    """
    depths_arr = np.array([positive_int(L, "depths") for L in depths])
    seeds_arr = np.array([positive_int(s, "seeds", minimum=0) for s in seeds])
    if depths_arr.size == 0 or seeds_arr.size == 0:
        raise ValueError("depths and seeds must not be empty")
    shape = (seeds_arr.size, depths_arr.size)
    last_grad = {pos: np.zeros(shape) for pos in POSITIONS}
    cosine = {pos: np.zeros(shape) for pos in POSITIONS}
    growth = np.zeros(shape)
    profiles: dict[tuple[int, int, str], GradientProfile] = {}
    for i, seed in enumerate(seeds_arr):
        for j, depth in enumerate(depths_arr):
            for pos in POSITIONS:
                model = ToyTransformer(d, int(depth), pos, seed=int(seed), vocab=vocab)
                profile = gradient_profile(model, ids, targets)
                profiles[int(seed), int(depth), pos] = profile
                last_grad[pos][i, j] = profile.weights[-1]
                cosine[pos][i, j] = profile.token_cosine[-2]
                if pos == "pre":
                    growth[i, j] = profile.stream_norm[-1] / profile.stream_norm[0]
    return DepthSweep(
        depths=depths_arr,
        seeds=seeds_arr,
        last_grad=last_grad,
        growth=growth,
        cosine=cosine,
        profiles=profiles,
    )


def residual_stream_norms(
    model, input_ids: torch.Tensor, *, per_token: bool = False
) -> np.ndarray:
    """L2 norms of a transformers GPT-2 model's residual stream, one row per depth.

    ``input_ids`` is ``(1, seq)``. Row 0 is the embedding (token + position), row l the
    stream after block l, l = 1 … n_layer. ``output_hidden_states`` supplies rows
    0 … n_layer − 1; its last entry has the final LayerNorm ``ln_f`` applied, so row
    n_layer is read by a forward hook on the last block instead. Returns
    ``(n_layer + 1,)`` means over tokens, or ``(n_layer + 1, seq)`` with ``per_token``.
    """
    transformer = getattr(model, "transformer", None)
    if transformer is None or not hasattr(transformer, "h"):
        raise TypeError(
            f"model must be a transformers GPT2LMHeadModel, got {type(model).__name__}"
        )
    vocab = int(model.config.vocab_size)
    ids = as_index_tensor(input_ids, "input_ids", ndim=2, high=vocab)
    if ids.shape[0] != 1:
        raise ValueError(
            f"input_ids must hold one sequence, shape (1, seq), got {tuple(ids.shape)}"
        )
    if ids.shape[1] > int(model.config.n_positions):
        raise ValueError(
            f"input_ids is longer than the model's context ({model.config.n_positions})"
        )
    captured: list[torch.Tensor] = []

    def hook(module, args, output):
        captured.append(output[0] if isinstance(output, tuple) else output)

    handle = transformer.h[-1].register_forward_hook(hook)
    try:
        with torch.no_grad():
            out = model(ids, output_hidden_states=True)
    finally:
        handle.remove()
    states = list(out.hidden_states[:-1]) + [captured[-1]]
    norms = torch.stack([s[0].float().norm(dim=-1) for s in states]).numpy()
    return norms if per_token else norms.mean(axis=1)
