"""The endpoint's device registry and the key files of the endpoint and the devices.

Devices are registered by name with their X25519 public key; a revoked device keeps its row
(with the revocation time) so that its key is refused as *revoked*, not *unknown*. Key files
are JSON, written with owner-only permissions (0600) before any secret goes into them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfeat.endpoint._storage import open_db
from streamfeat.errors import StorageError
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.upload._keys import read_key_file

__all__ = [
    "DeviceEntry",
    "Registry",
    "already_registered",
    "new_entries",
    "read_key_file",
    "write_key_file",
]

_OWNER_ONLY = stat.S_IRUSR | stat.S_IWUSR


@dataclass(frozen=True, slots=True)
class DeviceEntry:
    """A registered device."""

    name: str
    public_key: bytes
    added: float
    revoked: float | None

    @property
    def active(self) -> bool:
        """Not revoked."""
        return self.revoked is None


def new_entries(
    devices: Iterable[tuple[str, bytes]], now: float | None = None
) -> list[DeviceEntry]:
    """Check devices to register and make their entries: the one validation every registry
    backend (SQLite here, PostgreSQL in ``_postgres``) runs before it writes anything.

    Args:
        devices: ``(name, public key)`` pairs.
        now: the registration time (epoch seconds; default: the current time).

    Raises:
        StorageError: a name is empty, a key is not 32 bytes, or a name or key is given twice;
            nothing is to be registered then.
    """
    added = time.time() if now is None else now
    entries = [DeviceEntry(name, bytes(key), added, None) for name, key in devices]
    names: set[str] = set()
    keys: set[bytes] = set()
    for e in entries:
        if not isinstance(e.name, str) or not e.name or len(e.public_key) != 32:
            msg = f"device `{e.name}` needs a name and a 32-byte public key"
            raise StorageError(msg)
        if e.name in names or e.public_key in keys:
            msg = f"device `{e.name}` or its key is given twice"
            raise StorageError(msg)
        names.add(e.name)
        keys.add(e.public_key)
    return entries


def already_registered(entries: list[DeviceEntry]) -> StorageError:
    """The error of a registration that hit a registered name or key (every backend's)."""
    if len(entries) == 1:
        return StorageError(f"device `{entries[0].name}` or its key is already registered")
    return StorageError(
        f"registering {len(entries)} devices failed: a name or key is already registered"
    )


class Registry:
    """Devices known to the endpoint, in the endpoint's SQLite file (table ``devices``).

    Args:
        path: the endpoint database (shared with :class:`SQLiteStorage`).
        create: create the database when missing (see :func:`open_db`).
        check: run ``PRAGMA quick_check`` when opening an existing database.
    """

    def __init__(self, path: str | Path, *, create: bool = True, check: bool = True) -> None:
        self._conn = open_db(path, create=create, check=check)
        self._conn.execute(
            """CREATE TABLE IF NOT EXISTS devices (
                name TEXT PRIMARY KEY, public_key BLOB NOT NULL UNIQUE,
                added REAL NOT NULL, revoked REAL)"""
        )

    def add(self, name: str, public_key: bytes, *, now: float | None = None) -> DeviceEntry:
        """Register a device.

        Raises:
            StorageError: the name or key is already registered.
        """
        return self.add_many([(name, public_key)], now=now)[0]

    def add_many(
        self, devices: Iterable[tuple[str, bytes]], *, now: float | None = None
    ) -> list[DeviceEntry]:
        """Register many devices in one transaction (one disk sync for a whole fleet).

        Args:
            devices: ``(name, 32-byte public key)`` pairs.
            now: the registration time (epoch seconds; default: the current time).

        Returns:
            The new entries, in the order given.

        Raises:
            StorageError: a name or key is invalid or already registered; then none of the
                devices is registered.
        """
        entries = new_entries(devices, now)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT INTO devices VALUES (?, ?, ?, NULL)",
                    [(e.name, e.public_key, e.added) for e in entries],
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            raise already_registered(entries) from exc
        return entries

    def revoke(self, name: str, *, now: float | None = None) -> bool:
        """Revoke a device; False if there is no such active device."""
        at = time.time() if now is None else now
        cur = self._conn.execute(
            "UPDATE devices SET revoked = ? WHERE name = ? AND revoked IS NULL", (at, name)
        )
        return cur.rowcount == 1

    def revoked_among(self, names: Iterable[str]) -> list[str]:
        """The names in ``names`` that are revoked now (the endpoint's live check)."""
        wanted = list(names)
        out: list[str] = []
        for i in range(0, len(wanted), 500):  # SQLite's host-parameter limit
            chunk = wanted[i : i + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                f"SELECT name FROM devices WHERE revoked IS NOT NULL AND name IN ({marks})",
                chunk,
            ).fetchall()
            out.extend(r[0] for r in rows)
        return out

    def data_version(self) -> int:
        """SQLite's ``PRAGMA data_version``: changes when another connection commits.

        The endpoint polls it (cheap: no table read) to notice a ``device revoke`` run by
        another process.
        """
        return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def get(self, name: str) -> DeviceEntry | None:
        """The device named ``name`` (active or revoked), or None."""
        row = self._conn.execute("SELECT * FROM devices WHERE name = ?", (name,)).fetchone()
        return DeviceEntry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def lookup(self, public_key: bytes) -> DeviceEntry | None:
        """The device with this key (active or revoked), or None."""
        row = self._conn.execute(
            "SELECT * FROM devices WHERE public_key = ?", (public_key,)
        ).fetchone()
        return DeviceEntry(row[0], bytes(row[1]), row[2], row[3]) if row else None

    def list(self) -> list[DeviceEntry]:
        """All devices, by name."""
        rows = self._conn.execute("SELECT * FROM devices ORDER BY name").fetchall()
        return [DeviceEntry(r[0], bytes(r[1]), r[2], r[3]) for r in rows]

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()


def write_key_file(path: str | Path, data: dict[str, Any]) -> None:
    """Write a JSON key file with mode 0600 (created so before the secret is written)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, _OWNER_ONLY)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, _OWNER_ONLY)
    os.replace(tmp, p)


def endpoint_keypair(path: str | Path, *, create: bool = True) -> KeyPair:
    """Load the endpoint's key pair from ``path``, creating it (0600) if absent and allowed."""
    p = Path(path)
    if not p.exists() and create:
        kp = KeyPair.generate(os.urandom)
        write_key_file(
            p,
            {
                "kind": "streamfeat-endpoint",
                "private_key": kp.private.hex(),
                "public_key": kp.public.hex(),
            },
        )
        return kp
    data = read_key_file(p)
    return KeyPair.from_private(bytes.fromhex(data["private_key"]))
