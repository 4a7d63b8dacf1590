"""Adam (Kingma & Ba 2015, Algorithm 1): the one implementation the toys train with.

:func:`adam_update` is one step as a pure function of the gradient and the two running
moments (NumPy arrays or torch tensors, any shape; the learning rate and ε broadcast, so
a batch of runs can have one of each per run). :func:`adam_step` applies it in place to
a list of torch parameters after ``backward()``, with moments from :func:`zero_moments`.
"""

from __future__ import annotations

from collections.abc import Sequence

from numscale.checks import finite_float, positive_int


def adam_update(grad, m, v, step: int, lr, eps, betas=(0.9, 0.999)):
    """One Adam step (Kingma & Ba): returns ``(update, m, v)``; the parameter moves
    by ``-update``. ``step`` counts from 1. Works on torch tensors or NumPy arrays;
    lr and eps broadcast."""
    b1, b2 = betas
    m = b1 * m + (1 - b1) * grad
    v = b2 * v + (1 - b2) * grad**2
    m_hat = m / (1 - b1**step)  # bias-corrected running mean
    v_hat = v / (1 - b2**step)  # ... and running mean square
    return lr * m_hat / (v_hat**0.5 + eps), m, v  # ≈ lr·sign-like step if |g| ≫ ε


def _in_place_moments(grad, m, v, b1: float, b2: float) -> None:
    """Adam's moments updated in place as in-place torch code forms them,
    ``m.mul_(β₁).add_(g, alpha=1 − β₁)`` and ``v.mul_(β₂).addcmul_(g, g, value=1 − β₂)``:
    β·m is rounded, then added to (1 − β)·g with one fused multiply-add (for v, the
    rounded (1 − β)·g times g); the same maths as :func:`adam_update`, one rounding
    fewer per moment."""
    m.mul_(b1).add_(grad, alpha=1 - b1)
    v.mul_(b2).addcmul_(grad, grad, value=1 - b2)


def zero_moments(params: Sequence) -> list[tuple]:
    """Adam's initial state: zero tensors (m, v) shaped like each parameter."""
    import torch

    return [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]


def adam_step(
    params: Sequence,
    moments: Sequence[tuple],
    lr,
    step: int,
    *,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> None:
    """Update torch ``params`` in place by :func:`adam_update` of their ``.grad``.

    ``moments`` holds one (m, v) pair per parameter (:func:`zero_moments`), updated in
    place. ``step`` counts from 1. ``lr`` is a float, or a tensor ``(runs,)`` of one
    learning rate per run when every parameter has a leading run axis. The moments are
    formed in place (``_in_place_moments``), as the toys' in-place torch code formed
    them, so their runs are unchanged bit for bit. No autograd graph is recorded.
    """
    import torch

    step = positive_int(step, "step")
    b1, b2 = (finite_float(b, "betas") for b in betas)
    if not (0 <= b1 < 1 and 0 <= b2 < 1):
        raise ValueError(f"betas must lie in [0, 1), got {tuple(betas)}")
    if finite_float(eps, "eps") < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if len(moments) != len(params):
        raise ValueError(
            f"moments must hold one (m, v) pair per parameter: got {len(moments)} "
            f"for {len(params)} parameters"
        )
    if not isinstance(lr, torch.Tensor):
        lr = finite_float(lr, "lr", positive=True)
    with torch.no_grad():
        for p, (m, v) in zip(params, moments):
            if p.grad is None:
                raise ValueError("every parameter must have a gradient (.grad is None)")
            rate = lr.reshape(-1, *[1] * (p.dim() - 1)) if torch.is_tensor(lr) else lr
            _in_place_moments(p.grad, m, v, b1, b2)
            m_hat = m / (1 - b1**step)  # then as adam_update
            v_hat = v / (1 - b2**step)
            p.sub_(rate * m_hat / (v_hat**0.5 + eps))
