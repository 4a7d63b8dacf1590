"""Run the inspection: one recorded float32 pass, the loss in 16-bit formats, int8
weight errors; assemble the report (a dict of NumPy arrays and numbers)."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from numscale import stats
from numscale.inspect import measurements, recording

#: Report format version (bump when a name or a definition changes).
REPORT_VERSION = 1
#: The formats whose loss is compared with float32 by default.
FORMATS = ("bfloat16", "float16")
#: Sun et al.'s factor between a massive activation and its hidden state's median.
MASSIVE_RATIO = 1000.0
GROUP_SIZE = 128


def check_sequences(
    sequences: object, vocab_size: int, max_positions: int | None
) -> list[torch.Tensor]:
    """``sequences`` (one or more sequences of token ids) as 1-d LongTensors, each of 2
    to ``max_positions`` ids in ``0..vocab_size−1``; ``ValueError`` naming
    ``sequences`` otherwise."""
    if isinstance(sequences, torch.Tensor | np.ndarray):
        sequences = [sequences] if sequences.ndim == 1 else list(sequences)
    if (
        isinstance(sequences, str)
        or not isinstance(sequences, Sequence)
        or len(sequences) == 0
    ):
        raise ValueError("sequences must be a non-empty list of token-id sequences")
    if all(isinstance(i, int | np.integer) for i in sequences):
        sequences = [sequences]
    out = []
    for k, seq in enumerate(sequences):
        ids = torch.as_tensor(np.asarray(seq))
        if ids.dtype.is_floating_point or ids.dtype == torch.bool or ids.ndim != 1:
            raise ValueError(f"sequences[{k}] must be a 1-d sequence of integer ids")
        if ids.numel() < 2:
            raise ValueError(
                f"sequences[{k}] has {ids.numel()} token(s): at least 2 "
                f"are needed (one to predict)"
            )
        if max_positions is not None and ids.numel() > max_positions:
            raise ValueError(
                f"sequences[{k}] has {ids.numel()} tokens, more than the "
                f"model's {max_positions} positions"
            )
        if int(ids.min()) < 0 or int(ids.max()) >= vocab_size:
            raise ValueError(f"sequences[{k}] holds ids outside 0..{vocab_size - 1}")
        out.append(ids.long())
    return out


def weight_matrices(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """Every 2-d weight of ``model`` as (out, in) float32 views, by parameter name; a
    tied weight once; GPT-2's ``Conv1D`` (in, out) weights transposed."""
    conv = {name for name, m in model.named_modules() if type(m).__name__ == "Conv1D"}
    seen: set[int] = set()
    out = {}
    for name, p in model.named_parameters():
        if p.ndim != 2 or p.data_ptr() in seen:
            continue
        seen.add(p.data_ptr())
        w = p.detach().float().numpy()
        out[name] = w.T if name.rpartition(".")[0] in conv else w
    return out


def low_precision_copy(model: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """A copy of ``model`` with parameters and buffers in ``dtype``, as
    ``from_pretrained(..., dtype=dtype)`` gives, except the rotary frequencies, which
    stay float32 as ``transformers`` computes them."""
    # the copy is made directly in the new format: deepcopy takes each tensor from the
    # memo, so the float32 weights are never duplicated
    memo: dict[int, object] = {}
    conv_weights = {
        id(m.weight) for m in model.modules() if type(m).__name__ == "Conv1D"
    }
    for p in model.parameters():
        low = p.detach().to(dtype)
        if id(p) in conv_weights:
            # GPT-2's Conv1D computes addmm(bias, x, weight) with weight (in, out); torch's
            # CPU float16 addmm is about 40x slower on that row-major operand than on a
            # column-major one (the layout nn.Linear's weight.T has). Same values, same op.
            low = low.t().contiguous().t()
        memo[id(p)] = torch.nn.Parameter(low, requires_grad=False)
    for name, buffer in model.named_buffers():
        keep = "inv_freq" in name or not buffer.is_floating_point()
        memo[id(buffer)] = (
            buffer.detach().clone() if keep else buffer.detach().to(dtype)
        )
    low = copy.deepcopy(model, memo)
    return low


def _forward_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=ids[None], use_cache=False).logits[0]


def _note(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def inspect_model(
    model: torch.nn.Module,
    sequences: object,
    *,
    formats: Sequence[str] = FORMATS,
    quantize: bool = True,
    progress: Callable[[str], None] | None = None,
    keep_logits: bool = False,
) -> dict[str, object]:
    """Measure a float32 ``transformers`` causal language model on token ids.

    ``sequences``: one sequence of token ids (T,) or several (each run alone, batch of
    one, no padding). ``formats``: 16-bit formats whose loss is compared with float32
    (``"bfloat16"``, ``"float16"``); ``quantize``: measure int8 weight errors;
    ``progress``: called with a line of text as the work proceeds; ``keep_logits``:
    keep every attention call's logits under ``"_attention_calls"`` (for tests).

    Returns the report: ``model``, ``input``, ``thresholds``, ``attention`` (arrays
    (layers, heads)), ``residual`` (arrays (layers+1,)), ``output_logits``, ``loss``
    and ``quantization``; see ``numscale.inspect``.
    """
    started = time.perf_counter()
    model_type = recording.check_model(model)
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise ValueError(
            f"model must hold float32 parameters, got "
            f"{sorted(map(str, dtypes))}: load it with dtype=torch.float32"
        )
    for name in formats:
        if name not in FORMATS:
            raise ValueError(f"formats must be among {FORMATS}, got {name!r}")
    config = model.config
    n_layers, n_heads, n_kv = recording.head_counts(config)
    seqs = check_sequences(
        sequences,
        int(config.vocab_size),
        getattr(config, "max_position_embeddings", None),
    )
    lengths = [int(s.numel()) for s in seqs]
    model.eval()
    attention = measurements.AttentionStats(n_layers, n_heads, keep_logits=keep_logits)
    residual = measurements.ResidualStats(n_layers + 1)
    output = measurements.OutputStats()
    recorder = recording.Recorder(attention.add)
    nll = {"float32": np.zeros(len(seqs))}
    _note(
        progress, f"float32 pass over {len(seqs)} sequence(s), {sum(lengths):,} tokens"
    )
    with (
        recording.recording(model, recorder),
        recording.residual_hooks(model, residual.add),
        torch.inference_mode(),
    ):
        for k, ids in enumerate(seqs):
            residual.start()
            logits = _forward_logits(model, ids)
            if recorder.calls != n_layers * (k + 1):
                raise recording.UnsupportedModel(
                    f"{type(model).__name__} ran {recorder.calls} attention calls for "
                    f"{k + 1} sequence(s) of {n_layers} layers: its attention does not "
                    f"go through transformers' AttentionInterface"
                )
            output.add(logits)
            nll["float32"][k] = measurements.sequence_nll(logits, ids)
            _note(progress, f"  sequence {k + 1}/{len(seqs)} ({lengths[k]} tokens)")
    counts = np.array(lengths) - 1
    for name in formats:
        _note(progress, f"{name} pass")
        low = low_precision_copy(model, getattr(torch, name))
        nll[name] = np.zeros(len(seqs))
        with torch.inference_mode():
            for k, ids in enumerate(seqs):
                nll[name][k] = measurements.sequence_nll(_forward_logits(low, ids), ids)
        del low
    loss = _losses(nll, counts)
    quantization = None
    if quantize:
        _note(progress, "int8 weight quantization")
        quantization = _quantization(weight_matrices(model))
    report = {
        "report_version": REPORT_VERSION,
        "model": {
            "model_type": model_type,
            "class": type(model).__name__,
            "n_layers": n_layers,
            "n_heads": n_heads,
            "n_kv_heads": n_kv,
            "d_model": int(config.hidden_size),
            "head_dim": int(
                getattr(config, "head_dim", None) or config.hidden_size // n_heads
            ),
            "vocab_size": int(config.vocab_size),
            "n_parameters": int(
                sum(
                    p.numel()
                    for p in {p.data_ptr(): p for p in model.parameters()}.values()
                )
            ),
        },
        "input": {
            "n_sequences": len(seqs),
            "lengths": lengths,
            "n_tokens": int(sum(lengths)),
            "n_predicted": int(counts.sum()),
        },
        "thresholds": {
            "fp16_exp_limit": recording.FP16_EXP_LIMIT,
            "fp16_max": float(torch.finfo(torch.float16).max),
            "bf16_exp_limit": math.log(float(torch.finfo(torch.bfloat16).max)),
            "massive_activation_ratio": MASSIVE_RATIO,
        },
        "attention": attention.summary(),
        "residual": residual.summary(),
        "output_logits": output.summary(lengths),
        "loss": loss,
        "quantization": quantization,
        "seconds": time.perf_counter() - started,
    }
    if keep_logits:
        report["_attention_calls"] = attention.logits
    _note(progress, f"done in {report['seconds']:.1f} s")
    return report


def _losses(nll: dict[str, np.ndarray], counts: np.ndarray) -> dict[str, object]:
    """Mean loss and standard error per format, and each format's paired difference
    from float32 with its standard error (sequences as the independent draws)."""
    out: dict[str, object] = {"tokens_per_sequence": counts}
    for name, sums in nll.items():
        mean, se = stats.ratio_mean_se(sums, counts, allow_nonfinite=True)
        entry: dict[str, object] = {
            "mean": mean,
            "se": se,
            "per_sequence": sums,
            "nonfinite_sequences": int((~np.isfinite(sums)).sum()),
        }
        if name != "float32":
            entry["minus_float32"], entry["minus_float32_se"] = stats.ratio_mean_se(
                sums - nll["float32"], counts, allow_nonfinite=True
            )
        out[name] = entry
    return out


def _quantization(matrices: dict[str, np.ndarray]) -> dict[str, object]:
    errors = measurements.quantization_errors(matrices, GROUP_SIZE)
    return {
        "matrices": list(matrices),
        "shapes": [list(w.shape) for w in matrices.values()],
        "int8_relative_error": errors,
        "int8_relative_error_mean": {k: float(v.mean()) for k, v in errors.items()},
    }
