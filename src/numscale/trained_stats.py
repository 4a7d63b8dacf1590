"""Statistics of a trained Llama-architecture model's attention, residual stream and logits.

The helpers take the tensors of :class:`numscale.models.llama.ForwardRecord` (torch) and the token
mask of :func:`numscale.models.llama.encode_stories`, and reduce them to small NumPy summaries:

* attention, per layer and head: the spread of the scaled logits ``s·q·k`` (pooled and
  within a row, the part the softmax sees), the entropy of each causal row against the
  uniform ``ln(t+1)``, and the weight on the first token (attention sinks);
* the loss as a function of a multiplier ``c`` on every head's attention scale, with the
  standard errors of the mean and of paired differences across stories;
* the residual stream: RMS after each block, the block updates, per-channel outliers;
* the output logits: spread and next-token entropy;
* how close each tensor comes to a floating-point format's largest finite value and how
  much of it falls below the format's smallest normal number.

Shapes (the ``ForwardRecord`` conventions): ``mask`` (B, T) bool, the target mask of
``encode_stories`` (False at the BOS token, True on the story's other tokens, False on the
padding at the end); ``attn_logits`` and ``attn_weights`` (L, B, H, T, T), row ``t`` (the
query at position ``t``) holding keys ``0…t`` and ``-inf`` (logits) or 0 (weights)
elsewhere; ``residual`` (L+1, B, T, d_model), index 0 the token embedding and index ``l``
the stream after block ``l``; ``logits`` (B, T, vocab).

Nothing here decides what a number means: the chapters say that in prose.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, positive_int, rng_from
from numscale.models.llama import LlamaConfig

# --------------------------------------------------------------------------- validation


def _tensor(
    value: object, name: str, ndim: int, *, floating: bool = True
) -> torch.Tensor:
    """``value`` as a torch tensor of ``ndim`` dimensions, or raise naming ``name``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if floating and not value.dtype.is_floating_point:
        raise TypeError(f"{name} must hold floating-point numbers, got {value.dtype}")
    if value.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions, got shape {tuple(value.shape)}"
        )
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    return value


def _finite(value: torch.Tensor, name: str) -> None:
    if not bool(torch.isfinite(value).all()):
        raise ValueError(f"{name} must be finite (it holds NaN or inf)")


def check_mask(mask: object, name: str = "mask") -> torch.Tensor:
    """``mask`` as a (B, T) bool target mask, as :func:`numscale.models.llama.encode_stories`
    returns it: False at position 0 (BOS, never predicted), then True on a prefix of
    positions 1… (the story's tokens) and False on the padding."""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(f"{name} must be a bool tensor, got {mask.dtype}")
    if mask.ndim != 2 or mask.numel() == 0:
        raise ValueError(
            f"{name} must have shape (B, T) and not be empty, got {tuple(mask.shape)}"
        )
    if bool(mask[:, 0].any()):
        raise ValueError(f"{name} must be False at position 0 (BOS is never a target)")
    if bool((mask[:, 2:] & ~mask[:, 1:-1]).any()):
        raise ValueError(
            f"{name} must be True on a prefix of positions 1, 2, ... of each row"
        )
    return mask


def real_tokens(mask: torch.Tensor) -> torch.Tensor:
    """(B, T) bool: True at every real token, the BOS at position 0 included, of a target
    ``mask`` (see :func:`check_mask`)."""
    real = check_mask(mask).clone()
    real[:, 0] = True
    return real


def _check_batch(
    tensor: torch.Tensor,
    mask: torch.Tensor,
    name: str,
    b_axis: int,
    t_axes: Sequence[int],
) -> None:
    B, T = mask.shape
    if tensor.shape[b_axis] != B or any(tensor.shape[a] != T for a in t_axes):
        raise ValueError(
            f"{name} has shape {tuple(tensor.shape)}, which does not match "
            f"mask of shape {(B, T)}"
        )


# --------------------------------------------------------------------------- attention rows


#: float16's smallest normal number and half its smallest subnormal: an attention weight
#: below the first loses precision when stored in float16, below the second it becomes 0.
FP16_SMALLEST_NORMAL = float(torch.finfo(torch.float16).smallest_normal)
FP16_ROUNDS_TO_ZERO = FP16_SMALLEST_NORMAL * float(torch.finfo(torch.float16).eps) / 2


@dataclass(frozen=True)
class RowStats:
    """One number per causal attention row, shapes (L, B, H, T); row ``t`` has ``t+1`` keys.

    ``mean_logit`` and ``var_logit``: mean and (population) variance of the row's ``t+1``
    scaled logits; ``max_logit`` and ``min_logit``: its largest and smallest logit;
    ``entropy``: H(p) in nats;
    ``first_weight``: the weight on key 0; ``n_subnormal16``: how many of the row's
    weights lie below :data:`FP16_SMALLEST_NORMAL`, ``n_zero16`` how many below
    :data:`FP16_ROUNDS_TO_ZERO` (exact zeros included in both). ``real`` (B, T): which
    rows are real queries (BOS included).
    """

    mean_logit: np.ndarray
    var_logit: np.ndarray
    max_logit: np.ndarray
    min_logit: np.ndarray
    entropy: np.ndarray
    first_weight: np.ndarray
    n_subnormal16: np.ndarray
    n_zero16: np.ndarray
    real: np.ndarray

    @property
    def n_keys(self) -> np.ndarray:
        """(T,) number of keys of each row, ``t + 1``."""
        return np.arange(1, self.real.shape[1] + 1)


def _row_moments(
    zl: torch.Tensor, outside: torch.Tensor, n_keys: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Max, min, mean and population variance over the causal keys of each row of
    (…, T, T) logits whose future entries are −inf. Shifting by the row max first keeps
    the one-pass variance E[u²] − E[u]² accurate (u = z − max lies in [−range, 0])."""
    row_max = zl.amax(-1)  # −inf entries never win
    u = (zl - row_max[..., None]).masked_fill_(outside, 0.0)
    row_min = row_max + u.amin(-1)  # u ≤ 0 and 0 at the max
    mean_u = u.sum(-1) / n_keys
    var = (u.square_().sum(-1) / n_keys - mean_u**2).clamp_(min=0.0)
    return row_max, row_min, row_max + mean_u, var


def row_statistics(
    attn_logits: torch.Tensor, attn_weights: torch.Tensor, mask: torch.Tensor
) -> RowStats:
    """Reduce (L, B, H, T, T) causal logits and weights to per-row numbers (:class:`RowStats`).

    ``mask`` is the target mask of :func:`check_mask`. Rows of padding queries are
    computed too but flagged (``real``); every summary below uses only real rows.
    """
    real = real_tokens(mask)
    z = _tensor(attn_logits, "attn_logits", 5)
    p = _tensor(attn_weights, "attn_weights", 5)
    if z.shape != p.shape:
        raise ValueError(
            f"attn_logits {tuple(z.shape)} and attn_weights {tuple(p.shape)} "
            "must have the same shape"
        )
    _check_batch(z, mask, "attn_logits", 1, (3, 4))
    T = mask.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool).tril()  # key j <= query t
    outside = ~causal
    n_keys = torch.arange(1, T + 1, dtype=torch.float32)
    fields: dict[str, list[np.ndarray]] = {
        k: [] for k in ("max", "min", "mean", "var", "entropy", "first", "sub", "zero")
    }
    for layer in range(z.shape[0]):  # one layer at a time: memory
        zl, pl = z[layer].float(), p[layer].float()
        if bool(torch.isnan(zl).any()) or bool((zl == math.inf).any()):
            raise ValueError(
                "attn_logits must hold no NaN or +inf (-inf marks masked keys)"
            )
        if bool(torch.isinf(zl).logical_and_(causal).any()):
            raise ValueError(
                "attn_logits must be finite at every causal entry (key <= query)"
            )
        _finite(pl, "attn_weights")
        for key, value in zip(
            ("max", "min", "mean", "var"), _row_moments(zl, outside, n_keys)
        ):
            fields[key].append(value.numpy())
        fields["entropy"].append(torch.special.xlogy(pl, pl).sum(-1).neg_().numpy())
        fields["first"].append(pl[..., 0].numpy())
        fields["sub"].append(((pl < FP16_SMALLEST_NORMAL) & causal).sum(-1).numpy())
        fields["zero"].append(((pl < FP16_ROUNDS_TO_ZERO) & causal).sum(-1).numpy())
    stack = {k: np.stack(v) for k, v in fields.items()}
    return RowStats(
        stack["mean"],
        stack["var"],
        stack["max"],
        stack["min"],
        stack["entropy"],
        stack["first"],
        stack["sub"].astype(np.int64),
        stack["zero"].astype(np.int64),
        real.numpy().copy(),
    )


def concat_rows(parts: Sequence[RowStats]) -> RowStats:
    """Join :class:`RowStats` of several batches (same L, H, T) along the batch axis."""
    if not parts:
        raise ValueError("parts must not be empty")

    def cat(field: str, axis: int = 1) -> np.ndarray:
        return np.concatenate([getattr(part, field) for part in parts], axis=axis)

    return RowStats(
        cat("mean_logit"),
        cat("var_logit"),
        cat("max_logit"),
        cat("min_logit"),
        cat("entropy"),
        cat("first_weight"),
        cat("n_subnormal16"),
        cat("n_zero16"),
        cat("real", 0),
    )


def _row_weights(
    rows: RowStats, *, min_keys: int = 2, from_position: int = 1
) -> np.ndarray:
    """(1, B, 1, T) float: 1 at real query rows with at least ``min_keys`` keys and
    position ≥ ``from_position``, else 0."""
    t = np.arange(rows.real.shape[1])
    keep = (rows.n_keys >= min_keys) & (t >= from_position)
    real = rows.real & keep[None, :]
    if not real.any():
        raise ValueError("no real query row at the chosen positions")
    return real[None, :, None, :].astype(np.float64)


def head_logit_std(rows: RowStats) -> tuple[np.ndarray, np.ndarray]:
    """Per (layer, head) std of the scaled logits over all causal entries.

    Returns ``(pooled, within_row)``, each (L, H). Every real query row with at
    least two keys contributes its ``t+1`` entries. Law of total variance: the
    pooled variance is the mean within-row variance plus the variance of the row
    means (both weighted by the number of keys). ``within_row`` keeps only the
    first part, the spread a softmax sees (it ignores a constant added to a row).
    """
    w = _row_weights(rows) * rows.n_keys  # (1, B, 1, T): entries per row
    total = w.sum(axis=(1, 3))  # (L, H) after broadcasting
    grand_mean = (w * rows.mean_logit).sum(axis=(1, 3)) / total
    within = (w * rows.var_logit).sum(axis=(1, 3)) / total
    offsets = rows.mean_logit - grand_mean[:, None, :, None]
    between = (w * offsets**2).sum(axis=(1, 3)) / total
    return np.sqrt(within + between), np.sqrt(within)


def head_means(rows: RowStats, field: str, *, from_position: int = 1) -> np.ndarray:
    """(L, H) mean of a per-row field (``"entropy"``, ``"first_weight"``, …) over real
    query rows at positions ≥ ``from_position`` (default 1: row 0 has one key, entropy 0
    and weight 1 on the first token whatever the model)."""
    w = _row_weights(rows, from_position=from_position)
    return (w * getattr(rows, field)).sum(axis=(1, 3)) / w.sum(axis=(1, 3))


def uniform_reference(rows: RowStats, *, from_position: int = 1) -> dict[str, float]:
    """What uniform causal attention gives on the same rows as :func:`head_means`:
    mean entropy ``ln(t+1)`` and mean first-token weight ``1/(t+1)``."""
    w = _row_weights(rows, from_position=from_position)[0, :, 0, :]
    n = rows.n_keys[None, :]
    return {
        "entropy": float((w * np.log(n)).sum() / w.sum()),
        "first_weight": float((w / n).sum() / w.sum()),
    }


def fraction_rows_above(rows: RowStats, threshold: float) -> np.ndarray:
    """(L, H) share of real query rows (t ≥ 1) whose largest logit exceeds ``threshold``
    (for float16's exp overflow, ``threshold = ln(finfo(float16).max)``)."""
    threshold = finite_float(threshold, "threshold")
    w = _row_weights(rows)
    return (w * (rows.max_logit > threshold)).sum(axis=(1, 3)) / w.sum(axis=(1, 3))


def largest_real_logit(rows: RowStats) -> float:
    """The largest scaled attention logit over every real query row, layer and head."""
    chosen = np.broadcast_to(rows.real[None, :, None, :], rows.max_logit.shape)
    return float(rows.max_logit[chosen].max())


def by_position(rows: RowStats, field: str) -> tuple[np.ndarray, np.ndarray]:
    """(L, H, T) mean of a per-row field at each query position over the stories that
    reach it, and (T,) how many stories do (positions no story reaches hold NaN)."""
    w = rows.real[None, :, None, :].astype(np.float64)
    count = rows.real.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (w * getattr(rows, field)).sum(axis=1) / count
    return mean, count


def normalized_entropy(rows: RowStats) -> np.ndarray:
    """(L, H) mean over real rows (t ≥ 1) of H(p_t)/ln(t+1): 1 for uniform attention,
    0 for one-hot attention."""
    w = _row_weights(rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(rows.n_keys > 1, rows.entropy / np.log(rows.n_keys), 0.0)
    return (w * ratio).sum(axis=(1, 3)) / w.sum(axis=(1, 3))


# --------------------------------------------------------------------------- running a model


def batches(n: int, batch_size: int) -> Iterator[slice]:
    """Slices ``0:batch_size, batch_size:2*batch_size, …`` covering ``range(n)``."""
    n = positive_int(n, "n")
    batch_size = positive_int(batch_size, "batch_size")
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def _trim(
    tokens: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop trailing columns that no story of the batch reaches (saves attention work)."""
    length = int(mask.sum(dim=1).max()) + 1  # the targets and the BOS
    return tokens[:, :length], mask[:, :length]


def _check_tokens(tokens: object, mask: torch.Tensor) -> torch.Tensor:
    if not isinstance(tokens, torch.Tensor) or tokens.dtype != torch.long:
        raise TypeError("tokens must be a torch.LongTensor of shape (B, T)")
    if tokens.shape != mask.shape:
        raise ValueError(
            f"tokens {tuple(tokens.shape)} must have the mask's shape "
            f"{tuple(mask.shape)}"
        )
    return tokens


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
    then ``None``). ``model`` is a :class:`numscale.models.llama.LlamaModel` (or anything with
    its call signature returning a ``ForwardRecord``).
    """
    mask = check_mask(mask)
    tokens = _check_tokens(tokens, mask)
    T = mask.shape[1]
    rows, residual, logits = [], [], []
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = _trim(tokens[part], mask[part])
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


# --------------------------------------------------------------------------- loss per story


def story_nll(
    logits: np.ndarray, tokens: np.ndarray, target: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Summed next-token NLL (nats) per story and token counts, from recorded logits:
    (B, T, vocab) logits, (B, T) token ids and target mask (:attr:`Collected.logits`,
    ``.tokens``, ``.target``). Position t predicts token t+1 where ``target[t+1]``; the
    log-softmax runs in float64. Same quantity as ``numscale.models.llama.per_story_nll``."""
    z = as_float_array(logits, "logits", ndim=3).astype(np.float64)
    tokens = np.asarray(tokens)
    target = np.asarray(target, dtype=bool)
    if tokens.shape != z.shape[:2] or target.shape != z.shape[:2]:
        raise ValueError(
            f"tokens {tokens.shape} and target {target.shape} must match "
            f"logits {z.shape[:2]}"
        )
    z = z[:, :-1]
    top = z.max(axis=-1, keepdims=True)
    log_norm = top[..., 0] + np.log(np.exp(z - top).sum(axis=-1))
    picked = np.take_along_axis(z, tokens[:, 1:, None], axis=-1)[..., 0]
    nll = np.where(target[:, 1:], log_norm - picked, 0.0)
    return nll.sum(axis=1), target[:, 1:].sum(axis=1).astype(np.int64)


def ratio_estimate(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """Mean loss per token and its standard error, stories as the independent draws.

    ``sums`` (m,): summed loss of each story; ``counts`` (m,): its tokens. The mean
    is Σ sums / Σ counts; its standard error (the ratio estimator's, by the delta
    method) is sqrt(Σ (S_i − mean·n_i)² / (m(m−1))) / mean(n).
    """
    m = sums.size
    mean = sums.sum() / counts.sum()
    residuals = sums - mean * counts
    se = math.sqrt((residuals**2).sum() / (m * (m - 1))) / counts.mean()
    return float(mean), float(se)


def _check_sums(
    sums: object, counts: object, name: str = "sums"
) -> tuple[np.ndarray, np.ndarray]:
    sums = as_float_array(sums, name, ndim=1)
    counts = as_float_array(np.asarray(counts, dtype=np.float64), "counts", ndim=1)
    if sums.shape != counts.shape or sums.size < 2:
        raise ValueError(
            f"{name} and counts must have the same length, at least 2 stories"
        )
    if np.any(counts <= 0):
        raise ValueError("counts must be positive (every story predicts a token)")
    return sums, counts


def ratio_mean_se(sums: np.ndarray, counts: np.ndarray) -> tuple[float, float]:
    """:func:`ratio_estimate` of validated input: token-weighted mean ``Σ sums / Σ counts``
    and its standard error across stories (tokens of one story are not independent)."""
    return ratio_estimate(*_check_sums(sums, counts))


def paired_difference(
    sums_a: np.ndarray, sums_b: np.ndarray, counts: np.ndarray
) -> tuple[float, float]:
    """Mean loss of A minus mean loss of B on the *same* stories, and its standard error.

    The story-to-story spread, shared by A and B, cancels in ``sums_a − sums_b``: the
    paired error is :func:`ratio_estimate`'s error of the per-story differences.
    """
    a, counts_ = _check_sums(sums_a, counts, "sums_a")
    b, _ = _check_sums(sums_b, counts, "sums_b")
    return ratio_estimate(a - b, counts_)


# --------------------------------------------------------------------------- scale sweep


@dataclass(frozen=True)
class ScaleSweep:
    """Loss against the attention-scale multiplier ``c`` on one fixed set of stories.

    ``multipliers`` (C,); ``nll_sums`` (C, B) summed NLL of each story at each ``c``;
    ``counts`` (B,) predicted tokens per story.
    """

    multipliers: np.ndarray
    nll_sums: np.ndarray
    counts: np.ndarray

    def mean_se(self) -> tuple[np.ndarray, np.ndarray]:
        """(C,) mean loss and (C,) its standard error across stories."""
        pairs = [ratio_mean_se(s, self.counts) for s in self.nll_sums]
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
            paired_difference(s, self.nll_sums[index], self.counts)
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
) -> ScaleSweep:
    """The loop of :func:`scale_sweep`: every batch of stories at every multiplier c."""
    from numscale.models import llama

    sums = np.zeros((multipliers.size, mask.shape[0]))  # (C, B) summed NLL
    counts = np.zeros(mask.shape[0], dtype=np.int64)  # (B,) predicted tokens
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = _trim(tokens[part], mask[part])  # drop all-padding columns
            for i, c in enumerate(multipliers):  # scale s = c / √d_k
                sums[i, part], counts[part] = llama.per_story_nll(
                    model, tok, msk, attn_scale_multiplier=float(c)
                )
    return ScaleSweep(multipliers, sums, counts)


def scale_sweep(
    model: Callable,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    multipliers: Sequence[float],
    *,
    batch_size: int = 64,
) -> ScaleSweep:
    """Summed NLL of every story with every head's scale multiplied by each ``c``.

    The same stories at every ``c``, so differences between multipliers can be paired
    (:meth:`ScaleSweep.paired_to`). Validates its input and calls :func:`sweep_losses`.
    """
    mask = check_mask(mask)
    tokens = _check_tokens(tokens, mask)
    cs = as_float_array(
        np.asarray(multipliers, dtype=np.float64), "multipliers", ndim=1
    )
    if np.any(cs <= 0):
        raise ValueError("multipliers must be > 0")
    return sweep_losses(model, tokens, mask, cs, positive_int(batch_size, "batch_size"))


def parabola_vertex(log_c: np.ndarray, loss: np.ndarray) -> float:
    """``c`` at the minimum of the least-squares parabola through ``(log c, loss)``
    (at least 3 points). Raises ``ValueError`` if the fitted parabola opens downwards."""
    x = as_float_array(log_c, "log_c", ndim=1)
    y = as_float_array(loss, "loss", ndim=1)
    if x.shape != y.shape or x.size < 3:
        raise ValueError("log_c and loss must have the same length, at least 3 points")
    a, b, _ = np.polyfit(x, y, 2)
    if a <= 0:
        raise ValueError("the fitted parabola has no minimum (curvature <= 0)")
    return float(np.exp(-b / (2 * a)))


def _window_vertex(x: np.ndarray, y: np.ndarray, lo: int, hi: int, best: int) -> float:
    """Vertex of the parabola through points lo..hi-1, or the grid point ``best`` when
    the window has fewer than 3 points or the parabola has no minimum."""
    if hi - lo < 3:
        return float(np.exp(x[best]))
    try:
        return parabola_vertex(x[lo:hi], y[lo:hi])
    except ValueError:
        return float(np.exp(x[best]))


def sweep_optimum(
    sweep: ScaleSweep,
    *,
    half_window: int = 1,
    n_boot: int = 200,
    seed: int | np.random.Generator = 0,
) -> tuple[float, np.ndarray]:
    """Loss-minimizing multiplier: the vertex of the parabola in ``log c`` through the grid
    minimum and its ``half_window`` neighbours on each side, and ``n_boot`` bootstrap
    vertices (stories resampled with replacement, the window re-centred each time).

    Where the window is cut by the grid's end or the parabola opens downwards (a flat
    curve, as at initialization), the grid minimum itself is returned for that draw.
    """
    rng = rng_from(seed)
    n_boot = positive_int(n_boot, "n_boot")
    half_window = positive_int(half_window, "half_window")
    x = np.log(sweep.multipliers)

    def vertex_of(curve: np.ndarray) -> float:
        best = int(np.argmin(curve))
        lo, hi = max(0, best - half_window), min(curve.size, best + half_window + 1)
        return _window_vertex(x, curve, lo, hi, best)

    mean, _ = sweep.mean_se()
    boots = np.empty(n_boot)
    B = sweep.counts.size
    for i in range(n_boot):
        pick = rng.integers(0, B, size=B)
        boots[i] = vertex_of(sweep.nll_sums[:, pick].sum(1) / sweep.counts[pick].sum())
    return vertex_of(mean), boots


# --------------------------------------------------------------------------- residual stream


def _chosen_tokens(real: np.ndarray, positions: str) -> np.ndarray:
    chosen = np.array(real, dtype=bool, copy=True)
    if chosen.ndim != 2:
        raise ValueError(f"real must have shape (B, T), got {chosen.shape}")
    if positions == "first":
        chosen[:, 1:] = False
    elif positions == "rest":
        chosen[:, 0] = False
    elif positions != "all":
        raise ValueError(
            f"positions must be 'all', 'first' or 'rest', got {positions!r}"
        )
    if not chosen.any():
        raise ValueError("real selects no token")
    return chosen


def residual_tokens(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> np.ndarray:
    """(L+1, N, d) residual vectors of the real tokens: ``real`` (B, T) bool
    (:attr:`Collected.real`), ``positions`` ``"all"``, ``"first"`` (position 0, the BOS
    token) or ``"rest"`` (positions ≥ 1)."""
    x = as_float_array(residual, "residual", ndim=4)
    chosen = _chosen_tokens(real, positions)
    if chosen.shape != x.shape[1:3]:
        raise ValueError(f"residual {x.shape} does not match real {chosen.shape}")
    return x[:, chosen]  # boolean index over (B, T)


def residual_rms(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> np.ndarray:
    """(L+1,) RMS of the residual stream after each block: ``sqrt(mean ‖x‖²/d)`` over
    the chosen real tokens (see :func:`residual_tokens`)."""
    x = residual_tokens(residual, real, positions=positions).astype(np.float64)
    return np.sqrt((x**2).mean(axis=(1, 2)))


@dataclass(frozen=True)
class BlockUpdates:
    """What each block adds to the stream, (L,) arrays averaged over real tokens.

    ``update_rms``: RMS of Δ_l = x_l − x_{l−1}; ``cosine``: mean cosine between x_{l−1}
    and Δ_l; and the exact decomposition of the growth of the mean squared norm per
    channel, ``growth = update_sq + cross``:
    ``(mean ‖x_l‖² − mean ‖x_{l−1}‖²)/d = mean ‖Δ_l‖²/d + 2 mean ⟨x_{l−1}, Δ_l⟩/d``.
    """

    update_rms: np.ndarray
    cosine: np.ndarray
    growth: np.ndarray
    update_sq: np.ndarray
    cross: np.ndarray


def block_updates(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> BlockUpdates:
    """:class:`BlockUpdates` of the chosen real tokens."""
    x = residual_tokens(residual, real, positions=positions).astype(np.float64)
    d = x.shape[-1]
    before, delta = x[:-1], np.diff(x, axis=0)
    sq_before = (before**2).sum(-1)
    sq_delta = (delta**2).sum(-1)
    dot = (before * delta).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / np.sqrt(sq_before * sq_delta)
    return BlockUpdates(
        update_rms=np.sqrt(sq_delta.mean(1) / d),
        cosine=np.nanmean(cos, axis=1),
        growth=((x[1:] ** 2).sum(-1).mean(1) - sq_before.mean(1)) / d,
        update_sq=sq_delta.mean(1) / d,
        cross=2 * dot.mean(1) / d,
    )


@dataclass(frozen=True)
class OutlierStats:
    """Per depth (L+1,) of the residual stream, over the chosen real tokens.

    ``max_abs``: largest |activation|; ``median_abs``: median |activation| over all
    tokens and channels; ``global_ratio`` = max_abs / median_abs. ``token_ratio``: the
    largest over tokens of (max_c |x_c| / median_c |x_c|) within one token's hidden
    state, the ratio in Sun et al.'s criterion; ``where_position`` and ``where_channel``:
    position and channel of ``max_abs``; ``channel_rms`` (L+1, d): RMS of each channel.
    """

    max_abs: np.ndarray
    median_abs: np.ndarray
    global_ratio: np.ndarray
    token_ratio: np.ndarray
    where_position: np.ndarray
    where_channel: np.ndarray
    channel_rms: np.ndarray


def outlier_stats(
    residual: np.ndarray, real: np.ndarray, *, positions: str = "all"
) -> OutlierStats:
    """:class:`OutlierStats` of the residual stream (see there)."""
    x = np.abs(residual_tokens(residual, real, positions=positions).astype(np.float64))
    token_positions = np.nonzero(_chosen_tokens(real, positions))[1]
    flat = x.reshape(x.shape[0], -1)
    where = flat.argmax(axis=1)
    max_abs = flat.max(axis=1)
    median_abs = np.median(flat, axis=1)
    with np.errstate(divide="ignore"):
        token_ratio = (x.max(axis=2) / np.median(x, axis=2)).max(axis=1)
    return OutlierStats(
        max_abs,
        median_abs,
        max_abs / median_abs,
        token_ratio,
        token_positions[where // x.shape[2]],
        where % x.shape[2],
        np.sqrt((x**2).mean(axis=1)),
    )


# --------------------------------------------------------------------------- output logits


def predicting_positions(target: np.ndarray) -> np.ndarray:
    """(B, T) bool: positions whose logits predict a target (position t predicts t+1)."""
    target = np.asarray(target, dtype=bool)
    if target.ndim != 2:
        raise ValueError(f"target must have shape (B, T), got {target.shape}")
    predicts = np.zeros_like(target)
    predicts[:, :-1] = target[:, 1:]
    return predicts


@dataclass(frozen=True)
class OutputLogitStats:
    """Output logits at the N predicting positions: ``spread`` (N,) std over the vocabulary
    of each position's logits; ``max_abs`` largest |logit|; ``top_gap`` (N,) largest logit
    minus the mean of the others; ``entropy`` (N,) next-token entropy (nats);
    ``top_probability`` (N,) the largest probability."""

    spread: np.ndarray
    max_abs: float
    top_gap: np.ndarray
    entropy: np.ndarray
    top_probability: np.ndarray


def output_logit_stats(logits: np.ndarray, target: np.ndarray) -> OutputLogitStats:
    """:class:`OutputLogitStats` of (B, T, vocab) logits at the positions that predict a
    target of the (B, T) target mask."""
    z = as_float_array(logits, "logits", ndim=3)
    predicts = predicting_positions(target)
    if predicts.shape != z.shape[:2]:
        raise ValueError(f"logits {z.shape} do not match target {predicts.shape}")
    z = z[predicts].astype(np.float64)
    if z.shape[0] == 0:
        raise ValueError("target selects no position")
    log_p = z - z.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    top = z.max(axis=1)
    rest = (z.sum(axis=1) - top) / (z.shape[1] - 1)
    return OutputLogitStats(
        z.std(axis=1),
        float(np.abs(z).max()),
        top - rest,
        -(p * log_p).sum(axis=1),
        p.max(axis=1),
    )


# --------------------------------------------------------------------------- number formats


@dataclass(frozen=True)
class FormatMargin:
    """How one tensor's values sit in a format's range (from ``torch.finfo``).

    ``max_abs``: largest |value|; ``fraction_of_max``: max_abs / the format's largest
    finite value; ``log2_headroom``: log2 of the inverse (doublings left before overflow);
    ``fraction_subnormal``: share of the nonzero values whose magnitude is below the
    format's smallest normal number (they lose precision, and the smallest flush to 0);
    ``smallest_nonzero``: smallest nonzero |value|.
    """

    name: str
    format: str
    max_abs: float
    fraction_of_max: float
    log2_headroom: float
    fraction_subnormal: float
    smallest_nonzero: float


def format_margin(
    name: str, values: np.ndarray, dtype: torch.dtype, *, extremes_only: bool = False
) -> FormatMargin:
    """:class:`FormatMargin` of ``values`` (finite entries; -inf masks are dropped first)
    in ``dtype``. ``extremes_only``: ``values`` holds only a tensor's extreme values, so
    the share below the smallest normal is unknown (NaN, shown as "not measured")."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    v = (
        as_float_array(values, "values", allow_nonfinite=True)
        .ravel()
        .astype(np.float64)
    )
    if np.isnan(v).any() or (v == np.inf).any():
        raise ValueError("values must hold no NaN or +inf")
    v = np.abs(v[np.isfinite(v)])
    if v.size == 0:
        raise ValueError("values must hold finite entries")
    info = torch.finfo(dtype)
    nonzero = v[v > 0]
    max_abs = float(v.max())
    return FormatMargin(
        name=name,
        format=str(dtype).removeprefix("torch."),
        max_abs=max_abs,
        fraction_of_max=max_abs / float(info.max),
        log2_headroom=math.log2(float(info.max) / max_abs) if max_abs > 0 else math.inf,
        fraction_subnormal=(
            math.nan
            if extremes_only
            else float((nonzero < info.smallest_normal).mean())
            if nonzero.size
            else 0.0
        ),
        smallest_nonzero=(
            math.nan if extremes_only else float(nonzero.min()) if nonzero.size else 0.0
        ),
    )


def story_losses(
    weights: object,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    dtype: torch.dtype,
    *,
    batch_size: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Summed NLL per story (B,) and token counts (B,) of the model run entirely in
    ``dtype`` (:class:`numscale.models.llama.LlamaModel`); the log-softmax of the logits is
    taken in float32 (``numscale.models.llama.per_story_nll``). A story whose loss is not finite
    (an overflow) is kept as inf/NaN: callers count it."""
    from numscale.models import llama

    mask = check_mask(mask)
    tokens = _check_tokens(tokens, mask)
    model = llama.LlamaModel(weights, dtype=dtype)
    sums = np.zeros(mask.shape[0])
    counts = np.zeros(mask.shape[0], dtype=np.int64)
    with torch.inference_mode():
        for part in batches(mask.shape[0], batch_size):
            tok, msk = _trim(tokens[part], mask[part])
            sums[part], counts[part] = llama.per_story_nll(model, tok, msk)
    return sums, counts


def weight_arrays(weights: object) -> dict[str, np.ndarray]:
    """The trainable arrays of a :class:`numscale.models.llama.LlamaWeights` by name
    (rotary tables left out)."""
    return {
        name: array for name, array in weights.arrays().items() if "freq" not in name
    }


def random_token_batch(
    config: LlamaConfig, n_sequences: int, length: int, seed: int | np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded uniformly random token ids (n_sequences, length) with BOS at position 0,
    and their target mask (every position after BOS): the input of the initialization
    baseline when no text is available."""
    from numscale.models.llama import BOS

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


def plot_head_grid(
    ax,
    values: np.ndarray,
    *,
    cmap: str = "viridis",
    fmt: str = "{:.1f}",
    norm=None,
    label: str = "",
):
    """Draw an (L, H) array as a grid of coloured cells with each value written in it.

    Rows are layers, columns heads, both numbered from 1 (layer 1 at the top); returns
    the image for a colour bar.
    """
    values = as_float_array(values, "values", ndim=2)
    image = ax.imshow(values, cmap=cmap, norm=norm, aspect="auto")
    n_layers, n_heads = values.shape
    for i in range(n_layers):
        for j in range(n_heads):
            level = image.norm(values[i, j])
            colour = "white" if level < 0.55 else "black"
            ax.text(
                j,
                i,
                fmt.format(values[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color=colour,
            )
    ax.set_xticks(range(n_heads), [str(h + 1) for h in range(n_heads)])
    ax.set_yticks(range(n_layers), [str(layer + 1) for layer in range(n_layers)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.grid(False)
    if label:
        ax.set_title(label)
    return image


def _real_row_values(rows: RowStats, field: str) -> np.ndarray:
    chosen = np.broadcast_to(rows.real[None, :, None, :], rows.max_logit.shape)
    return getattr(rows, field)[chosen]


def attention_logit_range(rows: RowStats) -> tuple[float, float]:
    """Smallest and largest scaled attention logit over every real row, layer and head."""
    return (
        float(_real_row_values(rows, "min_logit").min()),
        float(_real_row_values(rows, "max_logit").max()),
    )


def attention_weight_underflow(rows: RowStats) -> dict[str, float]:
    """Share of the causal attention weights of real rows (t ≥ 1) below float16's smallest
    normal number (``"below_normal"``) and below half its smallest subnormal, where
    float16 rounds them to 0 (``"to_zero"``)."""
    w = _row_weights(rows)
    keys = (w * rows.n_keys).sum() * rows.max_logit.shape[0] * rows.max_logit.shape[2]
    return {
        "below_normal": float((w * rows.n_subnormal16).sum() / keys),
        "to_zero": float((w * rows.n_zero16).sum() / keys),
    }


def margin_table(margins: Sequence[FormatMargin]) -> str:
    """A Markdown table of :class:`FormatMargin` rows (one tensor and format each)."""
    from numscale import fp

    rows = [
        [
            m.name,
            m.format,
            f"{m.max_abs:.3g}",
            f"{m.fraction_of_max:.2e}",
            f"{m.log2_headroom:.1f}",
            "not measured"
            if math.isnan(m.fraction_subnormal)
            else f"{100 * m.fraction_subnormal:.3g}%",
        ]
        for m in margins
    ]
    return fp.to_markdown(
        [
            "tensor",
            "format",
            "largest abs value",
            "fraction of max",
            "doublings left",
            "nonzero values below smallest normal",
        ],
        rows,
    )
