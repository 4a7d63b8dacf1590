"""Result records of the softmax-saturation chapter: the numbers it quotes, in one call.

The builders take the chapter's logits and softmax weights (computed with
:mod:`numscale.dotprod` and :mod:`numscale.softmax`) and return a frozen dataclass for
:func:`numscale.report.glue_record`; the ``format_*`` functions return the lines the
chapter prints.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from numscale.checks import as_float_array, of_type


@dataclass(frozen=True)
class OneSeedSaturation:
    """How saturated the rows of one draw of QKᵀ are, unscaled and scaled by 1/√d_k."""

    std_unscaled: float  #: std of the unscaled logits
    std_scaled: float  #: std of the scaled logits
    seed0_maxp_unscaled: float  #: mean over rows of the largest unscaled weight
    seed0_maxp_scaled: float  #: the same, scaled
    seed0_onehot_unscaled: int  #: unscaled rows whose largest weight exceeds 0.99
    seed0_half_unscaled: int  #: unscaled rows whose largest weight exceeds 0.5
    seed0_half_scaled: int  #: scaled rows whose largest weight exceeds 0.5


def one_seed_saturation(
    unscaled: np.ndarray,
    scaled: np.ndarray,
    top_unscaled: np.ndarray,
    top_scaled: np.ndarray,
) -> OneSeedSaturation:
    """Summarize the logits ``unscaled`` and ``scaled`` (n, m) and the largest softmax
    weight of each of their rows, ``top_unscaled`` and ``top_scaled`` (n,)."""
    unscaled = as_float_array(unscaled, "unscaled", ndim=2)
    scaled = as_float_array(scaled, "scaled", ndim=2)
    top_unscaled = as_float_array(top_unscaled, "top_unscaled", ndim=1)
    top_scaled = as_float_array(top_scaled, "top_scaled", ndim=1)
    if scaled.shape != unscaled.shape:
        raise ValueError(
            f"scaled must have the shape of unscaled {unscaled.shape}, got {scaled.shape}"
        )
    rows = unscaled.shape[0]
    if top_unscaled.shape != (rows,) or top_scaled.shape != (rows,):
        raise ValueError(
            f"top_unscaled and top_scaled must hold one weight per row ({rows}), got "
            f"{top_unscaled.shape} and {top_scaled.shape}"
        )
    return OneSeedSaturation(
        std_unscaled=unscaled.std(),
        std_scaled=scaled.std(),
        seed0_maxp_unscaled=top_unscaled.mean(),
        seed0_maxp_scaled=top_scaled.mean(),
        seed0_onehot_unscaled=int(np.sum(top_unscaled > 0.99)),
        seed0_half_unscaled=int(np.sum(top_unscaled > 0.5)),
        seed0_half_scaled=int(np.sum(top_scaled > 0.5)),
    )


def format_one_seed(rec: OneSeedSaturation) -> str:
    """Two lines: the logits' std and the mean largest weight, unscaled and scaled."""
    of_type(rec, OneSeedSaturation, "rec")
    return (
        f"logit std:         unscaled {rec.std_unscaled:.2f}, "
        f"scaled {rec.std_scaled:.2f}\n"
        f"mean row max of p: unscaled {rec.seed0_maxp_unscaled:.3f}, "
        f"scaled {rec.seed0_maxp_scaled:.3f}"
    )
