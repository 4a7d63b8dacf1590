"""Claims of book/output_logits.md, asserted on the glued values of the executed page
(real stories260K; skipped without the reference files). The helpers are tested on a
tiny random model in tests/test_logit_caps.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import math

import pytest
from conftest import ROOT
from test_build import glued_values

pytestmark = pytest.mark.build
PAGE = "book/output_logits"
CAPS = (5, 10, 15, 20, 30, 50)


@pytest.fixture(scope="module")
def v(built_site):
    found = glued_values(built_site, PAGE)
    values = {k.removeprefix("ologit_"): x for k, x in found.items()
              if k.startswith("ologit_")}
    assert values["source_trained"] == 1, "page built without NUMSCALE_TINYSTORIES"
    return values


def test_embedding_scales(v):
    assert v["unit_entry_rms"] == pytest.approx(1 / 8)
    assert v["sqrt_d"] == pytest.approx(8)
    # "larger than √d_model": the trained final gains exceed 1 (measured ~16.7 vs 8)
    assert v["hidden_norm"] > v["sqrt_d"]
    assert v["entry_over_unit"] > 1
    # growth through training: at init the logit std is about ‖h‖·0.02 ≈ 8·0.02 = 0.16.
    # The input token's own row (tied) adds one logit of ≈ ‖h‖‖E_tok‖ ≈ 1.3 to the 512,
    # about +6% on the std, and the std of 512 logits has sampling error ~3%: within
    # 10%. Trained: tens of times larger (measured ~43×)
    assert v["init_logit_std"] == pytest.approx(v["init_hidden_norm"] * 0.02, rel=0.1)
    assert v["logit_growth"] > 10
    # "the two norms grew ...-fold and by aligning them": the norms' growth is a real
    # part of the logits' growth but not all of it (measured 32× of 43×; a ratio of
    # deterministic norms, no sampling error: require at least a 10% shortfall)
    assert 1 < v["norm_growth"] < 0.9 * v["logit_growth"]


def test_caps_cost_more_the_smaller_they_are(v):
    # the largest capped logit lies below the cap and below the uncapped one
    for c in CAPS:
        assert v[f"max_cap{c}"] < min(c, v["max_logit"])
    # cap 30 costs a loss increase detectable at > 3 paired SE; cap 50 within 3 SE of 0
    assert v["diff_cap30"] > 3 * v["diff_cap30_se"]
    assert abs(v["diff_cap50"]) < 3 * v["diff_cap50_se"] + 1e-3
    # monotone in the cap: each smaller cap costs more by more than 2 combined SE
    for small, large in zip(CAPS, CAPS[1:]):
        se = math.hypot(v[f"diff_cap{small}_se"], v[f"diff_cap{large}_se"])
        assert v[f"diff_cap{small}"] - v[f"diff_cap{large}"] > 2 * se


def test_z_loss_moves_log_z(v):
    # deterministic runs on the same batches: the order is exact, not statistical
    assert v["ft_log_z_large"] < v["ft_log_z_palm"] < v["ft_log_z_none"]
    assert v["mean_log_z"] > 5   # the model's normalizer is far from 0


def test_page_builds_without_a_source(tmp_path):
    # no folder named, the hub offline and its cache empty: the page still runs, shows
    # the notice and writes nothing to stderr
    env = {k: v for k, v in os.environ.items() if k != "NUMSCALE_TINYSTORIES"}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "run_pages.py"),
                             str(ROOT / f"{PAGE}.md"), "--out", str(tmp_path)],
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    notebook = json.loads((tmp_path / "output_logits.ipynb").read_text())
    outputs = [o for c in notebook["cells"] for o in c.get("outputs", [])]
    assert "built into numscale" in "".join("".join(o.get("text", "")) for o in outputs)
    assert not any(o.get("name") == "stderr" for o in outputs)
