"""The endpoint's release book: bundles, releases, per-device rollout state, groups and grades.

Kept in the endpoint's database beside the batches (its own tables), SQLite or PostgreSQL:
the logic here is written once over a :class:`~streamfeat.endpoint._release_store.ReleaseStore`.
The rollout logic is the pure :class:`streamfeat.release.Release`; this module persists it and
turns a rollout into announcements: per targeted device, a config whose body is
``ANNOUNCE_MAGIC`` + JSON ``{"release", "bundle", "size"}``, stored as the device's config (so a
device offline now gets it at its next connection) and queued in the downlink queue
(``announcements``) for every running endpoint process to push live.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from streamfeat.endpoint._release_store import ReleaseStore, open_release_store
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

__all__ = ["ANNOUNCE_MAGIC", "ReleaseBook", "ReleaseStatus", "announcement_body", "queue_config"]

ANNOUNCE_MAGIC = b"SFANNOUNCE1\n"
EVALUATE_EVERY = 1.0  # seconds between judgements of a release's whole health on healthy reports

_MAX_INT4 = 2**31 - 1

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
    """Releases in the endpoint database, beside the batch storage.

    Args:
        db: the endpoint database: an SQLite path (must exist: created by ``streamfeat
            keys``/``serve``), a ``postgresql://`` URL, or an open :class:`ReleaseStore`.
        grading: device tiers from grade reports.

    Raises:
        StorageError: the database cannot be opened.
    """

    def __init__(
        self, db: str | Path | ReleaseStore, *, grading: Grading = DEFAULT_GRADING
    ) -> None:
        self.grading = grading
        # when each release's whole health was last judged (by the reports' clock): a healthy
        # report re-judges it at most every EVALUATE_EVERY seconds, so N devices reporting
        # cost O(N) a second, not O(N) a report
        self._judged: dict[str, float] = {}
        if isinstance(db, str | Path):
            self.path: str | Path = db
            self._db: ReleaseStore = open_release_store(db)
        else:
            self.path = str(getattr(db, "path", getattr(db, "url", "")))
            self._db = db

    @property
    def store(self) -> ReleaseStore:
        """The database the book is kept in (its downlink queue included)."""
        return self._db

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()

    # ---- bundles -----------------------------------------------------------------------

    def add_bundle(self, data: bytes, *, now: float) -> tuple[str, str]:
        """Keep a signed bundle; return (id, name). Verification is the caller's (CLI)."""
        header, _ = read_header(data)
        self._db.run(
            "INSERT INTO bundles (id, name, version, size, data, created)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (header.id, header.name, header.version, len(data), data, now),
        )
        return header.id, header.name

    def bundle_size(self, bundle: str) -> int | None:
        """The signed bundle's size, or None when unknown."""
        rows = self._db.rows("SELECT size FROM bundles WHERE id = ?", (bundle,))
        return int(rows[0][0]) if rows else None

    def bundle_bytes(self, bundle: str, start: int = 0, length: int = -1) -> bytes | None:
        """Bytes of a signed bundle from ``start`` (``length`` -1: to the end)."""
        n = min(length, _MAX_INT4) if length >= 0 else _MAX_INT4
        rows = self._db.rows(
            "SELECT substr(data, CAST(? AS INTEGER), CAST(? AS INTEGER)) FROM bundles WHERE id = ?",
            (min(start + 1, _MAX_INT4), n, bundle),
        )
        return bytes(rows[0][0]) if rows else None

    # ---- groups and grades -------------------------------------------------------------

    def set_groups(self, pairs: Iterable[tuple[str, str]]) -> int:
        """Load a group assignment table (device, group); returns the rows written."""
        rows = list(pairs)
        with self._db.transaction():
            self._db.run_many(
                "INSERT INTO device_groups (device, grp) VALUES (?, ?)"
                " ON CONFLICT (device) DO UPDATE SET grp = excluded.grp",
                rows,
            )
        return len(rows)

    def record_grade(self, device: str, report: GradeReport, *, now: float) -> str:
        """Keep a device's grade report; return its tier."""
        self._db.run(
            "INSERT INTO device_grades (device, model, p50, p99, runs, updated)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (device) DO UPDATE SET"
            " model = excluded.model, p50 = excluded.p50, p99 = excluded.p99,"
            " runs = excluded.runs, updated = excluded.updated",
            (device, report.model, report.infer_p50_ms, report.infer_p99_ms, report.runs, now),
        )
        return self.grading.tier(report)

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
            rows = self._db.rows(
                "SELECT id FROM bundles WHERE name = ? ORDER BY created DESC LIMIT 1", (name,)
            )
            if not rows:
                msg = f"the matrix names bundle {name!r}, which was not given"
                raise StorageError(msg)
            ids[name] = str(rows[0][0])
        added = self._db.run(
            "INSERT INTO releases (id, created, state, percent, matrix, thresholds, bundles)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
        if added != 1:
            msg = f"release {release_id} exists"
            raise StorageError(msg)
        return matrix

    def load(self, release_id: str) -> tuple[Release, Matrix, dict[str, str]]:
        """The release, its matrix and its bundle ids by name.

        Raises:
            StorageError: no such release.
        """
        found = self._db.rows(
            "SELECT state, percent, matrix, thresholds, bundles FROM releases WHERE id = ?",
            (release_id,),
        )
        if not found:
            msg = f"no release {release_id!r}"
            raise StorageError(msg)
        row = found[0]
        history = [
            Transition(float(at), str(step), ReleaseState(state), float(percent), str(reason))
            for at, step, state, percent, reason in self._db.rows(
                "SELECT at, step, state, percent, reason FROM release_history WHERE release = ?"
                f" ORDER BY {self._db.history_order}",
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
        self._db.run(
            "UPDATE releases SET state = ?, percent = ? WHERE id = ?",
            (release.state.value, release.percent, release.id),
        )
        self._db.run(
            "INSERT INTO release_history (release, at, step, state, percent, reason)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                release.id,
                transition.at,
                transition.step,
                transition.state.value,
                transition.percent,
                transition.reason,
            ),
        )

    def _announce_many(self, pairs: list[tuple[str, bytes]]) -> None:
        """Store each (device, body) as the device's next config version and queue it (inside
        the caller's transaction; a handful of statements whatever the number of devices)."""
        if not pairs:
            return
        # each device's next version in the upsert itself (no lost update between processes;
        # the rows stay locked by this transaction until it commits, so the read below sees
        # exactly the versions written here)
        self._db.run_many(
            "INSERT INTO device_configs (device, version, body) VALUES (?, 1, ?)"
            " ON CONFLICT (device) DO UPDATE SET version = device_configs.version + 1,"
            " body = excluded.body",
            pairs,
        )
        wanted = {d for d, _ in pairs}
        versions = {
            str(d): int(v)
            for d, v in self._db.rows("SELECT device, version FROM device_configs")
            if d in wanted
        }
        self._db.run_many(
            "INSERT INTO announcements (device, version, body) VALUES (?, ?, ?)",
            [(d, versions[d], body) for d, body in pairs],
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
        with self._db.transaction():
            self._save(release, transition)
            # read once what every device needs (a few statements, not a few per device)
            reached = dict(
                self._db.rows(
                    "SELECT device, bundle FROM release_devices WHERE release = ?", (release_id,)
                )
            )
            groups = {
                str(d): str(g) for d, g in self._db.rows("SELECT device, grp FROM device_groups")
            }
            tiers = {
                str(d): self.grading.tier(GradeReport(str(m), float(p50), float(p99), int(runs)))
                for d, m, p50, p99, runs in self._db.rows(
                    "SELECT device, model, p50, p99, runs FROM device_grades"
                )
            }
            sizes: dict[str, int] = {}
            todo: list[tuple[str, str]] = []
            for device in dict.fromkeys(devices):
                if not release.reaches(device):
                    continue
                bundle = ids[matrix.resolve(groups.get(device), tiers.get(device))]
                if reached.get(device) == bundle:
                    continue
                if bundle not in sizes:
                    sizes[bundle] = self.bundle_size(bundle) or 0
                todo.append((device, bundle))
            self._announce_many([(d, announcement_body(release_id, b, sizes[b])) for d, b in todo])
            self._db.run_many(
                "INSERT INTO release_devices"
                " (release, device, bundle, status, reason, updated, health)"
                " VALUES (?, ?, ?, ?, ?, ?, NULL) ON CONFLICT (release, device) DO UPDATE"
                " SET bundle = excluded.bundle, status = excluded.status,"
                " reason = excluded.reason, updated = excluded.updated, health = NULL",
                [(release_id, d, b, "announced", "", now) for d, b in todo],
            )
            announced = len(todo)
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
        with self._db.transaction():
            self._save(release, transition)
            rows = self._db.rows(
                "SELECT device, bundle FROM release_devices WHERE release = ? AND status != ?"
                " ORDER BY device",
                (release.id, "rolled_back"),
            )
            self._announce_many(
                [(str(d), announcement_body(release.id, str(b), 0, rollback=True)) for d, b in rows]
            )
            self._db.run(
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
        self._db.run(
            "UPDATE release_devices SET status = ?, reason = ?, updated = ?,"
            " health = coalesce(CAST(? AS TEXT), health) WHERE release = ? AND device = ?",
            (status, reason, now, h, release_id, device),
        )
        last = self._judged.get(release_id)
        alarming = status == "failed" or (
            health is not None and evaluate([health], _one_device(release.thresholds)) is not None
        )
        if not alarming and last is not None and 0 <= now - last < EVALUATE_EVERY:
            return None
        self._judged[release_id] = now
        transition = release.observe(self._health(release_id), now=now)
        if transition is not None:
            self._roll_back(release, transition, now)
        return transition

    def _health(self, release_id: str) -> list[HealthReport]:
        out = []
        for device, status, health in self._db.rows(
            "SELECT device, status, health FROM release_devices WHERE release = ? ORDER BY device",
            (release_id,),
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
        for bundle, status, n in self._db.rows(
            "SELECT bundle, status, count(*) FROM release_devices WHERE release = ?"
            " GROUP BY bundle, status",
            (release_id,),
        ):
            by_status[str(status)] += int(n)
            name = names.get(bundle, str(bundle)[:12])
            by_bundle.setdefault(name, Counter())[str(status)] += int(n)
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

    def device_statuses(self, release_id: str) -> dict[str, str]:
        """Each device the release reached, with its rollout status."""
        return {
            str(d): str(s)
            for d, s in self._db.rows(
                "SELECT device, status FROM release_devices WHERE release = ?", (release_id,)
            )
        }

    def graded_devices(self) -> int:
        """How many devices reported a grade."""
        return int(self._db.rows("SELECT count(*) FROM device_grades")[0][0])

    def recent_releases(self, days: float = 7.0) -> list[tuple[str, str, float]]:
        """(id, state, percent) of the releases created in the last ``days``, newest first."""
        newest = self._db.rows("SELECT max(created) FROM releases")[0][0] or 0.0
        return [
            (str(i), str(st), float(p))
            for i, st, p in self._db.rows(
                "SELECT id, state, percent FROM releases WHERE created >= ? ORDER BY created DESC",
                (newest - days * 86400,),
            )
        ]

    def announcements_after(self, seq: int) -> list[tuple[int, str, int, bytes]]:
        """Announcements queued after ``seq`` (seq, device, version, body), for live push."""
        return queued_after(self._db, seq)


def _enqueue(db: ReleaseStore, device: str, version: int, body: bytes) -> None:
    db.run(
        "INSERT INTO announcements (device, version, body) VALUES (?, ?, ?)",
        (device, version, body),
    )


def queued_after(
    db: ReleaseStore, seq: int, limit: int = 100_000
) -> list[tuple[int, str, int, bytes]]:
    """Downlink queue entries after ``seq``: (seq, device, version, body), oldest first."""
    return [
        (int(s), str(d), int(v), bytes(b))
        for s, d, v, b in db.rows(
            "SELECT seq, device, version, body FROM announcements WHERE seq > ?"
            " ORDER BY seq LIMIT ?",
            (seq, limit),
        )
    ]


def queue_config(db: ReleaseStore, device: str, version: int, body: bytes) -> None:
    """Set ``device``'s config and queue it for every endpoint process to push live.

    The live config push of ``streamfeat device config`` and of ``TunnelServer.push_config``:
    the same downlink queue as release announcements.
    """
    with db.transaction():
        db.run(
            "INSERT INTO device_configs (device, version, body) VALUES (?, ?, ?)"
            " ON CONFLICT (device) DO UPDATE SET version = excluded.version, body = excluded.body",
            (device, version, body),
        )
        _enqueue(db, device, version, body)


def _fields(obj: Any) -> dict[str, Any]:
    return {k: getattr(obj, k) for k in obj.__dataclass_fields__}


def _one_device(limits: HealthThresholds) -> HealthThresholds:
    """The thresholds applied to one report alone (no minimum count): a report that crosses
    them is judged with the whole release at once, whatever the time since the last."""
    return replace(limits, min_reports=1)
