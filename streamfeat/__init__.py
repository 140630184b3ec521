"""streamfeat: on-device behaviour processing.

Layering (lowest first; a layer imports only from layers above it in this list):
  errors, clock            no dependencies
  _event, _tokens, _records, _durations, _tables   the event model and small ground helpers
  triggers, windows, features, encoders, tunnel protocol   the synchronous core, no I/O;
                           each owns its config dataclass and its parser
  tasks                    the tasks file: composes the core's configs
  engine                   Engine, stages built from a tasks file, schemas from a tasks file
  runtime                  asyncio shells: AsyncEngine, TaskRunner
  io, upload, endpoint, agent, apps, cli   the asyncio / SQLite / CLI shell

Only the event model, the clock, the errors and the engine are exported here; subsystems are
imported from their packages (``streamfeat.triggers``, ``streamfeat.encoders``, ...).
"""

from __future__ import annotations

# first: chooses the compiled core or the pure modules before any core module loads
import streamfeat._compiled  # noqa: F401
from streamfeat._event import Event, event_from_obj, event_to_obj
from streamfeat.clock import Clock, ManualClock, SystemClock
from streamfeat.engine import Engine, Record, Stage
from streamfeat.errors import (
    ConfigError,
    EventError,
    StorageError,
    StreamfeatError,
)

__all__ = [
    "Clock",
    "ConfigError",
    "Engine",
    "Event",
    "EventError",
    "ManualClock",
    "Record",
    "Stage",
    "StorageError",
    "StreamfeatError",
    "SystemClock",
    "event_from_obj",
    "event_to_obj",
]


def __getattr__(name: str) -> str:
    # ``__version__`` is read from the installed metadata (written once, in pyproject.toml), on
    # first use: importlib.metadata loads ``email`` and ``socket``, which ``import streamfeat``
    # must not
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("streamfeat")
        except PackageNotFoundError:  # a source tree that was never installed
            return "0+unknown"
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
