"""The replay rows of issue 16 for one or more logs, side by side in one process (wall time).

Usage (from the repository root)::

    .venv/bin/python bench/replay_rows.py [--cpu] LOG.jsonl [LOG.jsonl ...]

For each log: the parse floor (orjson over every line, best of 3), a replay with the default
tasks file and one with ``[engine] idle = "10m"`` added (one run each, to /dev/null), as events/s
and as ratios to the parse floor, with the load average; in wall time, then in CPU time of the
process (``--cpu``: the figure to compare on a machine shared with other work, where wall time
also counts the waits for a core). To compare two trees, run it with
``PYTHONPATH=`` pointing at a copy of the other tree's ``streamfeat`` (for example one made with
``git archive COMMIT streamfeat | tar -x -C /tmp/before``); a tree without the ``idle`` key says
so in the idle column.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from streamfeat.data import default_tasks_text
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks

IDLE = default_tasks_text().replace("[engine]\n", '[engine]\nidle = "10m"\n', 1)


def _parse(path: str) -> None:
    loads = orjson.loads
    with open(path, "rb") as fh:
        for line in fh:
            loads(line)


def _replay(path: str, text: str) -> None:
    run_replay(ReplayOptions(events=path, config=parse_tasks(text), out=os.devnull))


_CLOCK = time.perf_counter


def _best(fn: Callable[[], None], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        gc.collect()
        t0 = _CLOCK()
        fn()
        best = min(best, _CLOCK() - t0)
    return best


def main(args: list[str]) -> None:
    global _CLOCK
    if "--cpu" in args:
        _CLOCK = time.process_time
    print("CPU time of the process" if "--cpu" in args else "wall time", flush=True)
    for path in args:
        if path != "--cpu":
            _rows(path)


def _rows(path: str) -> None:
    with open(path, "rb") as fh:
        n = sum(1 for _ in fh)
    t_parse = _best(lambda: _parse(path), 3)
    t_default = _best(lambda: _replay(path, default_tasks_text()), 1)
    line = (
        f"{Path(path).name}: {n:,} events; parse floor {n / t_parse:,.0f}/s; "
        f"default tasks {n / t_default:,.0f}/s, ratio {t_parse / t_default:.4f}"
    )
    try:
        t_idle = _best(lambda: _replay(path, IDLE), 1)
        line += f"; + idle 10m {n / t_idle:,.0f}/s, ratio {t_parse / t_idle:.4f}"
    except Exception as exc:  # a tree without the key: say so, keep the other figures
        line += f"; + idle 10m: {exc}"
    print(f"{line}; load {os.getloadavg()[0]:.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
