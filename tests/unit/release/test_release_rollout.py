"""Matrix resolution, grading, stable percent rollout, health and the release state machine."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.errors import ConfigError
from streamfeat.release import (
    DEFAULT_GRADING,
    GradeReport,
    HealthReport,
    HealthThresholds,
    Release,
    ReleaseState,
    ReleaseStateError,
    bucket,
    evaluate,
    in_rollout,
    parse_grading,
    parse_matrix,
    parse_thresholds,
)

MATRIX = """
default = "base"
groups = ["new", "power"]
tiers = ["low", "mid", "high"]
[cells]
"power/high" = "big"
"power/*" = "mid-model"
"*/low" = "tiny"
"""


def _reference(cells: dict[tuple[str, str], str], default: str, g: str, t: str) -> str:
    for key in ((g, t), (g, "*"), ("*", t)):
        if key in cells:
            return cells[key]
    return default


@pytest.mark.parametrize("group", [None, "new", "power", "someone-else"])
@pytest.mark.parametrize("tier", [None, "low", "mid", "high", "quantum"])
def test_every_group_and_tier_resolves_to_its_cell_or_the_default(
    group: str | None, tier: str | None
) -> None:
    m = parse_matrix(MATRIX)
    g = group or "*"
    t = tier if tier in {"low", "mid", "high"} else "*"  # unknown tier: as documented, '*'
    assert m.resolve(group, tier) == _reference(dict(m.cells), "base", g, t)


def test_an_unknown_tier_never_gets_a_stronger_column() -> None:
    m = parse_matrix(MATRIX)
    assert m.resolve("power", "quantum") == "mid-model"  # the row, not power/high
    assert m.resolve("new", None) == "base"
    assert m.resolve("power", "high") == "big"
    assert m.resolve("new", "low") == "tiny"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('groups = ["a"]', "default"),
        ('default = "b"\nextra = 1', "extra"),
        ('default = "b"\ntiers = ["x"]\n[cells]\n"a/y" = "c"', "cells.a/y"),
        ('default = "b"\n[cells]\n"nogroup" = "c"', "cells.nogroup"),
        ('default = "b"\n[bundles]\nb = "short"', "bundles"),
    ],
)
def test_bad_matrices_are_refused_naming_the_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_matrix(text, source="m.toml")
    assert (err.value.file, err.value.key) == ("m.toml", key)


def test_grading_maps_figures_to_tiers_with_overrides() -> None:
    g = parse_grading(
        'weakest = "low"\n[tiers]\nhigh = 5\nmid = 20\n[overrides]\n"Pixel 3" = "low"'
    )
    assert g.tier(GradeReport("x", 2.0, 4.0, 50)) == "high"
    assert g.tier(GradeReport("x", 5.0, 9.0, 50)) == "high"
    assert g.tier(GradeReport("x", 12.0, 30.0, 50)) == "mid"
    assert g.tier(GradeReport("x", 80.0, 99.0, 50)) == "low"
    assert g.tier(GradeReport("Pixel 3", 1.0, 2.0, 50)) == "low"
    assert g.tier(GradeReport("x", math.nan, 2.0, 50)) == "low"
    assert DEFAULT_GRADING.names() == ("high", "mid", "low")
    with pytest.raises(ConfigError):
        parse_grading('weakest = "low"\n[tiers]\nmid = 20\nhigh = 5')  # not strongest first


@given(st.text(min_size=1, max_size=20), st.floats(0, 100), st.floats(0, 100))
def test_raising_the_percent_only_adds_devices(release: str, p: float, q: float) -> None:
    lo, hi = sorted((p, q))
    devices = [f"d{i}" for i in range(300)]
    at_lo = {d for d in devices if in_rollout(release, d, lo)}
    at_hi = {d for d in devices if in_rollout(release, d, hi)}
    assert at_lo <= at_hi


@pytest.mark.parametrize("percent", [1, 10, 50, 90])
def test_the_share_is_within_binomial_bounds_of_the_percent(percent: int) -> None:
    n = 20_000
    k = sum(in_rollout("release-7", f"device-{i}", percent) for i in range(n))
    p = percent / 100
    sd = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) <= 5 * sd  # 5 sigma: a fair hash never fails this
    assert 0 <= bucket("r", "d") < 10_000
    assert bucket("r1", "d") == bucket("r1", "d")


def test_health_names_the_first_threshold_crossed() -> None:
    limits = HealthThresholds(
        max_error_rate=0.1, max_timeout_rate=0.1, max_rerank_p99_ms=50, min_reports=2
    )
    ok = [HealthReport("a", 100, 1, 0, 10.0), HealthReport("b", 100, 0, 1, 20.0)]
    assert evaluate(ok, limits) is None
    bad = [HealthReport("a", 100, 30, 0, 10.0), HealthReport("b", 100, 0, 0, 20.0)]
    assert "error rate" in (evaluate(bad, limits) or "")
    slow = [HealthReport("a", 10, 0, 0, 90.0), HealthReport("b", 10, 0, 0, 80.0)]
    assert "p99" in (evaluate(slow, limits) or "")
    assert "failed to load" in (evaluate([HealthReport("a", load_failed=True)], limits) or "")
    assert evaluate([HealthReport("a", 10, 10, 0)], limits) is None  # too few reports yet


def test_a_release_rolls_out_grows_and_rolls_back_by_itself_when_unhealthy() -> None:
    r = Release("r1", HealthThresholds(max_error_rate=0.05, min_reports=1))
    assert not r.reaches("d1")
    r.rollout(10, now=1.0)
    assert r.state is ReleaseState.ROLLING
    with pytest.raises(ReleaseStateError):
        r.rollout(5, now=2.0)  # only ever more
    assert r.percent == 10
    assert r.observe([HealthReport("d", 100, 1)], now=3.0) is None
    t = r.observe([HealthReport("d", 100, 20)], now=4.0)
    assert t is not None
    assert r.state is ReleaseState.ROLLED_BACK
    assert "automatic rollback: task error rate" in t.reason
    assert not any(r.reaches(f"d{i}") for i in range(100))
    with pytest.raises(ReleaseStateError):
        r.rollout(50, now=5.0)
    with pytest.raises(ReleaseStateError):
        r.rollback("again", now=6.0)
    assert [h.step for h in r.history] == ["rollout", "observe"]


def test_a_complete_release_reaches_everyone_and_can_be_rolled_back() -> None:
    r = Release("r2")
    r.rollout(100, now=1.0)
    assert r.state is ReleaseState.COMPLETE
    assert all(r.reaches(f"d{i}") for i in range(100))
    r.rollback("operator", now=2.0)
    assert r.state is ReleaseState.ROLLED_BACK


def test_health_thresholds_parse_and_refuse() -> None:
    assert parse_thresholds({"max_error_rate": 0.01}).max_error_rate == 0.01
    for bad in (
        {"nope": 1},
        {"max_error_rate": -1},
        {"min_reports": 1.5},
        {"max_rerank_p99_ms": math.inf},
    ):
        with pytest.raises(ConfigError):
            parse_thresholds(bad)  # type: ignore[arg-type]


def test_grading_times_the_reference_model_with_the_injected_timer() -> None:
    from streamfeat.agent._grading import grade, hardware_id

    ticks = iter(range(10_000))
    report = grade(runs=9, model="test-phone", timer=lambda: next(ticks) * 0.002)  # 2 ms a run
    assert report.model == "test-phone"
    assert report.runs == 9
    assert report.infer_p50_ms == pytest.approx(2.0)
    assert report.infer_p99_ms == pytest.approx(2.0)
    assert DEFAULT_GRADING.tier(report) == "high"
    assert hardware_id().count("|") == 3
