"""The cloud endpoint: tunnel server, batch storage, device registry, metrics and CLI.

An aiohttp shell over the sans-IO :mod:`streamfeat.tunnel` core, reusing the device side's
:class:`~streamfeat.upload.Transport` and websocket adapter. Layers, bottom up: ``_storage``
(SQLite batches and device configs), ``_registry`` (devices and key files), ``_postgres``
(the same on PostgreSQL, shared by several processes; ``_backend`` opens either from a
``--db`` value), ``_metrics`` (Prometheus), ``_records`` (reading stored records back),
``_admin`` (who may see the operator routes), ``_dashboard`` (``/dashboard``), ``_server``
(:class:`TunnelServer`), ``_workers`` (N processes on one port), ``_cli`` (``serve``,
``keys``, ``device``) and ``_records_cli`` (``records``).
"""

from __future__ import annotations

from streamfeat.endpoint._limits import Limits
from streamfeat.endpoint._metrics import TunnelMetrics
from streamfeat.endpoint._postgres import PostgresRegistry, PostgresReplayCache, PostgresStorage
from streamfeat.endpoint._records import RecordQuery, iter_records, records_table
from streamfeat.endpoint._registry import DeviceEntry, Registry
from streamfeat.endpoint._server import Decoder, ReplayCache, TunnelServer
from streamfeat.endpoint._storage import SQLiteStorage, Storage, StoredBatch

__all__ = [
    "Decoder",
    "DeviceEntry",
    "Limits",
    "PostgresRegistry",
    "PostgresReplayCache",
    "PostgresStorage",
    "RecordQuery",
    "Registry",
    "ReplayCache",
    "SQLiteStorage",
    "Storage",
    "StoredBatch",
    "TunnelMetrics",
    "TunnelServer",
    "iter_records",
    "records_table",
]
