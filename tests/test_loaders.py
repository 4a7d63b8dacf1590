"""The source rules both model loaders share, each tested once on both: GPT-2
(``numscale.models.gpt2``, read as a chapter reads it: ``layernorm_parameters``) and
llama2.c's stories260K (``numscale.models.llama2c.load``).

What only one loader does is tested beside it: GPT-2's default hub source, tensor
files and names in test_gpt2_loader.py; llama2.c's file formats, tokenizer and folder
problems in test_tinystories.py; the rule's parts in test_sources.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from numscale.models import gpt2, llama2c, registry, sources


@dataclass(frozen=True)
class Loader:
    """One model's loader: how a chapter reads it, the variable that names its source,
    a hub id a reader may name, and the embedded files its default source reads."""

    read: Callable[..., object]
    source_available: Callable[..., bool]
    env_var: str
    hub_id: str
    embedded: tuple[str, ...]


LOADERS = {
    "gpt2": Loader(
        gpt2.layernorm_parameters,
        gpt2.source_available,
        gpt2.ENV_VAR,
        registry.GPT2_HUB_ID,
        (registry.GPT2_EMBEDDED,),
    ),
    "llama2c": Loader(
        llama2c.load,
        llama2c.source_available,
        llama2c.ENV_VAR,
        registry.STORIES260K_HUB_ID,
        tuple(registry.STORIES260K_FILES.values()),
    ),
}


def refusal(how: str, var: str, reason: str, value: str = ".*") -> str:
    """The pattern of the one-line error a named source that cannot be used raises:
    named by the variable ``var`` (``how="env"``) or by the source argument, with the
    source's text (a regex, ``value``) and the ``reason`` (a regex)."""
    if how == "env":
        return rf"^{var}='{value}' cannot be used: .*{reason}"
    return rf"^source '{value}' \(the source argument\) cannot be used: .*{reason}"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    """No test sees the caller's source variables or a cached load or hub look-up."""
    for loader in LOADERS.values():
        monkeypatch.delenv(loader.env_var, raising=False)

    def clear() -> None:
        gpt2.clear_cache()
        llama2c.clear_cache()
        sources.clear_cache()

    clear()
    yield
    clear()


@pytest.mark.parametrize("how", ["env", "argument"])
@pytest.mark.parametrize("model", sorted(LOADERS))
def test_a_named_path_that_does_not_exist_fails_naming_it(
    tmp_path, monkeypatch, model, how
):
    loader = LOADERS[model]
    target = tmp_path / "nothing-here"
    if how == "env":
        monkeypatch.setenv(loader.env_var, str(target))
    start = time.perf_counter()
    with pytest.raises(
        sources.SourceError, match=refusal(how, loader.env_var, "does not exist")
    ) as info:
        loader.read() if how == "env" else loader.read(target)
    assert time.perf_counter() - start < 2.0
    assert "\n" not in str(info.value)  # one line
    # a mistake of the reader's (ValueError), not a source the book may do without
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, sources.SourceUnavailable)
    # source_available does not hide a named source's problem
    with pytest.raises(sources.SourceError):
        loader.source_available(target)


@pytest.mark.parametrize("network", ["offline", "silent", "closed-port"])
@pytest.mark.parametrize("model", sorted(LOADERS))
def test_a_named_hub_id_without_network_fails_fast_naming_it(
    tmp_path, monkeypatch, silent_server, model, network
):
    """A hub id is an explicit choice: unreachable, it fails fast with one clear line,
    and the failed probe is remembered."""
    loader = LOADERS[model]
    monkeypatch.setenv(loader.env_var, loader.hub_id)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    if network == "offline":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        url = silent_server if network == "silent" else "http://127.0.0.1:9"
        monkeypatch.setenv("HF_ENDPOINT", url)
    hub = re.escape(loader.hub_id)
    reason = "not in the local Hugging Face cache"
    start = time.perf_counter()
    with pytest.raises(
        sources.SourceError, match=refusal("env", loader.env_var, reason, hub)
    ) as info:
        loader.read()
    elapsed = time.perf_counter() - start
    # the probe is bounded by PROBE_TIMEOUT = 1.5 s (the silent server uses all of it)
    assert elapsed < 2.0, f"took {elapsed:.2f} s"
    message = str(info.value)
    assert "\n" not in message and str(tmp_path) not in message
    assert isinstance(info.value, ValueError)
    start = time.perf_counter()
    with pytest.raises(sources.SourceError):
        loader.source_available()  # the failed probe is remembered
    with pytest.raises(
        sources.SourceError, match=refusal("argument", loader.env_var, reason, hub)
    ):
        loader.read(loader.hub_id)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(
    "model, name",
    [(model, name) for model in sorted(LOADERS) for name in LOADERS[model].embedded],
)
def test_an_altered_embedded_file_is_refused_naming_it(
    tmp_path, monkeypatch, model, name
):
    """The default source is the data built into the package, sha256 checked at every
    load: one flipped bit of any of its files fails naming the file, never a silent
    stand-in."""
    altered = tmp_path / "data"
    altered.mkdir()
    for embedded in registry.EMBEDDED:
        (altered / embedded).write_bytes((registry.DATA_DIR / embedded).read_bytes())
    data = bytearray((altered / name).read_bytes())
    data[len(data) // 2] ^= 1
    (altered / name).write_bytes(bytes(data))
    monkeypatch.setattr(registry, "DATA_DIR", altered)
    pattern = rf"{re.escape(name)} does not match its recorded sha256"
    with pytest.raises(sources.SourceError, match=pattern):
        LOADERS[model].read()
