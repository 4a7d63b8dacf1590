"""Claims of book/trained_residual.md, asserted on the glued values of the executed page
(real stories260K files needed; skipped without them). The helpers are tested on a tiny
random model in tests/test_attention_rows.py and tests/test_llama_runs.py."""

from __future__ import annotations

import pytest

from conftest import off_reference

pytestmark = pytest.mark.build
PAGE = "book/trained_residual"
PREFIX = "tres_"


def test_stream_growth_breaks_the_sqrt_l_assumptions(values):
    # trained growth several-fold, initialization's a few per cent (the 1/√(2L) branch init)
    assert values["growth"] > 3
    assert values["init_growth"] < 1.1
    # updates positively aligned with the stream in every block (cosines ~0.2-0.4, each
    # a mean over ~6,000 tokens)
    assert values["cos_min"] > 0.05
    # the cross term carries a sizeable share of the growth; equal uncorrelated updates
    # of the first block's size would grow the stream less than measured
    assert 0.1 < values["cross_share"] < 0.9
    assert values["sqrt_growth"] < values["growth"]


def test_no_massive_activations(values):
    # Sun et al.'s ratio criterion (~1,000x the token's median): more than 10x short
    assert values["criterion_over_ratio"] > 10
    assert values["token_ratio_max"] < 100
    assert values["channel_rms_ratio_max"] < 10


def test_gains(values):
    assert values["n_gains"] == 704
    assert values["n_negative"] == 0
    assert values["gain_min"] > 0
    assert values["att_median"] > values["mlp_median"]
    assert values["final_median"] > 1


def test_output_logits(values):
    assert values["entropy_mean"] < values["ln_vocab"] / 2
    assert values["ln_vocab"] == pytest.approx(6.238324625039508, rel=1e-12)
    # "slightly overconfident": the loss exceeds the mean entropy by more than 2 paired SE
    assert values["loss_minus_entropy"] > 2 * values["loss_minus_entropy_se"]


def test_formats(values):
    # bfloat16's 8-bit mantissa costs little, float16 less; both far below the loss SE
    assert abs(values["bf16_diff"]) < 0.01
    assert abs(values["fp16_diff"]) < 0.001
    assert abs(values["fp16_diff"]) < values["loss32_se"]
    # the ranking of headroom stated in the prose
    assert values["qk_fp16_doublings"] < values["squares_fp16_doublings"]
    assert values["squares_fp16_doublings"] < values["logits_fp16_doublings"]
    assert values["squares_fp16_doublings"] < values["x_fp16_doublings"]
    assert values["qk_fp16_doublings"] > 1  # nothing overflows
    assert values["attn_below_normal_pct"] > 10
    assert values["attn_to_zero_pct"] < values["attn_below_normal_pct"]


# ---------------------------------------------------------------- independent recomputation
# Every number the prose quotes is recomputed from the reference files with the float64
# NumPy forward of tests/stories_reference.py and statistics written out here, not with
# the chapter's torch model and activation_stats reducers. The chapter's float32 forward
# differs from it by ~1e-6 relative; REL = 1e-3 covers that and still fails a value that
# is 1.5 times too large or too small.
REL = 1e-3
N_STORIES, N_INIT, N_FORMAT, N_ATTENTION = 24, 8, 16, 2  # the chapter's inputs


@pytest.fixture(scope="module")
def reference():
    import numpy as np
    import torch

    import stories_reference as sr
    from numscale.models import llama

    data = sr.load_reference()
    weights, config = data.weights, data.weights.config
    ids = sr.story_ids(data, N_STORIES)
    runs = [
        sr.forward(weights, i, keep_attention=k < N_ATTENTION)
        for k, i in enumerate(ids)
    ]
    init_w = llama.init_weights(config, seed=0)
    init_runs = [sr.forward(init_w, i, keep_attention=False) for i in ids[:N_INIT]]
    r: dict[str, float] = {}

    def growth_stats(stream_list):
        x = np.concatenate(stream_list, axis=1)  # (L+1, N, d)
        return x, np.sqrt((x**2).mean(axis=(1, 2)))

    x, rms = growth_stats([run.stream for run in runs])
    d = x.shape[-1]
    r.update(rms_0=rms[0], rms_L=rms[-1], growth=rms[-1] / rms[0], n_tokens=x.shape[1])
    delta, before = np.diff(x, axis=0), x[:-1]
    update_sq = (delta**2).sum(-1).mean(1) / d
    update_rms = np.sqrt(update_sq)
    cos = (
        (before * delta).sum(-1)
        / np.linalg.norm(before, axis=-1)
        / np.linalg.norm(delta, axis=-1)
    ).mean(axis=1)
    cross = 2 * (before * delta).sum(-1).mean(1) / d
    r.update(
        update_rms_1=update_rms[0],
        update_rms_L=update_rms[-1],
        update_ratio_min=(update_rms / rms[:-1]).min(),
        update_ratio_max=(update_rms / rms[:-1]).max(),
        cos_min=cos.min(),
        cos_max=cos.max(),
        cross_share=cross.sum() / (rms[-1] ** 2 - rms[0] ** 2),
        sqrt_growth=np.sqrt(1 + config.n_layers * update_sq[0] / rms[0] ** 2),
    )
    xi, rms_i = growth_stats([run.stream for run in init_runs])
    r.update(init_rms_0=rms_i[0], init_growth=rms_i[-1] / rms_i[0])

    def token_ratio_max(a):
        a = np.abs(a)
        return (a.max(axis=2) / np.median(a, axis=2)).max()

    r.update(
        token_ratio_max=token_ratio_max(x),
        init_token_ratio_max=token_ratio_max(xi),
        criterion_over_ratio=1000 / token_ratio_max(x),
        max_abs=np.abs(x).max(),
        first_max_abs=max(np.abs(run.stream[:, 0]).max() for run in runs),
    )
    channel_rms = np.sqrt((x**2).mean(axis=1))  # (L+1, d)
    r["channel_rms_ratio_max"] = (channel_rms.max(1) / np.median(channel_rms, 1)).max()
    gains = np.concatenate(
        [weights.rms_att.ravel(), weights.rms_ffn.ravel(), weights.rms_final.ravel()]
    )
    r.update(
        n_gains=gains.size,
        gain_min=gains.min(),
        gain_max=gains.max(),
        gain_median=np.median(gains),
        att_median=np.median(weights.rms_att),
        mlp_median=np.median(weights.rms_ffn),
        final_median=np.median(weights.rms_final),
        n_negative=int((gains < 0).sum()),
    )
    # output logits at predicting positions (every position but a story's last)
    z = np.concatenate([run.logits[:-1] for run in runs])
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    p = np.exp(logp)
    entropy = -(p * logp).sum(1)
    top = z.max(1)
    r.update(
        logit_spread_median=np.median(z.std(1)),
        logit_max_abs=max(np.abs(run.logits).max() for run in runs),
        top_gap_median=np.median(top - (z.sum(1) - top) / (z.shape[1] - 1)),
        entropy_mean=entropy.mean(),
        top_p_median=np.median(p.max(1)),
    )
    sums, counts = zip(*(sr.story_nll(run) for run in runs))
    sums, counts = np.array(sums), np.array(counts)
    r["loss32"], r["loss32_se"] = sr.ratio_mean_se(sums, counts)
    ent_sums = np.add.reduceat(entropy, np.r_[0, np.cumsum(counts)[:-1]])
    r["loss_minus_entropy"], r["loss_minus_entropy_se"] = sr.ratio_mean_se(
        sums - ent_sums, counts
    )

    # 16-bit formats: the chapter's torch model held in the format (the experiment), the
    # loss computed here in float64 from its logits, paired with its float32 run
    def story_sums(dtype):
        model = llama.LlamaModel(weights, dtype=dtype)
        out = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: more threads only add overhead
        with torch.no_grad():
            for i in ids[:N_FORMAT]:
                zz = model(torch.from_numpy(i)[None])[0, :-1].double().numpy()
                tt = zz.max(1, keepdims=True)
                lse = tt[:, 0] + np.log(np.exp(zz - tt).sum(1))
                out.append((lse - zz[np.arange(zz.shape[0]), i[1:]]).sum())
        torch.set_num_threads(threads)
        return np.array(out)

    base = story_sums(torch.float32)
    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        r[f"{name}_diff"], r[f"{name}_diff_se"] = sr.ratio_mean_se(
            story_sums(dtype) - base, counts[:N_FORMAT]
        )
    f16max, f16normal = (
        float(np.finfo(np.float16).max),
        float(np.finfo(np.float16).tiny),
    )
    squares = x**2
    finite = np.concatenate(
        [run.attn[np.isfinite(run.attn)] for run in runs[:N_ATTENTION]]
    )
    qk_max = np.abs(finite).max() * np.sqrt(config.head_size)
    all_logits = np.concatenate([run.logits for run in runs])
    nonzero_w = np.abs(
        np.concatenate(
            [a.ravel() for k, a in weights.arrays().items() if "freq" not in k]
        )
    )
    nonzero_w = nonzero_w[nonzero_w > 0]
    nonzero_sq = squares[squares > 0]
    r.update(
        fp16_max=f16max,
        fp16_smallest_normal=f16normal,
        bf16_smallest_normal=2.0**-126,
        fp16_mean_of_squares=40.0**2,
        squares_max=squares.max(),
        squares_fp16_doublings=np.log2(f16max / squares.max()),
        x_fp16_doublings=np.log2(f16max / np.abs(x).max()),
        qk_max=qk_max,
        qk_fp16_doublings=np.log2(f16max / qk_max),
        logits_fp16_doublings=np.log2(f16max / np.abs(all_logits).max()),
        weights_subnormal_pct=100 * (nonzero_w < f16normal).mean(),
        squares_subnormal_pct=100 * (nonzero_sq < f16normal).mean(),
    )
    # causal attention weights of rows t ≥ 1 (keys 0…t), float64
    w_all = []
    for run in runs[:N_ATTENTION]:
        z3 = run.attn
        pw = np.exp(z3 - z3.max(-1, keepdims=True))
        pw /= pw.sum(-1, keepdims=True)
        n = run.ids.size
        keep = np.tril(np.ones((n, n), dtype=bool))
        keep[0] = False
        w_all.append(pw[:, :, keep].ravel())
    w_all = np.concatenate(w_all)
    r.update(
        attn_below_normal_pct=100 * (w_all < f16normal).mean(),
        attn_to_zero_pct=100 * (w_all < f16normal * 2.0**-11).mean(),
        attn_below_bf16_normal_pct=100 * (w_all < 2.0**-126).mean(),
        attn_zero_fp32_pct=100 * (w_all < 2.0**-150).mean(),
    )
    return {k: float(v) for k, v in r.items()}


# Numbers whose float64 value can differ from the float32 chapter's beyond REL, with the
# reason: counts of attention weights near a threshold (a weight within float32 rounding
# of 2^-150 or 2^-126 can fall either side): a few per cent of the count.
LOOSE = {
    "attn_zero_fp32_pct": ("rel", 0.05),
    "attn_below_bf16_normal_pct": ("rel", 0.05),
    "attn_to_zero_pct": ("rel", 0.01),
    "attn_below_normal_pct": ("rel", 0.01),
    # 16-bit loss differences: the chapter runs 16 stories as one padded batch, this
    # test one story at a time; float32 accumulation in another order rounds a few
    # products to a neighbouring 16-bit number, which moves these small differences
    # by ~7% (measured). 20% still fails a value 1.5 times too large or too small.
    "fp16_diff": ("rel", 0.2),
    "fp16_diff_se": ("rel", 0.2),
    "bf16_diff": ("rel", 0.2),
    "bf16_diff_se": ("rel", 0.2),
}


def test_quoted_numbers_match_an_independent_float64_forward(values, reference):
    wrong = off_reference(values, reference, REL, LOOSE)
    assert not wrong, wrong


def test_inputs_are_declared(values):
    for name in ("n_stories", "n_format", "n_attn"):
        assert values[f"{name}__is_input"] == 1
    assert (values["n_stories"], values["n_format"], values["n_attn"]) == (
        N_STORIES,
        N_FORMAT,
        N_ATTENTION,
    )
