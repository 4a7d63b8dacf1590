"""Result records of the entropy-collapse chapter: what one cell glues, in one call.

The records summarize the results of :func:`numscale.attention.iid_entropy_sweep`,
:func:`numscale.attention.query_growth_sweep` and
:func:`numscale.toy_training.train_runs` into the numbers the chapter quotes; their
field names are the chapter's glue names (after the prefix ``ec_`` or ``ec_train_``),
which is why some of them carry the page's sizes (50 and 1,000 keys, 64 tokens).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from numscale import attention
from numscale.checks import finite_float, positive_int
from numscale.toy_training import TrainingRuns, trailing_mean


@dataclass(frozen=True)
class SweepSummary:
    """Entropy of iid logit rows (:class:`numscale.attention.EntropySweep`) at n = 50
    and n = 1,000 keys.

    ``h50_sigma1`` and ``h50_sigma1_se``: mean entropy (nats) and its standard error
    at σ = 1, n = 50; ``h50_sigma1_approx``: ln n − σ²/2 there;
    ``h50_sigma1_relerr_pct``: (measured − approximation)/measured in %;
    ``collapse50``, ``collapse1000``: σ* = √(2 ln n); ``h_at_collapse50``,
    ``h_at_collapse1000``: the measured mean entropy at σ*, linearly interpolated
    between the two grid points of the sweep around σ* (σ* itself is not sampled);
    ``keys_at_collapse50``, ``keys_at_collapse1000``: e to that
    entropy, the number of keys a uniform row of that entropy spreads over.
    """

    h50_sigma1: float
    h50_sigma1_se: float
    h50_sigma1_approx: float
    h50_sigma1_relerr_pct: float
    collapse50: float
    collapse1000: float
    h_at_collapse50: float
    h_at_collapse1000: float
    keys_at_collapse50: float
    keys_at_collapse1000: float

    def __str__(self) -> str:
        return "\n".join(
            f"n = {n}: √(2 ln n) = {s:.2f}, measured entropy there {h:.2f} nats "
            "(interpolated on the σ grid)"
            for n, s, h in (
                (50, self.collapse50, self.h_at_collapse50),
                (1000, self.collapse1000, self.h_at_collapse1000),
            )
        )


def sweep_summary(sweeps: Mapping[int, attention.EntropySweep]) -> SweepSummary:
    """:class:`SweepSummary` of ``sweeps`` keyed by the number of keys, which must hold
    50 and 1000, each sampled on a grid of σ ``(m,)`` that contains 1."""
    if not isinstance(sweeps, Mapping) or {50, 1000} - set(sweeps):
        raise ValueError("sweeps must map the key counts 50 and 1000 to their sweeps")
    for n, sweep in sweeps.items():
        if not isinstance(sweep, attention.EntropySweep):
            raise TypeError(f"sweeps[{n}] must be an EntropySweep")
    s50 = sweeps[50]
    i1 = int(np.argmin(np.abs(s50.sigmas - 1.0)))
    if abs(s50.sigmas[i1] - 1.0) > 1e-9:
        raise ValueError("the sweep of 50 keys must contain σ = 1")
    measured_1 = s50.mean[i1]
    approx_1 = attention.entropy_approximation(50, 1.0)
    sigma = {n: attention.collapse_sigma(n) for n in (50, 1000)}
    h_at = {
        n: np.interp(sigma[n], sweeps[n].sigmas, sweeps[n].mean) for n in (50, 1000)
    }
    return SweepSummary(
        h50_sigma1=measured_1,
        h50_sigma1_se=s50.se[i1],
        h50_sigma1_approx=approx_1,
        h50_sigma1_relerr_pct=100 * (measured_1 - approx_1) / measured_1,
        collapse50=sigma[50],
        collapse1000=sigma[1000],
        h_at_collapse50=h_at[50],
        h_at_collapse1000=h_at[1000],
        keys_at_collapse50=np.exp(h_at[50]),
        keys_at_collapse1000=np.exp(h_at[1000]),
    )


@dataclass(frozen=True)
class GrowthSummary:
    """Logits and entropy as W_Q grows by a factor c (first and last factor of
    :class:`numscale.attention.GrowthSweep`), without and with QK-normalization.

    ``plain_max_c1``, ``plain_max_cmax``: largest |logit| without normalization at the
    first and last factor; ``plain_entropy_c1``, ``plain_entropy_cmax``: mean
    entropy (nats) there; ``ln64``: ln n, the largest entropy over n keys (a
    constant of the head's size, not a measurement); ``ln_max``, ``ln_spread``:
    largest |logit| with LayerNorm QK-norm over the sweep and its range (max − min
    over factors); ``ln_entropy``: its entropy at the first factor; ``ln_bound64``:
    its bound √d_k (unit gains; a constant of the head's width); ``l2_max``,
    ``l2_spread``: the same for ℓ2 QK-norm (whose scale g is the caller's choice,
    passed to the sweep: not part of the record).
    """

    plain_max_c1: float
    plain_max_cmax: float
    plain_entropy_c1: float
    plain_entropy_cmax: float
    ln64: float
    ln_max: float
    ln_spread: float
    ln_entropy: float
    ln_bound64: float
    l2_max: float
    l2_spread: float


_MODES = ("none", "layernorm", "l2")


def _growth_sweeps(growth) -> dict:
    if not isinstance(growth, Mapping) or set(_MODES) - set(growth):
        raise ValueError(f"growth must map each of {_MODES} to a GrowthSweep")
    for mode in _MODES:
        if not isinstance(growth[mode], attention.GrowthSweep):
            raise TypeError(f"growth[{mode!r}] must be a GrowthSweep")
    return dict(growth)


def growth_summary(
    growth: Mapping[str, attention.GrowthSweep], n_keys: int, d_head: int
) -> GrowthSummary:
    """:class:`GrowthSummary` of the sweeps ``growth`` keyed ``"none"``,
    ``"layernorm"`` and ``"l2"`` (QK-norm modes) over ``n_keys`` keys and a head of
    width ``d_head`` (the shapes of the head the sweeps ran on: ``x.shape[0]`` and
    ``w_q.shape[1]``)."""
    growth = _growth_sweeps(growth)
    plain, ln_qk, l2_qk = growth["none"], growth["layernorm"], growth["l2"]
    return GrowthSummary(
        plain_max_c1=plain.max_logit[0],
        plain_max_cmax=plain.max_logit[-1],
        plain_entropy_c1=plain.entropy[0],
        plain_entropy_cmax=plain.entropy[-1],
        ln64=np.log(positive_int(n_keys, "n_keys")),
        ln_max=ln_qk.max_logit.max(),
        ln_spread=np.ptp(ln_qk.max_logit),
        ln_entropy=ln_qk.entropy[0],
        ln_bound64=attention.qk_norm_bound(d_head),
        l2_max=l2_qk.max_logit.max(),
        l2_spread=np.ptp(l2_qk.max_logit),
    )


def format_growth(growth: Mapping[str, attention.GrowthSweep]) -> str:
    """One line per QK-norm mode: largest |logit| and entropy at the first and the
    last factor."""
    return "\n".join(
        f"{mode:9s}: max |logit| {s.max_logit[0]:7.2f} → {s.max_logit[-1]:7.2f}, "
        f"entropy {s.entropy[0]:.3f} → {s.entropy[-1]:.3f} nats"
        for mode, s in _growth_sweeps(growth).items()
    )


# ------------------------------------------------------------------ the training runs

#: The variants the chapter trains, the plain one first (keys of ``runs``).
TRAINED = ("none", "qk_layernorm", "qk_l2", "sigma_reparam")


def _runs(runs) -> dict[str, TrainingRuns]:
    if not isinstance(runs, Mapping) or set(TRAINED) - set(runs):
        raise ValueError(f"runs must map each of {TRAINED} to its TrainingRuns")
    for name, r in runs.items():
        if not isinstance(r, TrainingRuns):
            raise TypeError(f"runs[{name!r}] must be a TrainingRuns")
    return dict(runs)


def format_runs(runs: Mapping[str, TrainingRuns]) -> str:
    """The table of every run: learning rate, seed, the largest |logit| of the batch
    at the first step, its largest value over all steps and at the last step, then
    the held-out squared error, entropy gap (nats), collapsed and locked fractions
    (``-`` when no row collapsed, so that the locked fraction is undefined)."""
    lines = [
        "                          max |logit| in batch            entropy gap",
        "variant        lr  seed   first     peak    final  test MSE      (nats)"
        "  collapsed  locked",
    ]
    for v, r in _runs(runs).items():
        for i in range(len(r.lrs)):
            locked = r.locked_fraction[i]
            locked_text = f"{locked:6.2f}" if np.isfinite(locked) else "     -"
            z = r.max_logit[:, i]
            lines.append(
                f"{v:13s} {r.lrs[i]:4.2f}  {r.seeds[i]:4d}"
                f"  {z[0]:6.1f}  {z.max():7.1f}  {z[-1]:7.1f}"
                f"  {r.test_mse[i]:8.4f}  {r.test_entropy_gap[i]:10.2f}"
                f"  {r.collapsed_fraction[i]:9.2f}  {locked_text}"
            )
    return "\n".join(lines)


@dataclass(frozen=True)
class TrainingSummary:
    """The training runs at a high and a low peak learning rate (``hi``/``lo``: runs
    above/below ``hi_lr``), plain logits (``"none"``) against the fixes.

    Plain runs: ``target_var`` (held-out target variance: the error of answering 0);
    ``hi_logit_min``/``hi_logit_max`` (final largest |logit|, over high-lr runs);
    ``hi_init_logit`` (largest first-step |logit|); ``hi_mse_min``/``hi_mse_max``
    (held-out squared error); ``hi_gap_min`` (smallest entropy gap to the optimum,
    nats); ``hi_collapsed_min`` (smallest % of collapsed held-out rows, rounded down
    to 0.1); ``hi_locked_min`` (smallest % of collapsed rows locked since mid-training);
    ``hi_loss_last`` (training loss over the last 10 steps) and ``hi_loss_last_pct``
    (that in % of ``target_var``); ``hi_loss_peak`` (smallest over runs of the largest
    10-step trailing mean of the loss); every high-lr run, plain or fixed:
    ``hi_loss_start_max`` (largest first-step training loss) and
    ``all_hi_loss_peak_min`` (smallest over runs of the largest 10-step trailing mean
    of the loss); high-lr σReparam runs: ``sigma_hi_loss_peak_max`` (largest over runs
    of that peak) and ``sigma_hi_logit_rise`` (largest over runs of the largest |logit|
    over all steps divided by the first step's; 1 when it never grows);
    low-lr runs: ``lo_mse_max`` (held-out squared
    error), ``lo_init_logit`` (largest first-step |logit|) and ``lo_logit_max``
    (largest **final** |logit|, at the last step).
    Fixes: ``fixed_hi_mse_max``, ``fixed_hi_logit_max`` (at any step),
    ``fixed_collapsed_max`` (%, any learning rate); ``ln_bound_init`` (√d_head, the
    LayerNorm QK-norm bound with unit gains) and ``ln_gain_bound_max`` (its largest
    learned bound); ``top_at_init_bound`` (top weight of a row with one logit at
    ``ln_bound_init`` and the other seq_len − 1 at 0); ``sigma_final_logit_max``
    (σReparam's largest final |logit|); ``l2_g_max`` (largest |g| of ℓ2 QK-norm).
    """

    target_var: float
    hi_logit_min: float
    hi_logit_max: float
    hi_init_logit: float
    hi_mse_min: float
    hi_mse_max: float
    hi_gap_min: float
    hi_collapsed_min: float
    hi_locked_min: float
    hi_loss_last: float
    hi_loss_last_pct: float
    hi_loss_peak: float
    hi_loss_start_max: float
    all_hi_loss_peak_min: float
    sigma_hi_loss_peak_max: float
    sigma_hi_logit_rise: float
    ln_bound_init: float
    lo_mse_max: float
    lo_init_logit: float
    lo_logit_max: float
    fixed_hi_mse_max: float
    fixed_hi_logit_max: float
    fixed_collapsed_max: float
    ln_gain_bound_max: float
    top_at_init_bound: float
    sigma_final_logit_max: float
    l2_g_max: float


def training_summary(
    runs: Mapping[str, TrainingRuns], hi_lr: float = 0.1
) -> TrainingSummary:
    """:class:`TrainingSummary` of ``runs`` (keys :data:`TRAINED`); runs with a peak
    learning rate above ``hi_lr`` are the high-learning-rate ones."""
    runs = _runs(runs)
    hi_lr = finite_float(hi_lr, "hi_lr", positive=True)
    plain = runs["none"]
    hi = plain.lrs > hi_lr
    if not hi.any() or hi.all():
        raise ValueError(f"hi_lr must split the plain runs' learning rates {plain.lrs}")
    fixes = [v for v in runs if v != "none"]
    fixed_hi = np.concatenate([runs[v].test_mse[runs[v].lrs > hi_lr] for v in fixes])
    fixed_hi_logit = max(runs[v].max_logit[:, runs[v].lrs > hi_lr].max() for v in fixes)
    last_loss = plain.loss[-10:, hi].mean()
    # per high-lr run of each variant: first-step loss, peak 10-step trailing mean
    hi_runs = {v: runs[v].lrs > hi_lr for v in runs}
    start = {v: runs[v].loss[0, hi_runs[v]] for v in runs}
    peak = {v: trailing_mean(runs[v].loss[:, hi_runs[v]], 10).max(axis=0) for v in runs}
    sigma = runs["sigma_reparam"]
    sigma_z = sigma.max_logit[:, hi_runs["sigma_reparam"]]  # (steps, high-lr runs)
    bound = np.sqrt(plain.config["d_head"])
    others = plain.config["seq_len"] - 1
    return TrainingSummary(
        target_var=plain.target_variance,
        hi_logit_min=plain.max_logit[-1, hi].min(),
        hi_logit_max=plain.max_logit[-1, hi].max(),
        hi_init_logit=plain.max_logit[0, hi].max(),
        hi_mse_min=plain.test_mse[hi].min(),
        hi_mse_max=plain.test_mse[hi].max(),
        hi_gap_min=plain.test_entropy_gap[hi].min(),
        # rounded down to 0.1 percentage point: the prose says "at least"
        hi_collapsed_min=np.floor(1000 * plain.collapsed_fraction[hi].min()) / 10,
        hi_locked_min=100 * plain.locked_fraction[hi].min(),
        hi_loss_last=last_loss,
        hi_loss_last_pct=100 * last_loss / plain.target_variance,
        hi_loss_peak=peak["none"].min(),
        hi_loss_start_max=max(x.max() for x in start.values()),
        all_hi_loss_peak_min=min(x.min() for x in peak.values()),
        sigma_hi_loss_peak_max=peak["sigma_reparam"].max(),
        sigma_hi_logit_rise=(sigma_z.max(axis=0) / sigma_z[0]).max(),
        ln_bound_init=bound,
        lo_mse_max=plain.test_mse[~hi].max(),
        lo_init_logit=plain.max_logit[0, ~hi].max(),
        lo_logit_max=plain.max_logit[-1, ~hi].max(),
        fixed_hi_mse_max=fixed_hi.max(),
        fixed_hi_logit_max=fixed_hi_logit,
        fixed_collapsed_max=100 * max(runs[v].collapsed_fraction.max() for v in fixes),
        ln_gain_bound_max=runs["qk_layernorm"].bound.max(),
        top_at_init_bound=np.exp(bound) / (np.exp(bound) + others),
        sigma_final_logit_max=runs["sigma_reparam"].max_logit[-1].max(),
        l2_g_max=runs["qk_l2"].bound.max(),
    )
