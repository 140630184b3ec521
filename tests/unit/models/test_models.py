"""Model loading: declared vs actual inputs, missing and corrupt files, dtypes; the ONNX export
computes the numpy reference; the shipped model loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from streamfeat.models import InputSpec, ModelError, ModelSpec, load_model, parse_model_spec
from streamfeat.models import edgerec as er


@pytest.fixture(scope="module")
def weights() -> er.Weights:
    return er.init_weights(np.random.default_rng(7), er.Dims(buckets=64, emb=4, hidden=8))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory, weights: er.Weights) -> Path:
    path = tmp_path_factory.mktemp("m") / "m.onnx"
    path.write_bytes(er.to_onnx(weights))
    return path


def _spec(path: Path, **changes: Any) -> ModelSpec:
    inputs = list(er.input_specs())
    for name, new in changes.items():
        inputs = [new if i.name == name else i for i in inputs]
    return ModelSpec(name="m1", path=path, inputs=tuple(i for i in inputs if i is not None))


def _rows(rng: np.random.Generator, n: int, ncols: int) -> np.ndarray:
    cat = rng.integers(-5, 2000, size=(n, 1))
    num = rng.normal(size=(n, ncols - 1)) * rng.choice([1.0, 100.0, 10_000.0], size=(1, ncols - 1))
    return np.concatenate([cat, num], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(5))
def test_onnx_equals_numpy_reference(model_file: Path, weights: er.Weights, seed: int) -> None:
    rng = np.random.default_rng(seed)
    c, e, d = (int(x) for x in rng.integers(1, 40, size=3))
    cand, exp, pv = _rows(rng, c, 4), _rows(rng, e, 11), _rows(rng, d, 13)
    model = load_model(_spec(model_file))
    got = model.run({"candidates": cand[None], "exposures": exp[None], "page_views": pv[None]})
    want = er.forward(weights, cand, exp, pv)
    assert got.shape == (c,)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_reference_is_not_trivially_equal_to_other_weights(model_file: Path) -> None:
    # the control: different weights give different scores, so the equality above means something
    rng = np.random.default_rng(0)
    cand, exp, pv = _rows(rng, 10, 4), _rows(rng, 5, 11), _rows(rng, 3, 13)
    other = er.init_weights(np.random.default_rng(99), er.Dims(buckets=64, emb=4, hidden=8))
    got = load_model(_spec(model_file)).run(
        {"candidates": cand[None], "exposures": exp[None], "page_views": pv[None]}
    )
    assert np.abs(got - er.forward(other, cand, exp, pv)).max() > 1e-3


def test_missing_file_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_model(_spec(tmp_path / "nope.onnx"))
    assert info.value.model == "m1"
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize("data", [b"", b"not an onnx model at all", b"\x08\x07" * 50])
def test_corrupt_file_refused(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "bad.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_model(_spec(path))
    assert info.value.model == "m1"
    assert len(str(info.value).splitlines()) == 1


def test_truncated_file_refused(tmp_path: Path, model_file: Path) -> None:
    path = tmp_path / "cut.onnx"
    path.write_bytes(model_file.read_bytes()[:5000])
    with pytest.raises(ModelError):
        load_model(_spec(path))


def test_declared_input_not_in_file(model_file: Path) -> None:
    spec = _spec(model_file)
    extra = InputSpec("history", "exposures", ("clicked",), (1, "E", 1))
    with pytest.raises(ModelError) as info:
        load_model(ModelSpec("m1", model_file, (*spec.inputs, extra)))
    assert info.value.input == "history"


def test_file_input_not_declared(model_file: Path) -> None:
    with pytest.raises(ModelError) as info:
        load_model(_spec(model_file, page_views=None))
    assert info.value.input == "page_views"


def _tiny_model(path: Path, cand_type: int) -> Path:
    """A valid ONNX model with the declared input names whose ``candidates`` has ``cand_type``."""
    import onnx
    from onnx import TensorProto, helper

    inputs = [
        helper.make_tensor_value_info("candidates", cand_type, [1, "C", 4]),
        helper.make_tensor_value_info("exposures", TensorProto.FLOAT, [1, "E", 11]),
        helper.make_tensor_value_info("page_views", TensorProto.FLOAT, [1, "D", 13]),
    ]
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    nodes = [
        helper.make_node("Cast", ["candidates"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["f", "axes"], ["scores"], keepdims=0),
    ]
    out = [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, "C"])]
    graph = helper.make_graph(nodes, "tiny", inputs, out, initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.write_bytes(model.SerializeToString())
    return path


def test_right_dtype_tiny_model_loads(tmp_path: Path) -> None:
    # the control for the next test: the same tiny model with float32 loads and runs
    import onnx

    m = load_model(_spec(_tiny_model(tmp_path / "f.onnx", onnx.TensorProto.FLOAT)))
    out = m.run({"candidates": np.ones((1, 3, 4), np.float32),
                 "exposures": np.zeros((1, 1, 11), np.float32),
                 "page_views": np.zeros((1, 1, 13), np.float32)})  # fmt: skip
    assert out.tolist() == [4.0, 4.0, 4.0]


def test_wrong_dtype(tmp_path: Path) -> None:
    import onnx

    path = _tiny_model(tmp_path / "i.onnx", onnx.TensorProto.INT64)
    with pytest.raises(ModelError) as info:
        load_model(_spec(path))
    assert info.value.input == "candidates"
    assert "dtype" in str(info.value)
    assert "int64" in str(info.value)


def test_wrong_dtype_declared() -> None:
    table = {"file": "m.onnx", "inputs": {"x": {"source": "candidates", "fields": ["a"],
                                                 "shape": [1, "C", 1], "dtype": "int8"}}}  # fmt: skip
    with pytest.raises(ModelError) as info:
        parse_model_spec("m2", table)
    assert info.value.input == "x"


@pytest.mark.parametrize(
    ("shape", "word"),
    [((1, "C"), "rank"), ((1, "C", 5), "axis 2"), ((2, "C", 4), "axis 0"), ((1, 50, 4), "axis 1")],
)
def test_shape_differs(model_file: Path, shape: tuple[Any, ...], word: str) -> None:
    fields = ("category", "server_score", "price_level", "age_h", "x")[
        : shape[-1] if isinstance(shape[-1], int) and len(shape) == 3 else 4
    ]
    bad = InputSpec("candidates", "candidates", fields, shape)
    with pytest.raises(ModelError) as info:
        load_model(_spec(model_file, candidates=bad))
    assert info.value.input == "candidates"
    assert word in str(info.value)


def test_fields_differ_from_file_record(model_file: Path) -> None:
    swapped = ("server_score", "category", "price_level", "age_h")
    bad = InputSpec("candidates", "candidates", swapped, (1, "C", 4))
    with pytest.raises(ModelError) as info:
        load_model(_spec(model_file, candidates=bad))
    assert info.value.input == "candidates"
    assert "fields" in str(info.value)


def test_output_missing(model_file: Path) -> None:
    spec = _spec(model_file)
    with pytest.raises(ModelError):
        load_model(ModelSpec("m1", model_file, spec.inputs, output="logits"))


def test_parse_spec_refuses_unknown_keys_and_runtimes() -> None:
    with pytest.raises(ModelError):
        parse_model_spec("a", {"file": "x.onnx", "colour": 1})
    with pytest.raises(ModelError) as info:
        parse_model_spec("a", {"file": "x.onnx", "runtime": "mnn"})
    assert "MNN is not offered" in str(info.value)
    with pytest.raises(ModelError):
        parse_model_spec("a", {"file": "builtin:nope"})


def test_parse_spec_relative_path_and_version(tmp_path: Path) -> None:
    table = {"file": "m.onnx", "version": "v3", "inputs": {
        "candidates": {"source": "candidates", "fields": list(er.CANDIDATE_FIELDS), "shape": [1, "C", 4]}}}  # fmt: skip
    spec = parse_model_spec("a", table, base=tmp_path)
    assert spec.path == tmp_path / "m.onnx"
    assert spec.version == "v3"
    assert spec.inputs[0].fields == er.CANDIDATE_FIELDS


def test_version_from_file_bytes(model_file: Path) -> None:
    m = load_model(_spec(model_file))
    assert m.version.startswith("m1@")
    assert len(m.version) == len("m1@") + 12
    assert m.size_bytes == model_file.stat().st_size


def test_shipped_model_loads_and_is_small() -> None:
    spec = parse_model_spec("edgerec", {"file": "builtin:edgerec-small"})
    model = load_model(spec)
    assert model.size_bytes < 3 * 1024 * 1024
    rng = np.random.default_rng(1)
    out = model.run({"candidates": _rows(rng, 50, 4)[None], "exposures": _rows(rng, 51, 11)[None],
                     "page_views": _rows(rng, 21, 13)[None]})  # fmt: skip
    assert out.shape == (50,)
    assert np.all(np.isfinite(out))
    assert np.all((out >= 0) & (out <= 1))


def test_ort_session_of_shipped_model_has_declared_inputs() -> None:
    sess = ort.InferenceSession(str(er.DEFAULT_MODEL_PATH), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["candidates", "exposures", "page_views"]


def test_same_file_and_declaration_load_once(tmp_path: Path, model_file: Path) -> None:
    a = load_model(_spec(model_file))
    assert load_model(_spec(model_file)) is a
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(model_file.read_bytes())
    assert load_model(_spec(copy)) is not a  # another declaration (its path)
    copy.write_bytes(b"garbage")  # the same path with other bytes is loaded (and refused) again
    with pytest.raises(ModelError):
        load_model(_spec(copy))
