"""The shipped model's builder still runs end to end on the shared trainer: a small run writes a
model whose export was checked and which loads as builtin:edgerec-small's twin."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from streamfeat.gen.build_model import main
from streamfeat.models import ModelSpec, load_model
from streamfeat.models.edgerec import input_specs


def test_a_small_build_writes_a_checked_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "small.onnx"
    assert main(["--devices", "6", "--minutes", "40", "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "epoch 1/1: held-out AUC" in text
    assert "export check" in text
    model = load_model(ModelSpec("small", out, input_specs()))
    assert model.size_bytes == out.stat().st_size
