"""What every benchmark gets: cached input logs, a timer, and the row type of the one table.

Benchmarks never gate anything; they measure side by side in one run and report ratios.
"""

from __future__ import annotations

import gc
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TAOBAO_CSV = SHARED_DATA / "taobao_userbehavior_sample.csv.gz"


@dataclass
class Row:
    """One line of the benchmark table."""

    group: str  # the benchmark ("foundation", "triggers", ...)
    name: str  # what was measured
    value: float
    unit: str  # "events/s", "ms", "bytes", "MB", "x"
    ratio: float | None = None  # against the row named in `vs`
    vs: str = ""
    note: str = ""


@dataclass
class Context:
    """Shared inputs and helpers for the benchmarks of one `make bench` run."""

    quick: bool
    tmp: Path
    model: Path | None = None  # --model: the ranking benchmark's model file (a trained one)
    _logs: dict[Any, Path] = field(default_factory=dict)

    def generated_log(self, min_events: int, seed: int = 7) -> Path:
        """Return a generated JSONL log with at least ``min_events`` events (cached per run)."""
        key = ("gen", min_events, seed)
        if key not in self._logs:
            path = self.tmp / f"generated-{min_events}-{seed}.jsonl"
            # about 14 events per device-minute at the generator's default activity
            devices = max(10, min_events // 600)
            minutes = 60
            while True:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "streamfeat",
                        "generate",
                        "--devices",
                        str(devices),
                        "--minutes",
                        str(minutes),
                        "--seed",
                        str(seed),
                        "--out",
                        str(path),
                    ],
                    check=True,
                )
                with path.open("rb") as fh:
                    n = sum(1 for _ in fh)
                if n >= min_events:
                    break
                devices = int(devices * (min_events / max(n, 1)) * 1.1) + 1
            self._logs[key] = path
        return self._logs[key]

    def taobao_log(self) -> Path | None:
        """Return the Taobao log converted to SPEC events, or None when the data is absent."""
        if not TAOBAO_CSV.exists():
            return None
        key = ("taobao",)
        if key not in self._logs:
            path = self.tmp / "taobao.jsonl"
            with path.open("wb") as fh:
                subprocess.run(
                    [sys.executable, "-m", "streamfeat", "convert", "taobao", str(TAOBAO_CSV)],
                    check=True,
                    stdout=fh,
                )
            self._logs[key] = path
        return self._logs[key]

    def timeit(self, fn: Callable[[], Any], *, repeat: int = 3) -> float:
        """Return the best wall time in seconds of ``repeat`` calls of ``fn``."""
        best = float("inf")
        for _ in range(1 if self.quick else repeat):
            gc.collect()
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best
