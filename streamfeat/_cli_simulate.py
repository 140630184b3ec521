"""Moved to streamfeat.sim._cli; kept so old imports work."""

from __future__ import annotations

from streamfeat.sim._cli import (
    progress_view,
    render_report,
    run_with_progress,
)

__all__ = [
    "progress_view",
    "render_report",
    "run_with_progress",
]
