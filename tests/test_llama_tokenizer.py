"""Tests of numscale.models.llama_tokenizer: llama2.c's BPE encoding rule against a literal
transcription of run.c's, decoding, and the byte-level tokenizer. Its file format is
tested with the other readers in test_tinystories.py."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numscale.models import llama_tokenizer, llama_weights


def tiny_byte_tokenizer() -> llama_tokenizer.Tokenizer:
    """A byte tokenizer with a few merges, the size of TINY_CONFIG's vocabulary."""
    return llama_tokenizer.byte_tokenizer(
        (b"he", b" t", b" the", b"ll", b"o", b" hello", b"\xc3\xa9"),
        vocab_size=llama_weights.TINY_CONFIG.vocab_size,
    )


def reference_encode(tok: llama_tokenizer.Tokenizer, text: str) -> list[int]:
    """run.c's encode, transcribed literally: rescan every pair, merge the best, repeat."""
    lookup = {}
    for i, piece in enumerate(tok.pieces):
        lookup.setdefault(piece, i)
    ids = [1]
    if text:
        ids.append(lookup[b" "])
    for char in text:
        piece = char.encode("utf-8")
        ids.extend([lookup[piece]] if piece in lookup else [b + 3 for b in piece])
    while True:
        best, best_i, best_id = -1e10, -1, -1
        for i in range(len(ids) - 1):
            merged = lookup.get(tok.pieces[ids[i]] + tok.pieces[ids[i + 1]])
            if merged is not None and tok.scores[merged] > best:
                best, best_i, best_id = tok.scores[merged], i, merged
        if best_i < 0:
            return ids
        ids[best_i : best_i + 2] = [best_id]


TEXT = st.text(alphabet=st.sampled_from(list("helo tHé☃\n!")), max_size=40)


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_encode_equals_run_c_rule_on_a_tiny_tokenizer(text):
    tok = llama_tokenizer.byte_tokenizer(
        (
            b"he",
            b" t",
            b" the",
            b"ll",
            b"o",
            b" hello",
            b"l",
            b"lo",
            b"el",
            b" h",
            b"\xc3\xa9",
        )
    )
    assert tok.encode(text) == reference_encode(tok, text)
    # byte fallback and merges lose nothing: decoding (which drops only the dummy-prefix
    # space after BOS) gives the text back
    assert tok.decode(tok.encode(text)) == text


def test_encode_options_and_decode():
    tiny_tokenizer = tiny_byte_tokenizer()
    ids = tiny_tokenizer.encode("hello", bos=False, eos=True)
    assert ids[-1] == llama_tokenizer.EOS and llama_tokenizer.BOS not in ids
    assert tiny_tokenizer.encode("") == [llama_tokenizer.BOS]
    # the leading space after BOS is dropped; byte tokens are bytes; é comes back whole
    assert tiny_tokenizer.decode(tiny_tokenizer.encode("hello é☃")) == "hello é☃"
    with pytest.raises(ValueError, match="ids"):
        tiny_tokenizer.decode([10**6])
    with pytest.raises(TypeError, match="text"):
        tiny_tokenizer.encode(b"bytes")


def test_tokenizer_needs_the_byte_tokens():
    with pytest.raises(ValueError, match="259"):
        llama_tokenizer.Tokenizer((b"a",), (0.0,), 1)


def test_byte_tokenizer_sizes():
    assert llama_tokenizer.byte_tokenizer(vocab_size=512).vocab_size == 512
    assert llama_tokenizer.byte_tokenizer().vocab_size == 260
    with pytest.raises(ValueError, match="vocab_size must be in 260"):
        llama_tokenizer.byte_tokenizer(vocab_size=100)
