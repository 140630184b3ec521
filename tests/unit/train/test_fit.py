"""Training: on a generated dataset whose label depends on a known feature, the held-out AUC
passes 0.9; the ONNX export computes what PyTorch does (within 1e-4) and loads as a declared
model; the control trained on shuffled labels stays near 0.5; without PyTorch the command says
what to install."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

from streamfeat.models import load_model, parse_model_spec
from streamfeat.train import (
    FitOptions,
    check_export,
    evaluate,
    export,
    fit,
    model_table,
    shuffle_labels,
    split_by_device,
    synthetic_samples,
)

OPTS = FitOptions(epochs=3, batch=32, seed=0, threads=1)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return split_by_device(synthetic_samples(devices=50, pages=16, seed=7), 0.3, seed=0)


def test_learns_a_known_feature_and_exports_what_it_learned(data, tmp_path) -> None:  # type: ignore[no-untyped-def]
    train, held = data
    assert {s.device for s in train}.isdisjoint({s.device for s in held})
    model, history = fit(train, held, OPTS)
    assert len(history) == 3
    assert history[-1].auc > 0.9, history
    assert evaluate(model, held)[0] == pytest.approx(history[-1].auc)
    data_bytes = export(model)
    assert check_export(model, data_bytes, held, pages=50) < 1e-4
    path = tmp_path / "trained.onnx"
    path.write_bytes(data_bytes)
    # loads as a declared model, with the inputs of builtin:edgerec-small
    m = load_model(parse_model_spec("trained", model_table(path)))
    s = held[0]
    scores = m.run(dict(s.feeds))
    assert scores.shape == (len(s.labels),)
    assert float(np.abs(scores - _torch_scores(model, s)).max()) < 1e-4


def _torch_scores(model, s):  # type: ignore[no-untyped-def]
    import torch

    with torch.no_grad():
        t = {k: torch.from_numpy(v) for k, v in s.feeds.items()}
        return model(t["candidates"], t["exposures"], t["page_views"])[0].numpy()


def test_shuffled_labels_learn_nothing(data) -> None:  # type: ignore[no-untyped-def]
    train, held = data
    _, history = fit(shuffle_labels(train, seed=1), held, OPTS)
    assert abs(history[-1].auc - 0.5) < 0.08, history


def test_without_torch_the_command_says_what_to_install(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hide = (
        "import sys\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'torch':\n"
        "            raise ImportError('hidden: ' + name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "from streamfeat.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", hide, "train", "--db", str(tmp_path / "x.db"), "--out",
         str(tmp_path / "m.onnx")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert "pip install 'streamfeat[train]'" in lines[0]
    assert not (tmp_path / "m.onnx").exists()
