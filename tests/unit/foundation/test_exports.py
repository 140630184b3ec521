"""Every name a module lists in ``__all__`` exists, and the top level stays small."""

from __future__ import annotations

import importlib
import os
import pkgutil

import pytest

import streamfeat


def _has_source(m: pkgutil.ModuleInfo) -> bool:
    # the modules of the source tree: the compiled core's shared library
    # (streamfeat/_native__mypyc*.so, scripts/build_compiled.py) is no module of its own, and the
    # cases must not depend on whether a build is on disk when the suite collects
    if m.ispkg:
        return True
    path = getattr(m.module_finder, "path", "")
    return os.path.isfile(os.path.join(path, m.name.rpartition(".")[2] + ".py"))


MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(streamfeat.__path__, prefix="streamfeat.")
    if not m.name.endswith("__main__") and _has_source(m)
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


# The old private paths the docs named, kept for one release; each name is the public one.
OLD_PATHS = [
    ("streamfeat._generator", "generate_events", "streamfeat.gen"),
    ("streamfeat._generator", "device_stream", "streamfeat.gen"),
    ("streamfeat._store", "Store", "streamfeat.io"),
    ("streamfeat._shell", "AsyncEngine", "streamfeat.runtime"),
    ("streamfeat._simulate", "simulate", "streamfeat.sim"),
    ("streamfeat._pipeline", "build_engine", "streamfeat.engine"),
    ("streamfeat._records", "public", "streamfeat.records"),
]


@pytest.mark.parametrize(("old", "name", "public"), OLD_PATHS)
def test_old_private_paths_alias_the_public_names(old: str, name: str, public: str) -> None:
    public_mod = importlib.import_module(public)
    assert name in public_mod.__all__
    assert getattr(importlib.import_module(old), name) is getattr(public_mod, name)


@pytest.mark.parametrize("name", [m for m in MODULES if not m.rpartition(".")[2].startswith("_")])
def test_every_public_module_declares_all(name: str) -> None:
    assert isinstance(getattr(importlib.import_module(name), "__all__", None), list), name


def test_version_comes_from_the_package_metadata() -> None:
    from importlib.metadata import version

    assert streamfeat.__version__ == version("streamfeat")
