"""The behaviour generator and the log converters.

* :func:`generate_events` writes a synthetic, deterministic log of app use (the model of one
  user's sessions is in ``_model.py``); ``streamfeat generate`` is its command.
* :mod:`streamfeat.gen.convert` brings other logs (the Taobao UserBehavior CSV) to SPEC
  events; ``streamfeat convert`` is its command.

Both commands live in ``_cli.py``.
"""

from __future__ import annotations

from streamfeat.gen._generator import (
    DEFAULT_DISORDER,
    DEFAULT_START_TS,
    device_id,
    device_stream,
    generate_batches,
    generate_events,
)

__all__ = [
    "DEFAULT_DISORDER",
    "DEFAULT_START_TS",
    "device_id",
    "device_stream",
    "generate_batches",
    "generate_events",
]
