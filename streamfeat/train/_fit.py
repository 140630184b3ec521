"""The training loop of the EdgeRec-style model (PyTorch on the CPU, ``streamfeat[train]``).

:func:`fit` trains :class:`~streamfeat.models.edgerec_torch.EdgeRecModule` with Adam on the
per-candidate log loss over padded batches of pages, and after every epoch scores the
held-out pages (:func:`evaluate`: AUC and log loss over all their candidates). Seeded:
the same samples, options and seed give the same weights on one machine.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from streamfeat.errors import MissingExtraError
from streamfeat.models.edgerec import Dims
from streamfeat.train._metrics import auc, log_loss
from streamfeat.train._norms import input_norms
from streamfeat.train._samples import Sample
from streamfeat.train._similarity import category_similarity

__all__ = [
    "EpochResult",
    "FitOptions",
    "evaluate",
    "fit",
    "import_torch",
    "predict",
    "shuffle_labels",
]

INSTALL_HINT = "training needs PyTorch: pip install 'streamfeat[train]'"


def import_torch() -> Any:
    """Return the ``torch`` module.

    Raises:
        MissingExtraError: PyTorch (or onnx) is not installed; the message gives the
            ``pip install`` line.
    """
    try:
        import torch

        import streamfeat.models.edgerec_torch  # noqa: F401  (the module needs torch too)
    except ImportError as exc:
        raise MissingExtraError(INSTALL_HINT) from exc
    return torch


@dataclass(frozen=True, slots=True)
class FitOptions:
    """How to train.

    Attributes:
        epochs: passes over the training pages.
        batch: pages per optimiser step.
        lr: Adam's learning rate.
        seed: seeds the weights and the page order.
        threads: PyTorch's intra-op threads (``torch.set_num_threads``).
        dims: the model's sizes.
        normalise: standardise the inputs with constants computed from the training
            samples (:func:`~streamfeat.train.input_norms`); off, the model reads them as
            ``builtin:edgerec-small`` does (``slog`` only).
        position_bias: learn, beside the model, the chance that the user reaches and
            examines each row of the order (a logit per row, :data:`POSITIONS` rows, the last
            shared by the rest), and fit ``P(click) = P(examined | row) * P(click |
            examined)``; only the second factor is the model that is exported. Off, the model
            fits ``P(click)`` itself and learns "was near the top" as much as "is wanted".
        wide_lr: Adam's learning rate for the few weights of the linear part
            (``Dims.wide``) and the position-bias logits: as in Wide & Deep, the linear part
            gets its own optimiser settings, since at the deep part's small ``lr`` a few
            hundred steps move a weight by at most a few tenths.
        rows: train on the first ``rows`` rows of each re-rank's order only (0: all rows).
            With a re-rank after every exposure, row 0 is the item the user sees next, so
            ``rows = 1`` labels each candidate with what the user did with it in the state
            the model read, where a later row's click depends on what happened in between.
        ema: when above 0, export the exponential moving average of the weights over the
            training steps (``avg = ema * avg + (1 - ema) * weights`` after every step,
            starting from the initial weights; PyTorch's ``AveragedModel``) rather than the
            last step's weights: the average of where the last few hundred steps went, which
            moves less with the seed and the sample order (Polyak averaging). The held-out scores of the last
            epoch are those of the average.
    """

    epochs: int = 3
    batch: int = 64
    lr: float = 1e-2
    seed: int = 0
    threads: int = 1
    dims: Dims = field(default_factory=Dims)
    normalise: bool = True
    position_bias: bool = True
    wide_lr: float = 0.05
    rows: int = 0
    ema: float = 0.0


#: Rows of the order that get a position-bias logit of their own (the last one is shared by
#: every row from there on).
POSITIONS = 50


@dataclass(frozen=True, slots=True)
class EpochResult:
    """One epoch: its number, mean training loss, held-out AUC and log loss, seconds."""

    epoch: int
    train_loss: float
    auc: float
    log_loss: float
    seconds: float


def _batch(samples: Sequence[Sample]) -> tuple[Any, ...]:
    from streamfeat.models.edgerec_torch import pad_batch

    return pad_batch([(s.feeds["candidates"][0], s.feeds["exposures"][0],
                       s.feeds["page_views"][0], s.labels) for s in samples])  # fmt: skip


def predict(model: Any, samples: Sequence[Sample], batch: int = 128) -> list[np.ndarray]:
    """Return the model's scores of each sample's candidates (padded batches, no grad)."""
    torch = import_torch()
    out: list[np.ndarray] = []
    model.eval()
    with torch.no_grad():
        for b in range(0, len(samples), batch):
            chunk = samples[b : b + batch]
            cand, ex, e_len, pv, d_len, _lab, _mask = _batch(chunk)
            p = torch.sigmoid(model.logits_batch(cand, ex, e_len, pv, d_len)).numpy()
            out.extend(p[i, : len(s.labels)].copy() for i, s in enumerate(chunk))
    return out


def evaluate(model: Any, samples: Sequence[Sample]) -> tuple[float, float]:
    """Return the held-out ``(AUC, log loss)`` over every candidate of ``samples``."""
    scores = predict(model, samples)
    flat = [float(x) for s in scores for x in s]
    labels = [float(y) for s in samples for y in s.labels]
    return auc(flat, labels), log_loss(flat, labels)


def shuffle_labels(samples: Sequence[Sample], seed: int) -> list[Sample]:
    """Return the samples with their labels shuffled across all candidates of all samples
    (each page keeps its number of candidates): the control that cannot learn."""
    rng = np.random.default_rng(seed)
    flat = np.concatenate([s.labels for s in samples]) if samples else np.zeros(0, np.float32)
    flat = flat[rng.permutation(len(flat))]
    out: list[Sample] = []
    i = 0
    for s in samples:
        n = len(s.labels)
        out.append(Sample(s.device, s.feeds, flat[i : i + n].astype(np.float32)))
        i += n
    return out


def _loss(torch: Any, logits: Any, bias: Any, labels: Any) -> Any:
    """Per-candidate log loss ``[B, C]``: of ``sigmoid(logits)`` alone, or (``bias`` given)
    of ``sigmoid(logits) * sigmoid(bias[row])``, computed in log space."""
    f = torch.nn.functional
    if bias is None:
        return f.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    rows = torch.arange(logits.shape[1]).clamp(max=POSITIONS - 1)
    log_p = f.logsigmoid(logits) + f.logsigmoid(bias[rows])[None, :]
    log_q = torch.log(-torch.expm1(log_p.clamp(max=-1e-6)))  # log(1 - p)
    return -(labels * log_p + (1.0 - labels) * log_q)


def fit(
    train: Sequence[Sample],
    held: Sequence[Sample],
    options: FitOptions | None = None,
    *,
    on_batch: Callable[[int, int, int], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> tuple[Any, list[EpochResult]]:
    """Train the EdgeRec-style model on ``train``; score ``held`` after every epoch.

    Args:
        train: the training pages.
        held: the held-out pages (other devices); may be empty (then AUC and log loss are nan).
        options: how to train.
        on_batch: called ``(epoch, pages done, pages in the epoch)`` after every step.
        on_epoch: called with each epoch's result.

    Returns:
        The trained module (in eval mode) and one :class:`EpochResult` per epoch.

    Raises:
        MissingExtraError: PyTorch is not installed.
        ValueError: no training pages.
    """
    opts = options or FitOptions()
    if not train:
        msg = "no training samples"
        raise ValueError(msg)
    torch = import_torch()
    from streamfeat.models.edgerec_torch import EdgeRecModule

    torch.manual_seed(opts.seed)
    torch.set_num_threads(max(1, opts.threads))
    model = EdgeRecModule(opts.dims)
    if opts.normalise:
        model.set_norms(input_norms(train))
    bias = torch.nn.Parameter(torch.zeros(POSITIONS)) if opts.position_bias else None
    if opts.dims.match and opts.dims.soft:  # computed from co-occurrence, then kept fixed
        sim = category_similarity(train, opts.dims.buckets, opts.dims.soft)
        model.sim_emb.weight.data.copy_(torch.from_numpy(sim))
        model.sim_emb.weight.requires_grad_(False)
    fast_params = ([model.wide.weight] if opts.dims.wide else []) + (
        [bias] if bias is not None else []
    )
    deep = [q for n, q in model.named_parameters() if n != "wide.weight" and q.requires_grad]
    groups = [{"params": deep, "lr": opts.lr}]
    if fast_params:
        groups.append({"params": fast_params, "lr": opts.wide_lr})
    optim = torch.optim.Adam(groups, lr=opts.lr)
    rng = random.Random(opts.seed)
    order = list(train)
    avg = None
    if opts.ema:  # buffers (the input scaling) do not change while training: not averaged
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        avg = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(opts.ema))  # type: ignore[no-untyped-call]
        avg.update_parameters(model)  # the first update copies: the average starts at the init
    history: list[EpochResult] = []
    for epoch in range(1, opts.epochs + 1):
        t0 = time.perf_counter()
        rng.shuffle(order)
        model.train()
        total, n = 0.0, 0
        for b in range(0, len(order), opts.batch):
            chunk = order[b : b + opts.batch]
            cand, ex, e_len, pv, d_len, lab, mask = _batch(chunk)
            optim.zero_grad()
            logits = model.logits_batch(cand, ex, e_len, pv, d_len)
            if opts.rows:  # only the first rows of each order count
                mask = mask.clone()
                mask[:, opts.rows :] = 0.0
            loss = (_loss(torch, logits, bias, lab) * mask).sum() / mask.sum().clamp(min=1.0)
            loss.backward()
            optim.step()
            if avg is not None:
                avg.update_parameters(model)
            total += float(loss.detach()) * len(chunk)
            n += len(chunk)
            if on_batch is not None:
                on_batch(epoch, n, len(order))
        model.eval()
        if avg is not None and epoch == opts.epochs:
            model.load_state_dict(avg.module.state_dict())
        a, ll = evaluate(model, held) if held else (float("nan"), float("nan"))
        res = EpochResult(epoch, total / max(n, 1), a, ll, time.perf_counter() - t0)
        history.append(res)
        if on_epoch is not None:
            on_epoch(res)
    model.eval()
    return model, history
