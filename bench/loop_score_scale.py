"""Does the scale of ``server_score`` hold the trained model back? (docs/loop.md)

Trains the EdgeRec-style model twice on the same samples of a ``make loop`` collect run, with
the same split and options as ``streamfeat train --epochs 2 --batch 32``: once as uploaded
(``server_score`` a predicted CTR, mostly 0.005-0.3, which the model's ``slog`` leaves that
small), once with that column replaced by its logit (spread over a few units). Prints the
held-out AUC and log loss after each epoch. Needs ``pip install 'streamfeat[train]'``.

    python bench/loop_score_scale.py loop-run/collect/endpoint.sqlite loop-run/collect/tasks.toml
"""

from __future__ import annotations

import sys
import time

import numpy as np

from streamfeat.train._batches import BatchRecords
from streamfeat.train._fit import FitOptions, fit
from streamfeat.train._samples import Sample, read_samples, split_by_device


def _logit(s: Sample) -> Sample:
    feeds = dict(s.feeds)
    cand = feeds["candidates"].copy()
    p = np.clip(cand[..., 1], 1e-6, 1 - 1e-6)
    cand[..., 1] = np.log(p / (1 - p))
    feeds["candidates"] = cand
    return Sample(s.device, feeds, s.labels)


def main() -> None:
    db, tasks = sys.argv[1], sys.argv[2]
    samples, _ = read_samples(BatchRecords(db, [tasks]), max_samples=4000, seed=0)
    train, held = split_by_device(samples, 0.2, 0)
    for name, tr, he in (("as uploaded", train, held),
                         ("server_score as a logit", [_logit(s) for s in train],
                          [_logit(s) for s in held])):  # fmt: skip
        t0 = time.perf_counter()
        _, hist = fit(tr, he, FitOptions(epochs=2, batch=32))
        epochs = ", ".join(f"AUC {h.auc:.4f} / log loss {h.log_loss:.4f}" for h in hist)
        print(f"{name}: {epochs} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
