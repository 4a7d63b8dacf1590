"""A toy training run for GPT-2's key bias: Adam against SGD on ``b_k``.

One attention head whose biases start at 0 learns to imitate a fixed teacher head that
has a query bias (so the student's ``b_q`` has something to learn and its ``b_k``
nothing: softmax ignores a key bias, whose gradient is rounding noise). Several copies
are trained from the same start on the same seeded batches, one per optimizer
(:data:`TOY_OPTIMIZERS`), and :class:`BiasRun` records, per step, the loss and the
gradients and drift of both biases. Chapter: ``book/gpt2_qk.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import finite_float, positive_int
from numscale.optim import adam_update


@dataclass(frozen=True)
class BiasRun:
    """Per-step records of :func:`train_key_bias_toy`, one row per optimizer.

    ``labels``: optimizer labels; ``loss``: (R, steps); ``grad_rms_key_bias``,
    ``grad_rms_query_bias``: RMS of b_k's and b_q's gradients, (R, steps);
    ``drift_key_bias``, ``drift_query_bias``: RMS of b_k and b_q after each step (both
    start at 0, so this is their distance from initialization), (R, steps).
    """

    labels: tuple[str, ...]
    loss: np.ndarray
    grad_rms_key_bias: np.ndarray
    grad_rms_query_bias: np.ndarray
    drift_key_bias: np.ndarray
    drift_query_bias: np.ndarray


#: Optimizers of the toy run: label -> (kind "adam" or "sgd", learning rate, Adam's ε).
TOY_OPTIMIZERS: dict[str, tuple[str, float, float]] = {
    "Adam, ε = 1e-8": ("adam", 1e-2, 1e-8),
    "Adam, ε = 1e-12": ("adam", 1e-2, 1e-12),
    "SGD": ("sgd", 0.3, 0.0),
}


def _check_optimizers(optimizers) -> dict[str, tuple[str, float, float]]:
    optimizers = dict(TOY_OPTIMIZERS if optimizers is None else optimizers)
    if not optimizers:
        raise ValueError("optimizers must name at least one optimizer")
    for label, spec in optimizers.items():
        if (
            isinstance(spec, str)
            or not isinstance(spec, Sequence)
            or len(spec) != 3
            or spec[0] not in ("adam", "sgd")
        ):
            raise ValueError(
                f"optimizers[{label!r}] must be (kind 'adam'|'sgd', lr, eps)"
            )
        finite_float(spec[1], f"optimizers[{label!r}] lr", positive=True)
        finite_float(spec[2], f"optimizers[{label!r}] eps")
    return optimizers


def train_key_bias_toy(
    steps: int = 200,
    seed: int = 0,
    *,
    d: int = 32,
    d_k: int = 16,
    n: int = 12,
    batch: int = 16,
    optimizers: dict[str, tuple[str, float, float]] | None = None,
    dtype: str = "float32",
) -> BiasRun:
    """Train one attention head (biases b_q, b_k, b_v start at 0) to imitate a teacher.

    The teacher head has a query bias, so the student's b_q has something to learn; b_k
    has nothing, since it cannot change the output. Every optimizer trains its own copy
    of the same initial student on the same seeded batches (``x`` standard normal,
    (batch, n, d); loss: mean squared error to the teacher's output), all copies in one
    batched forward and backward pass per step. ``optimizers`` maps a label to
    ``(kind, lr, eps)``, kind ``"adam"`` (:func:`numscale.optim.adam_update`) or
    ``"sgd"`` (default :data:`TOY_OPTIMIZERS`). ``dtype``: ``"float32"`` or
    ``"float64"``. Deterministic: one seeded ``torch.Generator``, no global RNG.
    """
    import torch

    steps = positive_int(steps, "steps")
    d, d_k = positive_int(d, "d"), positive_int(d_k, "d_k")
    n, batch = positive_int(n, "n", minimum=2), positive_int(batch, "batch")
    seed = positive_int(seed, "seed", minimum=0)
    optimizers = _check_optimizers(optimizers)
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape, std=1.0):
        draws = torch.randn(*shape, generator=gen, dtype=torch.float64)
        return (draws * std).to(tdtype)

    teacher = {
        "w_q": draw(d, d_k, std=2 / math.sqrt(d)),
        "w_k": draw(d, d_k, std=2 / math.sqrt(d)),
        "w_v": draw(d, d, std=1 / math.sqrt(d)),
        "b_q": draw(d_k),
    }
    n_rep = len(optimizers)
    start = {
        "w_q": draw(d, d_k, std=0.1),
        "w_k": draw(d, d_k, std=0.1),
        "w_v": draw(d, d, std=0.1),
    }
    shapes = {
        "w_q": (d, d_k),
        "w_k": (d, d_k),
        "w_v": (d, d),
        "b_q": (d_k,),
        "b_k": (d_k,),
        "b_v": (d,),
    }
    offsets = np.cumsum([0] + [math.prod(shape) for shape in shapes.values()])
    where = {name: slice(offsets[j], offsets[j + 1]) for j, name in enumerate(shapes)}
    # all parameters of each replica in one row (R, P): one optimizer update per step
    theta = torch.zeros(n_rep, int(offsets[-1]), dtype=tdtype)
    for name, value in start.items():
        theta[:, where[name]] = value.reshape(-1)  # biases stay at 0
    theta.requires_grad_()
    specs = list(optimizers.values())
    is_adam = torch.tensor([kind == "adam" for kind, _, _ in specs])[:, None]
    lr = torch.tensor([float(spec[1]) for spec in specs], dtype=tdtype)[:, None]
    eps = torch.tensor([float(spec[2]) for spec in specs], dtype=tdtype)[:, None]
    m, v2 = torch.zeros_like(theta), torch.zeros_like(theta)
    scale = 1 / math.sqrt(d_k)
    records = torch.empty(5, n_rep, steps, dtype=torch.float64)

    def part(t, name):  # replica-batched view of one parameter: (R, *shape)
        return t[:, where[name]].reshape(n_rep, *shapes[name])

    def rms(t, name):
        return t[:, where[name]].pow(2).mean(dim=1).sqrt()

    inputs = draw(steps, batch, n, d)  # every batch, drawn up front
    with torch.no_grad():
        zt = (inputs @ teacher["w_q"] + teacher["b_q"]) @ (inputs @ teacher["w_k"]).mT
        targets = torch.softmax(zt * scale, -1) @ (inputs @ teacher["w_v"])
    for step in range(1, steps + 1):
        x, target = inputs[step - 1], targets[step - 1]
        q = torch.einsum("bnd,rdk->rbnk", x, part(theta, "w_q"))
        k = torch.einsum("bnd,rdk->rbnk", x, part(theta, "w_k"))
        v = torch.einsum("bnd,rde->rbne", x, part(theta, "w_v"))
        q = q + part(theta, "b_q")[:, None, None]
        k = k + part(theta, "b_k")[:, None, None]
        v = v + part(theta, "b_v")[:, None, None]
        out = torch.softmax(q @ k.mT * scale, -1) @ v  # (R, batch, n, d)
        loss = ((out - target) ** 2).mean(dim=(1, 2, 3))  # (R,)
        (grad,) = torch.autograd.grad(loss.sum(), [theta])
        with torch.no_grad():
            records[0, :, step - 1] = loss
            records[1, :, step - 1] = rms(grad, "b_k")
            records[2, :, step - 1] = rms(grad, "b_q")
            update, m, v2 = adam_update(grad, m, v2, step, lr, eps)
            theta -= torch.where(is_adam, update, lr * grad)
            records[3, :, step - 1] = rms(theta, "b_k")
            records[4, :, step - 1] = rms(theta, "b_q")
    rec = records.numpy()
    return BiasRun(
        tuple(optimizers),
        rec[0].copy(),
        rec[1].copy(),
        rec[2].copy(),
        rec[3].copy(),
        rec[4].copy(),
    )
