"""Claims of book/mixed_precision.md, asserted on the glued values of the executed page
(real stories260K; skipped without the reference files). The helpers are tested on a
tiny random model in tests/test_mixed_precision.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT
from test_build import glued_values

pytestmark = pytest.mark.build
PAGE = "book/mixed_precision"


@pytest.fixture(scope="module")
def v(built_site):
    found = glued_values(built_site, PAGE)
    values = {k.removeprefix("mixp_"): x for k, x in found.items()
              if k.startswith("mixp_")}
    assert values["source_trained"] == 1, "page built without NUMSCALE_TINYSTORIES"
    return values


def test_ranges_from_finfo(v):
    assert v["fp16_max"] == 65504.0
    assert v["fp16_tiny"] == 2.0 ** -14 and v["fp16_subnormal"] == 2.0 ** -24


def test_fp16_underflow_is_in_the_embedding(v):
    # exact counts over 260,032 entries of one gradient. "A few percent flush to zero"
    # (measured 6.9%): between 1% and 20%; the embedding (32,768 entries, 12.6% of
    # all) holds the zeros: its own fraction × 12.6% is at least 90% of the total.
    assert v["n_grads"] == 260_032
    assert 1 < v["fp16_zero_pct"] < 20
    assert v["fp16_emb_zero_pct"] * 32_768 / 260_032 > 0.9 * v["fp16_zero_pct"]
    # bfloat16's range covers every entry (exact: none below 1e-38)
    assert v["bf16_zero_pct"] == 0 and v["bf16_subnormal_pct"] == 0
    assert v["grad_abs_max"] < v["fp16_max"] / 1000


def test_loss_scaling(v):
    # scaling recovers almost all underflow (cast and float16 backward alike); the
    # backward fails within one grid step (4 binades) of the largest gradient's headroom
    assert v["best_lost_pct"] < 0.1 * v["no_scale_lost_pct"]
    assert v["half_zero_pct_min"] < 0.1 * v["half_zero_pct_s1"]
    assert v["half_first_inf_k"] <= v["headroom_log2"] + 4   # grid step 4
    # the best scale is chosen among scales where no cast entry overflows, so it lies
    # within the headroom; the first grid scale with overflow lies beyond it (exact:
    # an entry overflows only when S·max|g| exceeds 65504; the grid reaches 2^32)
    assert v["best_k"] <= v["headroom_floor"] < v["first_overflow_k"]
    assert v["first_overflow_n"] >= 1
    # "the backward pass already fails at" the first overflowing grid point
    assert v["half_first_inf_k"] <= v["first_overflow_k"]


def test_dynamic_scaler_run(v):
    # starting at 2^24 the first steps overflow and back off by one binade each
    assert v["dyn_first_good"] >= 1
    assert v["dyn_first_good_log2"] == 24 - v["dyn_first_good"]
    assert v["dyn_skipped"] >= v["dyn_first_good"]
    # updates were applied ("in all ... applied an update"): exact counts of one run
    assert v["dyn_applied"] >= 1
    assert v["dyn_applied"] + v["dyn_skipped"] == v["dyn_steps"]


def test_swamping_and_fixes(v):
    # SGD updates lr·g with |g| ~ 1e-3 of weights ~ 0.1: nearly all below ½ulp
    assert v["sgd_swamped_pct_0"] > 90
    # Adam-like updates of size lr: more lost as lr falls (exact counts, monotone)
    assert v["adam_swamped_pct_0"] < v["adam_swamped_pct_1"] < v["adam_swamped_pct_2"]
    # "most of those lost at 1e-3 are the ε-dominated entries" and "of the entries with
    # |g| ≥ ε only ... are swamped" (smaller than the overall share): exact counts over
    # one gradient; measured 84% and 1.4% of 8.0%, far from the bounds
    assert v["adam_lost_eps_share_0"] > 50
    assert v["adam_sign_like_swamped_pct_0"] < 0.5 * v["adam_swamped_pct_0"]
    # the master copy's frozen entries are mostly ε-dominated (measured 97%, exact count)
    assert v["frozen_master_eps_share_1"] > 50
    for i in (0, 1):
        # plain bfloat16 delivers little; the master copy and Kahan nearly all (their
        # remaining error is the final rounding and, for Kahan, the bfloat16
        # compensation); stochastic rounding is unbiased: its mean over ~32,500 entries
        # is within a few percent of the intended movement
        assert v[f"moved_bf16_{i}"] < 0.5
        assert v[f"moved_master_{i}"] > 0.95
        assert v[f"moved_kahan_{i}"] > 0.9
        assert v[f"moved_sr_{i}"] == pytest.approx(1.0, abs=0.05)


def test_adam_eps(v):
    # the non-embedding weights are scale-free at ε = 1e-6 (below 1% of entries) and the
    # embedding is ε-dominated for a large share of entries even at 1e-8
    assert v["eps6_rest_pct"] < 1
    assert v["eps8_emb_pct"] > 20
    assert v["eps8_pct"] < v["eps6_pct"] < v["eps4_pct"]
    assert v["sens_eps8"] < 0   # a 1000× smaller loss shrinks the update


def test_page_builds_without_a_source(tmp_path):
    # no folder named, the hub offline and its cache empty: the page still runs, shows
    # the notice and writes nothing to stderr
    env = {k: v for k, v in os.environ.items() if k != "NUMSCALE_TINYSTORIES"}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "run_pages.py"),
                             str(ROOT / f"{PAGE}.md"), "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    notebook = json.loads((tmp_path / "mixed_precision.ipynb").read_text())
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    assert "built into numscale" in "".join("".join(o.get("text", "")) for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs)
