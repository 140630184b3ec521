"""The endpoint's commands and a user's mistakes: one line on stderr, no traceback, exit != 0.

Each case runs the real ``streamfeat`` command in a subprocess. Also: no command creates an
endpoint database or key implicitly (issue 11, item 14), device files go under ``keys/``
beside the database (item 15), a damaged database is refused with the recovery command
(item 16), and ``device config`` checks what it stores (item 11).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from streamfeat.endpoint import SQLiteStorage, StoredBatch

ROOT = Path(__file__).resolve().parents[2]


def sf(
    *args: str, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "streamfeat", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )


def one_line_error(r: subprocess.CompletedProcess[str], *needles: str) -> str:
    """Assert the run failed with exactly one line on stderr, no traceback; return it."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def endpoint(tmp_path: Path) -> Path:
    db = tmp_path / "ep" / "ep.db"
    r = sf("keys", "--db", str(db))
    assert r.returncode == 0, r.stderr
    return db


def test_serve_into_a_missing_folder_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nope" / "ep.db"
    line = one_line_error(
        sf("serve", "--port", "0", "--db", str(db)), "does not exist", "keys --db"
    )
    assert "--init" in line
    assert not (tmp_path / "nope").exists()


def test_serve_without_a_key_beside_the_database_refuses(endpoint: Path) -> None:
    (endpoint.parent / "endpoint.key").unlink()
    one_line_error(sf("serve", "--port", "0", "--db", str(endpoint)), "endpoint key")
    assert not (endpoint.parent / "endpoint.key").exists()


def test_device_commands_with_a_typo_in_db_create_nothing(endpoint: Path) -> None:
    typo = endpoint.with_name("ep.bd")
    for args in (
        ("device", "list"),
        ("device", "revoke", "x"),
        ("device", "add", "x"),
    ):
        one_line_error(sf(*args, "--db", str(typo)), "does not exist")
    cfg = endpoint.parent / "t.toml"
    cfg.write_text("[upload]\n")
    one_line_error(sf("device", "config", "x", str(cfg), "--version", "1", "--db", str(typo)))
    assert not typo.exists()


def test_device_add_writes_the_device_file_under_keys_beside_the_database(
    endpoint: Path, tmp_path: Path
) -> None:
    work = tmp_path / "checkout"
    work.mkdir()
    r = sf("device", "add", "phone-17", "--db", str(endpoint), cwd=work)
    assert r.returncode == 0, r.stderr
    expected = endpoint.parent / "keys" / "phone-17.device.json"
    assert r.stdout.strip().split("\t")[-1] == str(expected)
    assert str(expected) in r.stderr  # says where
    assert expected.stat().st_mode & 0o777 == 0o600
    assert expected.parent.stat().st_mode & 0o777 == 0o700
    assert list(work.iterdir()) == []  # nothing in the current directory
    gitignore = (ROOT / ".gitignore").read_text()
    assert "*.device.json" in gitignore


def test_keys_db_and_init_are_the_only_init_steps(tmp_path: Path) -> None:
    db = tmp_path / "new" / "ep.db"
    r = sf("device", "add", "a", "--init", "--db", str(db), "--out", str(tmp_path / "a.json"))
    assert r.returncode == 0, r.stderr
    assert db.exists()
    assert (db.parent / "endpoint.key").exists()
    assert (db.parent / "endpoint.key").stat().st_mode & 0o777 == 0o600


def test_port_in_use_is_one_line(endpoint: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        one_line_error(
            sf("serve", "--port", str(port), "--db", str(endpoint), timeout=30),
            f"127.0.0.1:{port}",
        )


def test_port_out_of_range_is_one_line(endpoint: Path) -> None:
    one_line_error(sf("serve", "--port", "99999", "--db", str(endpoint)), "--port", "99999")


def test_bad_limits_are_one_line(endpoint: Path) -> None:
    one_line_error(sf("serve", "--port", "0", "--window", "0", "--db", str(endpoint)), "--window")
    one_line_error(
        sf("serve", "--port", "0", "--handshake-timeout", "nan", "--db", str(endpoint)),
        "--handshake-timeout",
    )


def _add(db: Path, name: str) -> None:
    r = sf("device", "add", name, "--db", str(db))
    assert r.returncode == 0, r.stderr


def test_device_config_checks_file_version_size_and_device(endpoint: Path) -> None:
    _add(endpoint, "d1")
    d = endpoint.parent
    good = d / "good.toml"
    good.write_text('[triggers]\nclicked = "click"\n')
    cfg = ["--db", str(endpoint)]

    missing = d / "missing.toml"
    one_line_error(sf("device", "config", "d1", str(missing), "--version", "1", *cfg), str(missing))

    not_toml = d / "nt.toml"
    not_toml.write_text("this is = = not toml\n")
    one_line_error(
        sf("device", "config", "d1", str(not_toml), "--version", "1", *cfg), str(not_toml)
    )

    bad_tasks = d / "bad.toml"
    bad_tasks.write_text('[triggers]\nx = "click within"\n')
    one_line_error(
        sf("device", "config", "d1", str(bad_tasks), "--version", "1", *cfg),
        str(bad_tasks),
        "triggers.x",
    )

    unknown_key = d / "uk.toml"
    unknown_key.write_text("[engine]\nspeed = 3\n")
    one_line_error(
        sf("device", "config", "d1", str(unknown_key), "--version", "1", *cfg), "engine.speed"
    )

    not_utf8 = d / "latin.toml"
    not_utf8.write_bytes(b'[triggers]\nx = "caf\xe9"\n')
    one_line_error(sf("device", "config", "d1", str(not_utf8), "--version", "1", *cfg), "UTF-8")

    big = d / "big.toml"
    big.write_text("# " + "x" * 70_000 + "\n" + good.read_text())
    one_line_error(
        sf("device", "config", "d1", str(big), "--version", "1", *cfg), "too large", str(big)
    )

    one_line_error(
        sf("device", "config", "d1", str(good), "--version", str(2**32), *cfg), "--version"
    )
    one_line_error(sf("device", "config", "d1", str(good), "--version", "0", *cfg), "--version")

    one_line_error(sf("device", "config", "nobody", str(good), "--version", "1", *cfg), "nobody")

    # nothing of the above was stored; a good one is
    storage = SQLiteStorage(endpoint, create=False)
    try:
        assert storage.get_config("d1") is None
        assert storage.get_config("nobody") is None
    finally:
        storage.close()
    r = sf("device", "config", "d1", str(good), "--version", str(2**32 - 1), *cfg)
    assert r.returncode == 0, r.stderr
    storage = SQLiteStorage(endpoint, create=False)
    try:
        assert storage.get_config("d1") == (2**32 - 1, good.read_bytes())
    finally:
        storage.close()


def _damage(db: Path) -> None:
    """Fill the database with batches, then write garbage over pages in its middle."""
    storage = SQLiteStorage(db, create=False)
    storage.store_batches(
        [StoredBatch("d", i.to_bytes(16, "big"), os.urandom(900), 0.0) for i in range(400)]
    )
    storage.close()
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.close()
    assert pages > 20
    with open(db, "r+b") as fh:
        for p in range(pages // 2, pages // 2 + 4):
            fh.seek(p * page)
            fh.write(b"\xa5" * page)


def test_a_damaged_database_is_refused_with_the_recovery_command(endpoint: Path) -> None:
    _damage(endpoint)
    for args in (("device", "list"), ("serve", "--port", "0")):
        line = one_line_error(sf(*args, "--db", str(endpoint)), str(endpoint), ".recover")
        assert "damaged" in line or "malformed" in line
