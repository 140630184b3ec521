"""Data files shipped with streamfeat, and the functions that read them.

``default.toml`` is the embedded default tasks file: what ``make demo``, ``streamfeat replay``
without ``--tasks``, ``streamfeat simulate`` and the agent run unless told otherwise.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["default_tasks_text"]


def default_tasks_text() -> str:
    """Return the text of the embedded default tasks file (``streamfeat/data/default.toml``)."""
    return resources.files(__name__).joinpath("default.toml").read_text(encoding="utf-8")
