"""The shape and the arrays of a llama2.c model: what a checkpoint holds.

:class:`LlamaConfig` is the shape a checkpoint header gives (:data:`HEADER_INTS`
integers), :class:`LlamaWeights` the arrays, validated against it, in the file's order
(:data:`WEIGHT_ORDER`). They are read from and written to a file by
:mod:`numscale.models.llama2c`, drawn at initialization by
:func:`numscale.models.llama.init_weights` and run by
:class:`numscale.models.llama.LlamaModel`. Two named shapes: :data:`STORIES260K_CONFIG`
(Karpathy's stories260K) and :data:`TINY_CONFIG` (a tiny model for tests). NumPy only:
reading a checkpoint does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

#: Integers in a llama2.c checkpoint header.
HEADER_INTS = 7
_MAX_DIM = 1 << 20  # a header value above this is not a plausible model size


@dataclass(frozen=True)
class LlamaConfig:
    """The shape of a llama2.c model (the checkpoint header)."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int
    shared_classifier: bool = True

    def __post_init__(self) -> None:
        for f in fields(self)[:7]:
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{f.name} must be an int, got {type(value).__name__}")
            if not 1 <= value <= _MAX_DIM:
                raise ValueError(f"{f.name} must be in 1..{_MAX_DIM}, got {value}")
            object.__setattr__(self, f.name, int(value))
        if self.dim % self.n_heads:
            raise ValueError(
                f"dim {self.dim} is not a multiple of n_heads {self.n_heads}"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads {self.n_heads} is not a multiple of n_kv_heads "
                f"{self.n_kv_heads}"
            )
        if self.head_size % 2:
            raise ValueError(f"head size {self.head_size} must be even (rotary pairs)")

    @property
    def head_size(self) -> int:
        """Width of a query/key vector, d_k = dim / n_heads."""
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        """Width of all key (or value) heads together: n_kv_heads · head_size."""
        return self.n_kv_heads * self.head_size

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Array shapes in file order (``wcls`` only when the classifier is not
        shared)."""
        L, d, h, kv = self.n_layers, self.dim, self.hidden_dim, self.kv_dim
        half = self.head_size // 2
        shapes = {
            "token_embedding": (self.vocab_size, d),
            "rms_att": (L, d),
            "wq": (L, d, d),
            "wk": (L, kv, d),
            "wv": (L, kv, d),
            "wo": (L, d, d),
            "rms_ffn": (L, d),
            "w1": (L, h, d),
            "w2": (L, d, h),
            "w3": (L, h, d),
            "rms_final": (d,),
            "freq_cis_real": (self.seq_len, half),
            "freq_cis_imag": (self.seq_len, half),
        }
        if not self.shared_classifier:
            shapes["wcls"] = (self.vocab_size, d)
        return shapes

    def file_size(self) -> int:
        """Bytes of a checkpoint with this header: 28 + 4 · (number of floats)."""
        return 4 * HEADER_INTS + 4 * sum(
            int(np.prod(s)) for s in self.shapes().values()
        )

    def n_parameters(self) -> int:
        """Trainable parameters (rotary tables excluded, a shared classifier counted
        once)."""
        return sum(int(np.prod(s)) for k, s in self.shapes().items() if "freq" not in k)


#: Array names in the checkpoint's order.
WEIGHT_ORDER = (
    "token_embedding",
    "rms_att",
    "wq",
    "wk",
    "wv",
    "wo",
    "rms_ffn",
    "w1",
    "w2",
    "w3",
    "rms_final",
    "freq_cis_real",
    "freq_cis_imag",
)


@dataclass(frozen=True, eq=False)
class LlamaWeights:
    """All arrays of a llama2.c model, float32, matrices ``(out, in)`` (y = W @ x).

    Shapes: token_embedding (vocab, dim); rms_att, rms_ffn (L, dim); wq, wo (L, dim,
    dim); wk, wv (L, kv_dim, dim); w1, w3 (L, hidden, dim); w2 (L, dim, hidden);
    rms_final (dim,); freq_cis_real, freq_cis_imag (seq_len, head_size/2); ``wcls``
    (vocab, dim) only when the classifier is not the token embedding.
    """

    config: LlamaConfig
    token_embedding: np.ndarray
    rms_att: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wo: np.ndarray
    rms_ffn: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    w3: np.ndarray
    rms_final: np.ndarray
    freq_cis_real: np.ndarray
    freq_cis_imag: np.ndarray
    wcls: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, LlamaConfig):
            raise TypeError(
                f"config must be a LlamaConfig, got {type(self.config).__name__}"
            )
        for name, shape in self.config.shapes().items():
            array = getattr(self, name)
            if not isinstance(array, np.ndarray):
                raise TypeError(
                    f"{name} must be a numpy array, got {type(array).__name__}"
                )
            if array.shape != shape:
                raise ValueError(f"{name} has shape {array.shape}, expected {shape}")
            if not np.issubdtype(array.dtype, np.floating):
                raise TypeError(
                    f"{name} must be a float array, got dtype {array.dtype}"
                )
            if not np.all(np.isfinite(array)):
                raise ValueError(f"{name} holds NaN or inf")
        if self.config.shared_classifier and self.wcls is not None:
            raise ValueError("wcls must be None when the classifier is shared")

    @property
    def classifier(self) -> np.ndarray:
        """The output matrix (vocab, dim): ``wcls`` or the shared token embedding."""
        return self.token_embedding if self.wcls is None else self.wcls

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays in file order, by name."""
        return {name: getattr(self, name) for name in self.config.shapes()}


#: A tiny configuration for tests: 2 blocks, 4 query heads, 2 key/value heads of size 4.
TINY_CONFIG = LlamaConfig(
    dim=16,
    hidden_dim=40,
    n_layers=2,
    n_heads=4,
    n_kv_heads=2,
    vocab_size=300,
    seq_len=32,
)

#: The shape of Karpathy's stories260K (its checkpoint header; PROVENANCE.md of the
#: embedded data). A test checks it against the real file's header.
STORIES260K_CONFIG = LlamaConfig(
    dim=64,
    hidden_dim=172,
    n_layers=5,
    n_heads=8,
    n_kv_heads=4,
    vocab_size=512,
    seq_len=512,
)
