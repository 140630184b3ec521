"""The simulate / demo command lines: argument checks and the rendering of progress and report."""

from __future__ import annotations

import pytest
from rich.console import Console

from streamfeat.cli import main
from streamfeat.data import default_tasks_text
from streamfeat.sim._cli import progress_view, render_report
from streamfeat.sim._demo import demo_update
from streamfeat.sim._simulation import SimReport, percentile
from streamfeat.tasks import parse_tasks


def test_usage_errors_go_through_the_parser(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--server", "ws://127.0.0.1:1/v1/tunnel"])
    assert exc.value.code == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[windows.w]\nassign = "hopping"\n')
    with pytest.raises(SystemExit):
        main(["simulate", "--reconfigure", f"1:{bad}"])
    assert "hopping" in capsys.readouterr().err


def test_report_names_losses_and_the_audit_verdict() -> None:
    console = Console(width=120, record=True)
    r = SimReport(
        devices=3, queued=10, stored=8, lost=2, missing={"dev000001": 2}, records={"trigger": 4}
    )
    render_report(r, console)
    text = console.export_text()
    assert "lost 2" in text
    assert "dev000001: 2" in text
    assert not r.ok
    assert SimReport(queued=5, stored=5).ok


def test_progress_panel_shows_every_counter() -> None:
    console = Console(width=80, record=True)
    console.print(progress_view({"events": 1234, "triggers": 5, "connected": 3, "devices": 4, "v1": 4,
                                 "phase": "feeding", "sim_minutes": 1.0, "minutes": 2}))  # fmt: skip
    text = console.export_text()
    assert "1,234" in text
    assert "3/4" in text
    assert "v1: 4" in text


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0
    assert percentile([], 99) == 0.0


def test_demo_update_adds_and_removes() -> None:
    old = parse_tasks(default_tasks_text())
    new = parse_tasks(demo_update(default_tasks_text()))
    assert set(new.triggers) - set(old.triggers) == {"fav_then_cart"}
    assert set(old.windows) - set(new.windows) == {"category_views"}
    assert set(new.windows) - set(old.windows) == {"carts_1m"}
