"""The softmax-saturation chapter's record, on a small made-up input."""

from __future__ import annotations

import numpy as np
import pytest

from numscale import softmax_saturation_summary as summary


def test_one_seed_saturation_counts_rows_independently():
    unscaled = np.array([[3.0, -3.0], [1.0, -1.0], [0.0, 0.0]])
    scaled = unscaled / 2
    top_unscaled = np.array([0.995, 0.6, 0.5])  # > 0.99: 1 row; > 0.5: 2 rows
    top_scaled = np.array([0.7, 0.4, 0.5])  # > 0.5: 1 row
    rec = summary.one_seed_saturation(unscaled, scaled, top_unscaled, top_scaled)
    # population std of (3, -3, 1, -1, 0, 0): sqrt(20 / 6)
    assert rec.std_unscaled == pytest.approx(np.sqrt(20 / 6), rel=1e-12)
    assert rec.std_scaled == pytest.approx(np.sqrt(20 / 6) / 2, rel=1e-12)
    assert rec.seed0_maxp_unscaled == pytest.approx(2.095 / 3, rel=1e-12)
    assert rec.seed0_maxp_scaled == pytest.approx(1.6 / 3, rel=1e-12)
    assert rec.seed0_onehot_unscaled == 1
    assert rec.seed0_half_unscaled == 2
    assert rec.seed0_half_scaled == 1
    assert summary.format_one_seed(rec).splitlines() == [
        "logit std:         unscaled 1.83, scaled 0.91",
        "mean row max of p: unscaled 0.698, scaled 0.533",
    ]


def test_one_seed_saturation_rejects_bad_input():
    logits = np.zeros((2, 3))
    with pytest.raises(ValueError, match="scaled"):
        summary.one_seed_saturation(logits, np.zeros((3, 3)), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="top_unscaled"):
        summary.one_seed_saturation(logits, logits, np.ones(3), np.ones(2))
    with pytest.raises(TypeError, match="unscaled"):
        summary.one_seed_saturation(
            np.zeros((2, 3), int), logits, np.ones(2), np.ones(2)
        )
    with pytest.raises(TypeError, match="rec"):
        summary.format_one_seed({"std_unscaled": 1.0})
