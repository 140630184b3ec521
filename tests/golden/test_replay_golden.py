"""Golden replay cases: ``streamfeat replay`` writes, byte for byte, the recorded OUT of each case.

The cases live in ``replay/cases/`` at the repository root (see ``replay/README.md``): an events
file, the tasks file it runs with, and the expected OUT. They pin the record format that users'
code parses and the semantics behind every record. A failure shows the first differing lines;
if the change is intended, rewrite the case with ``replay/regenerate.py CASE`` and say why in the
commit.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "replay"


def _load_regenerate() -> ModuleType:
    # replay/ is a folder of data with one script, not a package: load the script by path so
    # that the test and the regeneration run the replay the same way
    spec = importlib.util.spec_from_file_location("_golden_regenerate", REPLAY / "regenerate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


golden = _load_regenerate()
CASES = golden.case_dirs()


def test_there_are_cases() -> None:
    assert len(CASES) >= 20


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_replay_output_is_byte_identical(case: Path) -> None:
    expected = (case / "expected.jsonl").read_bytes()
    actual = golden.replay_bytes(case)
    if actual != expected:
        pytest.fail(
            f"replay of case {case.name!r} differs from replay/cases/{case.name}/expected.jsonl\n"
            f"{golden.first_difference(expected, actual)}\n"
            f"if this change is intended: .venv/bin/python replay/regenerate.py {case.name}",
            pytrace=False,
        )


def test_every_case_is_described_in_the_readme() -> None:
    readme = (REPLAY / "README.md").read_text(encoding="utf-8")
    missing = [c.name for c in CASES if f"`{c.name}`" not in readme]
    assert not missing, f"replay/README.md does not describe: {', '.join(missing)}"
