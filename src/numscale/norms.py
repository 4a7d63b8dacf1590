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

import dataclasses
from dataclasses import dataclass

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


# ----------------------------------------------------------------------------------
# Result records of the LayerNorm/RMSNorm chapter: one call builds what a cell glues.


@dataclass(frozen=True)
class BareNormSummary:
    """What the bare normalization fixes, over the tokens of ``x_hat`` ``(n, d)``.

    ``sqrt_d``: √d; ``two_sqrt_d``: 2√d (the output's L2 norm with γ = 2);
    ``max_abs_mean``: the largest |mean| of a token's output (0 up to rounding);
    ``l2_max_dev``: the largest | ‖x̂‖ − √d | over the tokens.
    """

    sqrt_d: float
    two_sqrt_d: float
    max_abs_mean: float
    l2_max_dev: float


def bare_norm_summary(x_hat) -> BareNormSummary:
    """:class:`BareNormSummary` of bare LayerNorm outputs ``x_hat`` ``(n, d)``."""
    x_hat = as_float_array(x_hat, "x_hat", ndim=2)
    sqrt_d = np.sqrt(x_hat.shape[-1])
    out_norms = np.linalg.norm(x_hat, axis=-1)
    return BareNormSummary(
        sqrt_d=sqrt_d,
        two_sqrt_d=2 * sqrt_d,
        max_abs_mean=np.abs(x_hat.mean(axis=-1)).max(),
        l2_max_dev=np.abs(out_norms - sqrt_d).max(),
    )


def format_token_stats(x, x_hat) -> str:
    """Per token of ``x`` ``(n, d)`` and its bare normalization ``x_hat`` ``(n, d)``:
    the input's mean and std, the output's mean and L2 norm, and √d (four lines)."""
    x = as_float_array(x, "x", ndim=2)
    x_hat = as_float_array(x_hat, "x_hat", ndim=2)
    if x.shape != x_hat.shape:
        raise ValueError(f"x_hat must have the shape of x {x.shape}, got {x_hat.shape}")
    sqrt_d = np.sqrt(x.shape[-1])
    return "\n".join(
        [
            f"input mean, std per token: {np.round(x.mean(-1), 2)} "
            f"{np.round(x.std(-1), 2)}",
            "output mean per token:     "
            + np.array2string(x_hat.mean(-1), precision=1),
            "output L2 norm per token:  "
            + str(np.round(np.linalg.norm(x_hat, axis=-1), 5)),
            f"√d_model = {round(sqrt_d, 5)}",
        ]
    )


@dataclass(frozen=True)
class GainBiasRecovery:
    """How well γ and β are read back from the outputs' coordinates over tokens.

    ``beta_max_z``: the largest |mean of coordinate i − βᵢ| in standard errors
    γᵢ/√n; ``gamma_max_rel``: the largest |std of coordinate i / γᵢ − 1|;
    ``gamma_rel_se``: 1/√(2(n − 1)), the relative standard error of a std of n draws.
    """

    beta_max_z: float
    gamma_max_rel: float
    gamma_rel_se: float


def gain_bias_recovery(
    coord_mean, coord_std, gamma, beta, n_tokens: int
) -> GainBiasRecovery:
    """:class:`GainBiasRecovery` from the per-coordinate mean and std ``(d,)`` of
    LayerNorm outputs over ``n_tokens`` tokens, with the layer's ``gamma`` and
    ``beta`` ``(d,)``."""
    n_tokens = positive_int(n_tokens, "n_tokens", minimum=2)
    arrays = [
        as_float_array(v, name, ndim=1)
        for v, name in (
            (coord_mean, "coord_mean"),
            (coord_std, "coord_std"),
            (gamma, "gamma"),
            (beta, "beta"),
        )
    ]
    coord_mean, coord_std, gamma, beta = arrays
    if any(a.shape != gamma.shape for a in arrays):
        raise ValueError("coord_mean, coord_std, gamma and beta must share one shape")
    se_mean = gamma / np.sqrt(n_tokens)  # standard error of each coordinate's mean
    return GainBiasRecovery(
        beta_max_z=np.max(np.abs(coord_mean - beta) / se_mean),
        gamma_max_rel=np.max(np.abs(coord_std / gamma - 1)),
        gamma_rel_se=1 / np.sqrt(2 * (n_tokens - 1)),
    )


@dataclass(frozen=True)
class InvarianceChanges:
    """Largest |change| of a layer's output under a transformation of its input.

    ``ln_exact``: LayerNorm (ε = 0) under x → a·x + b; ``ln_eps``: the same with
    ε; ``rms_scale``: RMSNorm (ε = 0) under x → a·x; ``rms_shift``: RMSNorm (with ε)
    under x → x + b.
    """

    ln_exact: float
    ln_eps: float
    rms_scale: float
    rms_shift: float


def invariance_changes(
    x, a: float, b: float, eps: float = GPT2_EPS
) -> InvarianceChanges:
    """:class:`InvarianceChanges` of one vector ``x`` ``(d,)`` (or ``(..., d)``)."""
    x = as_float_array(x, "x", ndim=tuple(range(1, 33)))
    a, b = finite_float(a, "a"), finite_float(b, "b")

    def change(norm, after, **kwargs):
        return np.abs(norm(after, **kwargs) - norm(x, **kwargs)).max()

    return InvarianceChanges(
        ln_exact=change(layer_norm, a * x + b, eps=0.0),
        ln_eps=change(layer_norm, a * x + b, eps=eps),
        rms_scale=change(rms_norm, a * x, eps=0.0),
        rms_shift=change(rms_norm, x + b, eps=eps),
    )


def format_record(record, fmt: str = ".2e", width: int = 16) -> str:
    """One line ``name: value`` per number field of a dataclass ``record``."""
    if not dataclasses.is_dataclass(record) or isinstance(record, type):
        raise TypeError(
            f"record must be a dataclass instance, got {type(record).__name__}"
        )
    return "\n".join(
        f"{f.name:>{width}}: {getattr(record, f.name):{fmt}}"
        for f in dataclasses.fields(record)
    )


def layer_norm_output_rms(x, eps: float = GPT2_EPS) -> np.ndarray:
    """Root mean square of the bare LayerNorm output of ``x``, over the last axis.

    Shape ``(..., d) -> (...)``: σ/√(σ² + ε) per vector, up to rounding
    (:func:`layer_norm_gain`).
    """
    return np.sqrt(np.mean(layer_norm(x, eps=eps) ** 2, axis=-1))


@dataclass(frozen=True)
class EpsilonRegime:
    """LayerNorm below √ε: ``sqrt_eps`` and ``inv_sqrt_eps`` (the turning point and
    the fixed gain below it); ``tiny_out``: the measured output RMS of a vector
    with standard deviation ``tiny``; ``tiny_gain``: σ/√(σ² + ε) at σ = ``tiny``."""

    sqrt_eps: float
    inv_sqrt_eps: float
    tiny_out: float
    tiny_gain: float


def epsilon_regime(z, tiny: float, eps: float = GPT2_EPS) -> EpsilonRegime:
    """:class:`EpsilonRegime` for the direction ``z`` ``(d,)`` scaled to std ``tiny``."""
    z = as_float_array(z, "z", ndim=1)
    tiny = finite_float(tiny, "tiny", positive=True)
    eps = _eps(eps)
    return EpsilonRegime(
        sqrt_eps=np.sqrt(eps),
        inv_sqrt_eps=1 / np.sqrt(eps),
        tiny_out=layer_norm_output_rms(tiny * z / z.std(), eps),
        tiny_gain=float(layer_norm_gain(tiny, eps)),
    )


@dataclass(frozen=True)
class CentringSummary:
    """RMSNorm against LayerNorm on inputs N(mean, std²): ``rms_mean_measured``, the
    mean of RMSNorm's outputs; ``rms_mean_predicted``, :func:`rms_norm_output_mean`;
    ``ln_mean_max``, the largest |mean| of a LayerNorm output (0 up to rounding)."""

    rms_mean_measured: float
    rms_mean_predicted: float
    ln_mean_max: float


def centring_summary(
    rms_out_mean, ln_out_mean, mean: float, std: float
) -> CentringSummary:
    """:class:`CentringSummary` from the per-token output means ``(n,)`` of RMSNorm
    and LayerNorm on tokens drawn around ``mean`` with spread ``std``."""
    rms_out_mean = as_float_array(rms_out_mean, "rms_out_mean", ndim=1)
    ln_out_mean = as_float_array(ln_out_mean, "ln_out_mean", ndim=1)
    return CentringSummary(
        rms_mean_measured=rms_out_mean.mean(),
        rms_mean_predicted=float(rms_norm_output_mean(mean, std)),
        ln_mean_max=np.abs(ln_out_mean).max(),
    )


def format_centring(rms_out_mean, ln_out_mean) -> str:
    """The per-token output means ``(n,)`` of RMSNorm and LayerNorm, four lines."""
    rms_out_mean = as_float_array(rms_out_mean, "rms_out_mean", ndim=1)
    ln_out_mean = as_float_array(ln_out_mean, "ln_out_mean", ndim=1)
    return "\n".join(
        [
            "RMSNorm output mean per token:",
            np.array2string(np.round(rms_out_mean, 3), max_line_width=80),
            "LayerNorm output mean per token:",
            np.array2string(ln_out_mean, precision=1, max_line_width=80),
        ]
    )


@dataclass(frozen=True)
class Float32Agreement:
    """float32 LayerNorm and RMSNorm against float64 on the same float32 input.

    ``torch_*_diff``/``numpy32_*_diff``: the largest |float32 − float64| of torch's
    layer and of the NumPy helper run in float32 (``ln``: LayerNorm, ``rms``:
    RMSNorm); ``*_bound``: the largest :func:`float32_error_bound`; ``*_tolerance``:
    :func:`float32_tolerance` at the largest output; ``eps_mach32``: float32's
    machine epsilon; ``ln_out_max``: the largest |LayerNorm output|;
    ``torch_*_diff_per_eps``: torch's differences in units of ``eps_mach32``.
    """

    torch_ln_diff: float
    torch_rms_diff: float
    numpy32_ln_diff: float
    numpy32_rms_diff: float
    ln_bound: float
    rms_bound: float
    ln_tolerance: float
    rms_tolerance: float
    eps_mach32: float
    ln_out_max: float
    torch_ln_diff_per_eps: float
    torch_rms_diff_per_eps: float


def float32_agreement(x32, gamma, beta) -> Float32Agreement:
    """:class:`Float32Agreement` on float32 tokens ``x32`` ``(n, d)`` with ``gamma``
    and ``beta`` ``(d,)`` (float64 reference: the NumPy helpers on ``x32`` in float64).
    """
    x32 = as_float_array(x32, "x32", ndim=2)
    if x32.dtype != np.float32:
        raise TypeError(f"x32 must be float32, got {x32.dtype}")
    x64 = x32.astype(np.float64)
    d = x32.shape[-1]
    eps_mach = float(np.finfo(np.float32).eps)
    ref_ln, ref_rms = layer_norm(x64, gamma, beta), rms_norm(x64, gamma)
    torch_ln_diff = np.abs(torch_layer_norm(x32, gamma, beta) - ref_ln).max()
    torch_rms_diff = np.abs(torch_rms_norm(x32, gamma) - ref_rms).max()
    return Float32Agreement(
        torch_ln_diff=torch_ln_diff,
        torch_rms_diff=torch_rms_diff,
        numpy32_ln_diff=np.abs(layer_norm(x32, gamma, beta) - ref_ln).max(),
        numpy32_rms_diff=np.abs(rms_norm(x32, gamma) - ref_rms).max(),
        ln_bound=float32_error_bound(x32, gamma, beta).max(),
        rms_bound=float32_error_bound(x32, gamma, kind="rms").max(),
        ln_tolerance=float32_tolerance(d, scale=np.abs(ref_ln).max()),
        rms_tolerance=float32_tolerance(d, scale=np.abs(ref_rms).max()),
        eps_mach32=eps_mach,
        ln_out_max=np.abs(ref_ln).max(),
        torch_ln_diff_per_eps=float(torch_ln_diff) / eps_mach,
        torch_rms_diff_per_eps=float(torch_rms_diff) / eps_mach,
    )
