"""Read GPT-2's tensors from wherever they are, one tensor at a time.

The source is named by the ``source`` argument or, when that is ``None``, by the
environment variable ``NUMSCALE_GPT2`` (default ``"gpt2"``, the Hugging Face id).
Accepted sources:

* a Hugging Face hub id (``"gpt2"``, ``"openai-community/gpt2"``): the local Hugging Face
  cache is tried first; otherwise, unless ``HF_HUB_OFFLINE`` is set, the hub endpoint
  (``HF_ENDPOINT`` or https://huggingface.co) is probed for at most
  :data:`PROBE_TIMEOUT` seconds and ``model.safetensors`` is downloaded;
* a directory written by ``save_pretrained`` (``model.safetensors``, or sharded
  ``model-0000x-of-0000y.safetensors`` files with their index, and ``config.json``);
* one ``.safetensors`` file, or one ``.npz`` of arrays keyed by state-dict name;
* a directory of such ``.safetensors`` / ``.npz`` files holding one state dict between
  them (the project's ``../shared/reference`` folder is one).

A relative path that does not exist from the current directory is also tried from ``$PWD``
(the directory the build was launched from: the book executes pages inside ``book/``).

Tensor names are normalised to the bare ``GPT2Model`` form: ``transformer.h.0.ln_1.weight``
and ``h.0.ln_1.weight`` both name ``h.0.ln_1.weight`` (``lm_head.weight`` keeps its name).
Only the tensors asked for are read: a safetensors file's header is parsed and each
requested tensor's byte range is read on its own (:mod:`numscale.safetensors_io`), ``.npz`` members are decompressed on access. Pickle files
(``pytorch_model.bin``, ``.pt``) are never unpickled: a source that holds only those is
refused with :class:`GPT2Unavailable`.

Errors: :class:`GPT2Unavailable` (a ``RuntimeError``) when the source is missing,
unreachable or holds no readable weights; ``ValueError`` naming the file when a file is
corrupt; :class:`MissingTensorError` (a ``KeyError``) listing the available names when a
tensor is not in the source; ``TypeError`` for arguments of the wrong type.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import os
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numscale import safetensors_io

#: Environment variable naming the source of the weights.
ENV_VAR = "NUMSCALE_GPT2"
#: Source used when neither ``source`` nor ``NUMSCALE_GPT2`` is given.
DEFAULT_SOURCE = "gpt2"
#: Seconds allowed for the reachability probe of the hub endpoint.
PROBE_TIMEOUT = 1.5
#: GPT-2 small's depth and width.
N_LAYER = 12
N_EMBD = 768

HOW_TO_PROVIDE = (
    "To provide GPT-2's weights, set the environment variable NUMSCALE_GPT2 to a directory "
    "written by save_pretrained, to a .safetensors or .npz file keyed by state-dict name, or "
    "to a folder of such files, or build with access to the Hugging Face hub once so that "
    "the model 'gpt2' is in the local Hugging Face cache."
)
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?$")


class GPT2Unavailable(RuntimeError):
    """The GPT-2 weights cannot be had: missing path, no network, pickle-only files."""


class MissingTensorError(KeyError):
    """A requested tensor is not in the source; the message lists what is."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class LayerNormParameters:
    """The gains and biases of a stack of LayerNorms, one row per module.

    ``names``: module names in order (``h.0.ln_1``, ``h.0.ln_2``, ..., ``ln_f``);
    ``gains`` and ``biases``: float32 arrays of shape ``(len(names), n_embd)``;
    ``source``: a description of where they came from.
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
    return name[len("transformer."):] if name.startswith("transformer.") else name


def layernorm_module_names(n_layer: int = N_LAYER) -> tuple[str, ...]:
    """``("h.0.ln_1", "h.0.ln_2", ..., "h.{n_layer-1}.ln_2", "ln_f")``: 2·n_layer + 1 names."""
    if isinstance(n_layer, bool) or not isinstance(n_layer, int):
        raise TypeError(f"n_layer must be an int, got {type(n_layer).__name__}")
    if n_layer < 1:
        raise ValueError(f"n_layer must be >= 1, got {n_layer}")
    return tuple(f"h.{i}.{ln}" for i in range(n_layer) for ln in ("ln_1", "ln_2")) + ("ln_f",)


# ----------------------------------------------------------------- resolution


def _source_string(source: Any) -> str:
    if source is None:
        source = os.environ.get("NUMSCALE_GPT2") or DEFAULT_SOURCE
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise TypeError(f"source must be a str or a path, got {type(source).__name__}")
    if not source.strip():
        raise ValueError("source must not be an empty string")
    return source


def _looks_like_path(source: str) -> bool:
    """A path (rather than a hub id): starts with / . ~, has a weight-file suffix, or
    cannot be a hub id (``name`` or ``owner/name``)."""
    return (
        source.startswith(("/", ".", "~"))
        or source.endswith((".npz", ".safetensors") + _PICKLE_SUFFIXES)
        or (os.sep != "/" and os.sep in source)
        or not _HUB_ID.match(source)
    )


@dataclass(frozen=True)
class _Resolved:
    """Files holding one state dict, and what to call them."""

    files: tuple[Path, ...]
    description: str
    config: Path | None  # config.json, when the source has one


def _weight_files_in(directory: Path) -> tuple[list[Path], Path | None]:
    """The weight files of a directory, and its config.json if any."""
    config = directory / "config.json"
    config = config if config.is_file() else None
    index = directory / "model.safetensors.index.json"
    if index.is_file():  # a sharded save_pretrained checkpoint
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"corrupt safetensors index {index}: {exc}") from exc
        return [directory / f for f in sorted(set(weight_map.values()))], config
    if (directory / "model.safetensors").is_file():
        return [directory / "model.safetensors"], config
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in {".safetensors", ".npz"})
    return files, config


def _resolve_path(path: Path) -> _Resolved:
    if not path.exists():
        raise GPT2Unavailable(f"GPT-2 source {str(path)!r} does not exist. {HOW_TO_PROVIDE}")
    if path.is_file():
        if path.suffix in _PICKLE_SUFFIXES:
            raise GPT2Unavailable(
                f"{path} is a pickle file; it is not loaded because unpickling can run arbitrary "
                f"code. Convert it to safetensors (model.save_pretrained(dir)). {HOW_TO_PROVIDE}"
            )
        if path.suffix not in {".safetensors", ".npz"}:
            raise GPT2Unavailable(f"{path} is neither a .safetensors nor an .npz file. {HOW_TO_PROVIDE}")
        return _Resolved((path,), f"file {path}", None)
    files, config = _weight_files_in(path)
    if not files:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in _PICKLE_SUFFIXES)
        if pickles:
            raise GPT2Unavailable(
                f"directory {path} holds only pickle weights ({', '.join(pickles)}), which are not "
                f"loaded because unpickling can run arbitrary code. Save the model with "
                f"save_pretrained (safetensors, the default). {HOW_TO_PROVIDE}"
            )
        raise GPT2Unavailable(f"directory {path} holds no .safetensors or .npz files. {HOW_TO_PROVIDE}")
    names = ", ".join(f.name for f in files)
    kind = "save_pretrained directory" if config is not None else "directory"
    return _Resolved(tuple(files), f"{kind} {path} ({len(files)} file{'s' * (len(files) > 1)}: {names})", config)


def _offline() -> bool:
    return (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower() in {"1", "true", "yes", "on"}


def _endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def endpoint_reachable(url: str | None = None, timeout: float = PROBE_TIMEOUT) -> bool:
    """Whether an HTTP ``HEAD url`` gets a usable answer within ``timeout`` seconds.

    Usable: a success or redirect status, or 401/403 (the hub answered but wants a token).
    A 404 or a server error counts as unreachable: some networks answer every request
    with an error page. The request runs in a daemon thread that is abandoned after
    ``timeout``, so a stuck DNS lookup or a silent server cannot hold the caller longer.
    """
    url = url or _endpoint()
    result: list[bool] = []

    def probe() -> None:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout) as response:
                result.append(response.status < 400)
        except urllib.error.HTTPError as exc:
            result.append(exc.code in (401, 403))
        except Exception:  # noqa: BLE001 - any other failure means unreachable
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


_HUB_CACHE: dict[tuple, _Resolved | str] = {}


def clear_cache() -> None:
    """Forget hub look-ups made in this process (successes and failures)."""
    _HUB_CACHE.clear()


def _hub_cache_dir() -> str | None:
    """The hub cache named by the environment now (the hub client reads it at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ.get("HF_HUB_CACHE")
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ.get("HF_HOME", ""), "hub")
    return None


def _hub_file(repo_id: str, filename: str, *, local_only: bool) -> Path:
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, local_files_only=local_only,
                                endpoint=_endpoint(), cache_dir=_hub_cache_dir()))


def _resolve_hub(repo_id: str) -> _Resolved:
    key = (repo_id, _offline(), _endpoint(), os.environ.get("HF_HOME"), os.environ.get("HF_HUB_CACHE"))
    cached = _HUB_CACHE.get(key)
    if isinstance(cached, _Resolved):
        return cached
    if isinstance(cached, str):
        raise GPT2Unavailable(cached)
    try:
        resolved = _resolve_hub_uncached(repo_id)
    except GPT2Unavailable as exc:
        _HUB_CACHE[key] = str(exc)
        raise
    _HUB_CACHE[key] = resolved
    return resolved


def _resolve_hub_uncached(repo_id: str) -> _Resolved:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as exc:  # pragma: no cover - installed with the book
        raise GPT2Unavailable(f"huggingface_hub is not installed, so hub id {repo_id!r} cannot be read. {HOW_TO_PROVIDE}") from exc
    how = "local Hugging Face cache"
    try:
        weights = _hub_file(repo_id, "model.safetensors", local_only=True)
    except Exception:  # noqa: BLE001 - not cached (LocalEntryNotFoundError, validation errors)
        if _offline():
            raise GPT2Unavailable(
                f"hub id {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. {HOW_TO_PROVIDE}"
            ) from None
        probe_url = f"{_endpoint()}/{repo_id}/resolve/main/config.json"
        if not endpoint_reachable(probe_url):
            raise GPT2Unavailable(
                f"hub id {repo_id!r} is not in the local Hugging Face cache and {_endpoint()} is not "
                f"reachable (a HEAD request to {probe_url} got no usable answer within {PROBE_TIMEOUT} s). {HOW_TO_PROVIDE}"
            ) from None
        how = f"downloaded from {_endpoint()}"
        try:
            weights = _hub_file(repo_id, "model.safetensors", local_only=False)
        except Exception as exc:  # noqa: BLE001 - network, auth, missing repo or file
            raise GPT2Unavailable(
                f"could not download model.safetensors of hub id {repo_id!r}: {type(exc).__name__}: {exc}. {HOW_TO_PROVIDE}"
            ) from exc
    try:
        config: Path | None = _hub_file(repo_id, "config.json", local_only=True)
    except Exception:  # noqa: BLE001
        config = None
        if how != "local Hugging Face cache":
            try:
                config = _hub_file(repo_id, "config.json", local_only=False)
            except Exception:  # noqa: BLE001 - the tensors are still usable
                config = None
    return _Resolved((weights,), f"Hugging Face model {repo_id!r} ({how}: {weights})", config)


_SHELL_CWD_VAR = "PWD"  # the launching shell's directory; a kernel may run elsewhere


def _local_path(text: str) -> Path:
    """``text`` as a path. A relative path that does not exist from the current directory is
    tried from the launching shell's directory ($PWD): the book executes pages inside
    ``book/``, while ``NUMSCALE_GPT2=../shared/reference`` is written relative to the
    directory the build was started from."""
    path = Path(text).expanduser()
    if not path.is_absolute() and not path.exists():
        shell_cwd = os.environ.get(_SHELL_CWD_VAR)
        if shell_cwd and (Path(shell_cwd) / path).exists():
            return Path(shell_cwd) / path
    return path


def _resolve(source: Any) -> _Resolved:
    text = _source_string(source)
    path = _local_path(text)
    if path.exists() or _looks_like_path(text):
        return _resolve_path(path)
    return _resolve_hub(text)


# ----------------------------------------------------------------- file access


class _Reader:
    """Context manager over one weight file: ``keys()`` and ``get(key)``."""

    def __init__(self, path: Path):
        self.path = path
        self._handle: Any = None
        self._ctx: Any = None

    def __enter__(self) -> _Reader:
        try:
            if self.path.suffix == ".safetensors":
                self._ctx = safetensors_io.read_header(self.path)
            else:
                self._handle = np.load(self.path, allow_pickle=False)
        except ValueError:
            raise  # already names the file
        except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, ...
            raise ValueError(f"cannot read weight file {self.path}: it is corrupt or not a "
                             f"{self.path.suffix} file ({type(exc).__name__}: {exc})") from exc
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.close()

    def keys(self) -> list[str]:
        return list(self._ctx[0]) if self._ctx is not None else list(self._handle.files)

    def get(self, key: str) -> np.ndarray:
        try:
            if self._ctx is not None:
                array = safetensors_io.read_tensors(self.path, [key], parsed=self._ctx)[key]
            else:
                array = self._handle[key]
        except ValueError as exc:
            if str(self.path) in str(exc):
                raise  # safetensors_io's message already names the file
            raise ValueError(f"cannot read tensor {key!r} from weight file {self.path}: {exc}") from exc
        except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, ...
            raise ValueError(f"cannot read tensor {key!r} from weight file {self.path}: it is "
                             f"corrupt ({type(exc).__name__}: {exc})") from exc
        array = np.asarray(array)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
            raise ValueError(f"tensor {key!r} in {self.path} has non-numeric dtype {array.dtype}")
        return np.array(array, dtype=np.float32, copy=True)


def _index(resolved: _Resolved) -> dict[str, tuple[Path, str]]:
    """canonical name -> (file, key in that file), over all files of the source."""
    index: dict[str, tuple[Path, str]] = {}
    for path in resolved.files:
        with _Reader(path) as reader:
            for key in reader.keys():
                name = canonical_name(key)
                if name in index:
                    other = index[name]
                    raise ValueError(
                        f"tensor {name!r} appears twice in the source: as {other[1]!r} in {other[0]} "
                        f"and as {key!r} in {path}"
                    )
                index[name] = (path, key)
    return index


def _missing(names: Sequence[str], available: Sequence[str], description: str) -> MissingTensorError:
    hints = []
    for name in names:
        close = difflib.get_close_matches(name, available, n=3)
        hints.append(f"{name!r}" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else ""))
    shown = ", ".join(sorted(available))
    return MissingTensorError(
        f"tensor(s) {', '.join(hints)} not in {description}. It holds {len(available)} tensors: {shown}"
    )


# ----------------------------------------------------------------------- API


def list_tensors(source: str | os.PathLike | None = None) -> list[str]:
    """Sorted canonical names (``h.0.ln_1.weight`` form) of every tensor in the source."""
    return sorted(_index(_resolve(source)))


def describe_source(source: str | os.PathLike | None = None) -> str:
    """One line saying where the tensors come from and how many there are.

    Raises :class:`GPT2Unavailable` like every loader function when there are none.
    """
    resolved = _resolve(source)
    return f"{resolved.description}; {len(_index(resolved))} tensors"


def source_available(source: str | os.PathLike | None = None) -> bool:
    """True when the source resolves to readable weight files (never raises GPT2Unavailable)."""
    try:
        _resolve(source)
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
    (Conv1D weights are ``(in, out)``). Only the requested tensors are read.
    """
    if names is not None:
        if isinstance(names, (str, bytes)):
            raise TypeError("names must be a sequence of tensor names, not a single string (wrap it in a list)")
        if not isinstance(names, Sequence):
            raise TypeError(f"names must be a sequence of str, got {type(names).__name__}")
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
            raise _missing(absent, list(index), resolved.description)
    elif pattern is not None:
        wanted = sorted(n for n in index if fnmatch.fnmatchcase(n, canonical_name(pattern)))
        if not wanted:
            raise _missing([pattern], list(index), resolved.description)
    else:
        wanted = sorted(index)
    by_file: dict[Path, list[str]] = {}
    for name in wanted:
        by_file.setdefault(index[name][0], []).append(name)
    result: dict[str, np.ndarray] = {}
    for path, file_names in by_file.items():
        with _Reader(path) as reader:
            for name in file_names:
                result[name] = reader.get(index[name][1])
    return {name: result[name] for name in wanted}


def load_tensor(name: str, source: str | os.PathLike | None = None) -> np.ndarray:
    """One tensor as a float32 array (see :func:`load_tensors`)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    return load_tensors([name], source=source)[canonical_name(name)]


def count_layers(names: Sequence[str]) -> int:
    """Number of blocks ``h.{i}`` named in ``names`` (0 when none); blocks must be 0..n-1."""
    blocks = {int(m.group(1)) for n in names if (m := re.match(r"^h\.(\d+)\.", canonical_name(n)))}
    if blocks and blocks != set(range(len(blocks))):
        raise ValueError(f"blocks are not numbered 0..{len(blocks) - 1}: {sorted(blocks)}")
    return len(blocks)


def layernorm_parameters(source: str | os.PathLike | None = None) -> LayerNormParameters:
    """All LayerNorm gains and biases, rows in module order ``h.0.ln_1, h.0.ln_2, ..., ln_f``.

    For GPT-2 small: ``gains`` and ``biases`` of shape (25, 768). The number of blocks is
    read from the source.
    """
    resolved = _resolve(source)
    available = list(_index(resolved))
    n_layer = count_layers([n for n in available if ".ln_" in n])
    if n_layer == 0:
        raise _missing(["h.0.ln_1.weight"], available, resolved.description)
    modules = layernorm_module_names(n_layer)
    tensors = load_tensors([f"{m}.{p}" for m in modules for p in ("weight", "bias")], source=source)
    gains = np.stack([tensors[f"{m}.weight"] for m in modules])
    biases = np.stack([tensors[f"{m}.bias"] for m in modules])
    return LayerNormParameters(modules, gains, biases, resolved.description)


def init_layernorm_parameters(n_layer: int = N_LAYER, n_embd: int = N_EMBD) -> LayerNormParameters:
    """The LayerNorms as GPT-2 initializes them: every gain 1, every bias 0."""
    modules = layernorm_module_names(n_layer)
    if isinstance(n_embd, bool) or not isinstance(n_embd, int):
        raise TypeError(f"n_embd must be an int, got {type(n_embd).__name__}")
    if n_embd < 1:
        raise ValueError(f"n_embd must be >= 1, got {n_embd}")
    shape = (len(modules), n_embd)
    return LayerNormParameters(modules, np.ones(shape, np.float32), np.zeros(shape, np.float32), "initialization")


def load_model(source: str | os.PathLike | None = None, config: Any = None):
    """A ``transformers.GPT2LMHeadModel`` in eval mode, when the source holds the whole model.

    The source must have a ``config.json`` (a hub id or a ``save_pretrained`` directory)
    unless a ``GPT2Config`` is passed as ``config``. Every parameter must be present
    (``lm_head.weight`` may be omitted: it is tied to ``wte.weight``); otherwise
    :class:`GPT2Unavailable` lists what is missing, so callers can fall back.
    The model is built on the meta device (no random initialization, no global RNG use)
    and its parameters are then assigned from the source, in float32.
    """
    try:
        import torch
        from transformers import GPT2Config, GPT2LMHeadModel
    except ImportError as exc:  # pragma: no cover - installed with the book
        raise GPT2Unavailable(f"load_model needs torch and transformers: {exc}") from exc
    resolved = _resolve(source)
    if config is None:
        if resolved.config is None:
            index = _index(resolved)
            core = ["wte.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight"]
            absent = [n for n in core if n not in index]
            if absent:
                raise GPT2Unavailable(
                    f"{resolved.description} holds only part of GPT-2 (it lacks {', '.join(absent)}, "
                    f"among others), so the model cannot run. {HOW_TO_PROVIDE}"
                )
            raise GPT2Unavailable(
                f"{resolved.description} has no config.json, so the model's shape (heads, layers) "
                f"is unknown; pass config=GPT2Config(...) or use a save_pretrained directory. {HOW_TO_PROVIDE}"
            )
        try:
            config = GPT2Config.from_json_file(str(resolved.config))
        except (OSError, ValueError) as exc:
            raise ValueError(f"corrupt config file {resolved.config}: {exc}") from exc
    elif not isinstance(config, GPT2Config):
        raise TypeError(f"config must be a transformers.GPT2Config, got {type(config).__name__}")
    with torch.device("meta"):
        model = GPT2LMHeadModel(config)
    expected = [canonical_name(n) for n in model.state_dict()]
    index = _index(resolved)
    needed = [n for n in expected if n != "lm_head.weight" or n in index]
    missing = [n for n in needed if n not in index]
    if missing:
        raise GPT2Unavailable(
            f"{resolved.description} holds only part of GPT-2: {len(missing)} of {len(expected)} "
            f"parameters are missing ({', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}), "
            f"so the model cannot run. {HOW_TO_PROVIDE}"
        )
    tensors = load_tensors(needed, source=source)
    state = {}
    for full in model.state_dict():
        name = canonical_name(full)
        array = tensors.get(name, tensors["wte.weight"] if name == "lm_head.weight" else None)
        state[full] = torch.from_numpy(array)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:  # shape mismatch between config and tensors
        raise ValueError(f"tensors of {resolved.description} do not fit its config: {exc}") from exc
    if getattr(config, "tie_word_embeddings", True):
        model.lm_head.weight = model.transformer.wte.weight
    return model.eval()


def gpt2_shape(name: str, n_layer: int = N_LAYER, n_embd: int = N_EMBD,
               n_positions: int = 1024, vocab_size: int = 50257) -> tuple[int, ...]:
    """Shape of a GPT-2 state-dict tensor (Conv1D weights are ``(in, out)``).

    ``ValueError`` for a name GPT-2 does not have (or a block index >= ``n_layer``).
    """
    name = canonical_name(name)
    d = n_embd
    fixed = {"wte.weight": (vocab_size, d), "wpe.weight": (n_positions, d), "lm_head.weight": (vocab_size, d),
             "ln_f.weight": (d,), "ln_f.bias": (d,)}
    if name in fixed:
        return fixed[name]
    match = re.fullmatch(r"h\.(\d+)\.(.+)", name)
    per_block = {
        "ln_1.weight": (d,), "ln_1.bias": (d,), "ln_2.weight": (d,), "ln_2.bias": (d,),
        "attn.c_attn.weight": (d, 3 * d), "attn.c_attn.bias": (3 * d,),
        "attn.c_proj.weight": (d, d), "attn.c_proj.bias": (d,),
        "mlp.c_fc.weight": (d, 4 * d), "mlp.c_fc.bias": (4 * d,),
        "mlp.c_proj.weight": (4 * d, d), "mlp.c_proj.bias": (d,),
    }
    if match is None or match.group(2) not in per_block or int(match.group(1)) >= n_layer:
        raise ValueError(f"{name!r} is not a tensor of GPT-2 with {n_layer} blocks")
    return per_block[match.group(2)]


def init_tensors(names: Sequence[str], seed: Any, n_layer: int = N_LAYER, n_embd: int = N_EMBD,
                 n_positions: int = 1024, vocab_size: int = 50257,
                 initializer_range: float = 0.02) -> dict[str, np.ndarray]:
    """Draw the named tensors as GPT-2 initializes them (the Hugging Face scheme), float32.

    Weights and embeddings ~ N(0, initializer_range²); the residual output projections
    ``attn.c_proj.weight`` and ``mlp.c_proj.weight`` ~ N(0, (initializer_range/√(2·n_layer))²);
    biases 0; LayerNorm gains 1. Draws come from ``np.random.default_rng(seed)`` in the order
    of ``names``. Keys are canonical names.
    """
    from numscale.checks import rng_from

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
            std = initializer_range / np.sqrt(2 * n_layer) if name.endswith("c_proj.weight") else initializer_range
            result[name] = rng.standard_normal(shape, dtype=np.float32) * np.float32(std)
    return result
