"""The replay report: one self-contained HTML file of plots about a replay.

::

    from streamfeat.report import ReportCollector, write_report
    col = ReportCollector()
    col.records(records)          # as the replay writes them; col.event(ts) per event
    write_report("report.html", col, summary.as_dict())

or from files a replay left: ``collect_files("out.jsonl", events="events.jsonl")``.
matplotlib is an optional extra: ``pip install 'streamfeat[report]'``.
"""

from __future__ import annotations

from streamfeat.report._collect import ReportCollector, Reservoir, reason_group
from streamfeat.report._files import collect_files
from streamfeat.report._html import render_report, write_report
from streamfeat.report._plots import MissingExtraError, check_plotting

__all__ = [
    "MissingExtraError",
    "ReportCollector",
    "Reservoir",
    "check_plotting",
    "collect_files",
    "reason_group",
    "render_report",
    "write_report",
]
