"""The headline numbers of an inspection report, with the standard errors the report
leaves to its reader.

:func:`headline_numbers` reads a report of :func:`numscale.inspect.inspection.inspect_model` and
returns one flat ``name -> number`` mapping: the ranges of the per-head attention
measurements, the residual stream at its ends, the output logits, the losses and the
int8 errors. Two entries are estimates across sequences, computed here:

- ``rms_L_se``: the standard error of the final residual RMS. The RMS is √(Σx²/N) over
  all tokens and channels; the token-weighted mean square has the ratio estimator's
  standard error (:func:`numscale.stats.ratio_mean_se`), carried to the root by the delta
  method, SE(√m) = SE(m)/(2√m).
- ``mean_log_z_se``: the standard error of the mean log Z over predicting positions,
  the ratio estimator again with each sequence weighted by its T − 1 positions.

The inspection chapter's two agreement checks also live here: :func:`conversion_check`
(a converted model's logits against the reference forward pass) and the ``format_*``
functions that return what the chapter prints.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from numscale import stats


def _section(report: Mapping, key: str) -> Mapping:
    if not isinstance(report, Mapping) or key not in report:
        raise ValueError(f"report must be an inspection report with a {key!r} section")
    return report[key]


def headline_numbers(report: Mapping) -> dict[str, float]:
    """Flat ``name -> number`` summary of an inspection ``report`` (see the module).

    Arrays of the report: ``attention.logit_std`` etc. (layers, heads);
    ``residual.rms`` (layers + 1,); ``residual.rms_per_sequence`` (sequences,
    layers + 1); ``output_logits.mean_log_z_per_sequence`` (sequences,).
    """
    a, r = _section(report, "attention"), _section(report, "residual")
    o, loss = _section(report, "output_logits"), _section(report, "loss")
    q = _section(report, "quantization")
    counts = np.array(_section(report, "input")["lengths"], dtype=float)
    d = _section(report, "model")["d_model"]
    square_sums = r["rms_per_sequence"][:, -1] ** 2 * counts * d  # Σx² per sequence
    ms, ms_se = stats.ratio_mean_se(square_sums, counts * d)
    _, logz_se = stats.ratio_mean_se(
        o["mean_log_z_per_sequence"] * (counts - 1), counts - 1
    )
    errors = q["int8_relative_error_mean"]
    return {
        "within_min": a["logit_std"].min(),
        "within_max": a["logit_std"].max(),
        "within_median": np.median(a["logit_std"]),
        "norm_entropy_median": np.median(a["normalized_entropy"]),
        "first_max": a["first_token_weight"].max(),
        "first_uniform": a["uniform_first_token_weight"],
        "attn_logit_max": a["largest_logit"],
        "fp16_ln_max": report["thresholds"]["fp16_exp_limit"],
        "rows_above_pct": a["rows_above_fp16_exp_limit_pct"],
        "n_rows": a["n_rows_per_head"],
        "rms_0": r["rms"][0],
        "rms_L": r["rms"][-1],
        "rms_L_se": ms_se / (2 * np.sqrt(ms)),
        "token_ratio_max": r["token_max_over_median"].max(),
        "max_abs": r["max_abs"].max(),
        "logit_max_abs": o["max_abs"],
        "logit_std_median": o["std_over_vocab_median"],
        "mean_log_z": o["mean_log_z"],
        "mean_log_z_se": logz_se,
        "loss32": loss["float32"]["mean"],
        "loss32_se": loss["float32"]["se"],
        "bf16_diff": loss["bfloat16"]["minus_float32"],
        "bf16_diff_se": loss["bfloat16"]["minus_float32_se"],
        "fp16_diff": loss["float16"]["minus_float32"],
        "fp16_diff_se": loss["float16"]["minus_float32_se"],
        "err_tensor": errors["per_tensor"],
        "err_channel": errors["per_channel"],
        "err_g128": errors["group_128"],
        "n_matrices": len(q["matrices"]),
    }


@dataclass(frozen=True)
class ConversionCheck:
    """How closely a converted model's logits match a reference forward pass."""

    convert_max_rel: float  #: largest |difference| over the largest |reference logit|
    convert_tokens: int  #: positions compared


def conversion_check(theirs: np.ndarray, ours: np.ndarray) -> ConversionCheck:
    """Compare the logits ``theirs`` with the reference ``ours``, both (T, vocab)."""
    theirs = np.asarray(theirs)
    ours = np.asarray(ours)
    if theirs.ndim != 2 or theirs.shape != ours.shape:
        raise ValueError(
            "theirs and ours must be (T, vocab) logits of one shape, got "
            f"{theirs.shape} and {ours.shape}"
        )
    if not np.issubdtype(theirs.dtype, np.floating) or not np.issubdtype(
        ours.dtype, np.floating
    ):
        raise TypeError("theirs and ours must be floating-point logits")
    return ConversionCheck(
        convert_max_rel=np.abs(theirs - ours).max() / np.abs(ours).max(),
        convert_tokens=theirs.shape[0],
    )


def format_conversion(check: ConversionCheck, model_name: str) -> str:
    """One line stating ``check`` for the model class ``model_name``."""
    if not isinstance(check, ConversionCheck):
        raise TypeError(f"check must be a ConversionCheck, got {type(check).__name__}")
    return (
        f"{model_name}: largest |logit difference| / largest |logit| = "
        f"{check.convert_max_rel:.1e} over {check.convert_tokens} positions"
    )


def format_differences(worst: Mapping[str, float]) -> str:
    """One line per quantity of ``worst``: its largest relative difference."""
    if not isinstance(worst, Mapping) or not worst:
        raise ValueError("worst must be a non-empty mapping of names to differences")
    return "\n".join(
        f"{name:24s} largest relative difference {rel:.1e}"
        for name, rel in worst.items()
    )
