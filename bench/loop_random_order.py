"""A re-rank that orders the candidates at random, for an exploration collect (docs/train.md).

Writes an ONNX file with the EdgeRec inputs (usable as ``--ranking model:FILE``) whose score
of a candidate is a hash of its four numbers: ``frac(97.1313 * sin(x . w))`` with a fixed
``w``. The order it gives a page is a fixed pseudo-random permutation of the candidates,
unrelated to what the user did: under ``--rerank-policy kuaishou`` (a re-rank after every
exposure) the next item shown is a candidate drawn without regard to the session, which is the
data an unbiased fit of "click given the item shown next" needs. No weights are learned.
Needs the ``onnx`` package (``pip install 'streamfeat[train]'``).

    python bench/loop_random_order.py random.onnx
    streamfeat simulate --ranking model:random.onnx --rerank-policy kuaishou \\
        --devices 300 --minutes 20 --speed 0 --seed 1 --workdir rcol
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from streamfeat.models.edgerec import input_specs

# one coefficient per candidate field (category, server_score, price_level, age_h)
W = (12.9898, 78233.0, 37.719, 4.1414)
K = 97.1313


def build() -> bytes:
    """The random-order model's bytes."""
    nodes: list[onnx.NodeProto] = []

    def op(kind: str, ins: list[str], out: str) -> str:
        nodes.append(helper.make_node(kind, ins, [out]))
        return out

    inits = [
        numpy_helper.from_array(np.array(W, np.float32).reshape(4, 1), "w"),
        numpy_helper.from_array(np.array(K, np.float32), "k"),
        numpy_helper.from_array(np.array([2], np.int64), "axis"),
    ]
    z = op("MatMul", ["candidates", "w"], "z")  # [1, C, 1]
    s = op("Mul", [op("Sin", [z], "sin"), "k"], "s")
    op("Squeeze", [op("Sub", [s, op("Floor", [s], "fl")], "frac"), "axis"], "scores")
    specs = input_specs()
    inputs = [helper.make_tensor_value_info(sp.name, onnx.TensorProto.FLOAT, list(sp.shape))
              for sp in specs]  # fmt: skip
    outputs = [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, [1, "C"])]
    graph = helper.make_graph(nodes, "random_order", inputs, outputs, initializer=inits)
    model = helper.make_model(graph, producer_name="streamfeat",
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 8
    fields: dict[str, object] = {}
    for sp in specs:
        fields[sp.name] = list(sp.fields)
        fields[f"{sp.name}.source"] = sp.source
    helper.set_model_props(model, {"streamfeat.fields": json.dumps(fields),
                                   "streamfeat.arch": "heuristic"})  # fmt: skip
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python bench/loop_random_order.py OUT.onnx", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.write_bytes(build())
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
