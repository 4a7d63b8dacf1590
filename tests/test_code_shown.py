"""Issue 13: the code the book shows is the code that runs.

Chapters show a helper's source with ``literalinclude`` and ``:pyobject:``, read from
``src/numscale`` at build time. These tests check that

(a) every such listing, in the built page, is exactly ``inspect.getsource`` of the object
    (the highlighted block's text, normalized: common indentation and trailing spaces
    removed); and, without a build, that Sphinx's own reader cuts the same lines;
(b) each chapter that teaches an algorithm shows the helpers listed in :data:`TAUGHT`, and
    a shown core function is the one the public helper runs (:data:`RUN_BY`);
(c) every downloaded notebook (``_notebooks/<page>.ipynb``) contains the same listings as
    its page, as fenced Python blocks.
"""

from __future__ import annotations

import html
import importlib
import inspect
import json
import re
import textwrap
from pathlib import Path

import pytest

from browser_support import ROOT, notebook_docnames
from conftest import load_extension
from test_build import built_without_data

CHAPTERS = notebook_docnames()

#: chapter -> helpers whose source the chapter must show (qualified names). The
#: algorithm a chapter teaches is shown where it is taught; a public helper whose input
#: checks would clutter the lesson is shown through its core function (CONTRIBUTING).
TAUGHT: dict[str, list[str]] = {
    # stable softmax and log-sum-exp; the online softmax of FlashAttention: online_softmax
    # runs _online_states; combine_states runs _merge.
    "book/stable_softmax": [
        "numscale.softmax._softmax_core",
        "numscale.softmax._shift_and_log1p",
        "numscale.streaming._online_states",
        "numscale.streaming._merge",
        "numscale.streaming._online_attention_core",
    ],
    "book/floating_point": ["numscale.fp._largest_bits_where"],
    "book/sqrt_law": ["numscale.dotprod.predicted_slope_se"],
    "book/softmax_saturation": ["numscale.softmax.gaussian_entropy_expansion"],
    "book/layernorm_rmsnorm": [
        "numscale.norms._layer_norm_core",
        "numscale.norms._rms_norm_core",
    ],
    "book/softmax_gradients": [
        "numscale.softmax_grad.jacobian_from_probs",
        "numscale.softmax_grad.attention_backward",
    ],
    "book/entropy_collapse": [
        "numscale.attention.l2_qk_logits",
        "numscale.attention.layernorm_qk_logits",
        "numscale.attention.layernorm_qk_bound",
        "numscale.toy_training.sigma_reparam",
    ],
    "book/residual_stream": [
        "numscale.residual.pre_ln_block",
        "numscale.residual.post_ln_block",
    ],
    "book/initialization": ["numscale.init._init_variance"],
    "book/mup": ["numscale.mup.correlated_pairs", "numscale.mup.attention_scale"],
    "book/trained_attention": [
        "numscale.attention_rows.head_logit_std",
        "numscale.llama_runs.sweep_losses",
        "numscale.stats.ratio_estimate",
    ],
    "book/gpt2_qk": [
        "numscale.gpt2_qk._logit_moments_core",
        "numscale.gpt2_qk._bias_zeroing_core",
        "numscale.optim.adam_update",
    ],
    "book/mixed_precision": [
        "numscale.mixed_precision.update_scale",
        "numscale.mixed_precision.swamped",
        "numscale.mixed_precision.kahan_step",
        "numscale.mixed_precision.stochastic_round_bf16",
        "numscale.mixed_precision.adam_first_update",
    ],
    "book/output_logits": [
        "numscale.logit_caps.soft_cap",
        "numscale.logit_caps.soft_cap_grad",
        "numscale.logit_caps.z_loss",
    ],
    "book/long_context": [
        "numscale.long_context.log_n_multiplier",
        "numscale.long_context.exp2_softmax",
    ],
    "book/quantization": [
        "numscale.quant.absmax_quantize_blocks",
        "numscale.quant.absmax_quantize",
        "numscale.quant.fold_gain",
        "numscale.quant.smoothquant_scales",
        "numscale.quant._fp8_round",
    ],
}

#: core function shown -> the public helper the chapter calls, which must run it
#: (directly or through other functions of the package).
RUN_BY: dict[str, str] = {
    "numscale.softmax._softmax_core": "numscale.softmax.softmax",
    "numscale.streaming._online_states": "numscale.streaming.online_softmax",
    "numscale.streaming._merge": "numscale.streaming.combine_states",
    "numscale.streaming._online_attention_core": "numscale.streaming.online_attention",
    "numscale.norms._layer_norm_core": "numscale.norms.layer_norm",
    "numscale.norms._rms_norm_core": "numscale.norms.rms_norm",
    "numscale.init._init_variance": "numscale.init.init_std",
    "numscale.softmax_grad.attention_backward": "numscale.softmax_grad.query_gradient",
    "numscale.attention.l2_qk_logits": "numscale.attention.attention_logits",
    "numscale.attention.layernorm_qk_logits": "numscale.attention.attention_logits",
    "numscale.gpt2_qk._logit_moments_core": "numscale.gpt2_qk.logit_moments",
    "numscale.gpt2_qk._bias_zeroing_core": "numscale.gpt2_qk.bias_zeroing_change",
    "numscale.optim.adam_update": "numscale.key_bias_toy.train_key_bias_toy",
    "numscale.llama_runs.sweep_losses": "numscale.llama_runs.scale_sweep",
    "numscale.quant.absmax_quantize_blocks": "numscale.quant.absmax_quantize",
    "numscale.quant._fp8_round": "numscale.quant.fp8_cast",
}

LITERALINCLUDE = re.compile(
    r"^(?P<fence>`{3,}|:{3,})\{literalinclude\}[ \t]+(?P<path>\S+)[ \t]*\n(?P<options>(?:[ \t]*:[\w-]+:.*\n)*)",
    re.M,
)
#: Options that select part of the object (the listing is then not the whole source).
PARTIAL = {"lines", "start-after", "end-before", "start-at", "end-at", "diff"}


def _source(docname: str) -> Path:
    return next(
        p for p in (ROOT / f"{docname}.md", ROOT / f"{docname}.ipynb") if p.is_file()
    )


def listings(docname: str) -> list[dict]:
    """Every ``literalinclude`` with ``:pyobject:`` of a chapter: file, object, options."""
    source = _source(docname)
    found = []
    for match in LITERALINCLUDE.finditer(source.read_text(encoding="utf-8")):
        options = dict(
            re.findall(r"^[ \t]*:([\w-]+):[ \t]*(.*?)[ \t]*$", match["options"], re.M)
        )
        if "pyobject" not in options:
            continue
        path = (source.parent / match["path"]).resolve()
        found.append(
            {"path": path, "pyobject": options["pyobject"], "options": options}
        )
    return found


def module_name(path: Path) -> str:
    relative = path.relative_to((ROOT / "src").resolve()).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(qualified: str):
    """The object named ``package.module.Class.attr`` (longest importable module prefix)."""
    parts = qualified.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ModuleNotFoundError(qualified)


def normalized(text: str) -> str:
    lines = [line.rstrip() for line in textwrap.dedent(text.expandtabs(8)).splitlines()]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def expected_source(listing: dict) -> str:
    obj = resolve(f"{module_name(listing['path'])}.{listing['pyobject']}")
    return normalized(inspect.getsource(obj))


def _all_listings() -> list[tuple[str, dict]]:
    return [(name, item) for name in CHAPTERS for item in listings(name)]


def _listing_id(param) -> str:
    return (
        f"{param[0]}:{param[1]['pyobject']}" if isinstance(param, tuple) else str(param)
    )


ALL = _all_listings()


def _page_blocks(built_site: Path, docname: str) -> list[str]:
    """Normalized text of every highlighted block of the page outside notebook cells."""
    page = (built_site / f"{docname}.html").read_text(encoding="utf-8")
    article = re.search(r'<article class="bd-article"[^>]*>(.*?)</article>', page, re.S)
    text = article.group(1) if article else page
    # Drop each code cell's input (its one <pre>); a cell with hidden input has none, so
    # the cut is anchored on cell_input itself, never on the cell's outer div.
    text = re.sub(r'<div class="cell_input[^"]*"[^>]*>.*?</pre>', "", text, flags=re.S)
    blocks = re.findall(r'<div class="highlight"><pre>(.*?)</pre>', text, re.S)
    return [
        normalized(html.unescape(re.sub(r"<[^>]+>", "", block))) for block in blocks
    ]


# ---------------------------------------------------------------------------- (a)


def test_chapters_show_helpers():
    assert ALL, "no chapter shows a helper's source (literalinclude with :pyobject:)"


@pytest.mark.parametrize("item", ALL, ids=_listing_id)
def test_sphinx_cuts_exactly_the_objects_source(item):
    """Sphinx's reader (``:pyobject:``) cuts the same lines as ``inspect.getsource``: no
    decorator or trailing line lost or added (checked without a build)."""
    docname, listing = item
    if PARTIAL & set(listing["options"]):
        pytest.skip(
            f"{docname}: {listing['pyobject']} is shown in part ({sorted(PARTIAL & set(listing['options']))})"
        )
    notebooks = load_extension("numscale_notebooks")
    options = {
        k: v
        for k, v in listing["options"].items()
        if k not in ("language", "caption", "name", "emphasize-lines")
    }
    _, text = notebooks.literalinclude_text(
        listing["path"].parent, listing["path"].name, options
    )
    assert normalized(text) == expected_source(listing), (
        f"{docname}: {listing['pyobject']}"
    )


@pytest.mark.build
@pytest.mark.parametrize("item", ALL, ids=_listing_id)
def test_page_shows_the_source_that_runs(built_site, item):
    docname, listing = item
    if built_without_data(built_site, docname):
        pytest.skip(f"{docname} was built without its data (tests/test_data_pages.py)")
    if PARTIAL & set(listing["options"]):
        pytest.skip(f"{docname}: {listing['pyobject']} is shown in part")
    expected = expected_source(listing)
    blocks = _page_blocks(built_site, docname)
    assert expected in blocks, (
        f"{docname}: the page does not show the source of {listing['pyobject']} as it runs.\n"
        f"expected:\n{expected}\n\nclosest listings on the page:\n"
        + "\n---\n".join(b for b in blocks if listing["pyobject"] in b)[:3000]
    )


# ---------------------------------------------------------------------------- (b)


@pytest.mark.parametrize("docname", sorted(TAUGHT))
def test_chapter_shows_the_algorithms_it_teaches(docname):
    assert docname in CHAPTERS, f"{docname} is not a chapter of _toc.yml"
    shown = {
        f"{module_name(item['path'])}.{item['pyobject']}" for item in listings(docname)
    }
    missing = [name for name in TAUGHT[docname] if name not in shown]
    assert not missing, (
        f"{docname} does not show the source of {missing} (it shows {sorted(shown)})"
    )
    for name in TAUGHT[docname]:
        assert callable(resolve(name)), name


def _reaches(start, target, depth: int = 5) -> bool:
    """Whether function ``start`` calls ``target``, directly or through functions of the
    ``numscale`` package that it calls (by name, resolved in each function's module)."""
    import ast

    seen, frontier = set(), [start]
    for _ in range(depth):
        following = []
        for function in frontier:
            if function is target:
                return True
            if id(function) in seen or not inspect.isfunction(function):
                continue
            seen.add(id(function))
            tree = ast.parse(normalized(inspect.getsource(function)))
            namespace = vars(inspect.getmodule(function))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(
                        node.func, "attr", None
                    )
                    candidate = namespace.get(name)
                    if candidate is target:
                        return True
                    if inspect.isfunction(
                        candidate
                    ) and candidate.__module__.startswith("numscale"):
                        following.append(candidate)
        frontier = following
    return False


@pytest.mark.parametrize("core", sorted(RUN_BY))
def test_shown_core_is_what_the_public_helper_runs(core):
    """The core function a chapter shows is run by the public helper it calls, so the
    listing is the algorithm that produced the page's numbers."""
    assert _reaches(resolve(RUN_BY[core]), resolve(core)), (
        f"{RUN_BY[core]} does not run {core}"
    )


# ---------------------------------------------------------------------------- (c)


@pytest.mark.build
@pytest.mark.parametrize("docname", CHAPTERS)
def test_notebook_shows_the_same_listings_as_its_page(built_site, docname):
    if built_without_data(built_site, docname):
        pytest.skip(f"{docname} was built without its data (tests/test_data_pages.py)")
    items = listings(docname)
    if not items:
        pytest.skip(f"{docname} shows no helper source")
    notebook = json.loads(
        (built_site / "_notebooks" / f"{docname}.ipynb").read_text(encoding="utf-8")
    )
    markdown = "\n".join(
        "".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown"
    )
    fenced = [
        normalized(body)
        for _, body in re.findall(
            r"^(`{3,})python\n(.*?)\n\1[ \t]*$", markdown, re.S | re.M
        )
    ]
    page_blocks = _page_blocks(built_site, docname)
    for listing in items:
        if PARTIAL & set(listing["options"]):
            continue
        expected = expected_source(listing)
        assert expected in fenced, (
            f"{docname}: the notebook lacks the listing of {listing['pyobject']}"
        )
        assert expected in page_blocks, (
            f"{docname}: the page lacks the listing of {listing['pyobject']}"
        )
