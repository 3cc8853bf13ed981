"""Protobuf text format (what Triton's config.pbtxt is) written from plain Python data.

Configs are built as nested dicts and emitted here, so the content is data that tests can inspect
and the only formatting rules live in one place. Conventions follow Triton's own examples:
repeated messages as repeated blocks, repeated scalars in list syntax (`dims: [ -1, 2 ]`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeAlias

INDENT = "  "


class Ident(str):
    """An enum value (KIND_GPU, TYPE_FP32): written bare, never quoted."""

    __slots__ = ()


Scalar: TypeAlias = str | int | float | bool | Ident
Value: TypeAlias = "Scalar | Message | Sequence[Message] | Sequence[Scalar]"
Message: TypeAlias = Mapping[str, Value]


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def quote(text: str) -> str:
    """A double-quoted text-format string; other control characters become octal escapes."""
    out = "".join(_ESCAPES.get(c) or (f"\\{ord(c):03o}" if ord(c) < 0x20 or ord(c) == 0x7F else c) for c in text)
    return f'"{out}"'


def scalar(value: Scalar) -> str:
    if isinstance(value, Ident):
        return str(value)
    if isinstance(value, bool):  # before int: bool is an int subclass
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"text format cannot carry {value}")
        return repr(value)
    return quote(value)


def _block(name: str, message: Message, depth: int) -> list[str]:
    pad = INDENT * depth
    return [f"{pad}{name} {{", *_lines(message, depth + 1), f"{pad}}}"]


def _field(name: str, value: Value, depth: int) -> list[str]:
    pad = INDENT * depth
    if isinstance(value, Mapping):
        return _block(name, value, depth)
    if isinstance(value, str | int | float):  # Ident and bool are among these
        return [f"{pad}{name}: {scalar(value)}"]
    messages = [v for v in value if isinstance(v, Mapping)]
    scalars = [v for v in value if not isinstance(v, Mapping)]
    if messages and scalars:
        raise TypeError(f"field {name!r} mixes messages and scalars")
    if messages:  # a repeated message field: one block per element
        return [line for m in messages for line in _block(name, m, depth)]
    return [f"{pad}{name}: [ {', '.join(scalar(v) for v in scalars)} ]" if scalars else f"{pad}{name}: [ ]"]


def _lines(message: Message, depth: int) -> list[str]:
    return [line for name, value in message.items() for line in _field(name, value, depth)]


def render(message: Message) -> str:
    """The message as text format, one field per line, ending with a newline."""
    return "\n".join(_lines(message, 0)) + "\n"
