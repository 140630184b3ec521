"""Moved to streamfeat.gen.convert; kept so old imports work."""

from __future__ import annotations

from streamfeat.gen.convert import (
    CONVERTERS,
    Converter,
    ConvertFn,
    ConvertSummary,
    Reject,
    convert_file,
    get_converter,
    open_source,
    register,
)

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
