"""Tests of numscale.models.llama2c: the llama2.c checkpoint and tokenizer readers, the
stories reader, initialization and the source rule (the tokenizer's encoding rule:
test_llama_tokenizer.py).

Tiny checkpoints and tokenizers are written by the tests; the real stories260K files are
read from the data built into the package (always) and from
``../shared/reference/tinystories`` when present.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REFERENCE
from numscale.models import llama, llama_weights, sources
from numscale.models import llama2c as ts
from test_llama_tokenizer import reference_encode, tiny_byte_tokenizer
from test_loaders import refusal

REAL = REFERENCE / "tinystories"
#: The real files: built into the package, and the shared reference folder when present.
REAL_SOURCES = ["embedded"] + (
    [str(REAL)] if (REAL / "stories260K.bin").is_file() else []
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees the caller's NUMSCALE_TINYSTORIES or a cached load."""
    monkeypatch.delenv(ts.ENV_VAR, raising=False)
    ts.clear_cache()
    sources.clear_cache()
    yield
    ts.clear_cache()
    sources.clear_cache()


@pytest.fixture(scope="module")
def tiny_weights():
    return llama.init_weights(llama_weights.TINY_CONFIG, seed=0)


@pytest.fixture(scope="module")
def tiny_tokenizer():
    return tiny_byte_tokenizer()


def write_folder(
    path: Path, weights, tokenizer, stories=("One story.", "Another one.")
):
    path.mkdir(parents=True, exist_ok=True)
    ts.write_checkpoint(weights, path / "stories260K.bin")
    ts.write_tokenizer(tokenizer, path / "tok512.bin")
    text = "".join(f"{s}\n<|endoftext|>\n" for s in stories)
    (path / "tinystories_val.txt").write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the checkpoint


def test_checkpoint_round_trip(tmp_path, tiny_weights):
    path = tmp_path / "model.bin"
    ts.write_checkpoint(tiny_weights, path)
    assert path.stat().st_size == llama_weights.TINY_CONFIG.file_size()
    back = ts.read_checkpoint(path)
    assert back.config == tiny_weights.config
    for name, array in tiny_weights.arrays().items():
        assert getattr(back, name).dtype == np.float32
        np.testing.assert_array_equal(getattr(back, name), array)


def test_checkpoint_with_its_own_classifier(tmp_path):
    config = llama_weights.LlamaConfig(8, 12, 1, 2, 1, 280, 4, shared_classifier=False)
    weights = llama.init_weights(config, seed=1)
    assert weights.wcls is not None and weights.wcls.shape == (280, 8)
    path = tmp_path / "m.bin"
    ts.write_checkpoint(weights, path)
    # the header stores a negative vocab_size for a separate classifier
    assert np.fromfile(path, "<i4", count=7)[5] == -280
    back = ts.read_checkpoint(path)
    assert not back.config.shared_classifier
    np.testing.assert_array_equal(back.classifier, weights.wcls)


def _header(path: Path, values) -> None:
    data = bytearray(path.read_bytes())
    data[:28] = np.array(values, "<i4").tobytes()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "values, word",
    [
        ([16, 40, 2, 0, 2, 300, 32], "n_heads"),  # zero heads
        ([16, 40, 2, 3, 1, 300, 32], "multiple"),  # 16 not divisible by 3
        ([16, 40, 2, 4, 3, 300, 32], "multiple"),  # 4 query heads, 3 kv heads
        ([1 << 30, 40, 2, 4, 2, 300, 32], "dim"),  # implausible size
    ],
)
def test_bad_header_names_the_file(tmp_path, tiny_weights, values, word):
    path = tmp_path / "bad_header.bin"
    ts.write_checkpoint(tiny_weights, path)
    _header(path, values)
    with pytest.raises(ValueError, match=rf"bad_header\.bin: bad header.*{word}"):
        ts.read_checkpoint(path)


def test_truncated_checkpoint_names_the_file(tmp_path, tiny_weights):
    path = tmp_path / "cut.bin"
    ts.write_checkpoint(tiny_weights, path)
    path.write_bytes(path.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"cut\.bin: truncated.*implies"):
        ts.read_checkpoint(path)
    path.write_bytes(b"\x01\x00")
    with pytest.raises(ValueError, match=r"cut\.bin: truncated.*header"):
        ts.read_checkpoint(path)


def test_wrong_size_names_the_file(tmp_path, tiny_weights):
    path = tmp_path / "long.bin"
    ts.write_checkpoint(tiny_weights, path)
    path.write_bytes(path.read_bytes() + b"\0\0\0\0")
    with pytest.raises(ValueError, match=r"long\.bin: wrong size"):
        ts.read_checkpoint(path)


def test_non_finite_checkpoint_names_the_file_and_array(tmp_path, tiny_weights):
    path = tmp_path / "nan.bin"
    ts.write_checkpoint(tiny_weights, path)
    data = bytearray(path.read_bytes())
    data[-4:] = np.array([np.nan], "<f4").tobytes()  # the last float: freq_cis_imag
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"nan\.bin: freq_cis_imag holds NaN"):
        ts.read_checkpoint(path)


# ------------------------------------------------------------------ the tokenizer


def test_tokenizer_round_trip(tmp_path, tiny_tokenizer):
    path = tmp_path / "tok.bin"
    ts.write_tokenizer(tiny_tokenizer, path)
    back = ts.read_tokenizer(path)
    assert back == tiny_tokenizer
    assert (
        ts.read_tokenizer(path, vocab_size=tiny_tokenizer.vocab_size) == tiny_tokenizer
    )


def test_tokenizer_errors_name_the_file(tmp_path, tiny_tokenizer):
    path = tmp_path / "tok.bin"
    ts.write_tokenizer(tiny_tokenizer, path)
    good = path.read_bytes()
    path.write_bytes(good[:-1])
    with pytest.raises(ValueError, match=r"tok\.bin: truncated"):
        ts.read_tokenizer(path)
    path.write_bytes(np.array([-3], "<i4").tobytes() + good[4:])
    with pytest.raises(ValueError, match=r"tok\.bin: bad header"):
        ts.read_tokenizer(path)
    path.write_bytes(good + b"\0\0")
    with pytest.raises(ValueError, match=r"tok\.bin: wrong size"):
        ts.read_tokenizer(path, vocab_size=tiny_tokenizer.vocab_size)
    path.write_bytes(good)
    with pytest.raises(ValueError, match=r"tok\.bin: truncated: \d+ tokens"):
        ts.read_tokenizer(path, vocab_size=tiny_tokenizer.vocab_size + 5)
    path.write_bytes(b"\x07")
    with pytest.raises(ValueError, match=r"tok\.bin: truncated"):
        ts.read_tokenizer(path)


# ------------------------------------------------------------------ stories, init


def test_read_stories(tmp_path):
    path = tmp_path / "s.txt"
    path.write_text(
        "First.\n<|endoftext|>\n\n<|endoftext|>\n  Second.  \n<|endoftext|>\n"
    )
    assert ts.read_stories(path) == ["First.", "Second."]
    assert ts.read_stories(path, limit=1) == ["First."]
    path.write_bytes(b"\xff\xfe<|endoftext|>")
    with pytest.raises(ValueError, match=r"s\.txt: not UTF-8"):
        ts.read_stories(path)
    path.write_text("<|endoftext|>\n")
    with pytest.raises(ValueError, match=r"s\.txt: holds no story"):
        ts.read_stories(path)


def test_init_weights_follow_llama2c():
    config = (
        llama_weights.STORIES260K_CONFIG
    )  # 5 layers: wo and w3 are scaled by 1/√(2·5)
    w = llama.init_weights(config, seed=0)
    # std of n normal draws has relative standard error 1/√(2n); 5 of them as tolerance
    for name, std in [
        ("wq", 0.02),
        ("w1", 0.02),
        ("w2", 0.02),
        ("token_embedding", 0.02),
        ("wo", 0.02 / np.sqrt(10)),
        ("w3", 0.02 / np.sqrt(10)),
    ]:
        array = getattr(w, name)
        assert abs(array.std() / std - 1) < 5 / np.sqrt(2 * array.size), name
        assert abs(array.mean()) < 5 * std / np.sqrt(array.size), name
    assert (
        np.all(w.rms_att == 1) and np.all(w.rms_ffn == 1) and np.all(w.rms_final == 1)
    )
    cos, sin = llama.rotary_tables(8, 512)
    np.testing.assert_array_equal(w.freq_cis_real, cos)
    # angle of pair 1 at position 3 is 3 · 10000^(−2/8)
    assert sin[3, 1] == pytest.approx(np.sin(3 * 10000**-0.25), rel=1e-6)
    again = llama.init_weights(config, seed=0)
    np.testing.assert_array_equal(again.wq, w.wq)


# ------------------------------------------------------------------ the source rule


def test_load_a_folder(tmp_path, monkeypatch, tiny_weights, tiny_tokenizer):
    folder = write_folder(tmp_path / "tiny", tiny_weights, tiny_tokenizer)
    monkeypatch.setenv(ts.ENV_VAR, str(folder))
    loaded = ts.load()
    assert loaded.stories == ("One story.", "Another one.")
    np.testing.assert_array_equal(loaded.weights.wq, tiny_weights.wq)
    assert loaded.tokenizer == tiny_tokenizer
    assert not loaded.released
    assert "not Karpathy's" in loaded.description
    assert "the folder named by NUMSCALE_TINYSTORIES" in loaded.description
    assert str(tmp_path) not in loaded.description  # no machine path
    assert "2 TinyStories validation stories" in loaded.description
    assert ts.load() is loaded  # cached in the process
    by_argument = ts.load(folder)
    assert "the folder 'tiny'" in by_argument.description


@pytest.mark.parametrize(
    "problem, reason",
    [
        ("no-model", "has no stories260K.bin"),
        ("pickle", "pickle files are never loaded"),
        ("corrupt", r"stories260K\.bin: truncated"),
        ("file", "it is a file"),
    ],
)
@pytest.mark.parametrize("how", ["env", "argument"])
def test_explicit_bad_source_is_an_error(
    tmp_path, monkeypatch, tiny_weights, tiny_tokenizer, problem, reason, how
):
    folder = tmp_path / "src"
    write_folder(folder, tiny_weights, tiny_tokenizer)
    if problem in ("no-model", "pickle"):
        (folder / "stories260K.bin").unlink()
    if problem == "pickle":
        (folder / "stories260K.pt").write_bytes(b"\x80\x04K\x01.")
    if problem == "corrupt":
        (folder / "stories260K.bin").write_bytes(
            (folder / "stories260K.bin").read_bytes()[:100]
        )
    target = folder / "tok512.bin" if problem == "file" else folder
    if how == "env":
        monkeypatch.setenv(ts.ENV_VAR, str(target))
    start = time.perf_counter()
    with pytest.raises(
        sources.SourceError, match=refusal(how, ts.ENV_VAR, reason)
    ) as info:
        ts.load() if how == "env" else ts.load(target)
    assert "\n" not in str(info.value)  # one line
    assert isinstance(info.value, ValueError)
    assert time.perf_counter() - start < 2.0
    # source_available does not hide an explicit source's problem
    with pytest.raises(sources.SourceError):
        ts.source_available(target)


def test_default_is_the_embedded_data():
    """No variable: the files built into the package (each sha256 checked at load; an
    altered one: tests/test_loaders.py)."""
    loaded = ts.load()
    assert loaded.released and len(loaded.stories) == ts.N_STORIES
    assert "built into numscale" in loaded.description


def test_default_source_from_the_local_hub_cache(
    tmp_path, monkeypatch, tiny_weights, tiny_tokenizer
):
    """The hub layout of both repositories is found with HF_HUB_OFFLINE set."""
    cache = tmp_path / "hub"
    staged = write_folder(tmp_path / "staged", tiny_weights, tiny_tokenizer)
    layout = {
        (
            "models--karpathy--tinyllamas",
            "stories260K/stories260K.bin",
        ): "stories260K.bin",
        ("models--karpathy--tinyllamas", "stories260K/tok512.bin"): "tok512.bin",
        (
            "datasets--roneneldan--TinyStories",
            "TinyStories-valid.txt",
        ): "tinystories_val.txt",
    }
    for (repo, name), local in layout.items():
        target = cache / repo / "snapshots" / ("0" * 40) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((staged / local).read_bytes())
        (cache / repo / "refs").mkdir(exist_ok=True)
        (cache / repo / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = ts.load("karpathy/tinyllamas")
    np.testing.assert_array_equal(loaded.weights.w2, tiny_weights.w2)
    assert (
        "Hugging Face hub" in loaded.description
        and str(tmp_path) not in loaded.description
    )


# ------------------------------------------------------------------ the real files


@pytest.mark.parametrize("real", REAL_SOURCES)
def test_real_files(real):
    loaded = ts.load(real)
    c = loaded.weights.config
    assert (
        c.dim,
        c.hidden_dim,
        c.n_layers,
        c.n_heads,
        c.n_kv_heads,
        c.vocab_size,
        c.seq_len,
    ) == (64, 172, 5, 8, 4, 512, 512)
    assert c.file_size() == 1_056_540 and c.n_parameters() == 260_032  # PROVENANCE.md
    assert loaded.released and loaded.description.startswith("Karpathy's stories260K")
    assert len(loaded.stories) == ts.N_STORIES
    assert loaded.tokenizer.encode("Once upon a time") == [1, 403, 407, 261, 378]
    # the stored rotary tables are cos/sin with θ = 10000 (PROVENANCE.md: to 2.3e-6, the
    # float32 rounding of angles up to 511 rad: 511 · 2^-24 ≈ 3e-5 bounds it)
    cos, sin = llama.rotary_tables(c.head_size, c.seq_len)
    assert np.abs(loaded.weights.freq_cis_real - cos).max() < 3e-5
    assert np.abs(loaded.weights.freq_cis_imag - sin).max() < 3e-5
    # trained: the RMSNorm gains are not 1
    assert np.abs(loaded.weights.rms_att - 1).max() > 0.1


@pytest.mark.parametrize("real", REAL_SOURCES)
def test_real_tokenizer_round_trips_and_matches_run_c(real):
    loaded = ts.load(real)
    tok = loaded.tokenizer
    for story in loaded.stories[:20]:
        ids = tok.encode(story)
        assert ids == reference_encode(tok, story)
        assert tok.decode(ids) == story


@pytest.mark.parametrize("real", REAL_SOURCES)
def test_real_load_is_fast_and_cached(real):
    start = time.perf_counter()
    first = ts.load(real)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"load took {elapsed:.2f} s"  # 1.5 MB read and hashed
    start = time.perf_counter()
    assert ts.load(real) is first
    assert time.perf_counter() - start < 0.05
