"""The tasks file composes the core's configs; the engine is built from their slices."""

from __future__ import annotations

from typing import Any

import pytest

import streamfeat.triggers._config as trigger_config
import streamfeat.triggers._stage as trigger_stage
from streamfeat._event import Event
from streamfeat.encoders import AdmissionSpec, CountingBloomAdmission
from streamfeat.engine import build_engine, schemas_for
from streamfeat.errors import ConfigError
from streamfeat.features import FeatureStage
from streamfeat.tasks import TriggerConfig, parse_tasks
from streamfeat.triggers import parse_pattern
from streamfeat.windows import WindowStage

TASKS = """
[triggers]
ab = "a * b"
cc = "c{2}"
[windows.w]
assign = "tumbling 10s"
[windows.gone]
assign = "tumbling 1m"
[features.ipv]
kind = "ipv"
[upload]
admission = "bloom 3"
"""


def test_a_pattern_is_parsed_once_at_load_and_never_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def counting(text: str, *, name: str | None = None) -> Any:
        calls.append(text)
        return parse_pattern(text, name=name)

    monkeypatch.setattr(trigger_config, "parse_pattern", counting)
    monkeypatch.setattr(trigger_stage, "parse_pattern", counting)
    config = parse_tasks(TASKS)
    assert calls == ["a * b", "c{2}"]
    assert isinstance(config.triggers["ab"], TriggerConfig)
    build_engine(config)
    assert calls == ["a * b", "c{2}"]


def test_the_admission_spec_is_parsed_at_load_and_builds_its_filter() -> None:
    upload = parse_tasks(TASKS).upload
    assert upload.admission == "bloom 3"
    assert upload.admission_spec == AdmissionSpec("bloom", "bloom 3", n=3)
    built = upload.admission_spec.build(seed=5)
    assert isinstance(built, CountingBloomAdmission)
    assert (built.n, built.seed) == (3, 5)


def test_a_bad_admission_spec_is_refused_at_load_with_its_key() -> None:
    with pytest.raises(ConfigError) as info:
        parse_tasks('[upload]\nadmission = "bloom 0"\n', source="t.toml")
    assert (info.value.file, info.value.key) == ("t.toml", "upload.admission")


def test_schemas_come_from_the_engine_and_the_old_name_still_works() -> None:
    from streamfeat.encoders import schemas_for as old_schemas_for

    config = parse_tasks(TASKS)
    assert old_schemas_for(config).id == schemas_for(config).id


def ev(ts: int, etype: str, **kw: Any) -> Event:
    return Event(ts, etype, "d", kw.pop("page", None), kw.pop("item", None), kw)


def test_window_carry_keeps_kept_windows_and_closes_the_rest() -> None:
    config = parse_tasks(TASKS)
    old = WindowStage(config.windows, config.engine.lateness)
    state = old.new_state("d")
    out: list[dict[str, Any]] = []
    for i, e in enumerate([ev(1_000, "a"), ev(2_000, "b")]):
        old.process(state, i, e, out)
    new_config = parse_tasks(TASKS.replace('[windows.gone]\nassign = "tumbling 1m"\n', ""))
    new = WindowStage(new_config.windows, new_config.engine.lateness)
    closed: list[dict[str, Any]] = []
    carried = new.load(new.carry(old, old.dump(state), "d", {"w"}, closed))
    assert [(r["window"], r["final"], r["values"]) for r in closed] == [("gone", True, {"n": 2})]
    final: list[dict[str, Any]] = []
    new.close(carried, final)
    assert [(r["window"], r["values"]) for r in final] == [("w", {"n": 2})]
    assert new.carry(None, old.dump(state), "d", {"w"}, closed) == new.dump(new.new_state("d"))


def test_feature_carry_closes_a_changed_feature_truncated() -> None:
    config = parse_tasks(TASKS)
    old = FeatureStage(config.features, config.engine.partial_limit)
    state = old.new_state("d")
    out: list[dict[str, Any]] = []
    old.process(state, 0, ev(1_000, "page_enter", page="item_detail", item="i1"), out)
    new_config = parse_tasks(TASKS.replace('kind = "ipv"', 'kind = "ipv"\nactions = ["share"]'))
    new = FeatureStage(new_config.features, new_config.engine.partial_limit)
    closed: list[dict[str, Any]] = []
    new.carry(old, old.dump(state), "d", set(), closed)
    assert [(r["feature"], r["values"]["truncated"]) for r in closed] == [("ipv", True)]
