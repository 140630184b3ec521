"""Admission filters: statistics, seeds, bounded state, dump/load."""

from __future__ import annotations

import contextlib
import math
import statistics
from fractions import Fraction

import pytest

from streamfeat.encoders.admission import (
    CountingBloomAdmission,
    PoissonInclusion,
    PoissonProcessAdmission,
    load_admission,
    reach_probability,
)
from streamfeat.errors import DecodeError


def sightings_to_admission(
    f: PoissonInclusion | PoissonProcessAdmission, key: str, limit: int = 10_000
) -> int:
    for i in range(1, limit + 1):
        if f.admit(key):
            return i
    return limit


@pytest.mark.parametrize("p", [0.5, 0.1, 0.02])
def test_poisson_mean_sightings_to_admission_is_one_over_p(p: float) -> None:
    f = PoissonInclusion(p, seed=11, cells=1 << 22)
    n = 3000
    counts = [sightings_to_admission(f, f"item-{i}") for i in range(n)]
    mean = statistics.fmean(counts)
    stderr = math.sqrt(1 - p) / p / math.sqrt(n)  # geometric distribution
    assert abs(mean - 1 / p) < 4 * stderr, (mean, 1 / p)
    assert f.false_positive_rate() < 1e-6


def test_poisson_admission_is_sticky() -> None:
    f = PoissonInclusion(0.3, seed=1)
    sightings_to_admission(f, "x")
    assert all(f.admit("x") for _ in range(100))
    assert f.is_admitted("x")


def test_bloom_admits_exactly_at_the_nth_sighting_when_roomy() -> None:
    f = CountingBloomAdmission(4, seed=5, cells=1 << 20)
    for i in range(2000):
        decisions = [f.admit(f"id{i}") for _ in range(6)]
        assert decisions == [False, False, False, True, True, True]


def test_bloom_admits_early_only_at_its_measured_false_positive_rate() -> None:
    n = 3
    f = CountingBloomAdmission(n, seed=9, cells=4096, hashes=3)
    true: dict[str, int] = {}
    early = before_n = 0
    for i in range(6000):
        key = f"k{i % 1700}" if i % 5 else f"k{i}"  # some repeat, many are new
        true[key] = true.get(key, 0) + 1
        admitted = f.admit(key)
        if true[key] >= n:
            assert admitted  # a count-min never undercounts: never late
        else:
            before_n += 1
            early += admitted
    fresh = 20_000
    measured = sum(f.estimate(f"fresh-{j}") >= 1 for j in range(fresh)) / fresh
    assert abs(measured - f.false_positive_rate()) < 0.05  # the formula tracks the measurement
    rate = early / before_n
    # the filter only fills up, so the final measured rate bounds the rate at every sighting
    assert rate <= measured + 3 * math.sqrt(measured / before_n) + 1e-3, (rate, measured)
    assert 0 < measured < 1  # the test is in the crowded regime it means to check


def reach_reference(n: int, t: int, k: int, horizon: float) -> float:
    """P(N >= k - n), N ~ Poisson((n - 1) / t * horizon), by exact rational partial sums."""
    need = k - n
    if need <= 0:
        return 1.0
    mu = Fraction(n - 1, t) * Fraction(horizon)
    term, cdf = Fraction(1), Fraction(0)
    for i in range(need):
        cdf += term
        term = term * mu / (i + 1)
    return 1.0 - math.exp(-float(mu)) * float(cdf)


@pytest.mark.parametrize(
    ("n", "t", "k", "h"),
    [
        (1, 1, 5, 10.0),
        (2, 50, 5, 100.0),
        (2, 1000, 3, 50.0),
        (4, 10, 20, 30.0),
        (5, 3, 5, 1.0),
        (3, 7, 12, 200.0),
    ],
)
def test_reach_probability_matches_the_poisson_tail(n: int, t: int, k: int, h: float) -> None:
    assert reach_probability(n, t, k, h) == pytest.approx(reach_reference(n, t, k, h), abs=1e-9)


def test_process_admits_at_the_rate_the_formula_gives() -> None:
    k, horizon, gap = 4, 3.0, 2
    f = PoissonProcessAdmission(k, horizon, seed=2, cells=1 << 18)
    n = 4000
    admitted = 0
    for i in range(n):
        # a first sighting starts the clock and is never admitted (k > 1); the second, `gap`
        # steps later, is admitted with chance reach(2, gap, k, H)
        assert not f.admit(f"id-{i}", now=10 * i)
        admitted += f.admit(f"id-{i}", now=10 * i + gap)
    p = reach_probability(2, gap, k, horizon)
    assert 0.05 < p < 0.95
    assert abs(admitted / n - p) < 4 * math.sqrt(p * (1 - p) / n)


def test_process_admits_frequent_ids_sooner_than_rare_ones() -> None:
    f = PoissonProcessAdmission(6, 200.0, seed=4, cells=1 << 16)
    frequent, rare = [], []
    step = 0
    for i in range(200):
        # frequent ids come back every 3 steps, rare ones every 400
        for gap, out, name in ((3, frequent, "f"), (400, rare, "r")):
            key = f"{name}{i}"
            for j in range(1, 7):
                step += gap
                if f.admit(key, now=step):
                    out.append(j)
                    break
            else:
                out.append(7)
    assert statistics.fmean(frequent) < statistics.fmean(rare) - 1


def test_process_admits_every_id_at_k_sightings() -> None:
    f = PoissonProcessAdmission(3, 0.001, seed=1)
    for i in range(300):
        assert [f.admit(f"x{i}") for _ in range(3)][-1]


def test_process_clock_going_back_holds_the_step() -> None:
    f = PoissonProcessAdmission(5, 10.0)
    f.admit("a", now=100)
    f.admit("a", now=50)
    assert f.step == 100
    assert f.estimate("a") == (2, 0)


FACTORIES = [
    lambda seed: PoissonInclusion(0.2, seed=seed, cells=1 << 12),
    lambda seed: CountingBloomAdmission(3, seed=seed, cells=1 << 12),
    lambda seed: PoissonProcessAdmission(4, 20.0, seed=seed, cells=1 << 10, bits=1 << 12),
]


@pytest.mark.parametrize(
    "make",
    [
        *FACTORIES[::2],
        # a roomy counting filter decides the same under any seed; a crowded one collides
        # differently per seed
        lambda seed: CountingBloomAdmission(3, seed=seed, cells=64, hashes=2),
    ],
)
def test_same_seed_same_decisions_other_seed_others(make) -> None:  # type: ignore[no-untyped-def]
    keys = [f"k{i % 97}" for i in range(2000)]
    a, b, c = make(1), make(1), make(2)
    da = [a.admit(k) for k in keys]
    assert da == [b.admit(k) for k in keys]
    assert da != [c.admit(k) for k in keys]


@pytest.mark.parametrize("make", FACTORIES)
def test_dump_load_continues_exactly(make) -> None:  # type: ignore[no-untyped-def]
    keys = [f"k{(i * 7) % 131}" for i in range(3000)]
    f = make(7)
    for k in keys[:1500]:
        f.admit(k)
    g = load_admission(f.dump())
    assert type(g) is type(f)
    assert [f.admit(k) for k in keys[1500:]] == [g.admit(k) for k in keys[1500:]]
    assert f.dump() == g.dump()


@pytest.mark.parametrize("make", FACTORIES)
def test_state_size_is_bounded_by_the_parameters(make) -> None:  # type: ignore[no-untyped-def]
    f = make(0)
    size0 = len(f.dump())
    for i in range(20_000):
        f.admit(f"distinct-{i}")
    assert len(f.dump()) <= size0 + 16  # counters of the PRNG/steps may grow a few bytes


@pytest.mark.parametrize("make", FACTORIES)
def test_corrupt_state_is_a_decode_error(make) -> None:  # type: ignore[no-untyped-def]
    data = make(3).dump()
    bad = [
        b"",
        b"SFAD",
        data[:-1],
        data[:20],
        b"QQQQ" + data[4:],
        data + b"\x00",
        data[:4] + b"\x09" + data[5:],
    ]
    for i in range(0, len(data), max(1, len(data) // 50)):
        bad.append(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1 :])
    for blob in bad:
        with contextlib.suppress(DecodeError):
            load_admission(blob)


def test_forged_sizes_do_not_allocate() -> None:
    import msgpack

    body = msgpack.packb(
        {
            "kind": "bloom",
            "params": {"n": 2, "seed": 0, "cells": 1 << 32, "hashes": 2, "buckets": 8},
            "state": {"counters": b"", "rng": 0, "sightings": 0},
        }
    )
    with pytest.raises(DecodeError):
        load_admission(b"SFAD\x01" + body)


def test_bad_parameters_are_refused() -> None:
    for make in (lambda: PoissonInclusion(0.0), lambda: PoissonInclusion(1.5), lambda: CountingBloomAdmission(0),
                 lambda: CountingBloomAdmission(256), lambda: PoissonProcessAdmission(0, 1.0),
                 lambda: PoissonProcessAdmission(3, 0.0), lambda: CountingBloomAdmission(2, cells=2),
                 lambda: CountingBloomAdmission(2, hashes=0)):  # fmt: skip
        with pytest.raises(ValueError, match="must be"):
            make()


def test_buckets_do_not_depend_on_the_seed() -> None:
    a, b = CountingBloomAdmission(2, seed=1), PoissonInclusion(0.5, seed=99)
    assert a.bucket("2333346") == b.bucket("2333346")
    assert 0 <= a.bucket("x") < a.buckets


@pytest.mark.parametrize("make", FACTORIES)
def test_class_load_checks_the_kind(make) -> None:  # type: ignore[no-untyped-def]
    f = make(4)
    f.admit("a")
    assert type(f).load(f.dump()).dump() == f.dump()
    for other in (PoissonInclusion, CountingBloomAdmission, PoissonProcessAdmission):
        if other is not type(f):
            with pytest.raises(DecodeError):
                other.load(f.dump())


def test_state_with_refused_parameters_is_a_decode_error() -> None:
    import msgpack

    f = CountingBloomAdmission(3, cells=16)
    kind_params_state = msgpack.unpackb(f.dump()[5:])
    kind_params_state["params"]["hashes"] = 99
    with pytest.raises(DecodeError):
        load_admission(b"SFAD\x01" + msgpack.packb(kind_params_state))
    kind_params_state["params"]["hashes"] = 2
    kind_params_state["params"]["buckets"] = 0
    with pytest.raises(DecodeError):
        CountingBloomAdmission.load(b"SFAD\x01" + msgpack.packb(kind_params_state))


@pytest.mark.parametrize("make", FACTORIES)
def test_repr_names_the_parameters(make) -> None:  # type: ignore[no-untyped-def]
    text = repr(make(5))
    assert text.startswith(type(make(5)).__name__ + "(")
    assert "seed=5" in text


def test_parse_admission() -> None:
    from streamfeat.encoders import parse_admission

    assert isinstance(parse_admission("poisson 0.25"), PoissonInclusion)
    f = parse_admission("process 5 1000", seed=3)
    assert isinstance(f, PoissonProcessAdmission)
    assert (f.k, f.horizon, f.seed) == (5, 1000.0, 3)
    assert parse_admission("bloom 2").n == 2  # type: ignore[union-attr]
    for bad in ("bloom", "bloom x", "bloom 0", "poisson 2", "lru 5", "", "process 5"):
        with pytest.raises(ValueError, match=r"admission|must be|invalid|not"):
            parse_admission(bad)
