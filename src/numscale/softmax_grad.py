"""The softmax Jacobian, its size as logits grow, and the cross-entropy gradient.

For p = softmax(z) the Jacobian is J = ∂p/∂z = diag(p) − p pᵀ (symmetric, n × n). Its
squared Frobenius norm has the closed form ‖J‖_F² = Σ_i p_i² [(1 − p_i)² + Σ_{j≠i} p_j²]
(= Σp² − 2Σp³ + (Σp²)²), which needs no n × n matrix. Shapes: logits ``(..., n)``;
Jacobians ``(..., n, n)``; norms ``(...)``.

‖J‖ is not the gradient that trains the query and key projections: for logits z = s·K q
the chain rule gives ∂L/∂q = s·Kᵀ J (V g) (:func:`query_gradient`), with the scale s in
front. :func:`query_gradient_sweep` measures it with and without s = 1/√d_k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from numscale.checks import (
    as_float_array,
    finite_float,
    positive_int,
    rng_from,
    spawn_rngs,
)
from numscale.softmax import softmax
from numscale.toy_training import deterministic_torch


def _logits(logits: np.ndarray) -> np.ndarray:
    return as_float_array(logits, "logits", ndim=tuple(range(1, 33)))


def _positive_dims(dims: Sequence[int]) -> np.ndarray:
    """``dims`` as a non-empty int array ``(k,)`` of positive values."""
    dims_arr = np.array([positive_int(int(x), "dims") for x in dims])
    if dims_arr.size == 0:
        raise ValueError("dims must not be empty")
    return dims_arr


def _stderr(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Standard error of the mean along ``axis``, the draws being independent:
    std (ddof 1) / √n. ``(..., n) -> (...)`` for the default axis."""
    return x.std(axis=axis, ddof=1) / np.sqrt(x.shape[axis])


def jacobian_from_probs(p: np.ndarray) -> np.ndarray:
    """J = diag(p) − p pᵀ along the last axis: ``(..., n) -> (..., n, n)``."""
    diag = p[..., :, None] * np.eye(p.shape[-1], dtype=p.dtype)
    outer = p[..., :, None] * p[..., None, :]
    return diag - outer


def jacobian(logits: np.ndarray) -> np.ndarray:
    """∂p/∂z for p = softmax(logits) along the last axis: ``(..., n) -> (..., n, n)``."""
    return jacobian_from_probs(softmax(_logits(logits)))


def jacobian_frobenius(logits: np.ndarray) -> np.ndarray:
    """‖diag(p) − p pᵀ‖_F per row, without forming the n × n matrix: ``(..., n) -> (...)``.

    Expanding the squares, ‖J‖_F² = Σ_i p_i² [(1 − p_i)² + Σ_{j≠i} p_j²] (diagonal plus
    off-diagonal entries). Written as Σp² − 2Σp³ + (Σp²)² it would cancel catastrophically
    for a nearly one-hot row; here every term is non-negative, and the two quantities
    that could cancel for the largest entry k, 1 − p_k and Σ_{j≠k} p_j², are summed
    directly over j ≠ k. Relative error a few n·eps for every row, however saturated, until
    the squares underflow (‖J‖_F below about 1e-154 in float64 returns 0).

    It is 0 for a one-hot p and √(n − 1)/n for a uniform p over n keys. J is positive
    semidefinite with trace 1 − Σp², so ‖J‖_F ≤ tr J < 1 for every p.
    """
    z = _logits(logits)
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    total = np.sum(e, axis=-1, keepdims=True)
    p = e / total
    top = np.argmax(z, axis=-1)[..., None]
    is_top = np.zeros(z.shape, dtype=bool)
    np.put_along_axis(is_top, top, True, axis=-1)
    p_rest = np.where(is_top, 0.0, p)  # p with the top entry removed
    rest_mass = np.sum(np.where(is_top, 0.0, e), axis=-1, keepdims=True) / total
    one_minus = np.where(is_top, rest_mass, 1.0 - p)
    sq = np.sum(p**2, axis=-1, keepdims=True)
    others_sq = np.where(is_top, np.sum(p_rest**2, axis=-1, keepdims=True), sq - p**2)
    return np.sqrt(np.sum(p**2 * (one_minus**2 + others_sq), axis=-1))


def autograd_jacobian(logits: np.ndarray) -> np.ndarray:
    """The Jacobian of ``torch.softmax`` from torch autograd, in float64: ``(n,) -> (n, n)``."""
    z = as_float_array(logits, "logits", ndim=1)
    zt = torch.from_numpy(z.astype(np.float64))
    return torch.autograd.functional.jacobian(
        lambda x: torch.softmax(x, dim=0), zt
    ).numpy()


def qk_logit_rows(
    d: int, n_keys: int, n_matrices: int, seed: int | np.random.Generator, scale: str
) -> np.ndarray:
    """Attention logit rows from ``n_matrices`` independent products Q Kᵀ.

    Each product has ``n_keys`` queries and ``n_keys`` keys with standard-normal entries
    of length ``d``; ``scale`` is ``"unscaled"`` (q·k) or ``"sqrt_d"`` (q·k/√d).
    Shape ``(n_matrices, n_keys, n_keys)``: rows of one matrix share their keys.
    """
    d = positive_int(d, "d")
    n_keys = positive_int(n_keys, "n_keys")
    n_matrices = positive_int(n_matrices, "n_matrices")
    if scale not in ("unscaled", "sqrt_d"):
        raise ValueError(f"scale must be 'unscaled' or 'sqrt_d', got {scale!r}")
    rng = rng_from(seed)
    q = rng.standard_normal((n_matrices, n_keys, d))
    k = rng.standard_normal((n_matrices, n_keys, d))
    s = q @ np.swapaxes(k, 1, 2)
    return s / np.sqrt(d) if scale == "sqrt_d" else s


@dataclass(frozen=True)
class NormSweep:
    """Mean ‖J‖_F per dimension and its standard error (over independent matrices)."""

    dims: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray


def jacobian_norm_sweep(
    dims: Sequence[int], scale: str, seed: int, n_keys: int = 50, n_matrices: int = 200
) -> NormSweep:
    """Mean Frobenius norm of the softmax Jacobian of attention rows, for each d in ``dims``.

    For each d, ``n_matrices`` independent Q Kᵀ products (``n_keys`` × ``n_keys``, see
    :func:`qk_logit_rows`) give ``n_matrices · n_keys`` rows. Rows of one matrix share
    keys and are correlated, so the standard error is that of the ``n_matrices``
    per-matrix means: std(means)/√n_matrices. Each d draws from its own child seed.
    """
    dims_arr = _positive_dims(dims)
    rngs = spawn_rngs(seed, dims_arr.size)
    means, errs = [], []
    for d, rng in zip(dims_arr, rngs):
        rows = qk_logit_rows(int(d), n_keys, n_matrices, rng, scale)
        per_matrix = jacobian_frobenius(rows).mean(axis=1)
        means.append(per_matrix.mean())
        errs.append(_stderr(per_matrix))
    return NormSweep(dims=dims_arr, mean=np.array(means), stderr=np.array(errs))


def crossover(dims: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """First d at which ``a − b`` changes sign, interpolated linearly in log d.

    ``dims``, ``a``, ``b``: ``(k,)``. Raises ``ValueError`` if the sign never changes.
    """
    x = np.log(as_float_array(np.asarray(dims, dtype=float), "dims", ndim=1))
    diff = as_float_array(a, "a", ndim=1) - as_float_array(b, "b", ndim=1)
    if diff.shape != x.shape:
        raise ValueError(
            f"dims, a and b must have the same length, got {x.size} and {diff.size}"
        )
    change = np.nonzero(np.sign(diff[:-1]) != np.sign(diff[1:]))[0]
    if change.size == 0:
        raise ValueError("a − b does not change sign over dims")
    i = int(change[0])
    t = diff[i] / (diff[i] - diff[i + 1])
    return float(np.exp(x[i] + t * (x[i + 1] - x[i])))


def cross_entropy_grad(logits: np.ndarray, target: int) -> np.ndarray:
    """Gradient of −log softmax(z)[target] with respect to z: p − e_y. Shape ``(n,)``.

    The target's entry p_y − 1 is computed as −Σ_{j≠y} p_j, not by subtracting 1: when
    the target wins with p_y ≈ 1, 1 − p_y by subtraction is rounding noise (often exactly
    0), while the sum of the other weights keeps its full relative precision.
    """
    z = as_float_array(logits, "logits", ndim=1)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)):
        raise TypeError(
            f"target must be an integer class index, got {type(target).__name__}"
        )
    if not 0 <= target < z.size:
        raise ValueError(f"target must be in [0, {z.size}), got {target}")
    g = softmax(z)
    others = np.arange(z.size) != target
    g[target] = -g[others].sum()
    return g


def jacobian_norm_vs_std(
    stds: Sequence[float], seed: int, n_keys: int = 50, n_rows: int = 2000
) -> NormSweep:
    """Mean ‖J‖_F of rows of ``n_keys`` iid N(0, σ²) logits, for each σ in ``stds``.

    One set of standard-normal rows ``(n_rows, n_keys)`` is drawn and scaled by each σ
    (common random numbers: the curve is smooth in σ). ``dims`` of the result holds
    the σ values; ``stderr`` is std/√n_rows (rows are independent).
    """
    sigmas = as_float_array(np.asarray(stds, dtype=float), "stds", ndim=1)
    if np.any(sigmas < 0):
        raise ValueError("stds must be >= 0")
    n_keys = positive_int(n_keys, "n_keys")
    n_rows = positive_int(n_rows, "n_rows", minimum=2)
    base = rng_from(seed).standard_normal((n_rows, n_keys))
    norms = np.stack([jacobian_frobenius(s * base) for s in sigmas])
    return NormSweep(
        dims=sigmas,
        mean=norms.mean(axis=1),
        stderr=_stderr(norms, axis=1),
    )


@dataclass(frozen=True)
class LogitScaleSweep:
    """Gradient sizes for one logit row multiplied by each factor in ``alphas``
    (the result of :func:`logit_scale_sweep`).

    ``jacobian``: ‖J‖_F of softmax(α z); ``ce_wrong`` / ``ce_right``: ‖p − y‖ when the
    target is the smallest / the largest logit of z. All shape ``(k,)``.
    """

    alphas: np.ndarray
    jacobian: np.ndarray
    ce_wrong: np.ndarray
    ce_right: np.ndarray


def logit_scale_sweep(logits: np.ndarray, alphas: Sequence[float]) -> LogitScaleSweep:
    """‖J‖_F and cross-entropy-gradient norms as one row ``(n,)`` is scaled by α ≥ 0."""
    z = as_float_array(logits, "logits", ndim=1)
    a = as_float_array(np.asarray(alphas, dtype=float), "alphas", ndim=1)
    if np.any(a < 0):
        raise ValueError("alphas must be >= 0")
    wrong, right = int(np.argmin(z)), int(np.argmax(z))
    jac = np.array([float(jacobian_frobenius(x * z)) for x in a])
    ce_w = np.array([np.linalg.norm(cross_entropy_grad(x * z, wrong)) for x in a])
    ce_r = np.array([np.linalg.norm(cross_entropy_grad(x * z, right)) for x in a])
    return LogitScaleSweep(alphas=a, jacobian=jac, ce_wrong=ce_w, ce_right=ce_r)


# --------------------------------------------------------------------------- crossover against n


@dataclass(frozen=True)
class Crossover:
    """Where unscaled logits (σ = √d) stop having a larger mean ‖J‖_F than scaled ones (σ = 1).

    For rows of ``n_keys`` iid N(0, σ²) logits. ``d_cross`` is the d beyond the peak with
    mean‖J‖(σ = √d) = mean‖J‖(σ = 1), ``d_cross_se`` its sampling standard error (delta
    method); both are nan when the curves do not cross below ``d_max`` (``crossed`` False).
    ``dims`` is the grid d = 2^-2, 2^-1, …, d_max; ``curve`` the mean ‖J‖_F(σ = √d) on it;
    ``gap`` = mean‖J‖(√d) − mean‖J‖(1) on it, with standard errors ``gap_se`` (paired rows).
    """

    n_keys: int
    n_rows: int
    norm_at_1: float
    sigma_peak: float
    peak_norm: float
    crossed: bool
    d_cross: float
    d_cross_se: float
    d_max: float
    dims: np.ndarray
    curve: np.ndarray
    gap: np.ndarray
    gap_se: np.ndarray


def iid_jacobian_crossover(
    n_keys: int, n_rows: int, seed: int | np.random.Generator, d_max: int = 2**14
) -> Crossover:
    """Find the crossover of mean ‖J‖_F(σ = √d) with mean ‖J‖_F(σ = 1) for one ``n_keys``.

    One set of standard-normal rows ``(n_rows, n_keys)`` is scaled by every σ (common random
    numbers). The peak is located on the grid d = 2^-2 … ``d_max`` (a power of two); the
    crossing by bisection in log σ between the peak and √d_max, to 0.1%.
    Its standard error propagates the paired per-row differences ‖J_r(σ*)‖ − ‖J_r(1)‖
    through the local slope of the mean curve.
    """
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    n_rows = positive_int(n_rows, "n_rows", minimum=2)
    d_max = positive_int(d_max, "d_max", minimum=2)
    if d_max & (d_max - 1):
        raise ValueError(f"d_max must be a power of two, got {d_max}")
    base = rng_from(seed).standard_normal((n_rows, n_keys))

    def norms(sigma: float) -> np.ndarray:
        return jacobian_frobenius(sigma * base)

    at_1 = norms(1.0)
    dims = 2.0 ** np.arange(-2, int(np.log2(d_max)) + 1)
    per_row = np.stack([norms(np.sqrt(d)) for d in dims])
    curve = per_row.mean(axis=1)
    peak = int(np.argmax(curve))
    gaps = per_row - at_1
    nan = float("nan")
    common = dict(
        n_keys=n_keys,
        n_rows=n_rows,
        norm_at_1=float(at_1.mean()),
        sigma_peak=float(np.sqrt(dims[peak])),
        peak_norm=float(curve[peak]),
        d_max=float(d_max),
        dims=dims,
        curve=curve,
        gap=gaps.mean(axis=1),
        gap_se=_stderr(gaps, axis=1),
    )
    if gaps[-1].mean() > 0:
        return Crossover(crossed=False, d_cross=nan, d_cross_se=nan, **common)
    lo, hi = np.sqrt(dims[peak]), np.sqrt(d_max)
    while hi / lo > 1.001:  # bisection in log σ
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if norms(mid).mean() > at_1.mean() else (lo, mid)
    sigma = np.sqrt(lo * hi)
    diff = norms(sigma) - at_1
    h = 1e-2 * sigma
    slope = (norms(sigma + h).mean() - norms(sigma - h).mean()) / (2 * h)
    sigma_se = _stderr(diff) / abs(slope)
    return Crossover(
        crossed=True,
        d_cross=float(sigma**2),
        d_cross_se=float(2 * sigma * sigma_se),
        **common,
    )


# --------------------------------------------------------------------------- gradient w.r.t. q


def attention_backward(
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    upstream: np.ndarray,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """∂L/∂z and ∂L/∂q for the output o = pᵀV, p = softmax(z), z = s·K q, g = ∂L/∂o.

    Shapes (leading batch axes allowed): q ``(d_k,)``, keys ``(n, d_k)``, values
    ``(n, d_v)``, upstream ``(d_v,)`` -> ∂L/∂z ``(n,)`` and ∂L/∂q ``(d_k,)``.
    """
    z = scale * np.einsum("...nd,...d->...n", keys, q)
    p = softmax(z)
    dp = np.einsum("...nv,...v->...n", values, upstream)  # ∂L/∂p = V g
    J = jacobian_from_probs(p)
    dz = np.einsum("...ij,...j->...i", J, dp)  # ∂L/∂z = J V g
    dq = scale * np.einsum("...nd,...n->...d", keys, dz)  # ∂L/∂q = s Kᵀ J V g
    return dz, dq


def query_gradient(
    q: np.ndarray,
    keys: np.ndarray,
    values: np.ndarray,
    upstream: np.ndarray,
    scale: float,
) -> np.ndarray:
    """∂L/∂q of :func:`attention_backward`, with input checks. Shapes as there."""
    q = as_float_array(q, "q", ndim=tuple(range(1, 33)))
    keys = as_float_array(keys, "keys", ndim=q.ndim + 1)
    values = as_float_array(values, "values", ndim=q.ndim + 1)
    upstream = as_float_array(upstream, "upstream", ndim=q.ndim)
    if keys.shape[-1] != q.shape[-1] or values.shape[-2] != keys.shape[-2]:
        raise ValueError(
            f"keys must be (n, d_k={q.shape[-1]}) and values (n, d_v), "
            f"got {keys.shape} and {values.shape}"
        )
    if upstream.shape[-1] != values.shape[-1]:
        raise ValueError(f"upstream must have length d_v = {values.shape[-1]}")
    _, dq = attention_backward(q, keys, values, upstream, finite_float(scale, "scale"))
    return dq


def effective_count(weights: np.ndarray) -> np.ndarray:
    """(Σ|w|)² / Σw² along the last axis: n for equal magnitudes, 1 for a single nonzero."""
    w = np.abs(weights)
    return np.sum(w, axis=-1) ** 2 / np.sum(w**2, axis=-1)


@dataclass(frozen=True)
class QueryGradientSweep:
    """:func:`query_gradient_sweep` results, one entry per d_k; ``*_se`` are standard errors."""

    dims: np.ndarray
    unscaled: np.ndarray  #: mean ‖∂L/∂q‖ with s = 1
    scaled: np.ndarray  #: mean ‖∂L/∂q‖ with s = 1/√d_k
    ratio: np.ndarray  #: unscaled / scaled (ratio of the means)
    ratio_se: np.ndarray
    #: mean effective number of keys receiving gradient, s = 1
    keys_unscaled: np.ndarray
    keys_scaled: np.ndarray  #: the same, s = 1/√d_k
    keys_unscaled_se: np.ndarray
    keys_scaled_se: np.ndarray
    unscaled_se: np.ndarray  #: standard error of ``unscaled`` (independent trials)
    scaled_se: np.ndarray  #: standard error of ``scaled``


def query_gradient_sweep(
    dims: Sequence[int], seed: int, n_keys: int = 50, d_v: int = 64, n_trials: int = 300
) -> QueryGradientSweep:
    """‖∂L/∂q‖ with and without 1/√d_k on the same draws, for each head width d_k.

    Each trial draws a query ``(d_k,)``, ``n_keys`` keys and values (width ``d_v``) and an
    upstream gradient, all standard normal. The effective number of keys receiving
    gradient is :func:`effective_count` of ∂L/∂z (the gradient reaching key j is
    s·(∂L/∂z_j)·q). Standard errors treat trials as independent (they are); the ratio's
    uses the delta method on the paired means.
    """
    dims_arr = _positive_dims(dims)
    n_keys = positive_int(n_keys, "n_keys", minimum=2)
    d_v = positive_int(d_v, "d_v")
    n_trials = positive_int(n_trials, "n_trials", minimum=2)
    columns: dict[str, list[float]] = {}  # field of QueryGradientSweep -> value per d
    for d, rng in zip(dims_arr, spawn_rngs(seed, dims_arr.size)):
        scales = {"unscaled": 1.0, "scaled": 1 / np.sqrt(d)}
        norms = {name: [] for name in scales}
        counts = {name: [] for name in scales}
        for chunk in np.array_split(np.arange(n_trials), max(1, n_trials // 50)):
            t = chunk.size
            q = rng.standard_normal((t, d))
            keys = rng.standard_normal((t, n_keys, d))
            values = rng.standard_normal((t, n_keys, d_v))
            upstream = rng.standard_normal((t, d_v))
            for name, s in scales.items():
                dz, dq = attention_backward(q, keys, values, upstream, s)
                norms[name].append(np.linalg.norm(dq, axis=-1))
                counts[name].append(effective_count(dz))
        row = {}
        for name in scales:
            norm, count = np.concatenate(norms[name]), np.concatenate(counts[name])
            row[name], row[f"{name}_se"] = norm.mean(), _stderr(norm)
            row[f"keys_{name}"], row[f"keys_{name}_se"] = count.mean(), _stderr(count)
        a, b = row["unscaled"], row["scaled"]
        ratio = a / b
        cov = np.cov(np.concatenate(norms["unscaled"]), np.concatenate(norms["scaled"]))
        var_ratio = (
            ratio**2
            * (cov[0, 0] / a**2 + cov[1, 1] / b**2 - 2 * cov[0, 1] / (a * b))
            / n_trials
        )
        row["ratio"], row["ratio_se"] = ratio, np.sqrt(var_ratio)
        for field, value in row.items():
            columns.setdefault(field, []).append(value)
    return QueryGradientSweep(
        dims=dims_arr, **{field: np.array(v) for field, v in columns.items()}
    )


# --------------------------------------------------------------------------- SGD vs Adam


def reparametrization_gap(
    optimizer: str,
    lr_power: float,
    d_k: int = 64,
    steps: int = 20,
    lr: float = 1e-2,
    seed: int = 0,
) -> float:
    """Is training with logits s·(x W_Q)·k the same as training (x W′)·k with W′ = s·W_Q?

    Trains W_Q (scaled model, s = 1/√d_k, init W₀, learning rate η) and W′ (unscaled,
    init s·W₀, learning rate s^lr_power · η) on the same fixed regression problem with
    ``optimizer`` ``"sgd"`` or ``"adam"`` (float64, full batch), and returns
    max|s·W_Q − W′| / max|W′| after ``steps`` steps: rounding-level when the two are the
    same trajectory. SGD matches for lr_power = 2, Adam (scale-free steps) for 1.
    """
    if optimizer not in ("sgd", "adam"):
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {optimizer!r}")
    d_k = positive_int(d_k, "d_k")
    steps = positive_int(steps, "steps")
    gen = torch.Generator().manual_seed(positive_int(seed, "seed", minimum=0))
    x = torch.randn(16, 32, generator=gen, dtype=torch.float64)
    keys = torch.randn(16, d_k, generator=gen, dtype=torch.float64)
    values = torch.randn(16, 8, generator=gen, dtype=torch.float64)
    target = torch.randn(16, 8, generator=gen, dtype=torch.float64)
    w0 = torch.randn(32, d_k, generator=gen, dtype=torch.float64) / np.sqrt(32)
    s = 1 / np.sqrt(d_k)
    runs = [(w0.clone(), s, lr), (s * w0.clone(), 1.0, s**lr_power * lr)]
    finals = []
    with deterministic_torch(1):  # tiny tensors: threads only add overhead
        for init, scale, rate in runs:
            w = init.requires_grad_(True)
            cls = torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam
            opt = cls([w], lr=rate)
            for _ in range(steps):
                attn = torch.softmax(scale * (x @ w) @ keys.T, dim=-1)
                loss = ((attn @ values - target) ** 2).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
            finals.append(w.detach())
    return float((s * finals[0] - finals[1]).abs().max() / finals[1].abs().max())
