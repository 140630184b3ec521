"""The metrics table in docs/operations.md is exactly what /metrics exports, and the names
follow the Prometheus conventions."""

from __future__ import annotations

import re
from pathlib import Path

from streamfeat.endpoint import TunnelMetrics

DOC = Path(__file__).resolve().parents[3] / "docs" / "operations.md"


def _exported() -> set[tuple[str, str]]:
    text = TunnelMetrics().render().decode()
    return {
        (name, kind)
        for name, kind in re.findall(r"^# TYPE (\S+) (\S+)", text, re.M)
        if not name.endswith("_created")  # prometheus_client's creation-time samples
    }


def test_the_doc_table_is_what_is_exported() -> None:
    table = set(re.findall(r"^\| `(streamfeat_[a-z_]+)` \| (\w+) \|", DOC.read_text(), re.M))
    assert table == _exported()


def test_names_follow_prometheus_conventions() -> None:
    for name, kind in _exported():
        assert re.fullmatch(r"streamfeat_(tunnel|endpoint)_[a-z_]+", name), name
        if kind == "counter":
            assert name.endswith("_total"), name
        else:
            assert not name.endswith("_total"), name
        if kind == "histogram":
            assert name.endswith("_seconds"), name  # latencies, in the base unit
        assert not re.search(r"_(ms|milliseconds|kb|mb)(_|$)", name), name
