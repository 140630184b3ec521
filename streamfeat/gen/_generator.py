"""Synthetic app-use logs: one device's event stream, and a fleet's merged log.

Each device is simulated on its own: its random source is seeded from ``(seed, device id)``, so
:func:`device_stream` gives exactly the events that :func:`generate_events` interleaves for that
device, and adding devices never changes the others. Users and sessions come from
:mod:`streamfeat.gen._model`.

Time. The model runs in *true* time; events come out of a device in the app's order, which is
true-time order. The ``ts`` written is the device clock: true time plus a clock offset that is
usually 0. With probability ``disorder`` per event the clock is set back (a manual change, a
bad network time) so that this event's ``ts`` is 1 s to 2 min *before* the previous event's;
the clock is synced again (offset back to 0, a forward jump) when the next session starts. So
the fraction of per-device backward ``ts`` steps is about ``disorder``, and arrival order is
never changed. The clock draws from its own random source, so the disorder moves timestamps
and nothing else.

The merged log orders events of all devices by true time (ties: device index, then app order),
like a collector receiving them the moment they happen. Each device is a suspended session
generator plus its next event (about 5 KB, half of it the Mersenne Twister state), and the
merge holds one slice of simulated time: memory grows with the devices, never with the events.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterator
from heapq import heapify, heappop, heapreplace
from itertools import chain
from typing import Any

from streamfeat._event import MAX_TS
from streamfeat.gen._model import SessionWriter, make_profile

__all__ = [
    "DEFAULT_DISORDER",
    "DEFAULT_START_TS",
    "device_id",
    "device_stream",
    "generate_batches",
    "generate_events",
]

#: 2026-01-01T00:00:00Z in ms: the default start, fixed so that a seed always gives the same bytes.
DEFAULT_START_TS = 1_767_225_600_000
#: Default fraction of events whose ``ts`` goes back (a device clock change).
DEFAULT_DISORDER = 0.002
_MAX_DISORDER = 0.5
_JUMP_MIN_MS = 1_000
_JUMP_MAX_MS = 120_000
_MASK64 = (1 << 64) - 1
# The merge orders a slice of true time at once: long enough that a device makes several events
# per slice (its frames stay in cache), short enough to hold ~20,000 events in all.
_SLICE_MAX_MS = 30_000
_SLICE_EVENTS = 80_000_000  # / devices = slice ms at about 15 events per device-minute


def device_id(index: int) -> str:
    """Return the id of the ``index``-th device of a generated fleet (``dev000000``, ...)."""
    return f"dev{index:06d}"


def _check(minutes: float, start_ts: int, disorder: float) -> None:
    if not (isinstance(minutes, int | float) and 0 < minutes <= 1_000_000):
        msg = f"minutes must be a number in (0, 1000000], got {minutes!r}"
        raise ValueError(msg)
    if type(start_ts) is not int or not 0 <= start_ts < MAX_TS - int(minutes * 60_000) - 1:
        msg = f"start_ts must be an integer ms in [0, 2**53 - duration), got {start_ts!r}"
        raise ValueError(msg)
    if not (isinstance(disorder, int | float) and 0.0 <= disorder <= _MAX_DISORDER):
        msg = f"disorder must be a fraction in [0, {_MAX_DISORDER}], got {disorder!r}"
        raise ValueError(msg)


class _SplitMix:
    """SplitMix64: a tiny seeded random source for the rare clock draws.

    A ``random.Random`` holds 2.5 KB of state; a fleet of tens of thousands of devices is
    lighter with this 64-bit one (the clock draws a number once per clock change).
    """

    __slots__ = ("_state",)

    def __init__(self, seed: str) -> None:
        self._state = int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "little")

    def random(self) -> float:
        """Return a float in [0, 1)."""
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return ((z ^ (z >> 31)) >> 11) / 9007199254740992.0


class _Device:
    """One simulated device: its user, its clock, and its next event.

    ``pending`` is the next event (``None`` once the period is over) and ``t`` its true time
    (integer ms from the start of the period); :meth:`fill` stamps and hands over events.
    """

    __slots__ = (
        "_clock_rng",
        "_gap_rate",
        "_horizon",
        "_last",
        "_log_keep",
        "_offset",
        "_session",
        "_skip",
        "_start_ts",
        "_writer",
        "pending",
        "rng",
        "t",
    )

    def __init__(
        self,
        device: str,
        minutes: float,
        seed: int,
        start_ts: int,
        disorder: float,
        key: str | None = None,
    ) -> None:
        key = device if key is None else key
        rng = random.Random(f"streamfeat.generate:{seed}:{key}")
        self.rng = rng
        # the clock has its own random source: changing the disorder moves timestamps only,
        # the user does exactly the same things
        self._clock_rng = _SplitMix(f"streamfeat.generate.clock:{seed}:{key}")
        self._log_keep = math.log1p(-disorder) if disorder > 0 else 0.0
        self._skip = self._draw_skip()
        self._last = -1
        self._offset = 0
        self._start_ts = start_ts
        self._horizon = minutes * 60_000.0
        self._writer = writer = SessionWriter(rng, make_profile(rng), device)
        self._gap_rate = 1.0 / writer.profile.gap_mean_ms
        # the log starts somewhere in the middle of the user's rhythm, not at a session start
        start = rng.expovariate(self._gap_rate) * rng.random()
        self._session: Iterator[dict[str, Any]] | None = (
            writer.session(start) if start < self._horizon else None
        )
        self.pending: dict[str, Any] | None = None
        self.t = 0
        self._advance()

    def _draw_skip(self) -> int:
        """Events until the next clock change (geometric), or never with no disorder."""
        if self._log_keep == 0.0:
            return 1 << 62
        if self._log_keep == -math.inf:
            return 1
        return 1 + int(math.log(1.0 - self._clock_rng.random()) / self._log_keep)

    def _advance(self) -> None:
        """Load the next event into ``pending`` / ``t``, starting sessions as needed."""
        writer = self._writer
        while self._session is not None:
            ev = next(self._session, None)
            if ev is not None:
                t = ev["ts"]  # true time, until stamped
                if t >= self._horizon:
                    break  # the log ends inside this session
                self.pending, self.t = ev, t
                return
            start = writer.t + self.rng.expovariate(self._gap_rate)
            if start >= self._horizon:
                break
            self._session = writer.session(start)
            self._offset = 0  # the clock is synced when the app comes to the foreground
        self._session = self.pending = None

    def fill(self, end: int, keys: list[int], batch: list[dict[str, Any]], n: int, i: int) -> bool:
        """Stamp the events before true time ``end`` and append them to ``batch``.

        ``keys`` gets ``t * n + i`` for each (the merge's sort key). Returns False when the
        device has no more events.
        """
        ev, t = self.pending, self.t
        session, horizon, start_ts = self._session, self._horizon, self._start_ts
        skip, last, offset = self._skip, self._last, self._offset
        add_key, add_event = keys.append, batch.append
        while ev is not None and t < end:
            skip -= 1
            if skip == 0:
                skip = self._draw_skip()
                if last >= 0:  # set the clock back to before the previous event
                    back = _JUMP_MIN_MS + int(
                        self._clock_rng.random() * (_JUMP_MAX_MS - _JUMP_MIN_MS)
                    )
                    offset = last - back - start_ts - t
            ts = start_ts + t + offset
            last = ev["ts"] = ts if ts >= 0 else 0
            add_key(t * n + i)
            add_event(ev)
            ev = next(session, None)  # type: ignore[arg-type]
            if ev is not None:
                t = ev["ts"]
                if t >= horizon:
                    ev = None
                    session = self._session = None
            else:  # the session is over: the next one (which resets the clock), if any
                self._offset = offset
                self._advance()
                ev, t, session, offset = self.pending, self.t, self._session, self._offset
        self.pending, self.t = ev, t
        self._skip, self._last, self._offset = skip, last, offset
        return ev is not None


def device_stream(
    device: str,
    minutes: float,
    seed: int,
    *,
    start_ts: int = DEFAULT_START_TS,
    disorder: float = DEFAULT_DISORDER,
    key: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one device's events in the app's (arrival) order.

    The events are exactly those :func:`generate_events` gives for device id ``key`` (default:
    ``device``) with the same ``minutes``, ``seed``, ``start_ts`` and ``disorder``, with
    ``device`` written into them.

    Args:
        device: the device id (1-128 chars) written into every event.
        minutes: length of the simulated period; events have true time in ``[0, minutes)``.
        seed: the random seed (any integer).
        start_ts: the epoch ms at which the period starts.
        disorder: fraction of events whose ``ts`` goes back (clock changes), in ``[0, 0.5]``.
        key: who the user is, for the random draws (default: ``device``). A fleet that names
            its devices uniquely per run passes the fleet's own id here, so that the same seed
            gives the same behaviour whatever the names.

    Raises:
        ValueError: a bad argument, before anything is yielded.
    """
    _check(minutes, start_ts, disorder)
    if not 1 <= len(device) <= 128:
        msg = f"device must be 1-128 chars, got {device!r}"
        raise ValueError(msg)
    return _device_events(_Device(device, minutes, seed, start_ts, disorder, key))


def _device_events(dev: _Device) -> Iterator[dict[str, Any]]:
    keys: list[int] = []
    batch: list[dict[str, Any]] = []
    end = 0
    more = dev.pending is not None
    while more:
        end = max(end, dev.t) + 60_000
        more = dev.fill(end, keys, batch, 1, 0)
        yield from batch
        keys.clear()
        batch.clear()


def generate_events(
    devices: int,
    minutes: float,
    seed: int,
    *,
    start_ts: int = DEFAULT_START_TS,
    disorder: float = DEFAULT_DISORDER,
) -> Iterator[dict[str, Any]]:
    """Yield the merged log of ``devices`` devices (ids :func:`device_id` ``(0..devices-1)``).

    Events come in global arrival order (true time; ties by device index, then app order).
    Each is a SPEC event dict; the dicts are fresh and belong to the caller. Memory grows with
    ``devices`` (one session each), not with the number of events.

    Args:
        devices: how many devices (>= 1).
        minutes: length of the simulated period.
        seed: the random seed; the same arguments always give the same events.
        start_ts: the epoch ms at which the period starts.
        disorder: fraction of events whose ``ts`` goes back, in ``[0, 0.5]``.

    Raises:
        ValueError: a bad argument, before anything is yielded.
    """
    return chain.from_iterable(
        generate_batches(devices, minutes, seed, start_ts=start_ts, disorder=disorder)
    )


def generate_batches(
    devices: int,
    minutes: float,
    seed: int,
    *,
    start_ts: int = DEFAULT_START_TS,
    disorder: float = DEFAULT_DISORDER,
) -> Iterator[list[dict[str, Any]]]:
    """Yield the merged log of :func:`generate_events` as consecutive lists of events.

    The same events in the same order, a slice of simulated time per list (up to about
    20,000 events), for writers that go faster without a generator step per event.

    Raises:
        ValueError: a bad argument, before anything is yielded.
    """
    _check(minutes, start_ts, disorder)
    if type(devices) is not int or devices < 1:
        msg = f"devices must be a positive integer, got {devices!r}"
        raise ValueError(msg)
    sims = [_Device(device_id(i), minutes, seed, start_ts, disorder) for i in range(devices)]
    return _merge(sims)


def _merge(sims: list[_Device]) -> Iterator[list[dict[str, Any]]]:
    """Interleave the devices' events by true time, one slice of time (one list) at a time.

    Devices wait in a heap keyed by the true time of their next event. A slice takes, device
    after device, every event before the slice's end (so a device's generator frames stay in
    the CPU cache while it runs), then one stable sort by ``time * devices + index`` orders the
    slice; a device's own events keep their order. The heap is touched once per device and
    slice, not once per event.
    """
    n = len(sims)
    slice_ms = max(1_000, min(_SLICE_MAX_MS, _SLICE_EVENTS // n))
    heap = [(d.t, i) for i, d in enumerate(sims) if d.pending is not None]
    heapify(heap)
    while heap:
        end = (heap[0][0] // slice_ms + 1) * slice_ms  # empty slices are skipped
        keys: list[int] = []
        batch: list[dict[str, Any]] = []
        while heap and heap[0][0] < end:
            i = heap[0][1]
            dev = sims[i]
            if dev.fill(end, keys, batch, n, i):
                heapreplace(heap, (dev.t, i))
            else:
                heappop(heap)
        yield [batch[k] for k in sorted(range(len(keys)), key=keys.__getitem__)]
