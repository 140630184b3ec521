"""What a converter is, the reject it reports for a bad row, and the registry of converters.

A converter is pure: it turns the lines of a source log (bytes, newline included or not) into
SPEC event dicts and :class:`Reject` entries, one output per input line, in order. Opening
files, writing JSON and reporting are the shell's business (:mod:`streamfeat.gen.convert._file`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["CONVERTERS", "ConvertFn", "Converter", "Reject", "get_converter", "register"]


@dataclass(frozen=True, slots=True)
class Reject:
    """A source row that could not become an event: never dropped silently.

    Attributes:
        line: the 1-based line number in the source.
        raw: the row's bytes, without its line ending.
        reason: what was wrong, naming the column.
    """

    line: int
    raw: bytes
    reason: str


ConvertFn = Callable[[Iterable[bytes]], Iterator["dict[str, Any] | Reject"]]


@dataclass(frozen=True, slots=True)
class Converter:
    """A named source format.

    Attributes:
        name: the format name on the command line (``streamfeat convert NAME FILE``).
        description: one line for ``--help`` and the docs.
        convert: lines in, one event dict or :class:`Reject` out per line, in order.
    """

    name: str
    description: str
    convert: ConvertFn


#: Every known converter by name. Add one with :func:`register`.
CONVERTERS: dict[str, Converter] = {}


def register(converter: Converter) -> Converter:
    """Add ``converter`` to :data:`CONVERTERS` and return it.

    Raises:
        ValueError: a converter with that name is already registered.
    """
    if converter.name in CONVERTERS:
        msg = f"a converter named {converter.name!r} is already registered"
        raise ValueError(msg)
    CONVERTERS[converter.name] = converter
    return converter


def get_converter(name: str) -> Converter:
    """Return the converter registered as ``name``.

    Raises:
        KeyError: no converter has that name (the message lists the known ones).
    """
    try:
        return CONVERTERS[name]
    except KeyError:
        msg = f"no converter named {name!r}; known: {', '.join(sorted(CONVERTERS))}"
        raise KeyError(msg) from None
