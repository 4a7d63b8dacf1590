"""Claims of book/mup.md, asserted on the glued values of the executed page."""

from __future__ import annotations

import math

import pytest
from test_build import glued_values

pytestmark = pytest.mark.build
PAGE = "book/mup"


@pytest.fixture(scope="module")
def values(built_site):
    return glued_values(built_site, PAGE)


def test_slopes(values):
    # Independent: exactly 1/2, within 5 of the page's own sampling SEs.
    assert abs(values["mup_slope_indep"] - 0.5) < 5 * values["mup_slope_indep_se"]
    # Aligned and ρ = 1/2: within 5 SE of the slope of the exact formula over the same widths.
    for tag in ("aligned", "half"):
        assert abs(values[f"mup_slope_{tag}"] - values[f"mup_slope_{tag}_pred"]) < 5 * values[
            f"mup_slope_{tag}_se"]


def test_fixed_head_width_factor_is_a_constant(values):
    # The constant a multiplier absorbs at fixed d_k: √64 and √128, exact.
    assert values["mup_factor_64"] == 8.0
    assert values["mup_factor_128"] == pytest.approx(math.sqrt(128), rel=1e-15)


def test_attention_of_an_aligned_key(values):
    # 1/d: weight ≈ e/(e + 63) at every width; 50 trials of an aligned key among 63 random
    # ones give a spread of ≈ 15% relative (logit 1 ± O(1/√d)); 25% tolerance at d = 16,
    # 5% at d = 4096 where the fluctuation is 1/√4096.
    limit = values["mup_w_1d_limit"]
    assert values["mup_w_1d_16"] == pytest.approx(limit, rel=0.25)
    assert values["mup_w_1d_4096"] == pytest.approx(limit, rel=0.05)
    # 1/√d: one-hot at 4096 (the aligned logit is √4096 = 64 above the others).
    assert values["mup_w_sqrt_4096"] > 1 - 1e-6
