"""Property tests of the behaviour generator against plain, slow references."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from streamfeat._event import event_from_obj
from streamfeat.gen import device_id, device_stream, generate_events
from tests.unit.data.checks import backward_steps, by_device, visit_problems

seeds = st.integers(min_value=-(2**63), max_value=2**63)
devices = st.integers(min_value=1, max_value=6)
minutes = st.floats(min_value=0.5, max_value=12.0)
disorders = st.sampled_from([0.0, 0.002, 0.05, 0.3])


@given(seeds, devices, minutes)
def test_merged_log_equals_a_stable_sort_of_the_device_streams(seed: int, n: int, m: float) -> None:
    # With no disorder ts is true time, so the merge must equal the obvious reference: every
    # device's stream, concatenated in device order, stably sorted by ts then device index.
    streams = [list(device_stream(device_id(i), m, seed, disorder=0.0)) for i in range(n)]
    tagged = [(ev["ts"], i, k, ev) for i, s in enumerate(streams) for k, ev in enumerate(s)]
    reference = [ev for *_, ev in sorted(tagged, key=lambda x: x[:3])]
    assert list(generate_events(n, m, seed, disorder=0.0)) == reference


@given(seeds, devices, minutes, disorders)
def test_every_event_valid_and_visits_bracketed(
    seed: int, n: int, m: float, disorder: float
) -> None:
    log = list(generate_events(n, m, seed, disorder=disorder))
    for obj in log:
        event_from_obj(obj)
    for events in by_device(log).values():
        assert visit_problems(events) == []
        assert all(1_000 <= b <= 120_000 for b in backward_steps(events))


@given(seeds, minutes, disorders)
def test_disorder_moves_ts_only(seed: int, m: float, disorder: float) -> None:
    # the clock has its own random source: the same user does the same things in the same
    # order, only ts moves, and every backward step is a clock change of 1 s to 2 min
    plain = list(device_stream("d", m, seed, disorder=0.0))
    moved = list(device_stream("d", m, seed, disorder=disorder))
    assert [{**e, "ts": 0} for e in plain] == [{**e, "ts": 0} for e in moved]
    for a, b in zip(plain, moved, strict=True):
        assert b["ts"] <= a["ts"]  # the clock is only ever set back, then synced
    assert all(1_000 <= b <= 120_000 for b in backward_steps(moved))
    if disorder == 0.0:
        assert moved == plain


@given(seeds, st.integers(min_value=1, max_value=4), minutes)
def test_same_arguments_same_events(seed: int, n: int, m: float) -> None:
    assert list(generate_events(n, m, seed)) == list(generate_events(n, m, seed))
