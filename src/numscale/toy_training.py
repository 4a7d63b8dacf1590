"""A tiny single-head attention model whose best attention is diffuse (torch, CPU).

The point of the toy is to separate two things that a "running maximum" task confuses:
low attention entropy as a *solution* (one-hot attention on the maximum) and low entropy as
a *failure* (rows that lock onto keys the task does not want).

* **Task ("running mean")**: ``seq_len`` tokens drawn uniformly from ``0 … vocab - 1``;
  token ``t`` stands for the number ``v(t) = 2t/(vocab - 1) - 1`` in ``[-1, 1]``. The target
  at position ``i`` is the mean of ``v`` over positions ``0 … i`` (:func:`running_mean_batch`).
  The unique best attention row of position ``i`` is uniform over its ``i + 1`` keys
  (entropy ``ln(i + 1)``): any row that concentrates on a few keys is wrong.
* **Model**: token + position embeddings of width ``d_model``; a LayerNorm without gain;
  one causal attention head of width ``d_head``; a linear read-out of the head's output to
  one number per position; squared-error loss. The logits come in five variants
  (``VARIANTS``): ``"none"`` (q·k/√d_head), ``"qk_layernorm"`` (LayerNorm with a learned gain
  on q and k, keeping 1/√d_head, as in Dehghani et al. 2023 and Wortsman et al. 2023),
  ``"qk_l2"`` (ℓ2-normalized q and k times a learned scalar g, Henry et al. 2020),
  ``"softcap"`` (c·tanh(z/c) on the plain logits, as Gemma 2 does;
  :func:`numscale.logit_caps.soft_cap`) and ``"sigma_reparam"``
  (W_Q and W_K divided by their spectral norm and multiplied by a learned scalar, the
  σReparam of Zhai et al. 2023, applied here to the query and key projections only).
* **Batched runs**: one call trains ``len(lrs) × n_seeds`` independent models at once
  (every parameter has a leading run axis), with a hand-written Adam whose learning rate is
  a per-run vector (:func:`numscale.optim.adam_step`). Runs with the same seed index
  share initial weights and batches, so learning rates are compared on the same draws.
  The learning rate warms up linearly over ``warmup`` steps and decays to zero on a
  cosine (:func:`lr_factor`).

Shapes: tokens ``(runs, batch, seq_len)`` (int64); logits ``(runs, batch, seq_len, seq_len)``;
logs ``(steps, runs)``; end-of-training statistics ``(runs,)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from numscale.checks import as_float_array, finite_float, positive_int
from numscale.logit_caps import soft_cap
from numscale.norms import tensor_layer_norm
from numscale.optim import adam_step, zero_moments

#: The attention-logit variants a :class:`BatchedTinyAttention` can use.
VARIANTS = ("none", "qk_layernorm", "qk_l2", "softcap", "sigma_reparam")


@contextmanager
def deterministic_torch(num_threads: int = 1):
    """Run a block with deterministic algorithms and ``num_threads`` threads, then restore both."""
    num_threads = positive_int(num_threads, "num_threads")
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(num_threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old_det)
        torch.set_num_threads(old_threads)


def token_values(tokens: torch.Tensor, vocab: int) -> torch.Tensor:
    """The number each token stands for: v(t) = 2t/(vocab − 1) − 1, same shape, float32."""
    vocab = positive_int(vocab, "vocab", minimum=2)
    return 2.0 * tokens.float() / (vocab - 1) - 1.0


def running_mean_batch(
    shape: tuple[int, ...], vocab: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens of ``shape`` (last axis: positions) and their running-mean targets.

    The target at position i is mean(v(t_0), …, v(t_i)) with :func:`token_values`.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"generator must be a torch.Generator, got {type(generator).__name__}"
        )
    shape = tuple(positive_int(s, "shape") for s in shape)
    if not shape:
        raise ValueError("shape must have at least one axis (positions)")
    vocab = positive_int(vocab, "vocab", minimum=2)
    tokens = torch.randint(0, vocab, shape, generator=generator)
    counts = torch.arange(1, shape[-1] + 1, dtype=torch.float32)
    return tokens, torch.cumsum(token_values(tokens, vocab), dim=-1) / counts


def _unit_norm(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def sigma_reparam(weight: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """σReparam (Zhai et al. 2023): Ŵ = γ · W / σ_max(W), per run.

    ``weight`` ``(runs, d_in, d_out)``, ``gain`` ``(runs,)``; σ_max is the largest
    singular value (exact here; Zhai et al. use one power iteration per step).
    """
    sigma = torch.linalg.matrix_norm(weight, ord=2)
    return (gain / sigma)[:, None, None] * weight


class BatchedTinyAttention(torch.nn.Module):
    """``runs`` independent one-head models; every parameter has a leading run axis."""

    def __init__(
        self,
        runs: int,
        vocab: int,
        seq_len: int,
        d_model: int,
        d_head: int,
        variant: str,
        init: torch.Generator,
        cap: float = 5.0,
    ) -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant, self.d_head, self.cap = variant, d_head, cap

        def param(*shape: int, std: float) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.randn(runs, *shape, generator=init) * std)

        self.tok = param(vocab, d_model, std=1.0)
        self.pos = param(seq_len, d_model, std=1.0)
        self.w_q = param(d_model, d_head, std=d_model**-0.5)
        self.w_k = param(d_model, d_head, std=d_model**-0.5)
        self.w_v = param(d_model, d_head, std=d_model**-0.5)
        self.w_o = param(d_head, 1, std=d_head**-0.5)
        self.b_o = torch.nn.Parameter(torch.zeros(runs, 1, 1))
        if variant == "qk_layernorm":
            self.gamma_q = torch.nn.Parameter(torch.ones(runs, 1, 1, d_head))
            self.gamma_k = torch.nn.Parameter(torch.ones(runs, 1, 1, d_head))
        if variant == "qk_l2":  # g = √d_head: logits start at the scale of q·k/√d_head
            self.g = torch.nn.Parameter(torch.full((runs,), math.sqrt(d_head)))
        if variant == "sigma_reparam":  # γ = σ(W) at init: the same function as "none"
            with torch.no_grad():
                self.gain_q = torch.nn.Parameter(
                    torch.linalg.matrix_norm(self.w_q, ord=2)
                )
                self.gain_k = torch.nn.Parameter(
                    torch.linalg.matrix_norm(self.w_k, ord=2)
                )
        mask = torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), 1)
        self.register_buffer("mask", mask)

    def attention_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Pre-mask logits ``(runs, batch, L, L)`` of normalized inputs x ``(runs, batch, L, d)``."""
        w_q, w_k = self.w_q, self.w_k
        if self.variant == "sigma_reparam":
            w_q, w_k = sigma_reparam(w_q, self.gain_q), sigma_reparam(w_k, self.gain_k)
        q = torch.einsum("rbld,rdh->rblh", x, w_q)
        k = torch.einsum("rbld,rdh->rblh", x, w_k)
        if self.variant == "qk_layernorm":
            q = self.gamma_q * tensor_layer_norm(q, algorithm="formula")
            k = self.gamma_k * tensor_layer_norm(k, algorithm="formula")
        if self.variant == "qk_l2":
            cosine = _unit_norm(q) @ _unit_norm(k).transpose(-1, -2)
            return self.g[:, None, None, None] * cosine
        z = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        return soft_cap(z, self.cap) if self.variant == "softcap" else z

    def logit_bound(self) -> torch.Tensor:
        """The largest |logit| the variant allows, per run ``(runs,)`` (inf if unbounded)."""
        runs = self.w_q.shape[0]
        if self.variant == "qk_layernorm":
            gq = self.gamma_q.abs().amax(dim=(1, 2, 3))
            gk = self.gamma_k.abs().amax(dim=(1, 2, 3))
            return math.sqrt(self.d_head) * gq * gk
        if self.variant == "qk_l2":
            return self.g.abs()
        if self.variant == "softcap":
            return torch.full((runs,), self.cap)
        return torch.full((runs,), math.inf)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Predictions ``(runs, batch, L)``, attention weights and logits ``(runs, batch, L, L)``.

        The logits are those before the causal mask.
        """
        runs = torch.arange(tokens.shape[0])[:, None, None]
        h = self.tok[runs, tokens] + self.pos[:, None, : tokens.shape[-1]]
        x = tensor_layer_norm(h, algorithm="formula")  # no gain, ε = 1e-5
        z = self.attention_logits(x)
        attn = torch.softmax(z.masked_fill(self.mask, float("-inf")), dim=-1)
        v = torch.einsum("rbld,rdh->rblh", x, self.w_v)
        out = torch.einsum("rblh,rho->rblo", attn @ v, self.w_o)[..., 0] + self.b_o
        return out, attn, z


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def row_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each attention row, ``(..., L, L) -> (..., L)``; 0·log 0 = 0."""
    logp = torch.log(attn.clamp_min(1e-30))
    return -(torch.where(attn > 0, attn * logp, torch.zeros(()))).sum(-1)


@dataclass(frozen=True)
class TrainingRuns:
    """Per-step logs ``(steps, runs)`` and end-of-training statistics ``(runs,)``.

    Run ``r`` has learning rate ``lrs[r]`` and seed index ``seeds[r]``. Held-out statistics
    use one fresh probe batch (the same for every run); rows of position 0 (one key) are left
    out of the attention statistics, since their attention is fixed.
    """

    variant: str
    lrs: np.ndarray  #: (runs,) peak learning rate of each run
    seeds: np.ndarray  #: (runs,) seed index of each run
    loss: np.ndarray  #: (steps, runs) training squared error of the step's batch
    max_logit: (
        np.ndarray
    )  #: (steps, runs) max |logit| over the batch's unmasked entries
    entropy: np.ndarray  #: (steps, runs) mean attention entropy (nats), rows i ≥ 1
    bound: np.ndarray  #: (steps, runs) the variant's logit bound (inf if none)
    test_mse: np.ndarray  #: (runs,) held-out squared error
    test_entropy_gap: (
        np.ndarray
    )  #: (runs,) mean of ln(i + 1) − H over held-out rows (nats)
    collapsed_fraction: np.ndarray  #: (runs,) held-out rows with top weight > 0.9
    collapsed_mse: np.ndarray  #: (runs,) squared error of those rows (nan if none)
    diffuse_mse: np.ndarray  #: (runs,) squared error of the other rows (nan if none)
    locked_fraction: (
        np.ndarray
    )  #: (runs,) collapsed rows whose top key was the same at half time
    target_variance: (
        float  #: variance of the held-out targets (an MSE of a constant guess)
    )
    seconds: float
    config: dict = field(default_factory=dict)


def _attention_stats(attn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Top weight and top key of rows i ≥ 1: two ``(runs, batch, L − 1)`` tensors."""
    top = attn[..., 1:, :].max(dim=-1)
    return top.values, top.indices


def train_runs(
    *,
    variant: str,
    lrs: Sequence[float],
    n_seeds: int = 2,
    steps: int = 150,
    batch: int = 32,
    seq_len: int = 16,
    vocab: int = 16,
    d_model: int = 32,
    d_head: int = 32,
    warmup: int = 10,
    cap: float = 5.0,
    seed: int = 0,
) -> TrainingRuns:
    """Train ``len(lrs) × n_seeds`` models of one ``variant`` on the running-mean task.

    Deterministic: initial weights come from ``torch.Generator().manual_seed(seed)``, batches
    from a second generator seeded ``seed + 1`` and the probe batch from ``seed + 2``; the run
    uses one thread and ``torch.use_deterministic_algorithms(True)`` (both restored after).
    Global torch RNG state is not touched.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    lr_list = [finite_float(x, "lrs", positive=True) for x in lrs]
    if not lr_list:
        raise ValueError("lrs must not be empty")
    n_seeds = positive_int(n_seeds, "n_seeds")
    steps = positive_int(steps, "steps", minimum=2)
    batch, vocab = positive_int(batch, "batch"), positive_int(vocab, "vocab", minimum=2)
    seq_len = positive_int(seq_len, "seq_len", minimum=2)
    d_model, d_head = (
        positive_int(d_model, "d_model"),
        positive_int(d_head, "d_head", minimum=2),
    )
    warmup, seed = positive_int(warmup, "warmup"), positive_int(seed, "seed", minimum=0)
    cap = finite_float(cap, "cap", positive=True)
    config = dict(
        variant=variant,
        lrs=lr_list,
        n_seeds=n_seeds,
        steps=steps,
        batch=batch,
        seq_len=seq_len,
        vocab=vocab,
        d_model=d_model,
        d_head=d_head,
        warmup=warmup,
        cap=cap,
        seed=seed,
    )
    n_lr, runs = len(lr_list), len(lr_list) * n_seeds
    lr_vec = torch.tensor(lr_list).repeat_interleave(n_seeds)
    start = time.perf_counter()
    with deterministic_torch(1):
        model = BatchedTinyAttention(
            n_seeds,
            vocab,
            seq_len,
            d_model,
            d_head,
            variant,
            torch.Generator().manual_seed(seed),
            cap,
        )
        with (
            torch.no_grad()
        ):  # the same n_seeds initializations for every learning rate
            for p in model.parameters():
                p.data = p.data.repeat(n_lr, *[1] * (p.dim() - 1))
        params = list(model.parameters())
        moments = zero_moments(params)
        data = torch.Generator().manual_seed(seed + 1)
        probe, probe_target = running_mean_batch(
            (1, 256, seq_len), vocab, torch.Generator().manual_seed(seed + 2)
        )
        probe = probe.expand(runs, -1, -1)
        keep = ~model.mask
        logs = {
            k: np.empty((steps, runs))
            for k in ("loss", "max_logit", "entropy", "bound")
        }
        for step in range(steps):
            tokens, target = running_mean_batch((n_seeds, batch, seq_len), vocab, data)
            tokens, target = tokens.repeat(n_lr, 1, 1), target.repeat(n_lr, 1, 1)
            out, attn, z = model(tokens)
            per_run = (out - target).pow(2).mean(dim=(1, 2))
            with torch.no_grad():
                logs["loss"][step] = per_run.numpy()
                logs["max_logit"][step] = z[:, :, keep].abs().amax(dim=(1, 2)).numpy()
                logs["entropy"][step] = (
                    row_entropy(attn)[..., 1:].mean(dim=(1, 2)).numpy()
                )
                logs["bound"][step] = model.logit_bound().numpy()
            if step == steps // 2:
                with torch.no_grad():
                    half_top = _attention_stats(model(probe)[1])[1]
            for p in params:
                p.grad = None
            per_run.sum().backward()  # runs share no parameters: each gets its own gradient
            adam_step(
                params, moments, lr_vec * lr_factor(step, steps, warmup), step + 1
            )
        with torch.no_grad():
            out, attn, _ = model(probe)
            err = (out - probe_target).pow(2)[..., 1:]
            top_w, top_k = _attention_stats(attn)
            collapsed = top_w > 0.9
            ln_keys = torch.log(torch.arange(2, seq_len + 1, dtype=torch.float32))
            gap = (ln_keys - row_entropy(attn)[..., 1:]).mean(dim=(1, 2))
            n_col = collapsed.sum(dim=(1, 2)).float()
            n_dif = (~collapsed).sum(dim=(1, 2)).float()
            col_mse = torch.where(collapsed, err, 0).sum(dim=(1, 2)) / n_col
            dif_mse = torch.where(~collapsed, err, 0).sum(dim=(1, 2)) / n_dif
            locked = (collapsed & (top_k == half_top)).sum(dim=(1, 2)) / n_col
            test_mse = (out - probe_target).pow(2).mean(dim=(1, 2))
            target_var = float(probe_target[0].var())
    return TrainingRuns(
        variant=variant,
        lrs=lr_vec.numpy().astype(float),
        seeds=np.tile(np.arange(n_seeds), n_lr),
        **logs,
        test_mse=test_mse.numpy().astype(float),
        test_entropy_gap=gap.numpy().astype(float),
        collapsed_fraction=(n_col / (n_col + n_dif)).numpy().astype(float),
        collapsed_mse=col_mse.numpy().astype(float),
        diffuse_mse=dif_mse.numpy().astype(float),
        locked_fraction=locked.numpy().astype(float),
        target_variance=target_var,
        seconds=time.perf_counter() - start,
        config=config,
    )


def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` entries (fewer at the start), along axis 0.

    ``(steps,) -> (steps,)`` or ``(steps, runs) -> (steps, runs)``.
    """
    v = as_float_array(values, "values", ndim=(1, 2))
    window = positive_int(window, "window")
    csum = np.concatenate(
        [np.zeros((1, *v.shape[1:])), np.cumsum(v, axis=0, dtype=float)]
    )
    idx = np.arange(1, v.shape[0] + 1)
    start = np.maximum(idx - window, 0)
    count = (idx - start).reshape(-1, *[1] * (v.ndim - 1))
    return (csum[idx] - csum[start]) / count
