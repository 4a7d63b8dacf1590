"""A tiny single-head attention model trained at a high learning rate (torch, CPU).

The model and task are deliberately small so a run takes a few seconds on one core:

* **Task ("running maximum")**: a sequence of ``seq_len`` tokens drawn uniformly from
  ``0 … vocab - 1``; the target at position ``i`` is the largest token among positions
  ``0 … i``. Attending to the largest token so far solves it, and the loss keeps falling
  as that attention gets sharper, so training pushes the attention logits up.
* **Model**: token + position embeddings of width ``d_model``; a LayerNorm; one causal
  attention head of width ``d_head`` (queries, keys, values, output projection) added to
  the residual; a final LayerNorm and a linear read-out to ``vocab`` classes. With
  ``qk_norm=True`` the queries and keys go through a LayerNorm (learnable gain, no bias)
  before their dot product, as in Henry et al. (2020) and Dehghani et al. (2023).
* **Optimizer**: Adam; the learning rate warms up linearly over ``warmup`` steps to its
  peak ``lr`` and decays to zero on a cosine (:func:`lr_factor`). Full determinism comes
  from one ``torch.Generator`` for the initial weights and one for the batches.

Shapes: a batch of tokens is ``(batch, seq_len)`` (int64); logits are
``(batch, seq_len, seq_len)`` per head; a log holds one value per step.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from numscale.checks import as_float_array, finite_float, positive_int


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


def running_max_batch(batch: int, seq_len: int, vocab: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random tokens ``(batch, seq_len)`` and targets: the running maximum along each row."""
    batch = positive_int(batch, "batch")
    seq_len = positive_int(seq_len, "seq_len")
    vocab = positive_int(vocab, "vocab", minimum=2)
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    tokens = torch.randint(0, vocab, (batch, seq_len), generator=generator)
    return tokens, torch.cummax(tokens, dim=1).values


class TinyAttention(nn.Module):
    """Embeddings → one causal attention head (optionally QK-normalized) → read-out."""

    def __init__(self, vocab: int, seq_len: int, d_model: int, d_head: int, qk_norm: bool,
                 generator: torch.Generator, init_std: float = 0.02) -> None:
        super().__init__()
        self.d_head = d_head
        self.qk_norm = qk_norm

        def param(*shape: int, std: float) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape, generator=generator) * std)

        self.tok = param(vocab, d_model, std=1.0)
        self.pos = param(seq_len, d_model, std=1.0)
        self.w_q = param(d_model, d_head, std=1 / math.sqrt(d_model))
        self.w_k = param(d_model, d_head, std=1 / math.sqrt(d_model))
        self.w_v = param(d_model, d_head, std=1 / math.sqrt(d_model))
        self.w_o = param(d_head, d_model, std=1 / math.sqrt(d_head))
        self.w_out = param(d_model, vocab, std=1 / math.sqrt(d_model))
        if qk_norm:
            self.ln_q = nn.LayerNorm(d_head, bias=False)
            self.ln_k = nn.LayerNorm(d_head, bias=False)
        self.ln_in = nn.LayerNorm(d_model)
        self.ln_f = nn.LayerNorm(d_model)
        self.register_buffer("mask", torch.triu(torch.ones(seq_len, seq_len, dtype=torch.bool), 1))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        q, k = x @ self.w_q, x @ self.w_k
        if self.qk_norm:
            q, k = self.ln_q(q), self.ln_k(k)
        return q @ k.transpose(-1, -2) / math.sqrt(self.d_head)

    def attention_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Pre-softmax logits q·k/√d_head, ``(batch, seq_len, seq_len)``, before the causal mask."""
        return self._logits(self.ln_in(self.tok[tokens] + self.pos[: tokens.shape[1]]))

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Class logits ``(batch, seq_len, vocab)`` and attention logits ``(batch, seq_len, seq_len)``."""
        h = self.tok[tokens] + self.pos[: tokens.shape[1]]
        x = self.ln_in(h)
        logits = self._logits(x)
        attn = torch.softmax(logits.masked_fill(self.mask, float("-inf")), dim=-1)
        h = h + (attn @ (x @ self.w_v)) @ self.w_o
        return self.ln_f(h) @ self.w_out, logits


def lr_factor(step: int, steps: int, warmup: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


@dataclass(frozen=True)
class TrainingLog:
    """Per-step record of one run (arrays of length ``steps``)."""

    loss: np.ndarray  #: training cross-entropy on the step's batch (nats)
    max_logit: np.ndarray  #: max |q·k/√d_head| over the batch's unmasked entries
    entropy: np.ndarray  #: mean attention entropy (nats) over the batch's rows
    gain: np.ndarray  #: max |γ| of the query and key LayerNorm gains (1 without QK-norm: unused)
    bound: np.ndarray  #: √d_head·max|γ_q|·max|γ_k| (the QK-norm bound; nan without QK-norm)
    final_accuracy: float  #: accuracy on a fresh held-out batch after training
    seconds: float  #: wall-clock time of the run
    config: dict = field(default_factory=dict)


def train_tiny_attention(
    *,
    qk_norm: bool,
    lr: float = 0.1,
    steps: int = 200,
    batch: int = 32,
    seq_len: int = 16,
    vocab: int = 16,
    d_model: int = 32,
    d_head: int = 32,
    warmup: int = 10,
    seed: int = 0,
) -> TrainingLog:
    """Train :class:`TinyAttention` on the running-maximum task with Adam (peak ``lr``); log every step.

    Deterministic: initial weights come from ``torch.Generator().manual_seed(seed)``,
    batches from a second generator seeded ``seed + 1``; the run uses one thread and
    ``torch.use_deterministic_algorithms(True)`` (both restored afterwards). Global
    torch RNG state is not touched.
    """
    if not isinstance(qk_norm, bool):
        raise TypeError(f"qk_norm must be a bool, got {type(qk_norm).__name__}")
    lr = finite_float(lr, "lr", positive=True)
    steps = positive_int(steps, "steps")
    batch = positive_int(batch, "batch")
    seq_len = positive_int(seq_len, "seq_len", minimum=2)
    vocab = positive_int(vocab, "vocab", minimum=2)
    d_model = positive_int(d_model, "d_model")
    d_head = positive_int(d_head, "d_head", minimum=2)
    warmup = positive_int(warmup, "warmup")
    seed = positive_int(seed, "seed", minimum=0)
    config = dict(qk_norm=qk_norm, lr=lr, steps=steps, batch=batch, seq_len=seq_len,
                  vocab=vocab, d_model=d_model, d_head=d_head, warmup=warmup, seed=seed)

    start = time.perf_counter()
    with deterministic_torch(1):
        model = TinyAttention(vocab, seq_len, d_model, d_head, qk_norm, torch.Generator().manual_seed(seed))
        data = torch.Generator().manual_seed(seed + 1)
        opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, steps, warmup))
        keep = ~model.mask
        logs = {k: np.empty(steps) for k in ("loss", "max_logit", "entropy", "gain", "bound")}
        for step in range(steps):
            tokens, target = running_max_batch(batch, seq_len, vocab, data)
            out, logits = model(tokens)
            loss = nn.functional.cross_entropy(out.reshape(-1, vocab), target.reshape(-1))
            with torch.no_grad():
                masked = logits.masked_fill(model.mask, float("-inf"))
                logp = torch.log_softmax(masked, dim=-1)
                p = logp.exp()
                ent = -(torch.where(keep, p * logp, torch.zeros(()))).sum(-1)
                logs["loss"][step] = loss.item()
                logs["max_logit"][step] = logits[:, keep].abs().max().item()
                logs["entropy"][step] = ent.mean().item()
                if qk_norm:
                    gq = model.ln_q.weight.abs().max().item()
                    gk = model.ln_k.weight.abs().max().item()
                    logs["gain"][step] = max(gq, gk)
                    logs["bound"][step] = math.sqrt(d_head) * gq * gk
                else:
                    logs["gain"][step] = 1.0
                    logs["bound"][step] = math.nan
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            tokens, target = running_max_batch(1024, seq_len, vocab, torch.Generator().manual_seed(seed + 2))
            accuracy = (model(tokens)[0].argmax(-1) == target).float().mean().item()
    return TrainingLog(final_accuracy=float(accuracy), seconds=time.perf_counter() - start,
                       config=config, **logs)


def running_mean(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over the last ``window`` entries (fewer at the start). ``(steps,) -> (steps,)``."""
    v = as_float_array(values, "values", ndim=1)
    window = positive_int(window, "window")
    csum = np.concatenate([[0.0], np.cumsum(v, dtype=float)])
    idx = np.arange(1, v.size + 1)
    start = np.maximum(idx - window, 0)
    return (csum[idx] - csum[start]) / (idx - start)
