"""Loading liblflex, the C prototypes, and helpers shared by the modules
(internal: use the classes exported by the package)."""
from __future__ import annotations

import array
import ctypes
import ctypes.util
import operator
import os
import threading
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char, c_char_p, c_double, c_float, c_int, c_int32, c_int64,
                    c_size_t, c_uint8, c_uint32, c_uint64, c_void_p)
from typing import Any, Callable, Iterable, Optional, Sequence

from .errors import EINVAL, ESTATE, InvalidArgument, LflexError, StateError, error_for

#: The library major version this binding is written for (the soname).
ABI_MAJOR = 0

# Reserved token ids (LFLEX_TOKEN_*); user tokens start at FIRST_USER.
PAD = 0
MASK = 1
BOS = 2
EOS = 3
FIRST_USER = 4


class TrainStatsC(Structure):
    """struct lflex_train_stats."""

    _fields_ = [
        ("struct_size", c_size_t),
        ("loss", c_double),
        ("unmask_loss", c_double),
        ("insert_loss", c_double),
        ("reinforce", c_double),
        ("regulariser", c_double),
        ("grad_norm", c_double),
        ("lr", c_double),
        ("step", c_uint64),
        ("tokens", c_uint64),
    ]


#: int (*lflex_progress_fn)(void *user, uint64_t done, uint64_t total)
ProgressFn = CFUNCTYPE(c_int, c_void_p, c_uint64, c_uint64)
#: int (*lflex_reduce_fn)(void *user, float *grad, size_t n_grad, double *stats, size_t n_stats)
ReduceFn = CFUNCTYPE(c_int, c_void_p, POINTER(c_float), c_size_t, POINTER(c_double), c_size_t)

_handle_out = POINTER(c_void_p)
_i32p = POINTER(c_int32)
_u8p = POINTER(c_uint8)
_f32p = POINTER(c_float)
_f64p = POINTER(c_double)
_sizep = POINTER(c_size_t)

# name: (restype, argtypes). Handles are void pointers.
_PROTOTYPES: dict[str, tuple[Any, list[Any]]] = {
    "lflex_last_error": (c_char_p, []),
    "lflex_last_error_code": (c_int, []),
    "lflex_clear_error": (None, []),
    "lflex_strerror": (c_char_p, [c_int]),
    "lflex_version": (c_char_p, []),
    "lflex_version_number": (c_uint32, []),
    "lflex_model_new": (c_int, [_handle_out, c_char_p, c_size_t]),
    "lflex_model_new_from_file": (c_int, [_handle_out, c_char_p]),
    "lflex_model_free": (None, [c_void_p]),
    "lflex_model_save": (c_int, [c_void_p, c_char_p]),
    "lflex_model_load": (c_int, [_handle_out, c_char_p]),
    "lflex_model_config": (c_int, [c_void_p, POINTER(c_char), c_size_t, _sizep]),
    "lflex_model_get": (c_int, [c_void_p, c_int, POINTER(c_int64)]),
    "lflex_model_set_reduce": (c_int, [c_void_p, ReduceFn, c_void_p, c_size_t]),
    "lflex_model_set_threads": (c_int, [c_void_p, c_int]),
    "lflex_model_encode": (c_int, [c_void_p, c_char_p, c_size_t, _i32p, c_size_t, _sizep]),
    "lflex_model_decode": (c_int, [c_void_p, _i32p, c_size_t, POINTER(c_char), c_size_t, _sizep]),
    "lflex_model_train_step": (c_int, [c_void_p, _i32p, _u8p, _sizep, c_size_t, POINTER(TrainStatsC)]),
    "lflex_model_train_step_shard": (c_int, [c_void_p, _i32p, _u8p, _sizep, c_size_t, c_size_t, c_size_t,
                                             POINTER(TrainStatsC)]),
    "lflex_model_eval_loss": (c_int, [c_void_p, _i32p, _u8p, _sizep, c_size_t, c_uint64, POINTER(TrainStatsC)]),
    "lflex_schedule_new": (c_int, [_handle_out, c_char_p, c_size_t]),
    "lflex_schedule_free": (None, [c_void_p]),
    "lflex_model_schedule": (c_void_p, [c_void_p]),
    "lflex_schedule_eval": (c_int, [c_void_p, c_double, c_double, c_double, _f64p, _f64p, _f64p]),
    "lflex_model_rates": (c_int, [c_void_p, _i32p, c_size_t, c_double, _f32p, _f32p, _f32p]),
    "lflex_model_order": (c_int, [c_void_p, _i32p, _u8p, c_size_t, _f32p, _f32p, _f32p]),
    "lflex_model_unmask_log_weights": (c_int, [c_void_p, _i32p, _u8p, c_size_t, _f32p]),
    "lflex_sampler_new": (c_int, [_handle_out, c_void_p, c_char_p, c_size_t]),
    "lflex_sampler_free": (None, [c_void_p]),
    "lflex_sampler_set_seed": (c_int, [c_void_p, c_uint64]),
    "lflex_sampler_set_progress": (c_int, [c_void_p, ProgressFn, c_void_p]),
    "lflex_sampler_generate": (c_int, [c_void_p, _i32p, _u8p, c_size_t, _i32p, c_size_t, _sizep]),
    "lflex_sampler_generate_batch": (c_int, [c_void_p, _i32p, _u8p, _sizep, c_size_t, _i32p, c_size_t, _sizep,
                                             _f32p, _f32p]),
}


def _installed_library() -> list:
    """The library installed with this package by `meson install`
    (lflex/_installed.py, absent in the source tree): first at its place
    relative to the package, which holds in a staged or moved installation,
    then at its recorded absolute path."""
    try:
        from . import _installed
    except ImportError:
        return []
    site = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    relative = os.path.normpath(os.path.join(site, os.path.relpath(_installed.LIBRARY, _installed.PURELIB)))
    return [p for p in (relative, _installed.LIBRARY) if os.path.isfile(p)]


def _load() -> ctypes.CDLL:
    """Open liblflex: $LFLEX_LIBRARY (a full path; when set, nothing else is
    tried, so a test never picks up another copy), else the library installed
    with this package, else the system's search (ctypes.util.find_library),
    else the soname."""
    explicit = os.environ.get("LFLEX_LIBRARY")
    if explicit:
        try:
            return ctypes.CDLL(explicit)
        except OSError as e:
            raise OSError(f"cannot load liblflex from LFLEX_LIBRARY={explicit!r}: {e}") from None
    names = _installed_library()
    names += [n for n in (ctypes.util.find_library("lflex"), f"liblflex.so.{ABI_MAJOR}") if n]
    failures = []
    for name in dict.fromkeys(names):
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            failures.append(f"{name}: {e}")
    raise OSError("cannot find liblflex: set LFLEX_LIBRARY to the full path of liblflex.so "
                  "(e.g. build/lib/liblflex.so) or install the library (tried "
                  + "; ".join(failures) + ")")


def _declare(cdll: ctypes.CDLL) -> ctypes.CDLL:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(cdll, name)
        fn.restype = restype
        fn.argtypes = argtypes
    major = cdll.lflex_version_number() >> 16
    if major != ABI_MAJOR:
        raise OSError(f"liblflex {cdll.lflex_version().decode()} has ABI major version {major}; "
                      f"this binding is for {ABI_MAJOR}")
    return cdll


lib = _declare(_load())


def last_error(status: int) -> LflexError:
    """The exception for a failed call's status, with this thread's message."""
    message = lib.lflex_last_error().decode("utf-8", "replace")
    if not message:
        message = lib.lflex_strerror(status).decode()
    return error_for(status, message)


def check(status: int) -> None:
    """Raise the matching exception for a non-zero status."""
    if status != 0:
        raise last_error(status)


def invalid(message: str) -> InvalidArgument:
    """An InvalidArgument raised by the binding itself (before any C call)."""
    return InvalidArgument(message, EINVAL)


# ---- owned handles -----------------------------------------------------------

# Guards the borrow counts (samplers may be made and closed on several
# threads); reentrant because a collection can run a finalizer while it is held.
_handles_lock = threading.RLock()


class Handle:
    """Owns one C handle. A handle that borrows another (a sampler its model)
    names it as parent; the parent is freed only when it is closed and no
    borrowing handle is left, so the C objects are freed in a valid order
    whatever order Python closes or collects the wrappers in."""

    __slots__ = ("ptr", "what", "_free", "_parent", "_children", "_closed")
    _lock = _handles_lock  # a class attribute outlives module globals at interpreter exit

    def __init__(self, ptr: int, free: Callable[[int], None], what: str, parent: Optional["Handle"] = None):
        self.ptr = ptr
        self.what = what
        self._free = free
        self._parent = parent
        self._children = 0
        self._closed = False
        if parent is not None:
            with self._lock:
                parent._children += 1

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self) -> int:
        """The pointer, or StateError once the owner closed it."""
        if self._closed:
            raise StateError(f"the {self.what} is closed", ESTATE)
        return self.ptr

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._release()

    def _release(self) -> None:
        if self._closed and self._children == 0 and self.ptr:
            ptr, self.ptr = self.ptr, 0
            self._free(ptr)
            parent, self._parent = self._parent, None
            if parent is not None:
                parent._children -= 1
                parent._release()

    def __del__(self) -> None:
        self.close()


# ---- arrays ------------------------------------------------------------------

_I32_CODE = next(c for c in "ilh" if array.array(c).itemsize == 4)


def int32_array(values: Iterable[int], what: str = "ids") -> tuple[Any, int]:
    """A C int32 array of ``values`` and its length. Ids outside the int32
    range are refused rather than wrapped around to another valid id."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{what} must be a sequence of integers, not {type(values).__name__}")
    try:
        arr = array.array(_I32_CODE, values)
    except OverflowError:
        raise invalid(f"{what}: a value is outside the int32 range") from None
    except TypeError as e:
        raise TypeError(f"{what} must be a sequence of integers ({e})") from None
    return (c_int32 * len(arr)).from_buffer(arr), len(arr)


def flag_array(values: Iterable[Any], n: int, what: str) -> Any:
    """A C uint8 array of n truth values (1 for a true value)."""
    flags = bytes(1 if v else 0 for v in values)
    if len(flags) != n:
        raise invalid(f"{what} has {len(flags)} entries for {n} tokens")
    return (c_uint8 * n).from_buffer_copy(flags)


def size_array(values: Sequence[int]) -> Any:
    return (c_size_t * len(values))(*values)


def uint64(value: int, what: str) -> int:
    """A value for a uint64_t parameter, refusing what ctypes would wrap."""
    v = operator.index(value)
    if not 0 <= v < 1 << 64:
        raise invalid(f"{what} = {v} is outside [0, 2^64)")
    return v


def path_bytes(path: "str | os.PathLike[str]") -> bytes:
    return os.fsencode(os.fspath(path))


def yaml_bytes(config: Any, to_yaml: Callable[[Any], str]) -> bytes:
    """Configuration text: YAML as str/bytes, or a mapping written by the emitter."""
    if isinstance(config, bytes):
        return config
    if isinstance(config, str):
        return config.encode("utf-8")
    return to_yaml(config).encode("utf-8")
