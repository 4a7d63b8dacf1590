"""Claims of book/sqrt_law.md, asserted on its glued values (issue 9 point 11).

The slope's values are asserted in tests/test_build.py; here the new section on where the iid
assumptions break.
"""

from __future__ import annotations

import pytest
from test_build import glued_values
from test_chapter_dot_products import check_shown_sources, long_code_lines

PAGE = "book/sqrt_law"


def test_code_lines_fit_the_column():
    assert long_code_lines(PAGE) == []


def test_shows_the_slope_standard_error():
    check_shown_sources(PAGE, {("numscale.dotprod", "predicted_slope_se")})


def test_points_to_the_trained_model_chapters():
    from test_chapter_dot_products import ROOT

    text = (ROOT / f"{PAGE}.md").read_text(encoding="utf-8")
    assert "<chap-trained-attention>`" in text and "<chap-gpt2-qk>`" in text


@pytest.mark.build
def test_general_variance_formula_holds_and_iid_law_does_not(built_site):
    v = glued_values(built_site, PAGE)
    # each measured variance within 5 standard errors (var·√((kurtosis − 1)/N), glued) of
    # equation eq-dot-var-general
    for case in ("iid", "aniso", "aniso_mean"):
        measured, predicted = v[f"sqrt_law_{case}_var"], v[f"sqrt_law_{case}_var_pred"]
        assert abs(measured - predicted) <= 5 * v[f"sqrt_law_{case}_var_se"], case
    assert v["sqrt_law_iid_var_pred"] == pytest.approx(v["sqrt_law_aniso_d"], rel=1e-12)
    # the iid law d σ² σ² (= d here) is off by far more than sampling error
    for case in ("aniso", "aniso_mean"):
        assert v[f"sqrt_law_{case}_var"] - v["sqrt_law_aniso_d"] > 20 * v[f"sqrt_law_{case}_var_se"]
    # the mean: μ_q·μ_k = 64 · 0.25 = 16 exactly; measured within 5 SE (√(var/N), N = 20,000)
    assert v["sqrt_law_aniso_mean_mean_pred"] == pytest.approx(16, rel=1e-12)
    se_mean = (v["sqrt_law_aniso_mean_var_pred"] / 20_000) ** 0.5
    assert abs(v["sqrt_law_aniso_mean_mean"] - 16) <= 5 * se_mean
    # within-row spread tr(Σ²) + μᵀΣμ lies between the anisotropic and the full variance
    assert v["sqrt_law_aniso_var_pred"] < v["sqrt_law_within_row_var"] < v["sqrt_law_aniso_mean_var_pred"]
