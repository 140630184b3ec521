"""The trigger stage's snapshots: bytes, dump and load time per device (issue 16).

Usage (from the repository root)::

    .venv/bin/python bench/trigger_snapshots.py taobao.jsonl [--no-gc]

Runs the default tasks file's triggers over every event of the log (one state per device),
then writes every device's state to msgpack bytes and reads it back, as the engine does for
an idle device it keeps as bytes. Prints the bytes and the CPU time per device. With
``--no-gc`` the cyclic garbage collector is off while timing: the stage's own work, without the
collections that the objects it allocates trigger in a process holding every state. To
compare two trees, run it with ``PYTHONPATH`` pointing at a copy of the other tree's
``streamfeat``.
"""

from __future__ import annotations

import gc
import os
import sys
import time

import msgpack
import orjson

from streamfeat._event import event_from_obj
from streamfeat.data import default_tasks_text
from streamfeat.tasks import parse_tasks
from streamfeat.triggers import TriggerStage


def main(path: str, no_gc: bool) -> None:
    with open(path, "rb") as fh:
        events = [event_from_obj(orjson.loads(line)) for line in fh]
    stage = TriggerStage(parse_tasks(default_tasks_text()))
    states: dict[str, object] = {}
    counts: dict[str, int] = {}
    out: list[object] = []
    for ev in events:
        st = states.get(ev.device)
        if st is None:
            st = states[ev.device] = stage.new_state(ev.device)
        i = counts.get(ev.device, 0)
        counts[ev.device] = i + 1
        stage.process(st, i, ev, out)  # type: ignore[arg-type]
    if no_gc:
        gc.disable()
    t0 = time.process_time()
    blobs = [msgpack.packb(stage.dump(st), use_bin_type=True) for st in states.values()]  # type: ignore[arg-type]
    t1 = time.process_time()
    for b in blobs:
        stage.load(msgpack.unpackb(b, raw=False, strict_map_key=False))
    t2 = time.process_time()
    n = len(blobs)
    print(
        f"{n:,} device states: {sum(map(len, blobs)) / n:.0f} bytes each, "
        f"dump {(t1 - t0) / n * 1e6:.1f} us, load {(t2 - t1) / n * 1e6:.1f} us per device "
        f"(cyclic GC {'off' if no_gc else 'on'}; load average {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main(sys.argv[1], "--no-gc" in sys.argv[2:])
