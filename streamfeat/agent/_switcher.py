"""The agent's configuration: which tasks file runs, its codec, its persistence and its switches.

Synchronous and loop-free. :class:`ConfigSwitcher` holds the running tasks file, its
version, the encoder and the id admission filter it implies, and it

* restores the engine of the last snapshot with the tasks file it was taken with
  (:meth:`ConfigSwitcher.restore`), and writes such snapshots (:meth:`ConfigSwitcher.snapshot`);
* decides whether a tasks file that came down (or was given) is applied, and refuses one that
  does not load, recording the reason (:meth:`ConfigSwitcher.parse`);
* switches a drained engine to a new file, carrying over the state of what did not change
  (:func:`~streamfeat.agent._switch.switch_engine`), and records each version in the store's
  ``agent_configs`` table (:meth:`ConfigSwitcher.switch`, :meth:`ConfigSwitcher.applied`).

Draining the old engine and restarting the queue is the asyncio shell's part
(:class:`~streamfeat.agent.Agent`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import msgpack

from streamfeat._log import agent_log
from streamfeat.agent._support import (
    ADMISSION_KEY,
    ADMISSION_SPEC_KEY,
    AgentStats,
    new_admission,
    schemas,
)
from streamfeat.agent._switch import SwitchReport, switch_engine
from streamfeat.agent._versions import VersionHistory
from streamfeat.encoders import Encoder, encoder_for, schemas_for
from streamfeat.encoders.admission import AdmissionFilter
from streamfeat.engine._build import build_engine
from streamfeat.engine._engine import Engine, Record
from streamfeat.errors import ConfigError, StorageError, StreamfeatError
from streamfeat.io._store import Checkpoint, Store
from streamfeat.tasks import TasksConfig, parse_tasks, resolve_tasks, tasks_folder

__all__ = ["CHECKPOINT", "CONFIG_KEY", "ConfigSwitcher"]

CHECKPOINT = "agent"
CONFIG_KEY = "agent.config"


class ConfigSwitcher:
    """The running tasks file and its switches (see the module docstring).

    Args:
        store: the device store (snapshots, version history, admission state).
        given: the tasks file the agent was started with.
        stats: the agent's counters, updated in place.
        now_ms: the agent's clock, for version stamps.
        admission_seed: this device's seed for a new admission filter.
        sizes: attach ``_raw_bytes`` to window and feature records.

    Attributes:
        config: the running tasks file.
        version: its version (0: a local file).
        encoder: the codec of ``config`` (with its admission filter).
        admission: the id admission filter of ``[upload] admission``, or None.
        switches: the report of every switch applied.
    """

    def __init__(self, store: Store, given: TasksConfig, stats: AgentStats, *,
                 now_ms: Callable[[], int], admission_seed: int, sizes: bool = False) -> None:  # fmt: skip
        self.store = store
        self.given = given
        self.stats = stats
        self._now_ms = now_ms
        self._seed = admission_seed
        self.sizes = sizes
        self.versions = VersionHistory(store)
        self.config = given
        self.version = 0
        self.admission: AdmissionFilter | None = None
        self._admission_spec: str | None = None
        self.encoder = self._encoder_for(given)
        self.switches: list[SwitchReport] = []
        self.restored = False  # restore() used the stored snapshot
        self.refusal = ""  # the reason of the last file refused

    # -- the running file -----------------------------------------------------------------

    def _encoder_for(self, config: TasksConfig) -> Encoder:
        self.admission = self._admission_for(config.upload.admission)
        return encoder_for(config.upload.encoding, schemas(config), admission=self.admission)

    def _admission_for(self, spec: str | None) -> AdmissionFilter | None:
        """The id admission filter of ``[upload] admission``: the running one if the spec is
        unchanged, else the one saved in the store with that spec, else a new one per device."""
        if spec is None:
            self._admission_spec = None
            return None
        if spec == self._admission_spec and self.admission is not None:
            return self.admission
        self._admission_spec = spec
        return new_admission(self.store, spec, self._seed)

    def _use(self, config: TasksConfig) -> None:
        self.config = config
        self.encoder = self._encoder_for(config)

    # -- snapshots ------------------------------------------------------------------------

    def restore(self) -> Engine:
        """Return the engine of the last snapshot (with its tasks file), or a fresh one."""
        saved = self.store.get_state(CONFIG_KEY)
        cp = self.store.load_checkpoint(CHECKPOINT)
        if saved is not None:
            version, text = msgpack.unpackb(saved, raw=False)
            try:
                config = parse_tasks(text, source=f"<stored tasks v{version}>")
                self.version = int(version)
                self._use(config)
            except ConfigError:
                agent_log.warning(
                    "stored tasks file v%s no longer loads; starting from the given one", version
                )
                self.store.incr("agent.restore_failed")
                cp = None
        engine = build_engine(self.config, sizes=self.sizes)
        if cp is not None and saved is not None:
            try:
                engine.restore(cp.snapshot)
                self.restored = True
            except StorageError:
                agent_log.warning(
                    "engine snapshot does not fit the stored tasks file; starting fresh"
                )
                self.store.incr("agent.restore_failed")
                engine = build_engine(self.config, sizes=self.sizes)
        else:
            self.record(0, self.config.text, "local", "applied", None)
        self.stats.config_version = self.version
        return engine

    def snapshot(self, engine: Engine, submitted: int, emitted: int = 0) -> None:
        """Write ``engine``'s snapshot with the tasks file and its version (one transaction);
        ``emitted``: the engine records committed up to it (the checkpoint's ``out_offset``)."""
        cp = Checkpoint(CHECKPOINT, engine.snapshot(), submitted, emitted, engine.events)
        with self.store.transaction():
            self.store.save_checkpoint(cp)
            self.store.put_state(
                CONFIG_KEY, msgpack.packb([self.version, self.config.text], use_bin_type=True)
            )
            if self.admission is not None and self._admission_spec is not None:
                self.store.put_state(ADMISSION_KEY, self.admission.dump())
                self.store.put_state(ADMISSION_SPEC_KEY, self._admission_spec.encode())
        self.stats.snapshots += 1

    # -- switching ------------------------------------------------------------------------

    def wants(self, version: int, source: str) -> bool:
        """Whether ``version`` would replace the running file (a local version 0 always does)."""
        return version > self.version or (version == 0 and source == "local")

    def parse(self, version: int, text: str, source: str) -> TasksConfig | None:
        """Validate ``text`` whole before anything is switched: it loads, its schemas and its
        engine build, and every task's ``run`` target imports. A file that fails is refused
        (recorded with its reason, counted, logged) and the running one stays.

        Returns:
            The tasks file, or None if refused.
        """
        try:
            new = parse_tasks(text, source=f"<tasks v{version}>")
            schemas_for(new)
            build_engine(new, sizes=self.sizes)
            # task code that does not import is refused before the switch; a pushed file's
            # modules are looked for in the folder of the agent's own tasks file first
            resolve_tasks(new, folder=tasks_folder(self.given.source))
        except (ConfigError, StreamfeatError) as exc:
            self.refuse(version, text, source, str(exc))
            return None
        return new

    def refuse(self, version: int, text: str, source: str, reason: str) -> None:
        """Record a tasks file that is not running: history row, counters, log."""
        self.stats.configs_refused += 1
        self.refusal = reason
        try:
            with self.store.transaction():
                self.record(version, text, source, f"refused: {reason}", None)
                self.store.incr("agent.configs_refused")
        except (StorageError, sqlite3.Error):
            agent_log.exception("could not record the refusal of tasks file v%d", version)
        agent_log.warning("tasks file v%d refused: %s", version, reason)

    def save(self) -> tuple[TasksConfig, int, Encoder, AdmissionFilter | None, str | None]:
        """What :meth:`restore_saved` puts back if a switch fails halfway."""
        return self.config, self.version, self.encoder, self.admission, self._admission_spec

    def restore_saved(
        self, saved: tuple[TasksConfig, int, Encoder, AdmissionFilter | None, str | None]
    ) -> None:
        """Make the file of :meth:`save` the running one again."""
        self.config, self.version, self.encoder, self.admission, self._admission_spec = saved

    def switch(
        self, engine: Engine, new: TasksConfig, version: int
    ) -> tuple[Engine, list[Record], SwitchReport, Encoder]:
        """Make ``new`` (at ``version``) the running file, carrying ``engine``'s state over.

        ``engine`` must be drained and not used afterwards (its triggers stage may be reused).
        If the state cannot be carried over, the new engine starts empty (logged).

        Returns:
            The new engine, the records closing removed or changed windows and features
            produced (to be sent with the returned *old* encoder), the report, the old encoder.
        """
        old_config, old_encoder = self.config, self.encoder
        try:
            new_engine, closed, report = switch_engine(engine, old_config, new, sizes=self.sizes)
        except StreamfeatError:
            dropped = len(engine.snapshot())
            new_engine = build_engine(new, sizes=self.sizes)
            new_engine.events = engine.events  # the journal's index goes on
            closed, report = [], SwitchReport()
            agent_log.warning(
                "could not carry the engine state over; %d bytes of state dropped", dropped
            )
        self._use(new)
        self.version = version
        return new_engine, closed, report, old_encoder

    def applied(self, version: int, source: str, report: SwitchReport) -> None:
        """Record a switch that is running now (history, counters, log)."""
        self.record(version, self.config.text, source, "applied", report)
        self.stats.configs_applied += 1
        self.stats.config_version = version
        self.switches.append(report)
        agent_log.info("tasks file v%d applied: %s", version, report.as_dict())

    def record(
        self, version: int, text: str, source: str, status: str, report: SwitchReport | None
    ) -> None:
        """Append one version's outcome to the store's history."""
        changes = report.as_dict() if report is not None else {}
        self.versions.record(version, text, source, status, changes, self._now_ms())
