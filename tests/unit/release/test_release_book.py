"""The endpoint's release book on a real SQLite file and a real PostgreSQL database: rollout
by matrix cell, statuses, the stable percent across raises, rollback, and the CLI's one-line
errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.cli import main
from streamfeat.endpoint._backend import open_storage
from streamfeat.endpoint._releases import ANNOUNCE_MAGIC, ReleaseBook
from streamfeat.errors import StorageError
from streamfeat.release import (
    GradeReport,
    HealthThresholds,
    ReleaseStateError,
    build_archive,
    in_rollout,
    sign_bundle,
)

NOW = 1_767_225_600.0
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
MATRIX = 'default = "base"\n[cells]\n"power/*" = "big"\n"*/low" = "tiny"\n'


def _add(book: ReleaseBook, name: str) -> str:
    files = {"tasks.toml": b'[triggers]\nclick = "click"\n', "x.py": name.encode()}
    data = sign_bundle(build_archive(files, name=name, version="1"), KEY, name=name, version="1")[1]
    return book.add_bundle(data, now=NOW)[0]


@pytest.fixture
def book(endpoint_db: str) -> Iterator[ReleaseBook]:
    b = ReleaseBook(endpoint_db)
    for name in ("base", "big", "tiny"):
        _add(b, name)
    yield b
    b.close()


def _announced(book: ReleaseBook) -> dict[str, str]:
    out = {}
    for _, device, _, body in book.announcements_after(0):
        out[device] = json.loads(body[len(ANNOUNCE_MAGIC) :])["bundle"]
    return out


def test_rollout_announces_each_reached_device_its_cell_only_once(book: ReleaseBook) -> None:
    _, _, ids = (None, None, None)
    book.create("r-1", MATRIX, thresholds=HealthThresholds(), now=NOW)
    _, _, ids = book.load("r-1")
    book.set_groups([("d1", "power")])
    book.record_grade("d2", GradeReport("cheap", 90.0, 120.0, 20), now=NOW)  # -> low
    devices = [f"d{i}" for i in range(1, 200)]
    n10 = book.rollout("r-1", 10, devices, now=NOW)
    n50 = book.rollout("r-1", 50, devices, now=NOW + 1)
    assert n10 == sum(in_rollout("r-1", d, 10) for d in devices)
    assert n10 + n50 == sum(in_rollout("r-1", d, 50) for d in devices)  # raising adds only
    announced = _announced(book)
    assert set(announced) == {d for d in devices if in_rollout("r-1", d, 50)}
    expect = {"d1": ids["big"], "d2": ids["tiny"]}
    for d, bundle in announced.items():
        assert bundle == expect.get(d, ids["base"])
    st = book.status("r-1")
    assert (st.state, st.percent, st.by_status) == ("rolling", 50, {"announced": len(announced)})
    with pytest.raises(ReleaseStateError):
        book.rollout("r-1", 20, devices, now=NOW + 2)
    assert book.load("r-1")[0].percent == 50  # refused: unchanged


def test_rollback_tells_every_reached_device_and_is_recorded(book: ReleaseBook) -> None:
    book.create("r-2", MATRIX, thresholds=HealthThresholds(), now=NOW)
    book.rollout("r-2", 100, ["a", "b"], now=NOW)
    assert book.rollback("r-2", "operator", now=NOW + 5) == 2
    st = book.status("r-2")
    assert st.state == "rolled_back"
    assert [t.step for t in st.history] == ["rollout", "rollback"]
    storage = open_storage(str(book.path))
    cfg = storage.get_config("a")
    storage.close()
    assert cfg is not None
    assert json.loads(cfg[1][len(ANNOUNCE_MAGIC) :])["rollback"] is True


def test_a_matrix_naming_a_bundle_not_given_is_refused(book: ReleaseBook) -> None:
    with pytest.raises(StorageError, match="'ghost'"):
        book.create("r-3", 'default = "ghost"', thresholds=HealthThresholds(), now=NOW)
    with pytest.raises(StorageError):
        book.load("r-3")


def test_bundle_commands_build_verify_and_refuse_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "b"
    src.mkdir()
    (src / "tasks.toml").write_text('[triggers]\nclick = "click"\n')
    (src / "score.py").write_text("def score(ctx):\n    return 0\n")
    assert main(["bundle", "keys", "--dir", str(tmp_path)]) == 0
    assert (tmp_path / "release.key").stat().st_mode & 0o777 == 0o600
    out = tmp_path / "b.sfb"
    assert (
        main(
            ["bundle", "build", str(src), "--key", str(tmp_path / "release.key"), "--out", str(out)]
        )
        == 0
    )
    assert main(["bundle", "verify", str(out), "--pub", str(tmp_path / "release.pub")]) == 0
    assert "ok: bundle" in capsys.readouterr().out
    data = bytearray(out.read_bytes())
    data[-700] ^= 1
    out.write_bytes(bytes(data))
    assert main(["bundle", "verify", str(out), "--pub", str(tmp_path / "release.pub")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "bundle refused (hash)" in err[0]
    (src / "tasks.toml").write_text("[triggers]\nbad = 'click{0}'\n")
    assert (
        main(
            ["bundle", "build", str(src), "--key", str(tmp_path / "release.key"), "--out", str(out)]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "tasks.toml" in err[0]


def test_healthy_reports_judge_the_release_at_most_once_a_second_and_a_bad_one_at_once(
    book: ReleaseBook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamfeat.endpoint import _releases
    from streamfeat.release import HealthReport

    book.create("r-h", MATRIX, thresholds=HealthThresholds(max_error_rate=0.1), now=NOW)
    devices = [f"d{i}" for i in range(300)]
    book.rollout("r-h", 100, devices, now=NOW)
    judged: list[int] = []
    whole = book._health

    def counting(release_id: str) -> list[HealthReport]:
        out = whole(release_id)
        judged.append(len(out))
        return out

    monkeypatch.setattr(book, "_health", counting)
    for i, d in enumerate(devices):  # 300 healthy reports within 0.6 s: judged once
        h = HealthReport(device=d, task_runs=100, task_errors=1, rerank_p99_ms=3.0)
        assert book.report("r-h", d, "live", health=h, now=NOW + i * 0.002) is None
    assert len(judged) == 1
    h = HealthReport(device="d0", task_runs=100, task_errors=1, rerank_p99_ms=3.0)
    book.report("r-h", "d0", "live", health=h, now=NOW + _releases.EVALUATE_EVERY + 0.1)
    assert judged[-1] == 300
    assert len(judged) == 2
    # a report that alone crosses a threshold is judged with the whole release at once
    for d in devices[:40]:
        bad = HealthReport(device=d, task_runs=100, task_errors=90, rerank_p99_ms=3.0)
        t = book.report("r-h", d, "live", health=bad, now=NOW + 1.2)
        if t is not None:
            break
    assert t is not None
    assert "error rate" in t.reason
    assert book.status("r-h").state == "rolled_back"
