"""Shared test set-up: Hypothesis profiles and the ``manual_clock`` fixture."""

from __future__ import annotations

import os
from pathlib import Path

# The suite tests the pure-Python code, the reference (and its subprocesses inherit the choice);
# `make test-compiled` sets STREAMFEAT_TEST_COMPILED=1 to run the golden cases and the
# differential and property tests against the compiled core (streamfeat/_compiled.py). Set
# before anything imports streamfeat, which makes the choice once per process.
if os.environ.get("STREAMFEAT_TEST_COMPILED") != "1":
    os.environ["STREAMFEAT_PURE"] = "1"

import pytest
from hypothesis import HealthCheck, settings

from streamfeat.clock import ManualClock
from tests.endpoint_db import endpoint_db  # noqa: F401 (a fixture: SQLite and PostgreSQL)

# CI (.ci/run sets HYPOTHESIS_PROFILE=ci) draws the same examples on every run, so that a
# landing never hangs on the draw; a developer's `make test` draws new ones each time ("dev"),
# and HYPOTHESIS_PROFILE=soak draws 2,000 per test: that is where new failures are found
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "dev", max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "soak", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

#: ``../shared`` beside the checkout: data and vectors too large or too foreign to commit. CI has
#: it; a fresh clone may not, and then the tests that need it skip, naming what is missing.
SHARED = Path(__file__).resolve().parents[2] / "shared"
TAOBAO_CSV = SHARED / "data" / "taobao_userbehavior_sample.csv.gz"


def shared_path(relative: str, needed_by: str) -> Path:
    """Return ``../shared/RELATIVE``, or skip the calling test saying what is missing and why.

    Args:
        relative: the path inside the shared folder (``"data/taobao_userbehavior_sample.csv.gz"``).
        needed_by: who needs it, for the message (``"the Taobao tests"``).
    """
    path = SHARED / relative
    if not path.exists():
        pytest.skip(f"../shared/{relative} not found: {needed_by} need the shared data folder")
    return path


@pytest.fixture
def manual_clock() -> ManualClock:
    """A clock at 2026-01-01T00:00:00Z that moves only when the test advances it."""
    return ManualClock(start=1_767_225_600.0)


@pytest.fixture
def taobao_csv() -> Path:
    """The shared Taobao UserBehavior sample; the test skips when ``../shared`` is absent."""
    return shared_path(TAOBAO_CSV.relative_to(SHARED).as_posix(), "the Taobao tests")


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
