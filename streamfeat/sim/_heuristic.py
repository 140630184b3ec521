"""The hand-written re-rank of ``--ranking heuristic``, as an ONNX graph with the EdgeRec inputs.

No weights are learned. For candidate ``j`` with category ``c_j`` and group ``g_j`` (16
categories a group), over the exposure rows ``t`` (the feed's last 50 exposed or deleted items,
earlier pages included):

    score_j = sigmoid(logit(server_score_j)
                      + CLICK * sum_t clicked_t * [c_t = c_j]
                      + GROUP * sum_t clicked_t * [g_t = g_j]
                      - DELETE * sum_t deleted_t * [c_t = c_j])

that is: keep the server's order, but lift the categories (and, less, the groups) the user just
clicked, and push down the categories they deleted. The file is shipped
(``streamfeat/sim/data/rerank-heuristic.onnx``) so running it needs no ``onnx`` package;
``python -m streamfeat.sim._heuristic`` writes it again (``onnx`` needed) and a test checks the
shipped bytes equal a fresh build.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from streamfeat.models.edgerec import CANDIDATE_FIELDS, EXPOSURE_FIELDS, input_specs

__all__ = ["CLICK", "DELETE", "GROUP", "build_heuristic", "heuristic_model_path"]

CLICK = 1.0
GROUP = 0.4
DELETE = 1.0
_PATH = Path(__file__).resolve().parent / "data" / "rerank-heuristic.onnx"


def heuristic_model_path() -> Path:
    """The shipped heuristic model file."""
    return _PATH


def build_heuristic() -> bytes:
    """Return the heuristic's ONNX model (bytes).

    Raises:
        ImportError: with the install hint, if the ``onnx`` package is missing.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:
        msg = "building the heuristic model needs the onnx package: pip install 'streamfeat[train]'"
        raise ImportError(msg) from exc
    f32 = np.float32
    clicked, deleted = EXPOSURE_FIELDS.index("clicked"), EXPOSURE_FIELDS.index("deleted")
    score_col = CANDIDATE_FIELDS.index("server_score")
    consts: dict[str, Any] = {
        "i0": np.array([0], np.int64), "i1": np.array([1], np.int64),
        "i2": np.array([2], np.int64), "ic": np.array([clicked], np.int64),
        "ic1": np.array([clicked + 1], np.int64), "id": np.array([deleted], np.int64),
        "id1": np.array([deleted + 1], np.int64), "is": np.array([score_col], np.int64),
        "is1": np.array([score_col + 1], np.int64), "perm": np.array([0, 2, 1], np.int64),
        "c100": np.array(100.0, f32), "c16": np.array(16.0, f32), "one": np.array(1.0, f32),
        "eps": np.array(1e-6, f32), "wclick": np.array(CLICK, f32),
        "wgroup": np.array(GROUP, f32), "wdel": np.array(-DELETE, f32),
    }  # fmt: skip
    nodes = []

    def op(kind: str, ins: list[str], out: str, **attrs: Any) -> str:
        nodes.append(helper.make_node(kind, ins, [out], **attrs))
        return out

    # categories: candidates [1, C, 1], exposures transposed to [1, 1, E]
    cc = op("Slice", ["candidates", "i0", "i1", "i2"], "cand_cat")
    ec = op("Transpose", [op("Slice", ["exposures", "i0", "i1", "i2"], "exp_cat_col")], "exp_cat",
            perm=[0, 2, 1])  # fmt: skip

    def group(x: str, name: str) -> str:
        return op(
            "Floor", [op("Div", [op("Sub", [x, "c100"], f"{name}_s"), "c16"], f"{name}_d")], name
        )

    same_c = op("Cast", [op("Equal", [cc, ec], "eq_c")], "same_c", to=onnx.TensorProto.FLOAT)
    same_g = op("Cast", [op("Equal", [group(cc, "cand_g"), group(ec, "exp_g")], "eq_g")], "same_g",
                to=onnx.TensorProto.FLOAT)  # fmt: skip
    clk = op("Transpose", [op("Slice", ["exposures", "ic", "ic1", "i2"], "clk_col")], "clk",
             perm=[0, 2, 1])  # fmt: skip
    dele = op("Transpose", [op("Slice", ["exposures", "id", "id1", "i2"], "del_col")], "del",
              perm=[0, 2, 1])  # fmt: skip
    # per exposure row: CLICK * clicked - DELETE * deleted ("wdel" holds -DELETE)
    w_c = op("Add", [op("Mul", [clk, "wclick"], "wc1"), op("Mul", [dele, "wdel"], "wd1")], "w_c")
    boost = op("Add", [op("Mul", [same_c, w_c], "bc"),
                       op("Mul", [same_g, op("Mul", [clk, "wgroup"], "wg1")], "bg")], "boost3")  # fmt: skip
    boost = op("ReduceSum", [boost, "i2"], "boost", keepdims=0)  # [1, C]
    s = op("Squeeze", [op("Slice", ["candidates", "is", "is1", "i2"], "score_col"), "i2"], "score")
    s = op("Clip", [s, "eps", op("Sub", ["one", "eps"], "top")], "score_c")
    logit = op(
        "Sub", [op("Log", [s], "ls"), op("Log", [op("Sub", ["one", s], "oms")], "lo")], "logit"
    )
    op("Sigmoid", [op("Add", [logit, boost], "z")], "scores")
    inits = [numpy_helper.from_array(v, name=k) for k, v in consts.items()]
    specs = input_specs()
    inputs = [helper.make_tensor_value_info(sp.name, onnx.TensorProto.FLOAT, list(sp.shape))
              for sp in specs]  # fmt: skip
    outputs = [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [1, "C"])]
    graph = helper.make_graph(nodes, "rerank_heuristic", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="streamfeat",
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 8
    model.doc_string = (
        "hand-written re-rank: lift clicked categories and groups, push down deleted ones"
    )
    fields: dict[str, object] = {}
    for sp in specs:
        fields[sp.name] = list(sp.fields)
        fields[f"{sp.name}.source"] = sp.source
    helper.set_model_props(model, {"streamfeat.fields": json.dumps(fields),
                                   "streamfeat.arch": "heuristic"})  # fmt: skip
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def main(argv: list[str] | None = None) -> int:
    """Write the heuristic model (default: the shipped file)."""
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else _PATH
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build_heuristic())
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
