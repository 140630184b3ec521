"""What a task is called with: :class:`TaskContext` (pure; the runner is
:class:`streamfeat.runtime.TaskRunner`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from streamfeat._event import Event
from streamfeat._records import Record

__all__ = ["Reader", "TaskContext"]

#: ``reader(device) -> {"features": {...}, "windows": {...}}``: a device's engine view.
Reader = Callable[[str], Mapping[str, Any]]


class TaskContext:
    """What a task is called with.

    Attributes:
        task: the task's name.
        trigger: the trigger that fired.
        device: the device it fired on.
        events: the matched slice's events, in arrival order.
        first, last: the slice's first and last event index.
        ts: the last event's ts (the ``ts`` of emitted records).
    """

    __slots__ = ("_closed", "_emit", "_reader", "device", "events", "first", "last", "task",
                 "trigger", "ts")  # fmt: skip

    def __init__(self, task: str, record: Record, reader: Reader | None,
                 emit: Callable[[TaskContext, dict[str, Any]], None]) -> None:  # fmt: skip
        self.task = task
        self.trigger: str = record["trigger"]
        self.device: str = record["device"]
        self.events: tuple[Event, ...] = tuple(record.get("_events", ()))
        self.first: int = record["first"]
        self.last: int = record["last"]
        self.ts: int = record["last_ts"]
        self._reader = reader
        self._emit = emit
        self._closed = False

    def _view(self) -> Mapping[str, Any]:
        return self._reader(self.device) if self._reader is not None else {}

    def features(self) -> dict[str, Any]:
        """Return the device's latest built-in feature values (empty without a reader)."""
        return dict(self._view().get("features", {}))

    def windows(self) -> dict[str, Any]:
        """Return the device's open windows (empty without a reader)."""
        return dict(self._view().get("windows", {}))

    def emit(self, values: dict[str, Any]) -> None:
        """Emit ``{"kind": "task", "task", "device", "ts", "values"}``; safe from any thread.

        Raises:
            TypeError: if ``values`` is not a dict with string keys.
        """
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            msg = f"task {self.task!r}: emit() takes a dict with string keys, got {values!r}"
            raise TypeError(msg)
        self._emit(self, dict(values))
