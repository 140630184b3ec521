"""Differential tests: the compiled core (mypyc) against the pure-Python code, its reference.

Each test runs real processes: one with ``STREAMFEAT_PURE=1`` and one on the compiled build
(``scripts/build_compiled.py``, run by ``make install``), and requires identical output: the
digests of ``tests/property/_compiled_workload.py`` over several seeds, and the golden replay
cases (``replay/regenerate.py --check``) byte for byte. Without a compiled build the tests skip
and say so; ``STREAMFEAT_REQUIRE_COMPILED=1`` (``make test-compiled``, CI) turns that into a
failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(pure: bool, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["STREAMFEAT_PURE"] = "1" if pure else "0"
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def compiled_build() -> None:
    probe = _run(False, "-c", "import streamfeat._compiled as c; print(c.status())")
    status = probe.stdout.strip()
    if status != "compiled":
        why = f"no compiled core in use ({status or probe.stderr.strip()}); make install builds it"
        if os.environ.get("STREAMFEAT_REQUIRE_COMPILED") == "1":
            pytest.fail(f"STREAMFEAT_REQUIRE_COMPILED=1 but {why}")
        pytest.skip(why)


CHECK_FILES = (
    "import streamfeat._compiled as c, importlib\n"
    "for m in c.MODULES:\n"
    "    f = importlib.import_module(m).__file__ or ''\n"
    "    print(m, f.rsplit('.', 1)[-1])\n"
)


@pytest.mark.usefixtures("compiled_build")
def test_every_listed_module_is_compiled_and_pure_mode_loads_sources() -> None:
    from streamfeat._compiled import MODULES

    compiled = _run(False, "-c", CHECK_FILES)
    pure = _run(True, "-c", CHECK_FILES)
    assert compiled.returncode == 0, compiled.stderr
    assert pure.returncode == 0, pure.stderr
    assert compiled.stdout.split() == [w for m in MODULES for w in (m, "so")]
    assert pure.stdout.split() == [w for m in MODULES for w in (m, "py")]


@pytest.mark.usefixtures("compiled_build")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_workload_digests_are_identical(seed: int) -> None:
    pure = _run(True, "-m", "tests.property._compiled_workload", str(seed))
    compiled = _run(False, "-m", "tests.property._compiled_workload", str(seed))
    assert pure.returncode == 0, pure.stderr
    assert compiled.returncode == 0, compiled.stderr
    assert "status: pure" in pure.stdout
    assert "status: compiled" in compiled.stdout
    strip = "\n".join(line for line in pure.stdout.splitlines() if not line.startswith("status"))
    assert strip == "\n".join(
        line for line in compiled.stdout.splitlines() if not line.startswith("status")
    )


@pytest.mark.usefixtures("compiled_build")
def test_golden_replay_cases_are_byte_identical_under_both() -> None:
    for pure in (True, False):
        out = _run(pure, "replay/regenerate.py", "--check")
        assert out.returncode == 0, out.stdout + out.stderr
        lines = out.stdout.splitlines()
        assert lines
        assert all(": unchanged (" in line for line in lines), out.stdout


def test_stale_build_falls_back_to_pure(tmp_path: Path) -> None:
    # a hash that no longer matches one source means the whole build is set aside
    code = "import sys, streamfeat._compiled as c; print(c._verdict(sys.argv[1]))"
    manifest = tmp_path / "_native.json"
    manifest.write_text('{"streamfeat.triggers._trie": "0"}', encoding="utf-8")
    out = _run(False, "-c", code, str(manifest))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pure: the compiled build is stale (run make install)"
    out = _run(True, "-c", code, str(manifest))
    assert out.stdout.strip() == "pure: STREAMFEAT_PURE is set"
    out = _run(False, "-c", code, str(tmp_path / "missing.json"))
    assert out.stdout.strip().startswith("pure: no compiled build")


def test_pure_mode_loads_every_listed_module_from_its_source() -> None:
    # with or without extension modules on disk (a build in progress has no manifest yet)
    code = (
        "import sys, importlib, streamfeat._compiled as c\n"
        "assert any(type(f).__name__ == '_PureFinder' for f in sys.meta_path)\n"
        "import streamfeat.encoders, streamfeat.triggers, streamfeat.tunnel\n"
        "print(all(importlib.import_module(m).__file__.endswith('.py') for m in c.MODULES))\n"
        "print(all(m.__file__.endswith('.py') for n, m in sys.modules.items()\n"
        "          if n.startswith('streamfeat') and getattr(m, '__file__', None)))\n"
    )
    out = _run(True, "-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True"]
