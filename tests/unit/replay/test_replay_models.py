"""A replay runs no re-rank: the tasks file's models are declared and checked, never loaded.

Loading the default tasks file's model imports onnxruntime (about 38 MB of a replay's peak
memory, measured on the Taobao sample); each test runs ``streamfeat replay`` in a process of its
own and looks at what it imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

from streamfeat.data import default_tasks_text
from streamfeat.tasks import parse_tasks

RUN = """
import sys
from streamfeat.cli import main
code = main(sys.argv[1:])
print(code, "onnxruntime" in sys.modules)
"""


def _replay(tmp: Path, *args: str) -> tuple[str, str]:
    log = tmp / "events.jsonl"
    events = [
        {"device": "d", "ts": 1_000 * i, "type": "exposure", "item": str(i)} for i in range(9)
    ]
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    proc = subprocess.run(
        [sys.executable, "-c", RUN, "replay", str(log), "--out", str(tmp / "out.jsonl"),
         "--json", "--no-progress", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    return proc.stdout.strip().splitlines()[-1], proc.stderr


def test_a_replay_of_the_default_tasks_file_loads_no_model(tmp_path: Path) -> None:
    last, err = _replay(tmp_path)
    assert last == "0 False", err
    assert (tmp_path / "out.jsonl").read_bytes()  # it did replay


def test_a_replay_of_a_tasks_file_with_a_model_loads_none(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.toml"
    tasks.write_text(default_tasks_text())
    last, err = _replay(tmp_path, "--tasks", str(tasks))
    assert last == "0 False", err


def test_parsing_without_models_keeps_their_declarations() -> None:
    loaded = parse_tasks(default_tasks_text())
    declared = parse_tasks(default_tasks_text(), load_models=False)
    assert set(loaded.loaded_models) == {"edgerec"}
    assert declared.loaded_models == {}
    assert declared.models == loaded.models
    assert declared.reranks == loaded.reranks
