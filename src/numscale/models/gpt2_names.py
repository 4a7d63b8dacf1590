"""GPT-2's names, shapes and errors: what the reader (:mod:`numscale.models.gpt2_files`)
and the API (:mod:`numscale.models.gpt2`, which re-exports all of it) share."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from numscale.models import registry
from numscale.models.sources import (
    SourceError,
    SourceUnavailable,
)

#: Environment variable naming the source of the weights.
ENV_VAR = "NUMSCALE_GPT2"
#: Source used when neither ``source`` nor ``NUMSCALE_GPT2`` is given.
DEFAULT_SOURCE = registry.GPT2_HUB_ID
#: The source of the embedded LayerNorm parameters (the default of
#: :func:`numscale.models.gpt2.layernorm_parameters`; ``NUMSCALE_GPT2=embedded`` names
#: it for every loader).
EMBEDDED_SOURCE = "embedded"
#: GPT-2 small's depth and width.
N_LAYER = 12
N_EMBD = 768

HOW_TO_PROVIDE = (
    "To provide GPT-2's weights, set NUMSCALE_GPT2 to a save_pretrained directory, to a "
    ".safetensors or .npz file keyed by state-dict name, or to a folder of such files, or "
    "build once with access to the Hugging Face hub so that 'gpt2' is in its local cache."
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_WEIGHT_SUFFIXES = (".safetensors", ".npz")


class GPT2Unavailable(SourceUnavailable):
    """No GPT-2 weights to be had from the default source (not cached, hub unreachable)."""


class ModelIncomplete(GPT2Unavailable):
    """The source is readable but holds no whole model for
    :func:`numscale.models.gpt2_model.load_model`."""


class MissingTensorError(SourceError):
    """Requested tensors are not in the source; the message lists some that are."""


@dataclass(frozen=True)
class LayerNormParameters:
    """The gains and biases of a stack of LayerNorms, one row per module.

    ``names``: module names in order (``h.0.ln_1``, ``h.0.ln_2``, ..., ``ln_f``);
    ``gains`` and ``biases``: float32 arrays of shape ``(len(names), n_embd)``;
    ``source``: a description of where they came from (no machine paths).
    """

    names: tuple[str, ...]
    gains: np.ndarray
    biases: np.ndarray
    source: str


# ------------------------------------------------------------------------- names


def canonical_name(name: str) -> str:
    """``"transformer.h.0.ln_1.weight"`` -> ``"h.0.ln_1.weight"``; other names unchanged."""
    if not isinstance(name, str):
        raise TypeError(f"tensor name must be a str, got {type(name).__name__}")
    return name[len("transformer.") :] if name.startswith("transformer.") else name


def layernorm_module_names(n_layer: int = N_LAYER) -> tuple[str, ...]:
    """``("h.0.ln_1", "h.0.ln_2", ..., "h.{n_layer-1}.ln_2", "ln_f")``: 2·n_layer + 1 names."""
    if isinstance(n_layer, bool) or not isinstance(n_layer, int):
        raise TypeError(f"n_layer must be an int, got {type(n_layer).__name__}")
    if n_layer < 1:
        raise ValueError(f"n_layer must be >= 1, got {n_layer}")
    return tuple(f"h.{i}.{ln}" for i in range(n_layer) for ln in ("ln_1", "ln_2")) + (
        "ln_f",
    )


def gpt2_shape(
    name: str,
    n_layer: int = N_LAYER,
    n_embd: int = N_EMBD,
    n_positions: int = 1024,
    vocab_size: int = 50257,
) -> tuple[int, ...]:
    """Shape of a GPT-2 state-dict tensor (Conv1D weights are ``(in, out)``).

    ``ValueError`` for a name GPT-2 does not have (or a block index >= ``n_layer``).
    """
    name = canonical_name(name)
    d = n_embd
    fixed = {
        "wte.weight": (vocab_size, d),
        "wpe.weight": (n_positions, d),
        "lm_head.weight": (vocab_size, d),
        "ln_f.weight": (d,),
        "ln_f.bias": (d,),
    }
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"h\.(\d+)\.(.+)", name)
    per_block = {
        "ln_1.weight": (d,),
        "ln_1.bias": (d,),
        "ln_2.weight": (d,),
        "ln_2.bias": (d,),
        "attn.c_attn.weight": (d, 3 * d),
        "attn.c_attn.bias": (3 * d,),
        "attn.c_proj.weight": (d, d),
        "attn.c_proj.bias": (d,),
        "mlp.c_fc.weight": (d, 4 * d),
        "mlp.c_fc.bias": (4 * d,),
        "mlp.c_proj.weight": (4 * d, d),
        "mlp.c_proj.bias": (d,),
    }
    if (
        match is None
        or match.group(2) not in per_block
        or int(match.group(1)) >= n_layer
    ):
        raise ValueError(f"{name!r} is not a tensor of GPT-2 with {n_layer} blocks")
    return per_block[match.group(2)]
