"""Write an inspection report: ``report.json`` and a self-contained ``report.html``.

The HTML page has every figure inline (SVG), links each measurement to the chapter
that explains it, and draws the thresholds as the book derives them (float16's exp
limit ``ln 65504``, read from ``torch.finfo``; Sun et al.'s factor 1,000).
"""

from __future__ import annotations

import html
import io
import json
import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

#: Where the chapters live (the book's repository, ``_config.yml``).
BOOK_URL = "https://github.com/numscale/numscale-book/blob/main/book/"
#: The chapter that explains each section of the report.
CHAPTERS = {
    "attention": ("trained_attention", "Attention in a trained model"),
    "threshold": (
        "floating_point",
        "Floating-point formats and where attention overflows",
    ),
    "residual": (
        "trained_residual",
        "The residual stream and norms of a trained model",
    ),
    "output_logits": ("output_logits", "Output logits"),
    "loss": ("mixed_precision", "Mixed-precision training"),
    "quantization": ("quantization", "Quantization scales and outliers"),
}


def to_json(value: object) -> object:
    """``value`` with NumPy arrays and scalars as lists and numbers, NaN and ±inf as
    ``None`` (JSON has neither), keys starting with ``_`` left out."""
    if isinstance(value, dict):
        return {
            str(k): to_json(v) for k, v in value.items() if not str(k).startswith("_")
        }
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json(value.tolist())
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    return value


# ------------------------------------------------------------------ figures


def _head_grid(ax, values: np.ndarray, fmt: str, label: str, cmap: str = "viridis"):
    values = np.asarray(values, dtype=float)
    image = ax.imshow(values, cmap=cmap, aspect="auto")
    L, H = values.shape
    if L * H <= 400:  # numbers readable in each cell
        for i in range(L):
            for j in range(H):
                level = image.norm(values[i, j])
                ax.text(
                    j,
                    i,
                    fmt.format(values[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if level < 0.55 else "black",
                )
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(
        range(H), [str(h + 1) if H <= 16 or h % 4 == 0 else "" for h in range(H)]
    )
    ax.set_yticks(range(L), [str(layer + 1) for layer in range(L)])
    ax.grid(False)
    ax.set_title(label, fontsize=10)
    return image


def figure_attention(report: dict) -> plt.Figure:
    """Heat maps (layers × heads) of the within-row logit std, the normalized entropy
    and the weight on the first token."""
    a = report["attention"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    for ax, key, fmt, label in zip(
        axes,
        ("logit_std", "normalized_entropy", "first_token_weight"),
        ("{:.1f}", "{:.2f}", "{:.2f}"),
        (
            "within-row std of scaled logits",
            "entropy / ln(t+1)",
            "weight on the first token",
        ),
    ):
        fig.colorbar(_head_grid(ax, a[key], fmt, label), ax=ax, fraction=0.05)
    fig.tight_layout()
    return fig


def figure_headroom(report: dict) -> plt.Figure:
    """Histogram of every attention row's largest logit with float16's exp limit."""
    a, limit = report["attention"], report["thresholds"]["fp16_exp_limit"]
    hist = a["row_max_histogram"]
    edges, counts = np.array(hist["edges"]), np.array(hist["counts"])
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    ax.stairs(counts, edges, fill=True, color="#0072B2", alpha=0.8)
    ax.axvline(
        limit,
        color="#D55E00",
        linewidth=1.5,
        label=f"exp overflows float16: ln 65504 = {limit:.2f}",
    )
    ax.set_xlabel("largest scaled logit of an attention row")
    ax.set_ylabel("rows")
    ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def figure_residual(report: dict) -> plt.Figure:
    """RMS of the residual stream and the largest within-token max/median ratio
    against depth, with Sun et al.'s factor 1,000."""
    r = report["residual"]
    depth = np.arange(len(r["rms"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.3))
    left.semilogy(depth, r["rms"], "o-", color="#0072B2")
    left.set_xlabel("depth (0 = embedding)")
    left.set_ylabel("RMS of the residual stream")
    right.semilogy(
        depth,
        r["token_max_over_median"],
        "o-",
        color="#0072B2",
        label="largest over tokens",
    )
    right.axhline(
        report["thresholds"]["massive_activation_ratio"],
        color="black",
        linestyle="--",
        linewidth=0.8,
        label="×1,000 (Sun et al.)",
    )
    right.set_xlabel("depth (0 = embedding)")
    right.set_ylabel("max |x_c| / median |x_c|")
    right.legend()
    fig.tight_layout()
    return fig


def figure_quantization(report: dict) -> plt.Figure:
    """Relative int8 error of every weight matrix under each scheme."""
    q = report["quantization"]
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for k, errors in enumerate(q["int8_relative_error"].values()):
        errors = np.asarray(errors, dtype=float)
        ax.plot(
            np.full(errors.size, k) + np.linspace(-0.2, 0.2, errors.size),
            errors,
            "o",
            markersize=3,
            alpha=0.7,
        )
    ax.set_xticks(
        range(len(q["int8_relative_error"])),
        [s.replace("_", " ") for s in q["int8_relative_error"]],
    )
    ax.set_yscale("log")
    ax.set_ylabel("‖ŵ − w‖ / ‖w‖ (int8)")
    fig.tight_layout()
    return fig


FIGURES = {
    "attention": figure_attention,
    "headroom": figure_headroom,
    "residual": figure_residual,
    "quantization": figure_quantization,
}


def _svg(fig: plt.Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", facecolor="white")
    plt.close(fig)
    text = buffer.getvalue()
    return text[text.index("<svg") :]


# ------------------------------------------------------------------ html


def _link(key: str) -> str:
    page, title = CHAPTERS[key]
    return f'<a href="{BOOK_URL}{page}.md">{html.escape(title)}</a>'


def _f(value: object, fmt: str = ".3g") -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and not math.isfinite(value))
        else format(value, fmt)
    )


def html_page(report: dict, title: str) -> str:
    """The self-contained HTML page of a report (as :func:`to_json` returns it)."""
    m, a, r, o = (
        report[k] for k in ("model", "attention", "residual", "output_logits")
    )
    t, loss, q = report["thresholds"], report["loss"], report["quantization"]
    figs = {
        name: _svg(make(report))
        for name, make in FIGURES.items()
        if name != "quantization" or q is not None
    }
    L = m["n_layers"]
    where = r["token_max_over_median_where"][int(np.argmax(r["token_max_over_median"]))]
    rows = "".join(
        f"<tr><td>{name}</td><td>{_f(e['mean'], '.4f')} ± {_f(e['se'], '.4f')}</td>"
        + (
            f"<td>{_f(e['minus_float32'], '+.5f')} ± {_f(e['minus_float32_se'], '.5f')}"
            if "minus_float32" in e
            else "<td>(reference)"
        )
        + f"</td><td>{e['nonfinite_sequences']}</td></tr>"
        for name, e in loss.items()
        if isinstance(e, dict)
    )
    quant = (
        ""
        if q is None
        else (
            f"<h2>int8 weights</h2><p>Relative error ‖ŵ − w‖/‖w‖ of absmax int8 "
            f"quantization, mean over {len(q['matrices'])} matrices: "
            + ", ".join(
                f"{k.replace('_', ' ')} {_f(v, '.4f')}"
                for k, v in q["int8_relative_error_mean"].items()
            )
            + f". Explained in {_link('quantization')}.</p>{figs['quantization']}"
        )
    )
    body = f"""
<h1>{html.escape(title)}</h1>
<p>{html.escape(m["class"])} ({m["model_type"]}): {L} layers, {m["n_heads"]} query
heads and {m["n_kv_heads"]} key/value heads of size {m["head_dim"]}, d_model
{m["d_model"]}, {m["n_parameters"]:,} parameters. Input: {report["input"]["n_sequences"]}
sequence(s), {report["input"]["n_tokens"]:,} tokens. Measured in
{_f(report["seconds"], ".1f")} s.</p>
<h2>Attention logits</h2>
<p>Within-row standard deviation of the scaled logits s·q·k, from the queries and keys
attention receives (after rotary embeddings, with the model's scaling): from
{_f(float(np.min(a["logit_std"])), ".2f")} to {_f(float(np.max(a["logit_std"])), ".2f")}
across heads (the 1/√d argument aims at 1). Explained in {_link("attention")}.</p>
{figs["attention"]}
<p>Largest logit: <b>{_f(a["largest_logit"], ".2f")}</b>, against float16's exp limit
ln 65504 = {_f(t["fp16_exp_limit"], ".2f")} ({_link("threshold")}): in
{_f(a["rows_above_fp16_exp_limit_pct"], ".2f")}% of the rows (in
{a["heads_with_rows_above_fp16_exp_limit"]} heads) the largest logit would overflow a
float16 exp that does not subtract the row maximum first. Uniform attention would have
normalized entropy 1 and first-token weight {_f(a["uniform_first_token_weight"], ".4f")}
on these rows.</p>
{figs["headroom"]}
<h2>Residual stream</h2>
<p>RMS after the embedding {_f(r["rms"][0], ".3g")}, after the last layer
{_f(r["rms"][-1], ".3g")}. Largest within-token ratio max|x_c|/median|x_c|:
<b>{_f(float(np.max(r["token_max_over_median"])), ".1f")}</b> (sequence {where[0]},
position {where[1]}, channel {where[2]}), against the factor
{t["massive_activation_ratio"]:,.0f} of Sun et al.'s massive activations. Largest |x|:
{_f(float(np.max(r["max_abs"])), ".3g")}. Explained in {_link("residual")}.</p>
{figs["residual"]}
<h2>Output logits</h2>
<p>Median standard deviation over the vocabulary {_f(o["std_over_vocab_median"], ".3g")};
largest |logit| {_f(o["max_abs"], ".3g")}; mean log Z {_f(o["mean_log_z"], ".3g")};
mean next-token entropy {_f(o["entropy_mean"], ".3g")} nats. Explained in
{_link("output_logits")}.</p>
<h2>Loss in 16-bit formats</h2>
<p>Next-token loss (nats per token) with the whole model in each format (log-softmax in
float32), and its paired difference from float32 on the same sequences; standard errors
treat sequences as the independent draws. Explained in {_link("residual")} and
{_link("loss")}.</p>
<table><tr><th>format</th><th>loss</th><th>minus float32</th>
<th>sequences with non-finite loss</th></tr>{rows}</table>
{quant}
"""
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;"
        "line-height:1.45;color:#111;background:#fff}svg{max-width:100%;height:auto}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3rem}"
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{style}</style></head>"
        f"<body>{body}</body></html>"
    )


def write_reports(report: dict, out_dir: str | os.PathLike, title: str = "") -> Path:
    """Write ``report.json`` and ``report.html`` into ``out_dir`` (created); returns
    the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(report)
    (out / "report.json").write_text(
        json.dumps(data, indent=1, allow_nan=False), encoding="utf-8"
    )
    name = title or f"Inspection of a {data['model']['class']}"
    (out / "report.html").write_text(html_page(data, name), encoding="utf-8")
    return out
