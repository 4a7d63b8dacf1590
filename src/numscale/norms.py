"""LayerNorm and RMSNorm: the one home of both layers, in NumPy and in torch.

Every function normalizes over the last axis: ``x`` has shape ``(..., d)`` and the
output has the same shape; ``gamma`` and ``beta`` have shape ``(d,)``. The NumPy
helpers (:func:`layer_norm`, :func:`rms_norm`) compute in the input's floating dtype;
:func:`tensor_layer_norm` and :func:`tensor_rms_norm` take and return torch tensors
(differentiable), with torch's kernel or the NumPy helpers' order of operations;
:func:`torch_layer_norm` and :func:`torch_rms_norm` run torch's kernels on NumPy input
for comparison.
"""

from __future__ import annotations

import numpy as np

from numscale.checks import as_float_array, as_float_tensor, finite_float, positive_int

#: GPT-2's LayerNorm epsilon (``layer_norm_epsilon`` in its config).
GPT2_EPS = 1e-5


def _affine_params(gamma, beta, d: int, dtype) -> tuple:
    """γ and β as arrays of shape (d,) in ``dtype`` (1 and 0 when not given)."""
    params = []
    for value, name, default in ((gamma, "gamma", 1.0), (beta, "beta", 0.0)):
        if value is None:
            params.append(np.asarray(default, dtype=dtype))
            continue
        vector = as_float_array(value, name, ndim=1)
        if vector.shape != (d,):
            raise ValueError(f"{name} must have shape ({d},), got {vector.shape}")
        params.append(vector.astype(dtype, copy=False))
    return params[0], params[1]


def _eps(eps: float) -> float:
    eps = finite_float(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return eps


def _layer_norm_core(x: np.ndarray, gamma, beta, eps) -> np.ndarray:
    """Equation eq-layernorm over the last axis, in the dtype of ``x`` (two passes)."""
    mu = x.mean(axis=-1, keepdims=True)
    centred = x - mu
    var = np.mean(centred**2, axis=-1, keepdims=True)  # biased variance
    x_hat = centred / np.sqrt(var + eps)
    return x_hat * gamma + beta


def _rms_norm_core(x: np.ndarray, gamma, eps) -> np.ndarray:
    """Equation eq-rmsnorm over the last axis: no centring, no β."""
    mean_square = np.mean(x**2, axis=-1, keepdims=True)
    return x / np.sqrt(mean_square + eps) * gamma


def layer_norm(x, gamma=None, beta=None, eps: float = GPT2_EPS) -> np.ndarray:
    """LN(x) = γ ⊙ (x − mean(x)) / √(var(x) + ε) + β over the last axis.

    ``var`` is the biased (population) variance, as in torch and GPT-2. Without
    ``gamma``/``beta`` the output is the bare normalization: mean 0 and, when
    var ≫ ε, L2 norm √d along the last axis. Shape ``(..., d) -> (..., d)``;
    computed in the floating dtype of ``x`` (γ, β and ε are cast to it).
    """
    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    gamma, beta = _affine_params(gamma, beta, x.shape[-1], x.dtype)
    return _layer_norm_core(x, gamma, beta, np.asarray(_eps(eps), dtype=x.dtype))


def rms_norm(x, gamma=None, eps: float = GPT2_EPS) -> np.ndarray:
    """RMSNorm(x) = γ ⊙ x / √(mean(x²) + ε) over the last axis (no centring, no β).

    Shape ``(..., d) -> (..., d)``, in the floating dtype of ``x``.
    """
    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    gamma, _ = _affine_params(gamma, None, x.shape[-1], x.dtype)
    return _rms_norm_core(x, gamma, np.asarray(_eps(eps), dtype=x.dtype))


def layer_norm_gain(input_std, eps: float = GPT2_EPS) -> np.ndarray:
    """Output RMS of the bare LayerNorm for an input of standard deviation ``input_std``.

    σ / √(σ² + ε): 1 when σ² ≫ ε, and σ/√ε (a fixed *linear* scaling by 1/√ε, not a
    normalization) when σ² ≪ ε. Shape: that of ``input_std``.
    """
    s = as_float_array(input_std, "input_std", ndim=tuple(range(0, 33)))
    if np.any(s < 0):
        raise ValueError("input_std must be >= 0")
    eps = _eps(eps)
    return s / np.sqrt(s**2 + eps)


def rms_norm_output_mean(mean, std) -> np.ndarray:
    """Expected mean of RMSNorm's output (before γ) for iid inputs N(mean, std²), large d.

    mean / √(mean² + std²): zero only for centred input. Broadcasts its arguments.
    """
    m = as_float_array(mean, "mean", ndim=tuple(range(0, 33)))
    s = as_float_array(std, "std", ndim=tuple(range(0, 33)))
    if np.any(s < 0):
        raise ValueError("std must be >= 0")
    if np.any((m == 0) & (s == 0)):
        raise ValueError("mean and std must not both be 0")
    return m / np.sqrt(m**2 + s**2)


#: How :func:`tensor_layer_norm` and :func:`tensor_rms_norm` evaluate the same maths:
#: ``"torch"`` runs torch's own kernel (what ``torch.nn.LayerNorm``/``RMSNorm`` run);
#: ``"formula"`` evaluates eq-layernorm / eq-rmsnorm in the order of :func:`layer_norm`
#: / :func:`rms_norm` (divide by √(… + ε)); ``"rsqrt"`` (RMSNorm only) multiplies by
#: the reciprocal square root, as llama2.c's ``run.c`` does. They differ in rounding.
TENSOR_ALGORITHMS = ("torch", "formula", "rsqrt")


def _tensor_vector(value, name: str, d: int):
    """A gain or bias: a floating torch tensor of shape (d,), or raise naming it."""
    vector = as_float_tensor(value, name, ndim=1)
    if vector.shape[0] != d:
        raise ValueError(f"{name} must have shape ({d},), got {tuple(vector.shape)}")
    return vector


def _tensor_args(x, eps: float, algorithm: str, allowed: tuple[str, ...]):
    x = as_float_tensor(x, "x", ndim=tuple(range(1, 33)), allow_nonfinite=True)
    if algorithm not in allowed:
        raise ValueError(f"algorithm must be one of {allowed}, got {algorithm!r}")
    return x, _eps(eps)


def tensor_layer_norm(
    x, gamma=None, beta=None, eps: float = GPT2_EPS, *, algorithm: str = "torch"
):
    """:func:`layer_norm` of a torch tensor, differentiable: ``(..., d) -> (..., d)``.

    ``gamma`` and ``beta`` are tensors of shape ``(d,)`` (omitted: no gain, no bias).
    ``algorithm="torch"`` runs ``torch.nn.functional.layer_norm``; ``"formula"``
    computes (x − mean)/√(mean((x − mean)²) + ε) in that order, as :func:`layer_norm`
    does (see :data:`TENSOR_ALGORITHMS`). Computed in the dtype of ``x`` when
    ``gamma`` and ``beta`` share it (otherwise torch's type promotion decides, and the
    ``"torch"`` kernel warns). NaN and inf pass through, as in torch's layers, so a
    diverging training run stays visible.
    """
    import torch

    x, eps = _tensor_args(x, eps, algorithm, ("torch", "formula"))
    d = x.shape[-1]
    g = None if gamma is None else _tensor_vector(gamma, "gamma", d)
    b = None if beta is None else _tensor_vector(beta, "beta", d)
    if algorithm == "torch":
        return torch.nn.functional.layer_norm(x, (d,), g, b, eps)
    centred = x - x.mean(dim=-1, keepdim=True)
    out = centred / torch.sqrt(centred.pow(2).mean(dim=-1, keepdim=True) + eps)
    out = out if g is None else out * g
    return out if b is None else out + b


def tensor_rms_norm(x, gamma=None, eps: float = GPT2_EPS, *, algorithm: str = "torch"):
    """:func:`rms_norm` of a torch tensor, differentiable: ``(..., d) -> (..., d)``.

    ``gamma`` is a tensor of shape ``(d,)`` (omitted: no gain). ``algorithm``:
    ``"torch"`` runs ``torch.nn.functional.rms_norm``; ``"formula"`` computes
    x / √(mean(x²) + ε), as :func:`rms_norm`; ``"rsqrt"`` computes
    x · rsqrt(mean(x²) + ε), as llama2.c does. Then · γ. In the dtype of ``x`` when
    ``gamma`` shares it (otherwise torch's type promotion decides); NaN and inf pass
    through.
    """
    import torch

    x, eps = _tensor_args(x, eps, algorithm, TENSOR_ALGORITHMS)
    d = x.shape[-1]
    g = None if gamma is None else _tensor_vector(gamma, "gamma", d)
    if algorithm == "torch":
        return torch.nn.functional.rms_norm(x, (d,), g, eps)
    mean_square = x.pow(2).mean(-1, keepdim=True) + eps
    if algorithm == "rsqrt":
        out = x * torch.rsqrt(mean_square)
    else:
        out = x / torch.sqrt(mean_square)
    return out if g is None else out * g


def _float32_vector(value, name: str, d: int, default: float):
    """A gain or bias of shape (d,) as a float32 tensor (``default`` when None)."""
    import torch

    if value is None:
        return torch.full((d,), default, dtype=torch.float32)
    vector = as_float_array(value, name, ndim=1)
    if vector.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},), got {vector.shape}")
    return torch.from_numpy(vector.astype(np.float32))


def torch_layer_norm(x, gamma=None, beta=None, eps: float = GPT2_EPS) -> np.ndarray:
    """The same as :func:`layer_norm`, computed by torch's LayerNorm kernel in float32.

    NumPy in, NumPy out: :func:`tensor_layer_norm` with ``algorithm="torch"`` and γ, β
    (1 and 0 when not given) in float32, as a ``torch.nn.LayerNorm`` layer holds them.
    """
    import torch

    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    d = x.shape[-1]
    g = _float32_vector(gamma, "gamma", d, 1.0)
    b = _float32_vector(beta, "beta", d, 0.0)
    with torch.no_grad():
        x32 = torch.from_numpy(x.astype(np.float32))
        return tensor_layer_norm(x32, g, b, _eps(eps), algorithm="torch").numpy()


def torch_rms_norm(x, gamma=None, eps: float = GPT2_EPS) -> np.ndarray:
    """The same as :func:`rms_norm`, computed by torch's RMSNorm kernel in float32.

    NumPy in, NumPy out: :func:`tensor_rms_norm` with ``algorithm="torch"`` and γ (1
    when not given) in float32, as a ``torch.nn.RMSNorm`` layer holds it.
    """
    import torch

    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    g = _float32_vector(gamma, "gamma", x.shape[-1], 1.0)
    with torch.no_grad():
        x32 = torch.from_numpy(x.astype(np.float32))
        return tensor_rms_norm(x32, g, _eps(eps), algorithm="torch").numpy()


def float32_tolerance(d: int, scale: float = 1.0, k: float = 2.0) -> float:
    """A tolerance, not a bound: k·ε_mach·√d·scale for |float64 − float32| of a norm layer.

    ε_mach = 2⁻²³ is float32's machine epsilon (unit roundoff u = ε_mach/2). If the
    rounding errors of the d-term reductions behave like independent, mean-zero random
    variables (the probabilistic model of Higham & Mary 2019), their accumulated
    relative error is of order √d·u with high probability, instead of the worst case
    d·u (:func:`float32_error_bound`). ``scale`` is the largest output magnitude; the
    default k = 2 is 4√d·u, several times the typical error. Nothing guarantees it.
    """
    d = positive_int(d, "d")
    eps32 = float(np.finfo(np.float32).eps)
    return k * eps32 * float(np.sqrt(d)) * finite_float(scale, "scale", positive=True)


def _gamma_n(n: int, u: float) -> float:
    """Higham's γ_n = n·u / (1 − n·u): the worst-case relative error of n roundings."""
    if n * u >= 1:
        raise ValueError(f"n·u must be < 1, got n = {n}")
    return n * u / (1 - n * u)


def float32_error_bound(
    x, gamma=None, beta=None, eps: float = GPT2_EPS, *, kind: str = "layer"
) -> np.ndarray:
    """Worst-case bound on |float32 − exact| of :func:`layer_norm` / :func:`rms_norm`.

    For the two-pass algorithm of ``_layer_norm_core`` (``kind="layer"``) or
    ``_rms_norm_core`` (``kind="rms"``) evaluated in float32 on float32 input ``x``
    ``(..., d)``, with γ, β, ε rounded to float32, and u = 2⁻²⁴. First-order
    analysis (Higham, *Accuracy and Stability*, ch. 3–4; any summation order):

    * LayerNorm: |δμ| ≤ γ_d·mean|x|; the error of the variance is ≤ γ_{d+3}·σ² (the
      mean's error enters it only at second order, since Σ(xᵢ − μ) = 0); then
      |ŷᵢ − yᵢ| ≤ |γᵢ|·γ_d·mean|x|/s + |γᵢx̂ᵢ|·(γ_{d+5}/2 + 5u) + u·(|βᵢ| + |yᵢ|),
      s = √(σ² + ε), x̂ᵢ = (xᵢ − μ)/s.
    * RMSNorm: |ŷᵢ − yᵢ| ≤ |γᵢx̂ᵢ|·(γ_{d+3}/2 + 4u), x̂ᵢ = xᵢ/√(mean(x²) + ε).

    Second-order terms, O((d·u)²) relative, are covered by a factor 1.01. Returns
    the elementwise bound, shape of ``x``; exact quantities are computed in float64.
    A bound for this algorithm only: another library's reductions may differ.
    """
    if kind not in ("layer", "rms"):
        raise ValueError(f"kind must be 'layer' or 'rms', got {kind!r}")
    x = as_float_array(x, "x", ndim=tuple(range(1, 33))).astype(np.float64)
    d = x.shape[-1]
    g, b = _affine_params(gamma, beta if kind == "layer" else None, d, np.float64)
    eps = _eps(eps)
    u = float(np.finfo(np.float32).eps) / 2
    if kind == "rms":
        x_hat = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + eps)
        return 1.01 * np.abs(g * x_hat) * (_gamma_n(d + 3, u) / 2 + 4 * u)
    mu = x.mean(axis=-1, keepdims=True)
    s = np.sqrt(np.mean((x - mu) ** 2, axis=-1, keepdims=True) + eps)
    x_hat = (x - mu) / s
    y = g * x_hat + b
    mean_abs = np.mean(np.abs(x), axis=-1, keepdims=True)
    bound = (
        np.abs(g) * _gamma_n(d, u) * mean_abs / s
        + np.abs(g * x_hat) * (_gamma_n(d + 5, u) / 2 + 5 * u)
        + u * (np.abs(b) + np.abs(y))
    )
    return 1.01 * bound


def layer_norm_output_rms(x, eps: float = GPT2_EPS) -> np.ndarray:
    """Root mean square of the bare LayerNorm output of ``x``, over the last axis.

    Shape ``(..., d) -> (...)``: σ/√(σ² + ε) per vector, up to rounding
    (:func:`layer_norm_gain`).
    """
    return np.sqrt(np.mean(layer_norm(x, eps=eps) ** 2, axis=-1))
