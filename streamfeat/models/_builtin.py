"""The models shipped with streamfeat and their declared inputs, without numpy.

A tasks file that declares ``file = "builtin:edgerec-small"`` (the default tasks file does)
is parsed by every command that reads it, most of which run no model: a replay, ``tasks
check``, the agent before its first re-rank. What the declaration needs lives here, so that
reading it does not import numpy (:mod:`streamfeat.models.edgerec`, which builds and runs the
model, does); ``tests/unit/models/test_models_lazy.py`` checks that a replay imports neither
numpy nor onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

from streamfeat.models._fields import CANDIDATE_FIELDS, EXPOSURE_FIELDS, PAGE_VIEW_FIELDS
from streamfeat.models._spec import InputSpec, ModelSpec

__all__ = ["BUILTIN", "DEFAULT_MODEL_PATH", "builtin_spec", "input_specs"]

#: The model shipped with streamfeat (``file = "builtin:edgerec-small"``).
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "data" / "edgerec-small.onnx"
BUILTIN = {"edgerec-small": DEFAULT_MODEL_PATH}


def input_specs() -> tuple[InputSpec, ...]:
    """Return the declared inputs of every model built by :func:`streamfeat.models.edgerec.to_onnx`."""
    return (
        InputSpec("candidates", "candidates", CANDIDATE_FIELDS, (1, "C", len(CANDIDATE_FIELDS))),
        InputSpec("exposures", "exposures", EXPOSURE_FIELDS, (1, "E", len(EXPOSURE_FIELDS))),
        InputSpec("page_views", "page_views", PAGE_VIEW_FIELDS, (1, "D", len(PAGE_VIEW_FIELDS))),
    )


def builtin_spec(which: str, *, name: str = "edgerec") -> ModelSpec:
    """Return the declaration of a model shipped with streamfeat.

    Raises:
        ModelError: if there is no such built-in model.
    """
    path = BUILTIN.get(which)
    if path is None:
        from streamfeat.models._errors import ModelError

        msg = f"no built-in model {which!r} (built-in: {', '.join(sorted(BUILTIN))})"
        raise ModelError(name, msg)
    return ModelSpec(name=name, path=path, inputs=input_specs())
