"""Rendering the report: empty inputs, escaping of what came from the data, determinism."""

from __future__ import annotations

import re

import pytest

from streamfeat.report import ReportCollector, render_report

pytest.importorskip("matplotlib", reason="pip install 'streamfeat[report]'")

T0 = 1_767_225_600_000


def _plots(html: str) -> list[str]:
    return re.findall(r'data-plot="([^"]+)"', html)


def test_an_empty_replay_still_makes_a_page() -> None:
    html = render_report(ReportCollector(), {})
    assert html.startswith("<!DOCTYPE html>")
    assert _plots(html) == []
    assert "No valid events." in html
    assert "No trigger fired." in html


def test_text_from_the_input_is_escaped() -> None:
    c = ReportCollector()
    c.record(
        {
            "kind": "quarantine",
            "line": 3,
            "reason": 'line 3: `type` bad "<script>alert(1)</script>"',
        }
    )
    c.record({"kind": "late", "window": "w", "device": "<b>dev</b>", "ts": T0})
    html = render_report(c, {})
    assert "<script>alert" not in html
    assert "<b>dev</b>" not in html
    assert "&lt;b&gt;dev&lt;/b&gt;" in html
    assert {"late", "quarantine"} <= set(_plots(html))


def test_the_same_data_gives_the_same_plots() -> None:
    def build() -> str:
        c = ReportCollector(seed=3)
        for i in range(500):
            c.event(T0 + i * 1000)
            c.record({"kind": "trigger", "trigger": f"t{i % 3}", "device": "d", "first": 0,
                      "last": 1, "first_ts": T0, "last_ts": T0 + i * 1000})  # fmt: skip
        html = render_report(c, {})
        return html[html.index("<nav>") :]  # the header carries the time of writing

    assert build() == build()
