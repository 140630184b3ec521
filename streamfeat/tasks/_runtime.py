"""Moved to streamfeat.runtime; kept so old imports work."""

from __future__ import annotations

from streamfeat.runtime._tasks import (
    TaskContext,
    TaskFailure,
    TaskRunner,
    engine_reader,
    load_callable,
)

__all__ = ["TaskContext", "TaskFailure", "TaskRunner", "engine_reader", "load_callable"]
