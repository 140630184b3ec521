"""The category matches of a candidate with its context, in numpy and as ONNX nodes.

:mod:`streamfeat.models.edgerec` describes the features (its module docstring); this module
computes them, once in plain numpy (:func:`match`, the reference) and once as ONNX nodes
(:func:`match_onnx`), so the two stay side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.models._fields import EXPOSURE_FIELDS, PAGE_VIEW_FIELDS

__all__ = [
    "MATCH_FEATURES",
    "OUTCOME_DEFAULTS",
    "OUTCOME_FEATURES",
    "RECENCY",
    "RECENT_FEATURES",
    "SIM_POWER",
    "SOFT_FEATURES",
    "match",
    "match_onnx",
]

F32 = npt.NDArray[np.float32]

#: Category matches of a candidate with its context (``Dims.match``).
MATCH_FEATURES = 4
#: The same matches over the exposure rows weighted by recency, and the recency-weighted sum
#: of the matching rows' ``slog(exposure_ms)`` (``Dims.recent``).
RECENT_FEATURES = 4
#: The weight of an exposure row ``k`` rows before the newest: ``RECENCY ** k``.
RECENCY = 0.9
#: Soft matches use ``max(0, E[c] . E[c']) ** SIM_POWER``: near 1 for categories that go
#: together, near 0 (not a small positive number that 50 context rows would add up) for the rest.
SIM_POWER = 4.0
#: The soft matches (``Dims.soft``).
SOFT_FEATURES = 6
#: What the user did with similar items, recency-weighted (``Dims.outcome``): clicked,
#: deleted, looked at long, skipped fast.
OUTCOME_FEATURES = 4
#: ``outcome.params`` of a new model: the recency per row, the exposure time (ms) from which a
#: look counts as long, and the one under which it counts as a fast skip.
OUTCOME_DEFAULTS = (0.97, 2000.0, 500.0)
EXPOSURE_MS = EXPOSURE_FIELDS.index("exposure_ms")
DWELL_MS = PAGE_VIEW_FIELDS.index("dwell_ms")
CLICKED, DELETED = EXPOSURE_FIELDS.index("clicked"), EXPOSURE_FIELDS.index("deleted")


def slog(x: F32) -> F32:
    """``sign(x) * log(1 + |x|)``."""
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)), dtype=np.float32)


def match(
    candidates: F32,
    exposures: F32,
    page_views: F32,
    recent: bool = False,
    sim: F32 | None = None,
    outcome: F32 | None = None,
) -> F32:
    """``slog`` of the category matches ``[C, 4]``, four more with ``recent``, six more with
    ``sim`` (the soft matches) and four more with ``outcome`` (``outcome.params``)."""
    eq_e = (candidates[:, 0:1] == exposures[None, :, 0]).astype(np.float32)  # [C, E]
    eq_d = (candidates[:, 0:1] == page_views[None, :, 0]).astype(np.float32)  # [C, D]
    clicked, deleted = exposures[None, :, CLICKED], exposures[None, :, DELETED]
    n = exposures.shape[0]
    age = np.arange(n - 1, -1, -1, dtype=np.float32)  # rows after t up to the newest
    parts = [eq_e.sum(-1), (eq_e * clicked).sum(-1), (eq_e * deleted).sum(-1), eq_d.sum(-1)]
    if recent:
        r = eq_e * (np.float32(RECENCY) ** age)[None, :]
        ms = slog(exposures[None, :, EXPOSURE_MS])
        parts += [r.sum(-1), (r * clicked).sum(-1), (r * deleted).sum(-1), (r * ms).sum(-1)]
    s_e = eq_e
    if sim is not None:  # the category similarity (sim_emb.weight, computed by training)
        k = sim.shape[0]

        def emb(rows: F32) -> F32:
            return np.asarray(sim[np.mod(rows[:, 0].astype(np.int64), k)], dtype=np.float32)

        ec = emb(candidates)
        p = np.float32(SIM_POWER)
        s_e = np.maximum(ec @ emb(exposures).T, np.float32(0)) ** p  # [C, E]
        s_d = np.maximum(ec @ emb(page_views).T, np.float32(0)) ** p  # [C, D]
        parts += [s_e.sum(-1), (s_e * clicked).sum(-1), (s_e * deleted).sum(-1), s_d.sum(-1),
                  (s_e * slog(exposures[None, :, EXPOSURE_MS])).sum(-1),
                  (s_d * slog(page_views[None, :, DWELL_MS])).sum(-1)]  # fmt: skip
    if outcome is not None:  # [recency, long_ms, short_ms]
        o = np.asarray(outcome, dtype=np.float32)
        w = s_e * (o[0] ** age)[None, :]
        ms_raw = exposures[None, :, EXPOSURE_MS]
        rest = (np.float32(1) - clicked) * (np.float32(1) - deleted)
        long = (ms_raw >= o[1]).astype(np.float32) * rest
        short = ((ms_raw > 0) & (ms_raw < o[2])).astype(np.float32) * rest
        parts += [(w * clicked).sum(-1), (w * deleted).sum(-1), (w * long).sum(-1),
                  (w * short).sum(-1)]  # fmt: skip
    return slog(np.stack(parts, axis=-1).astype(np.float32))


def match_onnx(g: Any, recent: bool, soft: bool, outcome: bool) -> str:
    """Write the nodes of :func:`match` into ``g`` (the exporter's graph helper); returns the
    matches ``[1, C, Dims.match_features]``. Reads the initializers ``sim_emb.weight`` (with
    ``soft``) and ``outcome.params`` (with ``outcome``), which the caller writes."""
    cat_c = g.op("Slice", ["candidates", "c0", "c1", "ax2"])  # [1, C, 1]

    def row(x: str) -> str:  # [1, T, 1] -> [1, 1, T]
        return str(g.op("Transpose", [x], perm=[0, 2, 1]))

    cols: dict[tuple[str, int], str] = {}

    def col(x: str, j: int) -> str:  # column j of input x as [1, 1, T], written once
        if (x, j) not in cols:
            lo = g.const(f"{x}.col{j}.lo", np.array([j], np.int64))
            hi = g.const(f"{x}.col{j}.hi", np.array([j + 1], np.int64))
            cols[(x, j)] = row(g.op("Slice", [x, lo, hi, "ax2"]))
        return cols[(x, j)]

    f32 = g.onnx.TensorProto.FLOAT
    eq_e = g.op("Cast", [g.op("Equal", [cat_c, row(g.op("Slice", ["exposures", "c0", "c1", "ax2"]))])],
                to=f32)  # fmt: skip
    eq_d = g.op("Cast", [g.op("Equal", [cat_c, row(g.op("Slice", ["page_views", "c0", "c1", "ax2"]))])],
                to=f32)  # fmt: skip

    def slog_(x: str) -> str:
        return str(
            g.op("Mul", [g.op("Sign", [x]), g.op("Log", [g.op("Add", [g.op("Abs", [x]), "one"])])])
        )

    def total(x: str) -> str:
        return str(g.op("ReduceSum", [x, "ax2"], keepdims=1))

    ages: list[str] = []

    def age() -> str:  # [E]: E - 1 - t, written once
        if not ages:
            n = g.op("Gather", [g.op("Shape", ["exposures"]), g.const("dim1", np.array(1, np.int64))],
                     axis=0)  # fmt: skip
            t = g.op("Range", [g.const("zero_i", np.array(0, np.int64)), n,
                               g.const("one_i", np.array(1, np.int64))])  # fmt: skip
            ages.append(g.op("Cast", [g.op("Sub", [g.op("Sub", [n, "one_i"]), t])], to=f32))
        return ages[0]

    clicked, deleted = col("exposures", CLICKED), col("exposures", DELETED)
    parts = [total(eq_e), total(g.op("Mul", [eq_e, clicked])),
             total(g.op("Mul", [eq_e, deleted])), total(eq_d)]  # fmt: skip
    if recent:  # weights RECENCY ** (E - 1 - t) over the exposure rows t
        wts = g.op("Pow", [g.const("recency", np.array(RECENCY, np.float32)), age()])
        r = g.op("Mul", [eq_e, wts])  # [1, C, E]
        slog_ms = slog_(col("exposures", EXPOSURE_MS))
        parts += [total(r), total(g.op("Mul", [r, clicked])), total(g.op("Mul", [r, deleted])),
                  total(g.op("Mul", [r, slog_ms]))]  # fmt: skip
    s_e = eq_e
    if soft:  # s(c, c_t) = max(0, E_s[c] . E_s[c_t]) ** SIM_POWER

        def emb(x: str) -> str:  # [1, N, S]
            cat = g.op("Slice", [x, "c0", "c1", "ax2"])
            idx = g.op("Mod", [g.op("Cast", [cat], to=g.onnx.TensorProto.INT64), "buckets"], fmod=0)
            return str(g.op("Gather", ["sim_emb.weight", g.op("Squeeze", [idx, "ax2"])], axis=0))

        ec = emb("candidates")
        power = g.const("sim_power", np.array(SIM_POWER, np.float32))

        def sims(x: str) -> str:  # max(0, E[c] . E[c_t]) ** SIM_POWER
            dot = g.op("MatMul", [ec, g.op("Transpose", [emb(x)], perm=[0, 2, 1])])
            return str(g.op("Pow", [g.op("Relu", [dot]), power]))

        s_e, s_d = sims("exposures"), sims("page_views")
        parts += [total(s_e), total(g.op("Mul", [s_e, clicked])),
                  total(g.op("Mul", [s_e, deleted])), total(s_d),
                  total(g.op("Mul", [s_e, slog_(col("exposures", EXPOSURE_MS))])),
                  total(g.op("Mul", [s_d, slog_(col("page_views", DWELL_MS))]))]  # fmt: skip
    if outcome:  # outcome.params = [recency, long_ms, short_ms]

        def param(j: int) -> str:
            return str(g.op("Gather", ["outcome.params", g.const(f"outcome.i{j}",
                                                                np.array(j, np.int64))], axis=0))  # fmt: skip

        w = g.op("Mul", [s_e, g.op("Pow", [param(0), age()])])
        ms = col("exposures", EXPOSURE_MS)
        rest = g.op("Mul", [g.op("Sub", ["one", clicked]), g.op("Sub", ["one", deleted])])
        long = g.op("Mul", [g.op("Cast", [g.op("GreaterOrEqual", [ms, param(1)])], to=f32), rest])
        zero = g.const("outcome.zero", np.array(0.0, np.float32))
        fast = g.op("And", [g.op("Greater", [ms, zero]), g.op("Less", [ms, param(2)])])
        short = g.op("Mul", [g.op("Cast", [fast], to=f32), rest])
        parts += [total(g.op("Mul", [w, clicked])), total(g.op("Mul", [w, deleted])),
                  total(g.op("Mul", [w, long])), total(g.op("Mul", [w, short]))]  # fmt: skip
    return str(slog_(g.op("Concat", parts, axis=-1)))
