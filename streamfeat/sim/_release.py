"""``simulate --release``: a staged release through the fleet while it runs.

Before the fleet starts, the simulator makes a release key, builds one signed bundle (the
run's tasks file plus ``--release-bundle-mb`` of model bytes; with ``--release-broken`` a task
that raises on every ``click``), keeps it in the endpoint's release book and creates a release
whose matrix sends every device to it. While the fleet feeds, each stage ``P@T`` raises the
rollout to ``P`` percent ``T`` seconds after feeding began (through the release book, as
``streamfeat release rollout`` does against a running endpoint, which pushes the announcements
to connected devices). A monitor reads the per-device statuses every quarter second and keeps,
per device, when it was first seen live. The report gives the coverage curve (share of the
devices announced so far that are live, over time), per stage the time from its announcement to
50 / 90 / 100 % of its devices live, bytes pulled per device, refusals, and the rollback if the
release rolled back (a broken bundle must: its devices report task errors).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.release import HealthThresholds, build_archive, public_key_bytes, sign_bundle

__all__ = ["ReleasePlan", "ReleaseRun", "parse_release_spec"]

RELEASE_ID = "r-sim"
_BROKEN_TASK = b"def run(ctx):\n    raise RuntimeError('a deliberately broken bundle')\n"


@dataclass(frozen=True)
class ReleasePlan:
    """Stages ``(percent, seconds after feeding began)``, the bundle's size, broken or not."""

    stages: tuple[tuple[float, float], ...]
    bundle_mb: float = 1.0
    broken: bool = False


def parse_release_spec(spec: str, *, bundle_mb: float = 1.0, broken: bool = False) -> ReleasePlan:
    """Parse ``P@T,P@T,...`` (``10@2,50@8,100@15``): percents and times both increasing.

    Raises:
        ValueError: naming the part that is wrong.
    """
    stages: list[tuple[float, float]] = []
    for part in spec.split(","):
        p, sep, t = part.strip().partition("@")
        try:
            percent, at = float(p), float(t) if sep else 0.0
        except ValueError:
            msg = f"--release stage {part.strip()!r} is not PERCENT@SECONDS (e.g. 10@2)"
            raise ValueError(msg) from None
        if not 0 < percent <= 100 or at < 0:
            msg = f"--release stage {part.strip()!r}: percent in (0, 100], seconds >= 0"
            raise ValueError(msg)
        if stages and (percent <= stages[-1][0] or at < stages[-1][1]):
            msg = f"--release stage {part.strip()!r}: percents and times must increase"
            raise ValueError(msg)
        stages.append((percent, at))
    if not stages:
        msg = "--release needs at least one stage"
        raise ValueError(msg)
    if not 0 <= bundle_mb <= 64:
        msg = f"--release-bundle-mb must be in 0..64, got {bundle_mb}"
        raise ValueError(msg)
    return ReleasePlan(tuple(stages), bundle_mb, broken)


@dataclass
class _Stage:
    percent: float
    at: float
    announced_at: float = 0.0
    devices: list[str] = field(default_factory=list)


class ReleaseRun:
    """One staged release during a simulation."""

    def __init__(
        self, plan: ReleasePlan, db: str | Path, keys: Path, tasks_text: str, seed: int
    ) -> None:
        self.plan, self.db, self.keys = plan, db, keys
        self.tasks_text = tasks_text
        self.bundle_text = tasks_text
        self.seed = seed
        self.stages = [_Stage(p, t) for p, t in plan.stages]
        self.live_at: dict[str, float] = {}
        self.statuses: dict[str, int] = {}
        self.reasons: dict[str, int] = {}
        self.curve: list[tuple[float, float]] = []
        self.t0 = 0.0
        self.bundle_bytes = 0
        self.state = "created"
        self.rollback_reason = ""

    def prepare(self) -> str:
        """Make the key and the bundle, create the release; return the public key (hex)."""
        from streamfeat.endpoint._releases import ReleaseBook

        key = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
        text = self.tasks_text
        files: dict[str, bytes] = {}
        if self.plan.broken:
            text += "\n[triggers]\n" if "[triggers]" not in text else ""
            text = text.replace("[triggers]\n", '[triggers]\nsim_any_click = "click"\n', 1)
            text += '\n[tasks.sim_broken]\non = ["sim_any_click"]\nrun = "sim_broken:run"\n'
            files["sim_broken.py"] = _BROKEN_TASK
        files["tasks.toml"] = text.encode()
        size = int(self.plan.bundle_mb * 1_000_000)
        if size:
            files["model.npy"] = random.Random(self.seed).randbytes(size)
        self.bundle_text = text
        archive = build_archive(files, name="sim", version="1")
        _, data = sign_bundle(archive, key, name="sim", version="1")
        self.bundle_bytes = len(data)
        book = ReleaseBook(self.db)
        try:
            book.add_bundle(data, now=time.time())
            limits = HealthThresholds(max_error_rate=0.05, min_reports=3)
            book.create(RELEASE_ID, 'default = "sim"', thresholds=limits, now=time.time())
        finally:
            book.close()
        return public_key_bytes(key).hex()

    async def run(self, devices: list[str], t0: float) -> None:
        """Roll out stage by stage and watch the statuses (until cancelled)."""
        self.t0 = t0
        monitor = asyncio.create_task(self._monitor())
        try:
            for stage in self.stages:
                await asyncio.sleep(max(0.0, t0 + stage.at - time.time()))
                if self.state == "rolled_back":
                    break
                stage.announced_at = time.time()
                stage.devices = await asyncio.to_thread(self._rollout, stage.percent, devices)
            await monitor
        finally:
            monitor.cancel()

    def _rollout(self, percent: float, devices: list[str]) -> list[str]:
        from streamfeat.endpoint._releases import ReleaseBook
        from streamfeat.errors import ConfigError

        book = ReleaseBook(self.db)
        try:
            before = {d for d, _ in self._rows(book)}
            try:
                book.rollout(RELEASE_ID, percent, devices, now=time.time())
            except ConfigError:  # rolled back meanwhile: nothing more is announced
                return []
            return sorted({d for d, _ in self._rows(book)} - before)
        finally:
            book.close()

    @staticmethod
    def _rows(book: Any) -> list[tuple[str, str]]:
        return list(book.device_statuses(RELEASE_ID).items())

    async def _monitor(self) -> None:
        while True:
            await asyncio.to_thread(self._look)
            await asyncio.sleep(0.25)

    def _look(self) -> None:
        from streamfeat.endpoint._releases import ReleaseBook

        book = ReleaseBook(self.db)
        try:
            now = time.time()
            rows = self._rows(book)
            st = book.status(RELEASE_ID)
        finally:
            book.close()
        counts: dict[str, int] = {}
        for device, status in rows:
            counts[status] = counts.get(status, 0) + 1
            if status == "live" and device not in self.live_at:
                self.live_at[device] = now
        self.statuses = counts
        self.state = st.state
        if st.state == "rolled_back" and st.history:
            self.rollback_reason = st.history[-1].reason
        if rows:
            self.curve.append((round(now - self.t0, 2), round(len(self.live_at) / len(rows), 4)))

    def report(self, pulled_bytes: int, devices: int) -> dict[str, Any]:
        """The release part of the simulation report."""
        self._look()
        stages = []
        for s in self.stages:
            times = sorted(self.live_at[d] - s.announced_at for d in s.devices if d in self.live_at)
            n = len(s.devices)

            def reach(share: float, times: list[float] = times, n: int = n) -> float | None:
                k = max(1, int(share * n + 0.999999))  # ceil
                return round(times[k - 1], 2) if n and len(times) >= k else None

            stages.append({
                "percent": s.percent, "at_s": s.at, "devices": n,
                "live": len(times), "to_50_s": reach(0.5), "to_90_s": reach(0.9),
                "to_100_s": reach(1.0),
            })  # fmt: skip
        return {
            "bundle_bytes": self.bundle_bytes,
            "broken": self.plan.broken,
            "state": self.state,
            "rollback": self.rollback_reason,
            "statuses": self.statuses,
            "stages": stages,
            "pulled_bytes_per_device": round(pulled_bytes / devices) if devices else 0,
            "curve": self.curve[:: max(1, len(self.curve) // 60)],
        }
