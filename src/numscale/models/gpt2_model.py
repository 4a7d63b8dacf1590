"""GPT-2 as a model: its initialization, honest labels for its tensors, the whole model.

:mod:`numscale.models.gpt2` reads tensors; this module draws them as GPT-2 initializes
them (:func:`init_tensors`, :func:`init_layernorm_parameters`), says whether tensors are
the released GPT-2 small's (:func:`is_released_gpt2_small`, against the checksums of
:mod:`numscale.models.registry`), and builds the whole ``transformers`` model when a
source holds all of it (:func:`load_model`, :func:`load_gpt2`); and what the GPT-2 pages
need beyond the embedded LayerNorms (:data:`LARGE_TENSORS`, :func:`missing_tensors`).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from numscale.checks import rng_from
from numscale.models import sources
from numscale.models.gpt2_files import _index, _read, _resolve
from numscale.models.gpt2_names import (
    N_EMBD,
    N_LAYER,
    GPT2Unavailable,
    LayerNormParameters,
    ModelIncomplete,
    canonical_name,
    gpt2_shape,
    layernorm_module_names,
)
from numscale.models.registry import RELEASED_SHA256

RELEASED_LABEL = "the released GPT-2 small"
OTHER_LABEL = "a model with GPT-2's tensor names"
#: Tensors without which a source cannot be a whole GPT-2 (checked before any is read).
CORE_TENSORS = frozenset(
    {
        "wte.weight",
        "h.0.attn.c_attn.weight",
        "h.0.mlp.c_fc.weight",
        "h.0.mlp.c_proj.weight",
    }
)


# ------------------------------------------------------------------ initialization


def init_layernorm_parameters(
    n_layer: int = N_LAYER, n_embd: int = N_EMBD
) -> LayerNormParameters:
    """The LayerNorms as GPT-2 initializes them: every gain 1, every bias 0."""
    modules = layernorm_module_names(n_layer)
    if isinstance(n_embd, bool) or not isinstance(n_embd, int):
        raise TypeError(f"n_embd must be an int, got {type(n_embd).__name__}")
    if n_embd < 1:
        raise ValueError(f"n_embd must be >= 1, got {n_embd}")
    shape = (len(modules), n_embd)
    return LayerNormParameters(
        modules,
        np.ones(shape, np.float32),
        np.zeros(shape, np.float32),
        "initialization",
    )


# ------------------------------------------------------------------ honest labels


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(
        np.ascontiguousarray(array, dtype="<f4").tobytes()
    ).hexdigest()


def is_released_gpt2_small(tensors: Mapping[str, np.ndarray]) -> bool:
    """Whether ``tensors`` (name -> array) are tensors of the released GPT-2 small.

    True only when there is at least one tensor and every one has a stored checksum
    (:mod:`numscale.models.registry`: the LayerNorms, biases, position embeddings and
    attention weights; 123 tensors) that its float32 little-endian bytes match. A tensor
    without a stored checksum (token embeddings, MLP weights) cannot be verified, so it
    makes the answer False.
    """
    if not isinstance(tensors, Mapping):
        raise TypeError(
            f"tensors must be a mapping of name to array, got {type(tensors).__name__}"
        )
    if not tensors:
        return False
    for name, array in tensors.items():
        expected = RELEASED_SHA256.get(canonical_name(name))
        if expected is None:
            return False
        array = np.asarray(array)
        if array.dtype != np.float32 or _sha256(array) != expected:
            return False
    return True


def model_label(tensors: Mapping[str, np.ndarray]) -> str:
    """``"the released GPT-2 small"`` when :func:`is_released_gpt2_small`, otherwise
    ``"a model with GPT-2's tensor names"``."""
    return RELEASED_LABEL if is_released_gpt2_small(tensors) else OTHER_LABEL


# ----------------------------------------------------------------------- the model


def load_model(source: str | os.PathLike | None = None, config: Any = None):
    """A ``transformers.GPT2LMHeadModel`` in eval mode, when the source holds the whole model.

    The source must have a ``config.json`` (a hub id or a ``save_pretrained`` directory)
    unless a ``GPT2Config`` is passed as ``config``. Every parameter must be present
    (``lm_head.weight`` may be omitted: it is tied to ``wte.weight``); otherwise
    :class:`ModelIncomplete` (a :class:`GPT2Unavailable`) says what is missing, so callers
    can show a notice. The model is built on the meta device (no random initialization,
    no global RNG use) and its parameters are then assigned from the source, in float32.
    """
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as exc:  # pragma: no cover - installed with the book
        raise GPT2Unavailable(
            f"load_model needs torch and transformers: {exc}"
        ) from exc
    resolved = _resolve(source)
    index = _index(resolved)
    if config is None:
        if resolved.config is None:
            core = [
                "wte.weight",
                "h.0.attn.c_attn.weight",
                "h.0.mlp.c_fc.weight",
                "h.0.mlp.c_proj.weight",
            ]
            absent = [n for n in core if n not in index]
            if absent:
                raise ModelIncomplete(
                    f"{resolved.description} holds only part of GPT-2 (it lacks "
                    f"{', '.join(absent)}, among others), so the model cannot run."
                )
            raise ModelIncomplete(
                f"{resolved.description} has no config.json, so the model's shape (heads, "
                f"layers) is unknown; pass config=GPT2Config(...) or use a save_pretrained "
                f"directory."
            )
        try:
            config = GPT2Config.from_json_file(str(resolved.config))
        except (OSError, ValueError) as exc:
            raise resolved.error(
                f"{resolved.config.name} is not a readable config ({exc})"
            ) from None
    elif not isinstance(config, GPT2Config):
        raise TypeError(
            f"config must be a transformers.GPT2Config, got {type(config).__name__}"
        )
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    expected = [canonical_name(n) for n in model.state_dict()]
    needed = [n for n in expected if n != "lm_head.weight" or n in index]
    missing = [n for n in needed if n not in index]
    if missing:
        shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
        raise ModelIncomplete(
            f"{resolved.description} holds only part of GPT-2: {len(missing)} of "
            f"{sources.plural(len(expected), 'parameter')} are missing ({shown}), so the "
            f"model cannot run."
        )
    dims = (config.n_embd, config.n_positions, config.vocab_size)
    tensors = _read(resolved, index, needed, dims=dims)
    state = {}
    for full in model.state_dict():
        name = canonical_name(full)
        array = tensors.get(
            name, tensors["wte.weight"] if name == "lm_head.weight" else None
        )
        state[full] = torch.from_numpy(array)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatch between config and tensors
        raise resolved.error(f"its tensors do not fit its config ({exc})") from None
    if getattr(config, "tie_word_embeddings", True):
        model.lm_head.weight = model.transformer.wte.weight
    return model.eval()


# ------------------------------------------------------------------ initialization


def init_tensors(
    names: Sequence[str],
    seed: Any,
    n_layer: int = N_LAYER,
    n_embd: int = N_EMBD,
    n_positions: int = 1024,
    vocab_size: int = 50257,
    initializer_range: float = 0.02,
) -> dict[str, np.ndarray]:
    """Draw the named tensors as GPT-2 initializes them (the Hugging Face scheme), float32.

    Weights and embeddings ~ N(0, initializer_range²); the residual output projections
    ``attn.c_proj.weight`` and ``mlp.c_proj.weight`` ~ N(0, (initializer_range/√(2·n_layer))²);
    biases 0; LayerNorm gains 1. Draws come from ``np.random.default_rng(seed)`` in the order
    of ``names``. Keys are canonical names.
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence):
        raise TypeError("names must be a sequence of tensor names")
    rng = rng_from(seed)
    result: dict[str, np.ndarray] = {}
    for raw in names:
        name = canonical_name(raw)
        shape = gpt2_shape(name, n_layer, n_embd, n_positions, vocab_size)
        if re.search(r"ln_(1|2|f)\.weight$", name):
            result[name] = np.ones(shape, np.float32)
        elif name.endswith(".bias"):
            result[name] = np.zeros(shape, np.float32)
        else:
            std = (
                initializer_range / np.sqrt(2 * n_layer)
                if name.endswith("c_proj.weight")
                else initializer_range
            )
            result[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(
                std
            )
    return result


def load_gpt2(source: str | None = None):
    """The full GPT-2 model from :func:`load_model`, or ``None`` and why not.

    Returns ``(model, message)``. ``model`` is ``None`` when the source raises
    ``GPT2Unavailable`` (it holds only part of the model, or the default hub id is
    unreachable); ``message`` then says why. A source that was named but cannot be used
    (a missing path, a corrupt file) raises the loader's ``SourceError`` (a
    ``ValueError``): a misconfigured ``NUMSCALE_GPT2`` fails loudly.
    """
    from numscale.models import gpt2

    try:
        # Cheap check first: listing the source's tensors reads no weights and imports no
        # transformers, so a partial source is turned down in milliseconds.
        names = set(gpt2.list_tensors(source))
        absent = sorted(CORE_TENSORS - names)
        if absent:
            return None, (
                f"{gpt2.describe_source(source)}: it holds only part of GPT-2 "
                f"(it lacks {', '.join(absent)}), so the model cannot run."
            )
        model = load_model(source)
    except GPT2Unavailable as exc:
        # the loader's generic advice also names partial sources; the chapter gives its own
        return None, str(exc).replace(gpt2.HOW_TO_PROVIDE, "").strip()
    return model.eval(), "loaded"


# ------------------------------------------------------------ what a page needs


#: The tensors the GPT-2 pages read beyond the embedded LayerNorms (117 MB, not in the
#: repository): every block's attention weights and biases, the output projections'
#: weights and biases, and the position embeddings.
LARGE_TENSORS: tuple[str, ...] = tuple(
    f"h.{i}.{name}"
    for i in range(N_LAYER)
    for name in (
        "attn.c_attn.weight",
        "attn.c_attn.bias",
        "attn.c_proj.weight",
        "attn.c_proj.bias",
        "mlp.c_proj.bias",
    )
) + ("wpe.weight",)
LARGE_TENSORS_TEXT = (
    "GPT-2 small's attention weights and biases, output projections and "
    "position embeddings (117 MB, not part of the repository)"
)


def missing_tensors(
    names: Sequence[str] = LARGE_TENSORS, source: str | os.PathLike | None = None
) -> str | None:
    """``None`` when the source holds every tensor in ``names``; otherwise one sentence
    saying why they cannot be had (the caller says how to provide them).

    Reads the source's list of tensors, never their data. The default hub id, neither
    cached nor reachable, is a missing source (answered within about
    :data:`~numscale.models.sources.PROBE_TIMEOUT` seconds); a source the reader named
    that cannot be used (a path that does not exist, a corrupt file) raises
    :class:`~numscale.models.sources.SourceError`.
    """
    if isinstance(names, (str, bytes)) or not isinstance(names, Sequence) or not names:
        raise TypeError("names must be a non-empty sequence of tensor names")
    try:
        resolved = _resolve(source)
        index = _index(resolved)
    except GPT2Unavailable as exc:
        return exc.reason or str(exc)
    absent = [n for n in map(canonical_name, names) if n not in index]
    if not absent:
        return None
    return (
        f"{resolved.description} lacks {sources.plural(len(absent), 'tensor')} of the "
        f"{len(names)} needed (such as {absent[0]})."
    )
