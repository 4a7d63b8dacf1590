"""Claims of book/trained_attention.md, asserted on the glued values of the executed page.

The trained-model claims need the real stories260K files (skipped without them); the book
build reads them when NUMSCALE_TINYSTORIES points at the reference folder (the Makefile sets
it when the folder is present). The statistics helpers themselves are tested on a tiny
random model in tests/test_attention_rows.py and tests/test_llama_runs.py.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from conftest import off_reference

pytestmark = pytest.mark.build
PAGE = "book/trained_attention"
PREFIX = "tatt_"


def test_initialization_matches_the_derivation(values):
    # 40 query heads, but grouped-query attention makes pairs of them share one W_K: 20
    # independent (W_Q pair, W_K) draws at most, so the mean over heads has standard
    # error at most sd/√20; 4 of them. The ε correction of RMSNorm is part of the
    # prediction.
    se = values["init_std_sd"] / math.sqrt(20)
    assert abs(values["init_std_mean"] - values["init_std_corrected"]) < 4 * se
    assert values["init_std_predicted"] == pytest.approx(64 * 0.02**2, rel=1e-12)
    # near-uniform attention at init: logits of std 0.025 give H ≈ ln n − σ²/2, i.e.
    # a relative deficit of order σ²/(2 ln n) ≈ 1e-4
    assert values["init_norm_entropy_min"] > 0.999


def test_unit_init_exercise_prediction(values):
    # σ_w = 1/√d_model makes d_model σ_w² = 1, so the prediction is the ε factor alone:
    # the corrected over the uncorrected prediction at σ_w = 0.02 (exact arithmetic up to
    # a few float64 roundings); it is below 1, the point of the solution's "approximately"
    factor = values["init_std_corrected"] / values["init_std_predicted"]
    assert values["unit_predicted"] == pytest.approx(factor, rel=1e-12)
    assert values["unit_predicted"] < 1


def test_trained_logits_are_far_wider_than_unit(values):
    # "several to tens of units wide": every head's within-row std above 1, the widest
    # above 10. Each is an average over ~3,000 rows of 12 stories; the margins are wide
    # against story-to-story variation (the smallest head measured ~2.2).
    assert values["within_min"] > 1.0
    assert values["within_max"] > 10.0
    # law of total variance: within ≤ pooled head by head, hence for the min and the max
    assert values["within_min"] <= values["pooled_min"] * (1 + 1e-9)
    assert values["within_max"] <= values["pooled_max"] * (1 + 1e-9)
    assert values["within_over_init_median"] > 100


def test_entropy_far_from_uniform_and_not_one_hot(values):
    # every head far from uniform (normalized entropy < 0.9), none one-hot (> 0.05)
    assert values["norm_entropy_max"] < 0.9
    assert values["norm_entropy_min"] > 0.05
    assert values["entropy_max"] < values["uniform_entropy"]


def test_no_attention_sink(values):
    # no head gives the BOS token a large, position-independent share: at t >= 128 the
    # largest head mean stays within 2x of uniform (measured ~1.3x) and every head's mean
    # over all rows below 0.1 (a sink would hold a constant share, 0.2 or more)
    assert values["late_first_max"] < 2 * values["late_uniform"]
    # the prose: even the head that favours it most gives it "less than 1%" there
    assert values["late_first_max"] < 0.01
    assert values["first_max"] < 0.1
    # at initialization the weight is uniform: the largest head within 10% of uniform
    assert values["init_first_max"] == pytest.approx(
        values["init_first_uniform"], rel=0.1
    )


def test_scale_sweep(values):
    assert values["c_dk_on_grid"] == pytest.approx(1 / math.sqrt(8), rel=1e-12)
    assert values["c_best_grid"] == pytest.approx(1.0, rel=1e-12)
    # both neighbours of c = 1 are worse by more than 3 paired standard errors
    assert values["diff_above"] > 3 * values["diff_above_se"]
    assert values["diff_below"] > 3 * values["diff_below_se"]
    # 1/d_k instead of 1/√d_k: a large, well-resolved loss increase
    assert values["diff_dk"] > 10 * values["diff_dk_se"]
    assert values["diff_dk"] > 0.1
    # asymmetry: c = 1/4 costs more than c = 4, by far more than either SE (~0.03)
    assert values["loss_c_min"] - values["loss_c_max"] > 0.3


def test_fp16_headroom(values):
    assert values["fp16_ln_max"] == pytest.approx(math.log(65504), rel=1e-12)
    assert values["attn_logit_max"] > values["fp16_ln_max"]
    assert values["output_logit_max"] > values["fp16_ln_max"]
    assert 0 < values["rows_above_pct"] < 100


# ---------------------------------------------------------------- independent recomputation
# The quoted numbers recomputed from the reference files with the float64 NumPy forward of
# tests/stories_reference.py and statistics written out here (not the chapter's torch
# model and attention_rows reducers). The chapter's float32 forward differs by ~1e-6
# relative; REL = 1e-3 covers it and fails a value 1.5 times too large or too small.
REL = 1e-3
N_STORIES, N_INIT = 12, 2  # the chapter's inputs
MULTIPLIERS = 2.0 ** (np.arange(-4, 5) / 2)  # 1/4 … 4, as log_spaced_multipliers


def _vertex(x: np.ndarray, curve: np.ndarray) -> float:
    """Vertex (in c) of the parabola in ln c through the grid minimum and its two
    neighbours; the grid minimum itself at the grid's edge or for a downward parabola."""
    best = int(np.argmin(curve))
    if best in (0, curve.size - 1):
        return float(np.exp(x[best]))
    a, b, _ = np.polyfit(x[best - 1 : best + 2], curve[best - 1 : best + 2], 2)
    return float(np.exp(-b / (2 * a))) if a > 0 else float(np.exp(x[best]))


@pytest.fixture(scope="module")
def reference():
    import stories_reference as sr
    from numscale.models import llama

    data = sr.load_reference()
    weights, config = data.weights, data.weights.config
    ids = sr.story_ids(data, N_STORIES)
    r: dict[str, float] = {"n_predicted": sum(i.size - 1 for i in ids)}

    def head_stats(runs, late_from):
        """Per (layer, head) statistics over the rows t ≥ 1 of every story."""
        L, H = runs[0].attn.shape[:2]
        pooled = np.zeros((L, H))
        ent, nent, first, late = (np.zeros((L, H)) for _ in range(4))
        n_rows = n_late = 0
        uniform_ent = uniform_first = uniform_late = 0.0
        entries = [[[] for _ in range(H)] for _ in range(L)]
        row_var = np.zeros((L, H))
        n_entries = 0
        for run in runs:
            n = run.ids.size
            t = np.arange(1, n)
            z = run.attn[:, :, 1:, :]  # rows t ≥ 1
            causal = np.tril(np.ones((n, n), dtype=bool))[1:]
            zc = np.where(causal, z, np.nan)
            p = np.exp(z - z.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            with np.errstate(divide="ignore", invalid="ignore"):
                h = -np.where(p > 0, p * np.log(p), 0.0).sum(-1)  # (L, H, n-1)
            ent += h.sum(-1)
            nent += (h / np.log(t + 1)).sum(-1)
            first += p[..., 0].sum(-1)
            late += p[..., t >= late_from, 0].sum(-1)
            n_rows += t.size
            n_late += int((t >= late_from).sum())
            uniform_ent += np.log(t + 1).sum()
            uniform_first += (1 / (t + 1)).sum()
            uniform_late += (1 / (t[t >= late_from] + 1)).sum()
            row_mean = np.nanmean(zc, axis=-1, keepdims=True)
            row_var += np.nansum((zc - row_mean) ** 2, axis=(-1, -2))
            n_entries += int(causal.sum())
            for layer in range(L):
                for head in range(H):
                    entries[layer][head].append(z[layer, head][causal])
        for layer in range(L):
            for head in range(H):
                pooled[layer, head] = np.concatenate(entries[layer][head]).std()
        within = np.sqrt(row_var / n_entries)
        return {
            "pooled": pooled,
            "within": within,
            "entropy": ent / n_rows,
            "norm_entropy": nent / n_rows,
            "first": first / n_rows,
            "late": late / max(n_late, 1),
            "uniform_entropy": uniform_ent / n_rows,
            "uniform_first": uniform_first / n_rows,
            "uniform_late": uniform_late / max(n_late, 1),
        }

    runs = [sr.forward(weights, i) for i in ids]
    late_from = 256 // 2
    s = head_stats(runs, late_from)
    init_w = llama.init_weights(config, seed=0)
    init_runs = [sr.forward(init_w, i) for i in ids[:N_INIT]]
    si = head_stats(init_runs, late_from)
    emb = np.concatenate([run.stream[0] for run in init_runs])
    r2 = (emb**2).mean()
    predicted = config.dim * 0.02**2 * r2 / (r2 + sr.EPS)
    r.update(
        init_std_corrected=predicted,
        init_unit_ratio=1 / predicted,
        init_std_min=si["pooled"].min(),
        init_std_max=si["pooled"].max(),
        init_std_mean=si["pooled"].mean(),
        init_std_sd=si["pooled"].std(ddof=1),
        init_norm_entropy_min=si["norm_entropy"].min(),
        init_first_max=si["first"].max(),
        init_first_uniform=si["uniform_first"],
    )
    r.update(
        within_min=s["within"].min(),
        within_max=s["within"].max(),
        within_median=np.median(s["within"]),
        pooled_min=s["pooled"].min(),
        pooled_max=s["pooled"].max(),
        within_over_init_median=np.median(s["within"] / si["within"]),
        entropy_min=s["entropy"].min(),
        entropy_max=s["entropy"].max(),
        uniform_entropy=s["uniform_entropy"],
        norm_entropy_min=s["norm_entropy"].min(),
        norm_entropy_max=s["norm_entropy"].max(),
        norm_entropy_median=np.median(s["norm_entropy"]),
        first_min=s["first"].min(),
        first_max=s["first"].max(),
        first_uniform=s["uniform_first"],
        first_max_over_uniform=s["first"].max() / s["uniform_first"],
        heads_above_uniform=int((s["first"] > s["uniform_first"]).sum()),
        late_first_max=s["late"].max(),
        late_uniform=s["uniform_late"],
    )
    # float16 headroom: the largest logit over every real row, t = 0 included; the
    # share of rows above ln16 over the rows t ≥ 1 (row 0 has one key), as the chapter
    ln16 = float(np.log(np.finfo(np.float16).max))
    row_max = np.concatenate([run.attn.max(-1).ravel() for run in runs])
    row_max_t1 = np.concatenate([run.attn[:, :, 1:].max(-1).ravel() for run in runs])
    above_by_head = sum((run.attn[:, :, 1:].max(-1) > ln16).sum(-1) for run in runs)
    r.update(
        fp16_ln_max=ln16,
        bf16_ln_max=float(np.log((2 - 2.0**-7) * 2.0**127)),
        attn_logit_max=row_max.max(),
        rows_above_pct=100 * (row_max_t1 > ln16).mean(),
        heads_with_rows_above=int((above_by_head > 0).sum()),
        output_logit_max=max(np.abs(run.logits).max() for run in runs),
    )
    # the scale sweep: summed NLL per story at every multiplier
    sums = np.array(
        [
            [
                sr.story_nll(sr.forward(weights, i, c, keep_attention=False))[0]
                for i in ids
            ]
            for c in MULTIPLIERS
        ]
    )  # (9, stories)
    counts = np.array([i.size - 1 for i in ids])
    loss = sums.sum(1) / counts.sum()
    k1, kdk = 4, 1  # c = 1 and c = 2^(-3/2) = 1/√8 on the grid
    r["loss_c1"], r["loss_c1_se"] = sr.ratio_mean_se(sums[k1], counts)
    r["loss_dk"], r["loss_c_max"], r["loss_c_min"] = loss[kdk], loss[-1], loss[0]
    for name, k in (("dk", kdk), ("above", k1 + 1), ("below", k1 - 1)):
        r[f"diff_{name}"], r[f"diff_{name}_se"] = sr.ratio_mean_se(
            sums[k] - sums[k1], counts
        )
    x = np.log(MULTIPLIERS)
    r["c_best_grid"] = MULTIPLIERS[np.argmin(loss)]
    r["c_vertex"] = _vertex(x, loss)
    rng = np.random.default_rng(20260)
    boots = []
    for _ in range(2000):
        pick = rng.integers(0, counts.size, counts.size)
        boots.append(_vertex(x, sums[:, pick].sum(1) / counts[pick].sum()))
    r["c_vertex_lo"], r["c_vertex_hi"] = np.percentile(boots, [2.5, 97.5])
    return {k: float(v) for k, v in r.items()}


# Tolerances other than REL, with their reasons.
LOOSE = {
    # percentiles of 200 bootstrap draws (the chapter) against 2,000 (here): the Monte
    # Carlo error of a 2.5% quantile from 200 draws is ≈ 0.005 in c; 0.03 is 6 of them
    "c_vertex_lo": ("abs", 0.03),
    "c_vertex_hi": ("abs", 0.03),
    # a count of rows against a threshold: the chapter's float32 count and this float64
    # one differ by 0.16% (a few rows of ~118,000; not traced further); 1% still fails
    # a share 1.5 times too large or too small
    "rows_above_pct": ("rel", 0.01),
}


def test_quoted_numbers_match_an_independent_float64_forward(values, reference):
    wrong = off_reference(values, reference, REL, LOOSE)
    assert not wrong, wrong


def test_vertex_is_the_three_point_parabola(values):
    # closed form: through (−h, Δ₋), (0, 0), (h, Δ₊) in ln c, h = ln √2, the vertex is at
    # h(Δ₋ − Δ₊)/(2(Δ₋ + Δ₊)); paired differences are differences of the mean losses
    h = math.log(math.sqrt(2))
    lo, hi = values["diff_below"], values["diff_above"]
    assert values["c_vertex"] == pytest.approx(
        math.exp(h * (lo - hi) / (2 * (lo + hi))), rel=1e-9
    )
    # the prose: "slightly above c = 1", resolved by the bootstrap interval
    assert 1 < values["c_vertex_lo"] < values["c_vertex"] < values["c_vertex_hi"]


def test_inputs_are_declared(values):
    for name in (
        "n_stories",
        "n_init_stories",
        "n_multipliers",
        "c_inv_sqrt_dk",
        "c_dk_on_grid",
        "c_above",
        "c_below",
        "late_from",
    ):
        assert values[f"{name}__is_input"] == 1
    assert values["n_stories"] == N_STORIES
    assert values["n_init_stories"] == N_INIT
    assert values["c_inv_sqrt_dk"] == pytest.approx(8**-0.5, rel=1e-12)
    assert (values["c_below"], values["c_above"]) == pytest.approx((2**-0.5, 2**0.5))
