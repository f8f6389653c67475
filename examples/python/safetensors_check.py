#!/usr/bin/python3
"""Read a liblflex checkpoint with plain Python (struct, json, zlib).

A safetensors file is an 8-byte little-endian header length N, N bytes of
JSON mapping tensor names to {"dtype", "shape", "data_offsets"} (plus a
"__metadata__" object of strings), then the raw little-endian tensor data.
liblflex adds "lflex.crc32" to the metadata: the CRC-32 (zlib.crc32) of the
whole file computed with those 8 hex digits replaced by '0'
(lib/io/safetensors.h). This reader checks all of it independently of the
library.

    safetensors_check.py FILE [NAME ...]

prints the metadata and the tensors' shapes, and the values of each NAME.
"""
from __future__ import annotations

import json
import re
import struct
import sys
import zlib
from dataclasses import dataclass
from typing import Iterable

# dtype -> (struct code, bytes per element)
DTYPES = {"F32": ("f", 4), "F64": ("d", 8), "I32": ("i", 4), "I64": ("q", 8), "U8": ("B", 1)}
CRC_KEY = "lflex.crc32"
WRITER_KEY = "lflex.writer"
_CRC_FIELD = re.compile(rb'"lflex\.crc32"\s*:\s*"([0-9a-f]{8})"')


class SafetensorsError(ValueError):
    """The file is not a valid (checksummed) safetensors file."""


@dataclass(frozen=True)
class Tensor:
    name: str
    dtype: str
    shape: tuple[int, ...]
    data: bytes  #: raw little-endian bytes

    def values(self) -> list:
        """The elements in row-major order (floats for F32/F64)."""
        code, size = DTYPES[self.dtype]
        return list(struct.unpack(f"<{len(self.data) // size}{code}", self.data))


@dataclass(frozen=True)
class Checkpoint:
    metadata: dict[str, str]
    tensors: dict[str, Tensor]  #: in header order
    crc_checked: bool           #: whether the file carried a checksum (and it matched)

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]


def _crc_span(raw: bytes, header_end: int) -> tuple[int, int]:
    """Byte range of the 8 checksum digits in the header."""
    found = list(_CRC_FIELD.finditer(raw, 8, header_end))
    if len(found) != 1:
        raise SafetensorsError(f"{len(found)} '{CRC_KEY}' fields found in the header, expected 1")
    return found[0].span(1)


def file_crc(raw: bytes, header_end: int) -> tuple[str, str]:
    """(stored, computed) checksum of a file's bytes."""
    b, e = _crc_span(raw, header_end)
    stored = raw[b:e].decode()
    computed = zlib.crc32(raw[:b] + b"0" * 8 + raw[e:]) & 0xFFFFFFFF
    return stored, f"{computed:08x}"


def parse(raw: bytes, name: str = "<buffer>") -> Checkpoint:
    """Validate and parse a whole file's bytes."""
    if len(raw) < 8:
        raise SafetensorsError(f"{name}: {len(raw)} bytes, too short for the header length")
    (n,) = struct.unpack_from("<Q", raw, 0)
    if n > len(raw) - 8:
        raise SafetensorsError(f"{name}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    try:
        header = json.loads(raw[8:8 + n].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SafetensorsError(f"{name}: the header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{name}: the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise SafetensorsError(f"{name}: __metadata__ must map strings to strings")
    crc_checked = CRC_KEY in metadata or WRITER_KEY in metadata
    if crc_checked:
        stored, computed = file_crc(raw, 8 + n)
        if stored != computed or metadata.get(CRC_KEY) != stored:
            raise SafetensorsError(f"{name}: checksum mismatch: stored {stored}, computed {computed}")
    data = raw[8 + n:]
    tensors: dict[str, Tensor] = {}
    spans = []
    for key, info in header.items():
        try:
            dtype, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise SafetensorsError(f"{name}: tensor {key!r}: malformed entry {info!r}") from None
        if dtype not in DTYPES:
            raise SafetensorsError(f"{name}: tensor {key!r}: unsupported dtype {dtype!r}")
        count = 1
        for d in shape:
            if not isinstance(d, int) or d < 0:
                raise SafetensorsError(f"{name}: tensor {key!r}: bad shape {list(shape)}")
            count *= d
        if not (isinstance(begin, int) and isinstance(end, int) and 0 <= begin <= end <= len(data)):
            raise SafetensorsError(f"{name}: tensor {key!r}: data_offsets {[begin, end]} outside the data section")
        if end - begin != count * DTYPES[dtype][1]:
            raise SafetensorsError(f"{name}: tensor {key!r}: {end - begin} bytes for shape {list(shape)} {dtype}")
        tensors[key] = Tensor(key, dtype, shape, data[begin:end])
        spans.append((begin, end, key))
    pos = 0
    for begin, end, key in sorted(spans):
        if begin != pos:
            raise SafetensorsError(f"{name}: tensor {key!r} starts at {begin}, expected {pos} (overlap or hole)")
        pos = end
    if pos != len(data):
        raise SafetensorsError(f"{name}: {len(data) - pos} bytes after the last tensor")
    return Checkpoint(metadata, tensors, crc_checked)


def read(path: str) -> Checkpoint:
    """Validate and parse a file."""
    with open(path, "rb") as f:
        return parse(f.read(), path)


def weight(path: str, name: str) -> tuple[tuple[int, ...], list[float]]:
    """The shape and values of one tensor of a checkpoint."""
    t = read(path)[name]
    return t.shape, t.values()


def write(path: str, tensors: Iterable[Tensor], metadata: dict[str, str]) -> None:
    """Write a checksummed file the way liblflex does (used to make test
    files, e.g. one with another format version): "lflex.crc32" written as
    zeros, the header padded with spaces to an 8-byte boundary, then the
    CRC of the whole file put in place of the zeros."""
    tensors = list(tensors)
    header: dict[str, object] = {"__metadata__": {**metadata, CRC_KEY: "0" * 8}}
    offset = 0
    for t in tensors:
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(t.data)]}
        offset += len(t.data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    raw = bytearray(struct.pack("<Q", len(text)) + text + b"".join(t.data for t in tensors))
    b, e = _crc_span(bytes(raw), 8 + len(text))
    raw[b:e] = f"{zlib.crc32(bytes(raw)) & 0xFFFFFFFF:08x}".encode()
    with open(path, "wb") as f:
        f.write(raw)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print(f"usage: {argv[0]} FILE [NAME ...]", file=sys.stderr)
        return 2
    try:
        ck = read(argv[1])
    except (OSError, SafetensorsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{argv[1]}: {len(ck.tensors)} tensors, checksum {'ok' if ck.crc_checked else 'absent'}")
    for key, value in ck.metadata.items():
        if "\n" in value:
            value = value.splitlines()[0] + " ..."
        print(f"  {key}: {value}")
    names = argv[2:]
    for t in ck.tensors.values():
        if not names:
            print(f"  {t.name} {t.dtype} {list(t.shape)}")
    for name in names:
        if name not in ck.tensors:
            print(f"error: no tensor {name!r}", file=sys.stderr)
            return 1
        t = ck[name]
        print(f"{name} {t.dtype} {list(t.shape)}:")
        print(" ".join(f"{v:.9g}" for v in t.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
