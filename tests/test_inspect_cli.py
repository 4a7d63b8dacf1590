"""``python -m numscale.inspect``: reports from a tiny local model; bad input refused
with one line and a non-zero exit status, before any weight is loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from test_inspect import bert_config, tiny_model  # noqa: E402

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0"}
#: "within seconds": importing torch and transformers dominates (a few seconds on an
#: idle machine); the bound leaves room for a loaded one.
SECONDS = 60


def run(*args: str | Path, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "numscale.inspect", *map(str, args)],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=600,
    )
    return result, time.perf_counter() - start


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    """A save_pretrained folder of test_inspect's tiny random Llama (seeded)."""
    folder = tmp_path_factory.mktemp("tiny") / "llama"
    tiny_model("llama").save_pretrained(folder)
    return folder


def test_writes_both_reports(tiny_folder, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("1 5 9 13 17 21 25 29 33 37\n2 4 6 8 10 12\n", encoding="utf-8")
    result, _ = run(
        tiny_folder, "--token-ids", ids, "--out", tmp_path / "out", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    std = report["attention"]["logit_std"]
    assert len(std) == 2 and all(len(row) == 4 for row in std)  # layers × heads
    assert report["input"]["lengths"] == [10, 6]
    assert len(report["residual"]["rms"]) == 3
    assert set(report["loss"]) >= {"float32", "bfloat16", "float16"}
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.count("<svg") >= 3 and "trained_attention" in page
    assert "<script" not in page and 'src="http' not in page  # self-contained
    assert "sequence 2/2" in result.stderr  # progress shown


def test_random_tokens_are_seeded(tiny_folder, tmp_path):
    reports = []
    for out in ("a", "b"):
        result, _ = run(
            tiny_folder,
            "--random-tokens",
            "12",
            "--seed",
            "3",
            "--no-quantization",
            "--out",
            tmp_path / out,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stderr
        reports.append(json.loads((tmp_path / out / "report.json").read_text()))
    assert reports[0]["attention"] == reports[1]["attention"]
    assert reports[0]["quantization"] is None


def _refused(result: subprocess.CompletedProcess, seconds: float, *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("numscale.inspect: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0]
    assert seconds < SECONDS


def test_missing_folder(tmp_path):
    _refused(*run("./no-such-model", cwd=tmp_path), "does not exist")


def test_folder_without_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    _refused(*run("empty", cwd=tmp_path), "no config.json")


def test_non_causal_model(tmp_path):
    bert_config().save_pretrained(tmp_path / "bert")  # no weights: refused before
    _refused(*run(tmp_path / "bert", cwd=tmp_path), "'bert' is not supported")


def test_pickle_only_folder_is_not_loaded(tiny_folder, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_folder / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    _refused(*run(folder, "--random-tokens", "8", cwd=tmp_path), "safetensors")


def test_text_without_tokenizer(tiny_folder, tmp_path):
    text = tmp_path / "story.txt"
    text.write_text("Once upon a time.", encoding="utf-8")
    _refused(*run(tiny_folder, "--text", text, cwd=tmp_path), "no tokenizer")


def test_empty_text(tiny_folder, tmp_path):
    text = tmp_path / "empty.txt"
    text.write_text("  \n", encoding="utf-8")
    _refused(*run(tiny_folder, "--text", text, cwd=tmp_path), "is empty")


def test_bad_numbers(tiny_folder, tmp_path):
    _refused(
        *run(tiny_folder, "--random-tokens", "1", cwd=tmp_path),
        "--random-tokens must be at least 2",
    )
