"""Generation: samplers, templates, progress callbacks."""
from __future__ import annotations

import operator
from ctypes import byref, c_float, c_int32, c_size_t, c_void_p
from itertools import chain
from typing import Any, Callable, NamedTuple, Optional, Sequence, Union

from . import _capi
from ._capi import EOS, check, flag_array, int32_array, invalid, lib, size_array
from ._yaml import to_yaml
from .model import Model

#: A template: token ids ending with EOS, or text that the model encodes.
Template = Union[Sequence[int], str, None]
Progress = Callable[[int, int], Any]


class Generation(NamedTuple):
    """One generated sequence with the time each token was inserted and
    unmasked (template tokens: 0 and 0)."""

    tokens: list[int]
    insert_time: list[float]
    unmask_time: list[float]


class _ProgressThunk:
    """Calls the user's progress function from C. Any exception it raises is
    kept (and stops the generation) so that the sampler can raise it after
    the C call returns: exceptions cannot cross the C frames. It holds no
    reference to the sampler, so the sampler is freed by reference counting."""

    def __init__(self, fn: Progress) -> None:
        self.fn = fn
        self.error: Optional[BaseException] = None
        self.c_fn = _capi.ProgressFn(self)

    def __call__(self, user: Optional[int], done: int, total: int) -> int:
        try:
            return 1 if self.fn(done, total) else 0
        except BaseException as e:  # KeyboardInterrupt too: it stops generation
            self.error = e
            return 1


class Sampler:
    """Generates sequences from a model.

    Options are those of doc/config.md (sampler section); ``max_len`` 0 means
    the model's. ``progress(done, total)`` is called after every step of
    every batch; a true return value stops the generation with
    :class:`~lflex.Canceled`, and an exception it raises is raised by the
    generating call. The sampler keeps its model alive until it is closed.
    """

    def __init__(self, model: Model, steps: int = 64, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, confidence: str = "none", max_len: int = 0, seed: int = 0,
                 use_ema: bool = True, batch_size: int = 32, threads: int = 0, *,
                 insertion: str = "auto", candidates: int = 1, candidate_score: str = "sum",
                 candidate_span: int = 1, revise: int = 0,
                 grid: str = "uniform", progress: Optional[Progress] = None) -> None:
        if not isinstance(model, Model):
            raise TypeError(f"model must be an lflex.Model, not {type(model).__name__}")
        options = {
            "steps": operator.index(steps),
            "temperature": float(temperature),
            "top_k": operator.index(top_k),
            "top_p": float(top_p),
            "confidence": str(confidence),
            "insertion": str(insertion),
            "max_len": operator.index(max_len),
            "seed": operator.index(seed),
            "use_ema": bool(use_ema),
            "batch_size": operator.index(batch_size),
            "threads": operator.index(threads),
            "candidates": operator.index(candidates),
            "candidate_score": str(candidate_score),
            "candidate_span": operator.index(candidate_span),
            "revise": operator.index(revise),
            "grid": str(grid),
        }
        text = to_yaml(options).encode()
        out = c_void_p()
        check(lib.lflex_sampler_new(byref(out), model._ptr, text, len(text)))
        self._h = _capi.Handle(out.value, lib.lflex_sampler_free, "sampler", parent=model._h)
        self.model = model
        #: longest output in tokens
        self.max_len: int = options["max_len"] or model.max_len
        self._thunk: Optional[_ProgressThunk] = None
        if progress is not None:
            self.set_progress(progress)

    # ---- lifetime ----------------------------------------------------------------

    def close(self) -> None:
        """Release the sampler (idempotent); a model closed meanwhile is
        freed now if this was its last sampler."""
        h = getattr(self, "_h", None)
        if h is not None:
            h.close()

    @property
    def closed(self) -> bool:
        return self._h.closed

    def __enter__(self) -> "Sampler":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- settings ------------------------------------------------------------------

    def set_seed(self, seed: int) -> None:
        """Restart the random numbers: the next sequences are those of a new
        sampler created with this seed."""
        check(lib.lflex_sampler_set_seed(self._h.get(), _capi.uint64(seed, "seed")))

    @property
    def progress(self) -> Optional[Progress]:
        return self._thunk.fn if self._thunk else None

    @progress.setter
    def progress(self, fn: Optional[Progress]) -> None:
        self.set_progress(fn)

    def set_progress(self, fn: Optional[Progress]) -> None:
        """Set (or with None remove) the progress callback ``fn(done, total)
        -> stop``."""
        if fn is not None and not callable(fn):
            raise TypeError("progress must be callable or None")
        thunk = _ProgressThunk(fn) if fn is not None else None
        check(lib.lflex_sampler_set_progress(self._h.get(), thunk.c_fn if thunk else _capi.ProgressFn(), None))
        self._thunk = thunk  # keeps the C function pointer alive while the library holds it

    # ---- generation ------------------------------------------------------------------

    def _template(self, template: Template) -> list[int]:
        if template is None:
            return [EOS]
        if isinstance(template, str):
            return self.model.encode(template)
        return list(template)

    def _call(self, fn: Callable[..., int], *args: Any) -> None:
        thunk = self._thunk
        if thunk is not None:
            thunk.error = None
        status = fn(*args)
        if thunk is not None and thunk.error is not None:
            error, thunk.error = thunk.error, None
            raise error
        check(status)

    def generate(self, template: Template = None, open_gap: Optional[Sequence[Any]] = None) -> list[int]:
        """One sequence (EOS included) from a template: token ids ending with
        EOS, or text such as ``"a b <eos>"``; None is ``[EOS]``
        (unconditional). ``open_gap[i]`` true lets tokens be inserted left of
        token i; None opens only the gap left of the final EOS."""
        ptr = self._h.get()
        arr, n = int32_array(self._template(template), "template")
        gaps = flag_array(open_gap, n, "open_gap") if open_gap is not None else None
        cap = self.max_len
        out, n_out = (c_int32 * cap)(), c_size_t()
        self._call(lib.lflex_sampler_generate, ptr, arr, gaps, n, out, cap, byref(n_out))
        return out[:n_out.value]

    def generate_batch(self, templates: Sequence[Template],
                       open_gaps: Optional[Sequence[Optional[Sequence[Any]]]] = None,
                       times: bool = False) -> Union[list[list[int]], list[Generation]]:
        """Many sequences, ``batch_size`` per network pass; the same as
        generating the templates one by one. ``open_gaps`` holds one flag list
        per template (or None for that template's default). With
        ``times=True`` each result is a :class:`Generation` with the insertion
        and unmasking time of every token."""
        ptr = self._h.get()
        tmpls = [self._template(t) for t in templates]
        if not tmpls:
            return []
        offsets = [0]
        for t in tmpls:
            offsets.append(offsets[-1] + len(t))
        arr, _ = int32_array(chain.from_iterable(tmpls), "templates")
        gaps = None
        if open_gaps is not None:
            if len(open_gaps) != len(tmpls):
                raise invalid(f"open_gaps has {len(open_gaps)} entries for {len(tmpls)} templates")
            flags: list[Any] = []
            for j, (t, g) in enumerate(zip(tmpls, open_gaps)):
                if g is None:
                    g = [False] * (len(t) - 1) + [True] if t else []
                elif len(g) != len(t):
                    raise invalid(f"open_gaps[{j}] has {len(g)} flags for a template of {len(t)} tokens")
                flags.extend(g)
            gaps = flag_array(flags, offsets[-1], "open_gaps")
        n_tmpl = len(tmpls)
        cap = n_tmpl * self.max_len
        out = (c_int32 * cap)()
        out_off = (c_size_t * (n_tmpl + 1))()
        t_ins = (c_float * cap)() if times else None
        t_um = (c_float * cap)() if times else None
        self._call(lib.lflex_sampler_generate_batch, ptr, arr, gaps, size_array(offsets), n_tmpl, out, cap,
                   out_off, t_ins, t_um)
        spans = [(out_off[j], out_off[j + 1]) for j in range(n_tmpl)]
        if not times:
            return [out[b:e] for b, e in spans]
        return [Generation(out[b:e], t_ins[b:e], t_um[b:e]) for b, e in spans]
