"""The model: creation, checkpoints, vocabulary, training and rate queries."""
from __future__ import annotations

import ctypes
import os
from ctypes import byref, c_float, c_int64, c_size_t, c_void_p
from dataclasses import dataclass
from itertools import chain
from typing import Any, Mapping, Optional, Sequence

from . import _capi
from ._capi import check, flag_array, int32_array, invalid, lib, size_array
from ._yaml import to_yaml
from .errors import EINVAL
from .schedule import Schedule

# enum lflex_model_property
_PROP_VOCAB_SIZE = 1
_PROP_MAX_LEN = 2
_PROP_N_PARAMS = 3
_PROP_STEP = 4
_PROP_THREADS = 5
_PROP_LEARNED_ORDER = 6
_PROP_LAST_FLOPS = 7

Batch = Sequence[Sequence[int]]
Flags = Optional[Sequence[Sequence[Any]]]


@dataclass(frozen=True)
class TrainStats:
    """Statistics of one training step or loss evaluation
    (struct lflex_train_stats)."""

    loss: float         #: the objective (a surrogate: may be negative)
    unmask_loss: float  #: mean unmasking term
    insert_loss: float  #: mean insertion term
    reinforce: float    #: value of the REINFORCE term (0 for FlexMDM)
    regulariser: float  #: w_reg times the mean schedule regulariser (0 for FlexMDM)
    grad_norm: float    #: gradient norm before clipping (0 for eval_loss)
    lr: float           #: learning rate of the step (0 for eval_loss)
    step: int           #: optimiser steps taken, this one included
    tokens: int         #: tokens processed by the networks

    @classmethod
    def _from_c(cls, s: _capi.TrainStatsC) -> "TrainStats":
        return cls(s.loss, s.unmask_loss, s.insert_loss, s.reinforce, s.regulariser, s.grad_norm, s.lr, s.step,
                   s.tokens)


def _new_stats() -> _capi.TrainStatsC:
    s = _capi.TrainStatsC()
    s.struct_size = ctypes.sizeof(_capi.TrainStatsC)
    return s


class Model:
    """A generator (plus, for learned order, the auxiliary network), its
    vocabulary, optimiser state and configuration.

    ``Model(config)`` is ``Model.new(config)``. Close it with :meth:`close`
    or a ``with`` block; an unclosed model is freed when collected. A closed
    model raises :class:`~lflex.StateError`. Samplers borrow the model: the C
    model is freed only after its last sampler is closed.
    """

    def __init__(self, config: "str | bytes | Mapping[str, Any]") -> None:
        text = _capi.yaml_bytes(config, to_yaml)
        out = c_void_p()
        check(lib.lflex_model_new(byref(out), text, len(text)))
        self._h = _capi.Handle(out.value, lib.lflex_model_free, "model")

    @classmethod
    def new(cls, config: "str | bytes | Mapping[str, Any]") -> "Model":
        """A model with fresh weights from a configuration: YAML text, or a
        nested mapping such as ``{"model": {"d_model": 16}, "vocab":
        {"tokens": "a b c"}}`` (keys in doc/config.md)."""
        return cls(config)

    @classmethod
    def _adopt(cls, ptr: int) -> "Model":
        self = cls.__new__(cls)
        self._h = _capi.Handle(ptr, lib.lflex_model_free, "model")
        return self

    @classmethod
    def from_file(cls, path: "str | os.PathLike[str]") -> "Model":
        """A model with fresh weights from a YAML configuration file."""
        out = c_void_p()
        check(lib.lflex_model_new_from_file(byref(out), _capi.path_bytes(path)))
        return cls._adopt(out.value)

    @classmethod
    def load(cls, path: "str | os.PathLike[str]") -> "Model":
        """A model saved by :meth:`save`; training resumes where it stopped."""
        out = c_void_p()
        check(lib.lflex_model_load(byref(out), _capi.path_bytes(path)))
        return cls._adopt(out.value)

    def save(self, path: "str | os.PathLike[str]") -> None:
        """Write weights, optimiser state, configuration and random state to a
        safetensors file (atomically)."""
        check(lib.lflex_model_save(self._ptr, _capi.path_bytes(path)))

    # ---- lifetime ------------------------------------------------------------

    @property
    def _ptr(self) -> int:
        return self._h.get()

    def close(self) -> None:
        """Release the model (idempotent)."""
        h = getattr(self, "_h", None)
        if h is not None:
            h.close()

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __enter__(self) -> "Model":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self.closed:
            return "<lflex.Model (closed)>"
        return (f"<lflex.Model vocab_size={self.vocab_size} max_len={self.max_len} n_params={self.n_params} "
                f"step={self.step} learned_order={self.learned_order}>")

    # ---- configuration and properties ----------------------------------------

    @property
    def config(self) -> str:
        """The configuration as canonical YAML (every key, vocabulary included)."""
        ptr = self._ptr
        cap = 4096
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = c_size_t()
            st = lib.lflex_model_config(ptr, buf, cap, byref(n))
            if st == EINVAL and n.value + 1 > cap:
                cap = n.value + 1
                continue
            check(st)
            return buf.raw[:n.value].decode("utf-8")

    def _get(self, prop: int) -> int:
        v = c_int64()
        check(lib.lflex_model_get(self._ptr, prop, byref(v)))
        return v.value

    @property
    def vocab_size(self) -> int:
        """Number of token ids, the 4 reserved ones included."""
        return self._get(_PROP_VOCAB_SIZE)

    @property
    def max_len(self) -> int:
        """Longest sequence in tokens (model.max_len)."""
        return self._get(_PROP_MAX_LEN)

    @property
    def n_params(self) -> int:
        """Number of trained parameters."""
        return self._get(_PROP_N_PARAMS)

    @property
    def step(self) -> int:
        """Optimiser steps taken."""
        return self._get(_PROP_STEP)

    @property
    def threads(self) -> int:
        """Worker threads in use."""
        return self._get(_PROP_THREADS)

    @property
    def learned_order(self) -> bool:
        """True for a learned (Kumaraswamy) schedule, False for FlexMDM."""
        return bool(self._get(_PROP_LEARNED_ORDER))

    @property
    def last_flops(self) -> int:
        """Floating-point operations of the last train step or loss evaluation."""
        return self._get(_PROP_LAST_FLOPS)

    def set_threads(self, n: int) -> None:
        """Set the worker threads (1: single-threaded, 0: all cores); results
        do not depend on it."""
        check(lib.lflex_model_set_threads(self._ptr, n))

    @property
    def schedule(self) -> Schedule:
        """The model's schedule (borrowed: it keeps the model's memory alive)."""
        return Schedule._borrow(lib.lflex_model_schedule(self._ptr), self._h)

    # ---- vocabulary ------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (``<bos>`` and ``<eos>`` give the reserved
        ids with the words tokenizer)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        ptr = self._ptr
        data = text.encode("utf-8")
        cap = max(len(data), 1)  # every token takes at least one byte
        while True:
            ids = (ctypes.c_int32 * cap)()
            n = c_size_t()
            st = lib.lflex_model_encode(ptr, data, len(data), ids, cap, byref(n))
            if st == EINVAL and n.value > cap:
                cap = n.value
                continue
            check(st)
            return ids[:n.value]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids (words joined by spaces, characters concatenated,
        reserved ids as ``<pad>``, ``<mask>``, ``<bos>``, ``<eos>``)."""
        ptr = self._ptr
        arr, n = int32_array(ids)
        cap = 8 * n + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            length = c_size_t()
            st = lib.lflex_model_decode(ptr, arr, n, buf, cap, byref(length))
            if st == EINVAL and length.value + 1 > cap:
                cap = length.value + 1
                continue
            check(st)
            return buf.raw[:length.value].decode("utf-8")

    # ---- training ----------------------------------------------------------------

    @staticmethod
    def _batch(batch: Batch, fixed: Flags) -> tuple[Any, Any, Any, int]:
        seqs = [s for s in batch]
        if seqs and isinstance(seqs[0], int):
            raise TypeError("batch must be a list of sequences of ids, not one sequence")
        lengths = [len(s) for s in seqs]
        offsets = [0]
        for n in lengths:
            offsets.append(offsets[-1] + n)
        tokens, _ = int32_array(chain.from_iterable(seqs), "batch")
        flags = None
        if fixed is not None:
            if len(fixed) != len(seqs):
                raise invalid(f"fixed has {len(fixed)} entries for {len(seqs)} sequences")
            for j, (f, n) in enumerate(zip(fixed, lengths)):
                if len(f) != n:
                    raise invalid(f"fixed[{j}] has {len(f)} flags for a sequence of {n} tokens")
            flags = flag_array(chain.from_iterable(fixed), offsets[-1], "fixed")
        return tokens, flags, size_array(offsets), len(seqs)

    def train_step(self, batch: Batch, fixed: Flags = None) -> TrainStats:
        """One optimiser step on clean sequences, each ending with EOS.

        ``fixed`` (one list of truth values per sequence) marks the tokens
        present from the start and never noised (prompt, BOS, the final EOS);
        None means only each sequence's final EOS.
        """
        ptr = self._ptr
        tokens, flags, offsets, n_seq = self._batch(batch, fixed)
        stats = _new_stats()
        check(lib.lflex_model_train_step(ptr, tokens, flags, offsets, n_seq, byref(stats)))
        return TrainStats._from_c(stats)

    def eval_loss(self, batch: Batch, seed: int = 0, *, fixed: Flags = None) -> TrainStats:
        """The objective on a batch without changing the model; times and
        states are drawn from ``seed``, so a seed always gives the same value."""
        ptr = self._ptr
        tokens, flags, offsets, n_seq = self._batch(batch, fixed)
        stats = _new_stats()
        check(lib.lflex_model_eval_loss(ptr, tokens, flags, offsets, n_seq, _capi.uint64(seed, "seed"),
                                        byref(stats)))
        return TrainStats._from_c(stats)

    # ---- rate queries --------------------------------------------------------------

    def rates(self, x: Sequence[int], t: float, *,
              token_probs: bool = True) -> tuple[Optional[list[list[float]]], list[float], list[float]]:
        """The generator's rates on a partial sequence (MASK allowed) at time t
        in [0, 1): per position the token distribution (n rows of vocab_size;
        None with ``token_probs=False``), the unmasking rate (0 off MASK) and
        the rate of inserting a MASK left of the position."""
        ptr = self._ptr
        arr, n = int32_array(x, "x")
        V = self._get(_PROP_VOCAB_SIZE)
        probs = (c_float * (n * V))() if token_probs else None
        unmask = (c_float * n)()
        insert = (c_float * n)()
        check(lib.lflex_model_rates(ptr, arr, n, float(t), probs, unmask, insert))
        rows = [probs[i * V:(i + 1) * V] for i in range(n)] if probs is not None else None
        return rows, unmask[:], insert[:]

    def order(self, z: Sequence[int],
              fixed: Optional[Sequence[Any]] = None) -> tuple[list[float], list[float], list[float]]:
        """The learned order of a clean sequence: per token the insertion shape
        b_in, the unmasking shape b_um and the expected insertion time (0 for
        fixed tokens; for FlexMDM every b is 1 and every time 0.5)."""
        ptr = self._ptr
        arr, n = int32_array(z, "z")
        flags = flag_array(fixed, n, "fixed") if fixed is not None else None
        b_in, b_um, times = (c_float * n)(), (c_float * n)(), (c_float * n)()
        check(lib.lflex_model_order(ptr, arr, flags, n, b_in, b_um, times))
        return b_in[:], b_um[:], times[:]

    def unmask_log_weights(self, z: Sequence[int], fixed: Optional[Sequence[Any]] = None) -> list[float]:
        """The learned unmasking order of a clean sequence
        (``loss.unmask_order: learned``): every token's log-weight in the
        race that decides which present tokens are clean first (``-inf`` for
        fixed tokens). Raises :class:`~lflex.InvalidArgument` for a model
        without one."""
        ptr = self._ptr
        arr, n = int32_array(z, "z")
        flags = flag_array(fixed, n, "fixed") if fixed is not None else None
        w = (c_float * n)()
        check(lib.lflex_model_unmask_log_weights(ptr, arr, flags, n, w))
        return w[:]
