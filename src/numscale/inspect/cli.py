"""``python -m numscale.inspect MODEL``: inspect a model and write its reports.

MODEL is a local folder (a ``transformers`` model folder with ``config.json`` and
safetensors weights, or a llama2.c folder with ``stories260K.bin`` and ``tok512.bin``,
converted on the fly to a ``LlamaForCausalLM``) or a Hugging Face hub id (the only case
in which anything is downloaded). Pickle checkpoints are never loaded.

Input: ``--text FILE`` (documents separated by ``<|endoftext|>``, tokenized with the
model's tokenizer), ``--token-ids FILE`` (one sequence of integer ids per line, or a
JSON list of lists), or ``--random-tokens N --seed S`` (uniform ids, seeded; the
default, with N = ``--max-tokens``). Bad input ends with one line on stderr and exit
status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from numscale.inspect.recording import UnsupportedModel, check_config

LLAMA2C_FILES = ("stories260K.bin", "tok512.bin")
DOCUMENT_SEPARATOR = "<|endoftext|>"


class InputError(ValueError):
    """Bad command-line input (one line)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m numscale.inspect",
        description="Measure attention logits, residual stream, output logits, "
        "16-bit losses and int8 weight errors of a causal language model.",
    )
    parser.add_argument(
        "model", metavar="MODEL", help="a local model folder or a Hugging Face hub id"
    )
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--text",
        metavar="FILE",
        type=Path,
        help="text file; documents separated by <|endoftext|>",
    )
    source.add_argument(
        "--token-ids",
        metavar="FILE",
        type=Path,
        help="token ids: one sequence per line, or a JSON list of lists",
    )
    source.add_argument(
        "--random-tokens",
        metavar="N",
        type=int,
        help="one sequence of N uniformly random token ids",
    )
    parser.add_argument(
        "--seed",
        metavar="S",
        type=int,
        default=0,
        help="seed of --random-tokens (default 0)",
    )
    parser.add_argument(
        "--max-tokens",
        metavar="N",
        type=int,
        default=None,
        help="cut each sequence to N tokens (default: the model's "
        "context, at most 1024)",
    )
    parser.add_argument(
        "--max-sequences",
        metavar="K",
        type=int,
        default=16,
        help="use at most K sequences (default 16)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=Path("inspect-report"),
        help="folder for report.json and report.html",
    )
    parser.add_argument(
        "--no-quantization", action="store_true", help="skip the int8 weight errors"
    )
    return parser.parse_args(argv)


def _looks_like_path(text: str) -> bool:
    return (
        text.startswith((".", "/", "~"))
        or text.endswith(("/", os.sep))
        or text.count("/") > 1
        or os.sep in text
        and os.sep != "/"
    )


def resolve_model(text: str) -> tuple[str, Path | None]:
    """("llama2c" | "folder" | "hub", path): what MODEL names, or raise
    :class:`InputError` for a folder that does not exist or holds no model."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise InputError(f"MODEL {text!r} is a file; give the model's folder")
        if (path / "config.json").is_file():
            precheck_folder(path, text)
            return "folder", path
        if all((path / name).is_file() for name in LLAMA2C_FILES):
            return "llama2c", path
        raise InputError(
            f"MODEL folder {text!r} holds no config.json (a transformers "
            f"model) and no {' and '.join(LLAMA2C_FILES)} (llama2.c)"
        )
    if _looks_like_path(text):
        raise InputError(f"MODEL folder {text!r} does not exist")
    return "hub", None


#: Files of which at least one is present in a folder holding a tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "spiece.model",
)


def precheck_folder(path: Path, text: str) -> None:
    """Refuse an unsupported model from its ``config.json`` alone (in a fraction of a
    second: before ``transformers`` is imported)."""
    try:
        data = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"MODEL {text!r}: config.json is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"MODEL {text!r}: config.json is not a JSON object")
    check_config(
        SimpleNamespace(
            model_type=data.get("model_type"),
            is_encoder_decoder=data.get("is_encoder_decoder"),
        )
    )


def has_tokenizer(path: Path | None) -> bool:
    """Whether a local folder holds tokenizer files (a hub id: assume so)."""
    return path is None or any((path / name).is_file() for name in TOKENIZER_FILES)


def read_token_ids(path: Path) -> list[list[int]]:
    """Sequences of ids from a file: a JSON list (of lists) or one sequence a line."""
    text = _read(path, "--token-ids")
    try:
        if text.lstrip().startswith("["):
            data = json.loads(text)
            data = [data] if data and all(isinstance(i, int) for i in data) else data
            seqs = [[int(i) for i in row] for row in data]
        else:
            seqs = [
                [int(i) for i in line.split()]
                for line in text.splitlines()
                if line.strip()
            ]
    except (ValueError, TypeError) as exc:
        raise InputError(
            f"--token-ids file {str(path)!r} is not integer ids: {exc}"
        ) from None
    if not seqs:
        raise InputError(f"--token-ids file {str(path)!r} holds no ids")
    return seqs


def _read(path: Path, option: str) -> str:
    if not path.is_file():
        raise InputError(f"{option} file {str(path)!r} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{option} file {str(path)!r} is not UTF-8 text") from None
    if not text.strip():
        raise InputError(f"{option} file {str(path)!r} is empty")
    return text


def documents(path: Path) -> list[str]:
    """The non-empty documents of a text file (split on ``<|endoftext|>``)."""
    docs = [d.strip() for d in _read(path, "--text").split(DOCUMENT_SEPARATOR)]
    docs = [d for d in docs if d]
    if not docs:
        raise InputError(f"--text file {str(path)!r} holds no text")
    return docs


def _progress(start: float):
    def note(message: str) -> None:
        print(
            f"[{time.perf_counter() - start:6.1f} s] {message}",
            file=sys.stderr,
            flush=True,
        )

    return note


def _hf_tokenize(model_name: str, docs: list[str]) -> list[list[int]]:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name)
    except (OSError, ValueError, TypeError, KeyError):
        tokenizer = None
    if tokenizer is None or not callable(tokenizer):
        raise InputError(
            f"MODEL {model_name!r} has no tokenizer: give --token-ids or "
            f"--random-tokens instead of --text"
        )
    out = []
    for doc in docs:
        ids = list(tokenizer(doc)["input_ids"])
        bos = tokenizer.bos_token_id
        if bos is not None and (not ids or ids[0] != bos):
            ids = [bos, *ids]
        out.append(ids)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    note = _progress(time.perf_counter())
    try:
        kind, path = resolve_model(args.model)
        for name in ("max_tokens", "max_sequences", "random_tokens"):
            value = getattr(args, name)
            if value is not None and value < (2 if name != "max_sequences" else 1):
                raise InputError(
                    f"--{name.replace('_', '-')} must be at least "
                    f"{2 if name != 'max_sequences' else 1}, got {value}"
                )
        docs = documents(args.text) if args.text else None
        if docs is not None and kind == "folder" and not has_tokenizer(path):
            raise InputError(
                f"MODEL {args.model!r} has no tokenizer: give --token-ids "
                f"or --random-tokens instead of --text"
            )
        ids = read_token_ids(args.token_ids) if args.token_ids else None
        note(f"reading {args.model}")
        model, tokenize = load(kind, path, args.model)
        config = model.config
        context = int(getattr(config, "max_position_embeddings", 1024) or 1024)
        limit = args.max_tokens or min(context, 1024)
        if docs is not None:
            ids = tokenize(docs)
        elif ids is None:
            rng = np.random.default_rng(args.seed)
            n = args.random_tokens or limit
            ids = [rng.integers(0, int(config.vocab_size), size=n).tolist()]
        seqs = [s[:limit] for s in ids if len(s) >= 2][: args.max_sequences]
        if not seqs:
            raise InputError("no sequence of at least 2 tokens in the input")
        from numscale.inspect.inspection import inspect_model
        from numscale.inspect.report import write_reports

        report = inspect_model(
            model, seqs, quantize=not args.no_quantization, progress=note
        )
        report["input"]["source"] = (
            f"text {args.text.name}"
            if args.text
            else f"token ids {args.token_ids.name}"
            if args.token_ids
            else f"random token ids, seed {args.seed}"
        )
        out = write_reports(report, args.out, title=f"Inspection of {args.model}")
    except (InputError, UnsupportedModel, ValueError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"numscale.inspect: error: {message}", file=sys.stderr)
        return 2
    note(f"wrote {out / 'report.json'} and {out / 'report.html'}")
    return 0


def load(kind: str, path: Path | None, name: str):
    """The float32 model and a tokenize(docs) -> ids function for MODEL."""
    import torch

    if kind == "llama2c":
        from numscale.models import hf_llama, llama2c

        weights = llama2c.read_checkpoint(path / LLAMA2C_FILES[0])
        tokenizer = llama2c.read_tokenizer(
            path / LLAMA2C_FILES[1], weights.config.vocab_size
        )
        return (
            hf_llama.to_transformers(weights),
            lambda docs: [tokenizer.encode(d, bos=True) for d in docs],
        )
    from transformers import AutoConfig, AutoModelForCausalLM

    source = str(path) if path is not None else name
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as exc:
        raise InputError(
            f"cannot read the config of MODEL {name!r}: {str(exc).splitlines()[0]}"
        ) from None
    check_config(config)  # refuse before loading any weight
    try:
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch.float32, use_safetensors=True
        )
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot load MODEL {name!r} from safetensors weights "
            f"(pickle files are never loaded): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    return model, lambda docs: _hf_tokenize(source, docs)
