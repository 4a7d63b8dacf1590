"""Records and formatted text of the √d-law chapter, on small made-up inputs."""

from __future__ import annotations

import numpy as np
import pytest

from numscale import sqrt_law_summary as summary
from numscale.dotprod import SqrtLawSweep


def test_slope_fit_measures_the_distance_to_one_half():
    fit = summary.slope_fit(0.53, 0.01, 0.012)
    assert fit.slope == 0.53 and fit.slope_se == 0.01 and fit.slope_se_theory == 0.012
    assert fit.slope_z == pytest.approx(3.0, rel=1e-12)  # 0.03 / 0.01
    assert summary.slope_fit(0.47, 0.01, 0.01).slope_z == pytest.approx(3.0, rel=1e-12)
    assert str(fit) == "slope 0.5300 ± 0.0100 (fit) ± 0.0120 (theory)"
    with pytest.raises((TypeError, ValueError), match="slope_se"):
        summary.slope_fit(0.5, 0.0, 0.01)


def test_range_record_keeps_the_slope_and_roots_the_largest_length():
    fit = summary.range_record(np.array([2, 10, 1024]), 0.49, 0.004)
    assert (fit.slope, fit.slope_se) == (0.49, 0.004)
    assert fit.sqrt_dmax == 32.0  # √1024 exactly; √2 or √10 would be the wrong end
    assert str(fit) == "slope 0.4900 ± 0.0040"  # the line the chapter prints
    with pytest.raises(ValueError, match="dims"):
        summary.range_record(np.array([2, 1024, 10]), 0.49, 0.004)
    with pytest.raises(TypeError, match="dims"):
        summary.range_record(np.array([2.0, 4.0]), 0.49, 0.004)
    with pytest.raises((TypeError, ValueError), match="slope_se"):
        summary.range_record(np.array([2, 4]), 0.49, -1.0)


def test_format_sweep_shows_the_chosen_rows():
    sweep = SqrtLawSweep(
        dims=np.array([4, 9, 16]),
        std=np.array([2.1, 2.95, 4.0]),
        rel_se=np.full(3, 0.01),
        n_pairs=1000,
    )
    lines = summary.format_sweep(sweep, rows=[0, 2]).splitlines()
    assert lines[0] == "3 lengths d = 4…16, 1,000 pairs each"
    assert lines[2] == "4      2.100   2.000"
    assert lines[3] == "16     4.000   4.000"
    with pytest.raises(ValueError, match="rows"):
        summary.format_sweep(sweep, rows=[3])
    with pytest.raises(TypeError, match="sweep"):
        summary.format_sweep({"dims": [4]}, rows=[0])


def test_kurtosis_numbers_and_lines():
    kurtosis, predicted = {2: 5.9, 50: 3.1}, {2: 6.0, 50: 3.12}
    assert summary.kurtosis_numbers(kurtosis, predicted) == {
        "kurt_d2": 5.9,
        "kurt_d50": 3.1,
        "kurt_d2_pred": 6.0,
        "kurt_d50_pred": 3.12,
    }
    assert summary.format_kurtosis(kurtosis, predicted).splitlines() == [
        "d =   2: kurtosis 5.900, predicted 6.000",
        "d =  50: kurtosis 3.100, predicted 3.120",
    ]
    with pytest.raises(ValueError, match="predicted"):
        summary.kurtosis_numbers(kurtosis, {2: 6.0})
    with pytest.raises(ValueError, match="kurtosis"):
        summary.format_kurtosis({}, {})
