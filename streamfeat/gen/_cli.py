"""The ``generate`` and ``convert`` commands: make and import event logs (SPEC section 1 JSONL)."""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import IO, Any

from streamfeat._jsonl import jsonl
from streamfeat.gen._generator import DEFAULT_DISORDER, DEFAULT_START_TS, generate_batches
from streamfeat.gen.convert import CONVERTERS, ConvertSummary, convert_file

__all__ = ["add_parsers"]

_OUT_BUFFER = 1 << 20


def add_parsers(subparsers: Any) -> None:
    """Add ``generate`` and ``convert`` to the ``streamfeat`` command line."""
    gen = subparsers.add_parser(
        "generate",
        help="write a synthetic log of app use (JSONL)",
        description="Write a realistic, deterministic JSONL log of app use: feed sessions with "
        "exposures, scrolls, clicks into item detail visits, carts, purchases, deletes, "
        "backgrounding. All devices are interleaved in arrival order.",
    )
    gen.add_argument("--devices", type=int, required=True, help="number of devices (users)")
    gen.add_argument("--minutes", type=float, required=True, help="simulated period in minutes")
    gen.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    gen.add_argument("--out", default="-", help="output file, '-' for stdout (default)")
    gen.add_argument(
        "--start-ts",
        type=int,
        default=DEFAULT_START_TS,
        help="epoch ms at which the period starts (default: %(default)s, 2026-01-01Z)",
    )
    gen.add_argument(
        "--disorder",
        type=float,
        default=DEFAULT_DISORDER,
        help="fraction of events whose ts goes back, a device clock change (default: %(default)s)",
    )
    gen.set_defaults(func=_run_generate)

    conv = subparsers.add_parser(
        "convert",
        help="convert another log format to SPEC JSONL events",
        description="Convert a log to SPEC JSONL events. Bad rows are reported on stderr with "
        "their line number, counted, and kept with --rejects.",
    )
    conv.add_argument("format", choices=sorted(CONVERTERS), help="the source format")
    conv.add_argument("file", help="the source file (plain or .gz), '-' for stdin")
    conv.add_argument("--out", default="-", help="output file, '-' for stdout (default)")
    conv.add_argument("--rejects", default=None, help="write the raw bad rows to this file")
    conv.set_defaults(func=_run_convert)


def _open_out(path: str) -> AbstractContextManager[IO[bytes]]:
    if path == "-":
        return nullcontext(sys.stdout.buffer)
    return open(path, "wb", buffering=_OUT_BUFFER)


def _run_generate(args: argparse.Namespace) -> int:
    try:
        batches = generate_batches(
            args.devices, args.minutes, args.seed, start_ts=args.start_ts, disorder=args.disorder
        )
    except ValueError as exc:
        args.parser.error(f"generate: {exc}")
    total_ms = args.minutes * 60_000
    # The generator makes no reference cycles, and the cyclic collector's passes over the
    # event dicts and generator frames alive cost a fifth to a third of the run: switch it
    # off for the command.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with _open_out(args.out) as out:
            if sys.stderr.isatty():
                n = _with_progress(
                    lambda tick: _write_events(batches, out, tick), total_ms, args.start_ts
                )
            else:
                n = _write_events(batches, out, None)
            out.flush()
    except OSError as exc:
        print(f"streamfeat generate: cannot write {args.out}: {_lower(exc)}", file=sys.stderr)
        return 1
    finally:
        if gc_was_enabled:
            gc.enable()
    if sys.stderr.isatty():
        print(
            f"generate: {n} events from {args.devices} devices over {args.minutes:g} min",
            file=sys.stderr,
        )
    return 0


def _write_events(
    batches: Iterator[list[dict[str, Any]]], out: IO[bytes], tick: Callable[[int, int], None] | None
) -> int:
    """Write batches of events as JSON lines; return how many were written."""
    n = 0
    for batch in batches:
        if batch:
            out.write(jsonl(batch))
            n += len(batch)
            if tick is not None:
                tick(n, batch[-1]["ts"])
    return n


def _with_progress(
    run: Callable[[Callable[[int, int], None]], int], total_ms: float, start_ts: int
) -> int:
    """Run ``run(tick)`` under a rich progress bar over simulated time (terminals only)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    # on stderr: stdout may be the log itself
    with Progress(
        TextColumn("generate"),
        BarColumn(),
        TextColumn("{task.fields[events]} events"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("generate", total=total_ms, events=0)

        def tick(n: int, ts: int) -> None:
            progress.update(task, completed=max(0, ts - start_ts), events=n)

        return run(tick)


def _run_convert(args: argparse.Namespace) -> int:
    converter = CONVERTERS[args.format]
    try:
        with (
            _open_out(args.out) as out,
            open(args.rejects, "wb") if args.rejects else nullcontext(None) as rejects,
        ):
            summary = convert_file(converter, args.file, out, rejects=rejects, err=sys.stderr)
            out.flush()
    except OSError as exc:
        # the source's errors are in the summary; this is the output or the rejects file
        print(f"streamfeat convert: cannot write: {_lower(exc)}", file=sys.stderr)
        return 1
    print(_summary_line(args.format, summary), file=sys.stderr)
    return 0 if summary.ok else 1


def _summary_line(name: str, s: ConvertSummary) -> str:
    text = f"convert {name}: {s.rows} rows, {s.events} events, {s.rejects} rejects"
    if s.error:
        text += f"; stopped: {s.error}"
    return text


def _lower(exc: OSError) -> str:
    text = exc.strerror or str(exc)
    if exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    return text[:1].lower() + text[1:]
