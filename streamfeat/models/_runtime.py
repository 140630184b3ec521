"""Loading a declared model with onnxruntime and checking it against its declaration.

Everything is checked when the model loads, never when it first runs: the file exists and
parses as ONNX, its inputs are exactly the declared ones (names, dtypes, ranks, fixed sizes,
dynamic axes), the declared output exists, and, when the file records which fields fill its
inputs (metadata ``streamfeat.fields``, written by :func:`streamfeat.models.edgerec.to_onnx`),
the declared fields are those. Each refusal is one :class:`ModelError` naming the model, the
input and what differs.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from streamfeat.models._errors import ModelError
from streamfeat.models._spec import InputSpec, ModelSpec

__all__ = ["Model", "load_model"]

_ORT_DTYPES = {"tensor(float)": "float32", "tensor(double)": "float64",
               "tensor(int64)": "int64", "tensor(int32)": "int32",
               "tensor(float16)": "float16", "tensor(bool)": "bool"}  # fmt: skip
FloatArray = npt.NDArray[np.float32]


class Model:
    """A loaded, checked model; :meth:`run` is synchronous and thread-safe (onnxruntime
    sessions may be run from several threads).

    Attributes:
        spec: the declaration it was checked against.
        version: ``spec.version`` or ``NAME@`` the first 12 hex digits of the file's sha256.
        size_bytes: the file's size.
        fields: the file's own record of its input fields (empty when it has none).
    """

    def __init__(
        self, spec: ModelSpec, session: Any, data: bytes, fields: Mapping[str, Any]
    ) -> None:
        self.spec = spec
        self._session = session
        self.size_bytes = len(data)
        digest = hashlib.sha256(data).hexdigest()[:12]
        self.version = spec.version or f"{spec.name}@{digest}"
        self.fields = dict(fields)

    def run(self, feeds: Mapping[str, FloatArray]) -> FloatArray:
        """Run the model and return its score output, shape ``[C]`` (batch axis dropped).

        Args:
            feeds: one array per declared input.

        Raises:
            ValueError: if a feed is missing or the runtime refuses it (shape); the model is
                unchanged and may be run again.
        """
        try:
            (out,) = self._session.run([self.spec.output], dict(feeds))
        except Exception as exc:  # onnxruntime raises its own untyped errors: translate here
            msg = f"model {self.spec.name!r} refused its inputs: {_first_line(exc)}"
            raise ValueError(msg) from exc
        return np.asarray(out, dtype=np.float32).reshape(-1)

    def __repr__(self) -> str:
        return f"Model({self.spec.name!r}, version={self.version!r}, size_bytes={self.size_bytes})"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _session(spec: ModelSpec, data: bytes) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    # one thread each: a phone's re-rank runs on one core, and a shared machine stays fair
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only: onnxruntime never writes to our logs
    try:
        return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a corrupt file: refuse with onnxruntime's first line
        msg = f"can't load {spec.path} as an ONNX model: {_first_line(exc)}"
        raise ModelError(spec.name, msg) from exc


def _check_input(spec: ModelSpec, decl: InputSpec, actual: Any) -> None:
    dtype = _ORT_DTYPES.get(actual.type, actual.type)
    if dtype != decl.dtype:
        msg = f"dtype differs: declared {decl.dtype}, the file has {dtype}"
        raise ModelError(spec.name, msg, input=decl.name)
    shape = list(actual.shape)
    if len(shape) != len(decl.shape):
        msg = f"rank differs: declared shape {list(decl.shape)}, the file has {shape}"
        raise ModelError(spec.name, msg, input=decl.name)
    for axis, (want, got) in enumerate(zip(decl.shape, shape, strict=True)):
        fixed = isinstance(got, int) and got >= 0
        if isinstance(want, int) and (not fixed or got != want):
            msg = f"axis {axis} differs: declared {want}, the file has {got!r} ({shape})"
            raise ModelError(spec.name, msg, input=decl.name)
        if isinstance(want, str) and fixed:
            msg = f"axis {axis} differs: declared dynamic {want!r}, the file fixes it to {got}"
            raise ModelError(spec.name, msg, input=decl.name)


#: Models loaded in this process, by declaration and file digest: a tasks file parsed again
#: (a fleet of agents in one process, a replay after a simulation) shares the checked session.
_LOADED: OrderedDict[tuple[ModelSpec, str], Model] = OrderedDict()
_LOADED_MAX = 16


def load_model(spec: ModelSpec) -> Model:
    """Load and check one declared model (once per process for the same declaration and file
    bytes: later calls return the same :class:`Model`, whose session is thread-safe).

    Raises:
        ModelError: the file is missing, unreadable or not ONNX, or differs from the
            declaration; the message names the model, the input and what differs.
    """
    path = Path(spec.path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        msg = f"file {path} does not exist"
        raise ModelError(spec.name, msg) from None
    except OSError as exc:
        msg = f"can't read {path}: {exc.strerror or exc}"
        raise ModelError(spec.name, msg) from exc
    digest = hashlib.sha256(data).hexdigest()
    cached = _LOADED.get((spec, digest))
    if cached is not None:
        _LOADED.move_to_end((spec, digest))
        return cached
    model = _check(spec, data)
    _LOADED[(spec, digest)] = model
    while len(_LOADED) > _LOADED_MAX:
        _LOADED.popitem(last=False)
    return model


def _check(spec: ModelSpec, data: bytes) -> Model:
    session = _session(spec, data)
    actual = {i.name: i for i in session.get_inputs()}
    declared = {i.name: i for i in spec.inputs}
    for name in declared:
        if name not in actual:
            msg = f"declared but not in the file (the file's inputs: {', '.join(sorted(actual))})"
            raise ModelError(spec.name, msg, input=name)
    for name in actual:
        if name not in declared:
            msg = "in the file but not declared"
            raise ModelError(spec.name, msg, input=name)
    for decl in spec.inputs:
        _check_input(spec, decl, actual[decl.name])
    outputs = [o.name for o in session.get_outputs()]
    if spec.output not in outputs:
        msg = f"output {spec.output!r} is not in the file (its outputs: {', '.join(outputs)})"
        raise ModelError(spec.name, msg)
    meta = session.get_modelmeta().custom_metadata_map
    fields: dict[str, Any] = {}
    if "streamfeat.fields" in meta:
        try:
            fields = dict(json.loads(meta["streamfeat.fields"]))
        except (ValueError, TypeError) as exc:
            msg = f"the file's metadata `streamfeat.fields` is not a JSON object: {exc}"
            raise ModelError(spec.name, msg) from exc
        for decl in spec.inputs:
            own = fields.get(decl.name)
            if own is not None and tuple(own) != decl.fields:
                msg = f"fields differ: declared {list(decl.fields)}, the file was built for {own}"
                raise ModelError(spec.name, msg, input=decl.name)
            own_src = fields.get(f"{decl.name}.source")
            if own_src is not None and own_src != decl.source:
                msg = (
                    f"source differs: declared {decl.source!r}, the file was built for {own_src!r}"
                )
                raise ModelError(spec.name, msg, input=decl.name)
    return Model(spec, session, data, fields)
