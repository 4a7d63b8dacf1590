"""Claims of book/stable_softmax.md, asserted on its glued values (issues 9 and 13)."""

from __future__ import annotations

import math
from decimal import Decimal, localcontext

import numpy as np
import pytest

from test_chapter_dot_products import check_shown_sources

PAGE = "book/stable_softmax"


def test_shows_the_algorithms_it_teaches():
    # log-sum-exp / stable softmax cores, the online recurrence, the FlashAttention-2 output
    # recurrence, and the merge of two states (issue 13)
    check_shown_sources(
        PAGE,
        {
            ("numscale.softmax", "_softmax_core"),
            ("numscale.softmax", "_shift_and_log1p"),
            ("numscale.streaming", "_online_states"),
            ("numscale.streaming", "_online_attention_core"),
            ("numscale.streaming", "_merge"),
        },
    )


def test_flashattention_attribution():
    # issue 9 point 14: one division at the end is FlashAttention-2's form, cited to it
    text = (Path_root() / f"{PAGE}.md").read_text(encoding="utf-8")
    assert "FlashAttention-2's\n{cite:p}`dao2023flashattention2`" in text


def Path_root():
    from test_chapter_dot_products import ROOT

    return ROOT


def exact_softmax(z: np.ndarray) -> list[Decimal]:
    """softmax of the float values z, to 40 digits (stdlib Decimal; each float is exact)."""
    with localcontext() as ctx:
        ctx.prec = 40
        x = [Decimal(float(v)) for v in z]
        m = max(x)
        e = [(v - m).exp() for v in x]
        total = sum(e, Decimal(0))
        return [v / total for v in e]


def shifted_softmax(z: np.ndarray) -> np.ndarray:
    """exp(z − max) / Σ exp(z − max) in z's dtype, plain NumPy."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def textbook_softmax(z: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(z)
        return e / e.sum()


def errors_in_eps(
    p: np.ndarray, exact: list[Decimal], eps: float, tiny: float
) -> tuple[float, float]:
    """(max |p − exact|, max |p − exact|/exact over exact > tiny), in eps; NaN if p is not
    finite."""
    if not np.all(np.isfinite(p)):
        return math.nan, math.nan
    err = [abs(Decimal(float(a)) - b) for a, b in zip(p, exact)]
    rel = [e / b for e, b in zip(err, exact) if b > Decimal(tiny)]
    return float(max(err)) / eps, float(max(rel)) / eps


@pytest.mark.build
def test_naive_and_stable_errors(v):
    # ln of the largest finite number, from the formats' definitions (exact arithmetic):
    # (2 − 2^(1−p))·2^emax with p = 53, emax = 1023 (float64) and p = 24, emax = 127
    # (the page takes the log in the format itself: rounding of one ulp, 2^(1−p))
    for bits, (p, emax) in (("64", (53, 1023)), ("32", (24, 127))):
        ln_max = emax * math.log(2) + math.log(2 - 2.0 ** (1 - p))
        assert v[f"ss_lnmax{bits}"] == pytest.approx(ln_max, rel=2.0 ** (1 - p))
    # −ln of half the smallest positive float32, 2^-150 (taken in float32: one ulp);
    # and measured: float32's exp is positive just inside the gap and 0 just past it
    gap = v["ss_f32_underflow_gap"]
    assert gap == pytest.approx(150 * math.log(2), rel=2.0**-23)
    assert (
        np.exp(np.float32(-(gap - 0.02))) > 0 and np.exp(np.float32(-(gap + 0.02))) == 0
    )
    # the naive curve ends within one grid step (ratio 2000^(1/119)) below ln(max)
    step = 2000 ** (1 / 119)
    for bits in ("32", "64"):
        last, ln_max = v[f"ss_naive_last{bits}"], v[f"ss_lnmax{bits}"]
        assert last <= ln_max < last * step
    # the error sweep, recomputed here: the page's row and grid (its inputs), both
    # formulas in plain NumPy, a Decimal reference; the same float operations as the
    # page's helpers, so the maxima agree to the last bit (rel 1e-9)
    row = np.random.default_rng(1).standard_normal(50)
    tops = np.logspace(0, np.log10(2000), 120)
    worst = {"abs": 0.0, "rel32": 0.0, "rel64": 0.0, "naive_rel": 0.0}
    for dtype, bits in ((np.float32, "32"), (np.float64, "64")):
        info = np.finfo(dtype)
        for top in tops:
            z = (row * (top / row.max())).astype(dtype)
            exact = exact_softmax(z)
            a, r = errors_in_eps(
                shifted_softmax(z), exact, float(info.eps), float(info.smallest_normal)
            )
            worst["abs"] = max(worst["abs"], a)
            worst[f"rel{bits}"] = max(worst[f"rel{bits}"], r)
            a_naive, r_naive = errors_in_eps(
                textbook_softmax(z), exact, float(info.eps), float(info.smallest_normal)
            )
            if not math.isnan(r_naive):  # "both formulas": the naive one where finite
                worst["abs"] = max(worst["abs"], a_naive)
                worst["naive_rel"] = max(worst["naive_rel"], r_naive)
    assert v["ss_abs_max"] == pytest.approx(worst["abs"], rel=1e-9)
    assert v["ss_rel_max32"] == pytest.approx(worst["rel32"], rel=1e-9)
    assert v["ss_rel_max64"] == pytest.approx(worst["rel64"], rel=1e-9)
    assert v["ss_naive_rel_max"] == pytest.approx(worst["naive_rel"], rel=1e-9)
    # and the prose's reading of them: absolute errors of a few eps (the unit test bounds
    # them by 4); the naive formula has the smaller relative error, the shifted one's grows
    # with the logits (u·|z_i − m| at |z_i − m| ~ hundreds)
    assert v["ss_abs_max"] <= 4
    assert v["ss_naive_rel_max"] < 4 < v["ss_rel_max32"] < v["ss_rel_max64"]


@pytest.mark.build
def test_shift_changes_only_the_rounding_of_z(v):
    z = np.random.default_rng(0).standard_normal(50) * 3  # the page's row (input)
    eps = float(np.finfo(np.float64).eps)
    assert v["ss_shift__is_input"] == 1
    shifted = z + v["ss_shift"]  # the page's shift c (an input)
    exact_z, exact_shifted = exact_softmax(z), exact_softmax(shifted)
    # the exact softmaxes of z and of the rounded z + c differ by D; the computed ones
    # each differ from their exact values by e1, e2, so the quoted difference lies in
    # D ± (e1 + e2) (triangle inequality): "the rounding of z + c, nothing more"
    d_exact = max(abs(a - b) for a, b in zip(exact_z, exact_shifted))
    e1, _ = errors_in_eps(shifted_softmax(z), exact_z, eps, 0.0)
    e2, _ = errors_in_eps(shifted_softmax(shifted), exact_shifted, eps, 0.0)
    assert abs(v["ss_shift_diff_eps"] - float(d_exact) / eps) <= e1 + e2
    # the NLL from log-softmax, for the logits [gap, 0, 3] (gap: the page's input):
    # LSE − z_y = gap + log(1 + e^(3 − gap) + e^-gap), within float32 rounding of gap
    # (one ulp of 120 is 7.6e-6)
    gap = v["ss_nll_gap"]
    assert v["ss_nll_gap__is_input"] == 1
    nll = gap + math.log1p(math.exp(3 - gap) + math.exp(-gap))
    assert v["ss_nll_log"] == pytest.approx(nll, abs=1e-5)


def online_softmax(z: np.ndarray, block: int) -> np.ndarray:
    """Milakov–Gimelshein online normaliser in z's dtype, then exp(z − m)/ℓ (plain NumPy)."""
    m, s = z.dtype.type(-np.inf), z.dtype.type(0)
    for start in range(0, z.size, block):
        b = z[start : start + block]
        m_new = max(m, b.max())
        s = s * np.exp(m - m_new) + np.exp(b - m_new).sum()
        m = m_new
    return np.exp(z - m) / s


@pytest.mark.build
def test_block_size_sweep_recomputed(v):
    n, grid, c = v["ss_n_keys"], v["ss_n_block_grid"], v["ss_block_bound_c"]  # inputs
    for name in ("ss_n_keys", "ss_n_block_grid", "ss_block_bound_c"):
        assert v[f"{name}__is_input"] == 1
    # the distinct integers among `grid` log-spaced sizes from 1 to n, counted in exact
    # arithmetic (round-half-even like NumPy; no size sits at a half here)
    sizes = sorted({round(n ** (k / (grid - 1))) for k in range(grid)})
    assert v["ss_n_block_sizes"] == len(sizes)
    # the worst-case bound c·n·u in eps (u = eps/2): exact arithmetic
    assert v["ss_block_bound_eps"] == c * n / 2
    sizes = np.array(sizes)
    row32 = (np.random.default_rng(3).standard_normal(n) * 4).astype(np.float32)
    curves = {}
    for dtype in (np.float32, np.float64):
        info = np.finfo(dtype)
        for order, r in (("random", row32), ("increasing", np.sort(row32))):
            z = r.astype(dtype)
            ref = shifted_softmax(z)
            ok = ref > info.smallest_normal
            curves[(dtype, order)] = np.array(
                [
                    np.max(
                        np.abs(
                            online_softmax(z, int(b))[ok].astype(np.float64)
                            - ref[ok].astype(np.float64)
                        )
                        / ref[ok].astype(np.float64)
                    )
                    / float(info.eps)
                    for b in sizes
                ]
            )
    outlier = curves.pop((np.float32, "random"))
    others = list(curves.values())
    # the same operations as the page's helpers: equal to the last bits (rel 1e-9)
    assert v["ss_block_one32_eps"] == pytest.approx(outlier[0], rel=1e-9)
    assert v["ss_block_one_others_eps"] == pytest.approx(
        max(c[0] for c in others), rel=1e-9
    )
    rest = max(c[1:].max() for c in [outlier, *others])
    assert v["ss_block_rest_eps"] == pytest.approx(rest, rel=1e-9)
    worst = max(c.max() for c in [outlier, *others])
    assert v["ss_block_worst_eps"] == pytest.approx(worst, rel=1e-9)
    # the prose: far below the bound; one outlier, at block size 1 in float32
    assert v["ss_block_worst_eps"] <= v["ss_block_bound_eps"] / 100
    assert v["ss_block_one32_eps"] > 3 * max(
        v["ss_block_rest_eps"], v["ss_block_one_others_eps"]
    )
    # the swamping that explains it, recounted: a term below half an ulp of the running
    # sum leaves it unchanged; the computed ℓ against a Decimal one
    for dtype, bits in ((np.float32, "32"), (np.float64, "64")):
        z = row32.astype(dtype)
        m, s, swamped = dtype(-np.inf), dtype(0), []
        for x in z:
            m_new = max(m, x)
            old = s * np.exp(dtype(m - m_new)) if np.isfinite(m) else dtype(0)
            term = np.exp(dtype(x - m_new))
            if old + term == old and term > 0:
                swamped.append(x)
            s, m = old + term, m_new
        assert v[f"ss_swamped{bits}"] == len(swamped)
        with localcontext() as ctx:
            ctx.prec = 40
            mx = Decimal(float(m))
            exact = sum((Decimal(float(x)) - mx).exp() for x in z)
            error = float((Decimal(float(s)) - exact) / exact) / float(
                np.finfo(dtype).eps
            )
            lost = sum(((Decimal(float(x)) - mx).exp() for x in swamped), Decimal(0))
        assert v[f"ss_swamped_err{bits}"] == pytest.approx(error, rel=1e-6)
        if bits == "32":
            eps = float(np.finfo(dtype).eps)
            assert v["ss_swamped_lost32"] == pytest.approx(
                float(lost / exact) / eps, rel=1e-6
            )
            # one-sided: the error has the sign of the swamped (lost) mass, and it is
            # several times the largest difference at any block size above 1
            assert v["ss_swamped_err32"] < -3 * v["ss_block_rest_eps"]


def online_attention(z: np.ndarray, values: np.ndarray, block: int) -> np.ndarray:
    """FlashAttention-2's recurrence, written out: unnormalised output, one division."""
    m = np.full(z.shape[0], -np.inf, dtype=z.dtype)
    s = np.zeros(z.shape[0], dtype=z.dtype)
    o = np.zeros((z.shape[0], values.shape[1]), dtype=z.dtype)
    for start in range(0, z.shape[1], block):
        b = z[:, start : start + block]
        m_new = np.maximum(m, b.max(axis=1))
        rescale = np.exp(m - m_new)
        w = np.exp(b - m_new[:, None])
        s = s * rescale + w.sum(axis=1)
        o = o * rescale[:, None] + w @ values[start : start + block]
        m = m_new
    return o / s[:, None]


@pytest.mark.build
def test_online_attention_recomputed(v):
    rng = np.random.default_rng(2)  # the page's inputs
    logits = (rng.standard_normal((4, 4096)) * 4).astype(np.float32)
    values = rng.standard_normal((4096, 64)).astype(np.float32)
    reference = shifted_softmax(logits) @ values
    eps = float(np.finfo(np.float32).eps)
    diff = {
        b: float(np.abs(online_attention(logits, values, b) - reference).max()) / eps
        for b in (1, 64, 1000)
    }
    assert v["ss_attn_diff64"] == pytest.approx(diff[64], rel=1e-9)
    assert v["ss_attn_diff_max"] == pytest.approx(max(diff.values()), rel=1e-9)
    assert v["ss_attn_diff_max"] <= v["ss_block_bound_eps"] / 100
