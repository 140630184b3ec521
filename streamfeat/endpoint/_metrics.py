"""The endpoint's Prometheus metrics, on a registry of its own (one per server)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from streamfeat.tunnel._events import CloseCode

__all__ = ["CONTENT_TYPE_LATEST", "Tally", "TunnelMetrics"]

# codes that end a connection without anybody misbehaving: not refusals
NOT_REFUSALS = frozenset({CloseCode.NORMAL, CloseCode.GOING_AWAY, CloseCode.ABNORMAL})


class Tally:
    """A metric's value that only the event loop's thread changes: a plain float, no lock.

    prometheus_client guards each value with a mutex (an acquire per update, behind two calls).
    The values every batch changes (bytes, stored, duplicates, the ack histogram) are changed
    in the loop only, so they hold a ``Tally``: the hot path adds to ``value``, and the
    exposition, the dashboard and ``inc`` read and change it as before.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float) -> None:
        self.value += amount

    def set(self, value: float, timestamp: float | None = None) -> None:
        self.value = value

    def get(self) -> float:
        return self.value

    def set_exemplar(self, exemplar: object) -> None:
        pass  # no exemplars on these

    def get_exemplar(self) -> None:
        return None


def _tally(metric: Any) -> Tally:
    """Give a metric without labels (or one labelled child) a :class:`Tally` as its value."""
    t = Tally()
    metric._value = t
    return t


class TunnelMetrics:
    """Counters of one endpoint: connections, batches, bytes, refusals by reason, store latency."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge(
            "streamfeat_tunnel_connections", "open websocket connections", registry=r
        )
        self.handshakes = Counter(
            "streamfeat_tunnel_handshakes", "completed handshakes", registry=r
        )
        self.batches = Counter(
            "streamfeat_tunnel_batches", "batches received, by result", ["result"], registry=r
        )
        self.bytes = Counter(
            "streamfeat_tunnel_payload_bytes", "batch payload bytes received", registry=r
        )
        self.refusals = Counter(
            "streamfeat_tunnel_refusals",
            "connections refused or closed for a reason",
            ["reason"],
            registry=r,
        )
        self.configs = Counter(
            "streamfeat_tunnel_configs_sent", "config messages sent to devices", registry=r
        )
        self.decode_errors = Counter(
            "streamfeat_tunnel_decode_errors",
            "batches stored without records: decoder failed",
            registry=r,
        )
        self.devices_online = Gauge(
            "streamfeat_tunnel_devices_online",
            "devices with at least one authenticated connection",
            registry=r,
        )
        self.device_config_version = Gauge(
            "streamfeat_tunnel_device_config_version",
            "online devices by the tasks-file version they announced when they connected",
            ["version"],
            registry=r,
        )
        self.records = Counter(
            "streamfeat_tunnel_records", "decoded records stored, by kind", ["kind"], registry=r
        )
        self.ack_seconds = Histogram(
            "streamfeat_tunnel_ack_seconds",
            "upload latency at the endpoint: a batch's arrival to its acknowledgement",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=r,
        )
        self.storage_bytes = Gauge(
            "streamfeat_endpoint_storage_bytes",
            "the storage's size on disk, read at scrape time",
            registry=r,
        )
        self.admin_refusals = Counter(
            "streamfeat_endpoint_admin_refusals",
            "requests to operator routes refused (401 without the admin token, 403 not loopback)",
            ["reason"],
            registry=r,
        )
        for reason in ("unauthorized", "forbidden"):
            self.admin_refusals.labels(reason)
        self.storage_failures = Counter(
            "streamfeat_tunnel_storage_failures",
            "storage commits that failed (disk full, ...): nothing stored, nothing acknowledged",
            registry=r,
        )
        self.accept_errors = Counter(
            "streamfeat_tunnel_accept_errors",
            "connections the operating system could not accept (no file descriptor left)",
            registry=r,
        )
        self.store_seconds = Histogram(
            "streamfeat_tunnel_store_seconds",
            "time of one storage commit (group of batches)",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        # label children looked up once: labels() takes a lock and a dict lookup per call
        self.stored = self.batches.labels("stored")
        self.duplicates = self.batches.labels("duplicate")
        # what every batch changes, without a lock (changed in the event loop's thread only)
        self.bytes_tally = _tally(self.bytes)
        self.stored_tally = _tally(self.stored)
        self.duplicates_tally = _tally(self.duplicates)
        h: Any = self.ack_seconds
        self._ack_bounds = tuple(h._upper_bounds)
        self._ack_sum = h._sum = Tally()
        self._ack_buckets = h._buckets = [Tally() for _ in self._ack_bounds]
        for code in CloseCode:
            if code not in NOT_REFUSALS:
                self.refusals.labels(code.reason)
        # refusals of the admission guard and of aiohttp, which have no tunnel close code
        for reason in ("handshake_timeout", "too_many_unauthenticated", "message_too_large"):
            self.refusals.labels(reason)

    def observe_ack(self, seconds: float) -> None:
        """``ack_seconds.observe(seconds)`` without its locks (event loop thread only)."""
        self._ack_sum.value += seconds
        for i, bound in enumerate(self._ack_bounds):
            if seconds <= bound:
                self._ack_buckets[i].value += 1
                return

    def count_records(self, records: list[dict[str, Any]] | None) -> None:
        """Count the decoded records of one newly stored batch by kind."""
        if not records:
            return
        kinds: dict[str, int] = {}
        for rec in records:
            k = rec.get("kind")
            key = k if isinstance(k, str) else "unknown"
            kinds[key] = kinds.get(key, 0) + 1
        for k, n in kinds.items():
            self.records.labels(k).inc(n)

    def refused(self, reason: str) -> None:
        """Count one refusal under ``reason``."""
        self.refusals.labels(reason).inc()

    def refusal_count(self, reason: str) -> float:
        """Current count for ``reason`` (tests, health pages)."""
        value = self.registry.get_sample_value(
            "streamfeat_tunnel_refusals_total", {"reason": reason}
        )
        return float(value or 0.0)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
