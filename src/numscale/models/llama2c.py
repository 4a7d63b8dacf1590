"""llama2.c's file formats (checkpoint, tokenizer, stories) and stories260K's source.

Three plain files, read with NumPy (nothing is unpickled):

* the checkpoint (llama2.c's legacy ``.bin``): 7 little-endian int32 (dim, hidden_dim,
  n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the
  classifier is stored separately at the end), then float32 arrays
  (:data:`numscale.models.llama_weights.WEIGHT_ORDER`);
* the tokenizer (llama2.c's ``tokenizer.bin``): int32 max_token_length, then per token a
  float32 merge score, an int32 byte length and the token's bytes (the tokenizer itself
  is :class:`numscale.models.llama_tokenizer.Tokenizer`);
* the text: stories separated by ``<|endoftext|>``.

The source is named by ``source`` or the environment variable :data:`ENV_VAR`: a folder
holding :data:`FILES`, or the Hugging Face hub id ``karpathy/tinyllamas``
(``stories260K/stories260K.bin`` and ``stories260K/tok512.bin``, with
``TinyStories-valid.txt`` of the dataset ``roneneldan/TinyStories``). By default
(:data:`DEFAULT_SOURCE`, ``"embedded"``) the files built into the package
(``numscale/models/data``), each checked against its sha256 in
:mod:`numscale.models.registry` when it is loaded. The rule of
:mod:`numscale.models.sources` applies: a source that cannot be used (a folder without
the files, an unreachable hub id, an altered embedded file) raises
:class:`~numscale.models.sources.SourceError`, one line naming it and why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from numscale.models import registry, sources
from numscale.models.llama_tokenizer import Tokenizer
from numscale.models.llama_weights import HEADER_INTS, LlamaConfig, LlamaWeights

#: Environment variable naming the source.
ENV_VAR = "NUMSCALE_TINYSTORIES"
#: The default source: the files built into the package (registry.EMBEDDED).
DEFAULT_SOURCE = "embedded"
#: The hub, chosen explicitly (NUMSCALE_TINYSTORIES=karpathy/tinyllamas).
HUB_MODEL_FILES = registry.STORIES260K_HUB_FILES
HUB_STORIES = registry.TINYSTORIES_HUB
#: File names in a local folder.
FILES = registry.STORIES260K_FILES
#: Stories kept from the validation text (the embedded file holds the first 500).
N_STORIES = 500
#: sha256 of Karpathy's published files (data/PROVENANCE.md).
RELEASED_SHA256 = registry.STORIES260K_SHA256
HOW_TO_PROVIDE = (
    "To provide it, set NUMSCALE_TINYSTORIES to a folder holding stories260K.bin, tok512.bin "
    "and tinystories_val.txt, or unset it to use the files built into numscale."
)
STORY_SEPARATOR = "<|endoftext|>"


# ------------------------------------------------------------------ the checkpoint


def _bad(path: Path, what: str) -> ValueError:
    return ValueError(f"{path.name}: {what}")


def read_checkpoint(path: str | os.PathLike) -> LlamaWeights:
    """Read a llama2.c legacy checkpoint (plain int32 header and float32 arrays).

    ``ValueError`` naming the file for a file shorter than the header, a header that is
    not a model shape (non-positive or implausible sizes, heads that do not divide), a
    size different from what the header implies (truncated or trailing bytes), and NaN
    or inf values.
    """
    path = Path(path)
    size = path.stat().st_size
    if size < 4 * HEADER_INTS:
        raise _bad(
            path,
            f"truncated: {size} bytes, shorter than the "
            f"{4 * HEADER_INTS}-byte header of a llama2.c checkpoint",
        )
    with open(path, "rb") as handle:
        header = np.fromfile(handle, dtype="<i4", count=HEADER_INTS)
        dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = (int(v) for v in header)
        try:
            config = LlamaConfig(
                dim,
                hidden,
                n_layers,
                n_heads,
                n_kv,
                abs(vocab),
                seq_len,
                shared_classifier=vocab > 0,
            )
        except (TypeError, ValueError) as exc:
            raise _bad(
                path,
                f"bad header {header.tolist()} (dim, hidden_dim, "
                f"n_layers, n_heads, n_kv_heads, vocab_size, seq_len): "
                f"{exc}; it is not a llama2.c checkpoint",
            ) from None
        expected = config.file_size()
        if size != expected:
            kind = "truncated" if size < expected else "wrong size"
            raise _bad(
                path,
                f"{kind}: {size:,} bytes, but its header "
                f"{header.tolist()} implies {expected:,} bytes",
            )
        arrays = {}
        for name, shape in config.shapes().items():
            count = int(np.prod(shape))
            flat = np.fromfile(handle, dtype="<f4", count=count)
            if flat.size != count:  # pragma: no cover - the size check rules it out
                raise _bad(path, f"truncated inside {name}")
            if not np.all(np.isfinite(flat)):
                raise _bad(path, f"{name} holds NaN or inf")
            arrays[name] = flat.astype(np.float32).reshape(shape)
    return LlamaWeights(config=config, **arrays)


def write_checkpoint(weights: LlamaWeights, path: str | os.PathLike) -> None:
    """Write ``weights`` in llama2.c's legacy format (the inverse of :func:`read_checkpoint`)."""
    if not isinstance(weights, LlamaWeights):
        raise TypeError(f"weights must be LlamaWeights, got {type(weights).__name__}")
    c = weights.config
    vocab = c.vocab_size if c.shared_classifier else -c.vocab_size
    header = np.array(
        [c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, vocab, c.seq_len],
        dtype="<i4",
    )
    with open(path, "wb") as handle:
        handle.write(header.tobytes())
        for array in weights.arrays().values():
            handle.write(np.ascontiguousarray(array, dtype="<f4").tobytes())


# ------------------------------------------------------------------ the tokenizer


def read_tokenizer(path: str | os.PathLike, vocab_size: int | None = None) -> Tokenizer:
    """Read a llama2.c ``tokenizer.bin``.

    The format does not store the number of tokens (run.c takes it from the model): with
    ``vocab_size=None`` the file is read to its end, otherwise it must hold exactly
    ``vocab_size`` tokens. ``ValueError`` naming the file for a bad header (a
    max_token_length that is not positive), a truncated record, a piece longer than
    max_token_length, a non-finite score, or bytes left over.
    """
    path = Path(path)
    data = np.fromfile(path, dtype=np.uint8)
    size = data.size
    if size < 4:
        raise _bad(
            path,
            f"truncated: {size} bytes, shorter than the 4-byte header of a "
            f"llama2.c tokenizer",
        )
    max_len = int(np.frombuffer(data, dtype="<i4", count=1)[0])
    if not 1 <= max_len <= 1 << 16:
        raise _bad(
            path, f"bad header: max_token_length {max_len}; not a llama2.c tokenizer"
        )
    pieces: list[bytes] = []
    scores: list[float] = []
    offset = 4
    while offset < size and (vocab_size is None or len(pieces) < vocab_size):
        if offset + 8 > size:
            raise _bad(path, f"truncated inside the record of token {len(pieces)}")
        score = float(np.frombuffer(data, dtype="<f4", count=1, offset=offset)[0])
        length = int(np.frombuffer(data, dtype="<i4", count=1, offset=offset + 4)[0])
        if not np.isfinite(score):
            raise _bad(path, f"token {len(pieces)} has a non-finite score")
        if not 0 <= length <= max_len:
            raise _bad(
                path,
                f"token {len(pieces)} has length {length}, outside "
                f"0..{max_len} (max_token_length)",
            )
        if offset + 8 + length > size:
            raise _bad(path, f"truncated inside the record of token {len(pieces)}")
        pieces.append(data[offset + 8 : offset + 8 + length].tobytes())
        scores.append(score)
        offset += 8 + length
    if vocab_size is not None and len(pieces) < vocab_size:
        raise _bad(path, f"truncated: {len(pieces)} tokens, expected {vocab_size}")
    if offset != size:
        raise _bad(
            path, f"wrong size: {size - offset} bytes left after {len(pieces)} tokens"
        )
    try:
        return Tokenizer(tuple(pieces), tuple(scores), max_len)
    except (TypeError, ValueError) as exc:
        raise _bad(path, str(exc)) from None


def write_tokenizer(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """Write ``tokenizer`` in llama2.c's format (the inverse of :func:`read_tokenizer`)."""
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(
            f"tokenizer must be a Tokenizer, got {type(tokenizer).__name__}"
        )
    with open(path, "wb") as handle:
        handle.write(np.array([tokenizer.max_token_length], "<i4").tobytes())
        for piece, score in zip(tokenizer.pieces, tokenizer.scores):
            handle.write(np.array([score], "<f4").tobytes())
            handle.write(np.array([len(piece)], "<i4").tobytes())
            handle.write(piece)


# ------------------------------------------------------------------ the text


def read_stories(path: str | os.PathLike, limit: int | None = None) -> list[str]:
    """Stories of a TinyStories text file: split on ``<|endoftext|>``, stripped, non-empty.

    ``limit``: keep at most this many (the first ones). ``ValueError`` naming the file if
    it is not UTF-8 text or holds no story.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(path, f"not UTF-8 text ({exc})") from None
    stories = [s.strip() for s in text.split(STORY_SEPARATOR)]
    stories = [s for s in stories if s]
    if not stories:
        raise _bad(path, "holds no story")
    return stories[:limit] if limit is not None else stories


# ------------------------------------------------------------------ the source


@dataclass(frozen=True, eq=False)
class TinyStories:
    """The model, its tokenizer and TinyStories validation stories, with a description of the source
    (no machine paths). ``released``: the checkpoint and tokenizer are byte for byte
    Karpathy's published files (sha256 against :data:`RELEASED_SHA256`)."""

    weights: LlamaWeights
    tokenizer: Tokenizer
    stories: tuple[str, ...]
    description: str
    released: bool = False


_LOADED: dict[tuple, TinyStories] = {}


def clear_cache() -> None:
    """Forget sources loaded in this process."""
    _LOADED.clear()


def _read_all(
    choice: sources.Choice, paths: dict[str, Path], where: str
) -> TinyStories:
    try:
        weights = read_checkpoint(paths["checkpoint"])
        tokenizer = read_tokenizer(paths["tokenizer"], weights.config.vocab_size)
        stories = read_stories(paths["stories"], limit=N_STORIES)
    except (ValueError, OSError) as exc:
        raise choice.error(str(exc), HOW_TO_PROVIDE) from None
    released = all(
        registry.sha256_file(paths[k]) == RELEASED_SHA256[k] for k in RELEASED_SHA256
    )
    model = (
        "Karpathy's stories260K and its 512-token tokenizer"
        if released
        else f"a {weights.config.n_parameters():,}-parameter model in llama2.c's format "
        f"(not Karpathy's published stories260K file) and its tokenizer"
    )
    stories_text = sources.plural(
        len(stories), "TinyStories validation story", "TinyStories validation stories"
    )
    description = f"{model}, with the first {stories_text}, from {where}"
    return TinyStories(weights, tokenizer, tuple(stories), description, released)


def _load_folder(choice: sources.Choice, path: Path) -> TinyStories:
    if not path.exists():
        raise choice.error("the path does not exist")
    if not path.is_dir():
        raise choice.error(
            f"it is a file; give the folder holding {', '.join(FILES.values())}"
        )
    absent = [name for name in FILES.values() if not (path / name).is_file()]
    if absent:
        pickles = sorted(
            p.name for p in path.iterdir() if p.suffix in (".pt", ".pth", ".ckpt")
        )
        extra = (
            f" (it holds {', '.join(pickles)}: pickle files are never loaded)"
            if pickles
            else ""
        )
        raise choice.error(f"the folder has no {', '.join(absent)}{extra}")
    paths = {key: path / name for key, name in FILES.items()}
    return _read_all(choice, paths, sources.describe_local(choice, path))


def _load_embedded(choice: sources.Choice) -> TinyStories:
    """The files built into the package, each checked against its recorded sha256 (a
    mismatch or a missing file raises :class:`~numscale.models.sources.SourceError`)."""
    try:
        paths = {key: registry.embedded_file(name) for key, name in FILES.items()}
    except ValueError as exc:
        raise sources.SourceError(str(exc)) from None
    return _read_all(choice, paths, "the data built into numscale (sha256 checked)")


def _load_hub(choice: sources.Choice) -> TinyStories:
    model = sources.fetch_hub_files(
        choice, choice.text, list(HUB_MODEL_FILES.values()), advice=HOW_TO_PROVIDE
    )
    story_repo, story_file = HUB_STORIES
    text = sources.fetch_hub_files(
        choice, story_repo, [story_file], repo_type="dataset", advice=HOW_TO_PROVIDE
    )
    paths = {key: model.paths[name] for key, name in HUB_MODEL_FILES.items()}
    paths["stories"] = text.paths[story_file]
    how = "downloaded" if "downloaded" in (model.how, text.how) else "local cache"
    where = f"the Hugging Face hub ({choice.text} and {story_repo}, {how})"
    return _read_all(choice, paths, where)


def load(source: str | os.PathLike | None = None) -> TinyStories:
    """The model, tokenizer and first :data:`N_STORIES` validation stories of a source.

    ``source``: a folder holding :data:`FILES`, a hub id of the model repository, or
    ``"embedded"``; ``None`` uses ``$NUMSCALE_TINYSTORIES`` if set, else the files built
    into the package (:data:`DEFAULT_SOURCE`, checked against its sha256). A source that
    cannot be used (a path without the files, a hub id neither cached nor reachable
    within :data:`~numscale.models.sources.PROBE_TIMEOUT` seconds, an altered embedded
    file) raises :class:`~numscale.models.sources.SourceError`: one line naming the
    variable, the source and the reason. Results are cached in the process by source.
    """
    choice = sources.choose(source, ENV_VAR, DEFAULT_SOURCE)
    path = sources.local_path(choice.text)
    is_path = path.exists() or sources.looks_like_path(choice.text, (".bin", ".txt"))
    key = (
        str(path.resolve()) if is_path else choice.text,
        choice.explicit,
        choice.origin,
        *sources.environment_key(),
    )
    if key in _LOADED:
        return _LOADED[key]
    if choice.text == DEFAULT_SOURCE:
        result = _load_embedded(choice)
    else:
        result = _load_folder(choice, path) if is_path else _load_hub(choice)
    _LOADED[key] = result
    return result


def source_available(source: str | os.PathLike | None = None) -> bool:
    """Whether :func:`load` succeeds; ``False`` only for an unavailable default source
    (an explicit source that cannot be used still raises ``SourceError``)."""
    try:
        load(source)
    except sources.SourceUnavailable:
        return False
    return True
