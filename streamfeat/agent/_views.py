"""What the app reads of a device's state: its latest features and open windows.

Synchronous and loop-free: views over the running engine's per-device state (each stage's
``view``) and the latest feature records the sink keeps (they outlive the engine freeing an idle
device).
"""

from __future__ import annotations

from typing import Any

from streamfeat.agent._sink import RecordSink
from streamfeat.engine._engine import Engine

__all__ = ["feature_view", "stage_view", "window_view"]


def stage_view(engine: Engine, stage: str, device: str, now_ms: int) -> dict[str, Any]:
    """The view of ``stage``'s state for ``device`` ({} if none)."""
    try:
        state = engine.state_of(device, stage)
        view = engine.stage(stage).view  # type: ignore[attr-defined]
    except KeyError:
        return {}
    return {} if state is None else dict(view(state, now_ms))


def feature_view(engine: Engine, sink: RecordSink, device: str, now_ms: int) -> dict[str, Any]:
    """``{NAME: {"ts", "since_ms", "records": [values, ...], ...open state}}`` of ``device``."""
    out: dict[str, Any] = {}
    for name, ts, vals in sink.latest_of(device):
        out[name] = {"ts": ts, "since_ms": now_ms - ts, "records": vals}
    for name, entry in stage_view(engine, "features", device, now_ms).get("features", {}).items():
        if entry.get("ts") is None and name in out:
            entry = {**entry, **out[name]}
        out[name] = entry
    return out


def window_view(engine: Engine, device: str, now_ms: int) -> dict[str, Any]:
    """``{NAME: {"watermark", "open": [...]}}`` of ``device``'s open windows."""
    return dict(stage_view(engine, "windows", device, now_ms).get("windows", {}))
