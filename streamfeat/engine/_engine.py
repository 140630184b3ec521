"""The engine: per-device state, and each valid event passed through the stages in order.

Theory of operation
-------------------
An :class:`Engine` holds an ordered list of :class:`Stage` objects (triggers, windows,
features, ... built from a tasks file by :func:`streamfeat.engine.build_engine`). For every device it
keeps the number of valid events seen (the event *index* of SPEC section 2) and one state object
per stage, created lazily by ``Stage.new_state``. Processing an event means, for each stage in
order, ``stage.process(state, index, event, out)``; stages append **records** (plain dicts with
a ``kind`` key, the shapes of SPEC section 6) to ``out``. Keys of a record that start with ``_``
are in-process attachments (for example the matched events a trigger hands to its tasks): they
are never written to a file, stored or encoded.

A device's stage states are freed when every stage reports its state idle (nothing open), so
memory is bounded by what is open, not by how many devices were ever seen; only the per-device
event counter stays (one int), and, for a stage that defines ``residue(state)``, the small value
it returns (the window stage's max ts, so that the watermark survives the freeing and a late
event is still reported as late). The next ``new_state(device, residue)`` gets it back.

The engine is synchronous, deterministic and free of I/O: it never reads a clock. Event time
comes from ``event.ts``; wall time, when an embedded agent wants idle devices' windows to close,
comes in through :meth:`Engine.advance`.

Idle devices in a replay (``idle_ms``, the tasks file's ``[engine] idle``): a replay has no wall
clock, so the log's own time stands in for it. The *log time* is the highest ts seen so far
less ``idle_bound`` (a replay passes ``idle_ms`` itself: a log interleaves devices whose events
arrive up to minutes behind the highest ts, and an event that arrives less than ``idle_ms``
behind it must never be judged against a watermark this rule moved). Before an
event that raises the log time is processed, every device with open state whose latest ts
(the highest ts of its events) is at or before ``log time - idle_ms`` is advanced to the log
time, through each stage's ``advance(state, log_time, out)``: exactly what
:meth:`Engine.advance` does for an agent's device that went quiet. Devices are advanced in
``(latest ts, device)`` order, so the output depends only on the log. A device whose state is
still not idle after that (a visit open within the partial limit) is *spilled*: its stages'
dumps are kept as msgpack bytes (a few hundred bytes, against kilobytes of live objects) until
its next event, or until the log time reaches its next deadline (the smallest of its stages'
optional ``deadline(state)``: when ``advance`` would close a window or a visit), when it is
advanced again. The devices wait in a queue by key (the key: its latest ts, or that deadline
less ``idle_ms``; stale entries are skipped): a min-heap of the keys, each once, and the devices
queued at each key, taken in device order. It keeps the sweep at O(log n) per key and O(1) per
event that advances none. The per-device work (the per-event path, the sweep, the end of input,
the freeing) is the engine's :class:`~streamfeat.engine._step.Step`, compiled in the compiled
build.

Snapshots (:meth:`Engine.snapshot` / :meth:`Engine.restore`) are msgpack bytes of every
device's counter and every stage's ``dump(state)``; a stage's dump must be msgpack-able and its
``load`` must rebuild an equal state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

import msgpack

from streamfeat._event import Event
from streamfeat._records import Record
from streamfeat.engine._step import Device, Step
from streamfeat.errors import StorageError

__all__ = ["Engine", "Record", "Stage"]

_SNAPSHOT_VERSION = 2


@runtime_checkable
class Stage(Protocol):
    """One processing stage of the engine.

    A stage holds its configuration; per-device state lives in the objects it returns from
    :meth:`new_state`, which the engine keeps and passes back. All methods are synchronous and
    free of I/O.
    """

    name: str

    def new_state(self, device: str) -> Any:
        """Return the fresh state of a device the stage has not seen (or has freed).

        A stage that defines ``residue(state) -> Any`` (optional; not part of this protocol's
        required methods) is called ``new_state(device, residue)`` after a freeing, with what
        ``residue`` returned for the freed state (``None`` is never passed on). A stage whose
        per-device state can outlive a tasks-file change also defines ``carry(old, dumped,
        device, kept, out)`` (see :meth:`streamfeat.windows.WindowStage.carry`).
        """

    def process(self, state: Any, index: int, event: Event, out: list[Record]) -> None:
        """Handle event number ``index`` of its device; append any records to ``out``."""

    def advance(self, state: Any, now_ms: int, out: list[Record]) -> None:
        """Let wall time ``now_ms`` move the device on (closing windows of idle devices).

        A stage may also define ``deadline(state) -> int | None`` (optional; not part of this
        protocol's required methods): the smallest ``now_ms`` at which ``advance`` would emit
        something, None for never. The replay's idle rule uses it to know when to advance a
        quiet device again.
        """

    def close(self, state: Any, out: list[Record]) -> None:
        """End of input (end of a replay): close everything open, records marked final."""

    def idle(self, state: Any) -> bool:
        """Return True when ``state`` holds nothing open and may be freed."""

    def dump(self, state: Any) -> Any:
        """Return a msgpack-able form of ``state`` for a snapshot."""

    def load(self, data: Any) -> Any:
        """Rebuild a state from what :meth:`dump` returned."""


_Device = Device  # the engine's per-device record (engine/_step.py)


class Engine:
    """Runs events through stages, keeping per-device state.

    Args:
        stages: the stages, in processing order.
        sample_every: time one event in this many (a power of two) per stage, for the
            per-stage throughput the replay summary shows (0 turns timing off). Sampling keeps the clock reads off most
            events; the figures are estimates, and say so.
        idle_ms: advance a device silent for this long in the log's own time (replay's
            ``[engine] idle``; None, the default, turns it off). See the module docstring.
        idle_bound: how far behind the highest ts seen the log time is (ms, >= 0).
    """

    def __init__(
        self,
        stages: Sequence[Stage],
        *,
        sample_every: int = 64,
        idle_ms: int | None = None,
        idle_bound: int = 0,
    ) -> None:
        self.stages: list[Stage] = list(stages)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            msg = f"stage names must be unique, got {names}"
            raise ValueError(msg)
        self._devices: dict[str, _Device] = {}
        self._process = [s.process for s in self.stages]  # for the timed path
        if sample_every and sample_every & (sample_every - 1):
            msg = f"sample_every must be 0 or a power of two, got {sample_every}"
            raise ValueError(msg)
        self._sample_mask = sample_every - 1 if sample_every else -1
        self._sampled = 0
        self._stage_ns = [0] * len(self.stages)
        if idle_ms is not None and (idle_ms < 1 or idle_bound < 0):
            msg = f"idle_ms must be >= 1 and idle_bound >= 0, got {idle_ms} and {idle_bound}"
            raise ValueError(msg)
        self.idle_ms = idle_ms
        self.idle_bound = idle_bound
        # the per-device work: the per-event path, the idle rule's sweep, closing and freeing;
        # it counts the events, the log time and the devices advanced
        self._step = Step(self)
        self.process_into: Callable[[Event, list[Record]], None] = self._step.process
        """Process one valid event, appending its records to ``out`` (the engine's
        :class:`~streamfeat.engine._step.Step`)."""

    @property
    def events(self) -> int:
        """The number of events processed."""
        return self._step.events

    @events.setter
    def events(self, n: int) -> None:
        self._step.events = n

    @property
    def idled(self) -> int:
        """The number of devices the idle rule advanced."""
        return self._step.idled

    # -- processing ---------------------------------------------------------------------

    def process(self, event: Event) -> list[Record]:
        """Process one valid event and return the records it produced, in stage order."""
        out: list[Record] = []
        self.process_into(event, out)
        return out

    def _timed(self, states: list[Any], index: int, event: Event, out: list[Record]) -> None:
        self._sampled += 1
        clock = time.perf_counter_ns
        for i, process in enumerate(self._process):
            t0 = clock()
            process(states[i], index, event, out)
            self._stage_ns[i] += clock() - t0

    def advance(self, now_ms: int) -> list[Record]:
        """Let wall time move every device with open state on (idle-device watermarks)."""
        out: list[Record] = []
        self._step.advance(now_ms, out)
        return out

    def close(self, devices: Iterable[str] | None = None) -> list[Record]:
        """Close everything open (end of a replay), for all devices or the ones named."""
        out: list[Record] = []
        self._step.close(list(self._devices) if devices is None else list(devices), out)
        return out

    def close_batches(self, devices_per_batch: int = 1024) -> Iterator[list[Record]]:
        """Close everything open like :meth:`close`, yielding the records a few devices at a time.

        The records come in the same order as from :meth:`close`; a replay writes each batch
        before closing the next, so the end of a log with many open devices never holds all
        their records at once.
        """
        names = list(self._devices)
        for i in range(0, len(names), devices_per_batch):
            out = self.close(names[i : i + devices_per_batch])
            if out:
                yield out

    # -- introspection ------------------------------------------------------------------

    def stage(self, name: str) -> Stage:
        """Return the stage called ``name``.

        Raises:
            KeyError: if there is no such stage.
        """
        for s in self.stages:
            if s.name == name:
                return s
        raise KeyError(name)

    def state_of(self, device: str, stage: str) -> Any:
        """Return the live state of ``device`` in stage ``stage`` (None when freed or unseen)."""
        dev = self._devices.get(device)
        states = None if dev is None else self._step.live(dev)
        if states is None:
            return None
        for i, s in enumerate(self.stages):
            if s.name == stage:
                return states[i]
        raise KeyError(stage)

    def event_count(self, device: str) -> int:
        """Return how many valid events ``device`` has had."""
        dev = self._devices.get(device)
        return 0 if dev is None else dev.count

    @property
    def devices(self) -> int:
        """The number of devices seen."""
        return len(self._devices)

    @property
    def open_devices(self) -> int:
        """The number of devices holding open stage state."""
        return sum(1 for d in self._devices.values() if d.states is not None or d.spill is not None)

    @property
    def spilled_devices(self) -> int:
        """The number of open devices kept as bytes while idle (``idle_ms``)."""
        return sum(1 for d in self._devices.values() if d.spill is not None)

    def stage_seconds(self) -> dict[str, float]:
        """Estimated seconds spent in each stage (from sampled events, scaled up)."""
        if not self._sampled:
            return {s.name: 0.0 for s in self.stages}
        scale = self.events / self._sampled
        return {s.name: ns * scale / 1e9 for s, ns in zip(self.stages, self._stage_ns, strict=True)}

    # -- snapshots ----------------------------------------------------------------------

    def snapshot(self) -> bytes:
        """Return the whole engine state as bytes (see :meth:`restore`)."""
        devices = {}
        for name, dev in self._devices.items():
            dumped = None
            if dev.states is not None:
                dumped = [s.dump(st) for s, st in zip(self.stages, dev.states, strict=True)]
            elif dev.spill is not None:
                dumped = self._step.dumped(dev.spill)
            devices[name] = [dev.count, dumped, dev.residue]
        body: dict[str, Any] = {
            "v": _SNAPSHOT_VERSION,
            "stages": [s.name for s in self.stages],
            "events": self.events,
            "devices": devices,
        }
        if self.idle_ms is not None:  # the idle rule's clock: the log time and each device's
            # latest ts, heap key and whether it is kept as bytes
            body["idle"] = [
                self._step.log_ts,
                {n: [d.last, d.key, d.spill is not None] for n, d in self._devices.items()},
            ]
        return msgpack.packb(body, use_bin_type=True)  # type: ignore[no-any-return]

    def restore(self, data: bytes) -> None:
        """Replace the engine's state with a snapshot taken from an engine of the same stages.

        Raises:
            StorageError: if the snapshot is unreadable or was taken with other stages; the
                engine is left unchanged.
        """
        try:
            body = msgpack.unpackb(data, raw=False, strict_map_key=False)
        except (ValueError, msgpack.UnpackException) as exc:
            msg = "engine snapshot is not readable"
            raise StorageError(msg) from exc
        if not isinstance(body, dict) or body.get("v") != _SNAPSHOT_VERSION:
            msg = "engine snapshot has an unknown version"
            raise StorageError(msg)
        names = [s.name for s in self.stages]
        if body.get("stages") != names:
            msg = f"engine snapshot was taken with stages {body.get('stages')}, not {names}"
            raise StorageError(msg)
        devices: dict[str, _Device] = {}
        for name, (count, dumped, residue) in body["devices"].items():
            states = None
            if dumped is not None:
                states = [s.load(d) for s, d in zip(self.stages, dumped, strict=True)]
            devices[name] = _Device(count, states, residue)
        # in place: the engine's step holds this table (engine/_step.py)
        self._devices.clear()
        self._devices.update(devices)
        self.events = body["events"]
        idle = body.get("idle")
        if self.idle_ms is not None and idle is not None:
            self._step.log_ts, marks = idle
            for name, dev in devices.items():
                dev.last, dev.key, spilled = marks.get(name, (-1, None, False))
                if spilled and dev.states is not None:
                    dev.spill, dev.states = self._step.spill(dev.states), None
        self._step.requeue()
