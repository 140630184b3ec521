"""A staged release through a running fleet (real endpoint process, fleet processes, loopback):
a good bundle reaches every device; a broken one rolls back by itself, no device is left on
it, and the audit stays clean across the switches."""

from __future__ import annotations

from pathlib import Path

from streamfeat.sim import SimOptions, simulate
from streamfeat.sim._release import parse_release_spec


def test_a_staged_release_reaches_every_device_and_the_audit_stays_clean(tmp_path: Path) -> None:
    plan = parse_release_spec("10@1,50@3,100@5", bundle_mb=0.2)
    r = simulate(SimOptions(devices=16, minutes=1.0, speed=3.0, processes=2, seed=3,
                            workdir=tmp_path, release=plan))  # fmt: skip
    rel = r.release
    assert rel["state"] == "complete"
    assert rel["statuses"] == {"live": 16}
    assert sum(s["devices"] for s in rel["stages"]) == 16
    assert all(s["to_100_s"] is not None for s in rel["stages"] if s["devices"])
    assert rel["pulled_bytes_per_device"] == rel["bundle_bytes"]
    assert (r.lost, r.doubled, r.undecodable) == (0, 0, 0)


def test_a_broken_bundle_is_rolled_back_by_itself_and_no_device_stays_on_it(tmp_path: Path) -> None:
    plan = parse_release_spec("25@1,100@3", bundle_mb=0.05, broken=True)
    r = simulate(SimOptions(devices=16, minutes=1.0, speed=3.0, processes=2, seed=4,
                            workdir=tmp_path, release=plan))  # fmt: skip
    rel = r.release
    assert rel["state"] == "rolled_back"
    assert "task error rate" in rel["rollback"]
    assert "live" not in rel["statuses"]
    assert (r.lost, r.doubled, r.undecodable) == (0, 0, 0)


def test_release_specs_are_checked() -> None:
    import pytest

    for bad in ("", "50@3,10@5", "0@1", "x@1", "100@-1"):
        with pytest.raises(ValueError, match="--release"):
            parse_release_spec(bad)
