"""Choose between the compiled core (mypyc) and the pure-Python modules, before either loads.

``make install`` compiles the modules in ``MODULES`` in place when a C compiler is present
(``scripts/build_compiled.py``); an extension module beside a ``.py`` file wins at import.
The pure-Python code stays the reference and the fallback: it is used instead of every compiled
module when ``STREAMFEAT_PURE=1`` is set, or when any listed source no longer has the hash it
was compiled from (``streamfeat/_native.json``), since a compiled module calls the other compiled
modules of its build directly and a stale one must never mix with edited code. ``status()``
says which one is in use and why.

``streamfeat/__init__.py`` imports this module first, so the choice is made once per process.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from hashlib import sha256
from types import ModuleType

# Compiled together, in one mypyc group; order does not matter. Each must pass mypy --strict
# and may not assign methods to instances or rely on other dynamic tricks mypyc refuses. A
# compiled function checks its arguments' declared types on entry (TypeError): a function that
# must turn a wrong type into its own error (encoders/_decoder.py's decode_batch takes any
# object and raises DecodeError) stays pure, or declares the parameter as `object`.
MODULES = (
    "streamfeat._durations",
    "streamfeat._tokens",
    "streamfeat.triggers._condition",
    "streamfeat.triggers._frontier",
    "streamfeat.triggers._matcher",
    "streamfeat.triggers._nfa",
    "streamfeat.triggers._pattern",
    "streamfeat.triggers._state",
    "streamfeat.triggers._trie",
    "streamfeat.encoders._compact",
    "streamfeat.encoders._compact_walk",
    "streamfeat.encoders._ids",
    "streamfeat.encoders._wire",
    "streamfeat.encoders._sizes",
    "streamfeat.tunnel._frames",
    "streamfeat.tunnel._crypto",
    "streamfeat.tunnel._events",
    "streamfeat.tunnel._handshake",
    "streamfeat.tunnel._items",
    "streamfeat.tunnel._protocol",
    "streamfeat.triggers._layer",
    "streamfeat.triggers._housekeeping",
    "streamfeat.triggers._snapshot",
    "streamfeat.triggers._sync",
    "streamfeat.encoders._schema",
    "streamfeat.encoders._batch",
    "streamfeat.encoders._plain",
    "streamfeat._event",
    "streamfeat._records",
    "streamfeat.io._jsonl",
    "streamfeat.windows._aggregates",
    "streamfeat.windows._base",
    "streamfeat.windows._spec",
    "streamfeat.windows._stage",
    "streamfeat.windows.count",
    "streamfeat.windows.session",
    "streamfeat.windows.sliding",
    "streamfeat.windows.tumbling",
    "streamfeat.features._stage",
    "streamfeat.features.exposure",
    "streamfeat.features.ipv",
    "streamfeat.engine._step",
    "streamfeat.replay._drive",
)

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_HERE)


class _PureFinder:
    """A meta path finder that loads every ``streamfeat`` module from its ``.py`` source.

    Every module, not only those listed in ``MODULES``: an extension module left on disk by an
    older build with a longer list must not load either.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("streamfeat.") or not path:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path:
            candidate = os.path.join(entry, leaf)
            if os.path.isfile(candidate):
                return importlib.util.spec_from_file_location(fullname, candidate)
        return None


def _verdict(manifest: str) -> str:
    """Return ``"compiled"`` or ``"pure: <why>"`` for the build described by ``manifest``."""
    if not os.path.isfile(manifest):
        return "pure: no compiled build (make install builds one when a C compiler is present)"
    if os.environ.get("STREAMFEAT_PURE", "") not in ("", "0"):
        return "pure: STREAMFEAT_PURE is set"
    try:
        with open(manifest, encoding="utf-8") as f:
            built = json.load(f)
    except (OSError, ValueError):
        built = {}
    if not isinstance(built, dict) or set(built) != set(MODULES):
        return "pure: the compiled build is stale (run make install)"
    if any(built[m] != _hash(m) for m in MODULES):
        return "pure: the compiled build is stale (run make install)"
    return "compiled"


def _choose() -> str:
    manifest = os.path.join(_HERE, "_native.json")
    verdict = _verdict(manifest)
    if verdict != "compiled":
        # keep every listed module on its source, even if extension modules are on disk
        # without a manifest (a build in progress, or one that failed half-way)
        sys.meta_path.insert(0, _PureFinder())
    return verdict


def _hash(module: str) -> str:
    path = os.path.join(_ROOT, *module.split(".")) + ".py"
    try:
        with open(path, "rb") as f:
            return sha256(f.read()).hexdigest()
    except OSError:
        return ""


_STATUS = _choose()


def status() -> str:
    """Say which code runs: ``"compiled"``, or ``"pure: <why>"``."""
    return _STATUS


def compiled() -> bool:
    """Whether the compiled core is in use in this process."""
    return _STATUS == "compiled"
