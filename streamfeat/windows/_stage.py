"""The window stage: every ``[windows.NAME]`` table of a tasks file, per device (SPEC section 3).

Theory of operation
-------------------
Per device the stage keeps ``maxts``, the largest ts over all the device's valid events so
far (every event counts, whether or not it enters a window), and one state per window config.
Each window's watermark is ``maxts - lateness`` (its own ``lateness`` or the engine's). For
each event, in arrival order:

1. ``maxts`` takes the event's ts into account (SPEC: "the arriving one included");
2. for each window config, in the tasks file's order: if the event passes the filter and has
   the key, it goes into its windows that are still open, or, when they have all closed, a
   ``late`` record is emitted; then every window with ``end <= watermark`` closes and its
   record (``forced: false``) is emitted, by ``(end, start, key)``.

So within one event the records come window config by window config, a ``late`` record before
the closes. ``close`` (end of a replay) emits every open window with ``forced: true``, config by
config, by ``(end, start, key)``. ``advance(now_ms)`` (the embedded agent's wall clock, for a
device that has gone quiet) acts like an event with ts ``now_ms`` that enters no window:
``maxts := max(maxts, now_ms)``, then windows close as above. Later events are judged against
that watermark too.

Per event, most windows of a tasks file have nothing to do: the event's type is not in their
filter, and no window of theirs is due to close. So the state also keeps ``due``, the smallest
max ts at which any window config has a window to close (each logic's ``deadline``). While
``maxts < due`` no close can happen, and the event goes only to the window configs that may
admit its type (``by type``, built once per tasks file), in the tasks file's order; the records
come out exactly as from the loop over every config. When ``maxts >= due``, every config runs,
in order, and ``due`` is computed again.

``idle`` is true when no window is open; the engine then frees the device's state but keeps its
``residue``, the device's ``maxts``, and hands it back to ``new_state``: a device that comes
back after every window closed keeps its watermark, so an event behind it is still ``late``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from streamfeat._event import Event
from streamfeat.windows._base import NO_DEADLINE, NO_TS, ProcessFn, WindowLogic
from streamfeat.windows.count import CountLogic
from streamfeat.windows.session import SessionLogic
from streamfeat.windows.sliding import SlidingLogic
from streamfeat.windows.tumbling import TumblingLogic

if TYPE_CHECKING:
    from streamfeat.windows._config import WindowConfig

__all__ = ["WindowStage", "WindowState", "build_logic"]

_LOGICS: dict[str, type[WindowLogic]] = {
    "tumbling": TumblingLogic, "sliding": SlidingLogic, "session": SessionLogic, "count": CountLogic,
}  # fmt: skip


def build_logic(cfg: WindowConfig, lateness: int = 0, *, sizes: bool = False) -> Any:
    """Return the assigner logic of one window config (``lateness``: the engine's default)."""
    return _LOGICS[cfg.assign.kind](cfg, lateness, sizes=sizes)


class WindowState:
    """The windows of one device: its max ts, one state per window config, and ``due``, the
    smallest max ts at which one of them has a window to close."""

    __slots__ = ("device", "due", "maxts", "wins")

    def __init__(self, device: str, maxts: int, wins: list[Any], due: int = NO_DEADLINE) -> None:
        self.device = device
        self.maxts = maxts
        self.wins = wins
        self.due = due

    def __repr__(self) -> str:
        return f"WindowState(device={self.device!r}, maxts={self.maxts})"


class WindowStage:
    """The ``windows`` stage of the engine (see the module docstring).

    Args:
        windows: the ``[windows.NAME]`` tables, by name, in the tasks file's order. (A whole
            tasks config is still taken, for old call sites: its windows and its engine's
            lateness are used.)
        lateness: the engine's lateness in ms, for windows that do not set their own.
        sizes: attach ``_raw_bytes`` (bytes of the events in the window) to window records.
    """

    name = "windows"

    def __init__(
        self, windows: Mapping[str, WindowConfig] | Any, lateness: int = 0, *, sizes: bool = False
    ) -> None:
        if not isinstance(windows, Mapping):  # a tasks config (old call sites)
            windows, lateness = windows.windows, windows.engine.lateness
        self.logics = tuple(build_logic(w, lateness, sizes=sizes) for w in windows.values())
        self._procs = tuple((i, logic.step_function()) for i, logic in enumerate(self.logics))
        # one window: skip the loop (the benchmark's shape)
        self._only = self._procs[0][1] if len(self._procs) == 1 else None
        self._deadlines = tuple(logic.deadline for logic in self.logics)
        self._rest, self._by_type = self._dispatch()
        self.sizes = sizes

    def _dispatch(
        self,
    ) -> tuple[tuple[tuple[int, ProcessFn], ...], dict[str, tuple[tuple[int, ProcessFn], ...]]]:
        """Return the steps of the configs an event of an unnamed type may enter (those with
        no filter), and by type named in a filter, the steps that type may enter (in order)."""
        named = {t for lg in self.logics for t in lg.filter_types}
        named |= {t for lg in self.logics for t, _ in lg.filter_pairs}

        def admits(logic: WindowLogic, etype: str | None) -> bool:
            if logic.filter is None:
                return True
            return etype in logic.filter_types or any(t == etype for t, _ in logic.filter_pairs)

        rest = tuple(p for p in self._procs if admits(self.logics[p[0]], None))
        by_type = {t: tuple(p for p in self._procs if admits(self.logics[p[0]], t)) for t in named}
        return rest, by_type

    def _due(self, wins: list[Any]) -> int:
        due = NO_DEADLINE
        # a plain loop by index: no list, and no zip(..., strict=True) (a call through the
        # interpreter in the compiled build, about 3,000 instructions)
        for i, deadline in enumerate(self._deadlines):
            d = deadline(wins[i])
            if d < due:
                due = d
        return due

    def new_state(self, device: str, residue: int | None = None) -> WindowState:
        """Return a device's state; ``residue`` is its ``maxts`` from before a freeing."""
        maxts = NO_TS if residue is None else residue
        return WindowState(device, maxts, [logic.new_state() for logic in self.logics])

    def residue(self, state: WindowState) -> int | None:
        """Return what must outlive a freed state: the device's max ts (None if it has none)."""
        return None if state.maxts == NO_TS else state.maxts

    def process(
        self, state: WindowState, index: int, event: Event, out: list[dict[str, Any]]
    ) -> None:
        """Handle the device's event number ``index``; append late and closed-window records."""
        ts = event.ts
        if ts > state.maxts:
            state.maxts = ts
        only = self._only
        if only is not None:
            only(state.wins[0], index, event, state.maxts, event.device, out)
            return
        maxts, device, wins = state.maxts, event.device, state.wins
        # the two ints as objects once per event, not once per call (the compiled build makes
        # an object of an int for each call through a function value)
        seq: Any = index
        top: Any = maxts
        if maxts >= state.due:  # a close is due somewhere: every config, in order
            for i, process in self._procs:
                process(wins[i], seq, event, top, device, out)
            state.due = self._due(wins)
            return
        # nothing to close: only the configs that may admit the event (none closes anything)
        due, deadlines = state.due, self._deadlines
        for i, process in self._by_type.get(event.type, self._rest):
            w = wins[i]
            process(w, seq, event, top, device, out)
            d: int = deadlines[i](w)
            if d < due:
                due = d
        state.due = due

    def advance(self, state: WindowState, now_ms: int, out: list[dict[str, Any]]) -> None:
        """Move the device's max ts to ``now_ms`` if later, and close what that watermark closes."""
        if now_ms > state.maxts:
            state.maxts = now_ms
        wins = state.wins
        for i, logic in enumerate(self.logics):
            logic.advance(wins[i], state.maxts, state.device, out)
        state.due = self._due(state.wins)

    def deadline(self, state: WindowState) -> int | None:
        """Return the smallest ``now_ms`` at which :meth:`advance` closes a window (None: never).

        Exact after :meth:`advance` (which recomputes ``due``); the engine's idle rule asks it
        there, to know when to look at a quiet device again.
        """
        due = state.due
        return None if due >= NO_DEADLINE else due

    def close(self, state: WindowState, out: list[dict[str, Any]]) -> None:
        """End of input: emit every open window with ``forced: true``."""
        device = state.device
        wins = state.wins
        for i, logic in enumerate(self.logics):
            wst = wins[i]
            if not logic.empty(wst):  # (most of a device's windows, at the end of a replay)
                logic.close(wst, device, out)
        state.due = self._due(state.wins)

    def idle(self, state: WindowState) -> bool:
        """True when no window of the device is open."""
        if state.due < NO_DEADLINE:  # a time or session window is open (the common answer)
            return False
        wins = state.wins
        for i, logic in enumerate(self.logics):  # noqa: SIM110
            if not logic.empty(wins[i]):
                return False
        return True

    def dump(self, state: WindowState) -> Any:
        """Return ``[device, maxts, [per-window dump, ...]]`` (msgpack-able)."""
        return [
            state.device,
            state.maxts,
            [lg.dump(state.wins[i]) for i, lg in enumerate(self.logics)],
        ]

    def load(self, data: Any) -> WindowState:
        """Rebuild a state from :meth:`dump`'s output."""
        device, maxts, wins = data
        loaded = [lg.load(wins[i]) for i, lg in enumerate(self.logics)]
        return WindowState(device, maxts, loaded, self._due(loaded))

    def carry(
        self,
        old: object,
        dumped: Any,
        device: str,
        kept: Collection[str],
        out: list[dict[str, Any]],
    ) -> Any:
        """Return ``device``'s state for this stage, carried over from another stage's dump.

        For a switch to a new tasks file: ``old`` is the window stage of the previous file
        and ``dumped`` what its :meth:`dump` gave for ``device``. Each window named in
        ``kept`` (same name, same table) keeps its open windows exactly; every other window
        of this stage starts empty; every window of ``old`` not in ``kept`` (removed or
        changed) is closed, its open windows appended to ``out`` with ``forced: true``. The
        device's max ts is kept, so its watermark does not move back.

        Args:
            old: the previous stage (anything but a :class:`WindowStage` counts as none).
            dumped: ``old.dump(state)`` for the device, or None when it had no state.
            device: the device.
            kept: the names of the windows whose table did not change.
            out: where the closed windows' records go.

        Returns:
            What :meth:`dump` would return for the carried state (for :meth:`load`).
        """
        fresh = self.dump(self.new_state(device))
        if not isinstance(old, WindowStage) or dumped is None:
            return fresh
        state = old.load(dumped)
        olds = {lg.name: (lg, w) for lg, w in zip(old.logics, state.wins, strict=True)}
        wins = []
        for i, logic in enumerate(self.logics):
            hit = olds.get(logic.name) if logic.name in kept else None
            wins.append(fresh[2][i] if hit is None else hit[0].dump(hit[1]))
        for name, (lg, w) in olds.items():
            if name not in kept:
                lg.close(w, device, out)
        return [device, state.maxts, wins]

    def view(self, state: WindowState, now_ms: int) -> dict[str, Any]:
        """Return the device's open windows (JSON-ready), for tasks.

        ``{"max_ts", "windows": {NAME: {"watermark", "open": [{key, start, end, values}, ...]}}}``;
        ``age_ms`` of an open time window is ``now_ms - start``.
        """
        windows = {}
        for lg, w in zip(self.logics, state.wins, strict=True):
            rows = lg.open_windows(w)
            for r in rows:
                r["age_ms"] = now_ms - r["start"]
            windows[lg.name] = {"watermark": state.maxts - lg.lateness, "open": rows}
        return {"max_ts": state.maxts, "windows": windows}
