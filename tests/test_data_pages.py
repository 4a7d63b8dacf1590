"""Pages without their data (_ext/numscale_data.py): what replaces them, when, and that every
page reading GPT-2's large tensors is covered. The embedded data is tested in
test_tinystories.py and test_gpt2_loader.py."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from conftest import REFERENCE, ROOT, page_data

sys.path.insert(0, str(ROOT / "_ext"))
import numscale_data  # noqa: E402

from numscale.models import gpt2, gpt2_model, registry, sources  # noqa: E402

CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(.*?)^```", re.S | re.M)


@pytest.fixture
def no_gpt2(monkeypatch, tmp_path):
    """No NUMSCALE_GPT2, an empty hub cache, no network: the state of a fresh clone."""
    monkeypatch.delenv("NUMSCALE_GPT2", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    gpt2.clear_cache()
    yield
    gpt2.clear_cache()


def test_every_page_reading_large_gpt2_tensors_is_listed():
    """A page whose code calls gpt2.load_tensors needs tensors beyond the embedded data:
    it must be in numscale_page_data, or it would fail (or worse) without them."""
    table = page_data()
    readers = set()
    for page in sorted((ROOT / "book").glob("*.md")):
        code = "\n".join(CODE_CELL.findall(page.read_text(encoding="utf-8")))
        if "gpt2.load_tensors(" in code or "gpt2.load_tensor(" in code:
            readers.add(f"book/{page.stem}")
    assert readers, "no page reads GPT-2's tensors: the scan is broken"
    assert readers <= set(table), f"not listed: {sorted(readers - set(table))}"
    assert set(table.values()) <= set(numscale_data.REQUIREMENTS)


@pytest.mark.parametrize("docname", sorted(page_data()))
def test_replacement_has_no_numbers_and_says_what_is_needed(docname):
    text = (ROOT / f"{docname}.md").read_text(encoding="utf-8")
    short = numscale_data.replacement(text, page_data()[docname], "no source was given")
    assert (
        "{code-cell}" not in short and "{glue" not in short
    )  # nothing computed, no number
    label = re.search(r"^\(([\w-]+)\)=$", text, re.M).group(1)
    title = re.search(r"^# .+$", text, re.M).group(0)
    assert f"({label})=\n{title}" in short  # references to the chapter still resolve
    assert short.startswith("---\njupytext:")  # still a notebook page for myst-nb
    assert "NUMSCALE_GPT2" in short and "no source was given" in short
    assert len(short) < len(text) / 5


def test_missing_without_any_source(no_gpt2):
    reason = numscale_data.missing("gpt2-tensors")
    assert reason is not None and "HF_HUB_OFFLINE" in reason and "'gpt2'" in reason


def test_missing_with_only_the_embedded_layernorms(no_gpt2, monkeypatch):
    monkeypatch.setenv("NUMSCALE_GPT2", str(registry.DATA_DIR / registry.GPT2_EMBEDDED))
    reason = gpt2_model.missing_tensors()
    assert reason is not None and f"{len(gpt2_model.LARGE_TENSORS)} needed" in reason
    assert "lacks 61 tensors" in reason  # 5 per block × 12 + wpe: none is a LayerNorm


def test_missing_with_a_path_that_does_not_exist_fails(no_gpt2, monkeypatch, tmp_path):
    monkeypatch.setenv("NUMSCALE_GPT2", str(tmp_path / "nothing"))
    with pytest.raises(sources.SourceError, match="does not exist"):
        numscale_data.missing("gpt2-tensors")


def test_a_named_source_that_cannot_be_used_is_reported_once(
    no_gpt2, monkeypatch, tmp_path
):
    """The page is not replaced (it runs, and fails at the cell that reads the source,
    with one line); deciding that logs nothing, so the log names the failure once."""
    monkeypatch.setenv("NUMSCALE_GPT2", str(tmp_path))  # exists, holds no tensors
    logged = []
    monkeypatch.setattr(
        numscale_data,
        "LOGGER",
        type("L", (), {"error": logged.append, "info": logged.append})(),
    )
    config = type("C", (), {"numscale_page_data": {"book/gpt2_qk": "gpt2-tensors"}})
    app = type("A", (), {"config": config})()
    assert numscale_data._decide(app, "book/gpt2_qk") is None
    assert logged == []
    with pytest.raises(sources.SourceError, match="cannot be used"):
        numscale_data.missing("gpt2-tensors")  # what the page's cell will raise


@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_attention.npz").is_file(),
    reason="no reference GPT-2 tensors",
)
def test_nothing_missing_with_the_reference_folder(no_gpt2, monkeypatch):
    monkeypatch.setenv("NUMSCALE_GPT2", str(REFERENCE))
    assert numscale_data.missing("gpt2-tensors") is None
    tensors = gpt2.load_tensors(list(gpt2_model.LARGE_TENSORS))
    assert gpt2_model.is_released_gpt2_small(tensors)
    assert all(np.isfinite(a).all() for a in tensors.values())


def test_unknown_requirement():
    with pytest.raises(KeyError, match="unknown data requirement"):
        numscale_data.missing("nothing")


def test_readme_sample_error_points_at_the_loading_cell():
    """The README's sample error names a page, a code cell and a line: they must be the
    cell that loads the data (its fence on that line), as the build would report it."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(
        r"ERROR: \[numscale\] (book/\w+\.md), code cell (\d+) \(line (\d+)\)", readme
    )
    assert match, "no sample error in the README"
    page, number, line = match.group(1), int(match.group(2)), int(match.group(3))
    lines = (ROOT / page).read_text(encoding="utf-8").splitlines()
    fences = [i for i, text in enumerate(lines, 1) if text.startswith("```{code-cell}")]
    assert fences[number - 1] == line
    cell = lines[line : fences[number] - 1 if number < len(fences) else None]
    assert any("gpt2.layernorm_parameters(" in text for text in cell)


def test_no_large_tensors_in_the_repository():
    """Only the embedded data is tracked: GPT-2's large npz files (117 MB) never are."""
    import subprocess

    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert [f for f in tracked if f.endswith(".npz")] == [
        "src/numscale/models/data/gpt2_small_layernorm.npz"
    ]
    data = [ROOT / f for f in tracked if f.startswith("src/numscale/models/data/")]
    assert sum(p.stat().st_size for p in data) < 2_000_000  # 1.66 MB today
    for name, (size, _) in registry.EMBEDDED.items():
        assert f"src/numscale/models/data/{name}" in tracked
        assert (registry.DATA_DIR / name).stat().st_size == size


@pytest.mark.build
@pytest.mark.no_glue_mutation  # compares two builds: guards no value
@pytest.mark.skipif(
    not (REFERENCE / "gpt2_small_attention.npz").is_file(),
    reason="without ../shared the session build is already the bare one",
)
def test_a_build_without_shared_data_has_the_same_numbers(built_site, tmp_path):
    """A build as a fresh clone makes it (no NUMSCALE_* variable, no hub) shows every page
    whose data is embedded with exactly the glued values of the session's build (which
    had ../shared), and the GPT-2 pages as the short note, with no glued number."""
    from conftest import build_book
    from test_build import glued_values

    # build_book adds these to the session's environment: an empty variable is unset
    # for the loaders (numscale.models.sources.choose)
    env = {
        "NUMSCALE_GPT2": "",
        "NUMSCALE_TINYSTORIES": "",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(tmp_path / "empty-cache"),
    }
    result = build_book(tmp_path, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    bare = tmp_path / "_build" / "html"
    table = page_data()
    for docname in table:
        log = result.stdout + result.stderr  # Sphinx's log lines may go to either
        assert f"[numscale] {docname}: built without its data" in log
        assert glued_values(bare, docname).plain() == {}
        html = (bare / f"{docname}.html").read_text(encoding="utf-8")
        assert "This page was built without its data" in html
    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    pages = [
        f"book/{p.stem}"
        for p in (ROOT / "book").glob("*.md")
        if f"file: book/{p.stem}" in toc and f"book/{p.stem}" not in table
    ]
    compared = 0
    for page in sorted(pages):
        path = built_site.parent / ".numscale_exec" / "executed" / f"{page}.ipynb"
        if not path.is_file():
            continue  # a page without code cells
        # plain dicts: the same value from two builds guards nothing against a wrong
        # value (the glue-mutation check must not rerun this comparison)
        same = (
            glued_values(bare, page).plain() == glued_values(built_site, page).plain()
        )
        assert same, page
        compared += 1
    assert compared >= 15


def test_pages_without_data_are_only_the_listed_ones(built_site):
    """Only pages of numscale_page_data may be built without their data, and none is when
    the session's build was given NUMSCALE_GPT2 (as make test does beside ../shared)."""
    import os

    from test_build import built_without_data

    toc = (ROOT / "_toc.yml").read_text(encoding="utf-8")
    pages = [
        f"book/{p.stem}"
        for p in (ROOT / "book").glob("*.md")
        if f"file: book/{p.stem}" in toc
    ]
    without = {page for page in pages if built_without_data(built_site, page)}
    assert without <= set(page_data())
    if os.environ.get("NUMSCALE_GPT2") and not os.environ.get("NUMSCALE_TEST_SITE"):
        assert not without, (
            f"built without data although NUMSCALE_GPT2 is set: {without}"
        )


def test_the_note_carries_the_marker_the_notebook_converter_looks_for():
    """numscale_notebooks recognizes a replaced page in a build by this text."""
    from conftest import load_extension

    book_index = load_extension("numscale_book_index")
    note = numscale_data.replacement("# Title\n\nProse 1.5.\n", "gpt2-tensors", "why")
    assert book_index.WITHOUT_DATA_MARKER in note.replace("**", "")
