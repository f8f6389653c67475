"""Python binding of liblflex (insertion-based sequence generation with
learnable order dynamics), standard library only.

The shared library is found through $LFLEX_LIBRARY (a full path), else,
for a copy installed by `meson install`, the library installed with it, else
the system's library search. Quick start::

    import lflex
    with lflex.Model({"model": {"d_model": 16, "n_heads": 2, "n_layers": 1, "max_len": 16},
                      "vocab": {"tokens": "a b c"}}) as m:
        m.train_step([m.encode("a b c <eos>")])
        with lflex.Sampler(m, steps=16, seed=1) as s:
            print(m.decode(s.generate()))
"""
from ._capi import BOS, EOS, FIRST_USER, MASK, PAD, lib as _lib
from ._yaml import to_yaml
from .errors import (Canceled, FileError, FormatError, InternalError, InvalidArgument, LflexError, NotAvailable,
                     NumericError, OutOfMemory, StateError, VersionError)
from .model import Model, TrainStats
from .sampler import Generation, Sampler
from .schedule import Schedule

__all__ = [
    "PAD", "MASK", "BOS", "EOS", "FIRST_USER",
    "Model", "TrainStats", "Sampler", "Generation", "Schedule", "to_yaml", "library_version",
    "LflexError", "InvalidArgument", "OutOfMemory", "FileError", "FormatError", "VersionError", "NumericError",
    "Canceled", "StateError", "NotAvailable", "InternalError",
]


def library_version() -> str:
    """The version of the liblflex actually loaded, e.g. "0.1.0"."""
    return _lib.lflex_version().decode()
