"""Exceptions raised for liblflex status codes.

Every failed call raises a subclass of :class:`LflexError` chosen by the
status code the library returned; the message is the library's
``lflex_last_error()`` text, which names what was wrong and where. Classes
also derive from the closest built-in exception (``ValueError``,
``OSError``, ...) so that generic handlers catch them too.
"""
from __future__ import annotations

# Status codes of include/lflex/lflex.h (part of the ABI; they never change).
OK = 0
EINVAL = -1
ENOMEM = -2
EIO = -3
EFORMAT = -4
EVERSION = -5
ENUMERIC = -6
ECANCELED = -7
ESTATE = -8
ENOTIMPL = -9
EINTERNAL = -10


class LflexError(Exception):
    """A liblflex call failed. ``code`` is the LFLEX_E* status code and
    ``message`` the library's description of the failure."""

    code: int = 0

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class InvalidArgument(LflexError, ValueError):
    """LFLEX_EINVAL: an argument, a config value or input data is invalid."""

    code = EINVAL


class OutOfMemory(LflexError, MemoryError):
    """LFLEX_ENOMEM: the library could not allocate; the handle stays usable."""

    code = ENOMEM


class FileError(LflexError, OSError):
    """LFLEX_EIO: reading or writing a file failed."""

    code = EIO


class FormatError(LflexError):
    """LFLEX_EFORMAT: a file is truncated, corrupted or inconsistent."""

    code = EFORMAT


class VersionError(LflexError):
    """LFLEX_EVERSION: a file of an unsupported format version."""

    code = EVERSION


class NumericError(LflexError, ArithmeticError):
    """LFLEX_ENUMERIC: a non-finite loss, gradient or update; nothing was changed."""

    code = ENUMERIC


class Canceled(LflexError):
    """LFLEX_ECANCELED: a progress callback asked to stop."""

    code = ECANCELED


class StateError(LflexError, RuntimeError):
    """LFLEX_ESTATE: the call is not valid in the handle's state. Also raised
    by the binding for a model, sampler or schedule that was closed."""

    code = ESTATE


class NotAvailable(LflexError, NotImplementedError):
    """LFLEX_ENOTIMPL: the feature is not available in this build."""

    code = ENOTIMPL


class InternalError(LflexError, RuntimeError):
    """LFLEX_EINTERNAL: a bug in liblflex."""

    code = EINTERNAL


_BY_CODE = {cls.code: cls for cls in (InvalidArgument, OutOfMemory, FileError, FormatError, VersionError,
                                      NumericError, Canceled, StateError, NotAvailable, InternalError)}


def error_for(code: int, message: str) -> LflexError:
    """The exception for a status code (plain LflexError for a code this
    binding does not know, e.g. one added by a newer library)."""
    return _BY_CODE.get(code, LflexError)(message, code)
