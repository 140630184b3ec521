"""Injected time.

Nothing in the core reads the wall clock: everything that needs "now" takes a ``clock=``
argument. :class:`SystemClock` is the real one; :class:`ManualClock` is what tests, replay and
the simulator use, advanced explicitly.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """A source of time.

    ``time()`` is wall time in seconds since the Unix epoch (for timestamps and for advancing
    watermarks of idle devices); ``monotonic()`` never goes backwards (for timers, timeouts
    and backoff).
    """

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """The real clock of the machine."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def __repr__(self) -> str:
        return "SystemClock()"


class ManualClock:
    """A clock that moves only when told to.

    >>> c = ManualClock(start=100.0)
    >>> c.advance(2.5)
    >>> c.time(), c.monotonic()
    (102.5, 102.5)

    Args:
        start: the initial time, in seconds since the epoch.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, dt: float) -> None:
        """Move time forward by ``dt`` seconds.

        Raises:
            ValueError: if ``dt`` is negative; the clock is left unchanged.
        """
        if dt < 0:
            msg = f"can't advance a ManualClock by a negative step ({dt})"
            raise ValueError(msg)
        self._now += dt

    def set(self, t: float) -> None:
        """Jump to time ``t``, which must not be earlier than now.

        Raises:
            ValueError: if ``t`` is earlier than the current time; the clock is unchanged.
        """
        if t < self._now:
            msg = f"can't move a ManualClock backwards ({t} < {self._now})"
            raise ValueError(msg)
        self._now = float(t)

    def __repr__(self) -> str:
        return f"ManualClock(start={self._now!r})"
