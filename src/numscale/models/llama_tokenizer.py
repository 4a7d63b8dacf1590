"""llama2.c's BPE tokenizer: text to token ids and back, as run.c does it.

:class:`Tokenizer` holds the pieces (bytes) and merge scores of a vocabulary;
:meth:`Tokenizer.encode` applies run.c's merge rule and :meth:`Tokenizer.decode` prints
ids as run.c does. Its file format (``tokenizer.bin``) is read and written by
:func:`numscale.models.llama2c.read_tokenizer` and
:func:`numscale.models.llama2c.write_tokenizer`. :func:`byte_tokenizer` builds a minimal
vocabulary for tests and tiny models.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import Any

#: Token ids of llama2.c's tokenizer: beginning and end of a sequence.
BOS, EOS = 1, 2


@dataclass(frozen=True)
class Tokenizer:
    """llama2.c's BPE tokenizer: token ``i`` is ``pieces[i]`` (bytes) with merge score
    ``scores[i]``. Ids 0, 1, 2 are ``<unk>``, BOS, EOS; ids 3..258 the byte tokens."""

    pieces: tuple[bytes, ...]
    scores: tuple[float, ...]
    max_token_length: int

    def __post_init__(self) -> None:
        if len(self.pieces) != len(self.scores):
            raise ValueError(
                f"pieces ({len(self.pieces)}) and scores ({len(self.scores)}) "
                f"differ in length"
            )
        if len(self.pieces) < 3 + 256:
            raise ValueError(
                f"a llama2.c tokenizer has at least 259 tokens, got {len(self.pieces)}"
            )
        if not all(isinstance(p, bytes) for p in self.pieces):
            raise TypeError("pieces must be bytes")
        lookup: dict[bytes, int] = {}
        for i, piece in enumerate(self.pieces):
            lookup.setdefault(piece, i)
        object.__setattr__(self, "_lookup", lookup)

    @property
    def vocab_size(self) -> int:
        return len(self.pieces)

    def encode(self, text: str, bos: bool = True, eos: bool = False) -> list[int]:
        """Token ids of ``text`` by llama2.c's rule (run.c ``encode``).

        Prepend the dummy-prefix " " (for non-empty text), split into UTF-8 characters
        (one not in the vocabulary becomes its byte tokens, byte + 3), then repeatedly
        merge the adjacent pair whose concatenation is a token with the highest score
        (the leftmost pair among equal scores). A heap gives the same merges as run.c's
        rescan of all pairs, in O(n log n).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        lookup: dict[bytes, int] = self._lookup  # type: ignore[attr-defined]
        ids: list[int] = []
        if text:
            ids.append(lookup[b" "])
            for char in text:
                piece = char.encode("utf-8", errors="surrogatepass")
                token = lookup.get(piece)
                ids.extend([token] if token is not None else [b + 3 for b in piece])
        ids = self._merge(ids)
        return ([BOS] if bos else []) + ids + ([EOS] if eos else [])

    def _merge(self, ids: list[int]) -> list[int]:
        lookup: dict[bytes, int] = self._lookup  # type: ignore[attr-defined]
        pieces, scores = self.pieces, self.scores
        n = len(ids)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[float, int, int, int, int]] = []

        def push(left: int) -> None:
            right = nxt[left]
            if right >= n:
                return
            merged = lookup.get(pieces[ids[left]] + pieces[ids[right]])
            if merged is not None and scores[merged] > -1e10:  # run.c's starting best
                entry = (-scores[merged], left, ids[left], ids[right], merged)
                heapq.heappush(heap, entry)

        for i in range(n - 1):
            push(i)
        while heap:
            _, left, left_id, right_id, merged = heapq.heappop(heap)
            right = nxt[left]
            stale = not alive[left] or right >= n
            if stale or ids[left] != left_id or ids[right] != right_id:
                continue  # one of the two tokens has changed since the push
            ids[left] = merged
            alive[right] = False
            nxt[left] = nxt[right]
            if nxt[right] < n:
                prv[nxt[right]] = left
            if prv[left] >= 0:
                push(prv[left])
            push(left)
        return [ids[i] for i in range(n) if alive[i]]

    def decode(self, ids: Any) -> str:
        """Text of token ids, as run.c prints them.

        BOS and EOS add no text; the leading space of a piece right after BOS is dropped;
        byte tokens ``<0xNN>`` are that byte; control bytes other than whitespace are
        skipped (run.c's ``safe_printf``). Bytes are decoded as UTF-8 (invalid bytes
        become U+FFFD), so byte-fallback characters come back whole.
        """
        out = bytearray()
        prev = -1
        for raw in list(ids):
            token = int(raw)
            if not 0 <= token < self.vocab_size:
                raise ValueError(f"ids holds {token}, outside 0..{self.vocab_size - 1}")
            if token in (BOS, EOS):
                prev = token
                continue
            piece = self.pieces[token]
            if prev == BOS and piece.startswith(b" "):
                piece = piece[1:]
            if 3 <= token < 259:
                piece = bytes([token - 3])
            control = len(piece) == 1 and (piece[0] < 32 or piece[0] == 127)
            if control and piece not in (b"\t", b"\n", b"\r", b"\x0b", b"\x0c"):
                prev = token
                continue
            out += piece
            prev = token
        return out.decode("utf-8", errors="replace")


def byte_tokenizer(
    extra: tuple[bytes, ...] = (), vocab_size: int | None = None
) -> Tokenizer:
    """A minimal llama2.c tokenizer for tests and tiny models: the 3 control tokens, the
    256 byte tokens, " ", the ``extra`` pieces, then (to reach ``vocab_size``) the pieces
    " a".." z" and two-letter pieces "aa", "ab", ...; merge scores −1, −2, ... in order."""
    pieces = (b"<unk>", b"\n<s>\n", b"\n</s>\n") + tuple(
        f"<0x{b:02X}>".encode() for b in range(256)
    )
    pieces = pieces + (b" ",) + tuple(extra)
    if vocab_size is not None:
        letters = [bytes([c]) for c in range(ord("a"), ord("z") + 1)]
        fill = [b" " + a for a in letters] + [a + b for a in letters for b in letters]
        fill = [p for p in fill if p not in pieces]
        if not len(pieces) <= vocab_size <= len(pieces) + len(fill):
            raise ValueError(
                f"vocab_size must be in {len(pieces)}.."
                f"{len(pieces) + len(fill)}, got {vocab_size}"
            )
        pieces = pieces + tuple(fill[: vocab_size - len(pieces)])
    n_merged = len(pieces) - 260
    scores = (0.0,) * 260 + tuple(-float(i + 1) for i in range(n_merged))
    return Tokenizer(pieces, scores, max(len(p) for p in pieces))
