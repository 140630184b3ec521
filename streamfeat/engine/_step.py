"""The engine's per-event path, generated once per engine for its stages.

Every valid event of a replay goes through :attr:`Engine.process_into`; with the stages' calls
written out one after the other (no ``zip`` over the stage list, the bound methods and the
engine's tables as locals of the function), a replay of the default tasks file runs 9% fewer
instructions per event than with the general loop (docs/performance.md, "Third round"). The
function is generated from source for the engine's number of stages, as the
compact writers are (:mod:`streamfeat.encoders._compact_writers`), in two forms: without the
idle rule, and with it (the sweep when the log time rises, the spilled states brought back,
the device queued for the sweep while open). What it does is exactly what the loops of
:class:`streamfeat.engine.Engine` did; ``tests/unit/foundation/test_engine_step.py`` checks the
generated path against a plain loop written in the test.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat._records import Record

if TYPE_CHECKING:
    from streamfeat.engine._engine import Engine

__all__ = ["build_step", "step_source"]

Step = Callable[[Event, list[Record]], None]


def step_source(n: int, idle: bool) -> str:
    """The source of ``process_into`` for ``n`` stages, with the idle rule or without."""
    states = ", ".join(f"s{i}" for i in range(n))
    calls = [f"        p{i}(s{i}, index, event, out)" for i in range(n)]
    all_idle = " and ".join(f"i{i}(s{i})" for i in range(n)) or "True"
    lines = ["def process_into(event, out):", "    name = event[2]"]
    if idle:
        lines += [
            "    ts = event[0]",
            "    if ts > engine._log_ts:",
            "        engine._log_ts = ts",
            "        if heap and heap[0][0] <= ts - behind:",
            "            sweep(out)",
        ]
    lines += [
        "    dev = get(name)",
        "    if dev is None:",
        "        dev = devices[name] = Device(0, None)",
        "    states = dev.states",
        "    if states is None:",
    ]
    if idle:
        lines += [
            "        spill = dev.spill",
            "        if spill is not None:  # back after idling with something open",
            "            dev.spill = None",
            "            states = dev.states = unspill(spill)",
            "        else:",
            "            states = dev.states = new_states(name, dev.residue)",
        ]
    else:
        lines += ["        states = dev.states = new_states(name, dev.residue)"]
    lines += [
        "    index = dev.count",
        "    dev.count = index + 1",
        "    engine.events = n = engine.events + 1",
    ]
    if n:
        lines += [f"    {states}{',' if n == 1 else ''} = states"]
    lines += [
        "    if n & mask == 0:",
        "        timed(states, index, event, out)",
        "    else:",
        *(calls or ["        pass"]),
    ]
    if idle:
        lines += [
            "    if ts > dev.last:",
            "        dev.last = ts",
            f"    if not ({all_idle}):",
            "        key = dev.key",
            "        if key is None or key > dev.last:  # (a later deadline's entry goes stale)",
            "            dev.key = dev.last",
            "            heappush(heap, (dev.last, name))",
            "        return",
            "    free(dev)",
        ]
    else:
        lines += [f"    if {all_idle}:", "        free(dev)"]
    return "\n".join(lines) + "\n"


def build_step(engine: Engine, device: type) -> Step:
    """Generate ``engine``'s ``process_into`` (its stages are fixed once it is made)."""
    stages = engine.stages
    ns: dict[str, Any] = {
        "engine": engine,
        "devices": engine._devices,
        "get": engine._devices.get,
        "Device": device,
        "new_states": engine._new_states,
        "free": engine._free,
        "timed": engine._timed,
        "mask": engine._sample_mask,
        "heap": engine._heap,
        "heappush": heapq.heappush,
        "sweep": engine._sweep,
        "unspill": engine._unspill,
        "behind": engine.idle_bound + (engine.idle_ms or 0),
    }
    for i, s in enumerate(stages):
        # a stage may hand over callables that do what its `process` and `idle` do, minus a
        # Python method around them (the trigger stage hands its matcher's own methods)
        fast = getattr(s, "step_functions", None)
        ns[f"p{i}"], ns[f"i{i}"] = fast() if fast is not None else (s.process, s.idle)
    source = step_source(len(stages), engine.idle_ms is not None)
    names = "+".join(s.name for s in stages) or "no stages"
    exec(compile(source, f"<engine step: {names}>", "exec"), ns)
    fn: Step = ns["process_into"]
    return fn
