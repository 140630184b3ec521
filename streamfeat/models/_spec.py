"""What a model declares: its file, runtime and inputs (the ``[models.NAME]`` table).

A declaration says, for every input of the model, where its rows come from (``source``) and
which named field fills each column (``fields``, in column order), plus the dtype and shape
the file must have. :func:`streamfeat.models.parse_model_spec` turns a TOML table into a
:class:`ModelSpec`; the runtime (:mod:`streamfeat.models._runtime`) checks the file against
it at load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["DTYPES", "RUNTIMES", "SOURCES", "InputSpec", "ModelSpec"]

#: Where an input's rows come from: the page's unseen candidates, the exposure sequence
#: (e1-e7 per exposed item, with the item's own features) and the page-view sequence (d1-d12).
SOURCES = ("candidates", "exposures", "page_views")
#: The runtimes a model may name. MNN is not offered: see docs/ranking.md.
RUNTIMES = ("onnxruntime",)
#: Input dtypes a declaration may name (the feature builders produce float32).
DTYPES = ("float32",)


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One declared model input.

    Attributes:
        name: the input's name in the model file.
        source: one of :data:`SOURCES`.
        fields: the field filling each column of the last axis, in order.
        shape: the expected shape; an ``int`` is a fixed size, a ``str`` a dynamic axis
            (any name: only its being dynamic is checked).
        dtype: the element type (``float32``).
    """

    name: str
    source: str
    fields: tuple[str, ...]
    shape: tuple[int | str, ...]
    dtype: str = "float32"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """One declared model.

    Attributes:
        name: the model's name (``[models.NAME]``).
        path: the model file.
        runtime: one of :data:`RUNTIMES`.
        inputs: the declared inputs.
        output: the output holding one score per candidate, shape ``[1, C]``.
        version: the version reported with every re-rank; default: derived from the file's
            bytes at load (``NAME@sha256[:12]``).
    """

    name: str
    path: Path
    inputs: tuple[InputSpec, ...]
    runtime: str = "onnxruntime"
    output: str = "scores"
    version: str | None = None
