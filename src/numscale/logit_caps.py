"""Output logits: their size, and the fixes (soft-capping, z-loss, embedding scale).

* :func:`soft_cap` and :func:`soft_cap_grad`: Gemma 2's c·tanh(z/c) and its derivative;
* :func:`z_loss`: PaLM's auxiliary loss, a coefficient times (log Z)²;
* :func:`cap_sweep`: the validation loss per story of a frozen model whose output
  logits are soft-capped at each of several caps (one forward per batch, the caps
  applied to the same logits);
* :func:`embedding_scales`: the scales of a tied embedding and of the logits it makes;
* :func:`finetune`: a few deterministic Adam steps of a llama2.c model with or without
  the z-loss, tracking log Z and the loss;
* :func:`compare_scales`, :func:`cap_costs`, :func:`finetune_summary`: the numbers the
  output-logits chapter quotes, as records for :func:`numscale.report.glue_record`
  (and ``format_*`` for the tables it prints).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import as_float_tensor, finite_float, positive_int
from numscale.models.next_token import story_nll
from numscale.optim import adam_step, zero_moments


def soft_cap(z: torch.Tensor, cap: float) -> torch.Tensor:
    """c·tanh(z/c) entrywise: ≈ z for ‖z‖ ≪ c, never beyond ±c (Gemma 2 caps its
    attention logits and its output logits so)."""
    return cap * torch.tanh(z / cap)


def soft_cap_grad(z: torch.Tensor, cap: float) -> torch.Tensor:
    """d/dz of c·tanh(z/c) = 1 − tanh²(z/c), entrywise."""
    t = torch.tanh(z / cap)
    return 1 - t * t


def capped(z: torch.Tensor, cap: float | None) -> torch.Tensor:
    """``z`` soft-capped at ``cap`` (validated), or unchanged for ``cap=None``."""
    z = as_float_tensor(z, "z")
    if cap is None:
        return z
    return soft_cap(z, finite_float(cap, "cap", positive=True))


def log_partition(z: torch.Tensor) -> torch.Tensor:
    """log Z = log Σ_i exp(z_i) over the last axis (stable): shape z.shape[:-1]."""
    return torch.logsumexp(z, dim=-1)


def z_loss(z: torch.Tensor, coefficient: float = 1e-4) -> torch.Tensor:
    """PaLM's auxiliary loss, coefficient · (log Z)², averaged over positions."""
    return coefficient * log_partition(z).pow(2).mean()


@dataclass(frozen=True)
class CapSweep:
    """Per cap (``None`` first: uncapped): summed loss per story ``sums``
    (n_caps, stories), token ``counts`` (stories,), the largest absolute logit at a
    predicting position ``max_logit`` (n_caps,), and the mean log Z ``mean_log_z``."""

    caps: tuple[float | None, ...]
    sums: np.ndarray
    counts: np.ndarray
    max_logit: np.ndarray
    mean_log_z: np.ndarray


def cap_sweep(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    caps: Sequence[float],
    *,
    batch_size: int = 8,
) -> CapSweep:
    """Soft-cap the output logits of a frozen ``model`` at each of ``caps`` and measure
    the loss per story on ``tokens`` (B, T) with target ``mask`` (B, T)."""
    positive_int(batch_size, "batch_size")
    all_caps: tuple[float | None, ...] = (
        None,
        *(finite_float(c, "caps", positive=True) for c in caps),
    )
    sums, counts = [], []
    top = np.zeros(len(all_caps))
    log_z_sum, n_pos = np.zeros(len(all_caps)), 0
    for start in range(0, tokens.shape[0], batch_size):
        tok, msk = tokens[start : start + batch_size], mask[start : start + batch_size]
        with torch.inference_mode():
            logits = model(tok).float()
        predicting = msk[:, 1:]
        rows = []
        for k, cap in enumerate(all_caps):
            z = capped(logits, cap)
            s, n = story_nll(z, tok, msk, dtype=torch.float64)
            rows.append(s)
            real = z[:, :-1][predicting]
            top[k] = max(top[k], float(real.abs().max()))
            log_z_sum[k] += float(log_partition(real.double()).sum())
        n_pos += int(predicting.sum())
        sums.append(np.stack(rows))
        counts.append(n)
    return CapSweep(
        all_caps,
        np.concatenate(sums, axis=1),
        np.concatenate(counts),
        top,
        log_z_sum / n_pos,
    )


@dataclass(frozen=True)
class EmbeddingScales:
    """Scales of a tied embedding E (vocab, d_model) and of the logits z = h·Eᵀ:
    ``entry_rms`` of E, the mean and largest row norm ‖E_i‖, the mean norm ‖h‖ of the
    final normalized hidden state, the mean within-position std of z, and the entry
    RMS 1/√d_model that the √d_model multiplier would bring to 1."""

    entry_rms: float
    row_norm_mean: float
    row_norm_max: float
    hidden_norm_mean: float
    logit_std_mean: float
    unit_entry_rms: float


def embedding_scales(
    embedding: np.ndarray, hidden: torch.Tensor, logits: torch.Tensor
) -> EmbeddingScales:
    """:class:`EmbeddingScales` from the embedding (vocab, d), the final normalized
    hidden states ``hidden`` (N, d) and their logits (N, vocab)."""
    e = np.asarray(embedding, dtype=np.float64)
    if e.ndim != 2 or e.size == 0:
        raise ValueError(
            f"embedding must be a non-empty (vocab, d) array, got {e.shape}"
        )
    hidden = as_float_tensor(hidden, "hidden").double()
    logits = as_float_tensor(logits, "logits").double()
    rows = np.linalg.norm(e, axis=1)
    return EmbeddingScales(
        entry_rms=float(np.sqrt((e * e).mean())),
        row_norm_mean=float(rows.mean()),
        row_norm_max=float(rows.max()),
        hidden_norm_mean=float(hidden.norm(dim=-1).mean()),
        logit_std_mean=float(logits.std(dim=-1).mean()),
        unit_entry_rms=1 / float(np.sqrt(e.shape[1])),
    )


def final_hidden(
    model: torch.nn.Module, tokens: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Final normalized hidden states h (N, d) and logits (N, vocab) of a llama2.c
    model at the N predicting positions of ``tokens``; h·Eᵀ = logits."""
    from numscale.models import llama

    with torch.inference_mode():
        record = model(tokens, record=True, record_attention=False)
        x = record.residual[-1]
        h = llama._rmsnorm(x, model.rms_final)
    predicting = torch.zeros_like(mask)
    predicting[:, :-1] = mask[:, 1:]
    return h[predicting].float(), record.logits[predicting].float()


@dataclass(frozen=True)
class Finetune:
    """Per step of :func:`finetune`: cross-entropy ``loss`` and mean ``log_z`` of the
    training batch (before the step), and at the end ``heldout_loss`` and
    ``heldout_log_z`` on held-out stories."""

    loss: np.ndarray
    log_z: np.ndarray
    heldout_loss: float
    heldout_log_z: float


def finetune(
    weights: object,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    heldout: tuple[torch.Tensor, torch.Tensor],
    *,
    coefficient: float,
    lr: float = 1e-3,
) -> Finetune:
    """Adam (β = 0.9, 0.99, fresh moments) on cross-entropy + ``coefficient``·(log Z)²,
    one step per batch, from ``weights``; float32, deterministic (no random draws)."""
    from numscale.models import llama

    if coefficient < 0:
        raise ValueError(f"coefficient must be >= 0, got {coefficient}")
    lr = finite_float(lr, "lr", positive=True)
    model = llama.LlamaModel(weights)
    params = list(model.parameters())
    moments = zero_moments(params)
    losses, log_zs = [], []
    for step, (tokens, mask) in enumerate(batches, start=1):
        logits = model(tokens)[:, :-1]
        target = mask[:, 1:]
        z = logits[target]
        ce = torch.nn.functional.cross_entropy(z, tokens[:, 1:][target])
        loss = ce + z_loss(z, coefficient)
        model.zero_grad(set_to_none=True)
        loss.backward()
        adam_step(params, moments, lr, step, betas=(0.9, 0.99))
        losses.append(float(ce.detach()))
        log_zs.append(float(log_partition(z.detach()).mean()))
    tok, msk = heldout
    with torch.inference_mode():
        z = model(tok)[:, :-1][msk[:, 1:]]
        held_ce = float(torch.nn.functional.cross_entropy(z, tok[:, 1:][msk[:, 1:]]))
        held_log_z = float(log_partition(z).mean())
    return Finetune(np.array(losses), np.array(log_zs), held_ce, held_log_z)


# ------------------------------------------------------------ the chapter's result records


@dataclass(frozen=True)
class ScaleComparison:
    """The quoted scales of a trained model's tied embedding and logits against the same
    model at initialization (both :class:`EmbeddingScales`).

    Trained: ``entry_rms``, ``unit_entry_rms`` (1/√d_model), ``row_norm_mean``,
    ``row_norm_max``, ``hidden_norm`` (mean ‖h‖), ``logit_std``; ``sqrt_d`` = √d_model;
    ``entry_over_unit`` = entry_rms / unit_entry_rms. At initialization:
    ``init_entry_rms``, ``init_hidden_norm``, ``init_logit_std``. Growth through
    training: ``logit_growth`` (ratio of the logit stds) and ``norm_growth`` (product of
    the ratios of the mean row norms and of the mean hidden norms).
    """

    entry_rms: float
    unit_entry_rms: float
    row_norm_mean: float
    row_norm_max: float
    hidden_norm: float
    sqrt_d: float
    logit_std: float
    entry_over_unit: float
    init_entry_rms: float
    init_hidden_norm: float
    init_logit_std: float
    logit_growth: float
    norm_growth: float


def compare_scales(
    trained: EmbeddingScales, init: EmbeddingScales, d_model: int
) -> ScaleComparison:
    """:class:`ScaleComparison` of ``trained`` against ``init`` for width ``d_model``."""
    for name, value in (("trained", trained), ("init", init)):
        if not isinstance(value, EmbeddingScales):
            raise TypeError(
                f"{name} must be EmbeddingScales, got {type(value).__name__}"
            )
    d = positive_int(d_model, "d_model")
    return ScaleComparison(
        entry_rms=trained.entry_rms,
        unit_entry_rms=trained.unit_entry_rms,
        row_norm_mean=trained.row_norm_mean,
        row_norm_max=trained.row_norm_max,
        hidden_norm=trained.hidden_norm_mean,
        sqrt_d=float(np.sqrt(d)),
        logit_std=trained.logit_std_mean,
        entry_over_unit=trained.entry_rms / trained.unit_entry_rms,
        init_entry_rms=init.entry_rms,
        init_hidden_norm=init.hidden_norm_mean,
        init_logit_std=init.logit_std_mean,
        logit_growth=trained.logit_std_mean / init.logit_std_mean,
        norm_growth=trained.row_norm_mean
        / init.row_norm_mean
        * trained.hidden_norm_mean
        / init.hidden_norm_mean,
    )


#: Row labels of :func:`format_scales`: what each field of :class:`EmbeddingScales` is.
_SCALE_ROWS = (
    ("entry_rms", "embedding E: RMS of its entries"),
    ("row_norm_mean", "embedding E: row norm ‖E_i‖, mean over rows"),
    ("row_norm_max", "embedding E: row norm ‖E_i‖, largest"),
    ("hidden_norm_mean", "final hidden state h: norm ‖h‖, mean over positions"),
    ("logit_std_mean", "logits z: std over the vocabulary, mean over positions"),
)


def format_scales(scales: dict[str, EmbeddingScales]) -> str:
    """A table of :class:`EmbeddingScales`: one column per label of ``scales``, one
    row per quantity, named with what it is (an RMS, a norm or a std; 4 significant
    digits); then the entry RMS 1/√d_model of a row of norm 1, once if every label
    has the same, else as a row."""
    for label, s in scales.items():
        if not isinstance(s, EmbeddingScales):
            raise TypeError(
                f"scales[{label!r}] must be EmbeddingScales, got {type(s).__name__}"
            )
    if not scales:
        raise ValueError("scales must not be empty")
    width = max(12, *(len(label) + 2 for label in scales))
    rows = list(_SCALE_ROWS)
    units = {s.unit_entry_rms for s in scales.values()}
    unit_row = ("unit_entry_rms", "1/√d_model: entry RMS of a row of norm 1")
    if len(units) > 1:
        rows.append(unit_row)
    left = max(len(name) for _, name in rows)
    lines = [" " * left + "".join(f"{label:>{width}}" for label in scales)]
    for field, name in rows:
        values = (getattr(s, field) for s in scales.values())
        lines.append(f"{name:{left}s}" + "".join(f"{v:>{width}.4g}" for v in values))
    if len(units) == 1:
        lines.append(f"{unit_row[1]} = {units.pop():.4g}")
    return "\n".join(lines)


@dataclass(frozen=True)
class CapCosts:
    """What each soft cap of a :class:`CapSweep` costs.

    ``loss_uncapped`` ± ``loss_uncapped_se``: mean loss per token without a cap;
    ``max_logit`` and ``mean_log_z``: the largest ``abs(z)`` and the mean log Z without a cap;
    ``diff``: ``"cap<c>"`` → loss change of cap c against no cap and ``"cap<c>_se"`` →
    its paired standard error; ``max``: ``"cap<c>"`` → the largest ``abs(z)`` after the cap;
    ``n_predicted``: the number of predicted tokens; ``caps``: the caps, in order.
    """

    loss_uncapped: float
    loss_uncapped_se: float
    max_logit: float
    mean_log_z: float
    diff: dict[str, float]
    max: dict[str, float]
    n_predicted: int
    caps: tuple[float, ...]


def cap_costs(
    sweep: CapSweep,
    uncapped: tuple[float, float],
    diffs: Sequence[tuple[float, float]],
) -> CapCosts:
    """:class:`CapCosts` from ``sweep``, the uncapped (mean, SE) loss and the (change,
    SE) of each cap against no cap, one pair per cap of ``sweep`` in its order."""
    if not isinstance(sweep, CapSweep):
        raise TypeError(f"sweep must be a CapSweep, got {type(sweep).__name__}")
    caps = tuple(float(c) for c in sweep.caps[1:] if c is not None)
    if len(caps) != len(sweep.caps) - 1 or len(diffs) != len(caps):
        raise ValueError(
            f"diffs must hold one (change, SE) pair per cap: {len(caps)} caps, "
            f"{len(diffs)} pairs"
        )
    diff: dict[str, float] = {}
    for c, (d, _) in zip(caps, diffs):
        diff[f"cap{int(c)}"] = d
    for c, (_, e) in zip(caps, diffs):
        diff[f"cap{int(c)}_se"] = e
    return CapCosts(
        loss_uncapped=finite_float(uncapped[0], "uncapped"),
        loss_uncapped_se=finite_float(uncapped[1], "uncapped"),
        max_logit=float(sweep.max_logit[0]),
        mean_log_z=float(sweep.mean_log_z[0]),
        diff=diff,
        max={f"cap{int(c)}": float(m) for c, m in zip(caps, sweep.max_logit[1:])},
        n_predicted=int(sweep.counts.sum()),
        caps=caps,
    )


def format_cap_costs(costs: CapCosts) -> str:
    """The uncapped loss, largest ``abs(z)`` and mean log Z, then one line per cap:
    the loss change ± its SE and the largest ``abs(z)`` after the cap."""
    lines = [
        f"uncapped: loss {costs.loss_uncapped:.4f} ± {costs.loss_uncapped_se:.4f}, "
        f"largest |z| {costs.max_logit:.1f}, mean log Z {costs.mean_log_z:.2f}"
    ]
    for c in costs.caps:
        key = f"cap{int(c)}"
        lines.append(
            f"cap {c:4.0f}: loss change {costs.diff[key]:+.4f} ± "
            f"{costs.diff[key + '_se']:.4f}, largest |z| {costs.max[key]:.1f}"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class FinetuneSummary:
    """Held-out numbers of :func:`finetune` runs: ``start_loss`` / ``start_log_z``
    before any step, and ``loss`` / ``log_z``: run name → held-out loss / mean log Z
    after the run."""

    start_loss: float
    start_log_z: float
    loss: dict[str, float]
    log_z: dict[str, float]


def finetune_summary(start: Finetune, runs: dict[str, Finetune]) -> FinetuneSummary:
    """:class:`FinetuneSummary` of the runs ``runs`` (name → run) from ``start``."""
    for name, run in (
        ("start", start),
        *((f"runs[{k!r}]", r) for k, r in runs.items()),
    ):
        if not isinstance(run, Finetune):
            raise TypeError(f"{name} must be a Finetune, got {type(run).__name__}")
    if not runs:
        raise ValueError("runs must not be empty")
    return FinetuneSummary(
        start_loss=start.heldout_loss,
        start_log_z=start.heldout_log_z,
        loss={k: r.heldout_loss for k, r in runs.items()},
        log_z={k: r.heldout_log_z for k, r in runs.items()},
    )


def format_finetunes(runs: dict[float, Finetune]) -> str:
    """One line per z-loss coefficient: the held-out loss and mean log Z."""
    return "\n".join(
        f"z-loss coefficient {k:.0e}: held-out loss {r.heldout_loss:.4f}, "
        f"log Z {r.heldout_log_z:.2f}"
        for k, r in runs.items()
    )
