"""What a model declares: its file, runtime and inputs (the ``[models.NAME]`` table).

A declaration says, for every input of the model, where its rows come from (``source``) and
which named field fills each column (``fields``, in column order), plus the dtype and shape
the file must have. :func:`parse_model_spec` turns a TOML table into a :class:`ModelSpec`;
the runtime (:mod:`streamfeat.models._runtime`) checks the file against it at load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfeat.models._errors import ModelError

__all__ = ["DTYPES", "RUNTIMES", "SOURCES", "InputSpec", "ModelSpec", "parse_model_spec"]

#: Where an input's rows come from: the page's unseen candidates, the exposure sequence
#: (e1-e7 per exposed item, with the item's own features) and the page-view sequence (d1-d12).
SOURCES = ("candidates", "exposures", "page_views")
#: The runtimes a model may name. MNN is not offered: see docs/ranking.md.
RUNTIMES = ("onnxruntime",)
#: Input dtypes a declaration may name (the feature builders produce float32).
DTYPES = ("float32",)
_KEYS = frozenset(("file", "runtime", "version", "output", "inputs"))
_INPUT_KEYS = frozenset(("source", "fields", "shape", "dtype"))


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


def _str_list(model: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        msg = f"`{key}` must be a non-empty list of strings, got {value!r}"
        raise ModelError(model, msg, key=key)
    if len(set(value)) != len(value):
        msg = f"`{key}` names a field twice: {value!r}"
        raise ModelError(model, msg, key=key)
    return tuple(value)


def _input(model: str, name: str, table: Any) -> InputSpec:
    key = f"models.{model}.inputs.{name}"
    if not isinstance(table, Mapping):
        msg = f"`{key}` must be a table, got {table!r}"
        raise ModelError(model, msg, input=name, key=key)
    unknown = sorted(set(table) - _INPUT_KEYS)
    if unknown:
        msg = f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_INPUT_KEYS))})"
        raise ModelError(model, msg, input=name, key=key)
    source = table.get("source")
    if source not in SOURCES:
        msg = f"`source` must be one of {', '.join(SOURCES)}, got {source!r}"
        raise ModelError(model, msg, input=name, key=key)
    fields = _str_list(model, f"{key}.fields", table.get("fields"))
    shape_raw = table.get("shape")
    if (
        not isinstance(shape_raw, list)
        or not shape_raw
        or not all(
            (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or isinstance(d, str)
            for d in shape_raw
        )
    ):
        msg = f"`shape` must be a list of sizes (integers >= 0) or axis names, got {shape_raw!r}"
        raise ModelError(model, msg, input=name, key=key)
    shape = tuple(shape_raw)
    last = shape[-1]
    if isinstance(last, int) and last != len(fields):
        msg = f"`shape` ends with {last} columns but `fields` names {len(fields)}"
        raise ModelError(model, msg, input=name, key=key)
    dtype = table.get("dtype", "float32")
    if dtype not in DTYPES:
        msg = f"`dtype` must be one of {', '.join(DTYPES)}, got {dtype!r}"
        raise ModelError(model, msg, input=name, key=key)
    return InputSpec(name=name, source=source, fields=fields, shape=shape, dtype=dtype)


def parse_model_spec(name: str, table: Mapping[str, Any], *, base: Path | None = None) -> ModelSpec:
    """Return the :class:`ModelSpec` of one ``[models.NAME]`` table.

    Args:
        name: the model's name.
        table: the table's contents.
        base: the folder a relative ``file`` is resolved against (the tasks file's folder).
            ``file = "builtin:edgerec-small"`` names the model shipped with streamfeat.

    Raises:
        ModelError: naming the key and what was wrong; nothing is loaded.
    """
    key = f"models.{name}"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        msg = f"unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})"
        raise ModelError(name, msg, key=key)
    file = table.get("file")
    if not isinstance(file, str) or not file:
        msg = f"`file` must be a path or `builtin:NAME`, got {file!r}"
        raise ModelError(name, msg, key=f"{key}.file")
    runtime = table.get("runtime", "onnxruntime")
    if runtime not in RUNTIMES:
        msg = f"`runtime` must be one of {', '.join(RUNTIMES)}, got {runtime!r}" + (
            " (MNN is not offered: see docs/ranking.md)" if runtime == "mnn" else ""
        )
        raise ModelError(name, msg, key=f"{key}.runtime")
    version = table.get("version")
    if version is not None and (not isinstance(version, str) or not version):
        msg = f"`version` must be a non-empty string, got {version!r}"
        raise ModelError(name, msg, key=f"{key}.version")
    output = table.get("output", "scores")
    if not isinstance(output, str) or not output:
        msg = f"`output` must be a non-empty string, got {output!r}"
        raise ModelError(name, msg, key=f"{key}.output")
    if file.startswith("builtin:"):
        from streamfeat.models.edgerec import builtin_spec

        spec = builtin_spec(file.removeprefix("builtin:"), name=name)
        if "inputs" not in table:
            return ModelSpec(name, spec.path, spec.inputs, runtime, output, version)
        path = spec.path
    else:
        path = Path(file)
        if not path.is_absolute() and base is not None:
            path = base / path
    inputs_raw = table.get("inputs")
    if not isinstance(inputs_raw, Mapping) or not inputs_raw:
        msg = "`inputs` must be a table of input tables (`[models.NAME.inputs.INPUT]`)"
        raise ModelError(name, msg, key=f"{key}.inputs")
    inputs = tuple(_input(name, n, t) for n, t in inputs_raw.items())
    return ModelSpec(name, path, inputs, runtime, output, version)
