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

__all__ = [
    "DEFAULT_IPV_ACTIONS",
    "EngineConfig",
    "FeatureConfig",
    "StoreConfig",
    "TaskConfig",
    "TasksConfig",
    "UploadConfig",
    "WindowConfig",
    "load_tasks",
    "parse_tasks",
]
