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


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_command_on_known_samples(shuffled, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import json

    from streamfeat.cli import main
    from streamfeat.train import SampleStats
    from streamfeat.train import _cli as train_cli

    samples = synthetic_samples(devices=50, pages=16, seed=7)
    monkeypatch.setattr(train_cli, "_source", lambda args: "db")
    monkeypatch.setattr(train_cli, "read_samples", lambda *a, **k: (samples, SampleStats()))
    seen: dict[str, object] = {}
    real_fit = train_cli.fit

    def spy(train, held, *a, **k):  # type: ignore[no-untyped-def]
        seen["held"] = held
        return real_fit(train, held, *a, **k)

    monkeypatch.setattr(train_cli, "fit", spy)
    out = tmp_path / "m.onnx"
    argv = ["train", "--db", "x.db", "--out", str(out), "--holdout", "0.3", "--batch", "32",
            "--json", *(["--shuffle-labels"] if shuffled else [])]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["shuffled_labels"] is shuffled
    assert summary["export_max_diff"] < 1e-4
    truth = {id(s.feeds["candidates"]): s.labels for s in samples}
    assert all((h.labels == truth[id(h.feeds["candidates"])]).all() for h in seen["held"])  # type: ignore[attr-defined]
    if shuffled:  # trained on shuffled labels, scored against the true held-out labels
        assert abs(summary["auc"] - 0.5) < 0.08
    else:
        assert summary["auc"] > 0.9
    assert out.stat().st_size == summary["bytes"]


def test_an_unwritable_out_is_one_line(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    from streamfeat.cli import main
    from streamfeat.train import SampleStats
    from streamfeat.train import _cli as train_cli

    samples = synthetic_samples(devices=20, pages=4, seed=3)
    monkeypatch.setattr(train_cli, "_source", lambda args: "db")
    monkeypatch.setattr(train_cli, "read_samples", lambda *a, **k: (samples, SampleStats()))
    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as exc:
        main(["train", "--db", "x.db", "--out", str(tmp_path / "f" / "m.onnx"), "--epochs", "1",
              "--holdout", "0.4"])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "can't write" in err[0]


@pytest.mark.parametrize(("flag", "value"), [("--rows", "-1"), ("--ema", "1"), ("--ema", "-0.5")])
def test_a_bad_rows_or_ema_is_one_line(flag, value, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from streamfeat.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["train", "--db", str(tmp_path / "x.db"), "--out", str(tmp_path / "m.onnx"),
              flag, value])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{flag} must be" in err[0]


def test_position_bias_loss_against_a_plain_reference() -> None:
    """With a position bias the loss is the log loss of sigmoid(logit) * sigmoid(bias[row])
    (rows past the table share its last logit); without one, the plain log loss."""
    import math

    import torch

    from streamfeat.train._fit import POSITIONS, _loss

    rng = np.random.default_rng(3)
    cols = POSITIONS + 4
    logits = torch.tensor(rng.normal(0, 2, (3, cols)), dtype=torch.float32)
    labels = torch.tensor(rng.integers(0, 2, (3, cols)), dtype=torch.float32)
    bias = torch.tensor(rng.normal(0, 1, POSITIONS), dtype=torch.float32)

    def sig(x: float) -> float:
        return 1.0 / (1.0 + math.exp(-x))

    got = _loss(torch, logits, bias, labels).numpy()
    plain = _loss(torch, logits, None, labels).numpy()
    for i in range(3):
        for j in range(cols):
            y, z = float(labels[i, j]), float(logits[i, j])
            p = sig(z) * sig(float(bias[min(j, POSITIONS - 1)]))
            want = -(y * math.log(p) + (1 - y) * math.log(1 - p))
            assert got[i, j] == pytest.approx(want, rel=1e-4, abs=1e-5)
            q = sig(z)
            assert plain[i, j] == pytest.approx(-(y * math.log(q) + (1 - y) * math.log(1 - q)),
                                                rel=1e-4, abs=1e-5)  # fmt: skip


def test_rows_trains_on_the_first_rows_only(data) -> None:  # type: ignore[no-untyped-def]
    """With ``rows = 2`` the labels past row 1 change nothing: the same weights whatever they
    are; with every row they do."""
    import torch

    from streamfeat.train import Sample

    train, _ = data
    train = train[:40]
    flipped = [Sample(s.device, s.feeds, np.concatenate([s.labels[:2], 1.0 - s.labels[2:]]))
               for s in train]  # fmt: skip
    opts = FitOptions(epochs=1, batch=8, seed=0, threads=1, rows=2)
    a, _ = fit(train, [], opts)
    b, _ = fit(flipped, [], opts)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name
    every = FitOptions(epochs=1, batch=8, seed=0, threads=1)
    c, _ = fit(train, [], every)
    d, _ = fit(flipped, [], every)
    assert not torch.equal(c.state_dict()["head1.weight"], d.state_dict()["head1.weight"])


def test_ema_exports_the_average(data) -> None:  # type: ignore[no-untyped-def]
    """One step per epoch (the whole set in one batch): with ``ema = d`` the exported weights
    after two steps are ``d * (d * w0 + (1 - d) * w1) + (1 - d) * w2``, ``w0``, ``w1``, ``w2``
    the plain weights before training and after one and two steps; the held-out scores are
    those of the model returned."""
    import torch

    train, held = data
    train = train[:30]

    def opts(epochs: int, ema: float = 0.0) -> FitOptions:
        return FitOptions(epochs=epochs, batch=len(train), seed=0, threads=1, ema=ema)

    w0 = fit(train, [], opts(0))[0].state_dict()
    w1 = fit(train, held, opts(1))[0].state_dict()
    w2 = fit(train, held, opts(2))[0].state_dict()
    avg, hist = fit(train, held, opts(2, ema=0.6))
    got = avg.state_dict()
    assert not torch.allclose(w1["head1.weight"], w2["head1.weight"])
    for name, x in got.items():
        want = 0.6 * (0.6 * w0[name] + 0.4 * w1[name]) + 0.4 * w2[name]
        assert torch.allclose(x, want, atol=1e-5), name
    assert evaluate(avg, held)[0] == pytest.approx(hist[-1].auc)


def test_shuffle_weights_permutes_each_weight_tensor_and_nothing_else() -> None:
    """The control model: every float tensor holds the same values in another order; integer
    constants and single numbers are untouched; the file still loads and scores."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from streamfeat.models.edgerec import DEFAULT_MODEL_PATH
    from streamfeat.train import shuffle_weights

    data = DEFAULT_MODEL_PATH.read_bytes()
    out = shuffle_weights(data, seed=3)
    before = {
        i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(data).graph.initializer
    }
    after = {i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(out).graph.initializer}
    assert before.keys() == after.keys()
    moved = 0
    for name, a in before.items():
        b = after[name]
        assert a.shape == b.shape
        assert a.dtype == b.dtype
        if a.dtype == np.float32 and a.size > 1:
            np.testing.assert_array_equal(np.sort(a.reshape(-1)), np.sort(b.reshape(-1)))
            moved += int(not np.array_equal(a, b))
        else:
            np.testing.assert_array_equal(a, b)
    assert moved >= 10
    assert shuffle_weights(data, seed=3) == out  # seeded
    # a trained model's outcome constants (a recency and two thresholds) stay as they are
    import torch

    from streamfeat.models.edgerec import OUTCOME_DEFAULTS, Dims
    from streamfeat.models.edgerec_torch import EdgeRecModule
    from streamfeat.train import export

    trained = export(EdgeRecModule(Dims(buckets=16, emb=2, hidden=4, match=True, outcome=True)))
    shuffled = {i.name: numpy_helper.to_array(i)
                for i in onnx.load_from_string(shuffle_weights(trained)).graph.initializer}  # fmt: skip
    np.testing.assert_array_equal(
        shuffled["outcome.params"], np.array(OUTCOME_DEFAULTS, np.float32)
    )
    del torch
    sess = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    feeds = {"candidates": np.array([[[101, 0.1, 1, 2], [102, 0.2, 1, 3]]], np.float32),
             "exposures": np.zeros((1, 1, 11), np.float32),
             "page_views": np.zeros((1, 1, 13), np.float32)}  # fmt: skip
    (scores,) = sess.run(["scores"], feeds)
    assert scores.shape == (1, 2)
