"""Build the shipped EdgeRec-style model from data streamfeat generates.

Usage: ``python -m streamfeat.gen.build_model [--devices N] [--minutes M] [--epochs K]
[--seed S] [--out FILE]`` (needs ``pip install 'streamfeat[train]'``).

Steps, all on the CPU and seeded:

1. Generate a fleet's app-use logs (:func:`streamfeat.gen.device_stream`).
2. Turn each feed visit into a candidate page: the items the visit exposed, in order of first
   exposure, with their catalogue features (:mod:`streamfeat.ranking._catalogue`). Replay the
   visit through the device's :class:`~streamfeat.ranking.FeedState` and the EdgeRec policy
   (click, delete, 5 exposures without a click), with the device's item-page views from the
   ``ipv`` feature. Each firing is one sample: the model inputs at that moment, and for each
   unseen candidate whether the user clicked it later in the visit. Samples with no click
   to come are dropped.
3. Split by device (one in five held out), train with the trainer of ``streamfeat train``
   (:func:`streamfeat.train.fit`: Adam on the per-candidate log loss), and print held-out
   AUC and log loss per epoch.
4. Export to ONNX (:func:`streamfeat.train.export`), check the file's scores against
   PyTorch's on held-out samples (:func:`streamfeat.train.check_export`), and write it.

The result is a small starting model (the next step trains on what devices upload), not a
tuned one: its held-out AUC is printed next to that of the server score alone.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat._event import event_from_obj
from streamfeat.errors import MissingExtraError
from streamfeat.gen._generator import device_id, device_stream
from streamfeat.models.edgerec import DEFAULT_MODEL_PATH, input_specs
from streamfeat.ranking._catalogue import item_features, page_of
from streamfeat.ranking._context import PageViews, build_inputs
from streamfeat.ranking._page import FeedState
from streamfeat.ranking._rerank import EdgeRecPolicy
from streamfeat.train import Sample as TrainSample
from streamfeat.train import auc
from streamfeat.train._export import TOLERANCE, check_export, export
from streamfeat.train._fit import EpochResult, FitOptions, fit, import_torch

__all__ = ["Sample", "auc", "main", "samples_of_device"]  # auc: moved to streamfeat.train

F32 = npt.NDArray[np.float32]
Sample = tuple[str, dict[str, F32], F32]  # device, model inputs, labels per unseen candidate
FEED = "home_feed"
MAX_CANDIDATES = 50


def samples_of_device(device: str, minutes: float, seed: int) -> list[Sample]:
    """Return the training samples of one generated device (see the module doc)."""
    from streamfeat.features import FeatureConfig
    from streamfeat.features.ipv import IpvFeature

    events = [event_from_obj(o) for o in device_stream(device, minutes, seed)]
    starts: dict[int, list[str]] = {}  # index of a feed visit's page_enter -> items exposed
    cur: list[str] | None = None
    for i, ev in enumerate(events):
        if ev.type == "page_enter" and ev.page == FEED:
            cur = starts[i] = []
        elif ev.type == "app_background":
            cur = None
        elif (
            cur is not None
            and ev.type == "exposure"
            and ev.page == FEED
            and ev.item
            and ev.item not in cur
            and len(cur) < MAX_CANDIDATES
        ):
            cur.append(ev.item)
    ipv = IpvFeature(FeatureConfig(name="ipv", kind="ipv"), partial_limit=86_400_000)
    ipv_state = ipv.new_state()
    views = PageViews(maxlen=20, category_of=lambda it: item_features(it)["category"])
    specs = input_specs()
    policy = EdgeRecPolicy(k=5)
    state: FeedState | None = None
    out: list[Sample] = []
    ends = [*sorted(starts), len(events)]
    for n, start in enumerate(ends[:-1]):
        end = ends[n + 1]
        items = starts[start]
        page = page_of(FEED, f"{device}-{start}", items)
        state = FeedState(page) if state is None else state.next_page(page)
        for i in range(start if n else 0, end):
            ev = events[i]
            recs: list[dict[str, Any]] = []
            ipv.process(ipv_state, i, ev, 0, device, recs)
            for r in recs:
                views.add(r["values"])
            if i < start:
                continue
            reason = policy.should_fire(state, state.observe(ev))
            if reason is None:
                continue
            snap = state.snapshot(50)
            if not snap.unseen:
                continue
            later = {e.item for e in events[i + 1 : end] if e.type == "click" and e.page == FEED}
            labels = np.array([c.item in later for c in snap.unseen], dtype=np.float32)
            if labels.any():
                out.append((device, build_inputs(specs, snap, views.last(20)), labels))
    return out


def _to_train(samples: Sequence[Sample]) -> list[TrainSample]:
    return [TrainSample(d, feeds, y) for d, feeds, y in samples]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m streamfeat.gen.build_model",
                                 description="Build the shipped EdgeRec-style model.")  # fmt: skip
    ap.add_argument("--devices", type=int, default=150)
    ap.add_argument("--minutes", type=float, default=240.0)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=DEFAULT_MODEL_PATH)
    args = ap.parse_args(argv)
    try:
        import_torch()
    except MissingExtraError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    samples: list[Sample] = []
    for d in range(args.devices):
        samples.extend(samples_of_device(device_id(d), args.minutes, args.seed))
    held = _to_train([s for s in samples if int(s[0][3:]) % 5 == 0])
    train = _to_train([s for s in samples if int(s[0][3:]) % 5 != 0])
    n_pos = sum(int(s[2].sum()) for s in samples)
    n_cand = sum(len(s[2]) for s in samples)
    print(f"samples: {len(train)} train, {len(held)} held out ({n_cand} candidates, "
          f"{n_pos} clicked), built in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    server_auc = auc([float(x) for s in held for x in s.feeds["candidates"][0, :, 1]],
                     [float(y) for s in held for y in s.labels])  # fmt: skip

    def on_epoch(r: EpochResult) -> None:
        print(f"epoch {r.epoch}/{args.epochs}: held-out AUC {r.auc:.4f} (server score alone "
              f"{server_auc:.4f}), log loss {r.log_loss:.4f}, {r.seconds:.1f} s", flush=True)  # fmt: skip

    # tiny matrices: one thread, as other threads only contend on a shared machine
    opts = FitOptions(epochs=args.epochs, batch=32, lr=3e-3, seed=args.seed, threads=1)
    model, _ = fit(train, held, opts, on_epoch=on_epoch)
    data = export(model, version="edgerec-small",
                  doc=f"streamfeat.gen.build_model: {args.devices} devices x {args.minutes:g} min, "
                      f"seed {args.seed}, {args.epochs} epochs")  # fmt: skip
    worst = check_export(model, data, held, pages=50)
    print(
        f"export check: max |PyTorch - ONNX|, |PyTorch - numpy| over 50 held-out pages: {worst:.2e}"
    )
    if worst > TOLERANCE:
        print("error: the exported model differs from the trained one", file=sys.stderr)
        return 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(data)
    print(f"wrote {args.out} ({len(data):,} bytes) in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
