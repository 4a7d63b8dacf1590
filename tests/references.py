"""Independent references shared by several tests: facts from the format specifications
and a hand-written Adam, written out here rather than taken from the package or torch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: (exponent bits, mantissa bits) of each format, from its definition: IEEE 754
#: (float64, float32, float16), the bfloat16 format, the OCP FP8 specification (E5M2,
#: E4M3FN); not from torch.finfo.
FORMAT_LAYOUTS = {
    "float64": (11, 52),
    "float32": (8, 23),
    "float16": (5, 10),
    "bfloat16": (8, 7),
    "float8_e5m2": (5, 2),
    "float8_e4m3fn": (4, 3),
}


def adam_step_(
    params: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor],
    m1: Sequence[torch.Tensor],
    m2: Sequence[torch.Tensor],
    step: int,
    lr: float,
    beta2: float,
    beta1: float = 0.9,
    eps: float = 1e-8,
) -> None:
    """One Adam update (Kingma & Ba 2015, Algorithm 1) written out, in place: the moment
    estimates ``m1``, ``m2`` and the parameters, each list matching ``params`` tensor for
    tensor (any shapes); ``step`` counts from 1 (the bias corrections 1 − β^step). Call it
    under ``torch.no_grad()``."""
    for p, g, a, b in zip(params, grads, m1, m2, strict=True):
        a.mul_(beta1).add_((1 - beta1) * g)
        b.mul_(beta2).add_((1 - beta2) * g * g)
        p -= lr * (a / (1 - beta1**step)) / ((b / (1 - beta2**step)).sqrt() + eps)
