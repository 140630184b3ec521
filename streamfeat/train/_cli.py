"""``streamfeat train``: train the re-rank model from what the endpoint stored."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from streamfeat.endpoint._records import count_records
from streamfeat.errors import MissingExtraError, StreamfeatError
from streamfeat.models.edgerec import Dims
from streamfeat.train._batches import BatchRecords, simulator_tasks
from streamfeat.train._export import TOLERANCE, check_export, export, shuffle_weights
from streamfeat.train._fit import EpochResult, FitOptions, fit, import_torch, shuffle_labels
from streamfeat.train._samples import read_samples, split_by_device

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add ``train`` to the ``streamfeat`` command line."""
    p = sub.add_parser(
        "train",
        help="train the re-rank model from the records devices uploaded",
        description="Build training samples from the endpoint's stored re-rank task records "
        "(their model inputs) and exposure records (the clicks that followed), split them by "
        "device, train the EdgeRec-style model (PyTorch, CPU), export ONNX, check the file "
        "against PyTorch and print held-out AUC and log loss. Needs pip install "
        "'streamfeat[train]'.",
    )  # fmt: skip
    p.add_argument("--db", required=True, metavar="ENDPOINT_DB", help="the endpoint's SQLite file")
    p.add_argument("--out", required=True, type=Path, metavar="MODEL.onnx", help="where to write")
    p.add_argument("--task", metavar="NAME", help="only this re-rank task's records (default: all)")
    p.add_argument("--tasks", action="append", metavar="FILE",
                   help="the tasks file(s) the devices ran, to decode batches the endpoint stored "
                   "undecoded (default: those of `simulate --workdir` beside the database, and "
                   "the embedded default; repeatable)")  # fmt: skip
    p.add_argument("--epochs", type=int, default=3, help="passes over the data (default: 3)")
    p.add_argument("--seed", type=int, default=0, help="weights, order, split, draw (default: 0)")
    p.add_argument("--max-samples", type=int, default=8000, metavar="N",
                   help="re-ranks drawn at most, uniformly (default: 8000)")  # fmt: skip
    p.add_argument("--holdout", type=float, default=0.2, metavar="F",
                   help="share of devices held out (default: 0.2)")  # fmt: skip
    p.add_argument("--batch", type=int, default=64, help="pages per step (default: 64)")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate (default: 0.01)")
    p.add_argument("--wide-lr", type=float, default=0.05, metavar="LR",
                   help="learning rate of the linear part and the position bias (default: 0.05)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="PyTorch threads (default: 1)")
    p.add_argument("--keep-no-click", action="store_true",
                   help="keep re-ranks none of whose candidates was clicked afterwards")  # fmt: skip
    p.add_argument("--exposed-only", action="store_true",
                   help="train only on candidates the user saw afterwards (click given seen)")  # fmt: skip
    p.add_argument("--rows", type=int, default=0, metavar="R",
                   help="train on the first R rows of each re-rank's order only (default: 0, all; "
                        "docs/train.md)")  # fmt: skip
    p.add_argument("--ema", type=float, default=0.0, metavar="D",
                   help="export the moving average of the weights, decay D per step (e.g. 0.99; "
                        "default: 0, off; docs/train.md)")  # fmt: skip
    p.add_argument("--no-normalise", action="store_true",
                   help="don't standardise the inputs (the model reads them as "
                   "builtin:edgerec-small does; for comparison)")  # fmt: skip
    p.add_argument("--no-match", action="store_true",
                   help="without the category-match features (the architecture of "
                   "builtin:edgerec-small; for comparison)")  # fmt: skip
    p.add_argument("--no-recent", action="store_true",
                   help="without the recency-weighted matches (docs/train.md)")  # fmt: skip
    p.add_argument("--soft", type=int, default=12, metavar="S",
                   help="numbers per category of the category similarity computed from "
                        "co-occurrence; 0: exact category matches only (default: 12; "
                        "docs/train.md)")  # fmt: skip
    p.add_argument("--no-outcome", action="store_true",
                   help="without the recency-weighted outcomes with similar items (clicked, "
                        "deleted, looked at long, skipped fast; docs/train.md)")  # fmt: skip
    p.add_argument("--no-wide", action="store_true",
                   help="without the linear part (candidate numbers and matches straight to "
                        "the score; docs/train.md)")  # fmt: skip
    p.add_argument("--no-position-bias", action="store_true",
                   help="fit P(click) directly, without the per-row examination factor "
                        "(docs/train.md)")  # fmt: skip
    p.add_argument("--shuffle-labels", action="store_true",
                   help="the control: training labels shuffled across samples (it must not learn)")  # fmt: skip
    p.add_argument("--control", type=Path, metavar="FILE",
                   help="also write the trained model with its weights shuffled (the control "
                        "that cannot learn; docs/loop.md)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print a JSON summary at the end")
    p.set_defaults(func=run)


def _check_args(args: argparse.Namespace) -> str | None:
    if args.epochs < 1:
        return f"--epochs must be at least 1, got {args.epochs}"
    if args.soft < 0:
        return f"--soft must be 0 or more, got {args.soft}"
    if not args.wide_lr > 0.0:
        return f"--wide-lr must be above 0, got {args.wide_lr}"
    if args.max_samples < 1:
        return f"--max-samples must be at least 1, got {args.max_samples}"
    if not 0.0 <= args.ema < 1.0:
        return f"--ema must be at least 0 and below 1, got {args.ema}"
    if args.rows < 0:
        return f"--rows must be 0 (all) or more, got {args.rows}"
    if not 0.0 < args.holdout < 1.0:
        return f"--holdout must be between 0 and 1, got {args.holdout}"
    if args.batch < 1 or args.threads < 1:
        return "--batch and --threads must be at least 1"
    if not args.lr > 0:
        return f"--lr must be positive, got {args.lr}"
    return None


def _source(args: argparse.Namespace) -> str | BatchRecords:
    """The database itself when the endpoint decoded what it stored, else its raw batches
    decoded here (an endpoint run without a decoder, such as the simulator's own)."""
    if count_records(args.db) > 0:
        return str(args.db)
    texts = [] if args.tasks else simulator_tasks(args.db)
    raw = BatchRecords(args.db, args.tasks, texts)
    n = raw.batch_count()
    if n:
        with_ = (
            ", ".join(args.tasks) if args.tasks
            else "the simulator's tasks files beside it and the embedded default" if texts
            else "the embedded default tasks file"
        )  # fmt: skip
        print(f"the endpoint stored {n:,} batches undecoded: decoding them with {with_}")
    return raw


def run(args: argparse.Namespace) -> int:
    """Run ``streamfeat train``; return the exit code."""
    problem = _check_args(args)
    if problem:
        args.parser.error(problem)
    try:
        import_torch()
    except MissingExtraError as exc:
        args.parser.error(str(exc))
    t0 = time.perf_counter()
    try:
        source = _source(args)
        samples, stats = read_samples(
            source, task=args.task, max_samples=args.max_samples, seed=args.seed,
            keep_no_click=args.keep_no_click, exposed_only=args.exposed_only,
        )  # fmt: skip
    except StreamfeatError as exc:
        args.parser.error(str(exc))
    if isinstance(source, BatchRecords) and source.undecodable:
        print(f"{source.undecodable:,} batches the tasks file's schemas could not decode were "
              "skipped: pass the tasks file(s) the devices ran with --tasks")  # fmt: skip
    train, held = split_by_device(samples, args.holdout, args.seed)
    if args.shuffle_labels:  # the training labels only: held out keeps the truth to score against
        train = shuffle_labels(train, args.seed)
    t_read = time.perf_counter() - t0
    out = sys.stdout
    print(f"records: {stats.task_records:,} re-rank task records, {stats.with_inputs:,} with "
          f"inputs, {stats.no_click:,} without a later click, {stats.malformed:,} malformed; "
          f"{stats.exposure_records:,} clicked exposures", file=out)  # fmt: skip
    n_train_dev = len({s.device for s in train})
    n_held_dev = len({s.device for s in held})
    print(f"samples: {len(train):,} train ({n_train_dev} devices), {len(held):,} held out "
          f"({n_held_dev} devices); {stats.candidates:,} candidates, {stats.clicked:,} clicked; "
          f"read in {t_read:.1f} s", file=out)  # fmt: skip
    if not train or not held:
        hint = (
            "no re-rank task records with inputs: run a shadow re-rank task (apply = false) or "
            "one with record_inputs = true, the exposure feature, and upload task and feature "
            "records"
            if not stats.with_inputs
            else "too few devices with clicked re-ranks to hold some out"
        )
        args.parser.error(f"not enough samples in {args.db}: {hint}")
    opts = FitOptions(epochs=args.epochs, batch=args.batch, lr=args.lr, seed=args.seed,
                      threads=args.threads, normalise=not args.no_normalise,
                      dims=Dims(match=not args.no_match, wide=not args.no_wide,
                                recent=not args.no_match and not args.no_recent,
                                soft=0 if args.no_match else args.soft,
                                outcome=not args.no_match and not args.no_outcome),
                      position_bias=not args.no_position_bias,
                      wide_lr=args.wide_lr, rows=args.rows, ema=args.ema)  # fmt: skip
    console = Console(file=sys.stderr)
    history: list[EpochResult] = []
    with Progress(TextColumn("epoch {task.fields[epoch]}/{task.fields[of]}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as bar:  # fmt: skip
        tasks: dict[int, Any] = {}

        def on_batch(epoch: int, done: int, total: int) -> None:
            if epoch not in tasks:
                tasks[epoch] = bar.add_task("", total=total, epoch=epoch, of=args.epochs)
            bar.update(tasks[epoch], completed=done)

        def on_epoch(r: EpochResult) -> None:
            history.append(r)
            # print() reads sys.stdout now: while the bar is live, rich routes it above the bar
            print(f"epoch {r.epoch}/{args.epochs}: train loss {r.train_loss:.4f}, held-out AUC "
                  f"{r.auc:.4f}, log loss {r.log_loss:.4f}, {r.seconds:.1f} s", flush=True)  # fmt: skip

        model, _ = fit(train, held, opts, on_batch=on_batch, on_epoch=on_epoch)
    t_train = time.perf_counter() - t0 - t_read
    doc = (f"streamfeat train: {len(train)} train / {len(held)} held-out re-ranks, "
           f"{args.epochs} epochs, seed {args.seed}")  # fmt: skip
    data = export(model, doc=doc, version="trained")
    worst = check_export(model, data, held)
    print(f"export check: max |PyTorch - ONNX|, |PyTorch - numpy| over "
          f"{min(50, len(held))} held-out pages: {worst:.2e}", file=out)  # fmt: skip
    if worst > TOLERANCE:
        print(f"streamfeat train: error: the exported model differs from the trained one by "
              f"{worst:.2e} (> {TOLERANCE:g}); nothing written", file=sys.stderr)  # fmt: skip
        return 1
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_bytes(data)
    except OSError as exc:
        args.parser.error(f"can't write {args.out}: {exc.strerror or exc}")
    if args.control is not None:
        try:
            args.control.parent.mkdir(parents=True, exist_ok=True)
            args.control.write_bytes(shuffle_weights(data, seed=args.seed))
        except OSError as exc:
            args.parser.error(f"can't write {args.control}: {exc.strerror or exc}")
        print(f"wrote {args.control}: the same model with its weights shuffled (the control)",
              file=out)  # fmt: skip
    total = time.perf_counter() - t0
    print(f"wrote {args.out} ({len(data):,} bytes) in {total:.1f} s (training {t_train:.1f} s); "
          f'use it as [models.NAME] file = "{args.out}" with the inputs of '
          "builtin:edgerec-small (docs/train.md)", file=out)  # fmt: skip
    if args.json:
        last = history[-1]
        print(json.dumps({
            "out": str(args.out), "bytes": len(data), "seconds": round(total, 2),
            "train_seconds": round(t_train, 2), "train_samples": len(train),
            "held_out_samples": len(held), "train_devices": n_train_dev,
            "held_out_devices": n_held_dev, "candidates": stats.candidates,
            "clicked": stats.clicked, "auc": last.auc, "log_loss": last.log_loss,
            "export_max_diff": worst, "shuffled_labels": bool(args.shuffle_labels),
            "epochs": [{"epoch": r.epoch, "train_loss": r.train_loss, "auc": r.auc,
                        "log_loss": r.log_loss, "seconds": round(r.seconds, 2)}
                       for r in history],
        }), file=out)  # fmt: skip
    return 0
