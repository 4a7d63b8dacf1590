"""Reduce what :mod:`numscale.inspect.recording` sees to the book's measurements.

Each accumulator takes one sequence at a time and keeps small sums, so memory stays at
one sequence's attention matrix of one layer. The definitions are those of
:mod:`numscale.attention_rows` and :mod:`numscale.activation_stats` (the chapters'
helpers), so that the same model on the same tokens gives the same numbers:

* attention, per layer and head, over the rows with at least two keys (positions
  t ≥ 1 of a causal model): the within-row standard deviation of the scaled logits
  (the square root of the key-count-weighted mean of the rows' variances), the pooled
  one (adding the variance of the row means), the mean entropy against ``ln(t+1)``,
  the mean weight on the first token; the largest logit of any row;
* the residual stream, per depth: RMS over all tokens and channels, the largest
  ``|x|``, and Sun et al.'s within-token ratio ``max_c |x_c| / median_c |x_c|``,
  maximized over tokens, with where it sits;
* the output logits at the positions that predict a next token: their spread over the
  vocabulary, largest value, ``log Z`` and entropy.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from numscale.inspect.recording import FP16_EXP_LIMIT, AttentionCall
from numscale.models.next_token import token_nll


class AttentionStats:
    """Per (layer, head) sums over attention rows; :meth:`add` one call at a time.

    ``keep_logits``: also keep every call's logits (tests compare them with an
    explicit recomputation).
    """

    def __init__(self, n_layers: int, n_heads: int, keep_logits: bool = False):
        shape = (n_layers, n_heads)
        self.n_layers, self.n_heads = n_layers, n_heads
        names = (
            "keys",
            "keys_mean",
            "keys_mean2",
            "keys_var",
            "rows",
            "entropy",
            "norm_entropy",
            "first",
            "uniform_entropy",
            "uniform_first",
            "above",
        )
        self.sums = {name: np.zeros(shape) for name in names}
        self.max_logit = np.full(shape, -np.inf)
        self.row_max: list[list[np.ndarray]] = [[] for _ in range(n_layers)]
        self.seen = np.zeros(n_layers, dtype=np.int64)
        self.keep_logits = keep_logits
        self.logits: list[AttentionCall] = []

    def add(self, call: AttentionCall) -> None:
        """Reduce one layer's (B, H, T, S) logits to per-head sums."""
        z, allowed = call.logits, call.allowed
        if not 0 <= call.layer < self.n_layers or z.shape[1] != self.n_heads:
            raise ValueError(
                f"attention call for layer {call.layer} with {z.shape[1]} "
                f"heads does not fit {self.n_layers} layers × "
                f"{self.n_heads} heads"
            )
        if self.keep_logits:
            self.logits.append(call)
        allowed = allowed.expand(z.shape)
        n = allowed.sum(-1).float()  # (B, H, T)
        zm = z.masked_fill(~allowed, -math.inf)
        row_max = zm.amax(-1)
        u = zm - row_max[..., None]  # ≤ 0, −inf at masked keys
        e = torch.exp(u)  # 0 at masked keys
        total = e.sum(-1)
        u = u.masked_fill_(~allowed, 0.0)
        mean_u = u.sum(-1) / n
        var = (u.square().sum(-1) / n - mean_u**2).clamp(min=0.0)
        # H(p) = −Σ p log p = log Σ e^u − Σ p u (u shifted by the row max: no overflow)
        entropy = torch.log(total) - (e * u).sum(-1) / total
        first = e[..., 0] / total
        rows = n >= 2  # t ≥ 1
        w = rows.double()
        n64, mean = n.double(), (row_max + mean_u).double()
        log_n = torch.log(n64.clamp(min=2))
        parts = {
            "keys": w * n64,
            "keys_mean": w * n64 * mean,
            "keys_mean2": w * n64 * mean**2,
            "keys_var": w * n64 * var.double(),
            "rows": w,
            "entropy": w * entropy.double(),
            "norm_entropy": w * entropy.double() / log_n,
            "first": w * first.double(),
            "uniform_entropy": w * log_n,
            "uniform_first": w / n64.clamp(min=1),
            "above": w * (row_max > FP16_EXP_LIMIT).double(),
        }
        layer = call.layer
        for name, value in parts.items():
            self.sums[name][layer] += value.sum(dim=(0, 2)).numpy()
        real = n >= 1
        largest = row_max.masked_fill(~real, -math.inf).amax(dim=(0, 2))
        self.max_logit[layer] = np.maximum(self.max_logit[layer], largest.numpy())
        self.row_max[layer].append(row_max[rows].numpy())
        self.seen[layer] += 1

    def summary(self) -> dict[str, object]:
        """The per-head arrays (L, H) and overall numbers of the report."""
        s = self.sums
        if np.any(s["rows"] == 0):
            raise ValueError(
                "no attention row with two or more keys: sequences must "
                "have at least 2 tokens"
            )
        grand = s["keys_mean"] / s["keys"]
        within = s["keys_var"] / s["keys"]
        between = np.maximum(s["keys_mean2"] / s["keys"] - grand**2, 0.0)
        rows = s["rows"]
        all_rows = np.concatenate(
            [np.ravel(m) for layer in self.row_max for m in layer]
        )
        return {
            "logit_std": np.sqrt(within),
            "logit_std_pooled": np.sqrt(within + between),
            "max_logit": self.max_logit,
            "largest_logit": float(self.max_logit.max()),
            "fraction_rows_above_fp16_exp_limit": s["above"] / rows,
            # the rows t ≥ 1 (two or more keys), as every other row statistic here
            "rows_above_fp16_exp_limit_pct": float(100 * s["above"].sum() / rows.sum()),
            "heads_with_rows_above_fp16_exp_limit": int((s["above"] > 0).sum()),
            "entropy": s["entropy"] / rows,
            "normalized_entropy": s["norm_entropy"] / rows,
            "uniform_entropy": float(s["uniform_entropy"][0, 0] / rows[0, 0]),
            "first_token_weight": s["first"] / rows,
            "uniform_first_token_weight": float(s["uniform_first"][0, 0] / rows[0, 0]),
            "n_rows_per_head": int(rows[0, 0]),
            "row_max_quantiles": {
                str(q): float(np.quantile(all_rows, q)) for q in (0.5, 0.9, 0.99, 1.0)
            },
            "row_max_histogram": histogram(all_rows),
        }


def histogram(values: np.ndarray, bins: int = 60) -> dict[str, list[float]]:
    """Counts of ``values`` in ``bins`` equal bins: {"edges": bins+1, "counts":
    bins}."""
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.astype(float).tolist()}


class ResidualStats:
    """Per depth (L+1) sums over the residual stream; :meth:`add` one sequence's
    stream at one depth (x (B, T, d)), with ``sequence`` naming the sequence."""

    def __init__(self, n_depths: int):
        self.n_depths = n_depths
        self.sq = np.zeros(n_depths)
        self.count = np.zeros(n_depths)
        self.per_sequence: list[np.ndarray] = []
        self.max_abs = np.zeros(n_depths)
        self.max_where = np.zeros((n_depths, 3), dtype=np.int64)
        self.ratio = np.zeros(n_depths)
        self.ratio_where = np.zeros((n_depths, 3), dtype=np.int64)
        self.channel_sq: np.ndarray | None = None
        self.sequence = -1

    def start(self) -> None:
        """Begin a new sequence."""
        self.sequence += 1
        self.per_sequence.append(np.full(self.n_depths, np.nan))

    def add(self, depth: int, x: torch.Tensor) -> None:
        x = x.float()[0]  # (T, d), batch of one
        a = x.abs()
        sq = float(x.double().square().sum())
        self.sq[depth] += sq
        self.count[depth] += x.numel()
        self.per_sequence[-1][depth] = math.sqrt(sq / x.numel())
        if self.channel_sq is None:
            self.channel_sq = np.zeros((self.n_depths, x.shape[-1]))
        self.channel_sq[depth] += x.double().square().sum(0).numpy()
        flat = int(a.argmax())
        if float(a.reshape(-1)[flat]) > self.max_abs[depth]:
            self.max_abs[depth] = float(a.reshape(-1)[flat])
            self.max_where[depth] = (self.sequence, *divmod(flat, x.shape[-1]))
        token_max, channel = a.max(dim=-1)
        median = torch.quantile(a, 0.5, dim=-1)  # numpy's median
        ratio = token_max / median
        t = int(ratio.argmax())
        if float(ratio[t]) > self.ratio[depth]:
            self.ratio[depth] = float(ratio[t])
            self.ratio_where[depth] = (self.sequence, t, int(channel[t]))

    def summary(self) -> dict[str, object]:
        channel_rms = np.sqrt(
            self.channel_sq / (self.count[:, None] / self.channel_sq.shape[1])
        )
        return {
            "rms": np.sqrt(self.sq / self.count),
            "rms_per_sequence": np.stack(self.per_sequence),
            "max_abs": self.max_abs,
            "max_abs_where": self.max_where,
            "token_max_over_median": self.ratio,
            "token_max_over_median_where": self.ratio_where,
            "channel_rms_over_median": channel_rms
            / np.median(channel_rms, axis=1, keepdims=True),
        }


class OutputStats:
    """Output logits at every position that predicts a next token (all but the
    last of each sequence); :meth:`add` one sequence's logits (T, vocab)."""

    def __init__(self):
        self.spread: list[np.ndarray] = []
        self.log_z: list[np.ndarray] = []
        self.entropy: list[np.ndarray] = []
        self.max_abs = 0.0

    def add(self, logits: torch.Tensor, chunk: int = 256) -> None:
        z_all = logits[:-1]
        for start in range(0, z_all.shape[0], chunk):  # memory: vocab × chunk
            z = z_all[start : start + chunk].float()
            self.spread.append(z.std(dim=-1, correction=0).numpy())
            log_z = torch.logsumexp(z, dim=-1)
            self.log_z.append(log_z.double().numpy())
            log_p = z - log_z[:, None]
            self.entropy.append(-(log_p.exp() * log_p).sum(-1).double().numpy())
            self.max_abs = max(self.max_abs, float(z.abs().max()))

    def summary(self, lengths: list[int]) -> dict[str, object]:
        spread = np.concatenate(self.spread)
        log_z = np.concatenate(self.log_z)
        bounds = np.cumsum([0] + [n - 1 for n in lengths])
        per_seq = np.array([log_z[a:b].mean() for a, b in zip(bounds[:-1], bounds[1:])])
        return {
            "std_over_vocab_median": float(np.median(spread)),
            "std_over_vocab_mean": float(spread.mean()),
            "max_abs": self.max_abs,
            "mean_log_z": float(log_z.mean()),
            "mean_log_z_per_sequence": per_seq,
            "entropy_mean": float(np.concatenate(self.entropy).mean()),
            "n_positions": int(spread.size),
        }


def sequence_nll(logits: torch.Tensor, ids: torch.Tensor) -> float:
    """Summed next-token negative log-likelihood (nats) of one sequence: logits (T,
    vocab) in any format, ids (T,); the log-softmax is taken in float32 (as
    :func:`numscale.models.next_token.token_nll`), summed in float64. inf or NaN when
    the logits are not finite."""
    return float(token_nll(logits[None], ids[None]).double().sum())


def quantization_errors(
    matrices: dict[str, np.ndarray], group_size: int = 128
) -> dict[str, np.ndarray]:
    """Relative Frobenius error ‖ŵ − w‖/‖w‖ of int8 absmax quantization of each
    matrix (out, in) of ``matrices``, per tensor, per output channel and per group of
    ``group_size`` inputs (:func:`numscale.quant.absmax_quantize`)."""
    from numscale import quant

    out: dict[str, list[float]] = {
        "per_tensor": [],
        "per_channel": [],
        f"group_{group_size}": [],
    }
    schemes = (
        ("per_tensor", "tensor"),
        ("per_channel", "channel"),
        (f"group_{group_size}", "group"),
    )
    for w in matrices.values():
        for key, scheme in schemes:
            w_hat = quant.absmax_quantize(w, scheme, group_size, bits=8)
            out[key].append(quant.quantization_error(w, w_hat)["rel_fro"])
            del w_hat
    return {key: np.array(value) for key, value in out.items()}
