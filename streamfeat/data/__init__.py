"""Data files shipped with streamfeat, and the functions that read them.

``default.toml`` is the embedded default tasks file: what ``make demo``, ``streamfeat replay``
without ``--tasks``, ``streamfeat simulate`` and the agent run unless told otherwise.
``starter.toml`` is the commented file ``streamfeat tasks init`` prints.
``tasks.schema.json`` is a JSON Schema of the tasks file, for editors.
"""

from __future__ import annotations

from importlib import resources

__all__ = ["default_tasks_text", "starter_tasks_text", "tasks_schema"]


def default_tasks_text() -> str:
    """Return the text of the embedded default tasks file (``streamfeat/data/default.toml``)."""
    return resources.files(__name__).joinpath("default.toml").read_text(encoding="utf-8")


def starter_tasks_text() -> str:
    """Return the commented starting tasks file ``streamfeat tasks init`` prints."""
    return resources.files(__name__).joinpath("starter.toml").read_text(encoding="utf-8")


def tasks_schema() -> dict[str, object]:
    """Return the JSON Schema of the tasks file (``streamfeat/data/tasks.schema.json``)."""
    import json

    text = resources.files(__name__).joinpath("tasks.schema.json").read_text(encoding="utf-8")
    schema: dict[str, object] = json.loads(text)
    return schema
