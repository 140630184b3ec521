"""`make bench`: run every bench/bench_*.py and print one table.

Usage: python bench/run.py [--quick] [--only NAME ...] [--json FILE] [--model FILE]

Benchmarks measure side by side in one run and report ratios, because the machine is shared
and noisy; nothing here gates CI.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _harness import Context, Row  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

ORDER = ["foundation", "triggers", "windows", "encoders", "tunnel", "fleet"]


def _modules(only: list[str] | None) -> list[str]:
    names = sorted(p.stem[len("bench_") :] for p in HERE.glob("bench_*.py"))
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    return [n for n in names if not only or n in only]


def _fmt(v: float) -> str:
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 1:
        return f"{v:,.2f}"
    return f"{v:.4g}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small inputs (seconds, for a smoke run)")
    ap.add_argument("--only", nargs="*", help="benchmark names (foundation, triggers, ...)")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON to this file")
    ap.add_argument("--model", type=Path, metavar="FILE",
                    help="ranking: re-rank with this model file (from streamfeat train) instead "
                    "of builtin:edgerec-small")  # fmt: skip
    args = ap.parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=220)  # a log or a pipe: no figure cut to 80 columns
    rows: list[Row] = []
    failed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="streamfeat-bench-") as tmp:
        ctx = Context(quick=args.quick, tmp=Path(tmp), model=args.model)
        for name in _modules(args.only):
            console.print(f"[bold]bench {name}[/bold] ...")
            t0 = time.perf_counter()
            try:
                mod = importlib.import_module(f"bench_{name}")
                rows.extend(mod.run(ctx))
            except Exception:  # a broken benchmark must not hide the others' figures
                failed.append(name)
                console.print(traceback.format_exc())
            console.print(f"  done in {time.perf_counter() - t0:.1f} s")
    table = Table(title="streamfeat benchmarks (one run, side by side)")
    for col, just in (
        ("bench", "left"),
        ("measure", "left"),
        ("value", "right"),
        ("unit", "left"),
        ("ratio", "right"),
        ("vs", "left"),
        ("note", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        table.add_row(r.group, r.name, _fmt(r.value), r.unit, ratio, r.vs, r.note)
    console.print(table)
    if args.json:
        import json

        args.json.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    if failed:
        console.print(f"[red]benchmarks that failed: {', '.join(failed)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
