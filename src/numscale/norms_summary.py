"""Result records of the LayerNorm/RMSNorm chapter: one call builds what a cell glues.

Each record is a frozen dataclass whose fields are the chapter's glued numbers; the
normalizations themselves live in :mod:`numscale.norms`. Shapes: ``(n, d)`` for n
tokens of width d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, finite_float, positive_int
from numscale.norms import (
    GPT2_EPS,
    float32_error_bound,
    float32_tolerance,
    layer_norm,
    layer_norm_gain,
    layer_norm_output_rms,
    rms_norm,
    rms_norm_output_mean,
    torch_layer_norm,
    torch_rms_norm,
)


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
    ε; ``rms_scale``: RMSNorm (ε = 0) under x → a·x; ``rms_scale_eps``: the same
    with ε; ``rms_shift``: RMSNorm (with ε) under x → x + b; ``a``, ``b``: the
    transformation (the page's choice, not a result: the chapter glues them as
    inputs). Its ``str`` is the table the chapter prints: a title line, then five
    lines ``layer (ε), x → …: value``.
    """

    ln_exact: float
    ln_eps: float
    rms_scale: float
    rms_scale_eps: float
    rms_shift: float
    a: float
    b: float

    def __str__(self) -> str:
        shift = f"{'−' if self.b < 0 else '+'} {abs(self.b):g}"
        rows = [
            ("LayerNorm (ε = 0)", f"x → {self.a:g}·x {shift}", self.ln_exact),
            ("LayerNorm (with ε)", f"x → {self.a:g}·x {shift}", self.ln_eps),
            ("RMSNorm (ε = 0)", f"x → {self.a:g}·x", self.rms_scale),
            ("RMSNorm (with ε)", f"x → {self.a:g}·x", self.rms_scale_eps),
            ("RMSNorm (with ε)", f"x → x {shift}", self.rms_shift),
        ]
        layer = max(len(r[0]) for r in rows)
        move = max(len(r[1]) for r in rows) + 1
        lines = ["largest |change| of the output:"]
        lines += [f"  {n:<{layer}}  {(m + ':'):<{move}} {v:.1e}" for n, m, v in rows]
        return "\n".join(lines)


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
        rms_scale_eps=change(rms_norm, a * x, eps=eps),
        rms_shift=change(rms_norm, x + b, eps=eps),
        a=a,
        b=b,
    )


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
    eps = finite_float(eps, "eps", positive=True)
    return EpsilonRegime(
        sqrt_eps=np.sqrt(eps),
        inv_sqrt_eps=1 / np.sqrt(eps),
        tiny_out=layer_norm_output_rms(tiny * z / z.std(), eps),
        tiny_gain=float(layer_norm_gain(tiny, eps)),
    )


@dataclass(frozen=True)
class CentringSummary:
    """RMSNorm against LayerNorm on inputs N(mean, std²): ``rms_mean_measured``, the
    mean of RMSNorm's outputs; ``rms_mean_predicted``, :func:`~numscale.norms.rms_norm_output_mean`;
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
    RMSNorm); ``*_bound``: the largest :func:`~numscale.norms.float32_error_bound`; ``*_tolerance``:
    :func:`~numscale.norms.float32_tolerance` at the largest output; ``eps_mach32``: float32's
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
