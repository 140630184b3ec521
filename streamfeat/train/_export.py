"""ONNX export of a trained model and the check that the file computes what was trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streamfeat.models.edgerec import forward, to_onnx
from streamfeat.train._fit import import_torch
from streamfeat.train._samples import Sample

__all__ = ["TOLERANCE", "check_export", "export", "shuffle_weights"]

#: the largest difference allowed between the exported model's scores and PyTorch's
TOLERANCE = 1e-4


def export(model: Any, *, doc: str = "", version: str = "trained") -> bytes:
    """Return the ONNX file (bytes) of a trained module (same inputs and output as
    ``builtin:edgerec-small``)."""
    from streamfeat.models.edgerec_torch import to_weights

    return to_onnx(to_weights(model), producer_version=version, doc=doc)


def check_export(model: Any, data: bytes, samples: Sequence[Sample], pages: int = 50) -> float:
    """Return the largest ``|PyTorch - ONNX|`` and ``|PyTorch - numpy|`` score difference
    over the first ``pages`` of ``samples``, each page run alone (batch axis 1), with the
    ONNX file in onnxruntime as a device runs it."""
    import onnxruntime as ort

    from streamfeat.models.edgerec_torch import to_weights

    torch = import_torch()
    weights = to_weights(model)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    worst = 0.0
    model.eval()
    with torch.no_grad():
        for s in samples[:pages]:
            t = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in s.feeds.items()}
            ref = model(t["candidates"], t["exposures"], t["page_views"])[0].numpy()
            (onnx_out,) = sess.run(["scores"], dict(s.feeds))
            ours = forward(weights, s.feeds["candidates"][0], s.feeds["exposures"][0],
                           s.feeds["page_views"][0])  # fmt: skip
            worst = max(worst, float(np.abs(ref - onnx_out[0]).max()),
                        float(np.abs(ref - ours).max()))  # fmt: skip
    return worst


def shuffle_weights(data: bytes, seed: int = 0) -> bytes:
    """Return the ONNX model ``data`` with the values of each float weight tensor permuted at
    random: the same architecture and the same scale of weights, nothing learned. The control
    that cannot learn: compared on the served feed it must show no significant uplift.

    Integer constants (axes, shapes), single numbers and the outcome features' constants
    (``outcome.params``: a recency and two thresholds, not learned) are left as they are.

    Raises:
        ImportError: with the install hint, if the ``onnx`` package is missing.
    """
    try:
        import onnx
    except ImportError as exc:
        msg = "shuffling a model needs the onnx package: pip install 'streamfeat[train]'"
        raise ImportError(msg) from exc
    model = onnx.load_from_string(data)
    rng = np.random.default_rng(seed)
    for init in model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        if arr.dtype != np.float32 or arr.size < 2 or init.name == "outcome.params":
            continue
        flat = arr.reshape(-1).copy()
        rng.shuffle(flat)
        init.CopyFrom(onnx.numpy_helper.from_array(flat.reshape(arr.shape), init.name))
    model.doc_string = f"{model.doc_string} (control: weights shuffled, seed {seed})".strip()
    return bytes(model.SerializeToString())
