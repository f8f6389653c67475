#!/usr/bin/python3
"""Tests of the Python binding (standard library only).

Run with LFLEX_LIBRARY set to the built liblflex.so and this directory on
PYTHONPATH (meson test does both: `meson test -C build --suite python`).
"""
import contextlib
import gc
import io
import math
import os
import re
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lflex  # noqa: E402
import safetensors_check as sc  # noqa: E402
from lflex import BOS, EOS, FIRST_USER, MASK, PAD  # noqa: E402

WORDS = "a b c d e f g h"
D_MODEL = 16
MAX_LEN = 16
LR = 0.01


def config(**sections):
    """The tiny test model's configuration, with sections overridden."""
    cfg = {
        "model": {"d_model": D_MODEL, "n_heads": 2, "n_layers": 1, "max_len": MAX_LEN},
        "vocab": {"tokenizer": "words", "tokens": WORDS},
        "train": {"lr": LR, "warmup": 0, "seed": 3, "threads": 1},
    }
    for name, keys in sections.items():
        cfg.setdefault(name, {}).update(keys)
    return cfg


def toy_batch(model):
    """Runs of consecutive letters: "a b c <eos>", "c d e f <eos>", ..."""
    letters = WORDS.split()
    runs = []
    for length in (2, 3, 4):
        for start in range(0, len(letters) - length + 1, 2):
            runs.append(" ".join(letters[start:start + length]) + " <eos>")
    return [model.encode(r) for r in runs]


class ModelTest(unittest.TestCase):
    def setUp(self):
        self.model = lflex.Model.new(config())
        self.addCleanup(self.model.close)

    def test_properties_and_config(self):
        m = self.model
        self.assertEqual(m.vocab_size, FIRST_USER + len(WORDS.split()))
        self.assertEqual(m.max_len, MAX_LEN)
        self.assertEqual(m.step, 0)
        self.assertTrue(m.learned_order)  # kumaraswamy is the default family
        self.assertGreater(m.n_params, 0)
        self.assertEqual(m.threads, 1)
        self.assertIn("d_model: 16", m.config)
        self.assertIn("a b c d e f g h", m.config)
        # the same model from YAML text, from a file, and from its own canonical config
        text = lflex.to_yaml(config())
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.yaml")
            with open(path, "w") as f:
                f.write(text)
            for other in (lflex.Model(text), lflex.Model.from_file(path), lflex.Model(m.config)):
                with other:
                    self.assertEqual(other.config, m.config)
                    self.assertEqual(other.n_params, m.n_params)
        with lflex.Model(config(schedule={"family": "linear"})) as flex:
            self.assertFalse(flex.learned_order)
        self.assertIn("vocab_size=12", repr(m))
        m.set_threads(2)
        self.assertEqual(m.threads, 2)
        self.assertIn("threads: 1", m.config)  # a run-time setting: the saved configuration keeps its own

    def test_yaml_emitter(self):
        text = lflex.to_yaml({"a": {"b": 1, "c": 1e-8, "d": 2.0, "e": True}, "s": 'x "y"\n\\', "f": -math.inf})
        self.assertEqual(text, 'a:\n  b: 1\n  c: 1.0e-08\n  d: 2.0\n  e: true\ns: "x \\"y\\"\\n\\\\"\nf: -.inf\n')
        with self.assertRaises(TypeError):
            lflex.to_yaml({"a": [1, 2]})
        # a quoted number is a string for the library: the emitter never quotes numbers
        with lflex.Model(config(train={"lr": 1, "clip": 0.5})) as m:
            self.assertIn("clip: 0.5", m.config)

    def test_encode_decode(self):
        m = self.model
        ids = m.encode("a b h <eos>")
        self.assertEqual(ids, [FIRST_USER, FIRST_USER + 1, FIRST_USER + 7, EOS])
        self.assertEqual(m.decode(ids), "a b h <eos>")
        self.assertEqual(m.encode("  c\td\n"), [FIRST_USER + 2, FIRST_USER + 3])
        self.assertEqual(m.encode("<bos> <eos>"), [BOS, EOS])
        self.assertEqual(m.decode([PAD, MASK, BOS, EOS]), "<pad> <mask> <bos> <eos>")
        self.assertEqual(m.encode(""), [])
        self.assertEqual(m.decode([]), "")
        # long inputs need the growing buffers
        long_ids = [FIRST_USER + i % 8 for i in range(500)]
        self.assertEqual(m.encode(m.decode(long_ids)), long_ids)
        with lflex.Model(config(vocab={"tokenizer": "char", "tokens": "hélo"})) as chars:
            ids = chars.encode("olé")
            self.assertEqual(len(ids), 3)
            self.assertEqual(chars.decode(ids), "olé")

    def test_train(self):
        m = self.model
        batch = toy_batch(m)
        before = m.eval_loss(batch, seed=7)
        self.assertEqual(m.eval_loss(batch, seed=7), before)  # deterministic for a seed
        self.assertNotEqual(m.eval_loss(batch, seed=8).loss, before.loss)
        self.assertEqual(before.step, 0)
        for i in range(1, 21):
            s = m.train_step(batch)
            self.assertIsInstance(s, lflex.TrainStats)
            self.assertEqual(s.step, i)
            for name in ("loss", "unmask_loss", "insert_loss", "reinforce", "regulariser", "grad_norm", "lr"):
                self.assertTrue(math.isfinite(getattr(s, name)), name)
            self.assertGreater(s.tokens, 0)
            self.assertGreater(s.grad_norm, 0)
            self.assertAlmostEqual(s.lr, LR)
            # the reported parts add up to the objective (doc/model-layout.md)
            self.assertAlmostEqual(s.unmask_loss + s.insert_loss + s.reinforce + s.regulariser, s.loss, places=4)
        self.assertEqual(m.step, 20)
        self.assertGreater(m.last_flops, 0)
        after = m.eval_loss(batch, seed=7)
        self.assertEqual(after.step, 20)  # eval_loss does not step
        self.assertEqual(m.step, 20)
        self.assertLess(after.unmask_loss + after.insert_loss, before.unmask_loss + before.insert_loss)
        # the thread count does not change results
        m.set_threads(2)
        self.assertEqual(m.eval_loss(batch, seed=7), after)

    def test_fixed_prompt(self):
        m = self.model
        seq = m.encode("a b <bos> c d <eos>")
        fixed = [[True, True, True, False, False, True]]
        s = m.train_step([seq], fixed)
        self.assertEqual(s.step, 1)
        # BOS must be fixed: with the default flags (only the final EOS) it is refused
        with self.assertRaisesRegex(lflex.InvalidArgument, "BOS must be fixed"):
            m.train_step([seq])
        with self.assertRaisesRegex(lflex.InvalidArgument, "fixed\\[0\\] has 2 flags"):
            m.eval_loss([seq], fixed=[[True, True]])
        self.assertEqual(m.step, 1)

    def test_rates(self):
        m = self.model
        x = m.encode("a b c <eos>")
        x[1] = MASK
        probs, unmask, insert = m.rates(x, 0.5)
        V = m.vocab_size
        self.assertEqual(len(probs), len(x))
        for row in probs:
            self.assertEqual(len(row), V)
            self.assertAlmostEqual(sum(row), 1.0, places=5)
            self.assertEqual(row[:FIRST_USER], [0.0] * FIRST_USER)
            self.assertTrue(all(p >= 0 for p in row))
        self.assertEqual(len(unmask), len(x))
        self.assertEqual(len(insert), len(x))
        self.assertGreater(unmask[1], 0)
        self.assertEqual([unmask[i] for i in (0, 2, 3)], [0.0, 0.0, 0.0])
        # constant b_um = 1 and a = 1: the unmasking rate is g_1(t) = 1 / (1 - t)
        self.assertAlmostEqual(unmask[1], 1 / (1 - 0.5), places=5)
        self.assertTrue(all(r >= 0 for r in insert))
        none, unmask2, insert2 = m.rates(x, 0.5, token_probs=False)
        self.assertIsNone(none)
        self.assertEqual((unmask2, insert2), (unmask, insert))

    def test_order(self):
        m = self.model
        z = m.encode("a b c <eos>")
        b_in, b_um, t = m.order(z, [False, False, False, True])
        self.assertEqual(len(b_in), 4)
        self.assertEqual(b_um, [1.0] * 4)  # b_um is the constant schedule.b_um
        for b, e in zip(b_in[:3], t[:3]):
            self.assertGreaterEqual(b, 1.001)  # schedule.min_rate
            self.assertAlmostEqual(e, 1 / (b + 1), places=5)  # E[T_in] for a = 1
        self.assertEqual(t[3], 0.0)  # fixed
        with lflex.Model(config(schedule={"family": "linear"})) as flex:
            b_in, b_um, t = flex.order(z)
            # fixed=None: only the final EOS is fixed, as for training
            self.assertEqual((b_in, b_um, t), ([1.0] * 4, [1.0] * 4, [0.5, 0.5, 0.5, 0.0]))

    def test_unmask_log_weights(self):
        z = self.model.encode("a b c <eos>")
        with self.assertRaisesRegex(lflex.InvalidArgument, "loss.unmask_order"):
            self.model.unmask_log_weights(z)  # a learned schedule, not a learned unmasking order
        cfg = config(schedule={"family": "kumaraswamy", "learn_b_in": False}, loss={"unmask_order": "learned"})
        with lflex.Model(cfg) as m:
            lw = m.unmask_log_weights(z)  # fixed=None: only the final EOS is fixed
            self.assertEqual(len(lw), 4)
            self.assertEqual(lw[3], -math.inf)
            for x in lw[:3]:  # log softplus(s) with s near the rate heads' initial -4
                self.assertGreater(x, -6.0)
                self.assertLess(x, math.log(0.1))
            self.assertEqual(m.unmask_log_weights(z, [True, False, False, True])[0], -math.inf)

    def test_save_load(self):
        m = self.model
        batch = toy_batch(m)
        for _ in range(3):
            m.train_step(batch)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.safetensors")
            m.save(path)
            with lflex.Model.load(path) as loaded:
                self.assertEqual(loaded.config, m.config)
                self.assertEqual(loaded.step, 3)
                self.assertEqual(loaded.eval_loss(batch, 5), m.eval_loss(batch, 5))
                x = m.encode("a b c <eos>")
                x[1] = MASK
                self.assertEqual(loaded.rates(x, 0.3), m.rates(x, 0.3))
                # training resumes exactly
                self.assertEqual(loaded.train_step(batch), m.train_step(batch))

    def test_weights_only(self):
        """A weights-only file (lflex export, doc/checkpoints.md): the EMA
        weights under the weights' names, no optimiser state. It loads,
        generates what the checkpoint generates, and does not train."""
        with lflex.Model.new(config(train={"ema": 0.9})) as m, tempfile.TemporaryDirectory() as tmp:
            batch = toy_batch(m)
            for _ in range(4):
                m.train_step(batch)
            m.save(os.path.join(tmp, "full.st"))
            full = sc.read(os.path.join(tmp, "full.st"))
            meta = {k: v for k, v in full.metadata.items() if k not in ("lflex.crc32", "lflex.writer")}
            weights = [sc.Tensor(t.name[len("ema."):], t.dtype, t.shape, t.data)
                       for t in full.tensors.values() if t.name.startswith("ema.")]
            path = os.path.join(tmp, "w.st")
            sc.write(path, weights, {**meta, "lflex.weights": "ema"})
            with lflex.Model.load(path) as w:
                self.assertEqual((w.config, w.step), (m.config, 4))
                out = []
                for model in (m, w):
                    with lflex.Sampler(model, steps=8, seed=5) as s:
                        out.append(s.generate_batch([None] * 6))
                self.assertEqual(out[1], out[0])
                with self.assertRaisesRegex(lflex.StateError, "weights-only file .ema weights, no optimiser state"):
                    w.train_step(batch)
                # saved again, it stays a weights-only file
                w.save(os.path.join(tmp, "again.st"))
            again = sc.read(os.path.join(tmp, "again.st"))
            self.assertEqual(again.metadata["lflex.weights"], "ema")
            self.assertEqual(sorted(again.tensors), sorted(t.name for t in weights))
            sc.write(path, weights, {**meta, "lflex.weights": "best"})
            with self.assertRaisesRegex(lflex.FormatError, "lflex.weights 'best' is neither"):
                lflex.Model.load(path)
            sc.write(path, list(full.tensors.values()), {**meta, "lflex.weights": "raw"})
            with self.assertRaisesRegex(lflex.FormatError, "tensor 'optim.m.gen.tok_emb' .* is not part of the model"):
                lflex.Model.load(path)


class SafetensorsTest(unittest.TestCase):
    """The checkpoint read with plain Python (safetensors_check.py)."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        self.model = lflex.Model(config())
        self.addCleanup(self.model.close)

    def path(self, name):
        return os.path.join(self.dir, name)

    def test_layout_and_round_trip(self):
        m = self.model
        m.save(self.path("init.st"))
        stats = m.train_step(toy_batch(m))
        m.save(self.path("a.st"))
        a = sc.read(self.path("a.st"))
        self.assertTrue(a.crc_checked)
        self.assertEqual(a.metadata["lflex.format"], "1")
        self.assertEqual(a.metadata["lflex.step"], "1")
        self.assertEqual(a.metadata["lflex.config"].strip(), m.config.strip())
        # shapes of doc/model-layout.md for d = 16, 1 layer, d_ff = 4 d, d_c = d
        V, d = m.vocab_size, D_MODEL
        expect = {
            "gen.tok_emb": (V, d), "gen.time.w1": (d, 256), "gen.time.w2": (d, d),
            "gen.blocks.0.ada.w": (6 * d, d), "gen.blocks.0.attn.wqkv": (3 * d, d),
            "gen.blocks.0.attn.wo": (d, d), "gen.blocks.0.mlp.w1": (4 * d, d), "gen.blocks.0.mlp.w2": (d, 4 * d),
            "gen.out.w": (V - 4, d), "gen.out.b": (V - 4,), "gen.out.ada.w": (2 * d, d),
            "gen.ins.w1": (d, d), "gen.ins.w2": (1, d), "gen.ins.b2": (1,),
            "aux.tok_emb": (V, d), "aux.bin.w2": (1, d),
        }
        for name, shape in expect.items():
            self.assertEqual(a[name].shape, shape, name)
            self.assertEqual(a[name].dtype, "F32")
        params = [k for k in a.tensors if not k.startswith(("optim.", "ema."))]
        self.assertEqual(sum(len(a[k].values()) for k in params), m.n_params)
        for k in params:
            self.assertIn("optim.m." + k, a.tensors)
            self.assertIn("optim.v." + k, a.tensors)
        # the train step, seen in the files: AdamW's first step moves every
        # (undecayed) bias with a non-zero gradient by lr against its first
        # moment m = (1 - beta1) g, and v = (1 - beta2) g^2 = 0.1 m^2
        init = sc.read(self.path("init.st"))
        w0, w1 = init["gen.out.b"].values(), a["gen.out.b"].values()
        mom, var = a["optim.m.gen.out.b"].values(), a["optim.v.gen.out.b"].values()
        self.assertEqual(w0, [0.0] * (V - 4))
        for x0, x1, g1, g2 in zip(w0, w1, mom, var):
            self.assertNotEqual(g1, 0.0)
            self.assertAlmostEqual(x1 - x0, -math.copysign(stats.lr, g1), delta=1e-6)
            self.assertAlmostEqual(g2, 0.1 * g1 * g1, delta=1e-4 * g2)  # 1 - beta2 in float32
        self.assertNotEqual(init["gen.tok_emb"].data, a["gen.tok_emb"].data)
        # load with the library, save again: the same tensors and metadata
        with lflex.Model.load(self.path("a.st")) as loaded:
            loaded.save(self.path("b.st"))
        b = sc.read(self.path("b.st"))
        self.assertEqual(list(b.tensors), list(a.tensors))
        for k in a.tensors:
            self.assertEqual((b[k].shape, b[k].data), (a[k].shape, a[k].data), k)
        self.assertEqual({k: v for k, v in b.metadata.items() if k != "lflex.crc32"},
                         {k: v for k, v in a.metadata.items() if k != "lflex.crc32"})
        shape, values = sc.weight(self.path("a.st"), "gen.tok_emb")
        self.assertEqual(shape, (V, d))
        self.assertEqual(values, list(struct.unpack(f"<{V * d}f", a["gen.tok_emb"].data)))

    def test_damaged_and_rewritten_files(self):
        m = self.model
        m.save(self.path("a.st"))
        with open(self.path("a.st"), "rb") as f:
            raw = bytearray(f.read())
        raw[-3] ^= 0x40  # one bit of the last tensor
        with open(self.path("bad.st"), "wb") as f:
            f.write(raw)
        with self.assertRaisesRegex(sc.SafetensorsError, "checksum"):
            sc.read(self.path("bad.st"))
        with self.assertRaises(lflex.FormatError) as cm:
            lflex.Model.load(self.path("bad.st"))
        self.assertIn("bad.st", cm.exception.message)
        with open(self.path("short.st"), "wb") as f:
            f.write(bytes(raw[:100]))
        with self.assertRaises(lflex.FormatError):
            lflex.Model.load(self.path("short.st"))
        # a file written by the Python writer (its own checksum) loads; with
        # another format version it is a VersionError
        a = sc.read(self.path("a.st"))
        meta = {k: v for k, v in a.metadata.items() if k != "lflex.crc32"}
        sc.write(self.path("py.st"), a.tensors.values(), meta)
        with lflex.Model.load(self.path("py.st")) as again:
            self.assertEqual(again.config, m.config)
        sc.write(self.path("v2.st"), a.tensors.values(), {**meta, "lflex.format": "2"})
        with self.assertRaisesRegex(lflex.VersionError, "format version 2"):
            lflex.Model.load(self.path("v2.st"))
        # the command-line reader
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            self.assertEqual(sc.main(["safetensors_check.py", self.path("a.st"), "gen.out.b"]), 0)
            self.assertEqual(sc.main(["safetensors_check.py", self.path("bad.st")]), 1)
        self.assertIn("checksum ok", out.getvalue())
        self.assertIn("gen.out.b F32 [8]:\n0 0 0 0 0 0 0 0\n", out.getvalue())
        self.assertIn("checksum mismatch", err.getvalue())


class SamplerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = lflex.Model(config())
        batch = toy_batch(cls.model)
        for _ in range(10):
            cls.model.train_step(batch)

    @classmethod
    def tearDownClass(cls):
        cls.model.close()

    def sampler(self, **options):
        s = lflex.Sampler(self.model, **{"steps": 12, "seed": 1, **options})
        self.addCleanup(s.close)
        return s

    def check_output(self, out, max_len=MAX_LEN):
        self.assertEqual(out[-1], EOS)
        self.assertLessEqual(len(out), max_len)
        self.assertTrue(all(0 <= t < self.model.vocab_size and t not in (PAD, MASK) for t in out), out)

    def test_unconditional_and_prompt(self):
        s = self.sampler()
        for _ in range(3):
            self.check_output(s.generate())
        self.check_output(self.sampler(max_len=6).generate(), max_len=6)
        prompt = self.model.encode("a b <bos> <eos>")
        out = s.generate(prompt)
        self.check_output(out)
        self.assertEqual(out[:3], prompt[:3])
        self.assertEqual(s.generate("a b <bos> <eos>")[:3], prompt[:3])  # text templates

    def test_infilling(self):
        s = self.sampler()
        tmpl = self.model.encode("a d <eos>")
        out = s.generate(tmpl, [False, True, False])  # only the gap left of "d"
        self.check_output(out)
        self.assertEqual((out[0], out[-2]), (tmpl[0], tmpl[1]))
        fixed_len = [tmpl[0], MASK, MASK, tmpl[1], EOS]
        out = s.generate(fixed_len, [False] * 5)
        self.check_output(out)
        self.assertEqual(len(out), 5)
        self.assertEqual((out[0], out[3]), (tmpl[0], tmpl[1]))

    def test_batch_times(self):
        s = self.sampler()
        tmpls = [None, "a b <bos> <eos>", "a d <eos>"]
        gens = s.generate_batch(tmpls, [None, None, [False, True, False]], times=True)
        self.assertEqual(len(gens), 3)
        for g in gens:
            self.check_output(g.tokens)
            self.assertEqual(len(g.insert_time), len(g.tokens))
            self.assertEqual(len(g.unmask_time), len(g.tokens))
            for ti, tu in zip(g.insert_time, g.unmask_time):
                self.assertTrue(0 <= ti <= tu <= 1, (ti, tu))
            self.assertEqual((g.insert_time[-1], g.unmask_time[-1]), (0.0, 0.0))  # the template's EOS
        self.assertEqual(gens[1].tokens[:3], self.model.encode("a b <bos>"))
        self.assertEqual(gens[1].insert_time[:3], [0.0] * 3)
        self.assertEqual((gens[2].tokens[0], gens[2].tokens[-2]), tuple(self.model.encode("a d")))
        self.assertEqual(s.generate_batch([]), [])

    def test_candidates(self):
        # candidate 0 of a template is the plain sample: with one candidate
        # every score keeps it; with three, each score returns whole outputs
        tmpls = [None, "a b <bos> <eos>"]
        plain = self.sampler(seed=3, temperature=1.0).generate_batch(tmpls)
        for score in ("sum", "mean", "min"):
            self.assertEqual(self.sampler(seed=3, temperature=1.0, candidates=1,
                                          candidate_score=score).generate_batch(tmpls), plain)
            for out in self.sampler(seed=3, temperature=1.0, candidates=3, candidate_score=score).generate_batch(tmpls):
                self.check_output(out)
        # windows of scored positions: whole outputs too, and span 1 is the default
        self.assertEqual(self.sampler(seed=3, temperature=1.0, candidates=3, candidate_span=1).generate_batch(tmpls),
                         self.sampler(seed=3, temperature=1.0, candidates=3).generate_batch(tmpls))
        for out in self.sampler(seed=3, temperature=1.0, candidates=3, candidate_span=3,
                                candidate_score="mean").generate_batch(tmpls):
            self.check_output(out)
        # revision: whole outputs, and revise=0 is the default
        self.assertEqual(self.sampler(seed=3, temperature=1.0, revise=0).generate_batch(tmpls), plain)
        for out in self.sampler(seed=3, temperature=1.0, candidates=2, candidate_score="mean",
                                revise=2).generate_batch(tmpls):
            self.check_output(out)

    def test_grid(self):
        # the events grid moves the step times: the MASKs of a template
        # unmask at other times than on the uniform grid (same seed), and
        # grid="uniform" is the default
        a, d = self.model.encode("a d")
        tmpls = [[a] + [MASK] * 6 + [d, EOS]] * 4
        flags = [[False] * 9] * 4
        uniform = self.sampler(seed=4, temperature=1.0).generate_batch(tmpls, flags, times=True)
        self.assertEqual(self.sampler(seed=4, temperature=1.0, grid="uniform").generate_batch(tmpls, flags),
                         [g.tokens for g in uniform])
        events = self.sampler(seed=4, temperature=1.0, grid="events").generate_batch(tmpls, flags, times=True)
        for g in events:
            self.check_output(g.tokens)
            self.assertEqual(len(g.tokens), 9)
        self.assertNotEqual([g.unmask_time for g in events], [g.unmask_time for g in uniform])

    def test_batch_equals_one_by_one(self):
        tmpls = [None, "a <bos> <eos>", None, "c d <eos>", None]
        batched = self.sampler(seed=5, batch_size=2).generate_batch(tmpls)
        one = self.sampler(seed=5)
        self.assertEqual([one.generate(t) for t in tmpls], batched)
        one.set_seed(5)
        self.assertEqual(one.generate_batch(tmpls), batched)
        self.assertEqual(self.sampler(seed=5, threads=2).generate_batch(tmpls), batched)
        self.assertNotEqual(self.sampler(seed=6).generate_batch(tmpls), batched)

    def test_progress(self):
        calls = []

        def stop_at_3(done, total):
            calls.append((done, total))
            return done == 3

        s = self.sampler(progress=stop_at_3)
        with self.assertRaises(lflex.Canceled) as cm:
            s.generate()
        self.assertIn("canceled", cm.exception.message)
        self.assertEqual([d for d, _ in calls], [1, 2, 3])
        # after every step of every batch: (12 steps + the closing pass) x 2
        # batches of one
        calls.clear()
        s = self.sampler(batch_size=1)
        s.progress = lambda done, total: calls.append((done, total))  # returns None: go on
        s.generate_batch([None, None])
        self.assertEqual(calls, [(i, 26) for i in range(1, 27)])

        def fails(done, total):
            raise ZeroDivisionError("from the callback")

        s.set_progress(fails)
        with self.assertRaisesRegex(ZeroDivisionError, "from the callback"):
            s.generate()
        s.set_progress(None)
        self.assertIsNone(s.progress)
        self.check_output(s.generate())


class ScheduleTest(unittest.TestCase):
    def test_kumaraswamy(self):
        a, b, c, t = 2.0, 3.0, 1.5, 0.6
        with lflex.Schedule("kumaraswamy", a=a) as s:
            cdf, hazard, (ld, lm, lc) = s.eval(t, b, c)
        y = 1 - t ** a
        self.assertAlmostEqual(cdf, 1 - y ** b, places=12)
        density = a * b * t ** (a - 1) * y ** (b - 1)
        self.assertAlmostEqual(hazard, density / (1 - cdf), places=10)
        self.assertAlmostEqual(ld, math.log(y ** b), places=12)

        # P(masked) by Simpson quadrature over the insertion time s: inserted
        # at s, still masked at t with probability ((1 - t^a) / (1 - s^a))^c
        def f(s_):
            return a * b * s_ ** (a - 1) * (1 - s_ ** a) ** (b - 1) * (y / (1 - s_ ** a)) ** c

        n = 2000
        h = t / n
        p_mask = h / 3 * sum((1 if i in (0, n) else 4 if i % 2 else 2) * f(i * h) for i in range(n + 1))
        self.assertAlmostEqual(math.exp(lm), p_mask, places=9)
        self.assertAlmostEqual(math.exp(ld) + math.exp(lm) + math.exp(lc), 1.0, places=12)

    def test_linear_and_model_schedule(self):
        s = lflex.Schedule("linear", a=3.0)
        cdf, hazard, logp = s.eval(0.25, 5.0, 7.0)  # linear: a = b = c = 1
        self.assertAlmostEqual(cdf, 0.25)
        self.assertAlmostEqual(hazard, 1 / 0.75)
        self.assertAlmostEqual(math.exp(logp[0]), 0.75)
        s.close()
        s.close()
        with self.assertRaises(lflex.StateError):
            s.eval(0.5)
        m = lflex.Model(config(schedule={"a": 0.5}))
        ms = m.schedule
        m.close()  # the borrowed schedule keeps the C model alive
        cdf, _, _ = ms.eval(0.25, 2.0, 1.0)
        self.assertAlmostEqual(cdf, 1 - (1 - 0.25 ** 0.5) ** 2)
        ms.close()


class ErrorTest(unittest.TestCase):
    def setUp(self):
        self.model = lflex.Model(config())
        self.addCleanup(self.model.close)

    def raises(self, cls, pattern, fn, *args, **kwargs):
        """fn raises cls with a message matching pattern and the class's code."""
        with self.assertRaisesRegex(cls, pattern) as cm:
            fn(*args, **kwargs)
        e = cm.exception
        self.assertIsInstance(e, lflex.LflexError)
        self.assertEqual(e.code, cls.code)
        self.assertTrue(e.message)
        self.assertEqual(str(e), e.message)
        return e

    def test_classes(self):
        from lflex.errors import error_for
        expected = {-1: (lflex.InvalidArgument, ValueError), -2: (lflex.OutOfMemory, MemoryError),
                    -3: (lflex.FileError, OSError), -4: (lflex.FormatError, lflex.LflexError),
                    -5: (lflex.VersionError, lflex.LflexError), -6: (lflex.NumericError, ArithmeticError),
                    -7: (lflex.Canceled, lflex.LflexError), -8: (lflex.StateError, RuntimeError),
                    -9: (lflex.NotAvailable, NotImplementedError), -10: (lflex.InternalError, RuntimeError)}
        for code, (cls, base) in expected.items():
            e = error_for(code, "msg")
            self.assertIs(type(e), cls)
            self.assertIsInstance(e, base)
            self.assertEqual((e.code, e.message), (code, "msg"))
        e = error_for(-99, "new")
        self.assertIs(type(e), lflex.LflexError)
        self.assertEqual(e.code, -99)

    def test_library_not_found(self):
        env = {**os.environ, "LFLEX_LIBRARY": "/nonexistent/liblflex.so"}
        r = subprocess.run([sys.executable, "-c", "import lflex"], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("OSError: cannot load liblflex from LFLEX_LIBRARY='/nonexistent/liblflex.so'", r.stderr)

    def test_every_export_declared(self):
        """The binding declares a prototype for every exported function."""
        map_file = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib", "lflex.map")
        if not os.path.exists(map_file):
            self.skipTest("lib/lflex.map is not here")
        with open(map_file) as f:
            exports = set(re.findall(r"^\s*(lflex_\w+);", f.read(), re.M))
        from lflex import _capi
        self.assertEqual(exports, set(_capi._PROTOTYPES))
        for name in exports:
            self.assertIsNotNone(getattr(_capi.lib, name).argtypes, name)

    def test_config_errors(self):
        e = self.raises(lflex.InvalidArgument, "d_modle", lflex.Model, {"model": {"d_modle": 16}})
        self.assertIn("did you mean 'model.d_model'", e.message)
        self.raises(lflex.InvalidArgument, "model.d_model", lflex.Model, config(model={"d_model": 4}))
        self.raises(lflex.InvalidArgument, "", lflex.Model, "model: [unclosed")
        self.raises(lflex.InvalidArgument, "", lflex.Model, "")
        self.raises(lflex.FileError, "", lflex.Model.from_file, "/nonexistent/config.yaml")
        self.raises(lflex.InvalidArgument, "confidence", lflex.Sampler, self.model, confidence="bogus")
        self.raises(lflex.InvalidArgument, "candidate_score", lflex.Sampler, self.model, candidate_score="max")
        self.raises(lflex.InvalidArgument, "candidate_span", lflex.Sampler, self.model, candidate_span=0)
        self.raises(lflex.InvalidArgument, "revise", lflex.Sampler, self.model, revise=65)
        self.raises(lflex.InvalidArgument, "grid", lflex.Sampler, self.model, grid="fine")
        self.raises(lflex.InvalidArgument, "max_len", lflex.Sampler, self.model, max_len=MAX_LEN + 1)
        self.raises(lflex.InvalidArgument, "", lflex.Schedule, "cubic")
        with self.assertRaises(TypeError):
            lflex.Model(None)
        with self.assertRaises(TypeError):
            lflex.Sampler("not a model")

    def test_vocabulary_errors(self):
        m = self.model
        self.raises(lflex.InvalidArgument, "unknown token \"zz\"", m.encode, "a zz")
        self.raises(lflex.InvalidArgument, "outside", m.decode, [FIRST_USER, 99])
        self.raises(lflex.InvalidArgument, "int32", m.decode, [2 ** 32 + FIRST_USER])  # not wrapped around
        with self.assertRaises(TypeError):
            m.encode(b"a b")
        with self.assertRaises(TypeError):
            m.decode("a b")

    def test_training_errors(self):
        m = self.model
        ok = m.encode("a b <eos>")
        self.raises(lflex.InvalidArgument, "sequence 1.*EOS", m.train_step, [ok, m.encode("a b")])
        self.raises(lflex.InvalidArgument, "empty", m.train_step, [])
        self.raises(lflex.InvalidArgument, "MASK", m.train_step, [[MASK, EOS]])
        self.raises(lflex.InvalidArgument, "max_len", m.train_step, [[FIRST_USER] * MAX_LEN + [EOS]])
        self.raises(lflex.InvalidArgument, "fixed has 2 entries", m.train_step, [ok], [[1, 1, 1], [1]])
        self.raises(lflex.InvalidArgument, "seed", m.eval_loss, [ok], -1)
        with self.assertRaises(TypeError):
            m.train_step(ok)  # one sequence instead of a batch
        self.assertEqual(m.step, 0)
        self.raises(lflex.InvalidArgument, "t = 1", m.rates, ok, 1.0)
        self.raises(lflex.InvalidArgument, "empty", m.rates, [], 0.5)
        self.raises(lflex.InvalidArgument, "MASK in a clean sequence", m.order, [MASK, EOS])
        self.raises(lflex.InvalidArgument, "outside", m.set_threads, -1)
        self.raises(lflex.InvalidArgument, "t = 1.5", lflex.Schedule().eval, 1.5, 1.0, 1.0)
        self.raises(lflex.InvalidArgument, "positive", lflex.Schedule().eval, 0.5, -1.0, 1.0)

    def test_file_errors(self):
        m = self.model
        self.raises(lflex.FileError, "", m.save, "/nonexistent/dir/m.safetensors")
        self.raises(lflex.FileError, "", lflex.Model.load, "/nonexistent/m.safetensors")
        self.raises(lflex.InvalidArgument, "empty", lflex.Model.load, "")
        with tempfile.NamedTemporaryFile(suffix=".safetensors") as f:
            f.write(b"this is not a checkpoint at all")
            f.flush()
            self.raises(lflex.FormatError, os.path.basename(f.name), lflex.Model.load, f.name)

    def test_template_errors(self):
        s = lflex.Sampler(self.model, steps=4)
        self.addCleanup(s.close)
        a = FIRST_USER
        self.raises(lflex.InvalidArgument, "not EOS", s.generate, [a, a])
        self.raises(lflex.InvalidArgument, "PAD", s.generate, [a, PAD, EOS])
        self.raises(lflex.InvalidArgument, "template 0 is empty", s.generate, [])
        self.raises(lflex.InvalidArgument, "more than max_len", s.generate, [a] * MAX_LEN + [EOS])
        self.raises(lflex.InvalidArgument, "nothing to generate", s.generate, [a, EOS], [False, False])
        self.raises(lflex.InvalidArgument, "template 1.*outside", s.generate_batch, [[EOS], [99, EOS]])
        self.raises(lflex.InvalidArgument, "open_gap has 1 entries", s.generate, [a, EOS], [True])
        self.raises(lflex.InvalidArgument, "open_gaps has 1 entries", s.generate_batch, [[EOS], [EOS]], [None])
        self.raises(lflex.InvalidArgument, "unknown token", s.generate, "a zz <eos>")
        self.raises(lflex.InvalidArgument, "seed", s.set_seed, -1)

    def test_closed_handles(self):
        m = lflex.Model(config())
        s = lflex.Sampler(m, steps=4)
        m.close()
        m.close()  # idempotent
        self.assertTrue(m.closed)
        self.assertIn("closed", repr(m))
        for call in (lambda: m.encode("a"), lambda: m.step, lambda: m.config, lambda: m.save("/tmp/x"),
                     lambda: m.train_step([[EOS]]), lambda: m.rates([EOS], 0.1), lambda: lflex.Sampler(m)):
            self.raises(lflex.StateError, "model is closed", call)
        # the sampler keeps the C model alive until it is closed
        self.assertEqual(s.generate()[-1], EOS)
        s.close()
        self.raises(lflex.StateError, "sampler is closed", s.generate)
        self.raises(lflex.StateError, "sampler is closed", s.set_seed, 1)
        with lflex.Model(config()) as m2, lflex.Sampler(m2, steps=4) as s2:
            s2.generate()
        self.assertTrue(m2.closed and s2.closed)
        # dropped references and cycles are freed in a valid order
        m3 = lflex.Model(config())
        s3 = lflex.Sampler(m3, steps=4)
        s3.cycle = s3
        m3.cycle = (m3, s3)
        del m3, s3
        gc.collect()


if __name__ == "__main__":
    unittest.main(verbosity=2)
