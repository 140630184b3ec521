"""Shared test set-up: Hypothesis profiles and the ``manual_clock`` fixture."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from streamfeat.clock import ManualClock

settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "soak", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TAOBAO_CSV = SHARED_DATA / "taobao_userbehavior_sample.csv.gz"


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock at 2026-01-01T00:00:00Z that moves only when the test advances it."""
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def taobao_csv() -> Path:
    """The shared Taobao UserBehavior sample; the test fails clearly when it is absent."""
    if not TAOBAO_CSV.exists():
        pytest.fail(
            f"this test needs the shared Taobao log at {TAOBAO_CSV} "
            "(../shared/data beside the checkout); it is not there"
        )
    return TAOBAO_CSV


@pytest.fixture(scope="session")
def pg_server():  # type: ignore[no-untyped-def]
    """A real PostgreSQL server on 127.0.0.1 for the session (skips when it can't run here)."""
    from tests.pg_helpers import PgServer, missing_reason

    why = missing_reason()
    if why is not None:
        if os.environ.get("STREAMFEAT_REQUIRE_PG"):
            pytest.fail(f"STREAMFEAT_REQUIRE_PG is set but {why}")
        pytest.skip(why)
    server = PgServer(fsync=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server) -> str:  # type: ignore[no-untyped-def]
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return str(pg_server.create_database())
