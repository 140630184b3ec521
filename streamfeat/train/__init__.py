"""Training re-rank models from what devices uploaded (``streamfeat train``).

Layering: an app (like ``gen/``): it reads the endpoint's stored records through the records
reader (:func:`streamfeat.endpoint.iter_records`), and trains with PyTorch, an optional extra
(``pip install 'streamfeat[train]'``) imported only when training starts (importing this
package does not load it). Sample extraction, the device split and the metrics need no
PyTorch.

* :func:`read_samples`: one :class:`Sample` per re-rank task record that carries its inputs,
  labelled from the device's ``exposure`` records (see :mod:`streamfeat.train._samples`);
* :func:`split_by_device`: train and held-out sets, no device on both sides;
* :func:`fit`, :func:`evaluate`, :func:`shuffle_labels` (the control that cannot learn);
* :func:`input_norms`: the model's input scaling constants, from the training samples;
* :func:`export`, :func:`check_export`: the ONNX file and its check against PyTorch;
* :func:`model_table`: the ``[models.NAME]`` table that loads a trained file;
* :func:`synthetic_samples`: a generated dataset whose label depends on a known feature.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamfeat.models.edgerec import input_specs
from streamfeat.train._export import check_export, export, shuffle_weights
from streamfeat.train._fit import EpochResult, FitOptions, evaluate, fit, shuffle_labels
from streamfeat.train._metrics import auc, log_loss
from streamfeat.train._norms import input_norms
from streamfeat.train._samples import Sample, SampleStats, read_samples, split_by_device
from streamfeat.train._synthetic import synthetic_samples

__all__ = [
    "EpochResult",
    "FitOptions",
    "Sample",
    "SampleStats",
    "auc",
    "check_export",
    "evaluate",
    "export",
    "fit",
    "input_norms",
    "log_loss",
    "model_table",
    "read_samples",
    "shuffle_labels",
    "shuffle_weights",
    "split_by_device",
    "synthetic_samples",
]


def model_table(path: str | Path) -> dict[str, Any]:
    """Return the ``[models.NAME]`` table (as a dict) that loads a trained file: its path and
    the inputs of ``builtin:edgerec-small``."""
    return {
        "file": str(path),
        "inputs": {
            s.name: {"source": s.source, "fields": list(s.fields), "shape": list(s.shape)}
            for s in input_specs()
        },
    }
