"""One replay of a log, to /dev/null, and its CPU seconds: the unit to count instructions on.

Usage (from the repository root)::

    .venv/bin/python bench/replay_once.py LOG.jsonl [TASKS.toml]
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/replay_once.py LOG.jsonl [TASKS.toml]
    .venv/bin/python bench/replay_once.py --floor LOG.jsonl

With no tasks file, the embedded default tasks file. Counted under ``valgrind``, the
instructions of a run less those of the same run over a one-line log (the start-up) are the
replay's own, and the machine's load does not change them: the figure to compare two trees by
(run one with ``PYTHONPATH`` pointing at a copy of the other's ``streamfeat``). ``--floor``
runs the parse floor instead (orjson over every line), to count it the same way.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import orjson

from streamfeat._compiled import status
from streamfeat.data import default_tasks_text
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks


def main(argv: list[str]) -> int:
    if argv[:1] == ["--floor"] and len(argv) == 2:
        t = time.process_time()
        with Path(argv[1]).open("rb") as f:
            n = sum(1 for line in f if orjson.loads(line) is not None)
        print(f"parse floor: {n:,} lines, {time.process_time() - t:.3f} s CPU")
        return 0
    if len(argv) not in (1, 2):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: replay_once.py [--floor] LOG.jsonl [TASKS.toml]", file=sys.stderr)
        return 2
    text = Path(argv[1]).read_text(encoding="utf-8") if len(argv) == 2 else default_tasks_text()
    config = parse_tasks(text, load_models=False)  # as `streamfeat replay` does: no onnxruntime
    t = time.process_time()
    summary = run_replay(ReplayOptions(events=argv[0], config=config, out=os.devnull))
    cpu = time.process_time() - t
    print(f"replay ({status()}): {summary.events:,} events, {cpu:.3f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
