"""Tests for numscale.optim: the one Adam step, against torch.optim.Adam."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numscale import optim

U64 = float(np.finfo(np.float64).eps) / 2  # unit roundoff of float64


def _grads(seed: int, steps: int, shape: tuple[int, ...]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [
        torch.randn(*shape, generator=gen, dtype=torch.float64) for _ in range(steps)
    ]


def _torch_adam(p0: torch.Tensor, grads, lr: float, betas, eps: float) -> torch.Tensor:
    """The reference: torch.optim.Adam fed the same gradients."""
    p = p0.clone().requires_grad_(True)
    opt = torch.optim.Adam([p], lr=lr, betas=betas, eps=eps)
    for g in grads:
        p.grad = g.clone()
        opt.step()
    return p.detach()


# Tolerance of the comparisons with torch.optim.Adam: both evaluate the same formula in
# float64 in a different order (torch: lerp for m, lr/(1 − β₁ᵗ) and √v/√(1 − β₂ᵗ) + ε),
# so each update agrees to a few roundings, ≲ 10·u relative; over 20 steps of size ≤ lr
# the parameters (|p| ≲ 3) differ by at most 20·(10·u·lr + u·3) ≈ 7e-15.
ATOL = 20 * (10 * U64 * 0.01 + U64 * 3)


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.9, 0.99)])
def test_adam_update_matches_torch_adam(betas):
    grads = _grads(0, 20, (7,))
    p0 = _grads(1, 1, (7,))[0]
    p = p0.clone()
    m, v = torch.zeros(7, dtype=torch.float64), torch.zeros(7, dtype=torch.float64)
    for step, g in enumerate(grads, start=1):
        update, m, v = optim.adam_update(g, m, v, step, 0.01, 1e-8, betas)
        p = p - update
    ref = _torch_adam(p0, grads, 0.01, betas, 1e-8)
    assert float((p - ref).abs().max()) <= ATOL
    assert float((p - p0).abs().max()) > 1e3 * ATOL  # the parameters did move


def test_adam_step_in_place_with_one_learning_rate_per_run():
    lrs = (0.01, 0.003)
    p0 = _grads(2, 1, (2, 3, 4))[0]
    grads = _grads(3, 20, (2, 3, 4))
    p = p0.clone().requires_grad_(True)
    moments = optim.zero_moments([p])
    for step, g in enumerate(grads, start=1):
        p.grad = g.clone()
        optim.adam_step([p], moments, torch.tensor(lrs, dtype=torch.float64), step)
    for run, lr in enumerate(lrs):  # each run is its own Adam with its own lr
        ref = _torch_adam(p0[run], [g[run] for g in grads], lr, (0.9, 0.999), 1e-8)
        assert float((p.detach()[run] - ref).abs().max()) <= ATOL
    m, v = moments[0]
    # the moments are the running averages of g and g² (weights (1 − β)·βᵏ), to rounding
    w1 = torch.tensor([0.1 * 0.9**k for k in range(19, -1, -1)], dtype=torch.float64)
    w2 = torch.tensor(
        [0.001 * 0.999**k for k in range(19, -1, -1)], dtype=torch.float64
    )
    stack = torch.stack(grads)
    # two float64 evaluations of a 20-term sum with Σ weights·|terms| ≲ 3 (|g| ≲ 3):
    # each within ~40·u·3 ≈ 1.3e-14 of exact
    tol = 2 * 40 * U64 * 3
    torch.testing.assert_close(
        m, torch.einsum("s,s...->...", w1, stack), rtol=0, atol=tol
    )
    torch.testing.assert_close(
        v, torch.einsum("s,s...->...", w2, stack**2), rtol=0, atol=3 * tol
    )


def test_first_update_is_lr_times_g_over_abs_g_plus_eps():
    # m̂ = g and v̂ = g² after one step, so the update is lr·g/(|g| + ε): ±lr where
    # |g| ≫ ε and ≈ lr·g/ε where |g| ≪ ε. A few roundings: 10·u relative.
    g = torch.tensor([1e3, -2.0, 1e-3, 3e-9, -1e-12], dtype=torch.float64)
    zero = torch.zeros_like(g)
    update, _, _ = optim.adam_update(g, zero, zero, 1, 0.5, 1e-8)
    torch.testing.assert_close(
        update, 0.5 * g / (g.abs() + 1e-8), rtol=10 * U64, atol=0
    )


def test_numpy_and_torch_give_the_same_update():
    grads = _grads(4, 5, (6,))
    m = v = np.zeros(6)
    mt = vt = torch.zeros(6, dtype=torch.float64)
    for step, g in enumerate(grads, start=1):
        u, m, v = optim.adam_update(g.numpy(), m, v, step, 0.01, 1e-8)
        ut, mt, vt = optim.adam_update(g, mt, vt, step, 0.01, 1e-8)
        # the same IEEE operations in the same order: equal to within one rounding
        np.testing.assert_allclose(u, ut.numpy(), rtol=4 * U64, atol=0)


def test_adam_step_keeps_the_in_place_arithmetic():
    # Callers that trained with m.mul_(β₁).add_(g, alpha=1 − β₁) and
    # v.mul_(β₂).addcmul_(g, g, value=1 − β₂) must get the same bits.
    g, m0, v0, p0 = (t.float() for t in _grads(5, 4, (1000,)))
    v0 = v0.abs()
    m, v = m0.clone(), v0.clone()
    m.mul_(0.9).add_(g, alpha=1 - 0.9)
    v.mul_(0.99).addcmul_(g, g, value=1 - 0.99)
    expected = p0 - 0.1 * (m / (1 - 0.9**3)) / ((v / (1 - 0.99**3)).sqrt() + 1e-8)
    p = p0.clone().requires_grad_(True)
    p.grad = g.clone()
    moments = [(m0.clone(), v0.clone())]
    optim.adam_step([p], moments, 0.1, 3, betas=(0.9, 0.99))
    assert torch.equal(moments[0][0], m) and torch.equal(moments[0][1], v)
    assert torch.equal(p.detach(), expected)


def test_adam_step_bad_input():
    p = torch.zeros(3, requires_grad=True)
    moments = optim.zero_moments([p])
    with pytest.raises(ValueError, match="gradient"):
        optim.adam_step([p], moments, 0.1, 1)
    p.grad = torch.ones(3)
    with pytest.raises(ValueError, match="step"):
        optim.adam_step([p], moments, 0.1, 0)
    with pytest.raises(TypeError, match="step"):
        optim.adam_step([p], moments, 0.1, 1.0)
    with pytest.raises(ValueError, match="moments"):
        optim.adam_step([p], [], 0.1, 1)
    with pytest.raises(ValueError, match="betas"):
        optim.adam_step([p], moments, 0.1, 1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="eps"):
        optim.adam_step([p], moments, 0.1, 1, eps=-1.0)
    with pytest.raises(ValueError, match="lr"):
        optim.adam_step([p], moments, -0.1, 1)
    assert torch.equal(p.detach(), torch.zeros(3))  # nothing moved on bad input
