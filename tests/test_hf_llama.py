"""stories260K (any llama2.c model) as a transformers LlamaForCausalLM.

A tiny random llama2.c model, and the real stories260K (the book's embedded copy, or the
folder ``NUMSCALE_TINYSTORIES`` names).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip("transformers")

from conftest import REFERENCE
from numscale.models import hf_llama, llama, llama2c, llama_tokenizer, llama_weights

U32 = 2.0**-24


@pytest.fixture(scope="module")
def tiny():
    return llama.init_weights(llama_weights.TINY_CONFIG, seed=5)


@pytest.fixture(scope="module")
def real():
    return llama2c.load()


def test_permutation_moves_pairs_to_halves():
    # one head of d_k = 4 rows: interleaved pairs (0,1), (2,3) -> halves (0,2), (1,3)
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    out = hf_llama.interleaved_to_halves(w, n_heads=1)
    np.testing.assert_array_equal(out[:, 0], [0, 4, 2, 6])
    two = hf_llama.interleaved_to_halves(np.vstack([w, w + 100]), n_heads=2)
    np.testing.assert_array_equal(two[4:, 0], [100, 104, 102, 106])
    with pytest.raises(ValueError, match="w must be"):
        hf_llama.interleaved_to_halves(np.zeros((6, 2)), n_heads=4)


def test_permutation_keeps_dot_products(tiny):
    # the same permutation of q and k leaves q·k alone
    rng = np.random.default_rng(0)
    wq = tiny.wq[0]
    x = rng.standard_normal(wq.shape[1]).astype(np.float32)
    a = wq @ x
    b = hf_llama.interleaved_to_halves(wq, llama_weights.TINY_CONFIG.n_heads) @ x
    assert sorted(a.tolist()) == sorted(b.tolist())
    assert not np.array_equal(a, b)


def test_tiny_logits_equal_the_books_forward(tiny):
    model = hf_llama.to_transformers(tiny)
    rng = np.random.default_rng(1)
    tokens = torch.from_numpy(rng.integers(0, 300, size=(2, 32)))
    with torch.no_grad():
        ours = llama.LlamaModel(tiny)(tokens)
        theirs = model(tokens).logits
    reference = np.stack([llama.forward_numpy(tiny, t.numpy()) for t in tokens])
    # Both are float32 forwards of the same function; each differs from the float64
    # reference by float32 rounding, bounded by c·u·(scale of the logits): with 2
    # blocks of dot products of length ≤ 40 we allow 1e3·u·max|z| (≈ 60 ulps).
    scale = np.abs(reference).max()
    assert np.abs(ours.numpy() - reference).max() <= 1e3 * U32 * scale
    assert np.abs(theirs.numpy() - reference).max() <= 1e3 * U32 * scale


def test_saved_folder_reads_back(tiny, tmp_path):
    folder = hf_llama.save_transformers(tiny, tmp_path / "m")
    assert (folder / "model.safetensors").is_file()
    assert not list(folder.glob("*.bin"))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        folder, use_safetensors=True
    )
    tokens = torch.arange(3, 20)[None]
    with torch.no_grad():
        assert torch.equal(
            loaded(tokens).logits, hf_llama.to_transformers(tiny)(tokens).logits
        )


def test_bad_weights():
    with pytest.raises(TypeError, match="weights"):
        hf_llama.state_dict("stories260K")


def test_real_logits_equal_the_books_forward_to_float32_rounding(real):
    tokens, mask = llama.encode_stories(
        real.tokenizer, real.stories[:2], max_tokens=256
    )
    model = hf_llama.to_transformers(real.weights)
    for row in range(2):
        ids = tokens[row, : int(mask[row].sum()) + 1]
        with torch.no_grad():
            ours = llama.LlamaModel(real.weights)(ids[None])[0].numpy()
            theirs = model(ids[None]).logits[0].numpy()
        reference = llama.forward_numpy(real.weights, ids.numpy())
        # Float32 rounding: the forwards order their sums differently and compute the
        # rotary angles differently (float64 tables cast to float32 vs t·θ^(-2j/d) in
        # float32: an angle error up to t·2^-24 ≈ 1.5e-5 rad at t = 255). Rounding
        # errors of n accumulated float32 operations grow like √n·u (Higham & Mary's
        # probabilistic bound); the longest chain here is 5 blocks of dot products of
        # length ≤ 172, so we allow 1e-4·max|z| (≈ 1,700·u). A conversion that skips
        # the rotary permutation misses by O(1) (next test): the tolerance tells the
        # two apart.
        scale = np.abs(reference).max()
        assert np.abs(ours - reference).max() <= 1e-4 * scale
        assert np.abs(theirs - reference).max() <= 1e-4 * scale


def test_real_conversion_without_the_permutation_is_wrong(real, monkeypatch):
    monkeypatch.setattr(hf_llama, "interleaved_to_halves", lambda w, n_heads: w)
    model = hf_llama.to_transformers(real.weights)
    tokens, mask = llama.encode_stories(real.tokenizer, real.stories[:1], max_tokens=64)
    with torch.no_grad():
        theirs = model(tokens).logits[0].numpy()
    reference = llama.forward_numpy(real.weights, tokens[0].numpy())
    assert np.abs(theirs - reference).max() > 1e-2 * np.abs(reference).max()


def test_real_greedy_sample_is_the_documented_one(real):
    model = hf_llama.to_transformers(real.weights)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            out = model.generate(
                torch.tensor([[llama_tokenizer.BOS]]),
                max_new_tokens=256,
                do_sample=False,
                eos_token_id=llama_tokenizer.BOS,
                pad_token_id=0,
            )
    finally:
        torch.set_num_threads(threads)
    text = real.tokenizer.decode(out[0].tolist())
    path = REFERENCE / "tinystories" / "stories260K_greedy_sample.txt"
    if not path.is_file():
        pytest.skip("the documented sample is in ../shared/reference/tinystories")
    documented = path.read_text(encoding="utf-8")
    assert text == documented.rstrip("\n")  # run.c's positions 0…255, as llama.py
