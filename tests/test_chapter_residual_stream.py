"""Claims of book/residual_stream.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytestmark = pytest.mark.build
PAGE = "book/residual_stream"

# Student's t quantiles for the mean of 4 seeds (3 degrees of freedom).
T3_ONE_SIDED_95 = 2.353
T3_TWO_SIDED_99 = 5.841


def test_stream_norms(values):
    # post-LN: ‖x‖ = √d·√(σ²/(σ²+ε)) after every block, within √d·ε/2 of √d, plus float32
    # rounding of a 128-term norm (≈ √d·128·eps32)
    sqrt_d = values["res_sqrt_d"]
    assert sqrt_d == pytest.approx(math.sqrt(128), rel=1e-15)
    tol = sqrt_d * (1e-5 / 2 + 128 * 1.2e-7)
    assert (
        sqrt_d - tol
        <= values["res_post_norm_min"]
        <= values["res_post_norm_max"]
        <= sqrt_d + tol
    )
    # pre-LN: grows (√(1 + 2Lρ²) with ρ² of order 0.2–0.5 gives 3–5 at L = 24; band 2–7 as in
    # tests/test_residual.py)
    assert 2 < values["res_pre_growth"] < 7


def test_gradient_pattern_across_blocks(values):
    # prose: near the output post-LN > pre-LN, near the input the order is reversed
    assert values["res_grad_ratio_last"] > 1 > values["res_grad_ratio_first"]
    # prose: pre-LN's gradients fall from block 1 to 24, the stream gradient rises backward,
    # and the weight gradient per unit of stream gradient varies far less (taken as less
    # than half of the fall's factor) than the weight gradient itself
    assert values["res_pre_grad_fall"] > 1.5
    assert values["res_pre_stream_grad_rise"] > 1.5
    assert values["res_pre_per_stream_spread"] < 0.5 * values["res_pre_grad_fall"]


def test_last_block_slopes(values):
    # pre-LN: consistent with −½ over 4 seeds (two-sided 99% t_3 interval), as the prose says
    assert (
        abs(values["res_slope_pre"] + 0.5)
        < T3_TWO_SIDED_99 * values["res_slope_pre_se"]
    )
    # a single seed's least-squares SE (not a valid SE: its four depths are nested
    # models) is smaller than the seed-to-seed spread (the prose's point)
    assert values["res_slope_pre_seed0_fit_se"] < values["res_slope_pre_seed_sd"]
    # prose: "what is left rises slowly" and "post-LN's rises": one-sided 95% with t_3
    assert (
        values["res_slope_corrected"]
        > T3_ONE_SIDED_95 * values["res_slope_corrected_se"]
    )
    assert values["res_slope_post"] > T3_ONE_SIDED_95 * values["res_slope_post_se"]


def test_division_steeper_than_equal_updates_predict(values):
    # prose: the final LayerNorm's division is steeper than −½ (one-sided 95%, t_3) ...
    growth_slope, se = values["res_slope_growth"], values["res_slope_growth_se"]
    assert growth_slope + 0.5 < -T3_ONE_SIDED_95 * se
    # ... while equal updates of relative size ρ predict a shallower one. Closed form:
    # the log–log least-squares slope of (1 + 2Lρ²)^(−1/2) over the chapter's depths
    depths = np.array([3.0, 6.0, 12.0, 24.0])
    rho = values["res_rho"]
    expected = np.polyfit(np.log(depths), -0.5 * np.log1p(2 * depths * rho**2), 1)[0]
    assert values["res_equal_updates_slope"] == pytest.approx(expected, rel=1e-9)
    assert values["res_equal_updates_slope"] > -0.5
    # ρ itself from ‖x_L‖² = d(1 + 2Lρ²) with the quoted norm (exact arithmetic)
    ratio = values["res_pre_norm_L"] / values["res_sqrt_d"]
    assert rho == pytest.approx(math.sqrt((ratio**2 - 1) / (2 * 24)), rel=1e-9)
    # the updates are not equal: the last six blocks add more than the first six
    # (one-sided 95%, t_3 over the four seeds)
    excess = values["res_late_over_early"] - 1
    assert excess > T3_ONE_SIDED_95 * values["res_late_over_early_se"]
    # prose: in seed 0 the last block shrinks the stream (its addition is negative)
    assert values["res_added_last_seed0"] < 0
    # prose: block 24's addition varies far more between seeds than block 1's. One-sided
    # 95% F-test of equal variances on 3 and 3 degrees of freedom: F(0.95; 3, 3) = 9.28,
    # so the ratio of the standard errors (same 4 seeds) must exceed √9.28 = 3.05
    assert values["res_added_last_se"] > 3.05 * values["res_added_first_se"]


def test_tokens_become_more_alike_with_depth(values):
    # prose: the mean token cosine rises from L = 3 to 24 in both arrangements; the rise
    # exceeds the one-sided 95% t_3 multiple of the two means' combined SE. The two
    # means come from the same seeds' nested models (correlated), so the SE of their
    # difference is bounded by the sum of the SEs (any correlation), not by their
    # quadrature sum (independence)
    for pos in ("post", "pre"):
        rise = values[f"res_cos_{pos}_last"] - values[f"res_cos_{pos}_first"]
        se = values[f"res_cos_{pos}_last_se"] + values[f"res_cos_{pos}_first_se"]
        assert rise > T3_ONE_SIDED_95 * se


def test_initial_stream_norm_is_the_chi_mean(values):
    # N(0, 1) embeddings of width d = 128: E‖x‖ = √2 Γ((d+1)/2)/Γ(d/2) ≈ 11.29, sd ≈ 1/√2.
    # The 256 tokens draw at least 150 distinct rows (256 ids out of a vocabulary of
    # 256: ~162 distinct expected); mean over ≥150 independent norms has SE ≤ 0.058; 5 SE.
    d = 128
    chi_mean = math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))
    assert values["res_pre_norm_0"] == pytest.approx(
        chi_mean, abs=5 * 0.7072 / math.sqrt(150)
    )


# ---------------------------------------------------------------- recomputation from the model
# The toy models are rebuilt from their seeds (numscale.residual.ToyTransformer, the object
# the chapter measures) and every quoted statistic is recomputed here with torch autograd
# and NumPy written out in this file, not with gradient_profile, last_block_sweep,
# mean_token_cosine or loglog_slope. This guards the chapter's bookkeeping (which block,
# which seed, which ratio) and its glue, not the model; the model's behaviour is guarded
# by the theory checks above and by tests/test_residual.py. Same float32 arithmetic in
# the same order: REL = 1e-6 (a relative 1e-4 for the slopes' standard errors, which are
# differences of nearly equal numbers).
REL = 1e-6
DEPTHS, SEEDS, D, VOCAB = [3, 6, 12, 24], [0, 1, 2, 3], 128, 256  # the chapter's inputs


@pytest.fixture(scope="module")
def reference():
    import torch
    import torch.nn.functional as F

    from numscale import residual

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ids, targets = residual.toy_batch(VOCAB, batch=4, seq=64, seed=1)

    def run(seed, depth, pos):
        model = residual.ToyTransformer(D, depth, pos, seed=seed, vocab=VOCAB)
        logits, streams = model(ids)
        for x in streams:
            x.retain_grad()
        F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
        wgrad = np.array(
            [
                math.hypot(float(b["fc"].grad.norm()), float(b["proj"].grad.norm()))
                for b in model.blocks
            ]
        )
        sgrad = np.array([float(x.grad.norm()) for x in streams])
        norms = np.array([float(x.detach().norm(dim=-1).mean()) for x in streams])
        u = streams[-2].detach().double().reshape(-1, D)
        u = u - u.mean(dim=1, keepdim=True)
        u = u / u.norm(dim=1, keepdim=True)
        gram = (u @ u.T).numpy()
        n = gram.shape[0]
        cosine = (gram.sum() - np.trace(gram)) / (n * (n - 1))
        return wgrad, sgrad, norms, cosine

    out = {
        (s, L, pos): run(s, L, pos)
        for s in SEEDS
        for L in DEPTHS
        for pos in ("pre", "post")
    }
    torch.set_num_threads(threads)
    r: dict[str, float] = {}
    pre, post = out[0, 24, "pre"], out[0, 24, "post"]
    r.update(
        res_pre_norm_0=pre[2][0],
        res_pre_norm_1=pre[2][1],
        res_pre_norm_L=pre[2][-1],
        res_pre_growth=pre[2][-1] / pre[2][0],
        res_grad_pre_first=pre[0][0],
        res_grad_pre_last=pre[0][-1],
        res_grad_post_first=post[0][0],
        res_grad_post_last=post[0][-1],
        res_grad_ratio_first=post[0][0] / pre[0][0],
        res_grad_ratio_last=post[0][-1] / pre[0][-1],
        res_pre_grad_fall=pre[0][0] / pre[0][-1],
        res_pre_stream_grad_rise=pre[1][0] / pre[1][-1],
    )
    per_stream = pre[0] / pre[1][1:]
    r["res_pre_per_stream_spread"] = per_stream.max() / per_stream.min()
    x = np.log(DEPTHS)

    def fit(y):
        """Least-squares slope of log y against log L and its usual standard error."""
        slope, icpt = np.polyfit(x, np.log(y), 1)
        res = np.log(y) - (slope * x + icpt)
        return slope, math.sqrt(res @ res / (x.size - 2) / ((x - x.mean()) ** 2).sum())

    def over_seeds(rows):
        slopes = np.array([fit(row)[0] for row in rows])
        return slopes.mean(), slopes.std(ddof=1) / math.sqrt(len(SEEDS)), slopes

    last = {
        pos: np.array([[out[s, L, pos][0][-1] for L in DEPTHS] for s in SEEDS])
        for pos in ("pre", "post")
    }
    growth = np.array(
        [
            [out[s, L, "pre"][2][-1] / out[s, L, "pre"][2][0] for L in DEPTHS]
            for s in SEEDS
        ]
    )
    m, se, per_seed = over_seeds(last["pre"])
    r.update(
        res_slope_pre=m,
        res_slope_pre_se=se,
        res_slope_pre_z=(m + 0.5) / se,
        res_slope_pre_seed0=per_seed[0],
        res_slope_pre_seed0_fit_se=fit(last["pre"][0])[1],
        res_slope_pre_seed_sd=per_seed.std(ddof=1),
    )
    m, se, _ = over_seeds(last["post"])
    r.update(res_slope_post=m, res_slope_post_se=se, res_slope_post_z=m / se)
    r["res_slope_growth"], r["res_slope_growth_se"], _ = over_seeds(1 / growth)
    r["res_slope_corrected"], r["res_slope_corrected_se"], _ = over_seeds(
        last["pre"] * growth
    )
    for pos in ("pre", "post"):
        cos = np.array([[out[s, L, pos][3] for L in (3, 24)] for s in SEEDS])
        for k, where in enumerate(("first", "last")):
            r[f"res_cos_{pos}_{where}"] = cos[:, k].mean()
            r[f"res_cos_{pos}_{where}_se"] = cos[:, k].std(ddof=1) / math.sqrt(
                len(SEEDS)
            )
    added = np.array([np.diff(out[s, 24, "pre"][2] ** 2) / D for s in SEEDS])
    ratio = added[:, -6:].sum(1) / added[:, :6].sum(1)
    r.update(
        res_added_first=added[:, 0].mean(),
        res_added_first_se=added[:, 0].std(ddof=1) / math.sqrt(len(SEEDS)),
        res_added_last=added[:, -1].mean(),
        res_added_last_se=added[:, -1].std(ddof=1) / math.sqrt(len(SEEDS)),
        res_added_last_seed0=added[0, -1],
        res_late_over_early=ratio.mean(),
        res_late_over_early_se=ratio.std(ddof=1) / math.sqrt(len(SEEDS)),
    )
    return {k: float(v) for k, v in r.items()}


def test_quoted_numbers_match_a_recomputation(values, reference):
    wrong = {}
    for name, expected in reference.items():
        rel = 1e-4 if name.endswith(("_se", "_sd", "_z")) else REL
        if values[name] != pytest.approx(expected, rel=rel, abs=0):
            wrong[name] = (values[name], expected)
    assert not wrong, wrong


def test_inputs_are_declared(values):
    for name in ("res_L", "res_n_seeds", "res_d"):
        assert values[f"{name}__is_input"] == 1
    assert (values["res_L"], values["res_n_seeds"], values["res_d"]) == (24, 4, 128)
