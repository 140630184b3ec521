"""Gray rollout: which devices a release reaches at P percent, its health, and rollback.

**Stable percent.** A device's bucket for a release is a hash of (release id, device name)
into 0..9999; the device is in the rollout at ``P`` percent when its bucket is below
``P * 100``. Raising ``P`` only adds devices (a device in at 10% is in at 50%), and two
releases draw independent samples. The share of a large fleet in the rollout is ``P`` within
binomial bounds (tested).

**Health.** Devices report, per release, their task runs, task errors, timeouts, re-rank
latency p99 and whether the bundle failed to load. ``evaluate`` sums the reports of one
release and names the first threshold crossed (after at least ``min_reports`` devices
reported), or returns ``None``.

**The release's states** (one table, :data:`TRANSITIONS`)::

    created --rollout(P)--> rolling --rollout(100)--> complete
    rolling --rollout(P' >= P)--> rolling
    created|rolling|complete --rollback(reason)--> rolled_back   (final)
    rolling --observe(health crosses a threshold)--> rolled_back  (automatic, with the reason)

An illegal step raises :class:`ReleaseStateError` naming the state and the step; the release is
unchanged. Every transition is kept in ``history`` with its time (injected) and reason.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from streamfeat.errors import ConfigError

__all__ = [
    "TRANSITIONS",
    "HealthReport",
    "HealthThresholds",
    "Release",
    "ReleaseState",
    "ReleaseStateError",
    "Transition",
    "bucket",
    "evaluate",
    "in_rollout",
    "parse_thresholds",
]

BUCKETS = 10_000


def bucket(release_id: str, device: str) -> int:
    """The device's stable bucket (0..9999) for a release."""
    digest = hashlib.blake2b(f"{release_id}\x00{device}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def in_rollout(release_id: str, device: str, percent: float) -> bool:
    """Whether ``device`` is among the ``percent`` % a release reaches."""
    return bucket(release_id, device) < round(percent * BUCKETS / 100)


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One device's health on one release."""

    device: str
    task_runs: int = 0
    task_errors: int = 0
    timeouts: int = 0
    rerank_p99_ms: float = 0.0
    load_failed: bool = False


@dataclass(frozen=True, slots=True)
class HealthThresholds:
    """When a rollout stops and rolls back by itself (the release's ``[health]`` table)."""

    max_error_rate: float = 0.05
    max_timeout_rate: float = 0.05
    max_rerank_p99_ms: float = 100.0
    max_load_failures: int = 0
    min_reports: int = 3


def parse_thresholds(doc: dict[str, object], *, source: str = "release") -> HealthThresholds:
    """Read a ``[health]`` table.

    Raises:
        ConfigError: naming the key and the reason.
    """
    allowed = set(HealthThresholds.__dataclass_fields__)
    values: dict[str, float | int] = {}
    for key, value in doc.items():
        if key not in allowed:
            msg = f"unknown key (allowed: {', '.join(sorted(allowed))})"
            raise ConfigError(msg, file=source, key=f"health.{key}")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError("must be a number >= 0", file=source, key=f"health.{key}")
        if not math.isfinite(value):
            raise ConfigError("must be finite", file=source, key=f"health.{key}")
        values[key] = value
    for key in ("max_load_failures", "min_reports"):
        if key in values and not isinstance(values[key], int):
            raise ConfigError("must be an integer", file=source, key=f"health.{key}")
    return HealthThresholds(**values)  # type: ignore[arg-type]


def evaluate(reports: Iterable[HealthReport], limits: HealthThresholds) -> str | None:
    """The first threshold the reports cross, as a sentence, or ``None`` when healthy."""
    rs = list(reports)
    failed = sum(r.load_failed for r in rs)
    if failed > limits.max_load_failures:
        return f"{failed} device(s) failed to load the bundle (limit {limits.max_load_failures})"
    if len(rs) < limits.min_reports:
        return None
    runs = sum(r.task_runs for r in rs)
    if runs:
        rate = sum(r.task_errors for r in rs) / runs
        if rate > limits.max_error_rate:
            return f"task error rate {rate:.1%} > {limits.max_error_rate:.1%}"
        rate = sum(r.timeouts for r in rs) / runs
        if rate > limits.max_timeout_rate:
            return f"task timeout rate {rate:.1%} > {limits.max_timeout_rate:.1%}"
    worst = sorted(r.rerank_p99_ms for r in rs)
    median_p99 = worst[len(worst) // 2]
    if median_p99 > limits.max_rerank_p99_ms:
        return f"re-rank p99 {median_p99:.1f} ms (median device) > {limits.max_rerank_p99_ms:g} ms"
    return None


class ReleaseState(StrEnum):
    """Where a release is."""

    CREATED = "created"
    ROLLING = "rolling"
    COMPLETE = "complete"
    ROLLED_BACK = "rolled_back"


# (state, step) -> states it may lead to; every legal step of a release, in one place.
TRANSITIONS: dict[tuple[ReleaseState, str], frozenset[ReleaseState]] = {
    (ReleaseState.CREATED, "rollout"): frozenset({ReleaseState.ROLLING, ReleaseState.COMPLETE}),
    (ReleaseState.ROLLING, "rollout"): frozenset({ReleaseState.ROLLING, ReleaseState.COMPLETE}),
    (ReleaseState.CREATED, "rollback"): frozenset({ReleaseState.ROLLED_BACK}),
    (ReleaseState.ROLLING, "rollback"): frozenset({ReleaseState.ROLLED_BACK}),
    (ReleaseState.COMPLETE, "rollback"): frozenset({ReleaseState.ROLLED_BACK}),
    (ReleaseState.ROLLING, "observe"): frozenset({ReleaseState.ROLLING, ReleaseState.ROLLED_BACK}),
    (ReleaseState.COMPLETE, "observe"): frozenset(
        {ReleaseState.COMPLETE, ReleaseState.ROLLED_BACK}
    ),
}


class ReleaseStateError(ConfigError):
    """Raised when a step is not allowed in the release's state; the release is unchanged."""


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change of a release."""

    at: float
    step: str
    state: ReleaseState
    percent: float
    reason: str


@dataclass
class Release:
    """A release's rollout state (pure; the endpoint persists it and its history)."""

    id: str
    thresholds: HealthThresholds = field(default_factory=HealthThresholds)
    state: ReleaseState = ReleaseState.CREATED
    percent: float = 0.0
    history: list[Transition] = field(default_factory=list)

    def _check(self, step: str) -> None:
        if (self.state, step) not in TRANSITIONS:
            msg = f"can't {step} release {self.id} in state {self.state}"
            raise ReleaseStateError(msg)

    def _go(self, step: str, state: ReleaseState, now: float, reason: str) -> Transition:
        self.state = state
        t = Transition(now, step, state, self.percent, reason)
        self.history.append(t)
        return t

    def rollout(self, percent: float, *, now: float) -> Transition:
        """Reach ``percent`` % of the targeted devices (only ever more).

        Raises:
            ReleaseStateError: in a state that does not roll out, or ``percent`` is lower than
                now or not in 0..100.
        """
        self._check("rollout")
        if not 0 <= percent <= 100 or not math.isfinite(percent):
            msg = f"percent must be in 0..100, got {percent}"
            raise ReleaseStateError(msg)
        if percent < self.percent:
            msg = f"release {self.id} is at {self.percent:g}%: a rollout only grows (use rollback)"
            raise ReleaseStateError(msg)
        self.percent = percent
        state = ReleaseState.COMPLETE if percent >= 100 else ReleaseState.ROLLING
        return self._go("rollout", state, now, f"{percent:g}%")

    def rollback(self, reason: str, *, now: float) -> Transition:
        """Stop the release; every device goes back to what it ran before.

        Raises:
            ReleaseStateError: the release was already rolled back.
        """
        self._check("rollback")
        return self._go("rollback", ReleaseState.ROLLED_BACK, now, reason)

    def observe(self, reports: Iterable[HealthReport], *, now: float) -> Transition | None:
        """Check the devices' health; roll back by itself when a threshold is crossed."""
        if (self.state, "observe") not in TRANSITIONS:
            return None
        why = evaluate(reports, self.thresholds)
        if why is None:
            return None
        return self._go("observe", ReleaseState.ROLLED_BACK, now, f"automatic rollback: {why}")

    def reaches(self, device: str) -> bool:
        """Whether the device runs this release now."""
        if self.state in (ReleaseState.CREATED, ReleaseState.ROLLED_BACK):
            return False
        return in_rollout(self.id, device, self.percent)
