"""The replay report opens in headless Chromium with no network, and every plot renders."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from streamfeat.cli import main
from tests.browser import Browser, need_chromium

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

PLOTS_JS = """[...document.querySelectorAll('figure.plot')].map(f => {
  const s = f.querySelector('svg'); const r = s.getBoundingClientRect(); const b = s.getBBox();
  return {name: f.dataset.plot, w: r.width, h: r.height, bw: b.width, bh: b.height,
          marks: s.querySelectorAll('path, use, rect, polyline').length};
})"""


def _need_report() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("the report extra is not installed: pip install 'streamfeat[report]'")


def _replay_with_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    ev = tmp_path / "events.jsonl"
    gen = ["generate", "--devices", "6", "--minutes", "30", "--seed", "5", "--disorder", "0.05"]
    assert main([*gen, "--out", str(ev)]) == 0
    with ev.open("a") as fh:  # input the replay must quarantine
        fh.write('{"ts": "abc", "type": "click"}\nnot json\n{"type": "click"}\n')
    out, page = tmp_path / "out.jsonl", tmp_path / "report.html"
    capsys.readouterr()
    argv = ["replay", str(ev), "--out", str(out), "--report", str(page), "--json", "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["sizes"] is not None  # --report implies --sizes
    return page


async def test_report_opens_offline_and_every_plot_renders(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _need_report()
    need_chromium()
    page = _replay_with_report(tmp_path, capsys)
    text = page.read_text()
    # nothing to fetch: no src/href/url() pointing anywhere but into the page itself
    assert not re.findall(r"""(?:src|href)\s*=\s*["'](?!#)|url\((?!#)""", text)

    async with Browser(offline=True, width=1100) as b:
        await b.goto(page.as_uri())
        listed = json.loads(await b.js("document.getElementById('report-index').textContent"))
        plots = await b.js(PLOTS_JS)
        await b.screenshot(tmp_path / "report.png")
        assert [p["name"] for p in plots] == listed["plots"]
        names = {p["name"] for p in plots}
        assert {"throughput", "events-event-time", "records-by-kind", "late", "quarantine",
                "triggers", "sizes", "feature-ipv", "feature-exposure"} <= names  # fmt: skip
        assert any(n.startswith("window-") for n in names)
        for p in plots:
            assert p["w"] > 300, p
            assert p["h"] > 80, p
            assert p["bw"] > 100, p
            assert p["bh"] > 50, p
            assert p["marks"] > 10, p
        assert all(u.startswith(("file:", "data:")) for u in b.requested_urls()), b.requested_urls()
        assert b.console_errors() == []
    assert (tmp_path / "report.png").stat().st_size > 10_000
    if shot := __import__("os").environ.get("STREAMFEAT_REPORT_SHOT"):
        shutil.copy(tmp_path / "report.png", shot)


def test_missing_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from streamfeat.report import MissingExtraError, ReportCollector, render_report

    real = builtins.__import__

    def fake(name: str, *a: object, **k: object) -> object:
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(MissingExtraError) as exc:
        render_report(ReportCollector())
    assert "streamfeat[report]" in str(exc.value)


def test_replay_report_without_matplotlib_stops_before_replaying(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamfeat.errors import MissingExtraError
    from streamfeat.report import _plots

    def missing() -> None:
        msg = "the replay report needs matplotlib: pip install 'streamfeat[report]'"
        raise MissingExtraError(msg)

    monkeypatch.setattr(_plots, "_import_figure", missing)
    ev = tmp_path / "events.jsonl"
    ev.write_text('{"ts": 1, "type": "click"}\n')
    out = tmp_path / "out.jsonl"
    argv = ["replay", str(ev), "--out", str(out), "--report", str(tmp_path / "r.html")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "pip install 'streamfeat[report]'" in err
    assert "Traceback" not in err
    assert not out.exists()
