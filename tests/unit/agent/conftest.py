"""Fixtures of the agent tests: an in-memory endpoint the agents reach without a socket."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._server import TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.testing import MemoryTransportPair
from streamfeat.tunnel import split_items
from streamfeat.tunnel._crypto import KeyPair

BASE = """
[engine]
lateness = "0s"

[triggers]
two_clicks = "click click"

[windows.all_1m]
assign = "tumbling 1m"
aggregate = { n = "count" }

[windows.clicks_1m]
assign = "tumbling 1m"
filter = ["click"]
aggregate = { n = "count", items = "distinct item" }

[features.ipv]
kind = "ipv"

[upload]
records = ["feature", "window", "trigger"]
encoding = "compact"
batch_max_age = "50ms"
"""


class MemoryEndpoint:
    """A TunnelServer in the test's loop; agents connect through memory transports."""

    def __init__(self, db: Path) -> None:
        self.key = KeyPair.generate(os.urandom)
        self.db = db
        self.registry = Registry(db)
        self.storage = SQLiteStorage(db)
        self.server = TunnelServer(key=self.key, registry=self.registry, storage=self.storage)
        self.tasks: list[asyncio.Task[None]] = []

    def device(self, name: str) -> KeyPair:
        kp = KeyPair.generate(os.urandom)
        self.registry.add(name, kp.public)
        return kp

    async def connect(self) -> Any:
        pair = MemoryTransportPair()
        self.tasks.append(asyncio.create_task(self.server.handle_transport(pair.b)))
        return pair.a

    def payloads(self, device: str) -> list[bytes]:
        return [item for _, _, p in self.storage.batches(device) for item in split_items(p)]

    async def aclose(self) -> None:
        await self.server.shutdown()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.aclose()


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[MemoryEndpoint]:
    ep = MemoryEndpoint(tmp_path / "endpoint.sqlite")
    yield ep
    await ep.aclose()
