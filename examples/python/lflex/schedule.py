"""Insertion/unmasking schedules (linear or Kumaraswamy)."""
from __future__ import annotations

from ctypes import byref, c_double, c_void_p
from typing import Optional

from . import _capi
from ._capi import check, lib
from ._yaml import to_yaml


def _no_free(ptr: int) -> None:
    """A model's schedule belongs to the model."""


class Schedule:
    """A schedule family: ``Schedule("kumaraswamy", a=0.5)`` or
    ``Schedule("linear")`` (FlexMDM; it ignores a, b and c)."""

    def __init__(self, family: str = "kumaraswamy", a: float = 1.0, b_um: float = 1.0) -> None:
        text = to_yaml({"family": family, "a": float(a), "b_um": float(b_um)}).encode()
        out = c_void_p()
        check(lib.lflex_schedule_new(byref(out), text, len(text)))
        self._h = _capi.Handle(out.value, lib.lflex_schedule_free, "schedule")

    @classmethod
    def _borrow(cls, ptr: int, model: Optional[_capi.Handle]) -> "Schedule":
        self = cls.__new__(cls)
        self._h = _capi.Handle(ptr, _no_free, "schedule", parent=model)
        return self

    def eval(self, t: float, b: float = 1.0, c: float = 1.0) -> tuple[float, float, tuple[float, float, float]]:
        """At time t in [0, 1], for a token with insertion shape b and
        unmasking shape c: the CDF F(t; a, b), the insertion hazard
        b g_a(t), and (log P(dropped), log P(masked), log P(clean))."""
        cdf, hazard, logp = c_double(), c_double(), (c_double * 3)()
        check(lib.lflex_schedule_eval(self._h.get(), float(t), float(b), float(c), byref(cdf), byref(hazard), logp))
        return cdf.value, hazard.value, (logp[0], logp[1], logp[2])

    def close(self) -> None:
        """Release the schedule (idempotent)."""
        h = getattr(self, "_h", None)
        if h is not None:
            h.close()

    def __enter__(self) -> "Schedule":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
