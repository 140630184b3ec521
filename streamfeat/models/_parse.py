"""Parsing a ``[models.NAME]`` table into a :class:`~streamfeat.models.ModelSpec`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from streamfeat.models._builtin import builtin_spec
from streamfeat.models._errors import ModelError
from streamfeat.models._spec import DTYPES, RUNTIMES, SOURCES, InputSpec, ModelSpec

__all__ = ["parse_model_spec"]

_KEYS = frozenset(("file", "runtime", "version", "output", "inputs"))
_INPUT_KEYS = frozenset(("source", "fields", "shape", "dtype"))


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
