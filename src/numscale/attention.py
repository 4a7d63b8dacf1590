"""Attention entropy as the logits grow, and the bound that QK-normalization puts on them.

Shapes: a row of logits is ``(n,)``; a batch of rows ``(rows, n)``; token vectors are
``(n_tokens, d_model)``; projection matrices ``(d_model, d_head)``; attention logits
``(n_tokens, n_tokens)``. Sweeps return one value per entry of their parameter list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numscale import norms, softmax
from numscale.checks import as_float_array, finite_float, positive_int, rng_from

# --------------------------------------------------------------------------- entropy of iid logits


def entropy_approximation(n_keys: int, sigma: float | np.ndarray) -> np.ndarray:
    """ln n − σ²/2: the mean entropy (nats) of softmax over n iid N(0, σ²) logits, large n.

    Valid while many keys share the mass (e^{σ²} ≪ n); it reaches 0 at σ = √(2 ln n),
    see :func:`collapse_sigma`. Shape: that of ``sigma``.
    """
    n = positive_int(n_keys, "n_keys", minimum=2)
    s = as_float_array(
        np.asarray(sigma, dtype=float), "sigma", ndim=tuple(range(0, 33))
    )
    return np.log(n) - s**2 / 2


def entropy_finite_n_correction(n_keys: int, sigma: float | np.ndarray) -> np.ndarray:
    """The 1/n term of the mean entropy: E[H] ≈ ln n − σ²/2 + (σ² e^{σ²} − (e^{σ²} − 1)/2) / n.

    From the delta method applied to H = log Z − W/Z with Z = Σ e^{z_i},
    W = Σ z_i e^{z_i} (second order in the fluctuations of Z and W, whose relative
    variance is (e^{σ²} − 1)/n); the neglected terms are O(e^{2σ²}/n²). Shape: that of ``sigma``.
    """
    n = positive_int(n_keys, "n_keys", minimum=2)
    s2 = (
        as_float_array(
            np.asarray(sigma, dtype=float), "sigma", ndim=tuple(range(0, 33))
        )
        ** 2
    )
    return (s2 * np.exp(s2) - np.expm1(s2) / 2) / n


def collapse_sigma(n_keys: int) -> float:
    """√(2 ln n): the logit scale at which ln n − σ²/2 reaches zero (attention one-hot)."""
    n = positive_int(n_keys, "n_keys", minimum=2)
    return float(np.sqrt(2 * np.log(n)))


@dataclass(frozen=True)
class EntropySweep:
    """Result of :func:`iid_entropy_sweep`: one entry per logit scale σ."""

    sigmas: np.ndarray  #: (m,) logit standard deviations
    mean: np.ndarray  #: (m,) mean entropy (nats) over the rows
    se: np.ndarray  #: (m,) standard error of that mean: sample std / √rows
    n_keys: int
    rows: int


def iid_entropy_sweep(
    n_keys: int, sigmas: Sequence[float], rows: int, seed: int | np.random.Generator
) -> EntropySweep:
    """Mean softmax entropy of ``rows`` rows of ``n_keys`` iid N(0, σ²) logits, for each σ.

    The same standard-normal draws are scaled by every σ (common random numbers), so
    the curve is smooth in σ; each point's standard error is still that of ``rows``
    independent rows.
    """
    n = positive_int(n_keys, "n_keys", minimum=2)
    rows = positive_int(rows, "rows", minimum=2)
    s = as_float_array(np.asarray(sigmas, dtype=float), "sigmas", ndim=1)
    if np.any(s < 0):
        raise ValueError("sigmas must be >= 0")
    base = rng_from(seed).standard_normal((rows, n))
    ent = np.array([softmax.entropy(sig * base) for sig in s])  # (m, rows)
    return EntropySweep(
        sigmas=s,
        mean=ent.mean(axis=1),
        se=ent.std(axis=1, ddof=1) / np.sqrt(rows),
        n_keys=n,
        rows=rows,
    )


# --------------------------------------------------------------------------- QK-normalization
#
# Two different things go by the name "QK-norm":
#   * Henry et al. (2020): ℓ2-normalize q and k and multiply their dot product (a cosine)
#     by a learned scalar g instead of 1/√d_k, so |logit| ≤ |g|  (l2_qk_logits);
#   * Dehghani et al. (2023, ViT-22B) and Wortsman et al. (2023): a LayerNorm (with a
#     learned gain) on q and on k, keeping 1/√d_k, so |logit| ≤ √d_k·max|γ_q|·max|γ_k|
#     (layernorm_qk_logits).


def layernorm_qk_logits(
    q: np.ndarray, k: np.ndarray, gamma_q: np.ndarray, gamma_k: np.ndarray, eps: float
) -> np.ndarray:
    """LayerNorm on q and k, then q̂·k̂/√d_k: ``(n, d_k), (n, d_k) -> (n, n)``."""
    q_hat = gamma_q * norms.layer_norm(q, eps=eps)
    k_hat = gamma_k * norms.layer_norm(k, eps=eps)
    return q_hat @ k_hat.T / np.sqrt(q.shape[1])


def layernorm_qk_bound(d_k: int, gamma_q: np.ndarray, gamma_k: np.ndarray) -> float:
    """No logit of :func:`layernorm_qk_logits` exceeds this (Cauchy–Schwarz)."""
    return float(np.sqrt(d_k) * np.max(np.abs(gamma_q)) * np.max(np.abs(gamma_k)))


def l2_qk_logits(q: np.ndarray, k: np.ndarray, g: float) -> np.ndarray:
    """g · cos(q, k), ℓ2-normalized q and k, no 1/√d_k: ``(n, d_k) ×2 -> (n, n)``."""
    q_hat = q / np.linalg.norm(q, axis=-1, keepdims=True)
    k_hat = k / np.linalg.norm(k, axis=-1, keepdims=True)
    return g * (q_hat @ k_hat.T)


def l2_qk_bound(g: float) -> float:
    """No logit of :func:`l2_qk_logits` exceeds |g| (a cosine lies in [−1, 1])."""
    return abs(float(g))


def _qk_mode(qk_norm: bool | str) -> str:
    if isinstance(qk_norm, bool):
        return "layernorm" if qk_norm else "none"
    if qk_norm in ("none", "layernorm", "l2"):
        return qk_norm
    raise TypeError(
        f"qk_norm must be a bool or one of 'none', 'layernorm', 'l2', got {qk_norm!r}"
    )


def query_key_weights(
    w_q: np.ndarray, w_k: np.ndarray, d_model: int, *, ndim: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """``(w_q, w_k)`` as float arrays of one shape ``(d_model, d_k)`` (one head,
    ``ndim=2``) or ``(H, d_model, d_k)`` (every head, ``ndim=3``), or raise naming them.

    The query and key projections of a head must have the same shape, and their input
    axis (the second-last) must match the width ``d_model`` of the tokens they read.
    """
    w_q = as_float_array(w_q, "w_q", ndim=ndim)
    w_k = as_float_array(w_k, "w_k", ndim=ndim)
    if w_q.shape != w_k.shape or w_q.shape[-2] != d_model:
        heads = "H, " if ndim == 3 else ""
        raise ValueError(
            f"w_q and w_k must both have shape ({heads}d_model={d_model}, d_k), "
            f"got {w_q.shape} and {w_k.shape}"
        )
    return w_q, w_k


def attention_logits(
    x: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    *,
    qk_norm: bool | str = False,
    gamma_q: np.ndarray | None = None,
    gamma_k: np.ndarray | None = None,
    eps: float = 1e-5,
    g: float | None = None,
) -> np.ndarray:
    """Logits of one head: ``(n, d_model), (d_model, d_k) ×2 -> (n, n)``.

    q = x W_Q, k = x W_K. ``qk_norm``: ``False``/``"none"`` gives q·k/√d_k;
    ``True``/``"layernorm"`` gives :func:`layernorm_qk_logits` with gains ``gamma_q`` /
    ``gamma_k`` (default all ones); ``"l2"`` gives :func:`l2_qk_logits` with scalar ``g``
    (default √d_k, which gives logits of the scale of q·k/√d_k for random q and k).
    """
    x = as_float_array(x, "x", ndim=2)
    w_q, w_k = query_key_weights(w_q, w_k, x.shape[1])
    mode = _qk_mode(qk_norm)
    q, k = x @ w_q, x @ w_k
    d_k = q.shape[1]
    if mode == "none":
        return q @ k.T / np.sqrt(d_k)
    if mode == "l2":
        return l2_qk_logits(q, k, np.sqrt(d_k) if g is None else finite_float(g, "g"))
    eps = finite_float(eps, "eps")
    gq = np.ones(d_k) if gamma_q is None else as_float_array(gamma_q, "gamma_q", ndim=1)
    gk = np.ones(d_k) if gamma_k is None else as_float_array(gamma_k, "gamma_k", ndim=1)
    return layernorm_qk_logits(q, k, gq, gk, eps)


def qk_norm_bound(
    d_head: int, gamma_q: np.ndarray | None = None, gamma_k: np.ndarray | None = None
) -> float:
    """√d_k · max|γ_q| · max|γ_k|: the bound on LayerNorm-QK logits; gains default to ones.

    (Cauchy–Schwarz: |q̂·k̂| ≤ ‖q̂‖‖k̂‖ ≤ (max|γ_q|√d)(max|γ_k|√d).)
    """
    d = positive_int(d_head, "d_head")
    gq = np.ones(1) if gamma_q is None else as_float_array(gamma_q, "gamma_q", ndim=1)
    gk = np.ones(1) if gamma_k is None else as_float_array(gamma_k, "gamma_k", ndim=1)
    return layernorm_qk_bound(d, gq, gk)


def random_head(
    n_tokens: int, d_model: int, d_head: int, seed: int | np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token vectors ``x`` (n_tokens, d_model) ~ N(0, 1) and W_q, W_k (d_model, d_head) ~ N(0, 1/d_model).

    With these scales q and k have unit-variance entries, so the scaled logits start with
    standard deviation about 1.
    """
    n = positive_int(n_tokens, "n_tokens")
    dm = positive_int(d_model, "d_model")
    dh = positive_int(d_head, "d_head")
    rng = rng_from(seed)
    x = rng.standard_normal((n, dm))
    w_q = rng.standard_normal((dm, dh)) / np.sqrt(dm)
    w_k = rng.standard_normal((dm, dh)) / np.sqrt(dm)
    return x, w_q, w_k


@dataclass(frozen=True)
class GrowthSweep:
    """Result of :func:`query_growth_sweep`: one entry per growth factor."""

    factors: np.ndarray  #: (m,) the factor c multiplying W_q
    max_logit: np.ndarray  #: (m,) max |logit| over the n × n attention logits
    logit_std: np.ndarray  #: (m,) std of the logits
    entropy: np.ndarray  #: (m,) mean attention entropy (nats) over the n rows


def query_growth_sweep(
    x: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    factors: Sequence[float],
    *,
    qk_norm: bool | str,
    g: float | None = None,
) -> GrowthSweep:
    """Attention logits and entropy when W_Q is replaced by c·W_Q, for each c in ``factors``.

    ``qk_norm`` and ``g`` as in :func:`attention_logits` (unit gains; for ``"l2"`` the
    scale ``g``, default √d_k; ``g`` is unused by the other modes).
    """
    c = as_float_array(np.asarray(factors, dtype=float), "factors", ndim=1)
    if np.any(c <= 0):
        raise ValueError("factors must be > 0")
    rows = [
        attention_logits(x, ci * np.asarray(w_q), w_k, qk_norm=qk_norm, g=g) for ci in c
    ]
    return GrowthSweep(
        factors=c,
        max_logit=np.array([np.abs(r).max() for r in rows]),
        logit_std=np.array([r.std() for r in rows]),
        entropy=np.array([softmax.entropy(r).mean() for r in rows]),
    )
