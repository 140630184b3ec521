"""What a replay report needs, gathered while the replay runs, in bounded memory.

:class:`ReportCollector` sees every valid event's timestamp, every record the replay writes,
and now and then the replay's progress (wall seconds, events done). It keeps counts per minute
of event time, per kind and per name, and, for value distributions, a uniform sample of at most
``sample`` values per series (reservoir sampling, seeded: the same replay gives the same
report). So its memory grows with the log's time span in minutes and the number of names, not
with the number of events. No I/O, no clock: wall time comes in with :meth:`progress`.
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ReportCollector", "Reservoir"]

MINUTE_MS = 60_000
_EPOCH_MS_1973 = 10**11  # an int aggregate at least this large is taken for a timestamp
# record kind -> the key holding its event time
_TIME_KEY = {"feature": "ts", "window": "end", "trigger": "last_ts", "late": "ts", "task": "ts"}
_IPV_FIXED = frozenset({"item", "enter_ts", "dwell_ms", "truncated"})
# a quarantine reason's variable parts, so that reasons group: "line 17: ", quoted values
_LINE_RE = re.compile(r"^(?:line|message) \d+: ")
_QUOTED_RE = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NUMBER_RE = re.compile(r"\b\d+\b")


class Reservoir:
    """A uniform sample of at most ``size`` numbers out of all those added (Algorithm R)."""

    __slots__ = ("_rng", "seen", "size", "values")

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.seen = 0
        self.values: list[float] = []
        self._rng = rng

    def add(self, x: float) -> None:
        """Offer one value."""
        self.seen += 1
        if len(self.values) < self.size:
            self.values.append(x)
            return
        j = self._rng.randrange(self.seen)
        if j < self.size:
            self.values[j] = x


@dataclass
class _WindowStats:
    records: int = 0
    final: int = 0
    durations: Reservoir | None = None
    aggregates: dict[str, Reservoir] = field(default_factory=dict)


def reason_group(reason: str) -> str:
    """A quarantine reason without its line number and quoted values, so similar ones group."""
    text = _LINE_RE.sub("", reason)
    text = _QUOTED_RE.sub("…", text)
    return _NUMBER_RE.sub("N", text)


class ReportCollector:
    """Gather a replay's figures for :func:`streamfeat.report.render_report`.

    Args:
        sample: at most this many values kept per distribution.
        examples: at most this many example records kept per late window and per quarantine
            reason.
        seed: seeds the reservoir sampling.
    """

    def __init__(self, *, sample: int = 20_000, examples: int = 5, seed: int = 0) -> None:
        self.sample = sample
        self.examples = examples
        self._rng = random.Random(seed)
        self.events = 0
        self.events_by_minute: Counter[int] = Counter()
        self.records_by_kind: Counter[str] = Counter()
        self.kind_by_minute: dict[str, Counter[int]] = defaultdict(Counter)
        self.progress_samples: list[tuple[float, int]] = []
        self.windows: dict[str, _WindowStats] = {}
        self.features: dict[str, dict[str, Reservoir]] = {}
        self.feature_records: Counter[str] = Counter()
        self.triggers: Counter[str] = Counter()
        self.tasks: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.late_examples: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.quarantine: Counter[str] = Counter()
        self.quarantine_examples: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def _reservoir(self) -> Reservoir:
        return Reservoir(self.sample, self._rng)

    # -- inputs ------------------------------------------------------------------------------

    def event(self, ts: int) -> None:
        """One valid event with event time ``ts`` (ms) was processed."""
        self.events += 1
        self.events_by_minute[ts // MINUTE_MS] += 1

    def progress(self, wall_seconds: float, events: int) -> None:
        """The replay had processed ``events`` events ``wall_seconds`` after it started.

        Samples whose time goes back are ignored (a caller's clock is not trusted to be
        monotonic).
        """
        if self.progress_samples and wall_seconds <= self.progress_samples[-1][0]:
            return
        self.progress_samples.append((wall_seconds, events))

    def records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Take records as the replay writes them (the dicts of SPEC section 6)."""
        for rec in records:
            self.record(rec)

    def record(self, rec: Mapping[str, Any]) -> None:
        """Take one record; an unknown kind is counted and otherwise ignored."""
        kind = rec.get("kind")
        if not isinstance(kind, str):
            kind = "unknown"
        self.records_by_kind[kind] += 1
        tkey = _TIME_KEY.get(kind)
        t = rec.get(tkey) if tkey else None
        if type(t) is int:
            self.kind_by_minute[kind][t // MINUTE_MS] += 1
        if kind == "window":
            self._window(rec)
        elif kind == "feature":
            self._feature(rec)
        elif kind == "trigger":
            self.triggers[str(rec.get("trigger"))] += 1
        elif kind == "task":
            self.tasks[str(rec.get("task"))] += 1
        elif kind == "late":
            name = str(rec.get("window"))
            self.late[name] += 1
            if len(self.late_examples[name]) < self.examples:
                self.late_examples[name].append(dict(rec))
        elif kind == "quarantine":
            group = reason_group(str(rec.get("reason", "")))
            self.quarantine[group] += 1
            if len(self.quarantine_examples[group]) < self.examples:
                self.quarantine_examples[group].append(dict(rec))

    def _window(self, rec: Mapping[str, Any]) -> None:
        name = str(rec.get("window"))
        st = self.windows.get(name)
        if st is None:
            st = self.windows[name] = _WindowStats(durations=self._reservoir())
        st.records += 1
        st.final += bool(rec.get("final"))
        start, end = rec.get("start"), rec.get("end")
        if type(start) is int and type(end) is int and st.durations is not None:
            st.durations.add(end - start)
        values = rec.get("values")
        if isinstance(values, Mapping):
            for k, v in values.items():
                if type(v) is int and v >= _EPOCH_MS_1973 and type(start) is int:
                    # a timestamp aggregate (first ts, max ts): where in the window it fell
                    k, v = f"{k} - start (s)", (v - start) / 1000
                if _is_number(v):
                    res = st.aggregates.get(k)
                    if res is None:
                        res = st.aggregates[k] = self._reservoir()
                    res.add(v)

    def _feature(self, rec: Mapping[str, Any]) -> None:
        name = str(rec.get("feature"))
        self.feature_records[name] += 1
        values = rec.get("values")
        if not isinstance(values, Mapping):
            return
        series = self.features.setdefault(name, {})
        picks: dict[str, Any] = {}
        if "dwell_ms" in values:  # an ipv-like feature
            picks["dwell_ms"] = values.get("dwell_ms")
            actions = [v for k, v in values.items() if k not in _IPV_FIXED and type(v) is int]
            picks["actions per visit"] = sum(actions)
        if "exposures" in values:  # an exposure-like feature
            picks["exposures"] = values.get("exposures")
            picks["exposure_ms"] = values.get("exposure_ms")
        for k, v in picks.items():
            if _is_number(v):
                res = series.get(k)
                if res is None:
                    res = series[k] = self._reservoir()
                res.add(v)


def _is_number(v: object) -> bool:
    return (type(v) is int or type(v) is float) and v == v  # not NaN
