"""Read selected tensors from a ``.safetensors`` file, touching only their bytes.

The format is an 8-byte little-endian header length N, N bytes of JSON describing each
tensor (dtype, shape, byte offsets), then the raw data. :func:`read_tensors` parses the
header and reads (``pread``) exactly the byte range of each requested tensor, with the
kernel's read-ahead switched off for the file, so loading GPT-2's 150 KB of LayerNorm
parameters from a 500 MB checkpoint reads about 150 KB (plus the header), not the model.
Nothing is unpickled.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: safetensors dtype codes -> NumPy dtypes (little-endian). BF16 is widened to float32.
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
MAX_HEADER_BYTES = 100_000_000  # the format's own limit


def read_header(path: str | os.PathLike) -> tuple[dict[str, dict], int]:
    """Parse the header of a safetensors file.

    Returns ``(entries, data_start)``: ``entries`` maps each tensor name to
    ``{"dtype", "shape", "data_offsets"}`` (metadata removed) and ``data_start`` is the
    byte offset of the data block. Raises ``ValueError`` naming the file if it is not a
    valid safetensors file (truncated, bad JSON, offsets outside the file).
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        raw_length = handle.read(8)
        if len(raw_length) != 8:
            raise ValueError(
                f"{path.name} is not a safetensors file: shorter than its 8-byte header length"
            )
        (length,) = struct.unpack("<Q", raw_length)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise ValueError(
                f"{path.name} is not a valid safetensors file: header length {length} exceeds the file"
            )
        try:
            header = json.loads(handle.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{path.name} is not a valid safetensors file: unreadable header ({exc})"
            ) from exc
    if not isinstance(header, dict):
        raise ValueError(
            f"{path.name} is not a valid safetensors file: header is not a JSON object"
        )
    header.pop("__metadata__", None)
    data_start = 8 + length
    for name, entry in header.items():
        try:
            begin, end = entry["data_offsets"]
            dtype = entry["dtype"]
            shape = entry["shape"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(
                f"{path.name} is not a valid safetensors file: bad entry for {name!r}"
            ) from exc
        if dtype not in DTYPES:
            raise ValueError(
                f"{path.name}: tensor {name!r} has unsupported dtype {dtype}"
            )
        expected = int(np.prod(shape, dtype=np.int64)) * DTYPES[dtype].itemsize
        if not 0 <= begin <= end or end - begin != expected or data_start + end > size:
            raise ValueError(
                f"{path.name} is corrupt: tensor {name!r} has offsets {begin}..{end} "
                f"for {expected} bytes in a file of {size} bytes"
            )
    return header, data_start


def read_tensors(
    path: str | os.PathLike,
    names: Iterable[str],
    parsed: tuple[dict[str, dict], int] | None = None,
) -> dict[str, np.ndarray]:
    """Read the named tensors (and only them) from a safetensors file.

    Returns ``{name: array}`` with the stored shape; floating-point tensors come back as
    float32 or float64 (F16 and BF16 are widened to float32). Unknown names raise
    ``KeyError`` listing a few available ones. ``parsed`` is the result of
    :func:`read_header` for this file, to avoid reading the header again.
    """
    path = Path(path)
    header, data_start = parsed if parsed is not None else read_header(path)
    wanted = list(dict.fromkeys(names))
    missing = [n for n in wanted if n not in header]
    if missing:
        sample = ", ".join(sorted(header)[:5])
        raise KeyError(
            f"{path.name} has no tensor {missing[0]!r} (it has {len(header)} tensors, e.g. {sample})"
        )
    result: dict[str, np.ndarray] = {}
    descriptor = os.open(path, os.O_RDONLY)
    try:
        if hasattr(os, "posix_fadvise"):  # read exactly what is asked: no read-ahead
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_RANDOM)
        for name in sorted(wanted, key=lambda n: header[n]["data_offsets"][0]):
            entry = header[name]
            begin, end = entry["data_offsets"]
            buffer = os.pread(descriptor, end - begin, data_start + begin)
            if len(buffer) != end - begin:
                raise ValueError(
                    f"{path.name} is truncated: tensor {name!r} is cut short"
                )
            array = np.frombuffer(buffer, dtype=DTYPES[entry["dtype"]]).reshape(
                entry["shape"]
            )
            if entry["dtype"] == "BF16":
                array = (array.astype(np.uint32) << 16).view(np.float32)
            elif entry["dtype"] == "F16":
                array = array.astype(np.float32)
            result[name] = array.copy() if not array.flags.writeable else array
    finally:
        os.close(descriptor)
    return result
