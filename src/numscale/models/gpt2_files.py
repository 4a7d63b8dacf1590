"""Where GPT-2's tensors come from and how they are read: a source resolved to files
(a hub id, a ``save_pretrained`` folder, ``.safetensors``/``.npz`` files, the embedded
LayerNorms), an index of tensor names, and checked reads. The rules are described in
:mod:`numscale.models.gpt2`, whose functions are the public way in."""

from __future__ import annotations

import difflib
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from numscale.models import registry, safetensors_io, sources
from numscale.models.gpt2_names import (
    _PICKLE_SUFFIXES,
    _WEIGHT_SUFFIXES,
    DEFAULT_SOURCE,
    EMBEDDED_SOURCE,
    ENV_VAR,
    HOW_TO_PROVIDE,
    N_EMBD,
    GPT2Unavailable,
    MissingTensorError,
    canonical_name,
    gpt2_shape,
)
from numscale.models.sources import (
    SourceError,
    SourceUnavailable,
)

# ----------------------------------------------------------------- resolution


@dataclass(frozen=True)
class _Resolved:
    """Files holding one state dict, what to call them, and the dimensions to check."""

    files: tuple[Path, ...]
    description: str
    config: Path | None  # config.json, when the source has one
    choice: sources.Choice
    dims: tuple[
        int, int, int
    ]  # n_embd, n_positions, vocab_size the shapes are checked with

    def error(self, reason: str, cls: type | None = None) -> Exception:
        """``SourceError`` (or ``cls``) for an explicit source, else ``GPT2Unavailable``."""
        exc = self.choice.error(reason, HOW_TO_PROVIDE)
        if isinstance(exc, SourceUnavailable):
            return _as_gpt2(exc)
        return cls(str(exc)) if cls is not None else exc


def _as_gpt2(exc: Exception) -> Exception:
    """A ``SourceUnavailable`` as ``GPT2Unavailable`` (same message, reason, advice)."""
    if not isinstance(exc, SourceUnavailable) or isinstance(exc, GPT2Unavailable):
        return exc
    converted = GPT2Unavailable(str(exc))
    converted.reason, converted.advice = exc.reason, exc.advice
    return converted


def _fail(choice: sources.Choice, reason: str) -> Exception:
    return _as_gpt2(choice.error(reason, HOW_TO_PROVIDE))


def _dims_from(config: Path | None, choice: sources.Choice) -> tuple[int, int, int]:
    small = (N_EMBD, 1024, 50257)
    if config is None:
        return small
    try:
        values = json.loads(config.read_text(encoding="utf-8"))
        return (
            int(values.get("n_embd", small[0])),
            int(values.get("n_positions", small[1])),
            int(values.get("vocab_size", small[2])),
        )
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise _fail(choice, f"{config.name} is not a readable config ({exc})") from None


def _weight_files_in(
    directory: Path, choice: sources.Choice
) -> tuple[list[Path], Path | None]:
    config = directory / "config.json"
    config = config if config.is_file() else None
    index = directory / "model.safetensors.index.json"
    if index.is_file():  # a sharded save_pretrained checkpoint
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError) as exc:
            raise _fail(
                choice, f"corrupt safetensors index {index.name} ({exc})"
            ) from None
        return [directory / f for f in sorted(set(weight_map.values()))], config
    if (directory / "model.safetensors").is_file():
        return [directory / "model.safetensors"], config
    files = sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES
    )
    return files, config


def _looks_pickled(path: Path) -> bool:
    """Whether a file starts as a pickle (protocol 2+: byte 0x80) or as torch.save's zip
    archive ("PK"): what a .bin of PyTorch weights is, unlike llama2.c's plain .bin."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return head[:1] == b"\x80" or head == b"PK"


def _resolve_path(choice: sources.Choice, path: Path) -> _Resolved:
    if not path.exists():
        raise _fail(choice, "the path does not exist")
    if path.is_file():
        if path.suffix in _PICKLE_SUFFIXES:
            raise _fail(
                choice,
                f"{path.name} is a pickle file, which is never loaded "
                f"(unpickling can run arbitrary code); convert it to "
                f"safetensors with save_pretrained",
            )
        if path.suffix not in _WEIGHT_SUFFIXES:
            raise _fail(
                choice, f"{path.name} is neither a .safetensors nor an .npz file"
            )
        return _Resolved(
            (path,),
            sources.describe_local(choice, path),
            None,
            choice,
            _dims_from(None, choice),
        )
    files, config = _weight_files_in(path, choice)
    if not files:
        pickles = sorted(
            p.name
            for p in path.iterdir()
            if p.suffix in _PICKLE_SUFFIXES and _looks_pickled(p)
        )
        held = sorted(p.name for p in path.iterdir() if p.is_file())
        if held and not pickles:
            shown = ", ".join(held[:6]) + (", …" if len(held) > 6 else "")
            raise _fail(
                choice,
                f"the folder holds no GPT-2 weights ({shown}); "
                f"NUMSCALE_GPT2 expects a save_pretrained directory, a "
                f".safetensors or .npz file keyed by state-dict name, or a "
                f"folder of such files",
            )
        if pickles:
            raise _fail(
                choice,
                f"the folder holds only pickle weights ({', '.join(pickles)}), "
                f"which are never loaded (unpickling can run arbitrary "
                f"code); save the model with save_pretrained (safetensors)",
            )
        raise _fail(choice, "the folder holds no .safetensors or .npz files")
    description = sources.describe_local(choice, path, [f.name for f in files])
    if config is not None:
        description = description.replace("the folder", "the save_pretrained folder", 1)
    return _Resolved(
        tuple(files), description, config, choice, _dims_from(config, choice)
    )


_HUB: dict[tuple, _Resolved | Exception] = {}


def clear_cache() -> None:
    """Forget hub look-ups, probes and file indexes made in this process."""
    _HUB.clear()
    _INDEX.clear()
    sources.clear_cache()


def _resolve_hub(choice: sources.Choice) -> _Resolved:
    key = (choice, *sources.environment_key())
    cached = _HUB.get(key)
    if isinstance(cached, _Resolved):
        return cached
    if isinstance(cached, Exception):
        raise _as_gpt2(cached)
    repo_id = choice.text
    try:
        fetched = sources.fetch_hub_files(
            choice, repo_id, ["model.safetensors"], advice=HOW_TO_PROVIDE
        )
    except SourceUnavailable as exc:
        _HUB[key] = exc
        raise _as_gpt2(exc) from None
    weights = fetched.paths["model.safetensors"]
    try:
        config: Path | None = sources.hub_file(
            repo_id, "config.json", local_only=fetched.how != "downloaded"
        )
    except Exception:  # noqa: BLE001 - the tensors are still usable without it
        config = None
    how = "local Hugging Face cache" if fetched.how != "downloaded" else "downloaded"
    resolved = _Resolved(
        (weights,),
        f"Hugging Face model {repo_id!r} ({how})",
        config,
        choice,
        _dims_from(config, choice),
    )
    _HUB[key] = resolved
    return resolved


def _resolve_embedded(choice: sources.Choice) -> _Resolved:
    """GPT-2 small's LayerNorm parameters built into the package, sha256 checked."""
    try:
        path = registry.embedded_file(registry.GPT2_EMBEDDED)
    except ValueError as exc:
        raise SourceError(str(exc)) from None
    return _Resolved(
        (path,),
        "GPT-2 small's LayerNorm parameters built into numscale (sha256 checked)",
        None,
        choice,
        _dims_from(None, choice),
    )


def _resolve(source: Any, default: str = DEFAULT_SOURCE) -> _Resolved:
    choice = sources.choose(source, ENV_VAR, default)
    if choice.text == EMBEDDED_SOURCE:
        return _resolve_embedded(choice)
    path = sources.local_path(choice.text)
    if path.exists() or sources.looks_like_path(
        choice.text, _WEIGHT_SUFFIXES + _PICKLE_SUFFIXES
    ):
        return _resolve_path(choice, path)
    return _resolve_hub(choice)


# ----------------------------------------------------------------- file access


def _expected_shape(name: str, dims: tuple[int, int, int]) -> tuple[int, ...] | None:
    """The shape GPT-2 has for ``name`` with these dimensions; None for other names."""
    n_embd, n_positions, vocab = dims
    try:
        return gpt2_shape(
            name,
            n_layer=1 << 30,
            n_embd=n_embd,
            n_positions=n_positions,
            vocab_size=vocab,
        )
    except ValueError:
        return None


class _Reader:
    """Context manager over one weight file: ``keys()`` and checked ``get(key)``.

    Errors are plain ``ValueError`` naming the file (base name); the caller turns them
    into the source's error.
    """

    def __init__(self, path: Path):
        self.path = path
        self._handle: Any = None
        self._ctx: Any = None

    def __enter__(self) -> _Reader:
        name = self.path.name
        if self.path.suffix == ".safetensors":
            self._ctx = safetensors_io.read_header(
                self.path
            )  # ValueError names the file
            return self
        if not zipfile.is_zipfile(self.path):
            raise ValueError(f"{name} is not a readable .npz file (not a zip archive)")
        try:
            self._handle = np.load(self.path, allow_pickle=False)
        except Exception as exc:  # noqa: BLE001 - BadZipFile, OSError, pickle refusal
            raise ValueError(
                f"{name} is not a readable .npz file ({type(exc).__name__})"
            ) from None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.close()

    def keys(self) -> list[str]:
        return list(self._ctx[0]) if self._ctx is not None else list(self._handle.files)

    def get(
        self, key: str, expected: tuple[int, ...] | None, small: bool = True
    ) -> np.ndarray:
        """The tensor ``key``, checked against ``expected`` (GPT-2 small's shape when
        ``small``: the source has no config.json), as float32."""
        where = f"tensor {key!r} in {self.path.name}"
        small = " small" if small else ""
        try:
            if self._ctx is not None:
                array = safetensors_io.read_tensors(self.path, [key], parsed=self._ctx)[
                    key
                ]
            else:
                array = self._handle[key]
        except ValueError as exc:
            if "allow_pickle" in str(exc) or "pickled" in str(exc):
                raise ValueError(
                    f"{where} holds Python objects, which are never unpickled"
                ) from None
            if self.path.name in str(exc):
                raise
            raise ValueError(f"{where} cannot be read ({exc})") from None
        except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, ...
            raise ValueError(
                f"{where} cannot be read: the file is corrupt ({type(exc).__name__})"
            ) from None
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.floating):
            raise ValueError(
                f"{where} has dtype {array.dtype}; GPT-2's tensors are floats"
            )
        if expected is not None and array.shape != expected:
            raise ValueError(
                f"{where} has shape {array.shape}, but GPT-2{small} has {expected}"
            )
        if not np.all(np.isfinite(array)):
            count = int(array.size - np.count_nonzero(np.isfinite(array)))
            raise ValueError(
                f"{where} holds {sources.plural(count, 'NaN or inf value')}"
            )
        return np.array(array, dtype=np.float32, copy=True)


_INDEX: dict[tuple, dict[str, tuple[Path, str]]] = {}


def _index(resolved: _Resolved) -> dict[str, tuple[Path, str]]:
    """canonical name -> (file, key in that file), over all files of the source."""
    stamp = tuple(
        (str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in resolved.files
    )
    if stamp in _INDEX:
        return _INDEX[stamp]
    index: dict[str, tuple[Path, str]] = {}
    for path in resolved.files:
        try:
            with _Reader(path) as reader:
                keys = reader.keys()
        except ValueError as exc:
            raise resolved.error(str(exc)) from None
        for key in keys:
            name = canonical_name(key)
            if name in index:
                other = index[name]
                raise resolved.error(
                    f"tensor {name!r} appears twice: as {other[1]!r} in "
                    f"{other[0].name} and as {key!r} in {path.name}"
                )
            index[name] = (path, key)
    _INDEX[stamp] = index
    return index


def _missing(
    resolved: _Resolved, names: Sequence[str], available: Sequence[str]
) -> Exception:
    """One line: which tensors are absent, one "did you mean", a few of those present."""
    hint = ""
    for name in names:
        close = difflib.get_close_matches(name, available, n=1)
        if close:
            hint = f" (did you mean {close[0]!r} for {name!r}?)"
            break
    shown = sorted(available)
    listing = ", ".join(shown[:8]) + (
        f", … ({len(shown) - 8} more)" if len(shown) > 8 else ""
    )
    absent = ", ".join(map(repr, names[:6])) + (", …" if len(names) > 6 else "")
    what = sources.plural(len(names), "requested tensor")
    reason = (
        f"{what} missing: {absent}{hint}; {resolved.description} holds "
        f"{sources.plural(len(shown), 'tensor')}: {listing}"
    )
    return resolved.error(reason, MissingTensorError)


def _read(
    resolved: _Resolved,
    index: dict[str, tuple[Path, str]],
    wanted: Sequence[str],
    dims: tuple[int, int, int] | None = None,
) -> dict[str, np.ndarray]:
    """The ``wanted`` tensors, each checked against GPT-2's shape for ``dims`` (default:
    the source's config.json, else GPT-2 small)."""
    small = dims is None and resolved.config is None
    dims = dims or resolved.dims
    by_file: dict[Path, list[str]] = {}
    for name in wanted:
        by_file.setdefault(index[name][0], []).append(name)
    result: dict[str, np.ndarray] = {}
    for path, file_names in by_file.items():
        try:
            with _Reader(path) as reader:
                for name in file_names:
                    result[name] = reader.get(
                        index[name][1], _expected_shape(name, dims), small=small
                    )
        except ValueError as exc:
            raise resolved.error(str(exc)) from None
    return {name: result[name] for name in wanted}
