"""Runs of a Llama-architecture model over a set of stories, and what they keep.

* :func:`collect`: one pass, batch by batch, keeping each layer's attention reduced to
  :class:`numscale.attention_rows.RowStats`, the residual stream and the logits
  (:class:`Collected`);
* :func:`scale_sweep`: the summed loss of every story with every head's attention scale
  multiplied by each ``c`` (:class:`AttentionScaleSweep`), and :func:`sweep_optimum`,
  the loss-minimizing ``c`` with a bootstrap over stories;
* seeded random token batches for tests of the model code (:func:`random_token_batch`)
  and the trainable arrays of a model (:func:`weight_arrays`).

Shapes (the ``ForwardRecord`` conventions): ``tokens`` and ``mask`` (B, T), the output
of :func:`numscale.models.llama.encode_stories`; ``residual`` (L+1, B, T, d_model),
index 0 the token embedding and index ``l`` the stream after block ``l``; ``logits`` (B,
T, vocab).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import stats
from numscale.attention_rows import RowStats, concat_rows, row_statistics
from numscale.checks import as_float_array, finite_float, positive_int, rng_from
from numscale.models import next_token
from numscale.models.llama_weights import LlamaConfig
from numscale.models.next_token import (
    batches,
    check_mask,
    check_tokens,
    real_tokens,
    trim,
)

# --------------------------------------------------------------------------- one pass


@dataclass(frozen=True)
class Collected:
    """What one pass over a set of stories keeps (NumPy, float32 except ``rows``).

    ``rows``: :class:`RowStats` of every layer's attention; ``residual`` (L+1, B, T, d);
    ``logits`` (B, T, vocab); ``tokens`` (B, T) int64; ``real`` (B, T) bool, True at the
    real tokens (BOS included); ``target`` (B, T) bool, the target mask. Batches shorter
    than T are padded back to T with zeros (``real`` is False there).
    """

    rows: RowStats | None
    residual: np.ndarray
    logits: np.ndarray
    tokens: np.ndarray
    real: np.ndarray
    target: np.ndarray


def _pad_last(array: np.ndarray, axis: int, length: int) -> np.ndarray:
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, length - array.shape[axis])
    return np.pad(array, pad)


def _pad_rows(rows: RowStats, length: int) -> RowStats:
    def pad(a: np.ndarray) -> np.ndarray:
        return np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, length - a.shape[-1])])

    return RowStats(
        pad(rows.mean_logit),
        pad(rows.var_logit),
        pad(rows.max_logit),
        pad(rows.min_logit),
        pad(rows.entropy),
        pad(rows.first_weight),
        pad(rows.n_subnormal16),
        pad(rows.n_zero16),
        pad(rows.real),
    )


def collect(
    model: Callable,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    batch_size: int = 16,
    attn_scale_multiplier: float = 1.0,
    attention: bool = True,
) -> Collected:
    """Run ``model(tokens, record=True)`` batch by batch and keep what the chapters use.

    The (L, B, H, T, T) attention tensors are reduced to :class:`RowStats` per batch, so
    memory stays at one batch's attention; ``attention=False`` skips them (``rows`` is
    then ``None``). ``model`` is a :class:`numscale.models.llama.LlamaModel` (or
    anything with its call signature returning a ``ForwardRecord``).
    """
    mask = check_mask(mask)
    tokens = check_tokens(tokens, mask)
    T = mask.shape[1]
    rows, residual, logits = [], [], []
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = trim(tokens[part], mask[part])
            record = model(
                tok,
                attn_scale_multiplier=attn_scale_multiplier,
                record=True,
                record_attention=attention,
            )
            if attention:
                rows.append(
                    _pad_rows(
                        row_statistics(
                            record.attn_logits.float(), record.attn_weights.float(), msk
                        ),
                        T,
                    )
                )
            residual.append(_pad_last(record.residual.float().numpy(), 2, T))
            logits.append(_pad_last(record.logits.float().numpy(), 1, T))
    return Collected(
        concat_rows(rows) if attention else None,
        np.concatenate(residual, axis=1),
        np.concatenate(logits, axis=0),
        tokens.numpy().copy(),
        real_tokens(mask).numpy(),
        mask.numpy().copy(),
    )


# -------------------------------------------------------------------------- scale sweep


@dataclass(frozen=True)
class AttentionScaleSweep:
    """Loss against the attention-scale multiplier ``c`` on one fixed set of stories.

    ``multipliers`` (C,); ``nll_sums`` (C, B) summed NLL of each story at each ``c``;
    ``counts`` (B,) predicted tokens per story.
    """

    multipliers: np.ndarray
    nll_sums: np.ndarray
    counts: np.ndarray

    def mean_se(self) -> tuple[np.ndarray, np.ndarray]:
        """(C,) mean loss and (C,) its standard error across stories."""
        pairs = [stats.ratio_mean_se(s, self.counts) for s in self.nll_sums]
        return np.array([m for m, _ in pairs]), np.array([se for _, se in pairs])

    def paired_to(self, reference: float) -> tuple[np.ndarray, np.ndarray]:
        """(C,) loss minus the loss at multiplier ``reference`` (one of the grid) on the
        same stories, and (C,) the paired standard error (0 at the reference itself)."""
        index = (
            int(np.flatnonzero(np.isclose(self.multipliers, reference))[0])
            if np.any(np.isclose(self.multipliers, reference))
            else None
        )
        if index is None:
            raise ValueError(f"reference {reference} is not one of the multipliers")
        pairs = [
            stats.paired_difference(s, self.nll_sums[index], self.counts)
            for s in self.nll_sums
        ]
        return np.array([m for m, _ in pairs]), np.array([se for _, se in pairs])


def log_spaced_multipliers(low: float, high: float, count: int) -> np.ndarray:
    """``count`` multipliers from ``low`` to ``high``, evenly spaced in ``log c``."""
    low = finite_float(low, "low", positive=True)
    high = finite_float(high, "high", positive=True)
    count = positive_int(count, "count", minimum=2)
    if high <= low:
        raise ValueError(f"high must be > low, got {low} and {high}")
    return np.exp(np.linspace(np.log(low), np.log(high), count))


def sweep_losses(
    model: Callable,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    multipliers: np.ndarray,
    batch_size: int,
) -> AttentionScaleSweep:
    """The loop of :func:`scale_sweep`: every batch of stories at every multiplier c."""
    sums = np.zeros((multipliers.size, mask.shape[0]))  # (C, B) summed NLL
    counts = np.zeros(mask.shape[0], dtype=np.int64)  # (B,) predicted tokens
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = trim(tokens[part], mask[part])  # drop all-padding columns
            for i, c in enumerate(multipliers):  # scale s = c / √d_k
                sums[i, part], counts[part] = next_token.story_losses(
                    model, tok, msk, attn_scale_multiplier=float(c)
                )
    return AttentionScaleSweep(multipliers, sums, counts)


def scale_sweep(
    model: Callable,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    multipliers: Sequence[float],
    *,
    batch_size: int = 64,
) -> AttentionScaleSweep:
    """Summed NLL of every story with every head's scale multiplied by each ``c``.

    The same stories at every ``c``, so differences between multipliers can be paired
    (:meth:`AttentionScaleSweep.paired_to`). Validates its input and calls
    :func:`sweep_losses`.
    """
    mask = check_mask(mask)
    tokens = check_tokens(tokens, mask)
    cs = as_float_array(
        np.asarray(multipliers, dtype=np.float64), "multipliers", ndim=1
    )
    if np.any(cs <= 0):
        raise ValueError("multipliers must be > 0")
    return sweep_losses(model, tokens, mask, cs, positive_int(batch_size, "batch_size"))


def _window_vertex(x: np.ndarray, y: np.ndarray, lo: int, hi: int, best: int) -> float:
    """Vertex of the parabola through points lo..hi-1, or the grid point ``best`` when
    the window has fewer than 3 points or the parabola has no minimum."""
    if hi - lo < 3:
        return float(np.exp(x[best]))
    try:
        return stats.parabola_vertex(x[lo:hi], y[lo:hi])
    except ValueError:
        return float(np.exp(x[best]))


def sweep_optimum(
    sweep: AttentionScaleSweep,
    *,
    half_window: int = 1,
    n_boot: int = 200,
    seed: int | np.random.Generator = 0,
) -> tuple[float, np.ndarray]:
    """Loss-minimizing multiplier: the vertex of the parabola in ``log c`` through the
    grid minimum and its ``half_window`` neighbours on each side, and ``n_boot``
    bootstrap vertices (stories resampled with replacement, the window re-centred each
    time).

    Where the window is cut by the grid's end or the parabola opens downwards (a flat
    curve, as at initialization), the grid minimum itself is returned for that draw.
    """
    n_boot = positive_int(n_boot, "n_boot")
    half_window = positive_int(half_window, "half_window")
    x = np.log(sweep.multipliers)

    def vertex_of(curve: np.ndarray) -> float:
        best = int(np.argmin(curve))
        lo, hi = max(0, best - half_window), min(curve.size, best + half_window + 1)
        return _window_vertex(x, curve, lo, hi, best)

    mean, _ = sweep.mean_se()
    picks = stats.bootstrap_indices(sweep.counts.size, n_boot, seed)  # (n_boot, B)
    boots = np.array(
        [vertex_of(sweep.nll_sums[:, p].sum(1) / sweep.counts[p].sum()) for p in picks]
    )
    return vertex_of(mean), boots


# --------------------------------------------------------------------------- inputs


def weight_arrays(weights: object) -> dict[str, np.ndarray]:
    """The trainable arrays of a :class:`numscale.models.llama_weights.LlamaWeights`
    by name (rotary tables left out)."""
    return {
        name: array for name, array in weights.arrays().items() if "freq" not in name
    }


def random_token_batch(
    config: LlamaConfig, n_sequences: int, length: int, seed: int | np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded uniformly random token ids (n_sequences, length) with BOS at position 0,
    and their target mask (every position after BOS): text-free input for tests of the
    model code (the chapters run on the built-in validation stories)."""
    from numscale.models.llama_tokenizer import BOS

    rng = rng_from(seed)
    n_sequences = positive_int(n_sequences, "n_sequences")
    length = positive_int(length, "length", minimum=2)
    if length > config.seq_len:
        raise ValueError(
            f"length {length} exceeds the model's seq_len {config.seq_len}"
        )
    ids = rng.integers(3, config.vocab_size, size=(n_sequences, length))
    ids[:, 0] = BOS
    mask = np.ones((n_sequences, length), dtype=bool)
    mask[:, 0] = False
    return torch.from_numpy(ids.astype(np.int64)), torch.from_numpy(mask)
