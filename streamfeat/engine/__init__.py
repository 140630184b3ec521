"""The engine: per-device state, stages in order, built from a tasks file.

Layering: the core subsystems (``triggers``, ``windows``, ``features``, ``encoders``) each own
their config and their stage; ``streamfeat.tasks`` composes their configs into one file; this
package composes the stages into an :class:`Engine` (:func:`build_engine`) and derives the
record schemas of a file (:func:`schemas_for`). It is synchronous and free of I/O; the asyncio
shells that run it live in :mod:`streamfeat.runtime`.
"""

from __future__ import annotations

from streamfeat.engine._build import build_engine, build_stages
from streamfeat.engine._engine import Engine, Record, Stage
from streamfeat.engine._schemas import schemas_for

__all__ = ["Engine", "Record", "Stage", "build_engine", "build_stages", "schemas_for"]
