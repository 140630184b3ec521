"""Switching a running engine to a new tasks file, keeping the state of what did not change.

Theory of operation
-------------------
The window and feature stages have no hot add/remove of their own, so a new tasks file is
applied at the agent level: the agent drains its queue (every event submitted before the switch
goes through the old engine), then :func:`switch_engine` builds the new engine and carries the
per-device state over, stage by stage, from the old engine's snapshot:

* **triggers**: the old :class:`~streamfeat.triggers.TriggerStage` object is kept and updated in
  place with one ``update(added, removed)`` (a trigger whose pattern changed is removed and added),
  so partial matches of unchanged triggers survive. If ``[engine]`` changed (partial-match
  limits) or the file has no triggers any more, the stage is rebuilt (or dropped).
* **windows** / **features**: a new stage is built; each window (feature) whose name and
  config are unchanged keeps its open windows (visits) exactly; a new one starts empty; a
  removed one is closed: its open windows come out with ``forced: true`` (its open visits as
  truncated), so nothing that was counted is lost.
* the per-device event counter is kept, so event indexes go on where they were.

This module is synchronous and free of I/O: it takes engines and configs and returns the new
engine, the records of the closed windows, and a :class:`SwitchReport` of what changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgpack

from streamfeat.engine import Engine, Record, Stage
from streamfeat.features import FeatureStage
from streamfeat.tasks import TasksConfig
from streamfeat.triggers import TriggerStage
from streamfeat.windows import WindowStage

__all__ = ["SwitchReport", "diff_configs", "switch_engine"]


@dataclass(frozen=True)
class SwitchReport:
    """What a switch changed, by section: names added, removed, changed (removed + added)."""

    added: dict[str, list[str]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)
    closed_records: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready form (for the store's version history)."""
        return {
            "added": self.added, "removed": self.removed, "changed": self.changed,
            "kept": self.kept, "closed_records": self.closed_records,
        }  # fmt: skip


def _diff(
    old: dict[str, Any], new: dict[str, Any]
) -> tuple[list[str], list[str], list[str], list[str]]:
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    changed = [n for n in new if n in old and old[n] != new[n]]
    kept = [n for n in new if n in old and old[n] == new[n]]
    return added, removed, changed, kept


def diff_configs(old: TasksConfig, new: TasksConfig) -> SwitchReport:
    """Return which triggers, windows, features and tasks ``new`` adds, removes or changes.

    A window (feature) counts as changed when its table changed or when an ``[engine]``
    setting it depends on (lateness, partial limit) changed.
    """
    engine_changed = old.engine != new.engine
    sections: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
        "triggers": (dict(old.triggers), dict(new.triggers)),
        "windows": (dict(old.windows), dict(new.windows)),
        "features": (dict(old.features), dict(new.features)),
        "tasks": (dict(old.tasks) | dict(old.reranks), dict(new.tasks) | dict(new.reranks)),
        "models": (dict(old.models), dict(new.models)),
    }
    report = SwitchReport()
    for name, (o, n) in sections.items():
        added, removed, changed, kept = _diff(o, n)
        if engine_changed and name in ("triggers", "windows", "features"):
            changed, kept = changed + kept, []
        for target, names in ((report.added, added), (report.removed, removed),
                              (report.changed, changed), (report.kept, kept)):  # fmt: skip
            if names:
                target[name] = names
    return report


def _trigger_stage(
    old_engine: Engine, old: TasksConfig, new: TasksConfig, report: SwitchReport
) -> Stage | None:
    """Return the triggers stage of the new engine (the old one updated in place, if possible)."""
    if not new.triggers:
        return None
    stage = next((s for s in old_engine.stages if s.name == "triggers"), None)
    if stage is None or old.engine != new.engine:
        return TriggerStage(new.triggers, new.engine.limits)
    assert isinstance(stage, TriggerStage)
    changed = report.changed.get("triggers", [])
    added = {n: new.triggers[n] for n in changed + report.added.get("triggers", [])}
    stage.update(added, report.removed.get("triggers", []) + changed)  # one rebuild, all or nothing
    return stage


def _new_stages(
    old_engine: Engine, old: TasksConfig, new: TasksConfig, report: SwitchReport, sizes: bool
) -> list[Stage]:
    stages: list[Stage] = []
    trig = _trigger_stage(old_engine, old, new, report)
    if trig is not None:
        stages.append(trig)
    if new.windows:
        stages.append(WindowStage(new.windows, new.engine.lateness, sizes=sizes))
    if new.features:
        limit, events = new.engine.partial_limit, new.engine.partial_limit_events
        stages.append(FeatureStage(new.features, limit, sizes=sizes, partial_limit_events=events))
    return stages


class _Carry:
    """Maps one device's dumped stage states from the old stages to the new ones."""

    def __init__(
        self, old_stages: list[Stage], new_stages: list[Stage], report: SwitchReport
    ) -> None:
        self.old = {s.name: s for s in old_stages}
        self.new = new_stages
        self.report = report
        self.kept = {sec: set(report.kept.get(sec, ())) for sec in ("windows", "features")}

    def residue(self, residue: list[Any] | None) -> list[Any] | None:
        """Map a freed device's per-stage residues (the engine keeps them) onto the new stages."""
        if residue is None:
            return None
        by_name = dict(zip(self.old, residue, strict=True))
        kept = [by_name.get(s.name) if hasattr(s, "residue") else None for s in self.new]
        return kept if any(r is not None for r in kept) else None

    def device(self, device: str, dumped: list[Any], out: list[Record]) -> list[Any]:
        old_by_name = dict(zip(self.old, dumped, strict=True))
        result = []
        for stage in self.new:
            prev = old_by_name.get(stage.name)
            if stage.name == "triggers":
                same = self.old.get("triggers") is stage
                result.append(
                    prev if same and prev is not None else stage.dump(stage.new_state(device))
                )
            elif isinstance(stage, WindowStage | FeatureStage):
                kept = self.kept[stage.name]
                result.append(stage.carry(self.old.get(stage.name), prev, device, kept, out))
            else:
                result.append(stage.dump(stage.new_state(device)))
        self._close_dropped(device, old_by_name, out)
        return result

    def _close_dropped(self, device: str, old_by_name: dict[str, Any], out: list[Record]) -> None:
        """Close a whole windows / features stage the new file no longer has."""
        new_names = {s.name for s in self.new}
        for name in ("windows", "features"):
            if name in old_by_name and name not in new_names and old_by_name[name] is not None:
                stage = self.old[name]
                stage.close(stage.load(old_by_name[name]), out)


def switch_engine(
    old_engine: Engine,
    old: TasksConfig,
    new: TasksConfig,
    *,
    sizes: bool = False,
    sample_every: int = 64,
) -> tuple[Engine, list[Record], SwitchReport]:
    """Return an engine for ``new`` holding ``old_engine``'s state of everything unchanged.

    ``old_engine`` must not be processing (the caller drained it); its triggers stage may be
    reused and updated in place, so ``old_engine`` must not be used afterwards.

    Returns:
        The new engine, the records that closing removed or changed windows and features
        produced (``final: true`` windows, truncated visits), and the report.

    Raises:
        TriggerSpecError: a new pattern does not parse (the loader normally refused it first);
            the old engine is then unchanged.
    """
    report = diff_configs(old, new)
    stages = _new_stages(old_engine, old, new, report, sizes)
    body = msgpack.unpackb(old_engine.snapshot(), raw=False, strict_map_key=False)
    carry = _Carry(list(old_engine.stages), stages, report)
    out: list[Record] = []
    devices = {}
    for device, (count, dumped, residue) in body["devices"].items():
        devices[device] = [
            count,
            None if dumped is None else carry.device(device, dumped, out),
            carry.residue(residue),
        ]
    engine = Engine(stages, sample_every=sample_every)
    new_body = {
        "v": body["v"],
        "stages": [s.name for s in stages],
        "events": body["events"],
        "devices": devices,
    }
    engine.restore(msgpack.packb(new_body, use_bin_type=True))
    final = SwitchReport(report.added, report.removed, report.changed, report.kept, len(out))
    return engine, out, final
