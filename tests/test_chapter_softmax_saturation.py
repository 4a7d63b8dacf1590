"""Claims of book/softmax_saturation.md, asserted on its glued values (issue 9, points 4, 12).

Run against an executed page: see ../shared notes (NUMSCALE_TEST_SITE). Tolerances beside each
assertion. The 500-seed means themselves are asserted in tests/test_build.py (EXPECTED).
"""

from __future__ import annotations

import math

import pytest
from test_build import glued_values
from test_chapter_dot_products import check_shown_sources, long_code_lines

PAGE = "book/softmax_saturation"


def test_code_lines_fit_the_column():
    assert long_code_lines(PAGE) == []


def test_shows_the_entropy_expansion():
    check_shown_sources(PAGE, {("numscale.softmax", "gaussian_entropy_expansion")})


@pytest.mark.build
def test_unscaled_rows_are_concentrated_not_one_hot(built_site):
    v = glued_values(built_site, PAGE)
    # Caption and prose: "concentrated, but far from one-hot on the whole". The mean top weight
    # (SE ≈ 0.0013) is far below 1, and most rows are not above 0.99 (science notes: 16%;
    # even a 10-point sampling swing would leave it far below half).
    assert v["softmax_maxp_unscaled"] + 5 * v["softmax_maxp_unscaled_se"] < 0.9
    assert v["sat_onehot_pct_unscaled"] < 50 and v["sat_onehot_pct_scaled"] == 0
    # The seed-0 numbers quoted in the heatmap caption are one draw of the per-seed mean,
    # whose spread is SE·√n_seeds (≈ 0.03): within 4 such spreads of the 500-seed mean.
    per_seed_sd = v["softmax_maxp_unscaled_se"] * math.sqrt(v["sat_n_seeds"])
    assert abs(v["sat_seed0_maxp_unscaled"] - v["softmax_maxp_unscaled"]) <= 4 * per_seed_sd
    assert 0 <= v["sat_seed0_onehot_unscaled"] <= v["sat_seed0_half_unscaled"] <= 50


@pytest.mark.build
def test_entropy_limit_fails_well_before_sqrt_2_ln_n(built_site):
    v = glued_values(built_site, PAGE)
    # At σ = √(2 ln 50) the limit ln n − σ²/2 is exactly 0; the measured mean over 4,000 rows
    # (SE ≈ 0.01 nats: per-row sd < 1 nat) is far above it (prose: "still … nats").
    assert v["sat_breakdown_sigma"] == pytest.approx(math.sqrt(2 * math.log(50)), rel=1e-12)
    assert v["sat_entropy_at_breakdown"] > 1.0
    crossings = [v[f"sat_cross_sigma_n{n}"] for n in (50, 512, 4096)]
    breakdowns = [v[f"sat_breakdown_sigma_n{n}"] for n in (50, 512, 4096)]
    # The 0.1-nat crossing is interpolated on a grid of step 0.15 from means with SE ≲ 0.03
    # nats where the error grows by > 0.2 nats per unit σ: uncertain by ≲ 0.2 in σ. Claims:
    # it grows with n (measured gaps ≈ 0.5 ≫ 0.2), and lies well below √(2 ln n) (by > 1).
    assert crossings[0] + 0.2 < crossings[1] and crossings[1] + 0.2 < crossings[2]
    for crossing, breakdown in zip(crossings, breakdowns):
        assert crossing < breakdown - 1.0
    # and it matches the validity statement σ² e^{σ²} ≪ n: at the crossing the first-order
    # correction ((2σ² − 1)e^{σ²} + 1)/(2n) is of the order of the 0.1-nat error (0.03–1).
    for n, crossing in zip((50, 512, 4096), crossings):
        correction = ((2 * crossing**2 - 1) * math.exp(crossing**2) + 1) / (2 * n)
        assert 0.03 < correction < 1.0


@pytest.mark.build
def test_float32_rows_round_to_exactly_one(built_site):
    v = glued_values(built_site, PAGE)
    assert v["sat_exact_one_pct_unscaled"] > 5 and v["sat_exact_one_pct_scaled"] == 0
    assert v["sat_one_hot_gap"] == pytest.approx(math.log(2 / 2.0**-52), rel=1e-12)
