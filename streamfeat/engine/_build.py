"""Build an :class:`~streamfeat.engine.Engine` from a validated tasks file.

Stages come in a fixed order: triggers, windows, features (a section absent from the file adds
no stage). The order is part of the output contract: within one event, trigger records come
before window records, which come before feature records. Each stage is built from its own
slice of the file.
"""

from __future__ import annotations

from streamfeat.engine._engine import Engine, Stage
from streamfeat.features import FeatureStage
from streamfeat.tasks import TasksConfig
from streamfeat.triggers import TriggerStage
from streamfeat.windows import WindowStage

__all__ = ["build_engine", "build_stages"]


def build_stages(config: TasksConfig, *, sizes: bool = False, views: bool = True) -> list[Stage]:
    """Return the stages a tasks file asks for, in processing order.

    Args:
        config: the validated tasks file.
        sizes: attach ``_raw_bytes`` to window and feature records (for size reports).
        views: keep what the stages' ``view`` shows tasks (the features' latest records);
            off for a replay that runs no tasks.
    """
    stages: list[Stage] = []
    if config.triggers:
        stages.append(TriggerStage(config.triggers, config.engine.limits))
    if config.windows:
        stages.append(WindowStage(config.windows, config.engine.lateness, sizes=sizes))
    if config.features:
        stages.append(
            FeatureStage(
                config.features,
                config.engine.partial_limit,
                sizes=sizes,
                partial_limit_events=config.engine.partial_limit_events,
                latest=views,
            )
        )
    return stages


def build_engine(
    config: TasksConfig,
    *,
    sizes: bool = False,
    sample_every: int = 64,
    idle: bool = False,
    views: bool = True,
) -> Engine:
    """Return an engine running the stages of ``config`` (see :func:`build_stages`).

    Args:
        config: the validated tasks file.
        sizes: attach ``_raw_bytes`` to window and feature records.
        sample_every: see :class:`~streamfeat.engine.Engine`.
        idle: apply ``[engine] idle`` (a replay: the log's own time, the highest ts seen
            less ``idle``, advances devices silent for ``idle`` before it); an agent leaves it
            off, its wall clock advances devices instead.
        views: see :func:`build_stages`.
    """
    idle_ms = config.engine.idle if idle else None
    return Engine(
        build_stages(config, sizes=sizes, views=views),
        sample_every=sample_every,
        idle_ms=idle_ms,
        idle_bound=idle_ms or 0,
    )
