"""The model inputs of one re-rank, as carried in its ``task`` record (for training).

Theory of operation
-------------------
A re-rank task with ``record_inputs = true`` (the default) adds to its ``task`` record the
inputs the EdgeRec-style model sees at that moment, whatever model the task runs: the
candidates (the unseen ones, **in the record's ``order``**, so row ``i`` is the item
``order[i]``), the exposure rows and the page-view rows, in the field order of
:func:`streamfeat.models.edgerec.input_specs`, begin rows included. Training
(:mod:`streamfeat.train`) reads them back with :func:`decode_inputs`.

Each matrix is written as ``{"rows": N, "q": [decimals per column], "v": [ints, row by
row]}``: a column whose values are all integers is written as they are (``q = 0``); any
other column as ``round(x * 10**4)`` (``q = 4``). The compact codec writes a small integer
in one byte and a larger one as a varint, so the common counts, flags, categories and
positions cost a byte each, where a float would cost nine. Values are quantised to 1e-4:
the training inputs then differ from what the model saw by at most 5e-5 per value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.models.edgerec import input_specs
from streamfeat.ranking._context import build_inputs
from streamfeat.ranking._page import Snapshot

__all__ = ["DECIMALS", "decode_inputs", "encode_inputs"]

F32 = npt.NDArray[np.float32]
#: decimals kept of a column that holds a non-integer value
DECIMALS = 4
_LIMIT = 2**62  # larger magnitudes are not model inputs worth keeping exactly


def _encode_matrix(m: F32) -> dict[str, Any]:
    rows, cols = m.shape
    q: list[int] = []
    scaled = np.empty((rows, cols), dtype=np.float64)
    for j in range(cols):
        col = m[:, j].astype(np.float64)
        col = np.where(np.isfinite(col), col, 0.0)
        col = np.clip(col, -_LIMIT / 10**DECIMALS, _LIMIT / 10**DECIMALS)
        integral = bool(np.all(col == np.round(col)))
        q.append(0 if integral else DECIMALS)
        scaled[:, j] = col if integral else np.round(col * 10**DECIMALS)
    return {"rows": rows, "q": q, "v": [int(x) for x in scaled.reshape(-1)]}


def encode_inputs(
    snapshot: Snapshot, page_views: Sequence[Mapping[str, float]], order: Sequence[str]
) -> dict[str, Any]:
    """Return the ``inputs`` value of a re-rank's ``task`` record.

    Args:
        snapshot: what the re-rank saw.
        page_views: the page-view rows it saw (oldest first).
        order: the record's ``order`` (the unseen candidates, reordered); the candidate rows
            follow it.
    """
    by_item = {c.item: c for c in snapshot.unseen}
    ordered = Snapshot(
        snapshot.feed, snapshot.page_id, snapshot.revision,
        tuple(by_item[i] for i in order if i in by_item), snapshot.exposure_rows,
    )  # fmt: skip
    feeds = build_inputs(input_specs(), ordered, page_views)
    return {name: _encode_matrix(a[0]) for name, a in feeds.items()}


def _decode_matrix(name: str, obj: Any, cols: int) -> F32:
    if not isinstance(obj, dict):
        msg = f"inputs.{name} is not a map"
        raise ValueError(msg)
    rows, q, v = obj.get("rows"), obj.get("q"), obj.get("v")
    if type(rows) is not int or rows < 0:
        msg = f"inputs.{name}.rows must be a non-negative integer, got {rows!r}"
        raise ValueError(msg)
    if not isinstance(q, list) or len(q) != cols or any(type(x) is not int for x in q):
        msg = f"inputs.{name}.q must be {cols} integers, got {q!r}"
        raise ValueError(msg)
    if not isinstance(v, list) or len(v) != rows * cols:
        msg = f"inputs.{name}.v must hold {rows} x {cols} numbers"
        raise ValueError(msg)
    try:
        m = np.asarray(v, dtype=np.float64).reshape(rows, cols)
    except (TypeError, ValueError) as exc:
        msg = f"inputs.{name}.v holds a value that is not a number"
        raise ValueError(msg) from exc
    scale = np.asarray([math.pow(10.0, -x) for x in q], dtype=np.float64)
    return (m * scale[None, :]).astype(np.float32)


def decode_inputs(inputs: Any) -> dict[str, F32]:
    """Return the model inputs (``[1, N, fields]`` float32 per input) of a task record's
    ``inputs`` value.

    Raises:
        ValueError: naming what is malformed.
    """
    if not isinstance(inputs, dict):
        msg = "inputs is not a map"
        raise ValueError(msg)
    out: dict[str, F32] = {}
    for spec in input_specs():
        if spec.name not in inputs:
            msg = f"inputs has no {spec.name!r}"
            raise ValueError(msg)
        m = _decode_matrix(spec.name, inputs[spec.name], len(spec.fields))
        if spec.source != "candidates" and m.shape[0] < 1:
            msg = f"inputs.{spec.name} has no begin row"
            raise ValueError(msg)
        out[spec.name] = m[None]
    return out
