"""The paired comparison of two ranking runs (pure): ratio of sums, paired bootstrap."""

from __future__ import annotations

import random

import pytest

from streamfeat.sim._compare import paired_ratio, summarise_ranking


def _run(seed: int, n: int = 80) -> dict[str, dict[str, int]]:
    rng = random.Random(seed)
    out = {}
    for i in range(n):
        exp = rng.randint(5, 60)
        out[f"d{i}"] = {"exposures": exp, "clicks": sum(rng.random() < 0.15 for _ in range(exp)),
                        "sessions": 2}  # fmt: skip
    return out


def test_identical_runs_give_ratio_one_with_an_interval_holding_one() -> None:
    run = _run(1)
    r = paired_ratio(run, {k: dict(v) for k, v in run.items()}, seed=3)
    assert r["ratio"] == pytest.approx(1.0)
    assert r["low"] <= 1.0 <= r["high"]
    assert r["devices"] == 80


def test_ratio_is_the_ratio_of_sums_and_the_interval_holds_it() -> None:
    base, other = _run(1), _run(2)
    r = paired_ratio(base, other, rounds=500, seed=0)

    def ctr(run: dict[str, dict[str, int]]) -> float:
        return sum(d["clicks"] for d in run.values()) / sum(d["exposures"] for d in run.values())

    assert r["ratio"] == pytest.approx(ctr(other) / ctr(base))
    assert r["low"] < r["ratio"] < r["high"]
    assert paired_ratio(base, other, rounds=500, seed=0) == r  # seeded


def test_a_real_lift_is_detected_and_pairing_narrows_the_interval() -> None:
    base = _run(1, 200)
    lifted = {k: {**v, "clicks": round(v["clicks"] * 1.3)} for k, v in base.items()}
    r = paired_ratio(base, lifted, seed=1)
    assert r["low"] > 1.1
    # the same counts unpaired (devices shuffled) give a wider interval
    names = list(lifted)
    random.Random(5).shuffle(names)
    unpaired = {k: lifted[n] for k, n in zip(base, names, strict=True)}
    u = paired_ratio(base, unpaired, seed=1)
    assert u["ratio"] == pytest.approx(r["ratio"])
    assert u["high"] - u["low"] > r["high"] - r["low"]


def test_no_common_device_is_refused() -> None:
    with pytest.raises(ValueError, match="share no device"):
        paired_ratio({"a": {"clicks": 1, "exposures": 2}}, {"b": {"clicks": 1, "exposures": 2}})


def test_summary_sums_and_rates() -> None:
    runs = {"a": {"exposures": 10, "clicks": 2, "sessions": 1, "pages": 1, "purchases": 1,
                  "deletes": 0, "by_position": {"0": [1, 1], "1": [1, 0]}},
            "b": {"exposures": 30, "clicks": 4, "sessions": 2, "pages": 3, "purchases": 0,
                  "deletes": 1, "by_position": {"0": [2, 1]}}}  # fmt: skip
    s = summarise_ranking("server", runs)
    assert (s["exposures"], s["clicks"], s["pages"], s["deletes"]) == (40, 6, 4, 1)
    assert s["ctr"] == pytest.approx(0.15)
    assert s["clicks_per_session"] == pytest.approx(2.0)
    assert s["by_position"] == {"0": [3, 2], "1": [1, 0]}
