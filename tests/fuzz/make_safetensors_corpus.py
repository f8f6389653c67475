#!/usr/bin/env python3
"""Write the seed corpus of the safetensors fuzz target (tests/fuzz/corpus/safetensors/):
valid files, with and without the liblflex checksum, and one file for each kind of
damage that the reader must reject ("valid_*" / "bad_*"). Built with the standard library
only, independently of liblflex (the checksum uses zlib.crc32). The one file not made here,
valid_from_writer, was written by lf_st_write."""
import json
import os
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "safetensors")


def raw(header, data=b""):
    """Length prefix, header text as given, data."""
    h = header.encode("utf-8", "surrogateescape") if isinstance(header, str) else header
    return struct.pack("<Q", len(h)) + h + data


def tensors(items, metadata=None, pad=True):
    """items: (name, dtype, shape, bytes) in data order; returns header text and data."""
    head, data = {}, b""
    if metadata is not None:
        head["__metadata__"] = metadata
    for name, dtype, shape, payload in items:
        head[name] = {"dtype": dtype, "shape": shape,
                      "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    text = json.dumps(head, separators=(",", ":"))
    if pad:
        text += " " * ((8 - len(text) % 8) % 8)
    return text, data


def with_checksum(items, metadata):
    """A file as liblflex writes it: checksum over the file with its digits as '0'."""
    md = dict(metadata, **{"lflex.writer": "python", "lflex.crc32": "00000000"})
    text, data = tensors(items, md)
    blob = bytearray(raw(text, data))
    at = blob.index(b'"lflex.crc32":"00000000"') + len('"lflex.crc32":"')
    blob[at:at + 8] = b"%08x" % zlib.crc32(bytes(blob))
    return bytes(blob)


F32 = struct.pack("<4f", 1.0, -2.5, 0.125, 3e38)
I64 = struct.pack("<q", 123456789012)
BASIC = [("w", "F32", [2, 2], F32), ("step", "I64", [], I64), ("b", "U8", [3], b"\x01\x02\x03")]


def t(dtype, shape, offs, extra=""):
    return ('{"dtype":"%s","shape":%s,"data_offsets":%s%s}' % (dtype, shape, offs, extra))


FILES = {
    # accepted
    "valid_plain": raw(*tensors(BASIC, {"format": "pt"})),
    "valid_checksummed": with_checksum(BASIC, {"config": "d_model: 8\n"}),
    "valid_empty": raw("{}"),
    "valid_shapes": raw(*tensors([("e", "F32", [0, 3], b""), ("i", "I32", [2, 1, 1, 2], bytes(16)),
                                  ("d", "F64", [1], struct.pack("<d", -0.5))])),
    "valid_header_order": raw('{"b":' + t("U8", "[2]", "[4,6]") + ',"a":' + t("F32", "[1]", "[0,4]")
                              + "}", bytes(6)),
    # rejected
    "bad_short": b"\x05\x00\x00\x00\x00",
    "bad_header_len_huge": struct.pack("<Q", 1 << 40) + b"{}",
    "bad_header_len_past_end": struct.pack("<Q", 100) + b"{}",
    "bad_not_json": raw('{"a":}'),
    "bad_array": raw("[1,2]"),
    "bad_trailing_garbage": raw("{} x"),
    "bad_nul": raw(b'{"a":1}\x00'),
    "bad_utf8": raw(b'{"\xff":' + t("U8", "[1]", "[0,1]").encode() + b"}", b"\x00"),
    "bad_deep": raw("[" * 5000 + "]" * 5000),
    "bad_duplicate": raw('{"a":' + t("U8", "[1]", "[0,1]") + ',"a":' + t("U8", "[1]", "[1,2]") + "}",
                         b"\x00\x00"),
    "bad_entry_type": raw('{"a":[1]}'),
    "bad_dtype": raw('{"a":' + t("BF16", "[1]", "[0,2]") + "}", b"\x00\x00"),
    "bad_dtype_type": raw('{"a":{"dtype":1,"shape":[1],"data_offsets":[0,1]}}', b"\x00"),
    "bad_unknown_field": raw('{"a":' + t("U8", "[1]", "[0,1]", ',"x":0') + "}", b"\x00"),
    "bad_shape_negative": raw('{"a":' + t("U8", "[-1]", "[0,0]") + "}"),
    "bad_shape_float": raw('{"a":' + t("U8", "[1.0]", "[0,1]") + "}", b"\x00"),
    "bad_shape_rank": raw('{"a":' + t("U8", "[1,1,1,1,1]", "[0,1]") + "}", b"\x00"),
    "bad_shape_overflow": raw('{"a":' + t("F64", "[4294967296,4294967296]", "[0,0]") + "}"),
    "bad_offsets_size": raw('{"a":' + t("F32", "[2]", "[0,4]") + "}", bytes(4)),
    "bad_offsets_outside": raw('{"a":' + t("F32", "[2]", "[0,8]") + "}", bytes(4)),
    "bad_offsets_reversed": raw('{"a":' + t("U8", "[0]", "[4,0]") + "}", bytes(4)),
    "bad_offsets_type": raw('{"a":' + t("U8", "[1]", '[0,"1"]') + "}", b"\x00"),
    "bad_overlap": raw('{"a":' + t("F32", "[2]", "[0,8]") + ',"b":' + t("F32", "[1]", "[4,8]") + "}",
                       bytes(8)),
    "bad_hole": raw('{"a":' + t("F32", "[1]", "[0,4]") + ',"b":' + t("F32", "[1]", "[8,12]") + "}",
                    bytes(12)),
    "bad_trailing_bytes": raw('{"a":' + t("F32", "[1]", "[0,4]") + "}", bytes(9)),
    "bad_metadata_type": raw('{"__metadata__":[]}'),
    "bad_metadata_value": raw('{"__metadata__":{"k":1}}'),
    "bad_writer_without_crc": raw('{"__metadata__":{"lflex.writer":"x"}}'),
    "bad_crc_uppercase": raw('{"__metadata__":{"lflex.crc32":"ABCDEF01"}}'),
}

good = FILES["valid_checksummed"]
flipped = bytearray(good)
flipped[-1] ^= 0x01  # a damaged data byte
FILES["bad_crc_mismatch"] = bytes(flipped)
FILES["bad_crc_key_damaged"] = good.replace(b'"lflex.crc32"', b'"lflex.crc33"')

os.makedirs(OUT, exist_ok=True)
for name, blob in sorted(FILES.items()):
    with open(os.path.join(OUT, name), "wb") as fp:
        fp.write(blob)
print("%d files in %s" % (len(FILES), OUT))
