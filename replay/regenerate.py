"""Rewrite the expected output of golden replay cases, on purpose.

Usage (from the repository root, with the project's virtualenv)::

    .venv/bin/python replay/regenerate.py CASE [CASE ...]   # rewrite these cases' expected.jsonl
    .venv/bin/python replay/regenerate.py --all             # rewrite every case
    .venv/bin/python replay/regenerate.py --check [CASE]    # only say which cases differ

Each case is a folder ``replay/cases/CASE`` with one ``events.*`` file (JSONL or msgpack), a
``tasks.toml`` and ``expected.jsonl``. The expected file is exactly what
``streamfeat replay EVENTS --tasks tasks.toml --out OUT`` writes to OUT, run in-process through
``streamfeat.cli.main`` as ``tests/golden/test_replay_golden.py`` runs it. Rewrite an expected
file only when a change of the record format or of a semantic is intended, and say so in the
commit message: these files are what users' parsers were written against.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import tempfile
from pathlib import Path

CASES = Path(__file__).resolve().parent / "cases"


def case_dirs() -> list[Path]:
    """Every case folder, sorted by name."""
    return sorted(p for p in CASES.iterdir() if (p / "tasks.toml").is_file())


def events_file(case: Path) -> Path:
    """The one ``events.*`` file of a case."""
    found = sorted(case.glob("events.*"))
    if len(found) != 1:
        msg = f"{case.name}: expected exactly one events.* file, found {len(found)}"
        raise SystemExit(msg)
    return found[0]


def replay_bytes(case: Path) -> bytes:
    """Run ``streamfeat replay`` on a case and return OUT's bytes."""
    from streamfeat.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.jsonl"
        argv = [
            "replay",
            str(events_file(case)),
            "--tasks",
            str(case / "tasks.toml"),
            "--out",
            str(out),
            "--json",
            "--no-progress",
        ]
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            code = main(argv)
        if code != 0:
            msg = f"{case.name}: streamfeat replay exited with {code}"
            raise SystemExit(msg)
        return out.read_bytes()


def first_difference(expected: bytes, actual: bytes, context: int = 3) -> str:
    """Describe where two outputs first differ, with a few lines around it."""
    want = expected.splitlines()
    got = actual.splitlines()
    n = next(
        (i for i, (a, b) in enumerate(zip(want, got, strict=False)) if a != b),
        min(len(want), len(got)),
    )
    lines = [f"first difference at line {n + 1} (expected {len(want)} lines, got {len(got)})"]
    for i in range(max(0, n - context), n):
        lines.append(f"    {want[i].decode(errors='replace')}")
    for i in range(n, min(n + context, len(want))):
        lines.append(f"  - {want[i].decode(errors='replace')}")
    for i in range(n, min(n + context, len(got))):
        lines.append(f"  + {got[i].decode(errors='replace')}")
    if len(want) == len(got) and expected != actual and n == len(want):
        lines.append("  (same lines; the bytes differ in line endings or the final newline)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cases", nargs="*", metavar="CASE", help="case folder names")
    parser.add_argument("--all", action="store_true", help="every case")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    known = {p.name: p for p in case_dirs()}
    if args.all or (args.check and not args.cases):
        chosen = list(known.values())
    elif args.cases:
        unknown = [c for c in args.cases if c not in known]
        if unknown:
            parser.error(f"no such case: {', '.join(unknown)} (known: {', '.join(known)})")
        chosen = [known[c] for c in args.cases]
    else:
        parser.error("name the cases to rewrite, or pass --all (or --check)")
    differ = 0
    for case in chosen:
        path = case / "expected.jsonl"
        actual = replay_bytes(case)
        expected = path.read_bytes() if path.exists() else b""
        if actual == expected:
            print(f"{case.name}: unchanged ({len(actual.splitlines())} records)")
            continue
        differ += 1
        print(f"{case.name}: differs\n{first_difference(expected, actual)}")
        if not args.check:
            path.write_bytes(actual)
            print(f"{case.name}: rewrote {path.relative_to(CASES.parent.parent)}")
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
