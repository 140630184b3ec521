"""Partitions of a replay, without Dask: routing, reading and the merge equal one process."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.io._readers import read_jsonl
from streamfeat.replay import PartitionJob, route, run_partition
from streamfeat.replay._cluster import _merge
from tests.cluster_helpers import ODD_LINES, default_config, per_device, single_replay, write_log

ROOT = Path(__file__).resolve().parents[3]


def _reference_route(line: bytes, parts: int) -> int:
    """Plain reference: parse the line; the device's partition, or 0 when it has none."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return 0
    if not isinstance(obj, dict) or not isinstance(obj.get("device", "local"), str):
        return 0
    return zlib.crc32(obj.get("device", "local").encode("utf-8", "surrogatepass")) % parts


@pytest.mark.parametrize("line", ODD_LINES)
@pytest.mark.parametrize("parts", [1, 2, 3, 16])
def test_route_equals_the_parsing_reference_on_odd_lines(line: bytes, parts: int) -> None:
    # a line that is not JSON may go to any one partition (it is quarantined wherever it
    # lands); any line that parses goes where its device's events go
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        assert 0 <= route(line, parts) < parts
        return
    assert route(line, parts) == _reference_route(line, parts)
    assert route(line + b"\n", parts) == _reference_route(line, parts)


devices = st.text(min_size=1, max_size=20)
extras = st.dictionaries(
    st.sampled_from(["page", "item", "args", "device"]),
    st.one_of(
        st.text(max_size=8),
        st.integers(-(2**63), 2**63 - 1),
        st.dictionaries(st.text(max_size=6), st.text(max_size=6)),
    ),
    max_size=3,
)


@given(devices, extras, st.integers(min_value=1, max_value=40))
def test_route_of_a_device_first_line_equals_the_reference(
    device: str, extra: dict[str, object], parts: int
) -> None:
    obj = {"device": device, "ts": 1, "type": "click", **extra}
    obj["device"] = device  # keep it first and a string
    line = orjson.dumps(obj)
    assert route(line, parts) == _reference_route(line, parts)


def test_parse_line_equals_the_single_process_reader() -> None:
    from streamfeat.replay._partition import parse_line

    data = b"\n".join([*ODD_LINES, b'{"device":"a","ts":1,"type":"click"}']) + b"\n"
    expected = list(read_jsonl(io.BytesIO(data), source="f"))
    got = [parse_line(line, i + 1, "f") for i, line in enumerate(io.BytesIO(data))]
    assert got == expected


def _run_all(log: list[Path], out: Path, parts: int, ordered: bool, tmp: Path) -> None:
    cfg = default_config()
    jobs = [
        PartitionJob(
            tuple(str(p) for p in log),
            cfg.text,
            "<default tasks>",
            parts,
            i,
            str(tmp / f"part-{i}.jsonl"),
            ordered=ordered,
        )
        for i in range(parts)
    ]
    for job in jobs:
        run_partition(job)
    _merge(jobs, str(out), ordered)


@pytest.mark.parametrize("parts", [1, 3])
def test_partitions_merged_equal_a_single_process_replay(tmp_path: Path, parts: int) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, devices=25, minutes=15, seed=3, odd_every=200)
    single_replay(log, tmp_path / "single.jsonl")
    _run_all([log], tmp_path / "ordered.jsonl", parts, True, tmp_path)
    assert (tmp_path / "ordered.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()
    _run_all([log], tmp_path / "free.jsonl", parts, False, tmp_path)
    assert per_device(tmp_path / "free.jsonl") == per_device(tmp_path / "single.jsonl")


def test_several_files_replay_as_their_concatenation(tmp_path: Path) -> None:
    a, b, both = tmp_path / "a.jsonl", tmp_path / "b.jsonl.gz", tmp_path / "both.jsonl"
    write_log(a, devices=10, minutes=10, seed=1, odd_every=100)
    write_log(tmp_path / "b.jsonl", devices=12, minutes=10, seed=2, odd_every=100)
    import gzip

    b.write_bytes(gzip.compress((tmp_path / "b.jsonl").read_bytes()))
    both.write_bytes(a.read_bytes() + (tmp_path / "b.jsonl").read_bytes())
    single_replay(both, tmp_path / "single.jsonl")
    _run_all([a, b], tmp_path / "out.jsonl", 2, True, tmp_path)
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()


WORKER = """
import sys
from streamfeat.replay import PartitionJob, run_partition
from tests.cluster_helpers import default_config
cfg = default_config()
job = PartitionJob((sys.argv[1],), cfg.text, "<default tasks>", 2, int(sys.argv[2]), sys.argv[3],
                   ordered=True, db=sys.argv[4], checkpoint_every=500)
run_partition(job)
"""


def test_a_partition_killed_mid_run_resumes_exact_from_its_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    write_log(log, devices=30, minutes=30, seed=5, odd_every=300)
    single_replay(log, tmp_path / "single.jsonl")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    parts = [tmp_path / f"part-{i}.jsonl" for i in range(2)]
    dbs = [tmp_path / f"part-{i}.sqlite" for i in range(2)]
    args = [sys.executable, "-c", WORKER, str(log), "0", str(parts[0]), str(dbs[0])]
    proc = subprocess.Popen(args, env=env, cwd=ROOT)
    # kill -9 once a checkpoint is committed and more output written after it
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if parts[0].exists() and parts[0].stat().st_size > 200_000 and dbs[0].exists():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL, "the partition finished before it was killed"
    for i in range(2):
        subprocess.run(
            [sys.executable, "-c", WORKER, str(log), str(i), str(parts[i]), str(dbs[i])],
            env=env,
            cwd=ROOT,
            check=True,
        )
    jobs = [PartitionJob((str(log),), "", "", 2, i, str(parts[i]), ordered=True) for i in range(2)]
    _merge(jobs, str(tmp_path / "out.jsonl"), True)
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "single.jsonl").read_bytes()


def test_a_partition_leaves_the_collector_as_it_found_it(tmp_path: Path) -> None:
    import gc

    log = tmp_path / "events.jsonl"
    write_log(log, devices=5, minutes=5, seed=8, odd_every=50)
    job = PartitionJob((str(log),), default_config().text, "<default tasks>", 1, 0,
                       str(tmp_path / "part-0.jsonl"))  # fmt: skip
    assert gc.isenabled()
    first = run_partition(job)
    assert gc.isenabled()
    gc.disable()
    try:
        again = run_partition(job)
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert first.records == again.records
    assert first.events == again.events > 0
