"""The agent's tasks-file version history: one row per version applied or refused.

Table ``agent_configs`` in the device store: ``version``, ``applied`` (ms, the agent's clock),
``digest`` (BLAKE2b-64 of the file's text), ``source`` (``local`` or ``downlink``), ``status``
(``applied`` or ``refused: REASON``) and ``changes`` (JSON: the
:class:`~streamfeat.agent._switch.SwitchReport` of the switch).
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from streamfeat.io._store import Store

__all__ = ["VersionHistory"]

_SQL = """CREATE TABLE IF NOT EXISTS agent_configs (
    id INTEGER PRIMARY KEY AUTOINCREMENT, version INTEGER NOT NULL, applied INTEGER NOT NULL,
    digest TEXT NOT NULL, source TEXT NOT NULL, status TEXT NOT NULL, changes TEXT NOT NULL)"""
_KEYS = ("version", "applied", "digest", "source", "status", "changes")


class VersionHistory:
    """Read and append the ``agent_configs`` table of ``store`` (created if absent)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        store.db.execute(_SQL)

    def record(
        self,
        version: int,
        text: str,
        source: str,
        status: str,
        changes: dict[str, Any],
        now_ms: int,
    ) -> None:
        """Append one version's outcome."""
        digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
        with self.store.transaction():
            self.store.db.conn.execute(
                "INSERT INTO agent_configs (version, applied, digest, source, status, changes) VALUES (?,?,?,?,?,?)",
                (version, now_ms, digest, source, status, orjson.dumps(changes).decode()),
            )

    def rows(self) -> list[dict[str, Any]]:
        """Every version applied or refused, oldest first (``changes`` decoded)."""
        rows = self.store.db.execute(
            f"SELECT {', '.join(_KEYS)} FROM agent_configs ORDER BY id"
        ).fetchall()
        return [dict(zip(_KEYS, r, strict=True)) | {"changes": orjson.loads(r[5])} for r in rows]
