"""Every user-facing command, given a user's mistake: one line on stderr, no traceback, exit != 0.

Each case runs the real command line in a subprocess (``python -m streamfeat``). The full-disk
cases write into a real 1 MiB tmpfs (they are skipped, saying why, where mounting is refused).
The endpoint's own mistakes (ports, keys, device config) are tested with the endpoint; only the
tasks-file one, shared by every command, is here.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOT_UTF8 = b'[engine]\nlateness = "\xff5s"\n'


def _run(
    args: list[str], cwd: Path, *, stdin_closed: bool = False
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "streamfeat", *args]
    if stdin_closed:  # `<&-`: the process starts with no fd 0 at all
        cmd = ["sh", "-c", 'exec "$@" <&-', "sh", *cmd]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, timeout=300, check=False, env=env,
        stdin=None if stdin_closed else subprocess.DEVNULL,
    )  # fmt: skip


def _assert_one_line(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    err = proc.stderr
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert proc.returncode != 0, err
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("mistakes")
    lines = [json.dumps({"device": "d", "ts": 1000 * i, "type": "click"}) for i in range(5000)]
    data = ("\n".join(lines) + "\n").encode()
    gz = gzip.compress(data)
    (d / "ok.jsonl").write_bytes(data)
    (d / "cut.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    (d / "plain.jsonl.gz").write_bytes(data)  # named .gz, not gzip
    (d / "bad.toml").write_bytes(NOT_UTF8)
    (d / "slide.toml").write_text('[windows.w]\nassign = "sliding 365d every 1ms"\n')
    (d / "batch.toml").write_text("[upload]\nbatch_max_bytes = 100000\n")
    (d / "nan.toml").write_text("[upload]\noutbox_max_mb = nan\n")
    (d / "late.toml").write_text('[engine]\nlateness = "99999999999999999999d"\n')
    csv = "".join(f"{i % 100},{i},{i % 50},pv,{1511544070 + i}\n" for i in range(60_000))
    (d / "tb.csv").write_text(csv)
    (d / "cut.csv.gz").write_bytes(gzip.compress(csv.encode())[:20_000])
    (d / "a-file").write_text("")
    device = {"device": "d1", "url": "ws://127.0.0.1:9/v1/tunnel",
              "endpoint_public_key": "00" * 32, "private_key": "11" * 32}  # fmt: skip
    (d / "d1.device.json").write_text(json.dumps(device))
    return d


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"a 1 MiB tmpfs can't be mounted here ({mounted.stderr.strip()}): needs root")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -- replay --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "words"),
    [("cut.jsonl.gz", ["could not be read to its end", "compressed file ended"]),
     ("plain.jsonl.gz", ["could not be read to its end", "not a gzipped file"])],
)  # fmt: skip
def test_replay_unreadable_gz_quarantines_its_tail_and_finishes(
    files: Path, tmp_path: Path, events: str, words: list[str]
) -> None:
    out = tmp_path / "out.jsonl"
    proc = _run(["replay", str(files / events), "--out", str(out), "--json"], files)
    _assert_one_line(proc, *words)
    assert proc.returncode == 1
    last_q = [json.loads(x) for x in out.read_text().splitlines() if '"quarantine"' in x][-1]
    assert "the rest of the input is quarantined" in last_q["reason"]
    assert json.loads(proc.stdout)["input_error"]


def test_replay_closed_stdin(files: Path, tmp_path: Path) -> None:
    proc = _run(["replay", "-", "--out", str(tmp_path / "o")], files, stdin_closed=True)
    _assert_one_line(proc, "standard input is closed")


def test_replay_out_in_a_missing_folder(files: Path, tmp_path: Path) -> None:
    proc = _run(["replay", "ok.jsonl", "--out", str(tmp_path / "no" / "o.jsonl")], files)
    _assert_one_line(proc, "can't write OUT", "no such file or directory")


def test_replay_full_disk(files: Path, full_disk: Path) -> None:
    big = full_disk.parent / "big.jsonl"
    line = json.dumps({"device": "d", "ts": 0, "type": "click", "page": "p" * 100})
    big.write_text((line + "\n") * 20_000)  # ~2.6 MB: its quarantine-free OUT still overflows
    tasks = full_disk.parent / "count.toml"
    tasks.write_text('[windows.n]\nassign = "count 1"\n')
    proc = _run(["replay", str(big), "--tasks", str(tasks), "--out", str(full_disk / "o.jsonl"),
                 "--db", str(full_disk / "s.db"), "--checkpoint-every", "2000"], files)  # fmt: skip
    _assert_one_line(proc, "no space left on device")


@pytest.mark.parametrize(
    ("tasks", "words"),
    [("bad.toml", ["not UTF-8"]), ("slide.toml", ["windows.w.assign", "panes"]),
     ("batch.toml", ["upload.batch_max_bytes", "65,000"]),
     ("nan.toml", ["upload.outbox_max_mb", "finite"]), ("late.toml", ["engine.lateness"])],
)  # fmt: skip
def test_replay_tasks_file_refused(
    files: Path, tmp_path: Path, tasks: str, words: list[str]
) -> None:
    proc = _run(["replay", "ok.jsonl", "--tasks", tasks, "--out", str(tmp_path / "o")], files)
    _assert_one_line(proc, tasks, *words)


# -- generate, convert ---------------------------------------------------------------------------


def test_generate_out_in_a_missing_folder(files: Path, tmp_path: Path) -> None:
    out = tmp_path / "no" / "g.jsonl"
    proc = _run(["generate", "--devices", "2", "--minutes", "1", "--out", str(out)], files)
    _assert_one_line(proc, "no such file or directory")


def test_generate_full_disk(files: Path, full_disk: Path) -> None:
    out = full_disk / "g.jsonl"
    proc = _run(["generate", "--devices", "50", "--minutes", "30", "--out", str(out)], files)
    _assert_one_line(proc, "no space left on device")


def test_convert_truncated_gz(files: Path) -> None:
    proc = _run(["convert", "taobao", "cut.csv.gz", "--out", os.devnull], files)
    _assert_one_line(proc, "stopped", "compressed file ended")


def test_convert_closed_stdin(files: Path) -> None:
    proc = _run(["convert", "taobao", "-", "--out", os.devnull], files, stdin_closed=True)
    _assert_one_line(proc, "standard input is closed")


def test_convert_out_in_a_missing_folder(files: Path, tmp_path: Path) -> None:
    proc = _run(["convert", "taobao", "tb.csv", "--out", str(tmp_path / "no" / "c")], files)
    _assert_one_line(proc, "no such file or directory")


def test_convert_full_disk(files: Path, full_disk: Path) -> None:
    proc = _run(["convert", "taobao", "tb.csv", "--out", str(full_disk / "c.jsonl")], files)
    _assert_one_line(proc, "cannot write", "no space left on device")


# -- simulate, demo, agent, serve ----------------------------------------------------------------


def test_simulate_tasks_file_not_utf8(files: Path) -> None:
    proc = _run(["simulate", "--tasks", "bad.toml", "--devices", "2", "--minutes", "0.1"], files)
    _assert_one_line(proc, "bad.toml", "not UTF-8")


def test_simulate_reconfigure_file_not_utf8(files: Path) -> None:
    args = ["simulate", "--reconfigure", "1:bad.toml", "--devices", "2", "--minutes", "0.1"]
    _assert_one_line(_run(args, files), "bad.toml", "not UTF-8")


def test_demo_dir_is_a_file(files: Path) -> None:
    proc = _run(
        ["demo", "--replay-only", "--devices", "2", "--minutes", "1", "--dir", "a-file"], files
    )
    _assert_one_line(proc, "a-file", "not a folder")


def test_demo_full_disk(files: Path, full_disk: Path) -> None:
    args = ["demo", "--replay-only", "--devices", "100", "--minutes", "20", "--dir",
            str(full_disk / "demo")]  # fmt: skip
    _assert_one_line(_run(args, files), "no space left on device")


def test_agent_closed_stdin(files: Path, tmp_path: Path) -> None:
    args = ["agent", "--store", str(tmp_path / "a.db"), "--device-key", "d1.device.json"]
    _assert_one_line(_run(args, files, stdin_closed=True), "standard input is closed")


def test_agent_tasks_file_not_utf8(files: Path, tmp_path: Path) -> None:
    args = ["agent", "--store", str(tmp_path / "a.db"), "--device-key", "d1.device.json",
            "--tasks", "bad.toml", "--connect-wait", "0", "--drain", "0"]  # fmt: skip
    _assert_one_line(_run(args, files), "bad.toml", "not UTF-8")


def test_serve_tasks_file_not_utf8(files: Path, tmp_path: Path) -> None:
    args = [
        "serve",
        "--init",
        "--tasks",
        "bad.toml",
        "--db",
        str(tmp_path / "ep.db"),
        "--port",
        "0",
    ]
    _assert_one_line(_run(args, files), "bad.toml", "not UTF-8")
