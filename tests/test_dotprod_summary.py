"""Tests of numscale.dotprod_summary (the dot-products chapter's records) and of
numscale.dotprod.wishart_std_spread: fields against hand recomputation on made-up
input, the Wishart spread against exact values and a simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numscale import dotprod, report
from numscale import dotprod_summary as records


def test_wishart_std_spread_exact_and_simulated():
    assert dotprod.wishart_std_spread(1, 1) == math.sqrt(2)  # √(4/2)
    assert dotprod.wishart_std_spread(2, 4) == math.sqrt(9 / 32)  # (4+4+1)/(2·4·4)
    # simulation: 3,000 seeds of std(QKᵀ), Q and K 20 × 20. The relative SE of a sample
    # SD from 3,000 draws is 1/√6000 = 1.3%; the formula is a first-order (delta-method)
    # approximation. 6% is 4.5 SE.
    rng = np.random.default_rng(123)
    stds = np.array(
        [
            (rng.standard_normal((20, 20)) @ rng.standard_normal((20, 20)).T).std()
            for _ in range(3000)
        ]
    )
    measured = stds.std(ddof=1) / stds.mean()
    assert measured == pytest.approx(dotprod.wishart_std_spread(20, 20), rel=0.06)
    with pytest.raises(ValueError, match="n"):
        dotprod.wishart_std_spread(0, 3)
    with pytest.raises(TypeError, match="d"):
        dotprod.wishart_std_spread(3, 2.5)


def test_score_stds_fields():
    # 4 queries, 3 keys, d = 2: three different sizes, so √d from a wrong axis fails
    q = np.array([[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0]])  # std 1
    k = np.array([[2.0, 2.0], [-2.0, -2.0], [2.0, -2.0]])  # std 2
    s = q @ k.T  # rows [0, 0, ±4]: mean 0, variance 4·16/12 = 16/3
    rec = records.score_stds(q, k, s)
    assert (rec.std_q, rec.std_k) == (1.0, 2.0)
    assert rec.qk_std == pytest.approx(4 / math.sqrt(3), rel=1e-15)
    assert rec.sqrt_d == math.sqrt(2) and rec.n_scores == 12
    assert set(report.record_numbers(rec)) == {
        "std_q", "std_k", "qk_std", "sqrt_d", "n_scores",
    }  # fmt: skip
    assert records.format_score_stds(rec) == (
        "std(Q) = 1.000   std(K) = 2.000   std(QKᵀ) = 2.309   √d = 1.414"
    )
    with pytest.raises(ValueError, match="scores"):
        records.score_stds(q, k, s.T)
    with pytest.raises(TypeError, match="keys"):
        records.score_stds(q, k.astype(int), s)


def test_std_check_fields():
    dots = np.array([1.0, -1.0, 1.0, -1.0])  # sample SD (ddof 1) = √(4/3)
    check = records.std_check(dots, 8, 1.25, "normal")
    assert check.std == pytest.approx(math.sqrt(4 / 3), rel=1e-15)
    assert check.predicted == 1.25
    # Gaussian entries: √((1 + 3/d)/(2n)) with d = 8, n = 4
    assert check.rel_se_pct == pytest.approx(
        100 * math.sqrt((1 + 3 / 8) / 8), rel=1e-14
    )
    assert records.format_std_check(check, "√d") == (
        "measured std 1.1547, predicted √d = 1.2500 "
        f"(± {100 * math.sqrt((1 + 3 / 8) / 8):.2f}% sampling error)"
    )
    # the entries' law sets the kurtosis of q·k, (m4²/v⁴ − 3)/d excess: uniform on
    # [−1, 1] (v = 1/3, m4 = 1/5) gives 0.24/d, ±1 entries −2/d; SE √((2 + κ)/(4n))
    for law, excess in (("uniform", 0.24 / 8), ("rademacher", -2 / 8)):
        rel_se = records.std_check(dots, 8, 1.25, law).rel_se_pct
        assert rel_se == pytest.approx(100 * math.sqrt((2 + excess) / 16), rel=1e-14)
    with pytest.raises(ValueError, match="predicted"):
        records.std_check(dots, 8, -1.0)
    with pytest.raises(ValueError, match="dots"):
        records.std_check(np.ones((2, 2)), 8, 1.0)


def test_seed_spread_fields():
    stds = np.array([6.0, 8.0])  # mean 7, SD (ddof 1) √2
    rec = records.seed_spread(stds, 5, 10)
    assert rec.seed_mean == 7.0
    assert rec.seed_spread_pct == pytest.approx(100 * math.sqrt(2) / 7, rel=1e-15)
    # 25 independent Gaussian products of length 10: √((1 + 0.3)/50)
    assert rec.iid_spread_pct == pytest.approx(100 * math.sqrt(1.3 / 50), rel=1e-14)
    assert rec.wishart_spread_pct == pytest.approx(
        100 * math.sqrt(21 / 500), rel=1e-15
    )  # (2·5 + 10 + 1)/(2·25·10)
    # spreads: √2/7 = 20.20%, √(1.3/50) = 16.12%, √(21/500) = 20.49%
    assert records.format_seed_spread(rec) == (
        "mean 7.000, relative spread 20.20% (independent draws: 16.12%, Wishart: 20.49%)"
    )
    with pytest.raises(ValueError, match="stds"):
        records.seed_spread(np.array([7.0]), 5, 10)


def test_format_scaled_stds():
    text = records.format_scaled_stds({"1/2": 0.5, "1": 1.0}, 0.0123)
    assert text.splitlines() == [
        "c = 1/2      : std of c·q·k 0.500  (target 1 ± 1.2%)",
        "c = 1        : std of c·q·k 1.000  (target 1 ± 1.2%)",
    ]


def test_records_print_as_their_format():
    """``glue_record(rec, show=True)`` prints ``str(rec)``: it must be the chapter's line."""
    q = np.array([[1.0, -1.0], [-1.0, 1.0]])
    k = 2.0 * q
    stds = records.score_stds(q, k, q @ k.T)
    assert str(stds) == records.format_score_stds(stds)
    assert str(stds).startswith("std(Q) = 1.000   std(K) = 2.000")
    spread = records.seed_spread(np.array([6.0, 8.0]), 5, 10)
    assert str(spread) == (
        "mean 7.000, relative spread 20.20% (independent draws: 16.12%, Wishart: 20.49%)"
    )
