"""The EdgeRec-style re-rank model: architecture, weights, a numpy forward pass, ONNX export.

Architecture (after EdgeRec, Gong et al. 2020), for one page of ``C`` candidates:

* **Rows.** A candidate row is ``[category, server_score, price_level, age_h]``; an exposure
  row (e1-e7 of one exposed item, with its own item features) is those four then
  ``exposure_ms, exposures, max_scroll_speed, scrolls, clicked, deleted, first_pos``; a
  page-view row (d1-d12 of one item-page visit) is ``category`` then ``dwell_ms`` and the
  eleven action counts of :data:`PAGE_VIEW_FIELDS`. Column 0 of every row is the category,
  the others are numbers.
* **Item encoding.** The category goes through an embedding table (``category mod K``
  buckets); each number through ``slog(x) = sign(x) * log(1 + |x|)`` (counts, milliseconds
  and speeds span orders of magnitude), or, for the probability-like columns a ``*.logit``
  mask names (``server_score``, a predicted CTR of 0.005-0.3), through
  ``logit(clip(x, 1e-6, 1 - 1e-6))``; then each is standardised, ``(t - mean) / std``, with
  per-column constants stored in the model (``cand.*``, ``exp.*``, ``pv.*``; computed from the
  training samples by :func:`streamfeat.train.input_norms`). Absent, they are the identity
  (mean 0, std 1, no logit), as in ``builtin:edgerec-small``. A candidate is
  ``relu(W_c [emb; norm(num)] + b_c)``.
* **Context encoding.** A GRU over the exposure sequence and another over the page-view
  sequence (PyTorch's GRU equations, which are ONNX's with ``linear_before_reset = 1``).
  Every sequence starts with one all-zero row (the begin marker added by the feature
  builder), so an empty history is a valid input.
* **Attention.** From each candidate to each sequence's GRU outputs: scaled dot product of
  ``W_q c`` and ``W_k y_t``, softmax over ``t``, a weighted sum of the ``y_t``.
* **Head.** ``sigmoid(w_2 relu(W_1 [c; a_e; a_d; c*a_e; c*a_d] + b_1) + b_2)``: one score per
  candidate. A model with ``match.weight`` (``Dims(match=True)``, what ``streamfeat train``
  builds) adds ``W_m slog(m)`` inside that ``relu``, where ``m`` are the candidate's
  category matches with the context: ``sum_t [c_t = c]``, ``sum_t clicked_t [c_t = c]``,
  ``sum_t deleted_t [c_t = c]`` over the exposure rows and ``sum_t [c_t = c]`` over the
  page-view rows (exact category ids, the begin-marker rows included). With
  ``Dims(recent=True)`` four more: the first three over the exposure rows again, each row
  weighted by ``RECENCY ** k`` (``k`` rows before the newest, so what the user just did
  counts most), and ``sum_t RECENCY ** k [c_t = c] slog(exposure_ms_t)``. With
  ``Dims(soft=S)`` six more: the first four again with the exact match ``[c_t = c]``
  replaced by a similarity ``s(c, c_t) = max(0, E_s[c] . E_s[c_t]) ** SIM_POWER``
  (``sim_emb.weight``, ``S`` numbers per category bucket), so a click can lift the
  categories the data shows to go with the clicked one, not only the same category; and
  ``sum_t s(c, c_t) slog(exposure_ms_t)`` over the exposure rows and ``sum_d s(c, c_d)
  slog(dwell_ms_d)`` over the page-view rows (how long the user looked at items like it).
  With ``Dims(outcome=True)`` four more, what the user did with similar items lately: over
  the exposure rows, each weighted ``rho ** k`` (``k`` rows before the newest) times
  ``s(c, c_t)`` (``[c_t = c]`` without ``soft``), the sums of ``clicked``, ``deleted``, a
  long look (``exposure_ms >= long_ms``, neither clicked nor deleted) and a fast skip (``0 <
  exposure_ms < short_ms``, likewise). ``outcome.params = [rho, long_ms, short_ms]`` is
  stored in the model (default :data:`OUTCOME_DEFAULTS`: 0.97, 2000 ms, 500 ms) and is not
  trained. :mod:`streamfeat.models._match` computes all the matches, in numpy and ONNX.
* **Linear part.** A model with ``wide.weight`` (``Dims(wide=True)``) adds ``w_l [t_c; slog(m)]``
  to the logit: the candidate's scaled numbers and its matches, straight to the score, as
  the wide part of a Wide & Deep model.

The weights are a dict of float32 arrays named as a PyTorch module's ``state_dict`` would
name them (:mod:`streamfeat.models.edgerec_torch` is that module, for training), so weights
move between the three forms with no renaming: numpy (:func:`forward`, the reference), ONNX
(:func:`to_onnx`, which writes the graph op by op with the ``onnx`` package, no tracing) and
PyTorch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.models._builtin import DEFAULT_MODEL_PATH, builtin_spec, input_specs
from streamfeat.models._fields import (
    CANDIDATE_FIELDS,
    EXPOSURE_BEHAVIOUR,
    EXPOSURE_FIELDS,
    NORM_FIELDS,
    NORM_PREFIXES,
    PAGE_VIEW_BEHAVIOUR,
    PAGE_VIEW_FIELDS,
    PROBABILITY_FIELDS,
)
from streamfeat.models._match import (
    MATCH_FEATURES,
    OUTCOME_DEFAULTS,
    OUTCOME_FEATURES,
    RECENCY,
    RECENT_FEATURES,
    SIM_POWER,
    SOFT_FEATURES,
    match_onnx,
)
from streamfeat.models._match import match as _match
from streamfeat.models._match import slog as _slog

__all__ = [
    "CANDIDATE_FIELDS",
    "DEFAULT_MODEL_PATH",
    "EXPOSURE_BEHAVIOUR",
    "EXPOSURE_FIELDS",
    "LOGIT_EPS",
    "MATCH_FEATURES",
    "NORM_FIELDS",
    "NORM_PREFIXES",
    "OUTCOME_DEFAULTS",
    "OUTCOME_FEATURES",
    "PAGE_VIEW_BEHAVIOUR",
    "PAGE_VIEW_FIELDS",
    "PROBABILITY_FIELDS",
    "RECENCY",
    "RECENT_FEATURES",
    "SIM_POWER",
    "SOFT_FEATURES",
    "Dims",
    "builtin_spec",
    "forward",
    "identity_norms",
    "init_weights",
    "input_specs",
    "to_onnx",
]

F32 = npt.NDArray[np.float32]
Weights = dict[str, F32]

#: Where the logit clips a probability.
LOGIT_EPS = 1e-6
_OPSET = 17


@dataclass(frozen=True, slots=True)
class Dims:
    """Sizes of the model: category buckets, embedding width, hidden width."""

    buckets: int = 512
    emb: int = 8
    hidden: int = 32
    match: bool = False
    wide: bool = False
    recent: bool = False
    soft: int = 0
    outcome: bool = False

    @property
    def match_features(self) -> int:
        """How many match features the model reads (0 without ``match``)."""
        if not self.match:
            return 0
        extra = (RECENT_FEATURES if self.recent else 0) + (SOFT_FEATURES if self.soft else 0)
        return MATCH_FEATURES + extra + (OUTCOME_FEATURES if self.outcome else 0)


def _shapes(d: Dims) -> dict[str, tuple[int, ...]]:
    h, ni = d.hidden, d.emb + len(CANDIDATE_FIELDS) - 1
    ne = d.emb + len(EXPOSURE_FIELDS) - 1
    nd = d.emb + len(PAGE_VIEW_FIELDS) - 1
    return {
        "cat_emb.weight": (d.buckets, d.emb),
        "cand_proj.weight": (h, ni), "cand_proj.bias": (h,),
        "gru_e.weight_ih_l0": (3 * h, ne), "gru_e.weight_hh_l0": (3 * h, h),
        "gru_e.bias_ih_l0": (3 * h,), "gru_e.bias_hh_l0": (3 * h,),
        "gru_d.weight_ih_l0": (3 * h, nd), "gru_d.weight_hh_l0": (3 * h, h),
        "gru_d.bias_ih_l0": (3 * h,), "gru_d.bias_hh_l0": (3 * h,),
        "q_e.weight": (h, h), "k_e.weight": (h, h), "q_d.weight": (h, h), "k_d.weight": (h, h),
        "head1.weight": (h, 5 * h), "head1.bias": (h,),
        "head2.weight": (1, h), "head2.bias": (1,),
        **({"match.weight": (h, d.match_features)} if d.match else {}),
        **({"sim_emb.weight": (d.buckets, d.soft)} if d.match and d.soft else {}),
        **({"outcome.params": (len(OUTCOME_DEFAULTS),)} if d.match and d.outcome else {}),
        **({"wide.weight": (1, _wide_width(d))} if d.wide else {}),
    }  # fmt: skip


def _wide_width(d: Dims) -> int:
    """Inputs of the linear part: the candidate's numbers, and its matches if it has them."""
    return len(CANDIDATE_FIELDS) - 1 + d.match_features


def init_weights(rng: np.random.Generator, dims: Dims = Dims()) -> Weights:
    """Return random weights (uniform in ``±1/sqrt(fan_in)``, PyTorch's default scale)."""
    out: Weights = {}
    for name, shape in _shapes(dims).items():
        fan_in = shape[-1] if len(shape) > 1 else shape[0]
        bound = 1.0 if name == "cat_emb.weight" else 1.0 / math.sqrt(fan_in)
        out[name] = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    if "outcome.params" in out:  # constants, not weights
        out["outcome.params"] = np.array(OUTCOME_DEFAULTS, np.float32)
    return out


def identity_norms() -> Weights:
    """Return input scaling constants that change nothing (mean 0, std 1, no logit)."""
    out: Weights = {}
    for prefix, fields in NORM_FIELDS.items():
        n = len(fields)
        out[f"{prefix}.mean"] = np.zeros(n, np.float32)
        out[f"{prefix}.std"] = np.ones(n, np.float32)
        out[f"{prefix}.logit"] = np.zeros(n, np.float32)
    return out


def dims_of(w: Weights) -> Dims:
    """Return the sizes a weight dict was made for."""
    buckets, emb = w["cat_emb.weight"].shape
    match, soft = "match.weight" in w, "sim_emb.weight" in w
    outcome = "outcome.params" in w
    rest = int(w["match.weight"].shape[1]) if match else 0
    rest -= (SOFT_FEATURES if soft else 0) + (OUTCOME_FEATURES if outcome else 0)
    return Dims(buckets=int(buckets), emb=int(emb), hidden=int(w["cand_proj.bias"].shape[0]),
                match=match, wide="wide.weight" in w, recent=match and rest > MATCH_FEATURES,
                soft=int(w["sim_emb.weight"].shape[1]) if soft else 0, outcome=outcome)  # fmt: skip


# --- numpy reference -----------------------------------------------------------------------


def _logit(x: F32) -> F32:
    p = np.clip(x, np.float32(LOGIT_EPS), np.float32(1.0 - LOGIT_EPS))
    return np.asarray(np.log(p / (np.float32(1.0) - p)), dtype=np.float32)


def _norm(w: Weights, prefix: str, num: F32) -> F32:
    """The numbers of rows as the model sees them: slog (or logit), then standardised."""
    t = _slog(num)
    if f"{prefix}.mean" not in w:  # a model without scaling constants: the identity
        return t
    m = w[f"{prefix}.logit"]
    t = m * _logit(num) + (np.float32(1.0) - m) * t
    return np.asarray((t - w[f"{prefix}.mean"]) / w[f"{prefix}.std"], dtype=np.float32)


def _embed_rows(w: Weights, rows: F32, prefix: str) -> F32:
    k = w["cat_emb.weight"].shape[0]
    idx = np.mod(rows[..., 0].astype(np.int64), k)
    return np.concatenate([w["cat_emb.weight"][idx], _norm(w, prefix, rows[..., 1:])], axis=-1)


def _sigmoid(x: F32) -> F32:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


def _gru(w: Weights, prefix: str, xs: F32) -> F32:
    """PyTorch's GRU over ``xs`` ``[T, in]`` from a zero state; returns ``[T, H]``."""
    wih, whh = w[f"{prefix}.weight_ih_l0"], w[f"{prefix}.weight_hh_l0"]
    bih, bhh = w[f"{prefix}.bias_ih_l0"], w[f"{prefix}.bias_hh_l0"]
    hsz = whh.shape[1]
    h = np.zeros(hsz, dtype=np.float32)
    out = []
    for x in xs:
        gi = wih @ x + bih
        gh = whh @ h + bhh
        r = _sigmoid(gi[:hsz] + gh[:hsz])
        z = _sigmoid(gi[hsz : 2 * hsz] + gh[hsz : 2 * hsz])
        n = np.tanh(gi[2 * hsz :] + r * gh[2 * hsz :])
        h = (1.0 - z) * n + z * h
        out.append(h)
    return np.stack(out).astype(np.float32)


def _attend(q: F32, k: F32, ys: F32) -> F32:
    s = (q @ k.T) / np.float32(math.sqrt(q.shape[-1]))
    s = s - s.max(axis=-1, keepdims=True)
    a = np.exp(s)
    a = a / a.sum(axis=-1, keepdims=True)
    return np.asarray(a @ ys, dtype=np.float32)


def forward(w: Weights, candidates: F32, exposures: F32, page_views: F32) -> F32:
    """The reference forward pass, in plain numpy: scores ``[C]`` for one page.

    Args:
        w: the weights.
        candidates: ``[C, 4]`` rows (:data:`CANDIDATE_FIELDS`).
        exposures: ``[E, 11]`` rows (:data:`EXPOSURE_FIELDS`), ``E >= 1``.
        page_views: ``[D, 13]`` rows (:data:`PAGE_VIEW_FIELDS`), ``D >= 1``.
    """
    c = np.maximum(
        _embed_rows(w, candidates, "cand") @ w["cand_proj.weight"].T + w["cand_proj.bias"], 0
    )
    ye = _gru(w, "gru_e", _embed_rows(w, exposures, "exp"))
    yd = _gru(w, "gru_d", _embed_rows(w, page_views, "pv"))
    ae = _attend(c @ w["q_e.weight"].T, ye @ w["k_e.weight"].T, ye)
    ad = _attend(c @ w["q_d.weight"].T, yd @ w["k_d.weight"].T, yd)
    z = np.concatenate([c, ae, ad, c * ae, c * ad], axis=-1)
    pre = z @ w["head1.weight"].T + w["head1.bias"]
    m = (_match(candidates, exposures, page_views, dims_of(w).recent, w.get("sim_emb.weight"),
                w.get("outcome.params")) if "match.weight" in w else None)  # fmt: skip
    if m is not None:
        pre = pre + m @ w["match.weight"].T
    hid = np.maximum(pre, 0)
    logit = hid @ w["head2.weight"].T + w["head2.bias"]
    if "wide.weight" in w:
        num = _norm(w, "cand", candidates[:, 1:])
        x = num if m is None else np.concatenate([num, m], axis=-1)
        logit = logit + x @ w["wide.weight"].T
    return _sigmoid(logit[:, 0]).astype(np.float32)


# --- ONNX export ---------------------------------------------------------------------------


class _Graph:
    """A tiny helper that names nodes and initializers while the graph is written."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, value: npt.NDArray[Any]) -> str:
        self.inits.append(self.onnx.numpy_helper.from_array(np.asarray(value), name=name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [out], **attrs))
        return out

    def linear(self, x: str, weight: str, bias: str | None = None) -> str:
        y = self.op("MatMul", [x, weight])
        return self.op("Add", [y, bias]) if bias is not None else y


def _gru_onnx(g: _Graph, w: Weights, prefix: str, rows: str) -> str:
    """Write an ONNX GRU for PyTorch weights ``prefix``; ``rows`` is ``[1, T, in]``."""
    hsz = w[f"{prefix}.weight_hh_l0"].shape[1]

    def zrn(a: F32) -> F32:  # PyTorch stacks gates r, z, n; ONNX wants z, r, h
        r, z, n = a[:hsz], a[hsz : 2 * hsz], a[2 * hsz :]
        return np.concatenate([z, r, n], axis=0)

    wz = g.const(f"{prefix}.W", zrn(w[f"{prefix}.weight_ih_l0"])[None])
    rz = g.const(f"{prefix}.R", zrn(w[f"{prefix}.weight_hh_l0"])[None])
    b = np.concatenate([zrn(w[f"{prefix}.bias_ih_l0"]), zrn(w[f"{prefix}.bias_hh_l0"])])
    bz = g.const(f"{prefix}.B", b[None])
    seq = g.op("Transpose", [rows], perm=[1, 0, 2])  # [T, 1, in]
    y, yh = f"{prefix}_y", f"{prefix}_yh"
    g.nodes.append(
        g.onnx.helper.make_node(
            "GRU", [seq, wz, rz, bz], [y, yh], hidden_size=int(hsz), linear_before_reset=1
        )
    )
    # Y is [T, num_directions=1, batch=1, H] -> [1, T, H]
    y3 = g.op("Squeeze", [y, g.const(f"{prefix}.axis1", np.array([1], dtype=np.int64))])
    return g.op("Transpose", [y3], perm=[1, 0, 2])


def _embed_onnx(g: _Graph, w: Weights, x: str, ncols: int, prefix: str) -> tuple[str, str]:
    """``(embedding ++ numbers, numbers)`` of rows ``x``, the numbers as :func:`_norm` gives."""
    cat = g.op("Slice", [x, "c0", "c1", "ax2"])
    idx = g.op("Mod", [g.op("Cast", [cat], to=g.onnx.TensorProto.INT64), "buckets"], fmod=0)
    idx2 = g.op("Squeeze", [idx, "ax2"])  # [1, N]
    emb = g.op("Gather", ["cat_emb.weight", idx2], axis=0)  # [1, N, emb]
    num = g.op("Slice", [x, "c1", g.const(f"c{ncols}", np.array([ncols], np.int64)), "ax2"])
    slog = g.op(
        "Mul", [g.op("Sign", [num]), g.op("Log", [g.op("Add", [g.op("Abs", [num]), "one"])])]
    )
    if f"{prefix}.mean" not in w:  # no scaling constants: the identity, as edgerec-small
        return g.op("Concat", [emb, slog], axis=-1), slog
    # t = m * logit(clip(x)) + (1 - m) * slog(x), then (t - mean) / std, as _norm
    p = g.op("Clip", [num, "logit_lo", "logit_hi"])
    logit = g.op("Log", [g.op("Div", [p, g.op("Sub", ["one", p])])])
    m = g.const(f"{prefix}.logit", w[f"{prefix}.logit"])
    t = g.op("Add", [g.op("Mul", [m, logit]), g.op("Mul", [g.op("Sub", ["one", m]), slog])])
    mean = g.const(f"{prefix}.mean", w[f"{prefix}.mean"])
    std = g.const(f"{prefix}.std", w[f"{prefix}.std"])
    t = g.op("Div", [g.op("Sub", [t, mean]), std])
    return g.op("Concat", [emb, t], axis=-1), t


def _attend_onnx(g: _Graph, c: str, ys: str, q_w: str, k_w: str, scale: float) -> str:
    q = g.op("MatMul", [c, q_w])
    k = g.op("MatMul", [ys, k_w])
    s = g.op("Mul", [g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 2, 1])]), _scale(g, scale)])
    return g.op("MatMul", [g.op("Softmax", [s], axis=-1), ys])


def _scale(g: _Graph, scale: float) -> str:
    name = "attn_scale"
    if not any(i.name == name for i in g.inits):
        g.const(name, np.array(scale, dtype=np.float32))
    return name


def to_onnx(w: Weights, *, producer_version: str = "", doc: str = "") -> bytes:
    """Return the ONNX model (bytes) computing :func:`forward` with weights ``w``.

    The inputs are :func:`input_specs` (batch axis 1, dynamic ``C``/``E``/``D``), the output
    ``scores`` ``[1, C]``; the metadata records the fields of each input
    (``streamfeat.fields``), which :func:`streamfeat.models.load_model` checks against a
    declaration.

    Raises:
        ImportError: with the install hint, if the ``onnx`` package is missing.
    """
    try:
        import onnx
    except ImportError as exc:
        msg = "exporting a model needs the onnx package: pip install 'streamfeat[train]'"
        raise ImportError(msg) from exc
    d = dims_of(w)
    g = _Graph(onnx)
    g.const("cat_emb.weight", w["cat_emb.weight"])
    for name in ("cand_proj", "head1", "head2"):
        g.const(f"{name}.weight_t", w[f"{name}.weight"].T.copy())
        g.const(f"{name}.bias", w[f"{name}.bias"])
    for name in ("q_e", "k_e", "q_d", "k_d"):
        g.const(f"{name}.weight_t", w[f"{name}.weight"].T.copy())
    g.const("c0", np.array([0], np.int64))
    g.const("c1", np.array([1], np.int64))
    g.const("ax2", np.array([2], np.int64))
    g.const("buckets", np.array(d.buckets, np.int64))
    g.const("one", np.array(1.0, np.float32))
    if "cand.mean" in w:
        g.const("logit_lo", np.array(LOGIT_EPS, np.float32))
        g.const("logit_hi", np.array(1.0 - LOGIT_EPS, np.float32))
    specs = input_specs()
    cand, cand_num = _embed_onnx(g, w, "candidates", len(CANDIDATE_FIELDS), "cand")
    c = g.op("Relu", [g.linear(cand, "cand_proj.weight_t", "cand_proj.bias")])
    ye = _gru_onnx(g, w, "gru_e", _embed_onnx(g, w, "exposures", len(EXPOSURE_FIELDS), "exp")[0])
    yd = _gru_onnx(g, w, "gru_d", _embed_onnx(g, w, "page_views", len(PAGE_VIEW_FIELDS), "pv")[0])
    scale = 1.0 / math.sqrt(d.hidden)
    ae = _attend_onnx(g, c, ye, "q_e.weight_t", "k_e.weight_t", scale)
    ad = _attend_onnx(g, c, yd, "q_d.weight_t", "k_d.weight_t", scale)
    z = g.op("Concat", [c, ae, ad, g.op("Mul", [c, ae]), g.op("Mul", [c, ad])], axis=-1)
    pre = g.linear(z, "head1.weight_t", "head1.bias")
    for name in ("sim_emb.weight", "outcome.params"):
        if name in w:
            g.const(name, w[name])
    m = match_onnx(g, d.recent, d.soft > 0, d.outcome) if "match.weight" in w else None
    if m is not None:
        g.const("match.weight_t", w["match.weight"].T.copy())
        pre = g.op("Add", [pre, g.op("MatMul", [m, "match.weight_t"])])
    hid = g.op("Relu", [pre])
    logit = g.linear(hid, "head2.weight_t", "head2.bias")  # [1, C, 1]
    if "wide.weight" in w:  # the linear part: numbers (and matches) straight to the logit
        g.const("wide.weight_t", w["wide.weight"].T.copy())
        x = cand_num if m is None else g.op("Concat", [cand_num, m], axis=-1)
        logit = g.op("Add", [logit, g.op("MatMul", [x, "wide.weight_t"])])
    sq = g.op("Squeeze", [logit, "ax2"])
    g.nodes.append(onnx.helper.make_node("Sigmoid", [sq], ["scores"]))
    inputs = [
        onnx.helper.make_tensor_value_info(s.name, onnx.TensorProto.FLOAT, list(s.shape))
        for s in specs
    ]
    outputs = [onnx.helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [1, "C"])]
    graph = onnx.helper.make_graph(g.nodes, "edgerec", inputs, outputs, initializer=g.inits)
    model = onnx.helper.make_model(
        graph,
        producer_name="streamfeat",
        producer_version=producer_version,
        opset_imports=[onnx.helper.make_opsetid("", _OPSET)],
    )
    model.ir_version = 8  # readable by onnxruntime >= 1.14
    model.doc_string = doc
    fields: dict[str, Any] = {}
    for s in specs:
        fields[s.name] = list(s.fields)
        fields[f"{s.name}.source"] = s.source
    onnx.helper.set_model_props(model, {"streamfeat.fields": json.dumps(fields),
                                        "streamfeat.arch": "edgerec"})  # fmt: skip
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())
