"""Tasks: the tasks file and the code run when triggers fire."""

from __future__ import annotations

from streamfeat.tasks._file import (
    DEFAULT_IPV_ACTIONS,
    EngineConfig,
    FeatureConfig,
    StoreConfig,
    TaskConfig,
    TasksConfig,
    UploadConfig,
    WindowConfig,
    load_tasks,
    parse_tasks,
)
from streamfeat.tasks._runtime import TaskContext, TaskFailure, TaskRunner, engine_reader

__all__ = [
    "DEFAULT_IPV_ACTIONS",
    "EngineConfig",
    "FeatureConfig",
    "StoreConfig",
    "TaskConfig",
    "TaskContext",
    "TaskFailure",
    "TaskRunner",
    "TasksConfig",
    "UploadConfig",
    "WindowConfig",
    "engine_reader",
    "load_tasks",
    "parse_tasks",
]
