"""Mixed-precision training: gradient range, loss scaling, update swamping, Adam's ε.

Everything runs on the CPU with torch's own float16/bfloat16 conversions, so what
"rounds to zero" or "is swamped" is what the format does, not a formula:

* :func:`classify` sorts values by what a cast to a 16-bit format makes of them
  (zero, subnormal, normal, overflow);
* :func:`parameter_gradients` runs one real backward pass of a
  :class:`numscale.models.llama.LlamaModel` (in its own format, with an optional loss
  scale);
* :class:`ScalerState` and :func:`update_scale` are the dynamic loss-scaling rule of
  ``torch.amp.GradScaler`` (back off on inf/NaN, grow after ``growth_interval`` good
  steps); :func:`train_fp16` runs it in a float16 fine-tuning loop with float32 master
  weights;
* :func:`swamped` tests whether ``w + u`` rounds back to ``w``; :func:`accumulate`
  applies one update many times with four rules (plain bfloat16, float32 master copy,
  Kahan-compensated bfloat16, stochastically rounded bfloat16).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale import fp
from numscale.checks import as_float_tensor, finite_float, positive_int
from numscale.models.next_token import mean_nll

#: The two 16-bit training formats.
HALF_FORMATS = (torch.float16, torch.bfloat16)
#: Update rules of :func:`accumulate`.
RULES = ("bfloat16", "fp32 master", "Kahan", "stochastic rounding")


def _check_format(dtype: object, name: str = "dtype") -> torch.dtype:
    if dtype not in HALF_FORMATS:
        raise TypeError(
            f"{name} must be torch.float16 or torch.bfloat16, got {dtype!r}"
        )
    return dtype  # type: ignore[return-value]


def _float32(value: object, name: str) -> torch.Tensor:
    """``value`` (a finite, non-empty float tensor) detached, as float32."""
    return as_float_tensor(value, name).detach().float()


# --------------------------------------------------------------------- ranges


def classify(values: torch.Tensor, dtype: torch.dtype) -> dict[str, float]:
    """Fractions of the *nonzero* entries of ``values`` (any shape, float32) that a cast
    to ``dtype`` makes zero, subnormal, normal, or infinite; keys ``zero``,
    ``subnormal``, ``normal``, ``overflow``, and ``n`` (number of nonzero entries)."""
    values = _float32(values, "values").flatten()
    dtype = _check_format(dtype)
    values = values[values != 0]
    if values.numel() == 0:
        raise ValueError("values must hold at least one nonzero entry")
    cast = values.to(dtype).float().abs()
    tiny = fp.format_info(dtype).smallest_normal
    zero = cast == 0
    overflow = torch.isinf(cast)
    subnormal = (cast > 0) & (cast < tiny)
    n = values.numel()
    return {
        "zero": float(zero.sum()) / n,
        "subnormal": float(subnormal.sum()) / n,
        "normal": float((~zero & ~overflow & ~subnormal).sum()) / n,
        "overflow": float(overflow.sum()) / n,
        "n": n,
    }


def classify_tensors(
    grads: dict[str, torch.Tensor], dtype: torch.dtype
) -> dict[str, dict[str, float]]:
    """:func:`classify` of every tensor of ``grads`` and of all of them together
    (key ``"all"``)."""
    if not grads:
        raise ValueError("grads must not be empty")
    table = {name: classify(g, dtype) for name, g in grads.items()}
    table["all"] = classify(
        torch.cat([g.flatten().float() for g in grads.values()]), dtype
    )
    return table


# --------------------------------------------------------------------- backward


def parameter_gradients(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    *,
    loss_scale: float = 1.0,
) -> tuple[float, dict[str, torch.Tensor]]:
    """One backward pass of ``loss_scale`` · (mean next-token loss,
    :func:`numscale.models.next_token.mean_nll`), in the model's own format. Returns the
    unscaled loss and every parameter's gradient as stored (still multiplied by
    ``loss_scale``), converted to float32 (exact for 16-bit formats)."""
    loss_scale = finite_float(loss_scale, "loss_scale", positive=True)
    model.zero_grad(set_to_none=True)
    loss = mean_nll(model(tokens), tokens, mask)
    (loss * loss_scale).backward()
    loss = loss.detach()
    grads = {
        name: p.grad.detach().float().clone()
        for name, p in model.named_parameters()
        if p.grad is not None
    }
    model.zero_grad(set_to_none=True)
    return float(loss), grads


def static_scale_sweep(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    scales: Sequence[float],
) -> dict[str, np.ndarray]:
    """Backward passes of ``model`` (a float16 model) at each static loss scale.

    Returns ``scale``, ``zero`` (fraction of gradient entries exactly zero),
    ``nonfinite`` (fraction inf or NaN) per scale."""
    if len(scales) == 0:
        raise ValueError("scales must not be empty")
    zero, nonfinite = [], []
    for scale in scales:
        _, grads = parameter_gradients(model, tokens, mask, loss_scale=scale)
        flat = torch.cat([g.flatten() for g in grads.values()])
        zero.append(float((flat == 0).float().mean()))
        nonfinite.append(float((~torch.isfinite(flat)).float().mean()))
    return {
        "scale": np.asarray(scales, dtype=np.float64),
        "zero": np.array(zero),
        "nonfinite": np.array(nonfinite),
    }


# --------------------------------------------------------------------- dynamic scaling


@dataclass(frozen=True)
class ScalerState:
    """A dynamic loss scaler: the current ``scale`` and the good steps since the last
    change (``torch.amp.GradScaler``'s growth tracker)."""

    scale: float
    good_steps: int = 0


def update_scale(
    state: ScalerState,
    found_inf: bool,
    *,
    growth_factor: float = 2.0,
    backoff_factor: float = 0.5,
    growth_interval: int = 2000,
) -> ScalerState:
    """The scale after one step (the rule of ``torch.amp.GradScaler.update``).

    A step whose scaled gradients hold inf or NaN is skipped and the scale backs off;
    after ``growth_interval`` good steps in a row the scale grows (if still finite).
    """
    if found_inf:
        return ScalerState(state.scale * backoff_factor, 0)
    good_steps = state.good_steps + 1
    if good_steps == growth_interval:
        grown = state.scale * growth_factor
        if math.isfinite(grown):
            return ScalerState(grown, 0)
        return ScalerState(state.scale, 0)
    return ScalerState(state.scale, good_steps)


def unscale(
    grads: dict[str, torch.Tensor], scale: float
) -> tuple[dict[str, torch.Tensor], bool]:
    """Gradients divided by ``scale`` (float32), and whether any entry is inf/NaN."""
    found_inf = any(not bool(torch.isfinite(g).all()) for g in grads.values())
    return {name: g.float() / scale for name, g in grads.items()}, found_inf


@dataclass(frozen=True)
class Fp16Run:
    """Per step of :func:`train_fp16`: the loss scale used, whether the step was
    skipped, the loss, and the fraction of gradient entries that were zero."""

    scale: np.ndarray
    skipped: np.ndarray
    loss: np.ndarray
    zero_fraction: np.ndarray


def train_fp16(
    weights: object,
    batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    *,
    init_scale: float,
    growth_interval: int,
    lr: float = 1e-4,
) -> Fp16Run:
    """Fine-tune a llama2.c model in float16 with float32 master weights, dynamic loss
    scaling and plain SGD, one step per ``(tokens, mask)`` batch. Deterministic."""
    from numscale.models import llama

    positive_int(growth_interval, "growth_interval")
    lr = finite_float(lr, "lr", positive=True)
    model = llama.LlamaModel(weights, dtype=torch.float16)
    master = {name: p.detach().float().clone() for name, p in model.named_parameters()}
    state = ScalerState(finite_float(init_scale, "init_scale", positive=True))
    record: dict[str, list] = {"scale": [], "skipped": [], "loss": [], "zero": []}
    for tokens, mask in batches:
        loss, scaled = parameter_gradients(model, tokens, mask, loss_scale=state.scale)
        grads, found_inf = unscale(scaled, state.scale)
        flat = torch.cat([g.flatten() for g in scaled.values()])
        record["scale"].append(state.scale)
        record["skipped"].append(found_inf)
        record["loss"].append(loss)
        record["zero"].append(float((flat == 0).float().mean()))
        if not found_inf:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    master[name] -= lr * grads[name]
                    p.copy_(master[name].to(torch.float16))
        state = update_scale(state, found_inf, growth_interval=growth_interval)
    return Fp16Run(
        np.array(record["scale"]),
        np.array(record["skipped"]),
        np.array(record["loss"]),
        np.array(record["zero"]),
    )


# --------------------------------------------------------------------- swamping


def swamped(w: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
    """True where the nonzero ``update`` is lost: ``w`` (bfloat16 or float16) plus
    ``update`` (float32), rounded back to ``w``'s format, is ``w`` again. The sum is
    formed in float32 and then rounded, as torch's CPU kernels do."""
    return ((w.float() + update).to(w.dtype) == w) & (update != 0)


def half_ulp(w: torch.Tensor) -> torch.Tensor:
    """Half the gap from ``|w|`` (a 16-bit tensor) to the next larger number of its
    format, float32: the largest update that rounding can swallow."""
    a = w.float().abs()
    up = torch.nextafter(a.to(w.dtype), torch.tensor(float("inf"), dtype=w.dtype))
    return (up.float() - a) / 2


def swamped_fraction(
    w: torch.Tensor, update: torch.Tensor, dtype: torch.dtype = torch.bfloat16
) -> float:
    """Fraction of the nonzero entries of ``update`` lost when added to ``w`` (float32
    weights stored in ``dtype``)."""
    w = _float32(w, "w")
    update = _float32(update, "update")
    if w.shape != update.shape:
        raise ValueError(f"w {tuple(w.shape)} and update {tuple(update.shape)} differ")
    lost = swamped(w.to(_check_format(dtype)), update)
    nonzero = int((update != 0).sum())
    if nonzero == 0:
        raise ValueError("update must hold at least one nonzero entry")
    return float(lost.sum()) / nonzero


def stochastic_round_bf16(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Round float32 ``x`` to bfloat16 up or down at random, with the probability of
    rounding up equal to the distance from the lower neighbour in units of the gap:
    add 16 random bits below bfloat16's last bit, then truncate them."""
    bits = x.float().contiguous().view(torch.int32)
    noise = torch.randint(0, 1 << 16, x.shape, generator=generator, dtype=torch.int32)
    truncated = (bits + noise) & ~0xFFFF
    return truncated.view(torch.float32).to(torch.bfloat16)


def kahan_step(
    w: torch.Tensor, compensation: torch.Tensor, update: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One compensated update ``w + update`` with every result rounded to bfloat16:
    ``compensation`` (bfloat16) carries what the last rounding of ``w`` lost."""
    y = (update - compensation.float()).to(torch.bfloat16)
    total = (w.float() + y.float()).to(torch.bfloat16)
    # exact (Sterbenz) when |update| <= |w|: total and w within a factor 2
    applied = (total.float() - w.float()).to(torch.bfloat16)
    compensation = (applied.float() - y.float()).to(torch.bfloat16)
    return total, compensation


def accumulate(
    w0: torch.Tensor, update: torch.Tensor, steps: int, rule: str, *, seed: int = 0
) -> torch.Tensor:
    """``w0`` (float32) after ``steps`` additions of the same ``update`` (float32), the
    weights held in bfloat16 by ``rule`` (one of :data:`RULES`). Returns the weights the
    model would use (bfloat16, as float32)."""
    w0 = _float32(w0, "w0")
    update = _float32(update, "update")
    positive_int(steps, "steps")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    w = w0.to(torch.bfloat16)
    master = w.float()
    compensation = torch.zeros_like(w)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        if rule == "bfloat16":
            w = (w.float() + update).to(torch.bfloat16)
        elif rule == "fp32 master":
            master = master + update
            w = master.to(torch.bfloat16)
        elif rule == "Kahan":
            w, compensation = kahan_step(w, compensation, update)
        else:
            w = stochastic_round_bf16(w.float() + update, generator)
    return w.float()


def realized_fraction(
    w0: torch.Tensor, w: torch.Tensor, update: torch.Tensor, steps: int
) -> dict[str, float]:
    """How much of ``steps`` · ``update`` the bfloat16 weights ``w`` moved from
    ``bfloat16(w0)``: ``moved`` = Σ(w − w0)·u / Σ steps·u² (1 when all of it arrived),
    ``relative_error`` = ‖(w − w0) − steps·u‖ / ‖steps·u‖, ``frozen`` = fraction of
    entries with nonzero update that did not move at all."""
    start = _float32(w0, "w0").to(torch.bfloat16).float().double()
    moved = _float32(w, "w").double() - start
    target = steps * _float32(update, "update").double()
    nonzero = target != 0
    return {
        "moved": float((moved * target).sum() / (target * target).sum()),
        "relative_error": float((moved - target).norm() / target.norm()),
        "frozen": float(((moved == 0) & nonzero).sum()) / int(nonzero.sum()),
    }


# --------------------------------------------------------------------- Adam's ε


def adam_first_update(grad: torch.Tensor, eps: float) -> torch.Tensor:
    """Adam's bias-corrected update direction after one step, m̂/(√v̂ + ε) with m̂ = g
    and v̂ = g²: g/(‖g‖ + ε) entrywise, ±1 where ε is negligible."""
    return grad / (grad.abs() + eps)


def eps_dominated_fraction(
    abs_grad: torch.Tensor, eps_values: Sequence[float]
) -> np.ndarray:
    """For each ε, the fraction of entries with √v̂ = ‖g‖ below ε (where ε, not the
    gradient, sets the update's size)."""
    a = _float32(abs_grad, "abs_grad").abs().flatten()
    return np.array(
        [
            float((a < finite_float(e, "eps", positive=True)).float().mean())
            for e in eps_values
        ]
    )


def scale_sensitivity(grad: torch.Tensor, eps: float, factor: float) -> float:
    """‖update(factor·g)‖ / ‖update(g)‖ − 1 for Adam's first update: 0 for a scale-free
    update, ≠ 0 once ε matters (``factor`` multiplies the loss, e.g. a loss scale left
    in by mistake, or a change of the loss's normalization)."""
    g = _float32(grad, "grad").double()
    base = adam_first_update(g, eps).norm()
    return float(adam_first_update(factor * g, eps).norm() / base - 1)
