"""Device grading: time the model runtime on the shipped reference model.

At first start, and whenever the hardware description changes, an agent with a release key
runs :func:`grade` (a re-rank of 50 candidates with 50 exposures and 20 page views through the
shipped EdgeRec-style model, ``runs`` times) off the event loop and reports the figures to
the endpoint, which maps them to a tier (``streamfeat.release.Grading``, docs/release.md).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable

import numpy as np

from streamfeat.release import GradeReport

__all__ = ["grade", "hardware_id"]


def hardware_id() -> str:
    """What identifies this device's compute: machine, processor, cores, Python build."""
    return "|".join(
        (
            platform.machine(),
            platform.processor() or "?",
            str(os.cpu_count() or 0),
            platform.python_implementation(),
        )
    )


def grade(
    *, runs: int = 30, model: str | None = None, timer: Callable[[], float] = time.perf_counter
) -> GradeReport:
    """Time ``runs`` re-ranks on the reference model; return p50 and p99 in ms.

    Args:
        runs: inferences timed (one untimed warm-up first).
        model: the device model string reported (default: ``platform.node()``'s machine).
        timer: seconds, monotonic (injected in tests).
    """
    from streamfeat.models import load_model
    from streamfeat.models.edgerec import builtin_spec

    m = load_model(builtin_spec("edgerec-small"))
    rng = np.random.default_rng(0)
    feeds = {
        spec.name: rng.random((1, n, len(spec.fields)), dtype=np.float32)
        for spec, n in zip(m.spec.inputs, (50, 50, 20), strict=True)
    }
    m.run(feeds)  # warm-up: the first run allocates
    times = []
    for _ in range(max(1, runs)):
        t0 = timer()
        m.run(feeds)
        times.append((timer() - t0) * 1000.0)
    times.sort()
    p50 = times[len(times) // 2]
    p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
    return GradeReport(model or platform.machine() or "unknown", p50, p99, len(times))
