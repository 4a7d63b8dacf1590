"""numscale.inspect on tiny random models of every supported family (no download).

The models are built from ``transformers`` configs, their weights redrawn from a seeded
generator. What is checked: the recorded attention logits equal an explicit float64
recomputation from the layer's weights (norm, projections, rotary embedding, the model's
scaling); recording leaves the model's output bit for bit unchanged; every measurement
has the shape of the model's layers and heads (grouped-query attention included); the
reductions equal the chapters' own helpers (numscale.attention_rows,
numscale.activation_stats) on the same numbers; bad input is refused naming what is
wrong.
"""

from __future__ import annotations

import copy
import math
import os
from functools import partial

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from numscale import activation_stats, attention_rows
from numscale.inspect import inspect_model, inspection, measurements, recording
from tiny_configs import tiny_gpt2_config


def decoder(model_type: str, **overrides) -> transformers.PretrainedConfig:
    """A tiny config of a decoder-only family in the transformers names the Llama-like
    families share (hidden 32, 2 layers, 4 heads, MLP 48, vocabulary 97, 64 positions),
    with the family's own ``overrides``."""
    sizes = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
    sizes |= dict(intermediate_size=48, vocab_size=97, max_position_embeddings=64)
    return transformers.AutoConfig.for_model(model_type, **(sizes | overrides))


#: each family's tiny config, made afresh on every call
FAMILIES = {
    "gpt2": partial(
        tiny_gpt2_config, n_layer=2, n_embd=32, n_head=4, n_positions=64, vocab_size=97
    ),
    "llama": partial(decoder, "llama", num_key_value_heads=2, rms_norm_eps=1e-5),
    "mistral": partial(
        decoder,
        "mistral",
        num_hidden_layers=3,
        num_key_value_heads=1,
        sliding_window=None,
    ),
    "qwen2": partial(
        decoder, "qwen2", hidden_size=48, num_attention_heads=6, num_key_value_heads=2
    ),
    "gpt_neox": partial(decoder, "gpt_neox", rotary_pct=0.5),
}
#: float32 unit roundoff
U32 = 2.0**-24


def tiny_model(model_type: str, seed: int = 0) -> torch.nn.Module:
    """A random float32 model of the family; every parameter redrawn from a seeded
    generator (matrices N(0, 0.3²), vectors 1 + N(0, 0.1²) for norm gains and
    N(0, 0.1²) for biases), so that logits are well away from zero."""
    config = FAMILIES[model_type]()
    with torch.random.fork_rng():  # construction draws from the global RNG
        torch.manual_seed(seed)
        model = transformers.AutoModelForCausalLM.from_config(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            if p.ndim >= 2:
                p.copy_(0.3 * noise)
            elif "norm" in name or name.endswith(
                ("ln_1.weight", "ln_2.weight", "ln_f.weight")
            ):
                p.copy_(1 + 0.1 * noise)
            else:
                p.copy_(0.1 * noise)
    return model.eval()


def token_ids(n: int, vocab: int = 97, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, size=n), rng.integers(0, vocab, size=n // 2 + 3)]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request):
    model = tiny_model(request.param)
    report = inspect_model(model, token_ids(24), keep_logits=True)
    return request.param, model, report


# --------------------------------------------------------------- explicit recomputation


def _rms_norm(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _layer_norm(x, w, b, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * w + b


def _rotate(x, theta, rotary_dims):
    """Rotary embedding in transformers' halves layout on the first ``rotary_dims``
    entries of x (T, heads, d), angles t·θ^(−2j/rotary_dims), in float64."""
    T = x.shape[0]
    half = rotary_dims // 2
    inv = theta ** (-torch.arange(0, rotary_dims, 2, dtype=torch.float64) / rotary_dims)
    angle = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]  # (T, half)
    cos, sin = torch.cos(angle)[:, None, :], torch.sin(angle)[:, None, :]
    a, b, rest = x[..., :half], x[..., half:rotary_dims], x[..., rotary_dims:]
    return torch.cat([a * cos - b * sin, b * cos + a * sin, rest], dim=-1)


def explicit_qk(model, model_type: str, layer: int, x: torch.Tensor):
    """Queries (H, T, d) and keys (KV, T, d) of ``layer`` for its input x (T, d_model),
    recomputed in float64 from the layer's weights, and the scale."""
    c = model.config
    sd = {k: v.double() for k, v in model.state_dict().items()}
    x = x.double()
    H = c.num_attention_heads
    if model_type == "gpt2":
        p = f"transformer.h.{layer}."
        h = _layer_norm(
            x, sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], c.layer_norm_epsilon
        )
        qkv = h @ sd[p + "attn.c_attn.weight"] + sd[p + "attn.c_attn.bias"]  # Conv1D
        q, k, _ = qkv.split(c.n_embd, dim=-1)
        d = c.n_embd // H
        return (
            q.reshape(-1, H, d).transpose(0, 1),
            k.reshape(-1, H, d).transpose(0, 1),
            d**-0.5,
        )
    if model_type == "gpt_neox":
        p = f"gpt_neox.layers.{layer}."
        h = _layer_norm(
            x,
            sd[p + "input_layernorm.weight"],
            sd[p + "input_layernorm.bias"],
            c.layer_norm_eps,
        )
        d = c.hidden_size // H
        qkv = (
            h @ sd[p + "attention.query_key_value.weight"].T
            + sd[p + "attention.query_key_value.bias"]
        ).reshape(-1, H, 3 * d)
        rot = int(d * c.rope_parameters["partial_rotary_factor"])
        theta = c.rope_parameters["rope_theta"]
        q = _rotate(qkv[..., :d], theta, rot)
        k = _rotate(qkv[..., d : 2 * d], theta, rot)
        return q.transpose(0, 1), k.transpose(0, 1), d**-0.5
    p = f"model.layers.{layer}."
    h = _rms_norm(x, sd[p + "input_layernorm.weight"], c.rms_norm_eps)
    d = getattr(c, "head_dim", None) or c.hidden_size // H
    q = h @ sd[p + "self_attn.q_proj.weight"].T
    k = h @ sd[p + "self_attn.k_proj.weight"].T
    if p + "self_attn.q_proj.bias" in sd:  # Qwen2
        q, k = q + sd[p + "self_attn.q_proj.bias"], k + sd[p + "self_attn.k_proj.bias"]
    theta = c.rope_parameters["rope_theta"]
    q = _rotate(q.reshape(-1, H, d), theta, d)
    k = _rotate(k.reshape(-1, c.num_key_value_heads, d), theta, d)
    return q.transpose(0, 1), k.transpose(0, 1), d**-0.5


def test_recorded_logits_equal_an_explicit_recomputation(family):
    model_type, model, report = family
    ids = torch.as_tensor(token_ids(24)[0])
    with torch.no_grad():
        hidden = model(ids[None], output_hidden_states=True).hidden_states
    calls = [c for c in report["_attention_calls"]][: model.config.num_hidden_layers]
    for call in calls:
        q, k, scale = explicit_qk(model, model_type, call.layer, hidden[call.layer][0])
        group = q.shape[0] // k.shape[0]
        k = k.repeat_interleave(group, dim=0)  # query head h: k[h // g]
        expected = q @ k.transpose(-1, -2) * scale  # (H, T, T) float64
        recorded = call.logits[0].double()
        causal = torch.ones(24, 24, dtype=torch.bool).tril()
        # Error bound: each logit is a length-d dot product of q and k, each of them a
        # length-d_model dot product after a norm, all in float32 (u = 2^-24). The
        # standard bound γ_n ≤ 1.01·n·u per dot product gives |Δz| ≤ c·u·s·Σ_i|q_i k_i|
        # with c = 2(d_model + d) + 20 (two products, norm and rotary); we use
        # s·‖q‖‖k‖ ≥ s·Σ|q_i k_i| and c = 4·d_model.
        bound = (
            4
            * model.config.hidden_size
            * U32
            * scale
            * q.norm(dim=-1)[:, :, None]
            * k.norm(dim=-1)[:, None, :]
        )
        error = (recorded - expected).abs()
        assert bool((error[:, causal] <= bound[:, causal]).all()), model_type
        assert bool(call.allowed[0, 0].eq(causal).all())
        # the test can fail: the logits are not all tiny against the bound
        assert float(expected[:, causal].abs().max()) > 1e3 * float(bound.max())


def test_recording_leaves_the_output_unchanged(family):
    model_type, model, _ = family
    ids = torch.as_tensor(token_ids(24)[0])[None]
    assert model.config._attn_implementation == "sdpa"  # restored after recording
    with torch.no_grad():
        plain = model(ids).logits
        seen = []
        with recording.recording(model, recording.Recorder(seen.append)):
            recorded = model(ids).logits
    assert len(seen) == model.config.num_hidden_layers
    assert torch.equal(plain, recorded)  # bit for bit


def test_measurement_shapes_follow_layers_and_heads(family):
    model_type, model, report = family
    L, H, KV = recording.head_counts(model.config)
    a, r = report["attention"], report["residual"]
    for key in (
        "logit_std",
        "logit_std_pooled",
        "max_logit",
        "normalized_entropy",
        "first_token_weight",
        "fraction_rows_above_fp16_exp_limit",
        "entropy",
    ):
        assert a[key].shape == (L, H), key
    if model_type in ("llama", "mistral", "qwen2"):
        assert KV < H  # grouped-query attention
    for key in ("rms", "max_abs", "token_max_over_median"):
        assert r[key].shape == (L + 1,), key
    assert r["rms_per_sequence"].shape == (2, L + 1)
    assert r["token_max_over_median_where"].shape == (L + 1, 3)
    assert report["loss"]["float16"]["per_sequence"].shape == (2,)
    matrices = {p.data_ptr() for p in model.parameters() if p.ndim == 2}
    q = report["quantization"]
    assert len(q["matrices"]) == len(matrices)
    for errors in q["int8_relative_error"].values():
        assert errors.shape == (len(matrices),)
    assert report["input"]["n_predicted"] == 23 + 14


def test_gpt2_conv1d_matrices_are_out_by_in():
    model = tiny_model("gpt2")
    shapes = {
        name: w.shape
        for name, w in __import__("numscale.inspect.inspection", fromlist=["x"])
        .weight_matrices(model)
        .items()
    }
    assert shapes["transformer.h.0.attn.c_attn.weight"] == (96, 32)
    assert shapes["transformer.h.0.mlp.c_proj.weight"] == (32, 128)
    assert "lm_head.weight" not in shapes  # tied to wte: counted once


def test_float16_copy_keeps_values_and_gives_conv1d_the_fast_layout():
    """The float16 copy of GPT-2 stores each Conv1D weight column-major (torch's CPU
    float16 addmm is ~40x slower on the row-major one); values and outputs unchanged."""
    model = tiny_model("gpt2")
    low = inspection.low_precision_copy(model, torch.float16)
    for (name, p), q in zip(model.named_parameters(), low.parameters(), strict=True):
        assert torch.equal(q, p.detach().half()), name
        assert q.dtype == torch.float16 and not q.requires_grad
    c_attn = low.transformer.h[0].attn.c_attn.weight
    assert c_attn.stride() == (1, c_attn.shape[0])  # column-major (in, out)
    plain = copy.deepcopy(model).half()  # contiguous float16 weights: the slow kernel
    ids = torch.as_tensor(token_ids(24)[0])[None]
    with torch.no_grad():
        fast, slow = low(ids).logits.double(), plain(ids).logits.double()
    # the same float16 op on both layouts; only the kernels' accumulation order differs,
    # so the logits agree to a few float16 rounding steps of their size (u = 2^-11)
    scale = slow.abs().max()
    assert (fast - slow).abs().max() <= 16 * 2.0**-11 * scale


def test_float32_loss_is_the_cross_entropy(family):
    model_type, model, report = family
    seqs = token_ids(24)
    with torch.no_grad():
        sums = [
            float(
                torch.nn.functional.cross_entropy(
                    model(torch.as_tensor(s)[None]).logits[0, :-1].double(),
                    torch.as_tensor(s)[1:],
                    reduction="sum",
                )
            )
            for s in seqs
        ]
    loss = report["loss"]["float32"]
    # log-softmax of float32 logits vs float64: |Δ| ≤ ~(log V + 2)·u·max|z| per token
    np.testing.assert_allclose(loss["per_sequence"], sums, rtol=1e-5)
    assert loss["mean"] == pytest.approx(sum(sums) / (23 + 14), rel=1e-5)
    for name in ("bfloat16", "float16"):
        entry = report["loss"][name]
        assert entry["nonfinite_sequences"] == 0
        # paired difference is exactly the ratio of the per-sequence differences
        diff = (entry["per_sequence"] - loss["per_sequence"]).sum() / 37
        assert entry["minus_float32"] == pytest.approx(diff, rel=1e-9)
    # bfloat16 keeps 8 bits: a model of 2-3 layers differs from float32 by more than
    # float32 rounding, and by far less than the loss itself
    d = abs(report["loss"]["bfloat16"]["minus_float32"])
    assert 1e-7 < d < 0.5 * loss["mean"]


# ------------------------------------------------------------------ reductions


def test_attention_reduction_equals_attention_rows():
    g = torch.Generator().manual_seed(3)
    L, H, T = 2, 3, 17
    logits = 4 * torch.randn(L, 1, H, T, T, generator=g)
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    masked = logits.masked_fill(~causal, -math.inf)
    stats = measurements.AttentionStats(L, H)
    for layer in range(L):
        stats.add(recording.AttentionCall(layer, logits[layer], causal[None, None]))
    got = stats.summary()
    mask = torch.ones(1, T, dtype=torch.bool)
    mask[0, 0] = False
    rows = attention_rows.row_statistics(masked, torch.softmax(masked, -1), mask)
    pooled, within = attention_rows.head_logit_std(rows)
    # both reduce the same float32 rows; sums in float64: agreement to ~1e-6 relative
    np.testing.assert_allclose(got["logit_std"], within, rtol=1e-5)
    np.testing.assert_allclose(got["logit_std_pooled"], pooled, rtol=1e-5)
    np.testing.assert_allclose(
        got["normalized_entropy"], attention_rows.normalized_entropy(rows), rtol=1e-5
    )
    np.testing.assert_allclose(
        got["first_token_weight"],
        attention_rows.head_means(rows, "first_weight"),
        rtol=1e-5,
    )
    assert got["largest_logit"] == pytest.approx(
        attention_rows.largest_real_logit(rows)
    )
    above = attention_rows.fraction_rows_above(rows, recording.FP16_EXP_LIMIT)
    np.testing.assert_allclose(got["fraction_rows_above_fp16_exp_limit"], above)
    assert above.max() > 0  # logits of std 4 do cross ln 65504 = 11.09
    # the share over the rows t ≥ 1, as trained_attention.md: every head has the same
    # rows, so it is the mean of the per-head shares; counted here over the raw rows
    t = np.arange(rows.max_logit.shape[-1])
    real = rows.real[None, :, None, :] & (t >= 1)[None, None, None, :]
    real = np.broadcast_to(real, rows.max_logit.shape)
    share = 100 * np.mean(rows.max_logit[real] > recording.FP16_EXP_LIMIT)
    assert got["rows_above_fp16_exp_limit_pct"] == pytest.approx(share)
    assert share == pytest.approx(100 * above.mean())
    uniform = attention_rows.uniform_reference(rows)
    assert got["uniform_first_token_weight"] == pytest.approx(uniform["first_weight"])


def test_residual_reduction_equals_activation_stats():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 1, 9, 16)).astype(np.float32)
    x[2, 0, 5, 7] = 300.0  # one massive activation
    stats = measurements.ResidualStats(3)
    stats.start()
    for depth in range(3):
        stats.add(depth, torch.from_numpy(x[depth]))
    got = stats.summary()
    real = np.ones((1, 9), dtype=bool)
    expected = activation_stats.outlier_stats(x, real)
    np.testing.assert_allclose(
        got["token_max_over_median"], expected.token_ratio, rtol=1e-6
    )
    np.testing.assert_allclose(got["max_abs"], expected.max_abs, rtol=1e-7)
    np.testing.assert_allclose(
        got["rms"], activation_stats.residual_rms(x, real), rtol=1e-6
    )
    assert tuple(got["token_max_over_median_where"][2]) == (0, 5, 7)
    assert got["token_max_over_median"][2] > 100


# ------------------------------------------------------------------ refusals


def bert_config():
    """A tiny BERT's config: a family numscale.inspect does not support (no causal LM)."""
    return transformers.AutoConfig.for_model(
        "bert",
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=32,
        vocab_size=50,
    )


def test_unsupported_family_is_refused_in_one_line():
    config = bert_config()
    with pytest.raises(
        recording.UnsupportedModel, match="'bert' is not supported"
    ) as e:
        recording.check_config(config)
    assert "\n" not in str(e.value)


def test_a_base_model_without_head_is_refused():
    config = FAMILIES["llama"]()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        base = transformers.AutoModel.from_config(config)
    with pytest.raises(recording.UnsupportedModel, match="not a causal language model"):
        inspect_model(base, token_ids(8))


def test_bad_sequences_and_dtypes():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="sequences"):
        inspect_model(model, [])
    with pytest.raises(ValueError, match=r"sequences\[0\] has 1 token"):
        inspect_model(model, [[5]])
    with pytest.raises(ValueError, match="outside 0..96"):
        inspect_model(model, [[5, 97]])
    with pytest.raises(ValueError, match="more than the model's 64 positions"):
        inspect_model(model, [list(range(65))])
    with pytest.raises(ValueError, match="integer ids"):
        inspect_model(model, [np.array([1.0, 2.0])])
    with pytest.raises(ValueError, match="float32"):
        inspect_model(model.to(torch.bfloat16), token_ids(8))
    with pytest.raises(TypeError, match="model"):
        inspect_model("llama", token_ids(8))


# ------------------------------------------------------------------ headline numbers


def _synthetic_report(rms_last: np.ndarray, lengths: list[int], log_z: np.ndarray):
    layers, heads = 2, 3
    grid = np.arange(layers * heads, dtype=float).reshape(layers, heads) + 1
    loss = {"mean": 2.0, "se": 0.1, "minus_float32": 0.01, "minus_float32_se": 0.002}
    return {
        "input": {"lengths": lengths},
        "model": {"d_model": 4},
        "thresholds": {"fp16_exp_limit": math.log(65504.0)},
        "attention": {
            "logit_std": grid,
            "normalized_entropy": grid / 10,
            "first_token_weight": grid / 100,
            "uniform_first_token_weight": 0.2,
            "largest_logit": 12.5,
            "rows_above_fp16_exp_limit_pct": 1.5,
            "n_rows_per_head": 40,
        },
        "residual": {
            "rms": np.array([1.0, 2.0, float(np.mean(rms_last))]),
            "rms_per_sequence": np.column_stack([np.ones_like(rms_last), rms_last]),
            "token_max_over_median": np.array([3.0, 7.0]),
            "max_abs": np.array([4.0, 9.0]),
        },
        "output_logits": {
            "max_abs": 20.0,
            "std_over_vocab_median": 2.5,
            "mean_log_z": float(np.mean(log_z)),
            "mean_log_z_per_sequence": log_z,
        },
        "loss": {"float32": loss, "bfloat16": loss, "float16": loss},
        "quantization": {
            "matrices": ["a", "b"],
            "int8_relative_error_mean": {
                "per_tensor": 0.01,
                "per_channel": 0.005,
                "group_128": 0.004,
            },
        },
    }


def test_headline_numbers_read_the_report_and_estimate_standard_errors():
    from numscale.inspect import summary

    rng = np.random.default_rng(5)
    rms_last = 3.0 + 0.05 * rng.standard_normal(200)
    log_z = 6.0 + 0.3 * rng.standard_normal(200)
    rep = _synthetic_report(rms_last, [17] * 200, log_z)
    out = summary.headline_numbers(rep)
    assert out["within_min"] == 1.0 and out["within_max"] == 6.0
    assert out["within_median"] == 3.5 and out["norm_entropy_median"] == 0.35
    assert out["first_max"] == 0.06 and out["n_matrices"] == 2
    assert out["rms_0"] == 1.0 and out["max_abs"] == 9.0
    assert out["token_ratio_max"] == 7.0 and out["err_g128"] == 0.004
    # equal lengths: the ratio estimator is the plain mean over sequences, so the SE of
    # the mean log Z is the sample SD over √m, and the delta method gives the RMS's SE
    # ≈ the SD of the per-sequence RMS over √m (to O(CV²): the spread is 1.7% here)
    m = rms_last.size
    assert out["mean_log_z_se"] == pytest.approx(log_z.std(ddof=1) / m**0.5, rel=1e-9)
    assert out["rms_L_se"] == pytest.approx(rms_last.std(ddof=1) / m**0.5, rel=0.02)
    with pytest.raises(ValueError, match="residual"):
        summary.headline_numbers({k: v for k, v in rep.items() if k != "residual"})


def test_conversion_check_against_a_hand_computed_ratio():
    from numscale.inspect import summary

    ours = np.array([[1.0, -4.0], [2.0, 0.5], [0.0, 3.0]])
    theirs = (ours + np.array([[0.0, 0.1], [-0.2, 0.0], [0.0, 0.0]])).astype(np.float32)
    check = summary.conversion_check(theirs, ours)
    # largest |difference| 0.2 (float32 rounding ~1e-8) over largest |logit| 4
    assert check.convert_max_rel == pytest.approx(0.05, rel=1e-6)
    assert check.convert_tokens == 3
    line = summary.format_conversion(check, "M")
    assert (
        line
        == "M: largest |logit difference| / largest |logit| = 5.0e-02 over 3 positions"
    )
    with pytest.raises(ValueError, match="theirs and ours"):
        summary.conversion_check(theirs[:2], ours)
    with pytest.raises(TypeError, match="theirs and ours"):
        summary.conversion_check(theirs.astype(int), ours)
    with pytest.raises(TypeError, match="check"):
        summary.format_conversion(0.05, "M")


def test_format_differences_one_line_per_quantity():
    from numscale.inspect import summary

    text = summary.format_differences({"a": 1.5e-7, "loss": 2e-3})
    assert text.splitlines() == [
        "a" + " " * 23 + " largest relative difference 1.5e-07",
        "loss" + " " * 20 + " largest relative difference 2.0e-03",
    ]
    with pytest.raises(ValueError, match="worst"):
        summary.format_differences({})
