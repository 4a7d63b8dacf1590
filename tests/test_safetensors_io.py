"""The byte-range safetensors reader: values, selection, bytes read, corrupt files."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file

from numscale.models import safetensors_io


def _rchar() -> int:
    """Bytes this process has read through read()/pread() so far (Linux /proc)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


@pytest.fixture
def checkpoint(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    tensors = {
        "big.weight": rng.standard_normal((512, 512)).astype(
            np.float32
        ),  # 1 MiB we never want
        "ln.weight": rng.standard_normal(768).astype(np.float32),
        "ln.bias": rng.standard_normal(768).astype(np.float32),
        "double": rng.standard_normal((3, 4)),
        "ints": np.arange(10, dtype=np.int64),
    }
    path = tmp_path / "model.safetensors"
    save_file(tensors, path)
    return path, tensors


def test_values_round_trip_exactly(checkpoint) -> None:
    path, tensors = checkpoint
    loaded = safetensors_io.read_tensors(path, tensors)
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)  # raw bytes: exact


def test_half_precision_is_widened_exactly(tmp_path: Path) -> None:
    path = tmp_path / "half.safetensors"
    values = torch.tensor([1.5, -2.25, 3.0e38, 2.0**-100])
    save_torch_file(
        {"bf": values.to(torch.bfloat16), "f16": values[:2].to(torch.float16)}, path
    )
    loaded = safetensors_io.read_tensors(path, ["bf", "f16"])
    # bfloat16 -> float32 and float16 -> float32 are exact widenings.
    np.testing.assert_array_equal(
        loaded["bf"], values.to(torch.bfloat16).float().numpy()
    )
    np.testing.assert_array_equal(
        loaded["f16"], values[:2].to(torch.float16).float().numpy()
    )


def test_reads_only_the_requested_bytes(checkpoint) -> None:
    path, tensors = checkpoint
    _, data_start = safetensors_io.read_header(path)
    before = _rchar()
    safetensors_io.read_tensors(path, ["ln.weight", "ln.bias"])
    read = _rchar() - before
    wanted = 2 * 768 * 4
    # Two header reads (8 bytes + header) and exactly the two tensors; the 1 MiB matrix is
    # never read. Python's buffered open() may read up to one extra 8 KiB buffer.
    assert read <= data_start + wanted + 8192, read
    assert read < tensors["big.weight"].nbytes / 50


def test_unknown_name_lists_what_exists(checkpoint) -> None:
    path, _ = checkpoint
    with pytest.raises(KeyError, match="no tensor 'nope'.*ln.bias"):
        safetensors_io.read_tensors(path, ["nope"])


@pytest.mark.parametrize(
    "content, message",
    [
        (b"abc", "shorter than its 8-byte header length"),
        (struct.pack("<Q", 10**12) + b"{}", "header length"),
        (struct.pack("<Q", 5) + b"{nope", "unreadable header"),
        (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    ],
)
def test_corrupt_files_raise_value_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "broken.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        safetensors_io.read_header(path)
    assert "broken.safetensors" in str(info.value)


def test_truncated_data_is_detected(checkpoint, tmp_path: Path) -> None:
    path, _ = checkpoint
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="cut.safetensors.*corrupt"):
        safetensors_io.read_tensors(cut, ["ln.weight"])


def test_bad_entry_and_dtype(tmp_path: Path) -> None:
    for header, message in [
        ({"x": {"dtype": "F32"}}, "bad entry"),
        (
            {"x": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}},
            "unsupported dtype",
        ),
    ]:
        raw = json.dumps(header).encode()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * 4)
        with pytest.raises(ValueError, match=message):
            safetensors_io.read_header(path)
