"""Initialization scales: Xavier/Glorot, He/Kaiming, GPT-2's residual scaling.

Shapes: a weight matrix maps ``fan_in`` inputs to ``fan_out`` outputs; activations are
``(n_samples, width)``; per-layer results have one entry per layer, input included
(``depth + 1`` entries).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from numscale.checks import finite_float, positive_int, rng_from
from numscale.dotprod import loglog_slope
from numscale.norms import layer_norm

#: The initialization schemes of the chapter, by name.
SCHEMES = ("lecun", "xavier", "he")


def _init_variance(scheme: str, fan_in: int, fan_out: int | None) -> float:
    """σ_w² of one layer's weights under the chapter's three rules."""
    if scheme == "lecun":
        return 1.0 / fan_in  # a linear layer keeps Var(h) = Var(x)
    if scheme == "xavier":
        return 2.0 / (fan_in + fan_out)  # compromise: forward fan_in, backward fan_out
    return 2.0 / fan_in  # he: a ReLU keeps half of E[h²], so double the variance


def init_std(scheme: str, fan_in: int, fan_out: int | None = None) -> float:
    """Standard deviation of the zero-mean weights of one layer under ``scheme``.

    ``"lecun"``: Var = 1/fan_in (keeps the variance of a *linear* layer);
    ``"xavier"``: Var = 2/(fan_in + fan_out) (Glorot & Bengio 2010; ``fan_out`` needed);
    ``"he"``: Var = 2/fan_in (He et al. 2015, for ReLU, which zeroes half the inputs).
    The formulas are in ``_init_variance``; this wrapper checks the arguments.
    """
    fan_in = positive_int(fan_in, "fan_in")
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "xavier":
        if fan_out is None:
            raise ValueError("fan_out is required for scheme 'xavier'")
        fan_out = positive_int(fan_out, "fan_out")
    return float(np.sqrt(_init_variance(scheme, fan_in, fan_out)))


def relu_mlp_second_moments(
    width: int, depth: int, scheme: str, n_samples: int, seed: int | np.random.Generator
) -> np.ndarray:
    """Second moment E[x²] of the activations of a deep, bias-free ReLU MLP at init.

    The input ``x_0`` is ``(n_samples, width)`` standard normal; layer l computes
    ``x_l = relu(x_{l-1} @ W_l)`` with ``W_l`` of shape ``(width, width)`` and iid
    N(0, init_std(scheme, width, width)²) entries. Returns the ``(depth + 1,)`` array
    of mean(x_l²) over samples and units, ``l = 0 … depth``. Computed in float64
    (2⁻⁵⁰ ≈ 9e-16 is far above its smallest normal number, 2e-308).
    """
    width = positive_int(width, "width")
    depth = positive_int(depth, "depth")
    n_samples = positive_int(n_samples, "n_samples")
    std = init_std(scheme, width, width)
    rng = rng_from(seed)
    x = rng.standard_normal((n_samples, width))
    moments = [float(np.mean(x**2))]
    for _ in range(depth):
        w = rng.standard_normal((width, width)) * std
        x = np.maximum(x @ w, 0.0)
        moments.append(float(np.mean(x**2)))
    return np.array(moments)


def relu_layer_gain(scheme: str, width: int) -> float:
    """Expected factor E[x_l²] / E[x_{l-1}²] of one square ReLU layer: width·σ²/2."""
    return width * init_std(scheme, width, width) ** 2 / 2.0


def log2_moment_spread(width: int, depth: int) -> tuple[float, float]:
    """Mean and standard deviation of log2(‖x_L‖² / ‖x_0‖²) for one input under He init.

    Given x_{l-1}, ``x_{l-1} @ W_l`` is exactly N(0, (2/n)‖x_{l-1}‖² I) for Gaussian W,
    so each layer multiplies ‖x‖² by an independent factor g = (2/n) Σ_i relu(z_i)² with
    z iid N(0, 1): E[g] = 1, Var[g] = (4/n²)·n·Var(relu(z)²) = 5/n (E[relu(z)⁴] = 3/2,
    E[relu(z)²] = 1/2). By the delta method log g has mean ≈ −5/(2n) and variance
    ≈ 5/n; log2 of the product of ``depth`` factors has the returned mean and std.
    Other schemes only shift the mean by depth·log2(relu_layer_gain).
    """
    width = positive_int(width, "width")
    depth = positive_int(depth, "depth")
    mean = -depth * 5.0 / (2.0 * width) / np.log(2.0)
    std = np.sqrt(depth * 5.0 / width) / np.log(2.0)
    return float(mean), float(std)


def gpt2_residual_proj_std(n_layer: int, base_std: float = 0.02) -> float:
    """base_std / √(2·n_layer): the std of GPT-2's residual output projections as
    Hugging Face and nanoGPT reconstruct it.

    The GPT-2 paper says only "scale the weights of residual layers at initialization
    by a factor of 1/√N where N is the number of residual layers"; OpenAI released no
    training code, and its released ``model.py`` draws every weight with std 0.02
    (``wpe`` 0.01), unscaled. The reconstruction counts two residual branches
    (attention and MLP) per block, N = 2·n_layer.
    """
    n_layer = positive_int(n_layer, "n_layer")
    base_std = finite_float(base_std, "base_std", positive=True)
    return base_std / float(np.sqrt(2 * n_layer))


def hf_gpt2_init_stds(n_layer: int, n_embd: int, seed: int) -> dict[str, float]:
    """Measured std of a freshly initialised transformers ``GPT2Model``'s weights.

    Builds a small-width model (``n_embd``, 4 heads, vocabulary 64) with ``n_layer``
    blocks and returns the pooled sample std of the weights of every ``attn.c_attn``,
    ``mlp.c_fc`` (expected 0.02) and every ``attn.c_proj``, ``mlp.c_proj`` (expected
    0.02/√(2·n_layer)), and of the embeddings ``wte`` (64 × n_embd) and ``wpe``
    (16 × n_embd), both expected 0.02 in this reconstruction. transformers draws from torch's global generator, so the draw
    runs inside ``torch.random.fork_rng``: the caller's global RNG state is untouched.
    """
    n_layer = positive_int(n_layer, "n_layer")
    n_embd = positive_int(n_embd, "n_embd", minimum=4)
    if n_embd % 4:
        raise ValueError(f"n_embd must be a multiple of 4 (4 heads), got {n_embd}")
    seed = positive_int(seed, "seed", minimum=0)
    import torch
    from transformers import GPT2Config, GPT2Model

    config = GPT2Config(
        n_layer=n_layer,
        n_embd=n_embd,
        n_head=4,
        n_positions=16,
        vocab_size=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = GPT2Model(config)
    names = ("attn.c_attn", "mlp.c_fc", "attn.c_proj", "mlp.c_proj")
    groups: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for block in model.h:
        for name in groups:
            part, layer = name.split(".")
            weight = getattr(getattr(block, part), layer).weight
            groups[name].append(weight.detach().numpy().ravel())
    stds = {name: float(np.concatenate(ws).std()) for name, ws in groups.items()}
    for name in (
        "wte",
        "wpe",
    ):  # both 0.02 here; OpenAI's released model.py has wpe 0.01
        stds[name] = float(getattr(model, name).weight.detach().numpy().std())
    return stds


def gelu(x: np.ndarray) -> np.ndarray:
    """GPT-2's GELU (tanh approximation), elementwise."""
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


@dataclass(frozen=True)
class ResidualGrowth:
    """Result of :func:`pre_ln_residual_rms`: one row per configuration."""

    depths: np.ndarray  #: (m,) number of blocks N of each stack
    rms_unscaled: (
        np.ndarray
    )  #: (m,) RMS of the stream after N blocks, projections N(0, 0.02²)
    rms_scaled: np.ndarray  #: (m,) the same with projections scaled by 1/√(2N)
    branch_rms: float  #: RMS of one branch output with unscaled projections (measured)


def pre_ln_residual_rms(
    depths: Sequence[int],
    d: int,
    n_tokens: int,
    seed: int | np.random.Generator,
    base_std: float = 0.02,
) -> ResidualGrowth:
    """RMS of the residual stream at the end of pre-LN stacks of random blocks.

    Each block has two residual branches (GPT-2's attention and MLP); in this toy both are
    MLPs ``x + gelu(LN(x) @ W_fc) @ W_proj`` with ``W_fc`` ``(d, 4d)`` and ``W_proj``
    ``(4d, d)``, entries N(0, base_std²); no attention, so the ``n_tokens`` rows are
    independent samples. The stream starts as N(0, base_std²) entries (GPT-2's
    embedding scale). For every depth N in ``depths`` the same weights (common random
    numbers) are used twice: as drawn, and with ``W_proj`` scaled by 1/√(2N).
    RMS = √mean(x²) over tokens and coordinates. Shapes: ``(len(depths),)``.
    """
    depths_arr = np.asarray(list(depths))
    if depths_arr.size == 0:
        raise ValueError("depths must not be empty")
    if not np.issubdtype(depths_arr.dtype, np.integer) or np.any(depths_arr < 1):
        raise ValueError(f"depths must be positive integers, got {depths_arr.tolist()}")
    d = positive_int(d, "d")
    n_tokens = positive_int(n_tokens, "n_tokens")
    base_std = finite_float(base_std, "base_std", positive=True)
    rng = rng_from(seed)
    x0 = rng.standard_normal((n_tokens, d)) * base_std
    # one stream per (depth, scaled?) configuration, all advanced block by block
    scales = np.concatenate([np.ones(depths_arr.size), 1.0 / np.sqrt(2.0 * depths_arr)])
    limits = np.concatenate([depths_arr, depths_arr])
    streams = np.repeat(x0[None], scales.size, axis=0)
    branch_sq: list[float] = []
    for block in range(int(depths_arr.max())):
        active = limits > block
        for _ in range(2):  # attention-like and MLP branch
            w_fc = rng.standard_normal((d, 4 * d)) * base_std
            w_proj = rng.standard_normal((4 * d, d)) * base_std
            out = gelu(layer_norm(streams[active]) @ w_fc) @ w_proj
            if block == 0:
                branch_sq.append(float(np.mean(out[0] ** 2)))
            streams[active] = streams[active] + out * scales[active, None, None]
    rms = np.sqrt(np.mean(streams**2, axis=(1, 2)))
    m = depths_arr.size
    return ResidualGrowth(
        depths=depths_arr,
        rms_unscaled=rms[:m],
        rms_scaled=rms[m:],
        branch_rms=float(np.sqrt(np.mean(branch_sq))),
    )


# ----------------------------------------------------------------------------------
# Result records of the initialization chapter: one call builds what a cell glues.


def format_init_stds(shapes: Sequence[tuple[int, int]]) -> str:
    """One line per ``(fan_in, fan_out)`` in ``shapes``: the std of every scheme."""
    if isinstance(shapes, str) or not isinstance(shapes, Sequence) or not shapes:
        raise ValueError("shapes must be a non-empty sequence of (fan_in, fan_out)")
    lines = []
    for fan_in, fan_out in shapes:
        stds = {s: init_std(s, fan_in, fan_out) for s in SCHEMES}
        lines.append(
            f"{fan_in:>4} → {fan_out:<4}  "
            + "   ".join(f"{s}: {v:.4f}" for s, v in stds.items())
        )
    return "\n".join(lines)


def named_stds(schemes: Sequence[str], fan_in: int) -> dict[str, float]:
    """``{f"{scheme}_{fan_in}": init_std(scheme, fan_in)}`` for each of ``schemes``
    (schemes that need no ``fan_out``)."""
    if isinstance(schemes, str) or not schemes:
        raise ValueError("schemes must be a non-empty sequence of scheme names")
    fan_in = positive_int(fan_in, "fan_in")
    return {f"{s}_{fan_in}": init_std(s, fan_in) for s in schemes}


@dataclass(frozen=True)
class DepthSummary:
    """Where the second moment of a deep ReLU MLP ends, per scheme (dict keys:
    :data:`SCHEMES`): ``final_ratio``, E[x²] after the last layer over E[x²] at the
    input; ``final_log2``, its log2; ``two_pow_minus_depth``, 2^(−depth), the ratio
    if every layer halved it; ``xavier_is_lecun``: whether the two schemes' moments
    are identical (they are for square layers and one seed; not a number: exclude
    it when gluing)."""

    final_ratio: dict[str, float]
    final_log2: dict[str, float]
    two_pow_minus_depth: float
    xavier_is_lecun: bool

    def __str__(self) -> str:
        return (
            "\n".join(
                f"{s:>6}: E[x²] after {round(-np.log2(self.two_pow_minus_depth))} layers"
                f" / at the input = {r:.3g}  (log2: {self.final_log2[s]:.2f})"
                for s, r in self.final_ratio.items()
            )
            + f"\nXavier and LeCun identical for square layers: {self.xavier_is_lecun}"
        )


def depth_summary(moments: dict[str, np.ndarray]) -> DepthSummary:
    """:class:`DepthSummary` of the per-layer second moments ``(depth + 1,)`` of each
    scheme (:func:`relu_mlp_second_moments`), all of one depth."""
    if not isinstance(moments, dict) or not moments:
        raise ValueError(
            "moments must be a non-empty dict scheme -> (depth + 1,) array"
        )
    arrays = {s: np.asarray(m, dtype=float) for s, m in moments.items()}
    lengths = {m.shape for m in arrays.values()}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError("moments must hold 1-d arrays of one length")
    depth = next(iter(lengths))[0] - 1
    if depth < 1:
        raise ValueError("moments must have at least two entries (input, one layer)")
    ratio = {s: m[-1] / m[0] for s, m in arrays.items()}
    return DepthSummary(
        final_ratio=ratio,
        final_log2={s: np.log2(r) for s, r in ratio.items()},
        two_pow_minus_depth=2.0**-depth,
        xavier_is_lecun="xavier" in arrays
        and "lecun" in arrays
        and bool(np.array_equal(arrays["xavier"], arrays["lecun"])),
    )


@dataclass(frozen=True)
class Log2Spread:
    """Predicted mean ``log2_mean`` and standard deviation ``log2_sd`` of
    log2(‖x_L‖² / ‖x_0‖²) for one input under He (:func:`log2_moment_spread`)."""

    log2_mean: float
    log2_sd: float


def log2_spread(width: int, depth: int) -> Log2Spread:
    """:func:`log2_moment_spread` as a record."""
    mean, sd = log2_moment_spread(width, depth)
    return Log2Spread(log2_mean=mean, log2_sd=sd)


@dataclass(frozen=True)
class StartScales:
    """Scales at the start of a GPT-2-like model with weights of std ``w_std``.

    ``lecun``: 1/√fan_in for fan_in = d_model and 4·d_model (keys); ``gpt2_qk_std``:
    std of q, k, v and MLP pre-activations for unit-scale input; ``gpt2_logit_std``:
    std of the scaled logits q·k/√d_k; ``gpt2_entropy_gap``: ln n minus the mean
    attention entropy, σ²/2 at σ = ``gpt2_logit_std`` (small-σ approximation);
    ``w_std``, the weights' std it was computed for (an input: exclude it when gluing).
    """

    lecun: dict[int, float]
    gpt2_qk_std: float
    gpt2_logit_std: float
    gpt2_entropy_gap: float
    w_std: float

    def __str__(self) -> str:
        rules = "   ".join(f"1/√{n} = {v:.4f}" for n, v in self.lecun.items())
        return (
            f"{rules}   GPT-2: {self.w_std:.3g}\n"
            f"q, k entries: std {self.gpt2_qk_std:.3f};  "
            f"scaled logits: std {self.gpt2_logit_std:.3f}"
        )


def gpt2_start_scales(d_model: int = 768, w_std: float = 0.02) -> StartScales:
    """:class:`StartScales` of a model of width ``d_model`` (MLP width 4·d_model)."""
    d_model = positive_int(d_model, "d_model")
    w_std = finite_float(w_std, "w_std", positive=True)
    qk_std = w_std * np.sqrt(d_model)  # q, k, v, MLP pre-activations; unit input
    logit_std = qk_std**2  # q·k/√d_k: √(d_k·qk_std⁴)/√d_k
    return StartScales(
        lecun={n: init_std("lecun", n) for n in (d_model, 4 * d_model)},
        gpt2_qk_std=qk_std,
        gpt2_logit_std=logit_std,
        gpt2_entropy_gap=logit_std**2 / 2,
        w_std=w_std,
    )


@dataclass(frozen=True)
class GrowthFit:
    """Log–log fits of :class:`ResidualGrowth`: ``slope_*`` and ``slope_*_se``
    (:func:`numscale.dotprod.loglog_slope`) of the stream's RMS against the number
    of blocks, unscaled and scaled; ``branch_rms``: one branch's output RMS;
    ``rms_unscaled``: the RMS at the deepest stack (key: its depth); ``rms_scaled``:
    the scaled RMS at the deepest and the shallowest stacks."""

    slope_unscaled: float
    slope_unscaled_se: float
    slope_scaled: float
    slope_scaled_se: float
    branch_rms: float
    rms_unscaled: dict[int, float]
    rms_scaled: dict[int, float]


def growth_fit(growth: ResidualGrowth) -> GrowthFit:
    """:class:`GrowthFit` of a :func:`pre_ln_residual_rms` result (≥ 3 depths)."""
    if not isinstance(growth, ResidualGrowth):
        raise TypeError(f"growth must be a ResidualGrowth, got {type(growth).__name__}")
    slope_u, se_u = loglog_slope(growth.depths, growth.rms_unscaled)
    slope_s, se_s = loglog_slope(growth.depths, growth.rms_scaled)
    first, last = int(growth.depths[0]), int(growth.depths[-1])
    return GrowthFit(
        slope_unscaled=slope_u,
        slope_unscaled_se=se_u,
        slope_scaled=slope_s,
        slope_scaled_se=se_s,
        branch_rms=growth.branch_rms,
        rms_unscaled={last: growth.rms_unscaled[-1]},
        rms_scaled={last: growth.rms_scaled[-1], first: growth.rms_scaled[0]},
    )
