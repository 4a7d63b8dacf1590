"""Record what a ``transformers`` causal language model computes, without changing it.

Attention: ``transformers`` runs attention through a function looked up by name in its
``AttentionInterface``; every family supported here (GPT-2, Llama, Mistral, Qwen2,
GPT-NeoX) calls it with the query and key tensors attention itself uses, after the
rotary embedding, the key/value heads not yet repeated, and the model's own ``scaling``.
:func:`recording` registers a function under :data:`RECORDING_NAME` that hands those
tensors to a :class:`Recorder` and then calls the stock
``sdpa_attention_forward`` with exactly the same arguments: the model's output is the
one its ``sdpa`` implementation gives, bit for bit. The mask function registered beside
it is ``sdpa``'s own, so causal and sliding-window masks are those of ``sdpa``.

Residual stream: forward hooks on the decoder layers read the input of the first layer
(the embedding, plus GPT-2's position embedding) and the output of every layer, before
the final norm.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

#: The name under which the recording attention function is registered.
RECORDING_NAME = "numscale_record"
#: ``config.model_type`` of the supported families, with the attribute path of their
#: decoder layers.
SUPPORTED = {
    "gpt2": "transformer.h",
    "llama": "model.layers",
    "mistral": "model.layers",
    "qwen2": "model.layers",
    "gpt_neox": "gpt_neox.layers",
}
FAMILIES = "GPT-2, Llama, Mistral, Qwen2 and GPT-NeoX"


class UnsupportedModel(ValueError):
    """A model ``numscale.inspect`` cannot measure; the message says why, in one
    line."""


def check_config(config: object) -> str:
    """The ``model_type`` of a supported causal language model's config, or raise
    :class:`UnsupportedModel` naming what is not supported."""
    model_type = getattr(config, "model_type", None)
    if not isinstance(model_type, str):
        raise UnsupportedModel(
            f"config has no model_type: not a transformers config "
            f"({type(config).__name__})"
        )
    if getattr(config, "is_encoder_decoder", False):
        raise UnsupportedModel(
            f"model type {model_type!r} is an encoder-decoder, not a "
            f"causal language model"
        )
    if model_type not in SUPPORTED:
        raise UnsupportedModel(
            f"model type {model_type!r} is not supported: "
            f"numscale.inspect measures causal language models of the "
            f"{FAMILIES} families"
        )
    return model_type


def check_model(model: object) -> str:
    """The ``model_type`` of a supported ``transformers`` causal LM module, or raise
    :class:`UnsupportedModel` (a ``TypeError`` for something that is not a module)."""
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "config"):
        raise TypeError(
            f"model must be a transformers model, got {type(model).__name__}"
        )
    model_type = check_config(model.config)
    if not type(model).__name__.endswith("ForCausalLM") and model_type != "gpt2":
        raise UnsupportedModel(
            f"{type(model).__name__} is not a causal language model "
            f"(load it with AutoModelForCausalLM)"
        )
    if model_type == "gpt2" and type(model).__name__ != "GPT2LMHeadModel":
        raise UnsupportedModel(
            f"{type(model).__name__} is not a causal language model "
            f"(load it with AutoModelForCausalLM)"
        )
    return model_type


def decoder_layers(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The list of decoder layers (blocks) of a supported model."""
    module: object = model
    for part in SUPPORTED[check_model(model)].split("."):
        module = getattr(module, part)
    return module  # type: ignore[return-value]


def head_counts(config: object) -> tuple[int, int, int]:
    """(layers, query heads, key/value heads) of a supported model's config."""
    layers = int(config.num_hidden_layers)
    heads = int(config.num_attention_heads)
    kv = int(getattr(config, "num_key_value_heads", None) or heads)
    return layers, heads, kv


# ------------------------------------------------------------------ attention


@dataclass
class AttentionCall:
    """What one attention call saw: ``layer`` index, ``logits`` (B, H, T_q, T_k) the
    scaled logits ``scaling·q·k`` in float32, ``allowed`` (B or 1, 1 or H, T_q, T_k)
    bool, True where the mask lets a query see a key."""

    layer: int
    logits: torch.Tensor
    allowed: torch.Tensor


def scaled_logits(
    query: torch.Tensor, key: torch.Tensor, scaling: float | None
) -> torch.Tensor:
    """``scaling · q kᵀ`` in float32: query (B, H, T, d), key (B, KV, S, d) with KV
    dividing H (query head h uses key head h // (H/KV), as ``repeat_kv``); returns
    (B, H, T, S). ``scaling`` None means 1/√d, ``sdpa``'s default."""
    B, H, T, d = query.shape
    kv = key.shape[1]
    if H % kv:
        raise ValueError(f"query has {H} heads, key {kv}: not a grouped-query layout")
    scale = d**-0.5 if scaling is None else float(scaling)
    q = query.float().reshape(B, kv, H // kv, T, d)
    k = key.float()[:, :, None]  # (B, KV, 1, S, d)
    return (q @ k.transpose(-1, -2)).reshape(B, H, T, -1) * scale


def allowed_keys(
    attention_mask: torch.Tensor | None, shape: tuple[int, ...], is_causal: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Which keys each query may see, and an additive bias (a float mask's finite
    values; None for a boolean or absent mask). ``shape`` (B, H, T, S) of the logits;
    no mask means causal (lower-left aligned, as ``sdpa``'s ``is_causal``) or all."""
    B, H, T, S = shape
    if attention_mask is None:
        if not is_causal:
            return torch.ones(1, 1, T, S, dtype=torch.bool), None
        offset = S - T  # with a cache the queries are the last T keys
        rows = torch.arange(T)[:, None] + offset
        return (torch.arange(S)[None, :] <= rows)[None, None], None
    if attention_mask.dtype == torch.bool:
        return attention_mask[..., :T, :S], None
    mask = attention_mask[..., :T, :S].float()
    allowed = mask > torch.finfo(attention_mask.dtype).min / 2
    return allowed, torch.where(allowed, mask, torch.zeros((), dtype=mask.dtype))


class Recorder:
    """Receives every attention call of a forward pass (see :func:`recording`).

    ``on_call(call)`` is called with an :class:`AttentionCall` per layer;
    ``calls`` counts them.
    """

    def __init__(self, on_call: Callable[[AttentionCall], None]):
        self.on_call = on_call
        self.calls = 0

    def __call__(
        self,
        module: torch.nn.Module,
        query: torch.Tensor,
        key: torch.Tensor,
        attention_mask: torch.Tensor | None,
        scaling: float | None,
        is_causal: bool | None,
    ) -> None:
        layer = getattr(module, "layer_idx", None)
        logits = scaled_logits(query.detach(), key.detach(), scaling)
        causal = (
            is_causal if is_causal is not None else getattr(module, "is_causal", True)
        )
        allowed, bias = allowed_keys(attention_mask, tuple(logits.shape), bool(causal))
        if bias is not None:
            logits = logits + bias
        self.on_call(
            AttentionCall(self.calls if layer is None else int(layer), logits, allowed)
        )
        self.calls += 1


_ACTIVE: list[Recorder] = []


def _recording_attention(
    module,
    query,
    key,
    value,
    attention_mask,
    dropout=0.0,
    scaling=None,
    is_causal=None,
    **kwargs,
):
    """The registered attention function: record, then run ``sdpa`` unchanged."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if _ACTIVE:
        _ACTIVE[-1](module, query, key, attention_mask, scaling, is_causal)
    return sdpa_attention_forward(
        module,
        query,
        key,
        value,
        attention_mask,
        dropout=dropout,
        scaling=scaling,
        is_causal=is_causal,
        **kwargs,
    )


def register() -> None:
    """Register :data:`RECORDING_NAME` in ``transformers``' attention and mask
    interfaces (idempotent)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(RECORDING_NAME, _recording_attention)
    AttentionMaskInterface.register(RECORDING_NAME, sdpa_mask)


@contextlib.contextmanager
def recording(model: torch.nn.Module, recorder: Recorder) -> Iterator[None]:
    """Within the block, ``model`` runs its attention through the recording function
    and every call goes to ``recorder``; the model's attention implementation is
    restored on exit."""
    check_model(model)
    register()
    before = model.config._attn_implementation
    model.set_attn_implementation(RECORDING_NAME)
    if model.config._attn_implementation != RECORDING_NAME:
        raise UnsupportedModel(
            f"{type(model).__name__} cannot switch its attention implementation"
        )
    _ACTIVE.append(recorder)
    try:
        yield
    finally:
        _ACTIVE.pop()
        model.set_attn_implementation(before)


# ------------------------------------------------------------------ residual stream


@contextlib.contextmanager
def residual_hooks(
    model: torch.nn.Module, sink: Callable[[int, torch.Tensor], None]
) -> Iterator[None]:
    """Within the block, ``sink(depth, x)`` receives the residual stream x (B, T, d):
    depth 0 the input of the first decoder layer, depth l the output of layer l."""
    layers = decoder_layers(model)

    def first_input(module, args, kwargs):
        x = args[0] if args else kwargs["hidden_states"]
        sink(0, x.detach())

    def output(depth: int):
        def hook(module, args, kwargs, out):
            x = out[0] if isinstance(out, tuple) else out
            sink(depth, x.detach())

        return hook

    handles = [layers[0].register_forward_pre_hook(first_input, with_kwargs=True)]
    handles += [
        layer.register_forward_hook(output(i + 1), with_kwargs=True)
        for i, layer in enumerate(layers)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


#: exp overflows float16 above this: ln of its largest finite value.
FP16_EXP_LIMIT = math.log(float(torch.finfo(torch.float16).max))
