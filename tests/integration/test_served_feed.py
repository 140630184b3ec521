"""The served feed end to end: real endpoint and fleet processes, users who respond to the order
their device shows, ranking modes compared on the same seeds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamfeat.models.edgerec import DEFAULT_MODEL_PATH
from streamfeat.sim import SimOptions, simulate
from streamfeat.sim._compare import paired_ratio
from streamfeat.sim._ranking_report import run_compare
from streamfeat.sim._served import server_baseline

onnx = pytest.importorskip("onnx")


def _options(**kw: object) -> SimOptions:
    base = {"devices": 30, "minutes": 12.0, "speed": 0.0, "processes": 1, "seed": 5}
    return SimOptions(**(base | kw))  # type: ignore[arg-type]


def shuffled_model(path: Path, seed: int = 0) -> Path:
    """The shipped model with the values of each of its weight tensors permuted at random:
    the same architecture and scale of weights, nothing learned."""
    from streamfeat.train import shuffle_weights

    path.write_bytes(shuffle_weights(DEFAULT_MODEL_PATH.read_bytes(), seed=seed))
    return path


def test_server_mode_equals_the_offline_users_and_identical_modes_give_ratio_one() -> None:
    """A device that does not re-rank shows the server's order: the fleet's users do exactly
    what the same users do without a device. Two runs of the same mode on the same seeds
    are identical device by device (re-rank timing does not leak into what users see), so
    their ratio is 1 with an interval holding 1."""
    reports, ratios = run_compare(_options(), ["server", "heuristic", "heuristic"], simulate)
    server, h1, h2 = reports
    assert all(r.ok for r in reports)
    assert server.served == server_baseline(sorted(server.served), _options())
    assert server.ranking["exposures"] > 500
    assert server.ranking["clicks"] > 50
    assert h1.ranking["vs_server"]["ratio"] == pytest.approx(ratios["heuristic"]["ratio"])
    assert h1.reranks["applied"] > 50
    assert h1.reranks["timeouts"] == 0
    assert h1.served == h2.served
    # the headroom study's heuristic, computed in Python without a device, is this run's
    from streamfeat.sim._headroom import play

    assert {n: play(n.rsplit("-", 1)[-1], 5, "heuristic", 12.0) for n in h1.served} == h1.served
    r = paired_ratio(h1.served, h2.served, seed=5)
    assert r["ratio"] == pytest.approx(1.0)
    assert r["low"] <= 1.0 <= r["high"]


def test_shuffled_weights_give_no_significant_uplift(tmp_path: Path) -> None:
    """The control that cannot learn: the shipped model with shuffled weights does not beat
    the server's order (its interval's low end is not above 1)."""
    model = shuffled_model(tmp_path / "shuffled.onnx")
    report = simulate(_options(devices=60, ranking=f"model:{model}"))
    assert report.ok
    vs = report.ranking["vs_server"]
    assert report.reranks["applied"] > 100
    assert vs["low"] <= 1.0, vs


def test_the_oracle_is_a_ceiling_well_above_the_servers_order() -> None:
    """``--ranking oracle`` orders by what only the simulator knows (the user's current
    interests): far above the server's order, its interval clear of 1; the device runs its
    re-rank task in the shadow only."""
    report = simulate(_options(ranking="oracle"))
    assert report.ok
    vs = report.ranking["vs_server"]
    assert vs["low"] > 1.0, vs
    assert report.reranks["applied"] == 0
    from streamfeat.sim._headroom import play

    assert {
        n: play(n.rsplit("-", 1)[-1], 5, "oracle", 12.0) for n in report.served
    } == report.served


@pytest.mark.parametrize("policy", ["swipe", "kuaishou"])
def test_rerank_at_every_exposure(policy: str) -> None:
    """``--rerank-policy swipe`` / ``kuaishou``: the re-rank task fires after every exposure
    (and on a click and a delete with ``swipe``); the users see what the headroom study's
    device emulation shows them."""
    from streamfeat.sim._headroom import play

    report = simulate(_options(devices=12, ranking="heuristic", rerank_policy=policy))
    assert report.ok
    assert report.reranks["applied"] > report.ranking["clicks"] * 3
    want = {n: play(n.rsplit("-", 1)[-1], 5, "heuristic", 12.0, policy=policy)
            for n in report.served}  # fmt: skip
    assert want == report.served


def test_cli_compare_json_and_mistakes(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "streamfeat", "simulate", "--devices", "8", "--minutes", "6",
           "--speed", "0", "--processes", "1"]  # fmt: skip
    out = subprocess.run([*cmd, "--compare", "server,heuristic", "--json"], capture_output=True,
                         text=True, timeout=300, check=False)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    doc = json.loads(out.stdout)
    modes = [r["mode"] for r in doc["ranking"]]
    assert modes == ["server", "heuristic"]
    for key in (
        "pages",
        "exposures",
        "clicks",
        "ctr",
        "clicks_per_session",
        "purchases",
        "deletes",
    ):
        assert key in doc["ranking"][0]
    assert {"ratio", "low", "high", "method"} <= set(doc["ranking"][1]["vs_first"])
    for bad, said in (
        (["--ranking", "best"], "--ranking must be server, heuristic, model:FILE or oracle"),
        (["--ranking", f"model:{tmp_path / 'none.onnx'}"], "no model file"),
        (["--compare", "server"], "two or more different modes"),
        (["--ranking", "server", "--chaos"], "build their own tasks file"),
    ):
        res = subprocess.run([*cmd, *bad], capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 2, res.stderr
        assert said in res.stderr
        assert "Traceback" not in res.stderr
