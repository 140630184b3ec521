"""Converters: bring other logs to SPEC section 1 events.

``streamfeat convert NAME FILE`` looks ``NAME`` up in :data:`CONVERTERS`. A new format is a
module with a pure ``convert(lines) -> Iterator[event dict | Reject]`` and one
``register(Converter(name, description, convert))`` call below.
"""

from __future__ import annotations

from streamfeat.gen.convert._core import (
    CONVERTERS,
    Converter,
    ConvertFn,
    Reject,
    get_converter,
    register,
)
from streamfeat.gen.convert._file import ConvertSummary, convert_file, open_source
from streamfeat.gen.convert.taobao import TAOBAO

__all__ = [
    "CONVERTERS",
    "ConvertFn",
    "ConvertSummary",
    "Converter",
    "Reject",
    "convert_file",
    "get_converter",
    "open_source",
    "register",
]

register(TAOBAO)
