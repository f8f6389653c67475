"""A tiny YAML emitter for configurations: nested mappings of scalars.

Only what liblflex's configuration reader needs: booleans, integers, reals
(always written with a decimal point, so YAML reads them as floats), and
strings (always double-quoted, so "1" or "yes" stay strings).
"""
from __future__ import annotations

import math
import numbers
import re
from typing import Any, Mapping

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*\Z")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\0": "\\0", "\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n",
            "\v": "\\v", "\f": "\\f", "\r": "\\r", "\x1b": "\\e", "\x85": "\\N", "\u2028": "\\L", "\u2029": "\\P"}


def quote(s: str) -> str:
    """A YAML double-quoted scalar for ``s``."""
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is None and (ord(ch) < 0x20 or ord(ch) == 0x7F):
            esc = f"\\x{ord(ch):02x}"
        out.append(esc if esc is not None else ch)
    return '"' + "".join(out) + '"'


def scalar(value: Any) -> str:
    """The YAML text of one scalar value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        x = float(value)
        if math.isnan(x):
            return ".nan"
        if math.isinf(x):
            return ".inf" if x > 0 else "-.inf"
        text = repr(x)  # shortest text that reads back as the same double
        if "." not in text:
            # YAML 1.1 needs the point: 1e-08 -> 1.0e-08 (repr always signs the exponent)
            text = text.replace("e", ".0e") if "e" in text else text + ".0"
        return text
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"cannot write a {type(value).__name__} as a YAML scalar (only bool, int, float, str)")


def _key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"configuration keys must be strings, not {type(key).__name__}")
    return key if _PLAIN_KEY.match(key) else quote(key)


def _emit(mapping: Mapping[str, Any], indent: int, lines: list[str]) -> None:
    pad = " " * indent
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            if not value:
                lines.append(f"{pad}{_key(key)}: {{}}")
            else:
                lines.append(f"{pad}{_key(key)}:")
                _emit(value, indent + 2, lines)
        else:
            lines.append(f"{pad}{_key(key)}: {scalar(value)}")


def to_yaml(mapping: Mapping[str, Any]) -> str:
    """YAML text for a (nested) mapping of scalars.

    >>> print(to_yaml({"model": {"d_model": 16}, "train.lr": 1e-3}), end="")
    model:
      d_model: 16
    train.lr: 0.001
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"a configuration must be a mapping, not {type(mapping).__name__}")
    lines: list[str] = []
    _emit(mapping, 0, lines)
    return "\n".join(lines) + "\n" if lines else ""
