"""What importing a package really loads, seen from a fresh interpreter (issue 10).

A source-text check (``tests/unit/tunnel/test_tunnel_imports.py``) cannot see what a package's
``__init__`` pulls in; this one imports in a subprocess and looks at ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_PROBE = """
import json, sys
import {module}
print(json.dumps(sorted(sys.modules)))
"""


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter holds after ``import module``."""
    out = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout))


def forbidden_in(loaded: set[str], forbidden: tuple[str, ...]) -> set[str]:
    return {m for m in loaded for f in forbidden if m == f or m.startswith(f + ".")}


@pytest.mark.parametrize(
    ("module", "forbidden"),
    [
        ("streamfeat.agent", ("aiohttp.web", "prometheus_client", "streamfeat.endpoint")),
        ("streamfeat.upload", ("aiohttp.web", "prometheus_client", "streamfeat.endpoint")),
        ("streamfeat.tunnel", ("asyncio", "aiohttp", "sqlite3", "socket")),
    ],
)
def test_import_loads_nothing_forbidden(module: str, forbidden: tuple[str, ...]) -> None:
    bad = forbidden_in(loaded_by(module), forbidden)
    assert not bad, f"import {module} loads {sorted(bad)}"


def test_the_probe_sees_what_an_import_loads() -> None:
    # the check can fail: the endpoint does load aiohttp's server side and the metrics
    assert {"aiohttp.web", "prometheus_client"} <= loaded_by("streamfeat.endpoint")
