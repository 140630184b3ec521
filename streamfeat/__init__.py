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

__version__ = "0.1.0"
