"""The input scaling constants of a trained model, computed from its training samples.

The model reads numbers of very different scales: milliseconds and counts (which ``slog``
brings to a few units) next to ``server_score``, a predicted CTR of 0.005-0.3 that ``slog``
leaves that small. So each number column is standardised inside the model, after its
transform: ``(t - mean) / std`` over every row of that input in the training samples (the
sequences' begin-marker rows included, as the model sees them), where ``t`` is ``slog(x)``,
or ``logit(clip(x, 1e-6, 1 - 1e-6))`` for the probability-like columns
(:data:`~streamfeat.models.edgerec.PROBABILITY_FIELDS`). A column that does not vary keeps
``std = 1``. The constants travel in the ONNX file, so a device runs the same math.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from streamfeat.models.edgerec import LOGIT_EPS, NORM_FIELDS, NORM_PREFIXES, PROBABILITY_FIELDS
from streamfeat.train._samples import Sample

__all__ = ["MIN_STD", "input_norms"]

#: a column whose transformed values vary less than this keeps std 1 (no division by ~0)
MIN_STD = 1e-6


def input_norms(samples: Sequence[Sample]) -> dict[str, np.ndarray]:
    """Return the scaling constants (``cand.mean``, ``cand.std``, ``cand.logit``, and the
    same for ``exp`` and ``pv``) of the number columns of ``samples``' inputs.

    Raises:
        ValueError: no samples.
    """
    if not samples:
        msg = "no samples to compute the input scaling from"
        raise ValueError(msg)
    out: dict[str, np.ndarray] = {}
    for name, prefix in NORM_PREFIXES.items():
        fields = NORM_FIELDS[prefix]
        rows = np.concatenate([s.feeds[name][0] for s in samples], axis=0)
        num = rows[:, 1:].astype(np.float64)
        logit = np.array([f in PROBABILITY_FIELDS for f in fields])
        p = np.clip(num, LOGIT_EPS, 1.0 - LOGIT_EPS)
        t = np.where(logit, np.log(p / (1.0 - p)), np.sign(num) * np.log1p(np.abs(num)))
        std = t.std(axis=0)
        out[f"{prefix}.mean"] = t.mean(axis=0).astype(np.float32)
        out[f"{prefix}.std"] = np.where(std < MIN_STD, 1.0, std).astype(np.float32)
        out[f"{prefix}.logit"] = logit.astype(np.float32)
    return out
