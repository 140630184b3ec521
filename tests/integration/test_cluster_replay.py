"""Replay on a real Dask ``LocalCluster`` of 2 worker processes equals a single-process replay,
also when a worker is killed (``kill -9``) in the middle of its partition, in every input
format (JSON lines, msgpack, gzipped) and with OUT on standard output."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamfeat.replay import ClusterReplayOptions, run_cluster_replay
from tests.cluster_helpers import default_config, per_device, single_replay, write_log

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    c = distributed.Client(cluster)
    try:
        yield c
    finally:
        c.close()
        cluster.close()


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cluster")
    events = d / "events.jsonl"
    write_log(events, devices=40, minutes=40, seed=11, odd_every=400)
    single_replay(events, d / "single.jsonl")
    return events, d / "single.jsonl"


def _opts(events: Path, out: Path, **kw: Any) -> ClusterReplayOptions:
    return ClusterReplayOptions((str(events),), default_config(), str(out), **kw)


def test_cluster_replay_equals_single_process(
    client: Any, log: tuple[Path, Path], tmp_path: Path
) -> None:
    events, single = log
    seen: list[tuple[int, int | None]] = []
    s = run_cluster_replay(
        _opts(events, tmp_path / "free.jsonl"),
        client=client,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert per_device(tmp_path / "free.jsonl") == per_device(single)
    assert s.partitions == 2
    assert s.workers == 2
    lines = len(events.read_bytes().splitlines())
    assert seen[-1] == (2 * lines, 2 * lines)  # both partitions read every line
    ref = single_replay(events, tmp_path / "again.jsonl")
    assert (s.events, s.quarantined, s.devices, s.records) == (
        ref.events,
        ref.quarantined,
        ref.devices,
        ref.records,
    )
    assert not (tmp_path / "free.jsonl.parts").exists()  # work files cleaned up


def test_cluster_replay_ordered_is_byte_identical(
    client: Any, log: tuple[Path, Path], tmp_path: Path
) -> None:
    events, single = log
    run_cluster_replay(
        _opts(events, tmp_path / "o.jsonl", ordered=True, partitions=3), client=client
    )
    assert (tmp_path / "o.jsonl").read_bytes() == single.read_bytes()


@pytest.mark.parametrize("with_db", [False, True], ids=["from-scratch", "resume-checkpoint"])
def test_a_worker_killed_mid_run_still_gives_the_exact_output(
    client: Any, log: tuple[Path, Path], tmp_path: Path, with_db: bool
) -> None:
    events, single = log
    out = tmp_path / "o.jsonl"
    db = tmp_path / "db" if with_db else None
    work = db if db is not None else Path(f"{out}.parts")
    opts = _opts(events, out, ordered=True, db=str(db) if db else None, checkpoint_every=1000)
    result: dict[str, Any] = {}

    def drive() -> None:
        try:
            result["summary"] = run_cluster_replay(opts, client=client)
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    t = threading.Thread(target=drive)
    t.start()
    part0 = work / "part-0000.jsonl"
    victim = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and victim is None:
        if part0.exists() and part0.stat().st_size > 300_000:
            for addr, keys in client.processing().items():
                if any(str(k).startswith("streamfeat-partition-0-") for k in keys):
                    victim = (addr, client.run(os.getpid, workers=[addr])[addr])
        time.sleep(0.05)
    assert victim is not None, "partition 0 finished before it could be killed"
    os.kill(victim[1], signal.SIGKILL)
    t.join(300)
    assert "error" not in result, result.get("error")
    assert (out).read_bytes() == single.read_bytes()
    if with_db:
        assert result["summary"].resumed_at > 0  # partition 0 went on from its checkpoint
    # the nanny restarted the killed worker: the cluster is back to two
    client.wait_for_workers(2, timeout=60)


ROOT = Path(__file__).resolve().parents[2]
# every case, msgpack inputs included (read by the partitions in their own format)
GOLDEN = sorted(p for p in (ROOT / "replay" / "cases").iterdir() if (p / "tasks.toml").is_file())


@pytest.mark.parametrize("case", GOLDEN, ids=[c.name for c in GOLDEN])
def test_golden_cases_on_the_cluster(client: Any, case: Path, tmp_path: Path) -> None:
    from streamfeat.tasks import load_tasks

    [events] = sorted(case.glob("events.*"))
    cfg = load_tasks(case / "tasks.toml")
    expected = case / "expected.jsonl"
    out = tmp_path / "ordered.jsonl"
    opts = ClusterReplayOptions((str(events),), cfg, str(out), ordered=True, partitions=3)
    run_cluster_replay(opts, client=client)
    assert out.read_bytes() == expected.read_bytes()
    free = tmp_path / "free.jsonl"
    opts = ClusterReplayOptions((str(events),), cfg, str(free), partitions=3)
    run_cluster_replay(opts, client=client)
    assert per_device(free) == per_device(expected)


def test_replay_command_on_a_local_cluster(log: tuple[Path, Path], tmp_path: Path) -> None:
    from streamfeat.cli import main

    events, single = log
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    lines = events.read_bytes().splitlines(keepends=True)
    a.write_bytes(b"".join(lines[: len(lines) // 2]))
    b.write_bytes(b"".join(lines[len(lines) // 2 :]))
    out = tmp_path / "out.jsonl"
    code = main(
        [
            "replay",
            str(tmp_path / "?.jsonl"),
            "--cluster",
            "local:2",
            "--ordered",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert code == 0
    assert out.read_bytes() == single.read_bytes()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--ordered"], "--ordered and --partitions go with --cluster"),
        (["EXTRA"], "several EVENTS files need --cluster"),
        (["--cluster", "local:x"], "local:N needs N"),
        (["--cluster", "remote"], "local:N or tcp://HOST:PORT"),
        (["--cluster", "local:2", "--speed", "2"], "--speed is not supported with --cluster"),
        (["--cluster", "local:2", "NOPE*.jsonl"], "matches no file"),
    ],
)
def test_replay_command_usage_errors_are_one_line(
    log: tuple[Path, Path],
    tmp_path: Path,
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamfeat.cli import main

    events, _ = log
    (tmp_path / "EXTRA").write_bytes(b"")
    files = [str(tmp_path / a) for a in argv if a in ("EXTRA", "NOPE*.jsonl")]
    options = [a for a in argv if a not in ("EXTRA", "NOPE*.jsonl")]
    with pytest.raises(SystemExit) as exc:
        main(["replay", str(events), *files, "--out", str(tmp_path / "o.jsonl"), *options])
    assert exc.value.code == 2
    assert says in capsys.readouterr().err


def _odd_messages() -> list[bytes]:
    """Messages a partitioned reader must quarantine exactly like the single-process one."""
    import msgpack

    return [
        msgpack.packb({"device": 17, "ts": 1767225600000, "type": "click"}),
        msgpack.packb([1, 2, 3]),
        msgpack.packb({1: "a", "ts": 1767225600000}),
        msgpack.packb({"device": "dev000003", "ts": "abc", "type": "click"}),
        msgpack.packb({"ts": 1767225600900, "type": "click"}),  # device "local"
        # a string that is not UTF-8: quarantined alone, reading goes on after it
        b"\x83\xa6device\xa3\xff\xfe\xfd\xa2ts\xcf" + (1767225601000).to_bytes(8, "big")
        + b"\xa4type\xa5click",
    ]  # fmt: skip


def _write_msgpack_log(path: Path, *, devices: int, minutes: float, seed: int, tail: bytes) -> None:
    import random

    import msgpack

    from streamfeat.gen._generator import generate_events

    rng = random.Random(seed)
    odd = _odd_messages()
    with path.open("wb") as fh:
        for ev in generate_events(devices, minutes, seed):
            fh.write(msgpack.packb(ev))
            if rng.randrange(300) == 0:
                fh.write(rng.choice(odd))
        fh.write(tail)


def _single_msgpack(events: Path, out: Path) -> Any:
    from streamfeat.replay._replay import ReplayOptions, run_replay

    return run_replay(ReplayOptions(str(events), default_config(), str(out), fmt="msgpack"))


@pytest.fixture(scope="module")
def mp_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("cluster-msgpack")
    events = d / "events.msgpack"
    # ends inside a message: the truncated tail is quarantined too
    _write_msgpack_log(events, devices=30, minutes=30, seed=7, tail=b"\x83\xa6device\xa4de")
    _single_msgpack(events, d / "single.jsonl")
    return events, d / "single.jsonl"


def test_msgpack_input_on_the_cluster_equals_single_process(
    client: Any, mp_log: tuple[Path, Path], tmp_path: Path
) -> None:
    events, single = mp_log
    ref = _single_msgpack(events, tmp_path / "ref.jsonl")
    assert ref.quarantined > 3  # the odd messages and the truncated tail are in it
    out = tmp_path / "ordered.jsonl"
    s = run_cluster_replay(
        _opts(events, out, ordered=True, partitions=3, fmt="msgpack"), client=client
    )
    assert out.read_bytes() == single.read_bytes()
    assert (s.events, s.quarantined, s.devices, s.records) == (
        ref.events,
        ref.quarantined,
        ref.devices,
        ref.records,
    )
    free = tmp_path / "free.jsonl"
    run_cluster_replay(_opts(events, free), client=client)  # the format from the name
    assert per_device(free) == per_device(single)


def test_several_msgpack_files_gz_included_replay_as_their_concatenation(
    client: Any, tmp_path: Path
) -> None:
    import gzip

    a, b = tmp_path / "a.msgpack", tmp_path / "b.msgpack.gz"
    _write_msgpack_log(a, devices=12, minutes=10, seed=3, tail=b"")
    _write_msgpack_log(tmp_path / "b.raw", devices=12, minutes=10, seed=4, tail=b"\x92\x01")
    b.write_bytes(gzip.compress((tmp_path / "b.raw").read_bytes()))
    both = tmp_path / "both.msgpack"
    both.write_bytes(a.read_bytes() + (tmp_path / "b.raw").read_bytes())
    ref = tmp_path / "ref.jsonl"
    _single_msgpack(both, ref)
    out = tmp_path / "out.jsonl"
    opts = ClusterReplayOptions(
        (str(a), str(b)), default_config(), str(out), ordered=True, partitions=2
    )
    run_cluster_replay(opts, client=client)

    def without_reasons(path: Path) -> list[Any]:
        # a quarantine reason names the message within its own file; the rest is identical
        import orjson

        rows = [orjson.loads(x) for x in path.read_bytes().splitlines()]
        return [{k: v for k, v in r.items() if k != "reason"} for r in rows]

    assert without_reasons(out) == without_reasons(ref)
    assert out.read_bytes().count(b"quarantine") == ref.read_bytes().count(b"quarantine") > 0


def test_replay_command_msgpack_on_a_local_cluster_to_standard_output(
    mp_log: tuple[Path, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    events, single = mp_log
    renamed = tmp_path / "events.bin"  # a name that says nothing: --format says msgpack
    renamed.write_bytes(events.read_bytes())
    proc = subprocess.run(
        [sys.executable, "-m", "streamfeat", "replay", str(renamed), "--format", "msgpack",
         "--cluster", "local:2", "--ordered", "--out", "-", "--json"],
        capture_output=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout == single.read_bytes()  # OUT on standard output, byte-identical
    assert b'"cluster"' in proc.stderr  # the summary went to standard error
    assert not list(tmp_path.glob("*.parts"))  # work files cleaned up


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--report", "r.html"], "--report is not supported with --cluster"),
        (["--run-tasks"], "--run-tasks is not supported with --cluster"),
        (["MIXED"], "--cluster reads one format"),
    ],
)
def test_what_the_cluster_does_not_do_is_said_never_ignored(
    log: tuple[Path, Path],
    tmp_path: Path,
    argv: list[str],
    says: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from streamfeat.cli import main

    events, _ = log
    (tmp_path / "m.msgpack").write_bytes(b"")
    files = [str(tmp_path / "m.msgpack")] if "MIXED" in argv else []
    extra = [a for a in argv if a != "MIXED"]
    with pytest.raises(SystemExit) as exc:
        main(
            [
                "replay",
                str(events),
                *files,
                "--cluster",
                "local:2",
                "--out",
                str(tmp_path / "o"),
                *extra,
            ]
        )
    assert exc.value.code == 2
    assert says in capsys.readouterr().err
