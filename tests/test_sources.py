"""Tests of numscale.models.sources: which source applies, what a failure raises, how a source
is described, and the hub look-up's fast failure."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from numscale.models import sources

VAR = "NUMSCALE_TEST_SOURCE"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    sources.clear_cache()
    yield
    sources.clear_cache()


def test_choose_argument_then_variable_then_default(monkeypatch, tmp_path):
    default = sources.choose(None, VAR, "owner/model")
    assert (default.text, default.explicit, default.origin) == (
        "owner/model",
        False,
        "the default",
    )
    monkeypatch.setenv(VAR, "some/where")
    named = sources.choose(None, VAR, "owner/model")
    assert (named.text, named.explicit, named.origin) == ("some/where", True, VAR)
    given = sources.choose(tmp_path, VAR, "owner/model")
    assert (given.text, given.explicit, given.origin) == (
        str(tmp_path),
        True,
        "the source argument",
    )
    monkeypatch.setenv(VAR, "   ")  # blank counts as unset
    assert not sources.choose(None, VAR, "d").explicit
    with pytest.raises(TypeError, match="source"):
        sources.choose(3, VAR, "d")
    with pytest.raises(ValueError, match="source"):
        sources.choose(" ", VAR, "d")


def test_errors_follow_the_explicit_default_rule(monkeypatch):
    monkeypatch.setenv(VAR, "/data/x")
    named = sources.choose(None, VAR, "d")
    exc = named.error("the path\n does not exist.", "Advice here.")
    assert isinstance(exc, sources.SourceError) and isinstance(exc, ValueError)
    assert str(exc) == f"{VAR}='/data/x' cannot be used: the path does not exist."
    argument = sources.choose("/data/x", VAR, "d").error("bad")
    assert (
        str(argument) == "source '/data/x' (the source argument) cannot be used: bad."
    )
    default = sources.choose(None, "UNSET_VARIABLE_FOR_TEST", "owner/model")
    notice = default.error(
        "not cached " + "and unreachable " * 10, "Set the variable. " * 5
    )
    assert isinstance(notice, sources.SourceUnavailable) and isinstance(
        notice, RuntimeError
    )
    # one paragraph: a page wraps it once (wrapped twice, lines come out ragged)
    assert "\n" not in str(notice)
    assert "'owner/model'" in str(notice) and "Set the variable." in str(notice)


def test_looks_like_path():
    for path in ("/abs", "./rel", "~/x", "a/b/c", "weights.npz", "x y"):
        assert sources.looks_like_path(path, (".npz",)), path
    for hub in ("gpt2", "owner/name", "karpathy/tinyllamas"):
        assert not sources.looks_like_path(hub, (".npz",)), hub


def test_local_path_tries_the_launching_directory(monkeypatch, tmp_path):
    (tmp_path / "data").mkdir()
    inner = tmp_path / "book"
    inner.mkdir()
    monkeypatch.chdir(inner)
    monkeypatch.setenv("PWD", str(tmp_path))
    assert sources.local_path("data") == tmp_path / "data"
    assert sources.local_path("missing") == Path("missing")


def test_describe_local_has_no_machine_path(monkeypatch, tmp_path):
    folder = tmp_path / "reference"
    folder.mkdir()
    (folder / "a.npz").write_bytes(b"")
    monkeypatch.setenv(VAR, str(folder))
    named = sources.choose(None, VAR, "d")
    assert (
        sources.describe_local(named, folder, ["a.npz"])
        == f"the folder named by {VAR} (a.npz)"
    )
    argument = sources.choose(folder, VAR, "d")
    text = sources.describe_local(argument, folder, ["a.npz", "b.npz"])
    assert text == "the folder 'reference' (a.npz, b.npz)" and str(tmp_path) not in text
    many = [f"a_rather_long_file_name_{i}.npz" for i in range(4)]
    short = sources.describe_local(named, folder, many)
    assert short == f"the folder named by {VAR} (4 files: {many[0]}, …)"
    assert sources.describe_local(argument, folder / "a.npz") == "the file 'a.npz'"


def test_plural_and_wrap():
    assert sources.plural(1, "tensor") == "1 tensor"
    assert sources.plural(0, "tensor") == "0 tensors"
    assert sources.plural(19200, "gain") == "19,200 gains"
    assert sources.plural(2, "story", "stories") == "2 stories"
    text = "word " * 60 + "\n\nsecond paragraph"
    wrapped = sources.wrap(text, width=40)
    assert max(map(len, wrapped.splitlines())) <= 40
    assert wrapped.split() == text.split()


def test_fetch_hub_files_fails_fast_and_remembers(monkeypatch, tmp_path, silent_server):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", silent_server)
    default = sources.choose(None, VAR, "owner/model")
    start = time.perf_counter()
    with pytest.raises(sources.SourceUnavailable, match="did not answer within 1.5 s"):
        sources.fetch_hub_files(default, "owner/model", ["f.bin"])
    # bounded by PROBE_TIMEOUT = 1.5 s, plus thread start-up
    assert time.perf_counter() - start < 2.0
    start = time.perf_counter()
    with pytest.raises(sources.SourceUnavailable):
        sources.fetch_hub_files(default, "owner/model", ["f.bin"])
    assert time.perf_counter() - start < 0.5  # the probe's answer is remembered
    named = sources.choose("owner/model", VAR, "owner/model")
    with pytest.raises(sources.SourceError, match="source 'owner/model'"):
        sources.fetch_hub_files(named, "owner/model", ["f.bin"])


def test_fetch_hub_files_from_the_cache(monkeypatch, tmp_path):
    cache = tmp_path / "hub"
    snapshot = cache / "datasets--owner--text" / "snapshots" / ("0" * 40)
    (snapshot / "sub").mkdir(parents=True)
    (snapshot / "sub" / "f.txt").write_text("hello")
    (cache / "datasets--owner--text" / "refs").mkdir()
    (cache / "datasets--owner--text" / "refs" / "main").write_text("0" * 40)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    default = sources.choose(None, VAR, "owner/text")
    got = sources.fetch_hub_files(
        default, "owner/text", ["sub/f.txt"], repo_type="dataset"
    )
    assert got.how == "local Hugging Face cache"
    assert got.paths["sub/f.txt"].read_text() == "hello"
    with pytest.raises(sources.SourceUnavailable, match="HF_HUB_OFFLINE"):
        sources.fetch_hub_files(
            default, "owner/text", ["other.txt"], repo_type="dataset"
        )


def test_notice_keeps_reason_and_advice_apart():
    default = sources.choose(None, "UNSET_VARIABLE_FOR_TEST", "owner/model")
    notice = default.error("not cached", "Set UNSET_VARIABLE_FOR_TEST.")
    assert (
        notice.reason == "The default source 'owner/model' is unavailable: not cached."
    )
    assert notice.advice == "Set UNSET_VARIABLE_FOR_TEST."
