"""Build an :class:`~streamfeat.Engine` from a validated tasks file.

Stages come in a fixed order: triggers, windows, features (a section absent from the file adds
no stage). The order is part of the output contract: within one event, trigger records come
before window records, which come before feature records.
"""

from __future__ import annotations

from streamfeat._engine import Engine, Stage
from streamfeat.tasks import TasksConfig

__all__ = ["build_engine", "build_stages"]


def build_stages(config: TasksConfig, *, sizes: bool = False) -> list[Stage]:
    """Return the stages a tasks file asks for, in processing order.

    Args:
        config: the validated tasks file.
        sizes: attach ``_raw_bytes`` to window and feature records (for size reports).
    """
    stages: list[Stage] = []
    if config.triggers:
        from streamfeat.triggers import TriggerStage

        stages.append(TriggerStage(config))
    if config.windows:
        from streamfeat.windows import WindowStage

        stages.append(WindowStage(config, sizes=sizes))
    if config.features:
        from streamfeat.features import FeatureStage

        stages.append(FeatureStage(config, sizes=sizes))
    return stages


def build_engine(config: TasksConfig, *, sizes: bool = False, sample_every: int = 64) -> Engine:
    """Return an engine running the stages of ``config`` (see :func:`build_stages`)."""
    return Engine(build_stages(config, sizes=sizes), sample_every=sample_every)
