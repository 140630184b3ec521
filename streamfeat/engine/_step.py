"""The engine's per-device work and its per-device record, one compiled unit.

Every valid event of a replay (and of the agent) goes through :attr:`Engine.process_into`, the
:meth:`Step.process` of the engine's :class:`Step`. A step is made once per engine: it holds the
stages' per-device callables (a stage may hand over ones that do what its ``process`` and
``idle`` do minus a Python method around them: the trigger stage hands its matcher's own
methods), the engine's device table, the idle rule's queue and the counters the per-event path
moves (the number of events, the log's time, the devices the idle rule advanced). In the
compiled build the step is a native class and :class:`Device` a native record, so the per-event
path runs no interpreted code of its own (docs/performance.md, "Fifth round"; it used to be
Python source generated per engine).

What it does is what the loops of :class:`streamfeat.engine.Engine` describe: find or make the
device's states (brought back from bytes if the idle rule spilled them), number the event, run
the stages in order (one event in ``sample_every`` through the engine's timed path), then free
the states when every stage is idle, or with the idle rule queue the device for the sweep while
something is open. The rest of a device's life is here too, so that it runs compiled as well:
the idle rule's sweep (:meth:`Step.sweep`: advance the quiet devices, free them or keep them as
msgpack bytes), closing devices at the end of input (:meth:`Step.close`), the agent's wall-time
advance (:meth:`Step.advance`), and the freeing with its residue. The engine's module docstring
describes the idle rule; ``tests/unit/foundation/test_engine_step.py`` checks the step against
plain loops written in the test.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import msgpack

from streamfeat._event import Event
from streamfeat._records import Record

if TYPE_CHECKING:
    from streamfeat.engine._engine import Engine

__all__ = ["Device", "Step"]

Process = Callable[[Any, int, Event, list[Record]], None]
Idle = Callable[[Any], bool]
Advance = Callable[[Any, int, list[Record]], None]
Close = Callable[[Any, list[Record]], None]


class Device:
    """One device's place in the engine: its event counter, its stages' states (None while it
    holds nothing open), what a freed state left behind, and the idle rule's bookkeeping."""

    __slots__ = ("count", "key", "last", "residue", "spill", "states")

    def __init__(
        self, count: int, states: list[Any] | None, residue: list[Any] | None = None
    ) -> None:
        self.count = count
        self.states = states
        self.residue = residue
        # with idle_ms: the highest ts of its events; the key of its live idle-heap entry (None:
        # none); its states as msgpack bytes while it sits idle with something still open
        self.last = -1
        self.key: int | None = None
        self.spill: bytes | None = None


class Step:
    """The per-device work of one engine (its stages are fixed once it is made)."""

    def __init__(self, engine: Engine) -> None:
        stages = engine.stages
        procs: list[Process] = []
        idles: list[Idle] = []
        for s in stages:
            fast = getattr(s, "step_functions", None)
            p, i = fast() if fast is not None else (s.process, s.idle)
            procs.append(p)
            idles.append(i)
        self.procs = procs
        self.idles = idles
        self.advances: list[Advance] = [s.advance for s in stages]
        self.closes: list[Close] = [s.close for s in stages]
        self.dumps: list[Callable[[Any], Any]] = [s.dump for s in stages]
        self.loads: list[Callable[[Any], Any]] = [s.load for s in stages]
        self.news: list[Callable[..., Any]] = [s.new_state for s in stages]
        # optional stage methods: residue(state) survives a freeing; deadline(state) says when
        # advance() would next close something
        self.residues: list[Callable[[Any], Any] | None] = [
            getattr(s, "residue", None) for s in stages
        ]
        self.keeps_residue = any(f is not None for f in self.residues)
        self.deadlines: list[Callable[[Any], int | None] | None] = [
            getattr(s, "deadline", None) for s in stages
        ]
        self.stages = len(procs)
        self.devices: dict[str, Device] = engine._devices
        self.events = 0  # events processed (Engine.events)
        self.log_ts = -1  # the highest ts seen, with the idle rule
        self.idled = 0  # devices advanced by the idle rule (Engine.idled)
        self.mask: int = engine._sample_mask
        self.timed: Callable[[list[Any], int, Event, list[Record]], None] = engine._timed
        self.idle = engine.idle_ms is not None
        self.idle_ms: int = engine.idle_ms or 0
        self.bound: int = engine.idle_bound
        # the idle rule's queue: each key once in a min-heap of ints, and the devices queued at
        # each key (popped in name order: the (key, device) order of the engine's docstring)
        self.heap: list[int] = []
        self.queued: dict[int, list[str]] = {}
        self.behind: int = engine.idle_bound + (engine.idle_ms or 0)
        self.packer: Any = msgpack.Packer(use_bin_type=True)  # spills, as msgpack.packb would

    # -- the per-event path ---------------------------------------------------------------

    def process(self, event: Event, out: list[Record]) -> None:
        """Process one valid event, appending its records to ``out``."""
        ts: int = event[0]
        name: str = event[2]
        idle = self.idle
        if idle and ts > self.log_ts:
            self.log_ts = ts
            heap = self.heap
            if heap and heap[0] <= ts - self.behind:
                self.sweep(out)
        devices = self.devices
        dev = devices.get(name)
        if dev is None:
            dev = Device(0, None)
            devices[name] = dev
        states = dev.states
        if states is None:
            if dev.spill is not None:  # back after idling with something open
                states = self.unspilled(dev)
            else:
                states = self.new_states(name, dev.residue)
                dev.states = states
        index = dev.count
        dev.count = index + 1
        n = self.events + 1
        self.events = n
        if n & self.mask == 0:
            self.timed(states, index, event, out)
        else:
            procs = self.procs
            for i in range(self.stages):
                procs[i](states[i], index, event, out)
        if idle and ts > dev.last:
            dev.last = ts
        idles = self.idles
        for i in range(self.stages):
            if not idles[i](states[i]):
                if idle:
                    key = dev.key
                    last = dev.last
                    if key is None or key > last:  # (a later deadline's entry goes stale)
                        dev.key = last
                        self.queue(last, name)
                return
        self.free(dev)

    # -- the idle rule ----------------------------------------------------------------------

    def queue(self, key: int, name: str) -> None:
        """Queue device ``name`` for the sweep at ``key`` (an entry made stale by a newer one
        is skipped when popped)."""
        names = self.queued.get(key)
        if names is None:
            self.queued[key] = [name]
            heapq.heappush(self.heap, key)
        else:
            names.append(name)

    def requeue(self) -> None:
        """Rebuild the queue from the devices' keys (after a restore)."""
        self.heap.clear()
        self.queued.clear()
        for name, dev in self.devices.items():
            if dev.key is not None:
                self.queue(dev.key, name)

    def sweep(self, out: list[Record]) -> None:
        """Advance every device silent since ``log time - idle_ms`` to the log time."""
        idle_ms = self.idle_ms
        now = self.log_ts - self.bound
        cutoff = now - idle_ms
        heap, queued = self.heap, self.queued
        # what the sweep queues is later than cutoff: it never joins a key popped here
        while heap and heap[0] <= cutoff:
            key = heapq.heappop(heap)
            names = queued.pop(key)
            names.sort()
            for name in names:
                self.sweep_one(key, name, now, cutoff, out)

    def sweep_one(self, key: int, name: str, now: int, cutoff: int, out: list[Record]) -> None:
        """The sweep's step for one queued device."""
        dev = self.devices[name]
        if dev.key != key:  # a stale entry: the device has a newer one
            return
        states = dev.states
        if states is None and dev.spill is None:  # freed since it was queued
            dev.key = None
            return
        last = dev.last
        if last > cutoff:  # it had events since: look again later
            dev.key = last
            self.queue(last, name)
            return
        if states is None:
            states = self.unspilled(dev)
        advances = self.advances
        for i in range(self.stages):
            advances[i](states[i], now, out)
        self.idled += 1
        dev.key = None
        if self.all_idle(states):
            self.free(dev)
            return
        # still open (a window that ends later, a visit within its partial limit): look again
        # when the log time reaches its next deadline; meanwhile keep it as bytes
        due = self.deadline(states)
        if due is not None:
            k = max(due - self.idle_ms, cutoff + 1)
            dev.key = k
            self.queue(k, name)
        dev.spill = self.spill(states)
        dev.states = None

    def deadline(self, states: list[Any]) -> int | None:
        """The smallest time at which advance() would close something: the stages'
        ``deadline()`` (a stage without one, such as triggers, emits nothing when advanced)."""
        due: int | None = None
        deadlines = self.deadlines
        for i in range(self.stages):
            f = deadlines[i]
            if f is not None:
                d = f(states[i])
                if d is not None and (due is None or d < due):
                    due = d
        return due

    def spill(self, states: list[Any]) -> bytes:
        """The stages' dumps of ``states`` as msgpack bytes."""
        dumps = self.dumps
        data: bytes = self.packer.pack([dumps[i](states[i]) for i in range(self.stages)])
        return data

    def dumped(self, spill: bytes) -> list[Any]:
        """The stages' dumps that :meth:`spill` packed into ``spill``."""
        dumped: list[Any] = msgpack.unpackb(spill, raw=False, strict_map_key=False)
        return dumped

    def unspilled(self, dev: Device) -> list[Any]:
        """Bring a spilled device's states back from its bytes (``dev.spill`` is set)."""
        dumped = self.dumped(dev.spill or b"")
        loads = self.loads
        states = [loads[i](dumped[i]) for i in range(self.stages)]
        dev.states = states
        dev.spill = None
        return states

    # -- a device's life ----------------------------------------------------------------------

    def new_states(self, device: str, residue: list[Any] | None) -> list[Any]:
        """Fresh states of ``device``, given what its last freeing left behind."""
        news = self.news
        if residue is None:
            return [news[i](device) for i in range(self.stages)]
        out: list[Any] = []
        for i in range(self.stages):
            r = residue[i]
            out.append(news[i](device) if r is None else news[i](device, r))
        return out

    def live(self, dev: Device) -> list[Any] | None:
        """A device's states, brought back from bytes if it was spilled (None: nothing open)."""
        if dev.states is None and dev.spill is not None:
            return self.unspilled(dev)
        return dev.states

    def all_idle(self, states: list[Any]) -> bool:
        """Whether every stage holds nothing open in ``states``."""
        idles = self.idles
        return all(idles[i](states[i]) for i in range(self.stages))

    def free(self, dev: Device) -> None:
        """Drop a device's states, keeping the stages' residues."""
        states = dev.states
        if self.keeps_residue and states is not None:
            residues = self.residues
            kept = [None if f is None else f(states[i]) for i, f in enumerate(residues)]
            dev.residue = kept if any(r is not None for r in kept) else None
        dev.states = None

    def advance(self, now_ms: int, out: list[Record]) -> None:
        """Let wall time move every device with open state on (the agent's idle devices)."""
        advances = self.advances
        for dev in self.devices.values():
            states = self.live(dev)
            if states is None:
                continue
            for i in range(self.stages):
                advances[i](states[i], now_ms, out)
            if self.all_idle(states):
                self.free(dev)

    def close(self, names: Iterable[str], out: list[Record]) -> None:
        """End of input for the devices named: close what each holds open, then free it."""
        devices, closes = self.devices, self.closes
        for name in names:
            dev = devices.get(name)
            if dev is None:
                continue
            states = self.live(dev)
            if states is None:
                continue
            for i in range(self.stages):
                closes[i](states[i], out)
            self.free(dev)
