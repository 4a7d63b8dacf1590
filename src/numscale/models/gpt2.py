"""GPT-2's tensors, read one at a time and checked.

Where the tensors come from follows :mod:`numscale.models.sources`: the ``source`` argument or,
when that is ``None``, the environment variable ``NUMSCALE_GPT2``; by default ``"gpt2"``,
the Hugging Face id, except for :func:`layernorm_parameters`, whose default is the
LayerNorm parameters built into the package (``"embedded"``, 168 KB, sha256 checked at
load). Accepted sources:

* a Hugging Face hub id (``"gpt2"``, ``"openai-community/gpt2"``): the local Hugging Face
  cache first, else (unless ``HF_HUB_OFFLINE`` is set) ``model.safetensors`` is downloaded
  after a probe of at most :data:`~numscale.models.sources.PROBE_TIMEOUT` seconds;
* a directory written by ``save_pretrained`` (``model.safetensors`` or sharded files with
  their index, and ``config.json``);
* one ``.safetensors`` file, or one ``.npz`` of arrays keyed by state-dict name;
* a directory of such files holding one state dict between them (the project's
  ``../shared/reference`` folder is one).

Tensor names are normalised to the bare ``GPT2Model`` form (``transformer.h.0.ln_1.weight``
and ``h.0.ln_1.weight`` both name ``h.0.ln_1.weight``). Only the tensors asked for are
read (:mod:`numscale.models.safetensors_io` reads a safetensors tensor's byte range; an ``.npz``
member is read on access). Pickle files are never unpickled. Every tensor read is checked:
a float dtype, the shape GPT-2 has for that name (GPT-2 small's, or the shape implied by
the source's ``config.json``), finite values.

Errors: a source the reader named that cannot be used (missing path, pickle-only folder,
corrupt file, bad tensor, missing tensors) raises :class:`~numscale.models.sources.SourceError`
(a ``ValueError``; :class:`MissingTensorError` for missing tensors), one line naming the
variable, the source and the reason. Only the default hub id, unreachable, raises
:class:`GPT2Unavailable`; so does :func:`numscale.models.gpt2_model.load_model` on a
source that holds only part of GPT-2 (:class:`ModelIncomplete`).
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence

import numpy as np

from numscale.models import sources
from numscale.models.gpt2_files import _index, _missing, _read, _resolve, clear_cache
from numscale.models.gpt2_names import (
    DEFAULT_SOURCE,
    EMBEDDED_SOURCE,
    ENV_VAR,
    HOW_TO_PROVIDE,
    N_EMBD,
    N_LAYER,
    GPT2Unavailable,
    LayerNormParameters,
    MissingTensorError,
    ModelIncomplete,
    canonical_name,
    gpt2_shape,
    layernorm_module_names,
)
from numscale.models.sources import (
    PROBE_TIMEOUT,
    SourceError,
    endpoint_reachable,
)

__all__ = [
    "ENV_VAR",
    "DEFAULT_SOURCE",
    "PROBE_TIMEOUT",
    "N_LAYER",
    "N_EMBD",
    "HOW_TO_PROVIDE",
    "GPT2Unavailable",
    "ModelIncomplete",
    "MissingTensorError",
    "SourceError",
    "LayerNormParameters",
    "canonical_name",
    "layernorm_module_names",
    "endpoint_reachable",
    "clear_cache",
    "list_tensors",
    "describe_source",
    "source_available",
    "load_tensors",
    "load_tensor",
    "count_layers",
    "layernorm_parameters",
    "gpt2_shape",
]

# ----------------------------------------------------------------------- API


def list_tensors(source: str | os.PathLike | None = None) -> list[str]:
    """Sorted canonical names (``h.0.ln_1.weight`` form) of every tensor in the source."""
    return sorted(_index(_resolve(source)))


def describe_source(source: str | os.PathLike | None = None) -> str:
    """One line saying where the tensors come from and how many there are (no machine
    paths): e.g. ``"the folder named by NUMSCALE_GPT2 (a.npz, b.npz); 123 tensors"``."""
    resolved = _resolve(source)
    return f"{resolved.description}; {sources.plural(len(_index(resolved)), 'tensor')}"


def source_available(source: str | os.PathLike | None = None) -> bool:
    """True when the source resolves to readable weight files. ``False`` only when the
    default source is unavailable; a named source that cannot be used raises."""
    try:
        _index(_resolve(source))
    except GPT2Unavailable:
        return False
    return True


def load_tensors(
    names: Sequence[str] | None = None,
    pattern: str | None = None,
    source: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Read tensors as float32 arrays, keyed by canonical name.

    ``names``: a sequence of state-dict names (with or without the ``transformer.``
    prefix); ``pattern``: a shell-style glob on canonical names (``"h.*.attn.c_proj.weight"``);
    give one of them, or neither for every tensor. Shapes are those of the checkpoint
    (Conv1D weights are ``(in, out)``). Only the requested tensors are read, and each is
    checked (float dtype, GPT-2's shape for its name, finite values).
    """
    if names is not None:
        if isinstance(names, (str, bytes)):
            raise TypeError(
                "names must be a sequence of tensor names, not a single string "
                "(wrap it in a list)"
            )
        if not isinstance(names, Sequence):
            raise TypeError(
                f"names must be a sequence of str, got {type(names).__name__}"
            )
        bad = [type(n).__name__ for n in names if not isinstance(n, str)]
        if bad:
            raise TypeError(f"names must hold only str, got {bad[0]}")
    if pattern is not None and not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    if names is not None and pattern is not None:
        raise ValueError("give names or pattern, not both")
    resolved = _resolve(source)
    index = _index(resolved)
    if names is not None:
        wanted = list(dict.fromkeys(canonical_name(n) for n in names))
        absent = [n for n in wanted if n not in index]
        if absent:
            raise _missing(resolved, absent, list(index))
    elif pattern is not None:
        wanted = sorted(
            n for n in index if fnmatch.fnmatchcase(n, canonical_name(pattern))
        )
        if not wanted:
            raise _missing(resolved, [pattern], list(index))
    else:
        wanted = sorted(index)
    return _read(resolved, index, wanted)


def load_tensor(name: str, source: str | os.PathLike | None = None) -> np.ndarray:
    """One tensor as a float32 array (see :func:`load_tensors`)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return load_tensors([name], source=source)[canonical_name(name)]


def count_layers(names: Sequence[str]) -> int:
    """Number of blocks ``h.{i}`` named in ``names`` (0 when none); blocks must be 0..n-1."""
    blocks = {
        int(m.group(1))
        for n in names
        if (m := re.match(r"^h\.(\d+)\.", canonical_name(n)))
    }
    if blocks and blocks != set(range(len(blocks))):
        raise ValueError(
            f"blocks are not numbered 0..{len(blocks) - 1}: {sorted(blocks)}"
        )
    return len(blocks)


def layernorm_parameters(
    source: str | os.PathLike | None = None,
) -> LayerNormParameters:
    """All LayerNorm gains and biases, rows in module order ``h.0.ln_1, h.0.ln_2, ..., ln_f``.

    For GPT-2 small: ``gains`` and ``biases`` of shape (25, 768). The number of blocks is
    read from the source; every LayerNorm of those blocks must be there. By default (no
    ``source``, no ``NUMSCALE_GPT2``) the parameters built into the package
    (:data:`~numscale.models.gpt2_names.EMBEDDED_SOURCE`), checked against their sha256.
    """
    resolved = _resolve(source, default=EMBEDDED_SOURCE)
    index = _index(resolved)
    available = list(index)
    try:
        n_layer = count_layers([n for n in available if ".ln_" in n])
    except ValueError as exc:
        raise resolved.error(str(exc)) from None
    if n_layer == 0:
        raise _missing(resolved, ["h.0.ln_1.weight"], available)
    modules = layernorm_module_names(n_layer)
    wanted = [f"{m}.{p}" for m in modules for p in ("weight", "bias")]
    absent = [n for n in wanted if n not in index]
    if absent:
        raise _missing(resolved, absent, available)
    tensors = _read(resolved, index, wanted)
    gains = np.stack([tensors[f"{m}.weight"] for m in modules])
    biases = np.stack([tensors[f"{m}.bias"] for m in modules])
    return LayerNormParameters(modules, gains, biases, resolved.description)
