"""Claims of book/gpt2_qk.md, asserted on the glued values of the executed page.

Claims about GPT-2's weights need the reference tensors (skipped without them); the toy
training run needs no data and is asserted always. The helpers are unit-tested on small
random matrices in tests/test_gpt2_qk.py.
"""

from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
import pytest

from conftest import REFERENCE, needs_gpt2_reference
from references import adam_step_

pytestmark = pytest.mark.build
PAGE = "book/gpt2_qk"
PREFIX = "gpt2qk_"
real_data = needs_gpt2_reference
U32 = float(np.finfo(np.float32).eps) / 2
U64 = float(np.finfo(np.float64).eps) / 2


@pytest.fixture(scope="module")
def real(values):
    assert values["released"] == 1, "the tensors are not the released GPT-2 small"
    return values


@real_data
def test_probe_draws_agree_with_the_exact_variance(real):
    # 144 z-scores (sample variance − formula)/SE: a correct formula keeps all within 5 SE
    # (probability of a failure ≈ 144·5.7e-7); their RMS is 1 ± 1/√(2·144) = ±0.06 for
    # independent scores, 5 of those: ±0.3 (shared draws make the scores correlated).
    assert real["probe_z_max"] < 5
    assert abs(real["probe_z_rms"] - 1) < 0.3


@real_data
def test_initialization_baseline_and_trained_scales(real):
    # at initialization std = dσ² = 0.3072 in expectation; one head's std spreads by ~1%
    # (a sum of 64² Gram products), 5% covers the extremes of 144 heads
    assert real["init_std_expected"] == pytest.approx(768 * 0.02**2, rel=1e-12)
    for key in ("init_std_min", "init_std_max"):
        assert real[key] == pytest.approx(real["init_std_expected"], rel=0.05)
    # the trained heads all lie above the initialization and straddle 1 (the prose says
    # the range runs from below 1 to several times 1)
    assert real["std_min"] > real["init_std_max"]
    assert real["std_min"] < 1 < real["std_max"]
    assert real["heads"] == 144 and 0 < real["heads_above_one"] < 144


@real_data
def test_key_bias_zeroing_is_rounding_and_query_bias_is_not(real):
    # every change lies under the worst-case float32 bound (a bound: no tolerance)
    assert real["bk_within_bound_pct"] == 100.0
    # the change is of the size of the float32 computation's own rounding (same order:
    # within a factor 10 of the float32-vs-float64 difference), far below the bound
    assert real["bk_change_max"] <= 10 * real["f32_rounding_max"]
    assert real["bk_bound_use_max"] < 1e-2
    # in float64 it shrinks with the unit roundoff (u64/u32 ≈ 1.1e-9; 1000× margin)
    assert real["bk_change_max_f64"] < 1e3 * (U64 / U32) * real["bk_change_max"]
    # zeroing b_q changes every head's weights by far more than rounding
    assert real["bq_head_max_min"] > 1e3 * real["bk_change_max"]


@real_data
def test_trained_key_bias_is_far_from_zero(real):
    # b_k started at 0 and receives only rounding noise under SGD, yet its RMS in every
    # block is at least a quarter of the median query bias (the prose compares the two)
    assert real["bk_rms_min"] > 0.25 * real["bq_rms_median"]
    # the glued RMS values against plain numpy on the reference file (float64 sums of
    # 768 float32 squares: agreement to 1e-9 relative, far inside a factor 1.5)
    nq = _numpy_recomputation()
    for i in range(12):
        assert real[f"bk_rms_{i}"] == pytest.approx(nq["bk_rms"][i], rel=1e-9)
    assert real["bk_rms_min"] == pytest.approx(nq["bk_rms"].min(), rel=1e-9)
    assert real["bk_rms_max"] == pytest.approx(nq["bk_rms"].max(), rel=1e-9)
    assert real["bk_rms_argmax"] == int(nq["bk_rms"].argmax())
    assert real["bq_rms_median"] == pytest.approx(np.median(nq["bq_rms"]), rel=1e-9)
    ratio = nq["bk_rms"] / nq["key_rms"]
    assert real["bk_over_key_min"] == pytest.approx(ratio.min(), rel=1e-6)
    assert real["bk_over_key_max"] == pytest.approx(ratio.max(), rel=1e-6)


@functools.lru_cache(maxsize=1)
def _numpy_recomputation() -> dict[str, np.ndarray]:
    """Each head's logit statistics from the reference files with plain numpy.

    Independent of ``numscale.gpt2_qk``: the 768 × 768 form M = ΓW_QW_KᵀΓ is formed
    explicitly (the helpers use 64 × 64 Gram matrices), and every moment is summed
    directly in float64. Arrays are (12 blocks, 12 heads) unless named otherwise.
    """
    attention = np.load(REFERENCE / "gpt2_small_attention.npz")
    norms = np.load(REFERENCE / "gpt2_small_layernorm.npz")
    partial = np.load(REFERENCE / "gpt2_small_partial.npz")
    s, out = (
        1 / 8,
        {
            k: np.zeros((12, 12))
            for k in ("var", "var_no_bias", "sym", "trace_ratio", "self_excess")
        },
    )
    out.update(
        bk_rms=np.zeros(12),
        bq_rms=np.zeros(12),
        key_rms=np.zeros(12),
        bq_head_max=np.zeros((12, 12)),
    )
    for i in range(12):
        w = attention[f"transformer.h.{i}.attn.c_attn.weight"].astype(np.float64)
        b = partial[f"transformer.h.{i}.attn.c_attn.bias"].astype(np.float64)
        gain = norms[f"transformer.h.{i}.ln_1.weight"].astype(np.float64)
        shift = norms[f"transformer.h.{i}.ln_1.bias"].astype(np.float64)
        out["bk_rms"][i] = np.sqrt(np.mean(b[768:1536] ** 2))
        out["bq_rms"][i] = np.sqrt(np.mean(b[:768] ** 2))
        # RMS of a key coordinate for isotropic x̂: √(Σ_channels (γW_K)² / 768 columns)
        out["key_rms"][i] = np.sqrt(np.sum((gain[:, None] * w[:, 768:1536]) ** 2) / 768)
        x = np.random.default_rng(7).spawn(12)[i].standard_normal((64, 768))
        u = gain * x + shift  # the page's probe tokens
        for h in range(12):
            cols = slice(64 * h, 64 * h + 64)
            w_q, w_k = w[:, cols], w[:, 768:1536][:, cols]
            b_q, b_k = b[:768][cols], b[768:1536][cols]
            a_q, a_k = gain[:, None] * w_q, gain[:, None] * w_k
            c_q, c_k = shift @ w_q + b_q, shift @ w_k + b_k
            m = a_q @ a_k.T  # (768, 768)
            frob2 = np.sum(m * m)
            var = s**2 * (frob2 + np.sum((a_q @ c_k) ** 2) + np.sum((a_k @ c_q) ** 2))
            out["var"][i, h], out["var_no_bias"][i, h] = var, s**2 * frob2
            out["sym"][i, h] = np.sum(((m + m.T) / 2) ** 2) / frob2
            out["trace_ratio"][i, h] = np.trace(m) / np.sqrt(frob2)
            out["self_excess"][i, h] = s * np.trace(m) / np.sqrt(var)
            # zeroing b_q: softmax over all 64 keys, float64
            q, k = u @ w_q + b_q, u @ w_k + b_k
            p = _softmax(s * q @ k.T)
            p_no_q = _softmax(s * (u @ w_q) @ k.T)
            out["bq_head_max"][i, h] = np.abs(p - p_no_q).max()
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@real_data
def test_head_statistics_recomputed_with_numpy(real):
    # every quoted statistic of the 144 heads against the explicit-M numpy computation;
    # both sum in float64 from the same float32 tensors, so they agree to ~1e-12
    # relative; 1e-6 leaves room for summation order and fails any ×1.5 or ÷1.5
    nq = _numpy_recomputation()
    std = np.sqrt(nq["var"])
    for key, expected in (
        ("std_min", std.min()),
        ("std_max", std.max()),
        ("std_median", np.median(std)),
        ("bias_share_median", 100 * np.median(1 - nq["var_no_bias"] / nq["var"])),
        ("bias_share_max", 100 * np.max(1 - nq["var_no_bias"] / nq["var"])),
    ):
        assert real[key] == pytest.approx(expected, rel=1e-6), key
    assert (real["std_min_block"], real["std_min_head"]) == np.unravel_index(
        std.argmin(), std.shape
    )
    assert (real["std_max_block"], real["std_max_head"]) == np.unravel_index(
        std.argmax(), std.shape
    )
    assert real["heads_above_one"] == int(np.sum(std > 1))
    # the ratio to the drawn initialization: each initial head's std lies within 5% of
    # dσ² = 0.3072 (test above), so the median ratio is within 5% of median(std)/0.3072
    assert real["median_ratio_to_init"] == pytest.approx(
        np.median(std) / (768 * 0.02**2), rel=0.05
    )
    # alignment: explicit symmetric part and trace of M
    for key, expected in (
        ("sym_median", np.median(nq["sym"])),
        ("sym_min", nq["sym"].min()),
        ("sym_max", nq["sym"].max()),
        ("trace_max", nq["trace_ratio"].max()),
        ("trace_min", nq["trace_ratio"].min()),
        ("trace_abs_median", np.median(np.abs(nq["trace_ratio"]))),
        ("trace_min_sym", nq["sym"].flat[nq["trace_ratio"].argmin()]),
        ("self_excess_max", nq["self_excess"].max()),
        ("self_excess_median", np.median(nq["self_excess"])),
    ):
        assert real[key] == pytest.approx(expected, rel=1e-6), key
    assert real["sym_above_075"] == int(np.sum(nq["sym"] > 0.75))
    assert real["sym_below_035"] == int(np.sum(nq["sym"] < 0.35))
    # zeroing b_q: the page computes q, k and logits in float32 (relative error ~1e-6
    # on logits of size ~10, so |Δp| differs by < 1e-4); 1% relative covers it
    assert real["bq_change_max"] == pytest.approx(nq["bq_head_max"].max(), rel=0.01)
    assert real["bq_head_max_min"] == pytest.approx(nq["bq_head_max"].min(), rel=0.01)
    assert real["bq_head_max_median"] == pytest.approx(
        np.median(nq["bq_head_max"]), rel=0.01
    )


@real_data
def test_alignment_claims(real):
    # initialization: independent Q, K give a symmetric fraction 1/2 + O(1/d)
    assert (
        abs(real["sym_init_min"] - 0.5) < 0.01
        and abs(real["sym_init_max"] - 0.5) < 0.01
    )
    assert real["trace_init_abs_max"] < 0.5
    # trained: median still ≈ 1/2, wide spread, a few heads close to the aligned bound √d_k,
    # most far from it; the most negative head is a nearly symmetric form
    assert abs(real["sym_median"] - 0.5) < 0.05
    assert real["sym_min"] < 0.35 < 0.75 < real["sym_max"]
    assert real["sqrt_dk"] == 8.0
    assert 5 < real["trace_max"] <= real["sqrt_dk"] + 1e-9
    assert -real["sqrt_dk"] - 1e-9 <= real["trace_min"] < -3
    assert real["trace_min_sym"] > 0.75
    assert real["trace_abs_median"] < 2
    assert real["self_excess_max"] > 3 and abs(real["self_excess_median"]) < 1


def test_toy_run_shows_the_adam_mechanism(values):
    # b_k's gradient is rounding noise: relative to b_q's it is of the order of each
    # format's unit roundoff (within 1000×), and the float64 run's is ~1e-9 of float32's
    assert values["toy_grad_ratio_f32"] < 1e3 * U32
    assert values["toy_grad_ratio_f64"] < 1e3 * U64
    assert values["toy_grad_ratio_f64"] < 1e-6 * values["toy_grad_ratio_f32"]
    # SGD leaves b_k at the noise level; Adam with ε below the noise moves it by a sizeable
    # fraction of what b_q learns, and ε above the noise damps that by > 10×
    assert values["toy_bk_drift_sgd"] < 1e-6 * values["toy_bq_drift_sgd"]
    assert values["toy_bk_over_bq_adam12"] > 0.1
    assert values["toy_bk_drift_adam12"] > 10 * values["toy_bk_drift_adam8"]
    # Adam learned the task, SGD at this learning rate barely started
    assert values["toy_loss_adam"] < 0.2 * values["toy_loss_start"]
    assert values["toy_steps"] == 150
    assert math.isfinite(values["toy_loss_sgd"])


@real_data
def test_probe_maximum_is_what_sampling_noise_gives(real):
    # the 95% point of the largest |z| of 144 standard-normal scores: closed form
    n = real["heads"]
    assert real["probe_z_max_95"] == pytest.approx(
        NormalDist().inv_cdf((1 + 0.95 ** (1 / n)) / 2), rel=1e-12
    )
    # the prose: the largest |z| "is what sampling noise alone gives", below the 95%
    # point, and above the 0.1% point of the same maximum (a formula off by a constant
    # factor would push it up, a far too loose SE down)
    z_max_001 = NormalDist().inv_cdf((1 + 0.001 ** (1 / n)) / 2)
    assert z_max_001 < real["probe_z_max"] < real["probe_z_max_95"]


@real_data
def test_standardized_inputs_exercise(real):
    # block 0 with covariance d/(d−1)·(I − 11ᵀ/d): explicit 768 × 768 forms in numpy
    attention = np.load(REFERENCE / "gpt2_small_attention.npz")
    norms = np.load(REFERENCE / "gpt2_small_layernorm.npz")
    partial = np.load(REFERENCE / "gpt2_small_partial.npz")
    w = attention["transformer.h.0.attn.c_attn.weight"].astype(np.float64)
    b = partial["transformer.h.0.attn.c_attn.bias"].astype(np.float64)
    gain = norms["transformer.h.0.ln_1.weight"].astype(np.float64)
    shift = norms["transformer.h.0.ln_1.bias"].astype(np.float64)
    drops = []
    for h in range(12):
        w_q, w_k = w[:, 64 * h : 64 * h + 64], w[:, 768 + 64 * h : 768 + 64 * h + 64]
        c_q = shift @ w_q + b[64 * h : 64 * h + 64]
        c_k = shift @ w_k + b[768 + 64 * h : 768 + 64 * h + 64]
        a_q, a_k = gain[:, None] * w_q, gain[:, None] * w_k
        m = a_q @ a_k.T  # (768, 768)
        # Var = tr(ΣMΣMᵀ) + c_kA_qᵀΣA_qc_k + c_qA_kᵀΣA_kc_q; Σ = I, then Σ = cP with
        # P the centring projection, applied by subtracting means (P = I − 11ᵀ/d)
        centre = 768 / 767 * (m - m.mean(0) - m.mean(1)[:, None] + m.mean())
        x_q, x_k = a_q @ c_k, a_k @ c_q  # (768,) each
        iso = np.sum(m * m) + x_q @ x_q + x_k @ x_k
        std = (
            np.sum(centre * m) * 768 / 767
            + 768 / 767 * (x_q @ x_q - x_q.sum() ** 2 / 768)
            + 768 / 767 * (x_k @ x_k - x_k.sum() ** 2 / 768)
        )
        variances = [iso, std]
        drops.append(100 * (1 - np.sqrt(variances[1] / variances[0])))
    assert real["ex_drop_max"] == pytest.approx(max(drops), rel=1e-6)


def test_toy_run_loss_and_query_bias_recomputed(values):
    # the toy's deterministic part redone in float64 with one head, torch autograd and
    # an Adam written here (lr 1e-2, β 0.9, 0.999, ε 1e-8, bias-corrected), from the same
    # seeded draws: the loss and b_q do not depend on b_k (it cancels in the softmax),
    # so float32 rounding noise in b_k cannot move them; float32 vs float64 agree to
    # ~1e-5 relative after 150 steps (1e-3 allowed)
    import torch

    gen = torch.Generator().manual_seed(0)
    d, d_k, n, batch, steps = 32, 16, 12, 16, values["toy_steps"]

    def draw(*shape, std=1.0):
        return torch.randn(*shape, generator=gen, dtype=torch.float64) * std

    t_q, t_k = draw(d, d_k, std=2 / math.sqrt(d)), draw(d, d_k, std=2 / math.sqrt(d))
    t_v, t_bq = draw(d, d, std=1 / math.sqrt(d)), draw(d_k)
    params = [
        draw(d, d_k, std=0.1),
        draw(d, d_k, std=0.1),
        draw(d, d, std=0.1),
        torch.zeros(d_k),
        torch.zeros(d_k),
        torch.zeros(d),
    ]
    params = [p.double().requires_grad_() for p in params]
    x_all = draw(steps, batch, n, d)
    s = 1 / math.sqrt(d_k)

    def head(x, w_q, w_k, w_v, b_q, b_k, b_v):
        q, k, v = x @ w_q + b_q, x @ w_k + b_k, x @ w_v + b_v
        return torch.softmax(q @ k.mT * s, -1) @ v

    m1 = [torch.zeros_like(p) for p in params]
    m2 = [torch.zeros_like(p) for p in params]
    losses = []
    for step in range(1, steps + 1):
        x = x_all[step - 1]
        with torch.no_grad():
            target = head(x, t_q, t_k, t_v, t_bq, 0 * t_bq, torch.zeros(d))
        loss = ((head(x, *params) - target) ** 2).mean()
        grads = torch.autograd.grad(loss, params)
        losses.append(float(loss.detach()))
        with torch.no_grad():
            adam_step_(params, grads, m1, m2, step, lr=1e-2, beta2=0.999)
    assert values["toy_loss_start"] == pytest.approx(losses[0], rel=1e-5)
    assert values["toy_loss_adam"] == pytest.approx(losses[-1], rel=1e-3)
    b_q_rms = float(params[3].detach().pow(2).mean().sqrt())
    assert values["toy_bq_drift_adam"] == pytest.approx(b_q_rms, rel=1e-3)


@real_data
def test_key_bias_rounding_numbers_recomputed(real):
    # the b_k test redone here with numpy, in the arithmetic the prose describes (q, k
    # and the logits in float32, the softmax in float64; then all in float64), on the
    # page's probe tokens. Rounding-level maxima depend on the order of operations; the
    # same float32 matrix products in the same shapes give the same roundings, so the
    # agreement is to 1e-3 relative (a different BLAS blocking would break it, not a
    # factor 1.5 of the rounding itself)
    attention = np.load(REFERENCE / "gpt2_small_attention.npz")
    partial = np.load(REFERENCE / "gpt2_small_partial.npz")
    norms = np.load(REFERENCE / "gpt2_small_layernorm.npz")
    change32, change64, rounding, use = 0.0, 0.0, 0.0, 0.0

    def gamma(n, unit):  # Higham's γ_n = nu/(1 − nu)
        return n * unit / (1 - n * unit)

    for i, rng in enumerate(np.random.default_rng(7).spawn(12)):
        w = attention[f"transformer.h.{i}.attn.c_attn.weight"]
        b = partial[f"transformer.h.{i}.attn.c_attn.bias"]
        gain = norms[f"transformer.h.{i}.ln_1.weight"].astype(np.float64)
        shift = norms[f"transformer.h.{i}.ln_1.bias"].astype(np.float64)
        u = (gain * rng.standard_normal((64, 768)) + shift).astype(np.float32)
        results = {}
        for dtype in (np.float32, np.float64):
            uu, ww, bb = u.astype(dtype), w.astype(dtype), b.astype(dtype)

            def heads(x):  # (64, 768) -> (12, 64, 64)
                return np.ascontiguousarray(x.reshape(64, 12, 64).transpose(1, 0, 2))

            q_lin, k_lin = heads(uu @ ww[:, :768]), heads(uu @ ww[:, 768:1536])
            q = q_lin + bb[:768].reshape(12, 1, 64)
            k = k_lin + bb[768:1536].reshape(12, 1, 64)
            p = _softmax(((1 / 8) * (q @ k.swapaxes(-1, -2))).astype(np.float64))
            p_no = _softmax(((1 / 8) * (q @ k_lin.swapaxes(-1, -2))).astype(np.float64))
            results[dtype] = (p, np.abs(p_no - p).max())
            if dtype is np.float32:
                # the worst-case bound the prose states: every q, k coordinate off by
                # γ_769(|u||W| + |b|), the 64-term dot by γ_64|q||k|, pushed through
                # the softmax (weights move by a factor e^{±2Δ}), plus the float64
                # softmax's own 2γ_67; the observed change is compared with it
                unit = float(np.finfo(np.float32).eps) / 2
                g_proj, g_dot = gamma(769, unit), gamma(64, unit)
                a_u, a_w = np.abs(u.astype(np.float64)), np.abs(w.astype(np.float64))
                a_b = np.abs(b.astype(np.float64))
                err_q = g_proj * (
                    heads(a_u @ a_w[:, :768]) + a_b[:768].reshape(12, 1, 64)
                )
                err_k0 = g_proj * heads(a_u @ a_w[:, 768:1536])
                err_k1 = err_k0 + g_proj * a_b[768:1536].reshape(12, 1, 64)
                q_abs = np.abs(q.astype(np.float64))

                def delta(k_abs, err_k, err_q=err_q, q_abs=q_abs, g_dot=g_dot):
                    total = (
                        err_q @ k_abs.swapaxes(-1, -2)
                        + (q_abs + err_q) @ err_k.swapaxes(-1, -2)
                        + g_dot * (q_abs @ k_abs.swapaxes(-1, -2))
                    )
                    return total.max(axis=-1, keepdims=True) / 8

                d1 = delta(np.abs(k.astype(np.float64)), err_k1)
                d0 = delta(np.abs(k_lin.astype(np.float64)), err_k0)
                soft = 2 * gamma(67, float(np.finfo(np.float64).eps) / 2)
                bound = (
                    p * np.exp(2 * d1) * (np.expm1(2 * d1) + np.expm1(2 * d0) + soft)
                )
                use = max(use, np.max(np.abs(p_no - p) / np.maximum(bound, 1e-300)))
        change32 = max(change32, results[np.float32][1])
        change64 = max(change64, results[np.float64][1])
        rounding = max(
            rounding, np.abs(results[np.float32][0] - results[np.float64][0]).max()
        )
    assert real["bk_change_max"] == pytest.approx(change32, rel=1e-3)
    assert real["bk_change_max_f64"] == pytest.approx(change64, rel=1e-3, abs=0)
    assert real["f32_rounding_max"] == pytest.approx(rounding, rel=1e-3)
    assert real["bk_bound_use_max"] == pytest.approx(use, rel=1e-3)


@real_data
def test_reconstructed_initialization_recomputed(real):
    # the page's initialization draws (gpt2.init_tensors, seed 0, in the page's order)
    # and an explicit 768 × 768 M per head: |tr M|/‖M‖_F and the symmetric fraction
    from numscale.models import gpt2_model

    names = [f"h.{i}.attn.c_attn.{p}" for i in range(12) for p in ("weight", "bias")]
    init = gpt2_model.init_tensors(names, seed=0)
    trace, sym, std = [], [], []
    for i in range(12):
        w = init[f"h.{i}.attn.c_attn.weight"].astype(np.float64)
        for h in range(12):
            m = w[:, 64 * h : 64 * h + 64] @ w[:, 768 + 64 * h : 768 + 64 * h + 64].T
            frob2 = np.sum(m * m)
            trace.append(np.trace(m) / np.sqrt(frob2))
            sym.append(np.sum(((m + m.T) / 2) ** 2) / frob2)
            std.append(np.sqrt(frob2) / 8)  # biases 0, gains 1
    assert real["trace_init_abs_max"] == pytest.approx(np.abs(trace).max(), rel=1e-6)
    assert real["sym_init_min"] == pytest.approx(min(sym), rel=1e-6)
    assert real["sym_init_max"] == pytest.approx(max(sym), rel=1e-6)
    assert real["init_std_min"] == pytest.approx(min(std), rel=1e-6)
    assert real["init_std_max"] == pytest.approx(max(std), rel=1e-6)
