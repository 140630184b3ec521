"""Every name a module lists in ``__all__`` exists, and the top level stays small."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import streamfeat

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamfeat.__path__, prefix="streamfeat.")
    if not m.name.endswith("__main__")
)


@pytest.mark.parametrize("name", MODULES)
def test_all_names_resolve(name: str) -> None:
    mod = importlib.import_module(name)
    for export in getattr(mod, "__all__", ()):
        assert hasattr(mod, export), f"{name}.__all__ lists {export!r}, which is not defined"


def test_top_level_exports_only_the_event_model_clock_errors_and_engine() -> None:
    allowed = {
        "Clock",
        "ManualClock",
        "SystemClock",
        "Engine",
        "Record",
        "Stage",
        "Event",
        "event_from_obj",
        "event_to_obj",
    }
    extra = {n for n in streamfeat.__all__ if n not in allowed and not n.endswith("Error")}
    assert not extra
