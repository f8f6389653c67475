#!/usr/bin/env python3
"""Write the seed corpus of the safetensors fuzz target (tests/fuzz/corpus/safetensors/):
valid files, with and without the liblflex checksum, and one file for each kind of
damage that the reader must reject ("valid_*" / "bad_*"). Built with the standard library
only, independently of liblflex (the checksum uses zlib.crc32). The one file not made here,
valid_from_writer, was written by lf_st_write.

The target also loads every file that reads as a checkpoint. With the library given,

    LFLEX_LIBRARY=build/lib/liblflex.so python3 tests/fuzz/make_safetensors_corpus.py

this also writes checkpoints of small models ("ckpt_valid_*", saved by lflex_model_save
through the Python binding in examples/python, most with the checksum keys taken out so
that mutations are not all stopped by the checksum) and one damaged copy for each check
of the loader ("ckpt_bad_*"). The io_checkpoint test loads them all and expects the valid
ones to load and the others to be refused, so they stay meaningful when the model's
layout changes (then run this again). Without LFLEX_LIBRARY the checkpoint seeds are left
as they are."""
import json
import os
import struct
import sys
import tempfile
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


# ---- checkpoints -----------------------------------------------------------------------

def parse(blob):
    """A safetensors file as (metadata dict, [(name, dtype, shape, bytes)] in data order)."""
    (n,) = struct.unpack_from("<Q", blob)
    head = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    meta = head.pop("__metadata__", {})
    items = sorted(head.items(), key=lambda kv: kv[1]["data_offsets"][0])
    return meta, [(k, v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]])
                  for k, v in items]


def build(meta, items):
    """The file again, without the checksum keys (files with neither are not checked)."""
    meta = {k: v for k, v in meta.items() if k not in ("lflex.writer", "lflex.crc32")}
    return raw(*tensors(items, meta))


def replace_tensor(items, name, payload=None, **fields):
    out = []
    for n, dtype, shape, data in items:
        if n == name:
            dtype, shape = fields.get("dtype", dtype), fields.get("shape", shape)
            data = data if payload is None else payload(data)
        out.append((n, dtype, shape, data))
    return out


def set_float(data, i, value):
    return data[:4 * i] + struct.pack("<f", value) + data[4 * i + 4:]


# Small models: every config key that changes the set of tensors appears in one of them.
TINY = {"model": {"d_model": 8, "n_heads": 1, "n_layers": 0, "d_cond": 1, "mlp_ratio": 1, "max_len": 4},
        "schedule": {"family": "linear"}, "vocab": {"tokenizer": "char", "tokens": "ab"},
        "train": {"threads": 1, "warmup": 0, "seed": 1}}
LEARNED = {"model": {"d_model": 8, "n_heads": 2, "n_layers": 1, "d_cond": 2, "mlp_ratio": 1, "max_len": 6,
                     "pos_emb": True, "seg_pos": True},
           "aux": {"n_layers": 0},
           "schedule": {"family": "kumaraswamy", "learn_b_in": True, "learn_b_um": True},
           "generator": {"learn_unmask_rate": True},
           "vocab": {"tokenizer": "words", "tokens": "x y z"},
           "train": {"threads": 1, "warmup": 0, "seed": 2, "ema": 0.5}}
SIZE_ONLY = {"model": {"d_model": 8, "n_heads": 1, "n_layers": 0, "d_cond": 1, "mlp_ratio": 1, "max_len": 3},
             "schedule": {"family": "kumaraswamy", "learn_b_in": False},
             "vocab": {"size": 2}, "train": {"threads": 1}}


def checkpoint(lflex, config, batch, steps):
    with lflex.Model(config) as model, tempfile.TemporaryDirectory() as tmp:
        for _ in range(steps):
            model.train_step(batch)
        path = os.path.join(tmp, "ckpt.safetensors")
        model.save(path)
        with open(path, "rb") as fp:
            return fp.read()


def checkpoint_files():
    if not os.environ.get("LFLEX_LIBRARY"):
        print("LFLEX_LIBRARY is not set: the ckpt_* seeds are left as they are")
        return {}
    sys.path.insert(0, os.path.join(os.path.dirname(OUT), "..", "..", "..", "examples", "python"))
    import lflex  # noqa: E402 (the binding in examples/python)

    EOS, A = lflex.EOS, lflex.FIRST_USER
    tiny = checkpoint(lflex, TINY, [[A, A + 1, EOS], [A + 1, EOS]], 2)
    learned = checkpoint(lflex, LEARNED, [[A, A + 1, A + 2, EOS], [A + 2, EOS]], 2)
    size_only = checkpoint(lflex, SIZE_ONLY, [[A, EOS]], 0)
    meta, items = parse(tiny)
    lmeta, litems = parse(learned)
    w = items[0][0]  # the first parameter (gen.tok_emb)
    config = meta["lflex.config"]
    files = {
        "ckpt_valid_tiny": build(meta, items),
        "ckpt_valid_learned_ema": build(lmeta, litems),
        "ckpt_valid_size_only_checksummed": size_only,  # as the library writes it
        "ckpt_bad_format_version": build(dict(meta, **{"lflex.format": "2"}), items),
        "ckpt_bad_format_text": build(dict(meta, **{"lflex.format": "1x"}), items),
        "ckpt_bad_no_config": build({k: v for k, v in meta.items() if k != "lflex.config"}, items),
        "ckpt_bad_config_key": build(dict(meta, **{"lflex.config": config + "nonsense: 1\n"}), items),
        "ckpt_bad_config_heads": build(dict(meta, **{"lflex.config": config.replace(
            "n_heads: 1", "n_heads: 3", 1)}), items),
        "ckpt_bad_config_vocab": build(dict(meta, **{"lflex.config": config.replace(
            '  tokens: ab\n', '  tokens: aa\n', 1)}), items),
        "ckpt_bad_step_too_large": build(dict(meta, **{"lflex.step": "9007199254740992"}), items),
        "ckpt_bad_step_text": build(dict(meta, **{"lflex.step": "+2"}), items),
        "ckpt_bad_rng_zero": build(dict(meta, **{"lflex.rng": " ".join(["0" * 16] * 4)}), items),
        "ckpt_bad_rng_short": build(dict(meta, **{"lflex.rng": "1 2 3 4"}), items),
        "ckpt_bad_tensor_missing": build(meta, [t for t in items if t[0] != "optim.v." + w]),
        "ckpt_bad_tensor_extra": build(meta, items + [("extra", "U8", [1], b"\x00")]),
        "ckpt_bad_tensor_shape": build(meta, replace_tensor(items, w, shape=list(reversed(items[0][2])))),
        "ckpt_bad_tensor_dtype": build(meta, replace_tensor(items, w, dtype="I32")),
        "ckpt_bad_tensor_nan": build(meta, replace_tensor(items, w, lambda d: set_float(d, 3, float("nan")))),
        "ckpt_bad_moment_negative": build(meta, replace_tensor(items, "optim.v." + w,
                                                               lambda d: set_float(d, 1, -1e-3))),
        "ckpt_bad_ema_inf": build(lmeta, replace_tensor(litems, "ema." + litems[0][0],
                                                       lambda d: set_float(d, 0, float("inf")))),
    }
    assert all(c in config for c in ("n_heads: 1", "  tokens: ab\n")), "the canonical YAML changed"
    return files


FILES.update(checkpoint_files())
os.makedirs(OUT, exist_ok=True)
for name, blob in sorted(FILES.items()):
    with open(os.path.join(OUT, name), "wb") as fp:
        fp.write(blob)
print("%d files in %s" % (len(FILES), OUT))
