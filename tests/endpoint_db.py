"""The ``endpoint_db`` fixture (registered in conftest): a test on SQLite and on PostgreSQL.

``endpoint_db`` is parametrised ``sqlite`` / ``postgresql``: an SQLite path in the test's
temporary folder, or a fresh database on the session's real PostgreSQL server (``pg_url``; the
PostgreSQL case skips with the reason when no server can run here, and fails instead under
``STREAMFEAT_REQUIRE_PG=1``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

__all__ = ["endpoint_db"]


@pytest.fixture(params=["sqlite", "postgresql"])
def endpoint_db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An endpoint database: ``tmp_path/ep.db`` or a ``postgresql://`` URL."""
    if request.param == "sqlite":
        return str(tmp_path / "ep.db")
    return str(request.getfixturevalue("pg_url"))
