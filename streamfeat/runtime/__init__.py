"""The asyncio shells the apps share: :class:`AsyncEngine` feeds an engine from a queue on
the loop; :class:`TaskRunner` runs a tasks file's code when its triggers fire.

Nothing in the synchronous core imports this package.
"""

from __future__ import annotations

from streamfeat.runtime._engine import AsyncEngine, Sink
from streamfeat.runtime._tasks import TaskFailure, TaskRunner, engine_reader, load_callable

__all__ = ["AsyncEngine", "Sink", "TaskFailure", "TaskRunner", "engine_reader", "load_callable"]
