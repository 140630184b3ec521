"""The feature stage: every ``[features.NAME]`` table of a tasks file, per device (SPEC 4).

Per device it keeps one state per feature (open ipv visits, the open feed visit), the ts of the
device's last event (the end of a replay closes visits there), and the latest records of each
feature (for :meth:`FeatureStage.view`). Within one event, features emit in the tasks file's
order; each feature's records in the order its module documents.

``idle`` is true when no visit is open; the engine then frees the state, latest records
included (``view`` is for tasks that run on the event that produced the records). A stage built
with ``latest=False`` (a replay that runs no tasks: nothing reads ``view``) keeps no latest
records: neither their copies per record nor their memory per open device.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any, Final

from streamfeat._event import Event
from streamfeat._records import raw_size
from streamfeat.features.exposure import ExposureFeature
from streamfeat.features.ipv import IpvFeature

if TYPE_CHECKING:
    from streamfeat.features._config import FeatureConfig

__all__ = ["FeatureStage", "FeatureState"]

_NO_TS: Final = -1


class FeatureState:
    """One device's feature states, its last event's ts, and the latest records by feature.

    ``latest`` maps a feature name to ``[ts, [values, ...]]``: the records it emitted last
    (one close can emit several: nested ipv visits, one exposure record per item).
    """

    __slots__ = ("device", "feats", "last_ts", "latest")

    def __init__(self, device: str, feats: list[Any]) -> None:
        self.device = device
        self.feats = feats
        self.last_ts = _NO_TS
        self.latest: dict[str, list[Any]] = {}

    def __repr__(self) -> str:
        return f"FeatureState(device={self.device!r}, last_ts={self.last_ts})"


class FeatureStage:
    """The ``features`` stage of the engine.

    Args:
        features: the ``[features.NAME]`` tables, by name, in the tasks file's order. (A whole
            tasks config is still taken, for old call sites: its features and its engine's
            partial limit are used.)
        partial_limit: the engine's partial-match time limit in ms (``engine.partial_limit``).
        sizes: attach ``_raw_bytes`` (bytes of the events counted for the record).
        partial_limit_events: the engine's partial-match limit in events
            (``engine.partial_limit_events``; ipv closes a visit open over more events).
        latest: keep each feature's latest records for :meth:`view` (off when no task reads
            them; ``view`` then shows open visits only).
    """

    name = "features"

    def __init__(
        self,
        features: Mapping[str, FeatureConfig] | Any,
        partial_limit: int = 24 * 3_600_000,
        *,
        sizes: bool = False,
        partial_limit_events: int = 10_000,
        latest: bool = True,
    ) -> None:
        if not isinstance(features, Mapping):  # a tasks config (old call sites)
            engine = features.engine
            features, partial_limit = features.features, engine.partial_limit
            partial_limit_events = engine.partial_limit_events
        self.features: tuple[IpvFeature | ExposureFeature, ...] = tuple(
            IpvFeature(f, partial_limit, sizes=sizes, partial_limit_events=partial_limit_events)
            if f.kind == "ipv"
            else ExposureFeature(f, partial_limit, sizes=sizes)
            for f in features.values()
        )
        self.sizes = sizes
        self.latest = latest

    def new_state(self, device: str) -> FeatureState:
        return FeatureState(device, [f.new_state() for f in self.features])

    def process(
        self, state: FeatureState, index: int, event: Event, out: list[dict[str, Any]]
    ) -> None:
        """Handle the device's event number ``index``; append the feature records it closes."""
        state.last_ts = event.ts
        raw = raw_size(event) if self.sizes else 0
        device = event.device
        # by index, not zip(..., strict=True): the compiled build runs an index loop natively but
        # calls zip with a keyword through the interpreter (about 3,000 instructions a call)
        feats = state.feats
        if not self.latest:
            for i, feat in enumerate(self.features):
                feat.process(feats[i], index, event, raw, device, out)
            return
        for i, feat in enumerate(self.features):
            n = len(out)
            feat.process(feats[i], index, event, raw, device, out)
            if len(out) > n:
                self._remember(state, feat.name, out[n:])

    def advance(self, state: FeatureState, now_ms: int, out: list[dict[str, Any]]) -> None:
        """Close visits that the wall clock ``now_ms`` puts past the partial limit."""
        feats = state.feats
        for i, feat in enumerate(self.features):
            n = len(out)
            feat.expire(feats[i], now_ms, state.device, out)
            if len(out) > n:
                self._remember(state, feat.name, out[n:])

    def deadline(self, state: FeatureState) -> int | None:
        """Return the smallest ``now_ms`` at which :meth:`advance` closes a visit (None: never)."""
        due: int | None = None
        feats = state.feats
        for i, f in enumerate(self.features):
            d = f.deadline(feats[i])
            if d is not None and (due is None or d < due):
                due = d
        return due

    def close(self, state: FeatureState, out: list[dict[str, Any]]) -> None:
        """End of input: close every open visit as truncated at the last event's ts."""
        feats = state.feats
        for i, feat in enumerate(self.features):
            n = len(out)
            feat.close(feats[i], state.last_ts, state.device, out)
            if len(out) > n:
                self._remember(state, feat.name, out[n:])

    def _remember(self, state: FeatureState, name: str, records: list[dict[str, Any]]) -> None:
        if self.latest:
            state.latest[name] = [records[-1]["ts"], [dict(r["values"]) for r in records]]

    def idle(self, state: FeatureState) -> bool:
        """True when no visit is open."""
        # a plain loop, not all(...): this runs for every event (no generator frame)
        feats = state.feats
        for i, f in enumerate(self.features):  # noqa: SIM110
            if f.is_open(feats[i]):
                return False
        return True

    def dump(self, state: FeatureState) -> Any:
        """Return ``[device, last_ts, [per-feature dump], latest]`` (msgpack-able)."""
        states = state.feats
        feats = [f.dump(states[i]) for i, f in enumerate(self.features)]
        latest = [[k, ts, vals] for k, (ts, vals) in state.latest.items()]
        return [state.device, state.last_ts, feats, latest]

    def load(self, data: Any) -> FeatureState:
        """Rebuild a state from :meth:`dump`'s output."""
        device, last_ts, feats, latest = data
        st = FeatureState(device, [f.load(feats[i]) for i, f in enumerate(self.features)])
        st.last_ts = last_ts
        st.latest = {k: [ts, vals] for k, ts, vals in latest}
        return st

    def carry(
        self,
        old: object,
        dumped: Any,
        device: str,
        kept: Collection[str],
        out: list[dict[str, Any]],
    ) -> Any:
        """Return ``device``'s state for this stage, carried over from another stage's dump.

        For a switch to a new tasks file: ``old`` is the feature stage of the previous file
        and ``dumped`` what its :meth:`dump` gave for ``device``. Each feature named in
        ``kept`` (same name, same table) keeps its open visits and its latest records; every
        other feature of this stage starts empty; every feature of ``old`` not in ``kept``
        (removed or changed) closes its open visits as truncated at the device's last event,
        appending their records to ``out``.

        Args:
            old: the previous stage (anything but a :class:`FeatureStage` counts as none).
            dumped: ``old.dump(state)`` for the device, or None when it had no state.
            device: the device.
            kept: the names of the features whose table did not change.
            out: where the closed visits' records go.

        Returns:
            What :meth:`dump` would return for the carried state (for :meth:`load`).
        """
        fresh = self.dump(self.new_state(device))
        if not isinstance(old, FeatureStage) or dumped is None:
            return fresh
        state = old.load(dumped)
        olds = {f.name: (f, s) for f, s in zip(old.features, state.feats, strict=True)}
        feats = []
        for i, feat in enumerate(self.features):
            hit = olds.get(feat.name) if feat.name in kept else None
            feats.append(fresh[2][i] if hit is None else hit[0].dump(hit[1]))
        for name, (f, s) in olds.items():
            if name not in kept:
                f.close(s, state.last_ts, device, out)
        latest = [[k, ts, vals] for k, (ts, vals) in state.latest.items() if k in kept]
        return [device, state.last_ts, feats, latest]

    def view(self, state: FeatureState, now_ms: int) -> dict[str, Any]:
        """Return the device's latest features and open visits (JSON-ready), for tasks.

        ``{"features": {NAME: {"ts", "since_ms", "records": [values, ...], **open state}}}``;
        ``since_ms`` (time since the latest record) and the open visits' ``since_*_ms`` are
        decay fields computed at ``now_ms``, never stored.
        """
        out: dict[str, Any] = {}
        for f, s in zip(self.features, state.feats, strict=True):
            entry: dict[str, Any] = {"ts": None, "since_ms": None, "records": []}
            if f.name in state.latest:
                ts, vals = state.latest[f.name]
                entry = {"ts": ts, "since_ms": now_ms - ts, "records": vals}
            entry.update(f.open_view(s, now_ms))
            out[f.name] = entry
        return {"features": out}
