"""What the fleet simulator is asked to do (:class:`SimOptions`) and what it found (:class:`SimReport`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamfeat.gen._generator import DEFAULT_START_TS

__all__ = ["Progress", "SimOptions", "SimReport", "fleet_key"]


def fleet_key(name: str) -> str:
    """Who a simulated device's user is, for the random draws: its fleet id (``dev000003``).

    Against an external endpoint (``--server``) the simulator names its devices
    ``sim<pid>-<time>-dev000003`` so that two runs never share a device in one database; the
    user behind the device is still drawn from the fleet id and the seed, so the same ``--seed``
    gives the same behaviour whatever the names.
    """
    return name.rsplit("-", 1)[-1]


@dataclass(frozen=True)
class SimOptions:
    """What to simulate.

    Attributes:
        devices: how many devices.
        minutes: simulated minutes of app use per device.
        speed: event time runs this many times faster than real time (0: as fast as possible).
        tasks_text: the tasks file every device starts with.
        server: an endpoint URL to use instead of starting one (needs ``server_db``).
        server_db: that endpoint's database, where the devices are registered and the audit reads:
            an SQLite path or a ``postgresql://`` URL.
        server_key: that endpoint's key file (default: ``endpoint.key`` beside an SQLite
            ``server_db``; needed with a URL).
        server_pids: that endpoint's pid file (``serve --workers N --pid-file``): with ``chaos``,
            one of its worker processes is killed (SIGKILL) now and then while the others serve.
        processes: fleet processes (0: one per core).
        chaos: cut connections, kill and restart the endpoint and (``kill_agents``) fleet
            processes at random.
        kill_agents: with ``chaos``, also SIGKILL fleet processes (all their agents) and
            restart them on their stores.
        seed: seeds the behaviour generator and the chaos.
        reconfigure: ``(simulated minute, tasks text)`` pushed to every device in turn.
        workdir: keep stores, keys and the endpoint database here (default: a temporary dir).
        tick: seconds between the agents' idle-window advances.
        drain_timeout: seconds the agents wait at the end for their uploads to be acknowledged.
        release: a staged release during the run (``streamfeat.sim._release.ReleasePlan``).
        ranking: a served feed with users who respond to the order they see, and the ranking
            mode (``server``, ``heuristic``, ``model:FILE``, ``oracle``; docs/loop.md); empty:
            the behaviour generator's feed.
        rerank_policy: when the served feed's re-rank task fires: ``edgerec`` (a click, a
            delete, 5 exposures without a click), ``swipe`` (a click, a delete, every
            exposure) or ``kuaishou`` (every exposure).
    """

    devices: int = 100
    minutes: float = 5.0
    speed: float = 10.0
    tasks_text: str = ""
    server: str | None = None
    server_db: Path | str | None = None
    server_key: Path | None = None
    server_pids: Path | None = None
    processes: int = 0
    chaos: bool = False
    kill_agents: bool = True
    seed: int = 1
    reconfigure: tuple[tuple[float, str], ...] = ()
    workdir: Path | None = None
    tick: float = 1.0
    drain_timeout: float = 60.0
    start_ts: int = DEFAULT_START_TS
    release: Any = None  # a ReleasePlan (docs/release.md)
    ranking: str = ""
    rerank_policy: str = "edgerec"


@dataclass
class SimReport:
    """What a simulation did and what the audit found (see :meth:`as_dict`)."""

    devices: int = 0
    processes: int = 0
    minutes: float = 0.0
    speed: float = 0.0
    wall_s: float = 0.0
    feed_wall_s: float = 0.0
    setup_s: float = 0.0
    close_s: float = 0.0
    events: int = 0
    quarantined: int = 0
    records: dict[str, int] = field(default_factory=dict)
    tasks_run: int = 0
    payloads: int = 0
    batches_stored: int = 0
    raw_bytes: int = 0
    json_bytes: int = 0
    payload_bytes: int = 0
    stored_bytes: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    steady_latency_ms: dict[str, float] = field(default_factory=dict)
    age_ms: dict[str, float] = field(default_factory=dict)
    queued: int = 0
    stored: int = 0
    lost: int = 0
    doubled: int = 0
    undecodable: int = 0
    acked_not_stored: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    waiting: int = 0
    encode_errors: int = 0
    endpoint_restarts: int = 0
    agent_kills: int = 0  # fleet processes (all their agents) killed with SIGKILL and restarted
    connections_cut: int = 0
    reconnects: int = 0
    configs_pushed: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    feed_late_ms: float = 0.0
    reranks: dict[str, int] = field(default_factory=dict)  # re-rank counters, summed
    rerank_ms: dict[str, float] = field(default_factory=dict)  # latency quantiles of applied ones
    cpu_s: float = 0.0
    endpoint_cpu_s: float = 0.0  # the endpoint process's CPU (summed over restarts; Linux)
    feed_cpu_s: float = 0.0
    max_rss_kb: int = 0
    workdir: str = ""
    release: dict[str, Any] = field(default_factory=dict)  # --release: coverage and outcome
    ranking: dict[str, Any] = field(default_factory=dict)  # --ranking: the served feed's measures
    served: dict[str, Any] = field(default_factory=dict, repr=False)  # per device (not in as_dict)

    @property
    def ok(self) -> bool:
        """True when the audit found nothing lost, doubled or undecodable."""
        return self.lost == 0 and self.doubled == 0 and self.undecodable == 0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "served"}
        return out | {"ok": self.ok}


Progress = dict[str, Any]
