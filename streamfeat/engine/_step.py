"""The engine's per-event path and its per-device record, one compiled unit.

Every valid event of a replay (and of the agent) goes through :attr:`Engine.process_into`, the
:meth:`Step.process` of the engine's :class:`Step`. A step is made once per engine: it holds the
stages' per-event callables (a stage may hand over ones that do what its ``process`` and
``idle`` do minus a Python method around them: the trigger stage hands its matcher's own
methods), the engine's device table and the two counters the per-event path moves (the number
of events, and with the idle rule the log's time). In the compiled build the step is a native
class and :class:`Device` a native record, so the per-event path runs no interpreted code of its
own (docs/performance.md, "Fifth round"; it used to be Python source generated per engine).

What it does is what the loops of :class:`streamfeat.engine.Engine` describe: find or make the
device's states (brought back from bytes if the idle rule spilled them), number the event, run
the stages in order (one event in ``sample_every`` through the engine's timed path), then free
the states when every stage is idle, or with the idle rule queue the device for the sweep while
something is open. ``tests/unit/foundation/test_engine_step.py`` checks it against a plain loop
written in the test.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat._records import Record

if TYPE_CHECKING:
    from streamfeat.engine._engine import Engine

__all__ = ["Device", "Step"]

Process = Callable[[Any, int, Event, list[Record]], None]
Idle = Callable[[Any], bool]


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
    """The per-event path of one engine (its stages are fixed once it is made)."""

    def __init__(self, engine: Engine) -> None:
        procs: list[Process] = []
        idles: list[Idle] = []
        for s in engine.stages:
            fast = getattr(s, "step_functions", None)
            p, i = fast() if fast is not None else (s.process, s.idle)
            procs.append(p)
            idles.append(i)
        self.procs = procs
        self.idles = idles
        self.stages = len(procs)
        self.devices: dict[str, Device] = engine._devices
        self.events = 0  # events processed (Engine.events)
        self.log_ts = -1  # the highest ts seen, with the idle rule (Engine._log_ts)
        self.mask: int = engine._sample_mask
        self.new_states: Callable[[str, list[Any] | None], list[Any]] = engine._new_states
        self.free: Callable[[Device], None] = engine._free
        self.timed: Callable[[list[Any], int, Event, list[Record]], None] = engine._timed
        self.idle = engine.idle_ms is not None
        self.heap: list[tuple[int, str]] = engine._heap
        self.sweep: Callable[[list[Record]], None] = engine._sweep
        self.unspill: Callable[[bytes], list[Any]] = engine._unspill
        self.behind: int = engine.idle_bound + (engine.idle_ms or 0)

    def process(self, event: Event, out: list[Record]) -> None:
        """Process one valid event, appending its records to ``out``."""
        ts: int = event[0]
        name: str = event[2]
        idle = self.idle
        if idle and ts > self.log_ts:
            self.log_ts = ts
            heap = self.heap
            if heap and heap[0][0] <= ts - self.behind:
                self.sweep(out)
        devices = self.devices
        dev = devices.get(name)
        if dev is None:
            dev = Device(0, None)
            devices[name] = dev
        states = dev.states
        if states is None:
            spill = dev.spill
            if spill is not None:  # back after idling with something open
                dev.spill = None
                states = self.unspill(spill)
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
                        heapq.heappush(self.heap, (last, name))
                return
        self.free(dev)
