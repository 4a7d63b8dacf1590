"""Tests of numscale.models.gpt2, the loader of GPT-2 tensors, on every kind of source.

Sources are written into ``tmp_path`` from a tiny, randomly initialised GPT-2 whose
parameters come from a seeded ``torch.Generator`` (the model is built on the meta
device, so the global RNG is never touched). The real GPT-2 small tensors in
``../shared/reference`` are read in place when present.
"""

from __future__ import annotations

import pickle
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

from conftest import REFERENCE  # noqa: E402
from numscale.models import gpt2, gpt2_model  # noqa: E402
from tiny_configs import tiny_gpt2_config  # noqa: E402

N_LAYER, N_EMBD = 2, 8


def tiny_config() -> transformers.GPT2Config:
    return tiny_gpt2_config(
        n_layer=N_LAYER, n_embd=N_EMBD, n_head=2, n_positions=16, vocab_size=32
    )


def tiny_model(seed: int = 0) -> transformers.GPT2LMHeadModel:
    """A tiny GPT-2 whose every parameter is drawn from a seeded Generator."""
    generator = torch.Generator().manual_seed(seed)
    with torch.device("meta"):
        model = transformers.GPT2LMHeadModel(tiny_config())
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for _, param in model.named_parameters():
            param.copy_(torch.randn(param.shape, generator=generator))
    model.tie_weights()
    return model.eval()


def bare_state(model) -> dict[str, np.ndarray]:
    """The model's tensors keyed by canonical (bare) name, without the tied lm_head."""
    return {
        gpt2.canonical_name(k): v.detach().numpy().copy()
        for k, v in model.state_dict().items()
        if k != "lm_head.weight"
    }


def small_shaped_state(seed: int = 0, n_layer: int = 2) -> dict[str, np.ndarray]:
    """A few tensors with GPT-2 small's names and shapes (LayerNorms and attention biases
    of ``n_layer`` blocks, ln_f), drawn from a seeded generator. A source without
    config.json is checked against GPT-2 small's shapes, so files without a config use these."""
    rng = np.random.default_rng(seed)
    state = {}
    for i in range(n_layer):
        for ln in ("ln_1", "ln_2"):
            state[f"h.{i}.{ln}.weight"] = rng.standard_normal(768).astype(np.float32)
            state[f"h.{i}.{ln}.bias"] = rng.standard_normal(768).astype(np.float32)
        state[f"h.{i}.attn.c_attn.bias"] = rng.standard_normal(2304).astype(np.float32)
    state["ln_f.weight"] = rng.standard_normal(768).astype(np.float32)
    state["ln_f.bias"] = rng.standard_normal(768).astype(np.float32)
    return state


@pytest.fixture(scope="module")
def small_state():
    return small_shaped_state()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees the caller's NUMSCALE_GPT2 or a cached hub look-up."""
    monkeypatch.delenv("NUMSCALE_GPT2", raising=False)
    gpt2.clear_cache()
    yield
    gpt2.clear_cache()


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=0)


@pytest.fixture(scope="module")
def state(model):
    return bare_state(model)


@pytest.fixture(scope="module")
def pretrained_dir(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrained")
    model.save_pretrained(path)
    return path


# ------------------------------------------------------------------- source kinds


def test_save_pretrained_directory(pretrained_dir, state):
    loaded = gpt2.load_tensors(source=pretrained_dir)
    assert set(loaded) == set(state)
    for name, value in state.items():  # float32 in, float32 out: bit-exact
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)
        assert loaded[name].dtype == np.float32


def test_both_prefixes_name_the_same_tensor(pretrained_dir, state):
    a = gpt2.load_tensors(["transformer.h.1.ln_2.bias"], source=pretrained_dir)
    b = gpt2.load_tensors(["h.1.ln_2.bias"], source=pretrained_dir)
    assert list(a) == list(b) == ["h.1.ln_2.bias"]
    np.testing.assert_array_equal(a["h.1.ln_2.bias"], state["h.1.ln_2.bias"])


def test_single_safetensors_file_with_prefixed_keys(tmp_path, small_state):
    path = tmp_path / "weights.safetensors"
    safetensors_numpy.save_file(
        {"transformer." + k: v for k, v in small_state.items()}, str(path)
    )
    assert gpt2.list_tensors(path) == sorted(small_state)
    got = gpt2.load_tensor("h.1.attn.c_attn.bias", source=str(path))
    np.testing.assert_array_equal(got, small_state["h.1.attn.c_attn.bias"])


def test_npz_file_with_bare_keys(tmp_path, small_state):
    path = tmp_path / "weights.npz"
    np.savez(path, **small_state)
    got = gpt2.load_tensors(pattern="h.*.ln_1.weight", source=path)
    assert list(got) == ["h.0.ln_1.weight", "h.1.ln_1.weight"]
    np.testing.assert_array_equal(
        got["h.1.ln_1.weight"], small_state["h.1.ln_1.weight"]
    )


def test_source_without_config_is_checked_against_gpt2_small(tmp_path, state):
    """The tiny model's tensors (width 8) in a file without config.json are refused."""
    path = tmp_path / "tiny.npz"
    np.savez(path, **state)
    with pytest.raises(
        gpt2.SourceError,
        match=r"'h\.0\.ln_1\.weight' in tiny\.npz has shape "
        r"\(8,\), but GPT-2 small has \(768,\)",
    ):
        gpt2.load_tensors(["h.0.ln_1.weight"], source=path)
    # with the tiny model's config.json beside them, its own shapes are expected
    tiny_config().to_json_file(str(tmp_path / "config.json"))
    got = gpt2.load_tensors(["h.0.ln_1.weight"], source=tmp_path)
    np.testing.assert_array_equal(got["h.0.ln_1.weight"], state["h.0.ln_1.weight"])


def test_float16_and_float64_are_returned_as_float32(tmp_path):
    path = tmp_path / "mixed.npz"
    np.savez(path, a=np.array([1.5, -2.0], np.float16), b=np.array([0.1], np.float64))
    got = gpt2.load_tensors(source=path)
    assert got["a"].dtype == got["b"].dtype == np.float32
    assert got["b"][0] == np.float32(0.1)  # rounding float64 -> float32 once, exactly


def test_sharded_directory_of_npz_and_safetensors(tmp_path, state):
    tiny_config().to_json_file(str(tmp_path / "config.json"))
    names = sorted(state)
    half = len(names) // 2
    np.savez(
        tmp_path / "part_a.npz", **{"transformer." + n: state[n] for n in names[:half]}
    )
    safetensors_numpy.save_file(
        {n: state[n] for n in names[half:]}, str(tmp_path / "part_b.safetensors")
    )
    assert gpt2.list_tensors(tmp_path) == names
    params = gpt2.layernorm_parameters(tmp_path)
    assert params.names == ("h.0.ln_1", "h.0.ln_2", "h.1.ln_1", "h.1.ln_2", "ln_f")
    assert params.gains.shape == params.biases.shape == (2 * N_LAYER + 1, N_EMBD)
    np.testing.assert_array_equal(params.gains[3], state["h.1.ln_2.weight"])
    np.testing.assert_array_equal(params.biases[-1], state["ln_f.bias"])
    description = gpt2.describe_source(tmp_path)
    assert "(part_a.npz, part_b.safetensors)" in description
    assert (
        description.endswith(f"; {len(state)} tensors")
        and str(tmp_path) not in description
    )


def test_duplicate_tensor_across_shards_is_an_error(tmp_path, state):
    np.savez(tmp_path / "a.npz", **{"h.0.ln_1.weight": state["h.0.ln_1.weight"]})
    np.savez(
        tmp_path / "b.npz", **{"transformer.h.0.ln_1.weight": state["h.0.ln_1.weight"]}
    )
    with pytest.raises(ValueError, match="appears twice"):
        gpt2.list_tensors(tmp_path)


def test_sharded_save_pretrained(tmp_path, model, state):
    model.save_pretrained(tmp_path, max_shard_size="2KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    loaded = gpt2.load_tensors(source=tmp_path)
    for name, value in state.items():
        np.testing.assert_array_equal(loaded[name], value, err_msg=name)


def test_environment_variable_names_the_source(monkeypatch, pretrained_dir, state):
    monkeypatch.setenv("NUMSCALE_GPT2", str(pretrained_dir))
    np.testing.assert_array_equal(gpt2.load_tensor("ln_f.weight"), state["ln_f.weight"])
    description = gpt2.describe_source()
    assert description.startswith("the save_pretrained folder named by NUMSCALE_GPT2")
    assert str(pretrained_dir) not in description  # no machine path on a page


def test_relative_path_from_the_launching_directory(monkeypatch, tmp_path, state):
    """Pages run inside book/; a relative NUMSCALE_GPT2 is also tried from $PWD."""
    (tmp_path / "weights").mkdir()
    np.savez(tmp_path / "weights" / "w.npz", **state)
    tiny_config().to_json_file(str(tmp_path / "weights" / "config.json"))
    elsewhere = tmp_path / "book"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.setenv("NUMSCALE_GPT2", "weights")
    np.testing.assert_array_equal(gpt2.load_tensor("wpe.weight"), state["wpe.weight"])
    monkeypatch.setenv("PWD", str(elsewhere))
    with pytest.raises(gpt2.SourceError, match="does not exist"):
        gpt2.load_tensor("wpe.weight", source="./weights")


# ------------------------------------------------------------------------ load_model


def test_load_model_from_save_pretrained(pretrained_dir, model):
    loaded = gpt2_model.load_model(pretrained_dir)
    assert isinstance(loaded, transformers.GPT2LMHeadModel)
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    ids = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        expected = model(ids).logits
        got = loaded(ids).logits
    torch.testing.assert_close(
        got, expected, rtol=0, atol=0
    )  # same float32 weights, same ops


def test_load_model_leaves_global_rng_alone(pretrained_dir):
    before = torch.random.get_rng_state()
    gpt2_model.load_model(pretrained_dir)
    assert torch.equal(before, torch.random.get_rng_state())


def test_load_model_from_tensor_file_needs_a_config(tmp_path, state):
    path = tmp_path / "w.safetensors"
    safetensors_numpy.save_file(state, str(path))
    with pytest.raises(gpt2.ModelIncomplete, match="config"):
        gpt2_model.load_model(path)
    assert isinstance(
        gpt2_model.load_model(path, config=tiny_config()), transformers.GPT2LMHeadModel
    )


def test_load_model_on_partial_source_is_unavailable(tmp_path, state):
    np.savez(tmp_path / "ln.npz", **{k: v for k, v in state.items() if ".ln_" in k})
    with pytest.raises(gpt2.GPT2Unavailable, match="only part"):
        gpt2_model.load_model(tmp_path)
    with pytest.raises(gpt2.GPT2Unavailable, match="missing"):
        gpt2_model.load_model(tmp_path, config=tiny_config())


def test_load_model_rejects_a_wrong_config_type(pretrained_dir):
    with pytest.raises(TypeError, match="config"):
        gpt2_model.load_model(pretrained_dir, config={"n_layer": 2})


# --------------------------------------------------------------- reading only what is asked


def _rchar() -> int:
    """Bytes this process has read through read()/pread() so far (Linux /proc)."""
    for line in open("/proc/self/io"):
        if line.startswith("rchar"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def test_safetensors_reads_only_requested_tensors(tmp_path):
    big = np.zeros((2048, 1024), np.float32)  # 8 MiB
    small = np.arange(4, dtype=np.float32)
    path = tmp_path / "two.safetensors"
    safetensors_numpy.save_file({"big": big, "small": small}, str(path))

    gpt2.clear_cache()
    before = _rchar()
    got = gpt2.load_tensors(["small"], source=path)
    read = _rchar() - before
    np.testing.assert_array_equal(got["small"], small)
    # The header is read twice (index, then read) plus the 16 bytes of "small"; Python's
    # buffered open() may read one 8 KiB buffer each time. The 8 MiB tensor is never read.
    assert read < 4 * 8192, read

    # Independently: the peak of traced allocations while loading "small" stays far below
    # the 8 MiB that materialising "big" takes.
    tracemalloc.start()
    gpt2.load_tensors(["small"], source=path)
    _, peak_small = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracemalloc.start()
    gpt2.load_tensors(["big"], source=path)
    _, peak_big = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak_small < 1 << 20 < big.nbytes <= peak_big


def test_npz_reads_only_requested_members(tmp_path, monkeypatch):
    path = tmp_path / "two.npz"
    np.savez(path, big=np.zeros(10, np.float32), small=np.ones(3, np.float32))
    read: list[str] = []
    real_getitem = np.lib.npyio.NpzFile.__getitem__

    def spy(self, key):
        read.append(key)
        return real_getitem(self, key)

    monkeypatch.setattr(np.lib.npyio.NpzFile, "__getitem__", spy)
    gpt2.load_tensors(["small"], source=path)
    assert read == ["small"]


# -------------------------------------------------------------------------- errors


def test_empty_directory_is_a_source_error(tmp_path):
    with pytest.raises(gpt2.SourceError, match="no .safetensors or .npz"):
        gpt2.list_tensors(tmp_path)


def test_pickle_only_sources_are_refused_without_unpickling(tmp_path, monkeypatch):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    marker = tmp_path / "unpickled.txt"

    # A pickle that would create a file if it were ever loaded.
    class Boom:
        def __reduce__(self):
            return (Path.write_text, (marker, "unpickled"))

    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Boom()))
    for source in (folder, folder / "pytorch_model.bin"):
        with pytest.raises(gpt2.SourceError, match="pickle"):
            gpt2.load_tensors(source=source)
    monkeypatch.setenv("NUMSCALE_GPT2", str(folder))
    with pytest.raises(
        gpt2.SourceError,
        match=r"^NUMSCALE_GPT2='.*pickled' cannot be used: "
        r"the folder holds only pickle weights",
    ):
        gpt2.layernorm_parameters()
    assert not marker.exists()


def test_corrupt_safetensors_names_the_file(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(gpt2.SourceError, match="broken.safetensors"):
        gpt2.load_tensors(source=path)


def test_truncated_safetensors_names_the_file(tmp_path, small_state):
    path = tmp_path / "cut.safetensors"
    safetensors_numpy.save_file(small_state, str(path))
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(gpt2.SourceError, match="cut.safetensors"):
        gpt2.load_tensors(source=path)


@pytest.mark.parametrize(
    "content",
    [
        b"PK\x03\x04 this is not really a zip archive",
        np.random.default_rng(0).bytes(4096),
    ],
)
def test_corrupt_npz_names_the_file_without_pickle_advice(tmp_path, content):
    path = tmp_path / "broken.npz"
    path.write_bytes(content)
    with pytest.raises(
        gpt2.SourceError, match=r"broken\.npz is not a readable \.npz"
    ) as info:
        gpt2.list_tensors(path)
    assert "allow_pickle" not in str(info.value) and "pickled" not in str(info.value)
    # the same file in a folder named by the variable
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("NUMSCALE_GPT2", str(tmp_path))
    try:
        with pytest.raises(gpt2.SourceError, match=r"^NUMSCALE_GPT2=.*broken\.npz"):
            gpt2.layernorm_parameters()
    finally:
        monkeypatch.undo()


def test_npz_with_object_arrays_is_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object))
    with pytest.raises(
        gpt2.SourceError, match="'x' in objects.npz holds Python objects"
    ) as info:
        gpt2.load_tensors(source=path)
    assert "allow_pickle" not in str(info.value)


@pytest.mark.parametrize(
    "problem, pattern",
    [
        ("nan", r"'h\.0\.ln_1\.weight' in bad\.npz holds 1 NaN or inf value\.$"),
        ("inf", r"'h\.0\.ln_1\.weight' in bad\.npz holds 2 NaN or inf values"),
        (
            "shape",
            r"'h\.0\.ln_1\.weight' in bad\.npz has shape \(767,\), but GPT-2 small has \(768,\)",
        ),
        ("dtype", r"'h\.0\.ln_1\.weight' in bad\.npz has dtype int32"),
    ],
)
def test_bad_tensors_are_caught_at_load_naming_tensor_and_file(
    tmp_path, small_state, problem, pattern
):
    state = dict(small_state)
    gain = state["h.0.ln_1.weight"].copy()
    if problem == "nan":
        gain[5] = np.nan
    elif problem == "inf":
        gain[:2] = np.inf
    elif problem == "shape":
        gain = gain[:767]
    else:
        gain = np.ones(768, np.int32)
    state["h.0.ln_1.weight"] = gain
    np.savez(tmp_path / "bad.npz", **state)
    with pytest.raises(gpt2.SourceError, match=pattern):
        gpt2.layernorm_parameters(tmp_path)
    # the other tensors of the file are still readable one by one
    assert gpt2.load_tensor("h.0.ln_2.weight", source=tmp_path).shape == (768,)


def test_npz_lacking_needed_tensors_is_a_source_error(
    tmp_path, small_state, monkeypatch
):
    np.savez(
        tmp_path / "one.npz", **{"h.0.ln_1.weight": small_state["h.0.ln_1.weight"]}
    )
    monkeypatch.setenv("NUMSCALE_GPT2", str(tmp_path / "one.npz"))
    with pytest.raises(gpt2.MissingTensorError) as info:
        gpt2.layernorm_parameters()
    message = str(info.value)
    assert message.startswith("NUMSCALE_GPT2='") and "\n" not in message
    # one block's LayerNorms and ln_f are needed: 6 tensors, 5 of them absent
    assert "5 requested tensors missing" in message
    assert "holds 1 tensor:" in message  # singular
    assert isinstance(info.value, gpt2.SourceError) and not isinstance(
        info.value, KeyError
    )


def test_missing_tensor_lists_available_names(pretrained_dir):
    with pytest.raises(
        gpt2.MissingTensorError, match="did you mean 'h.0.ln_1.weight'"
    ) as info:
        gpt2.load_tensors(["h.0.ln_1.wieght"], source=pretrained_dir)
    assert "1 requested tensor missing" in str(info.value)
    assert "wpe.weight" in str(info.value) or "more)" in str(info.value)
    with pytest.raises(gpt2.MissingTensorError, match="h.9"):
        gpt2.load_tensors(pattern="h.9.*", source=pretrained_dir)
    with pytest.raises(gpt2.MissingTensorError) as info:
        gpt2.load_tensors(
            ["h.0.ln_1.wieght", "h.0.ln_2.wieght", "h.1.ln_1.wieght"],
            source=pretrained_dir,
        )
    assert str(info.value).count("did you mean") == 1


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"names": "h.0.ln_1.weight"}, "names"),
        ({"names": [0]}, "names"),
        ({"names": {"h.0.ln_1.weight"}}, "names"),
        ({"pattern": 3}, "pattern"),
        ({"source": 42}, "source"),
    ],
)
def test_bad_argument_types(kwargs, word, pretrained_dir):
    kwargs.setdefault("source", pretrained_dir)
    with pytest.raises(TypeError, match=word):
        gpt2.load_tensors(**kwargs)


def test_names_and_pattern_together_is_an_error(pretrained_dir):
    with pytest.raises(ValueError, match="not both"):
        gpt2.load_tensors(["wpe.weight"], pattern="h.*", source=pretrained_dir)


def test_empty_source_string():
    with pytest.raises(ValueError, match="source"):
        gpt2.list_tensors("  ")


# ----------------------------------------------------------------- hub id, no network


@pytest.mark.parametrize(
    "endpoint", ["default", "closed-port", "silent", "non-routable"]
)
@pytest.mark.parametrize("offline", ["1", None])
def test_default_hub_id_without_network_fails_fast(
    monkeypatch, tmp_path, silent_server, offline, endpoint
):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    urls = {
        "closed-port": "http://127.0.0.1:9",
        "silent": silent_server,
        "non-routable": "http://10.255.255.1",
    }
    if endpoint == "default":
        monkeypatch.delenv("HF_ENDPOINT", raising=False)
    else:
        monkeypatch.setenv("HF_ENDPOINT", urls[endpoint])
    if offline is None:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    if endpoint == "default" and offline is None and gpt2.endpoint_reachable():
        pytest.skip("this machine reaches the Hugging Face hub")
    start = time.perf_counter()
    with pytest.raises(gpt2.GPT2Unavailable, match="NUMSCALE_GPT2") as info:
        gpt2.load_tensors(
            ["h.0.ln_1.weight"]
        )  # the default source: NUMSCALE_GPT2 unset
    elapsed = time.perf_counter() - start
    # The probe is bounded by PROBE_TIMEOUT = 1.5 s (the silent server uses all of it);
    # the budget is 2 s, against ~23 s of retries inside the hub client.
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    message = str(info.value)
    assert "'gpt2'" in message and str(tmp_path) not in message
    assert "\n" not in message  # one paragraph, wrapped once by whoever shows it
    # The failure is remembered: a second call in the same process costs nothing.
    start = time.perf_counter()
    assert not gpt2.source_available()
    assert time.perf_counter() - start < 0.1


def test_probe_accepts_only_usable_answers(silent_server):
    start = time.perf_counter()
    assert not gpt2.endpoint_reachable(silent_server, timeout=0.3)
    assert (
        time.perf_counter() - start < 0.3 + 0.2
    )  # abandoned at the timeout (thread start slack)
    assert not gpt2.endpoint_reachable("http://127.0.0.1:9", timeout=0.3)


def test_default_source_is_the_hub_id(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(gpt2.GPT2Unavailable, match="'gpt2'"):
        gpt2.list_tensors()
    # the chapters' except clause catches it; SourceUnavailable is the shared class
    from numscale.models import sources

    assert issubclass(gpt2.GPT2Unavailable, sources.SourceUnavailable)


def test_hub_id_from_local_cache(monkeypatch, tmp_path, pretrained_dir, state):
    """A model in the local Hugging Face cache layout is found with HF_HUB_OFFLINE set."""
    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--tiny" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        (snapshot / name).write_bytes((pretrained_dir / name).read_bytes())
    (cache / "models--someone--tiny" / "refs").mkdir()
    (cache / "models--someone--tiny" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    got = gpt2.load_tensor("h.0.ln_2.weight", source="someone/tiny")
    np.testing.assert_array_equal(got, state["h.0.ln_2.weight"])
    description = gpt2.describe_source("someone/tiny")
    assert (
        "local Hugging Face cache" in description and str(tmp_path) not in description
    )
    assert isinstance(
        gpt2_model.load_model("someone/tiny"), transformers.GPT2LMHeadModel
    )


# --------------------------------------------------------------------- initialization


def test_init_layernorm_parameters():
    init = gpt2_model.init_layernorm_parameters()
    assert init.gains.shape == init.biases.shape == (25, 768)
    assert init.names[0] == "h.0.ln_1" and init.names[-1] == "ln_f"
    assert np.all(init.gains == 1) and np.all(init.biases == 0)
    with pytest.raises(TypeError, match="n_layer"):
        gpt2_model.init_layernorm_parameters(n_layer=2.0)
    with pytest.raises(ValueError, match="n_embd"):
        gpt2_model.init_layernorm_parameters(n_embd=0)


# ------------------------------------------------------------------ real GPT-2 small


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_layernorm.npz").is_file(),
    reason="reference tensors not present",
)
def test_reference_layernorms_match_provenance():
    params = gpt2.layernorm_parameters(REFERENCE)
    assert params.gains.size == 19_200 and params.biases.size == 19_200
    assert params.gains.shape == (25, 768)
    # The provenance file prints the extremes with 4 decimals; the stored values are float32,
    # so they agree to half a unit of the last printed digit (5e-5), far above float32 rounding.
    assert params.gains.max() == pytest.approx(17.4193, abs=5e-5)
    assert params.biases.min() == pytest.approx(-4.1918, abs=5e-5)
    assert params.biases.max() == pytest.approx(7.3683, abs=5e-5)
    # And with the six decimals of its summary table, to float32 resolution near these values
    # (ulp(17.4) = 1.9e-6) plus the 5e-7 rounding of the table.
    assert params.gains.max() == pytest.approx(17.419317, abs=3e-6)
    assert params.biases.min() == pytest.approx(-4.191765, abs=1e-6)
    assert params.biases.max() == pytest.approx(7.368324, abs=1.5e-6)
    assert (
        int(params.gains.argmax()) // 768 == 24
    )  # the largest gain is in ln_f (provenance)


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_partial.npz").is_file(),
    reason="reference tensors not present",
)
def test_reference_partial_tensors():
    tensors = gpt2.load_tensors(pattern="h.*.attn.c_proj.weight", source=REFERENCE)
    assert len(tensors) == 12 and tensors["h.0.attn.c_proj.weight"].shape == (768, 768)
    # Provenance: std 0.147 (block 0), 0.094 (block 5), 0.182 (block 11), printed to 3 decimals.
    for block, std in [(0, 0.147), (5, 0.094), (11, 0.182)]:
        assert float(tensors[f"h.{block}.attn.c_proj.weight"].std()) == pytest.approx(
            std, abs=5e-4
        )
    wpe = gpt2.load_tensor("transformer.wpe.weight", source=REFERENCE)
    norms = np.linalg.norm(wpe, axis=1)
    for row, norm in [(0, 9.88), (1, 5.19), (2, 4.59), (100, 3.36)]:
        assert float(norms[row]) == pytest.approx(norm, abs=5e-3)
    assert float(norms[1023]) == pytest.approx(0.118, abs=5e-4)
    with pytest.raises(gpt2.GPT2Unavailable, match="only part"):
        gpt2_model.load_model(REFERENCE)


# ------------------------------------------------------------------ honest labels


def test_model_label_of_other_tensors(small_state, state):
    assert gpt2_model.model_label(small_state) == "a model with GPT-2's tensor names"
    assert not gpt2_model.is_released_gpt2_small(small_state)
    assert not gpt2_model.is_released_gpt2_small({})
    assert not gpt2_model.is_released_gpt2_small(state)  # tiny shapes
    with pytest.raises(TypeError, match="tensors"):
        gpt2_model.is_released_gpt2_small([1, 2])


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_attention.npz").is_file(),
    reason="reference tensors not present",
)
def test_released_tensors_are_recognised_and_fakes_are_not(monkeypatch):
    monkeypatch.setenv("NUMSCALE_GPT2", str(REFERENCE))
    every = gpt2.load_tensors()
    assert len(every) == 123
    assert gpt2_model.is_released_gpt2_small(every)
    assert gpt2_model.model_label(every) == "the released GPT-2 small"
    ln = {k: v for k, v in every.items() if ".ln_" in k or k.startswith("ln_f")}
    assert gpt2_model.model_label(ln) == "the released GPT-2 small"
    # one value moved by one float32 ulp is not the released model
    changed = dict(ln)
    changed["h.3.ln_2.weight"] = changed["h.3.ln_2.weight"].copy()
    changed["h.3.ln_2.weight"][7] = np.nextafter(
        changed["h.3.ln_2.weight"][7], np.float32(1)
    )
    assert gpt2_model.model_label(changed) == "a model with GPT-2's tensor names"
    # a six-block model built from real blocks under other block numbers is not either
    shuffled = {
        k.replace("h.0.", "h.1.") if k.startswith("h.0.") else k: v
        for k, v in ln.items()
        if not k.startswith("h.1.")
    }
    assert not gpt2_model.is_released_gpt2_small(shuffled)
    # a tensor whose checksum is not stored cannot be verified
    assert not gpt2_model.is_released_gpt2_small(
        {**ln, "wte.weight": np.zeros((2, 2), np.float32)}
    )


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_attention.npz").is_file(),
    reason="reference tensors not present",
)
def test_reference_attention_weights_read_alone_and_fast(monkeypatch):
    monkeypatch.setenv("NUMSCALE_GPT2", str(REFERENCE))
    gpt2.list_tensors()  # the index: zip directories only
    before = _rchar()
    start = time.perf_counter()
    weight = gpt2.load_tensor("transformer.h.5.attn.c_attn.weight")
    elapsed = time.perf_counter() - start
    read = _rchar() - before
    assert weight.shape == (768, 2304) and weight.dtype == np.float32
    # one member is 7,077,888 bytes of the 85 MB archive; allow the zip directory and
    # npy header (< 1 MB) on top
    assert 7_077_888 <= read < 8_100_000, read
    assert elapsed < 1.5, f"{elapsed:.2f} s"
    # provenance: std of the whole matrix 0.126–0.153 for blocks 1–11, printed to 3 decimals
    assert 0.126 - 5e-4 <= float(weight.std()) <= 0.153 + 5e-4
    description = gpt2.describe_source()
    assert description.startswith("the folder named by NUMSCALE_GPT2 (3 files: ")
    assert description.endswith("; 123 tensors") and str(REFERENCE) not in description


def test_unavailable_notice_has_reason_and_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for _ in range(2):  # the first look-up and the remembered one
        with pytest.raises(gpt2.GPT2Unavailable) as info:
            gpt2.list_tensors()
        assert info.value.advice == gpt2.HOW_TO_PROVIDE
        assert info.value.reason.startswith("The default source 'gpt2' is unavailable")


# ------------------------------------------------------------------ the embedded LayerNorms


def test_layernorms_default_to_the_embedded_data(monkeypatch):
    """No variable: GPT-2 small's LayerNorms built into the package, sha256 checked, the
    released values (every tensor matches its stored checksum); the large tensors still
    default to the hub. (An altered embedded file: tests/test_loaders.py.)"""
    monkeypatch.delenv(gpt2.ENV_VAR, raising=False)
    ln = gpt2.layernorm_parameters()
    assert ln.gains.shape == ln.biases.shape == (25, 768)
    assert "built into numscale" in ln.source
    tensors = {f"{m}.weight": g for m, g in zip(ln.names, ln.gains)}
    tensors |= {f"{m}.bias": b for m, b in zip(ln.names, ln.biases)}
    assert gpt2_model.is_released_gpt2_small(tensors)
    if (REFERENCE / "gpt2_small_layernorm.npz").is_file():
        shared = gpt2.layernorm_parameters(str(REFERENCE))
        np.testing.assert_array_equal(shared.gains, ln.gains)
        np.testing.assert_array_equal(shared.biases, ln.biases)


def test_a_llama2c_folder_is_not_called_pickles(tmp_path, monkeypatch):
    """llama2.c's .bin files are plain numbers, not pickles: the message says what the
    folder holds and what NUMSCALE_GPT2 expects."""
    from numscale.models import registry

    folder = tmp_path / "tinystories"
    folder.mkdir()
    for name in ("stories260K.bin", "tok512.bin"):
        (folder / name).write_bytes((registry.DATA_DIR / name).read_bytes())
    monkeypatch.setenv(gpt2.ENV_VAR, str(folder))
    with pytest.raises(gpt2.SourceError) as info:
        gpt2.load_tensors(["wpe.weight"])
    message = str(info.value)
    assert "pickle" not in message
    assert "holds no GPT-2 weights (stories260K.bin, tok512.bin)" in message
    assert "NUMSCALE_GPT2 expects a save_pretrained directory" in message
