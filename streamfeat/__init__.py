"""streamfeat: on-device behaviour processing.

Layering (lowest first; a layer imports only from layers above it in this list):
  errors, clock            no dependencies
  _event, _tokens          the event model
  triggers, windows, features, encoders, tunnel protocol   the synchronous core, no I/O
  _engine                  per-device state, stages in order
  _store, _readers, tasks runtime, tunnel shell, agent, cli   the asyncio / SQLite / CLI shell

Only the event model, the clock, the errors and the engine are exported here; subsystems are
imported from their packages (``streamfeat.triggers``, ``streamfeat.encoders``, ...).
"""

from __future__ import annotations

from streamfeat._engine import Engine, Record, Stage
from streamfeat._event import Event, event_from_obj, event_to_obj
from streamfeat.clock import Clock, ManualClock, SystemClock
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
