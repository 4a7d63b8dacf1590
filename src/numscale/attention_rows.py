"""Row statistics of the causal attention of a Llama-architecture model.

The helpers take the (L, B, H, T, T) attention tensors of
:class:`numscale.models.llama.ForwardRecord` (torch) and the target mask of
:func:`numscale.models.llama.encode_stories` (see
:func:`numscale.models.next_token.check_mask`) and reduce them, per layer and head, to
small NumPy summaries: the spread of the scaled logits ``s·q·k`` (pooled and within a
row, the part the softmax sees), the entropy of each causal row against the uniform
``ln(t+1)``, the weight on the first token (attention sinks), and how many weights fall
below float16's smallest normal number.

Shapes: ``attn_logits`` and ``attn_weights`` (L, B, H, T, T), row ``t`` (the query at
position ``t``) holding keys ``0…t`` and ``-inf`` (logits) or 0 (weights) elsewhere;
``mask`` (B, T) bool. Nothing here decides what a number means: the chapters say that
in prose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp
from numscale.checks import as_float_tensor, finite_float
from numscale.models.next_token import real_tokens

# --------------------------------------------------------------------------- validation


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


# ----------------------------------------------------------------------- attention rows


#: float16's smallest normal number and half its smallest subnormal (from
#: :func:`numscale.fp.format_info`): an attention weight below the first loses precision
#: when stored in float16, below the second it becomes 0.
FP16_SMALLEST_NORMAL = fp.format_info(torch.float16).smallest_normal
FP16_ROUNDS_TO_ZERO = fp.format_info(torch.float16).smallest_subnormal / 2


@dataclass(frozen=True)
class RowStats:
    """One number per causal attention row, shapes (L, B, H, T); row ``t`` has ``t+1``
    keys.

    ``mean_logit`` and ``var_logit``: mean and (population) variance of the row's
    ``t+1`` scaled logits; ``max_logit`` and ``min_logit``: its largest and smallest
    logit; ``entropy``: H(p) in nats; ``first_weight``: the weight on key 0;
    ``n_subnormal16``: how many of the row's weights lie below
    :data:`FP16_SMALLEST_NORMAL`, ``n_zero16`` how many below
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
    """Reduce (L, B, H, T, T) causal logits and weights to per-row numbers
    (:class:`RowStats`).

    ``mask`` is the target mask of :func:`numscale.models.next_token.check_mask`. Rows
    of padding queries are computed too but flagged (``real``); every summary below uses
    only real rows.
    """
    real = real_tokens(mask)
    # -inf marks masked keys: finiteness is checked below, layer by layer
    z = as_float_tensor(attn_logits, "attn_logits", ndim=5, allow_nonfinite=True)
    p = as_float_tensor(attn_weights, "attn_weights", ndim=5, allow_nonfinite=True)
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
        as_float_tensor(pl, "attn_weights")  # finite
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


def _real_row_values(rows: RowStats, field: str) -> np.ndarray:
    chosen = np.broadcast_to(rows.real[None, :, None, :], rows.max_logit.shape)
    return getattr(rows, field)[chosen]


def attention_logit_range(rows: RowStats) -> tuple[float, float]:
    """Smallest and largest scaled attention logit over every real row, layer and
    head."""
    return (
        float(_real_row_values(rows, "min_logit").min()),
        float(_real_row_values(rows, "max_logit").max()),
    )


def attention_weight_underflow(rows: RowStats) -> dict[str, float]:
    """Share of the causal attention weights of real rows (t ≥ 1) below float16's
    smallest normal number (``"below_normal"``) and below half its smallest subnormal,
    where float16 rounds them to 0 (``"to_zero"``)."""
    w = _row_weights(rows)
    keys = (w * rows.n_keys).sum() * rows.max_logit.shape[0] * rows.max_logit.shape[2]
    return {
        "below_normal": float((w * rows.n_subnormal16).sum() / keys),
        "to_zero": float((w * rows.n_zero16).sum() / keys),
    }
