"""Tasks: the tasks file, which composes the core subsystems' configs, and what a task sees.

Each section is parsed by the subsystem that owns it (``windows``, ``features``, ``triggers``,
``encoders.admission``); this package only composes them and imports downward. The runner
that calls task code lives in :mod:`streamfeat.runtime` (asyncio); its names are still
reachable here, loaded on first use, so that importing this package loads no asyncio.
"""

from __future__ import annotations

from typing import Any

from streamfeat.features import DEFAULT_IPV_ACTIONS, FeatureConfig
from streamfeat.tasks._context import TaskContext
from streamfeat.tasks._file import (
    EngineConfig,
    StoreConfig,
    TaskConfig,
    TasksConfig,
    UploadConfig,
    load_tasks,
    parse_tasks,
)
from streamfeat.tasks._resolve import resolve_run, resolve_tasks, tasks_folder
from streamfeat.triggers import TriggerConfig
from streamfeat.windows import WindowConfig

__all__ = [
    "DEFAULT_IPV_ACTIONS",
    "EngineConfig",
    "FeatureConfig",
    "StoreConfig",
    "TaskConfig",
    "TaskContext",
    "TasksConfig",
    "TriggerConfig",
    "UploadConfig",
    "WindowConfig",
    "load_tasks",
    "parse_tasks",
    "resolve_run",
    "resolve_tasks",
    "tasks_folder",
]

_RUNTIME = ("TaskFailure", "TaskRunner", "engine_reader")


def __getattr__(name: str) -> Any:
    # Moved to streamfeat.runtime; kept so old imports (documented ones among them) work.
    if name in _RUNTIME:
        import streamfeat.runtime._tasks

        return getattr(streamfeat.runtime._tasks, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
