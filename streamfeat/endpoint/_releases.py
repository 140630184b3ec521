"""The endpoint's release book: bundles, releases, per-device rollout state, groups and grades.

Kept in the endpoint's SQLite file beside the batches (its own tables). The rollout logic is
the pure :class:`streamfeat.release.Release`; this module persists it and turns a rollout
into announcements: per targeted device, a config whose body is ``ANNOUNCE_MAGIC`` + JSON
``{"release", "bundle", "size"}``, stored through the endpoint storage's per-device config
(so a device offline now gets it at its next connection) and queued in ``announcements`` for
a running endpoint to push live.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfeat.endpoint._storage import SQLiteStorage, open_db
from streamfeat.errors import StorageError
from streamfeat.release import (
    DEFAULT_GRADING,
    GradeReport,
    Grading,
    HealthReport,
    HealthThresholds,
    Matrix,
    Release,
    ReleaseState,
    Transition,
    evaluate,
    parse_matrix,
    read_header,
)

__all__ = ["ANNOUNCE_MAGIC", "ReleaseBook", "ReleaseStatus", "announcement_body"]

ANNOUNCE_MAGIC = b"SFANNOUNCE1\n"

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS bundles (id TEXT PRIMARY KEY, name TEXT NOT NULL,
        version TEXT NOT NULL, size INTEGER NOT NULL, data BLOB NOT NULL, created REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS releases (id TEXT PRIMARY KEY, created REAL NOT NULL,
        state TEXT NOT NULL, percent REAL NOT NULL, matrix TEXT NOT NULL,
        thresholds TEXT NOT NULL, bundles TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS release_history (release TEXT NOT NULL, at REAL NOT NULL,
        step TEXT NOT NULL, state TEXT NOT NULL, percent REAL NOT NULL, reason TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS release_devices (release TEXT NOT NULL, device TEXT NOT NULL,
        bundle TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, updated REAL NOT NULL,
        health TEXT, PRIMARY KEY (release, device))""",
    """CREATE TABLE IF NOT EXISTS device_grades (device TEXT PRIMARY KEY, model TEXT NOT NULL,
        p50 REAL NOT NULL, p99 REAL NOT NULL, runs INTEGER NOT NULL, updated REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS device_groups (device TEXT PRIMARY KEY, grp TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS announcements (seq INTEGER PRIMARY KEY AUTOINCREMENT,
        device TEXT NOT NULL, version INTEGER NOT NULL, body BLOB NOT NULL)""",
]

# Per-device rollout status, in the order a device goes through them.
STATUSES = ("announced", "pulled", "live", "failed", "rolled_back")


def announcement_body(release: str, bundle: str, size: int, *, rollback: bool = False) -> bytes:
    """The config body that announces a bundle (or a rollback) to a device."""
    doc: dict[str, Any] = {"release": release, "bundle": bundle, "size": size}
    if rollback:
        doc["rollback"] = True
    return ANNOUNCE_MAGIC + json.dumps(doc, sort_keys=True).encode()


@dataclass(frozen=True, slots=True)
class ReleaseStatus:
    """What ``release status`` shows."""

    id: str
    state: str
    percent: float
    by_status: dict[str, int]
    by_bundle: dict[str, dict[str, int]]
    history: list[Transition]
    health: str | None


class ReleaseBook:
    """Releases in the endpoint database (``path``), beside the batch storage.

    Args:
        path: the endpoint database (must exist: created by ``streamfeat keys``/``serve``).
        grading: device tiers from grade reports.
    """

    def __init__(self, path: str | Path, *, grading: Grading = DEFAULT_GRADING) -> None:
        self.path = Path(path)
        self.grading = grading
        self._conn = open_db(self.path)
        self._storage = SQLiteStorage(self.path)
        with self._conn:
            for stmt in _SCHEMA:
                self._conn.execute(stmt)

    def close(self) -> None:
        """Close both connections."""
        self._conn.close()
        self._storage.close()

    # ---- bundles -----------------------------------------------------------------------

    def add_bundle(self, data: bytes, *, now: float) -> tuple[str, str]:
        """Keep a signed bundle; return (id, name). Verification is the caller's (CLI)."""
        header, _ = read_header(data)
        with self._conn:
            self._conn.execute(
                "INSERT OR IGNORE INTO bundles VALUES (?, ?, ?, ?, ?, ?)",
                (header.id, header.name, header.version, len(data), data, now),
            )
        return header.id, header.name

    def bundle_size(self, bundle: str) -> int | None:
        """The signed bundle's size, or None when unknown."""
        row = self._conn.execute("SELECT size FROM bundles WHERE id = ?", (bundle,)).fetchone()
        return None if row is None else int(row[0])

    def bundle_bytes(self, bundle: str, start: int = 0, length: int = -1) -> bytes | None:
        """Bytes of a signed bundle from ``start`` (``length`` -1: to the end)."""
        n = length if length >= 0 else 1 << 62
        row = self._conn.execute(
            "SELECT substr(data, ?, ?) FROM bundles WHERE id = ?", (start + 1, n, bundle)
        ).fetchone()
        return None if row is None else bytes(row[0])

    # ---- groups and grades -------------------------------------------------------------

    def set_groups(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Load a group assignment table (device, group); returns the rows written."""
        rows = list(pairs)
        with self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO device_groups VALUES (?, ?)", rows)
        return len(rows)

    def record_grade(self, device: str, report: GradeReport, *, now: float) -> str:
        """Keep a device's grade report; return its tier."""
        with self._conn:
            self._conn.execute(
                "INSERT OR REPLACE INTO device_grades VALUES (?, ?, ?, ?, ?, ?)",
                (device, report.model, report.infer_p50_ms, report.infer_p99_ms, report.runs, now),
            )
        return self.grading.tier(report)

    def _tier(self, device: str) -> str | None:
        row = self._conn.execute(
            "SELECT model, p50, p99, runs FROM device_grades WHERE device = ?", (device,)
        ).fetchone()
        if row is None:
            return None
        return self.grading.tier(GradeReport(row[0], row[1], row[2], row[3]))

    def _group(self, device: str) -> str | None:
        row = self._conn.execute(
            "SELECT grp FROM device_groups WHERE device = ?", (device,)
        ).fetchone()
        return None if row is None else str(row[0])

    # ---- releases ----------------------------------------------------------------------

    def create(
        self,
        release_id: str,
        matrix_text: str,
        *,
        thresholds: HealthThresholds,
        now: float,
        source: str = "matrix",
    ) -> Matrix:
        """Create a release over bundles already added, resolving the matrix's names.

        Raises:
            ConfigError: a bad matrix.
            StorageError: a bundle the matrix names is not in the book, or the id exists.
        """
        matrix = parse_matrix(matrix_text, source=source)
        ids: dict[str, str] = {}
        for name in sorted(matrix.names()):
            row = self._conn.execute(
                "SELECT id FROM bundles WHERE name = ? ORDER BY created DESC LIMIT 1", (name,)
            ).fetchone()
            if row is None:
                msg = f"the matrix names bundle {name!r}, which was not given"
                raise StorageError(msg)
            ids[name] = str(row[0])
        try:
            with self._conn:
                self._conn.execute(
                    "INSERT INTO releases VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        release_id,
                        now,
                        ReleaseState.CREATED.value,
                        0.0,
                        matrix_text,
                        json.dumps(_fields(thresholds)),
                        json.dumps(ids, sort_keys=True),
                    ),
                )
        except sqlite3.IntegrityError as exc:
            msg = f"release {release_id} exists"
            raise StorageError(msg) from exc
        return matrix

    def load(self, release_id: str) -> tuple[Release, Matrix, dict[str, str]]:
        """The release, its matrix and its bundle ids by name.

        Raises:
            StorageError: no such release.
        """
        row = self._conn.execute(
            "SELECT state, percent, matrix, thresholds, bundles FROM releases WHERE id = ?",
            (release_id,),
        ).fetchone()
        if row is None:
            msg = f"no release {release_id!r}"
            raise StorageError(msg)
        history = [
            Transition(at, step, ReleaseState(state), percent, reason)
            for at, step, state, percent, reason in self._conn.execute(
                "SELECT at, step, state, percent, reason FROM release_history WHERE release = ?"
                " ORDER BY rowid",
                (release_id,),
            )
        ]
        release = Release(
            release_id,
            HealthThresholds(**json.loads(row[3])),
            ReleaseState(row[0]),
            float(row[1]),
            history,
        )
        return release, parse_matrix(row[2]), json.loads(row[4])

    def _save(self, release: Release, transition: Transition) -> None:
        self._conn.execute(
            "UPDATE releases SET state = ?, percent = ? WHERE id = ?",
            (release.state.value, release.percent, release.id),
        )
        self._conn.execute(
            "INSERT INTO release_history VALUES (?, ?, ?, ?, ?, ?)",
            (
                release.id,
                transition.at,
                transition.step,
                transition.state.value,
                transition.percent,
                transition.reason,
            ),
        )

    def _announce(self, device: str, body: bytes) -> None:
        current = self._storage.get_config(device)
        version = (current[0] if current else 0) + 1
        self._storage.set_config(device, version, body)
        self._conn.execute(
            "INSERT INTO announcements (device, version, body) VALUES (?, ?, ?)",
            (device, version, body),
        )

    def rollout(
        self, release_id: str, percent: float, devices: Iterable[str], *, now: float
    ) -> int:
        """Raise a release to ``percent`` over ``devices`` (the active registry); announce to
        each newly reached device its matrix cell's bundle. Returns the devices announced to.

        Raises:
            ReleaseStateError: the step is not allowed (nothing changes).
        """
        release, matrix, ids = self.load(release_id)
        transition = release.rollout(percent, now=now)
        announced = 0
        with self._conn:
            self._save(release, transition)
            for device in devices:
                if not release.reaches(device):
                    continue
                bundle = ids[matrix.resolve(self._group(device), self._tier(device))]
                row = self._conn.execute(
                    "SELECT bundle FROM release_devices WHERE release = ? AND device = ?",
                    (release_id, device),
                ).fetchone()
                if row is not None and row[0] == bundle:
                    continue
                size = self.bundle_size(bundle) or 0
                self._announce(device, announcement_body(release_id, bundle, size))
                self._conn.execute(
                    "INSERT OR REPLACE INTO release_devices VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (release_id, device, bundle, "announced", "", now),
                )
                announced += 1
        return announced

    def rollback(self, release_id: str, reason: str, *, now: float) -> int:
        """Roll a release back: every device it reached is told to go back. Returns how many.

        Raises:
            ReleaseStateError: already rolled back (nothing changes).
        """
        release, _, _ = self.load(release_id)
        transition = release.rollback(reason, now=now)
        return self._roll_back(release, transition, now)

    def _roll_back(self, release: Release, transition: Transition, now: float) -> int:
        with self._conn:
            self._save(release, transition)
            rows = self._conn.execute(
                "SELECT device, bundle FROM release_devices WHERE release = ? AND status != ?",
                (release.id, "rolled_back"),
            ).fetchall()
            for device, bundle in rows:
                body = announcement_body(release.id, bundle, 0, rollback=True)
                self._announce(device, body)
            self._conn.execute(
                "UPDATE release_devices SET status = 'rolled_back', reason = ?, updated = ?"
                " WHERE release = ?",
                (transition.reason, now, release.id),
            )
        return len(rows)

    def report(
        self,
        release_id: str,
        device: str,
        status: str,
        *,
        reason: str = "",
        health: HealthReport | None = None,
        now: float,
    ) -> Transition | None:
        """Take a device's status and health; roll the release back by itself when its
        health crosses a threshold (returns that transition).

        Raises:
            StorageError: no such release, or an unknown status.
        """
        if status not in STATUSES:
            msg = f"unknown status {status!r} (one of {', '.join(STATUSES)})"
            raise StorageError(msg)
        release, _, _ = self.load(release_id)
        h = None if health is None else json.dumps(_fields(health))
        with self._conn:
            self._conn.execute(
                "UPDATE release_devices SET status = ?, reason = ?, updated = ?,"
                " health = coalesce(?, health) WHERE release = ? AND device = ?",
                (status, reason, now, h, release_id, device),
            )
        transition = release.observe(self._health(release_id), now=now)
        if transition is not None:
            self._roll_back(release, transition, now)
        return transition

    def _health(self, release_id: str) -> list[HealthReport]:
        out = []
        for device, status, health in self._conn.execute(
            "SELECT device, status, health FROM release_devices WHERE release = ?", (release_id,)
        ):
            doc = json.loads(health) if health else {"device": device}
            doc["device"] = device
            if status == "failed":
                doc["load_failed"] = True
            if health or status == "failed":
                out.append(HealthReport(**doc))
        return out

    def status(self, release_id: str) -> ReleaseStatus:
        """Devices by status and by bundle, the history, and the health verdict."""
        release, _, ids = self.load(release_id)
        names = {v: k for k, v in ids.items()}
        by_status: Counter[str] = Counter()
        by_bundle: dict[str, Counter[str]] = {}
        for bundle, status, n in self._conn.execute(
            "SELECT bundle, status, count(*) FROM release_devices WHERE release = ?"
            " GROUP BY bundle, status",
            (release_id,),
        ):
            by_status[status] += n
            by_bundle.setdefault(names.get(bundle, bundle[:12]), Counter())[status] += n
        verdict = evaluate(self._health(release_id), release.thresholds)
        return ReleaseStatus(
            release.id,
            release.state.value,
            release.percent,
            dict(by_status),
            {k: dict(v) for k, v in by_bundle.items()},
            release.history,
            verdict,
        )

    def recent_releases(self, days: float = 7.0) -> list[tuple[str, str, float]]:
        """(id, state, percent) of the releases created in the last ``days``, newest first."""
        newest = self._conn.execute("SELECT max(created) FROM releases").fetchone()[0] or 0.0
        return [
            (str(i), str(st), float(p))
            for i, st, p in self._conn.execute(
                "SELECT id, state, percent FROM releases WHERE created >= ? ORDER BY created DESC",
                (newest - days * 86400,),
            )
        ]

    def announcements_after(self, seq: int) -> list[tuple[int, str, int, bytes]]:
        """Announcements queued after ``seq`` (seq, device, version, body), for live push."""
        return [
            (int(s), str(d), int(v), bytes(b))
            for s, d, v, b in self._conn.execute(
                "SELECT seq, device, version, body FROM announcements WHERE seq > ? ORDER BY seq",
                (seq,),
            )
        ]


def _fields(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}
