"""Held-out AUC of the trained re-rank model with and without its input scaling (docs/train.md).

Trains on the samples of a ``make loop`` collect run, with the split and options of
``streamfeat train`` (``--max-samples 4000 --batch 32``, seed 0), once per variant named on
the command line, and prints the held-out AUC and log loss after each epoch. Variants:
``bare`` (no scaling, as before), ``norm`` (the scaling), ``norm-exposed`` (the scaling, and
only candidates the user saw afterwards), ``norm-lrX`` (learning rate X), ``norm-match`` (the category-match features), ``...-eN``
(N epochs). Needs ``pip install 'streamfeat[train]'``.

    python bench/loop_norm.py loop-run/collect/endpoint.sqlite loop-run/collect/tasks.toml bare norm
"""

from __future__ import annotations

import sys
import time

from streamfeat.models.edgerec import Dims
from streamfeat.train._batches import BatchRecords
from streamfeat.train._fit import FitOptions, fit
from streamfeat.train._samples import read_samples, split_by_device


def main() -> None:
    db, tasks, *variants = sys.argv[1:]
    data = {}
    for exposed in sorted({"exposed" in v for v in variants}):
        samples, _ = read_samples(BatchRecords(db, [tasks]), max_samples=4000, seed=0,
                                  exposed_only=exposed)  # fmt: skip
        data[exposed] = split_by_device(samples, 0.2, 0)
    for v in variants:
        parts = v.split("-")
        epochs = next((int(p[1:]) for p in parts if p[:1] == "e" and p[1:].isdigit()), 2)
        lr = next((float(p[2:]) for p in parts if p.startswith("lr")), 1e-2)
        train, held = data["exposed" in v]
        dims = Dims(match="match" in parts)
        opts = FitOptions(epochs=epochs, batch=32, lr=lr, normalise=parts[0] == "norm", dims=dims)
        t0 = time.perf_counter()
        _, hist = fit(train, held, opts)
        epochs_s = ", ".join(f"AUC {h.auc:.4f} / log loss {h.log_loss:.4f}" for h in hist)
        print(f"{v} ({len(train)} train / {len(held)} held-out pages): {epochs_s} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
