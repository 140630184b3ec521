"""ONNX export of a trained model and the check that the file computes what was trained."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from streamfeat.models.edgerec import forward, to_onnx
from streamfeat.train._fit import import_torch
from streamfeat.train._samples import Sample

__all__ = ["TOLERANCE", "check_export", "export"]

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
