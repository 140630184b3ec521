"""The engine stage that runs every trigger of a tasks file and emits ``trigger`` records."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from streamfeat._event import Event
from streamfeat._records import Record
from streamfeat.triggers._config import MatchLimits, TriggerConfig
from streamfeat.triggers._matcher import DeviceState, Matcher
from streamfeat.triggers._pattern import Pattern, parse_pattern
from streamfeat.triggers._state import trigger_record

__all__ = ["TriggerStage"]


class TriggerStage:
    """Runs all triggers of ``config`` over each device's events (SPEC section 2).

    Every firing appends a record shaped as SPEC section 6 shows, plus the in-process
    attachment ``_events`` (the matched slice's events, for tasks)::

        {"kind": "trigger", "trigger": NAME, "device": D, "first": i, "last": j,
         "first_ts": t0, "last_ts": t1, "_events": (Event, ...)}

    Firings of one event come in trigger registration order (the tasks file's order, then
    hot-added triggers in the order added).

    Args:
        triggers: the parsed triggers, by name, in registration order (a pattern given as text
            is parsed here). A whole tasks config is still taken, for old call sites: its
            triggers and its engine's partial-match limits are used.
        limits: the partial-match limits (``engine.partial_limit``,
            ``engine.partial_limit_events``).

    Raises:
        TriggerSpecError: if a pattern given as text does not parse.
    """

    name = "triggers"

    def __init__(
        self,
        triggers: Mapping[str, TriggerConfig | str] | Any,
        limits: MatchLimits | None = None,
    ) -> None:
        if not isinstance(triggers, Mapping):  # a tasks config (old call sites)
            triggers, limits = triggers.triggers, triggers.engine.limits
        limits = limits or MatchLimits()
        patterns = {n: _pattern(n, t) for n, t in triggers.items()}
        self.matcher = Matcher(patterns, limit_ms=limits.ms, limit_events=limits.events)

    @property
    def stats(self) -> dict[str, int]:
        """Counters: ``firings``, ``cuts`` (partial matches cut by the limits), ``recompiles``."""
        return dict(self.matcher.stats)

    @property
    def triggers(self) -> list[str]:
        """The registered trigger names, in registration order."""
        return self.matcher.names

    # -- hot update -----------------------------------------------------------------------

    def add(self, name: str, pattern_text: str) -> None:
        """Register a trigger while the engine runs.

        The shared automaton is rebuilt (cost: about linear in the total size of all patterns;
        see docs/triggers.md for measured times). Each device moves onto it at its next event by
        re-reading its few buffered events; no partial match of another trigger is touched. The
        new trigger only matches events that arrive after that.

        Raises:
            TriggerSpecError: if the pattern does not parse; nothing changes.
            ValueError: if a trigger of that name exists; nothing changes.
        """
        self.matcher.add(name, parse_pattern(pattern_text, name=name))

    def remove(self, name: str) -> None:
        """Unregister a trigger; its partial matches are dropped, the others' kept.

        Raises:
            KeyError: if there is no such trigger; nothing changes.
        """
        self.matcher.remove(name)

    def update(self, added: Mapping[str, TriggerConfig | str], removed: Iterable[str] = ()) -> None:
        """Remove ``removed`` and add ``added`` (name -> parsed trigger or pattern text) with a
        single rebuild.

        A name in both is a changed trigger: it starts afresh with its new pattern.

        Raises:
            TriggerSpecError: if an added pattern does not parse; nothing changes.
            KeyError: if a removed trigger does not exist; nothing changes.
            ValueError: if an added trigger exists and is not removed; nothing changes.
        """
        parsed = {name: _pattern(name, value) for name, value in added.items()}
        self.matcher.update(parsed, removed)

    # -- the Stage protocol ---------------------------------------------------------------

    def new_state(self, device: str, residue: int | None = None) -> DeviceState:
        """Return the fresh state of ``device``; ``residue`` is its clock from before a freeing."""
        state = self.matcher.new_state()
        if residue is not None:
            state.maxts = residue
        return state

    def residue(self, state: DeviceState) -> int | None:
        """Return what must outlive a freed state: the device's clock (None if it has none).

        The partial-match time limit compares clocks, and the clock is the largest ts seen so
        far: a device whose state was freed must not restart its clock from its next event.
        """
        return None if state.maxts < 0 else state.maxts

    def process(self, state: DeviceState, index: int, event: Event, out: list[Record]) -> None:
        """Step every trigger over event ``index`` of its device; append firings to ``out``."""
        self.matcher.step_into(state, index, event, out)

    def advance(self, state: DeviceState, now_ms: int, out: list[Record]) -> None:
        """Let wall time move the device's clock on: partial matches past the limit are cut."""
        self.matcher.advance(state, now_ms)

    def close(self, state: DeviceState, out: list[Record]) -> None:
        """End of input: partial matches can no longer complete; nothing is emitted."""

    def idle(self, state: DeviceState) -> bool:
        """Return True when no partial match is alive (the engine may free the state)."""
        return self.matcher.idle(state)

    def step_functions(
        self,
    ) -> tuple[Callable[[DeviceState, int, Event, list[Record]], None], Callable[[Any], bool]]:
        """:meth:`process` and :meth:`idle` as the matcher's own bound methods, for the engine's
        per-event path: the same calls without a Python method around each (the matcher object
        is never replaced, so they stay valid through hot updates and restores)."""
        return self.matcher.step_into, self.matcher.idle

    def dump(self, state: DeviceState) -> list[Any]:
        """Return a msgpack-able snapshot of ``state`` (a versioned flat list)."""
        return self.matcher.dump(state)

    def load(self, data: Any) -> DeviceState:
        """Rebuild a state from :meth:`dump` (or from a snapshot of an earlier release).

        Raises:
            StorageError: the snapshot is of an unknown format or malformed.
        """
        return self.matcher.load(data)

    # -- replay ---------------------------------------------------------------------------

    def run_batch(self, events: Iterable[Event]) -> list[Record]:
        """Return the trigger records of one device's whole log (events from index 0).

        Runs ``pyahocorasick`` over the device's symbol string in one call (the batch driver);
        the records are the ones :meth:`process` would give event by event.
        """
        evs = list(events)
        if not evs:
            return []
        device = evs[0].device
        return [trigger_record(f, device) for f in self.matcher.run_batch(evs)]


def _pattern(name: str, value: TriggerConfig | str) -> Pattern:
    """The parsed pattern of a trigger (parsed here only when given as text)."""
    if isinstance(value, TriggerConfig):
        return value.pattern
    return parse_pattern(value, name=name)
