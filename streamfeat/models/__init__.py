"""Model runtime: declared models loaded with onnxruntime and checked at load.

A model is declared (:class:`ModelSpec`: file, runtime, inputs with their source and
fields), loaded once with :func:`load_model`, which refuses a missing, corrupt or mismatched
file with a :class:`ModelError`, and run synchronously (:meth:`Model.run`). The EdgeRec-style
architecture that streamfeat ships and trains is :mod:`streamfeat.models.edgerec`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from streamfeat.models._errors import ModelError
from streamfeat.models._parse import parse_model_spec
from streamfeat.models._spec import InputSpec, ModelSpec

if TYPE_CHECKING:
    from streamfeat.models._runtime import Model, load_model

__all__ = ["InputSpec", "Model", "ModelError", "ModelSpec", "load_model", "parse_model_spec"]


def __getattr__(name: str) -> Any:
    # `Model` and `load_model` need numpy: imported when first asked for, so that reading a
    # tasks file (a replay, `tasks check`) does not import it (see models/_builtin.py)
    if name in ("Model", "load_model"):
        from streamfeat.models import _runtime

        return getattr(_runtime, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
