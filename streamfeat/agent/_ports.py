"""The agent's collaborators, typed by what the agent uses of them.

The record sink's own ports (:class:`~streamfeat.agent._sink.RecordStore`,
:class:`~streamfeat.agent._sink.PayloadQueue`) sit beside it in ``_sink``.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from streamfeat.engine._engine import Record

__all__ = ["TaskDispatcher", "UploaderLike"]


class UploaderLike(Protocol):
    """What the agent needs of its uploader (:class:`streamfeat.upload.Uploader`)."""

    connected: asyncio.Event

    def enqueue(self, payload: bytes) -> None:
        """Add a payload durably and wake the sender."""
        ...

    async def run(self) -> None:
        """Upload until closed."""
        ...

    async def aclose(self) -> None:
        """Stop uploading."""
        ...

    async def wait_drained(self, seconds: float) -> bool:
        """Wait until the outbox is acknowledged."""
        ...


class TaskDispatcher(Protocol):
    """What the agent needs of its task runner (:class:`streamfeat.runtime._tasks.TaskRunner`)."""

    def dispatch_all(self, records: list[Record]) -> int:
        """Start the tasks of the ``trigger`` records; returns how many started."""
        ...

    async def drain(self) -> None:
        """Wait for the running tasks."""
        ...

    async def aclose(self) -> None:
        """Cancel the running tasks."""
        ...
