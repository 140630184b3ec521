"""The model's input scaling: computed from the training samples (against a plain reference),
carried by the ONNX export (ONNX, PyTorch and numpy agree within 1e-4 with non-identity
constants), and the identity when absent (models without it score exactly as before)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("torch")

from streamfeat.models import edgerec as er
from streamfeat.models.edgerec_torch import EdgeRecModule, to_weights
from streamfeat.train import Sample, check_export, export, input_norms, synthetic_samples

DIMS = er.Dims(buckets=64, emb=4, hidden=8)
MATCH = er.Dims(buckets=64, emb=4, hidden=8, match=True)
WIDE = er.Dims(buckets=64, emb=4, hidden=8, match=True, wide=True)
RECENT = er.Dims(buckets=64, emb=4, hidden=8, match=True, wide=True, recent=True)
SOFT = er.Dims(buckets=64, emb=4, hidden=8, match=True, wide=True, recent=True, soft=3)
SOFT_ONLY = er.Dims(buckets=64, emb=4, hidden=8, match=True, soft=3)
OUTCOME = er.Dims(buckets=64, emb=4, hidden=8, match=True, wide=True, recent=True, soft=3,
                  outcome=True)  # fmt: skip
OUTCOME_EXACT = er.Dims(buckets=64, emb=4, hidden=8, match=True, wide=True, outcome=True)
#: outcome.params for the random pages (exposure_ms ~ N(0, 300)): both thresholds bite
OUTCOME_PARAMS = (0.8, 60.0, 20.0)
WIDE_ONLY = er.Dims(buckets=64, emb=4, hidden=8, wide=True)


def _reference(
    samples: list[Sample], name: str, fields: tuple[str, ...]
) -> tuple[list[float], ...]:
    means, stds, logits = [], [], []
    for j, f in enumerate(fields, start=1):
        vals = []
        for s in samples:
            for row in s.feeds[name][0]:
                x = float(row[j])
                if f == "server_score":
                    p = min(max(x, 1e-6), 1 - 1e-6)
                    vals.append(math.log(p / (1 - p)))
                else:
                    vals.append(math.copysign(math.log(1 + abs(x)), x))
        m = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - m) ** 2 for v in vals) / len(vals))
        means.append(m)
        stds.append(sd if sd >= 1e-6 else 1.0)
        logits.append(1.0 if f == "server_score" else 0.0)
    return means, stds, logits


def test_scaling_is_computed_from_the_training_samples() -> None:
    samples = synthetic_samples(devices=6, pages=5, seed=3)
    norms = input_norms(samples)
    for name, prefix in er.NORM_PREFIXES.items():
        means, stds, logits = _reference(samples, name, er.NORM_FIELDS[prefix])
        np.testing.assert_allclose(norms[f"{prefix}.mean"], means, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(norms[f"{prefix}.std"], stds, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(norms[f"{prefix}.logit"], logits)
    # a different sample set gives different constants: they come from the samples
    other = input_norms(synthetic_samples(devices=6, pages=5, seed=4))
    assert not np.allclose(other["cand.mean"], norms["cand.mean"])
    with pytest.raises(ValueError, match="no samples"):
        input_norms([])


def _pages(rng: np.random.Generator, n: int) -> list[Sample]:
    out = []
    for i in range(n):
        c, e, d = 3 + i % 5, 1 + i % 7, 1 + i % 3
        cand = np.concatenate([rng.integers(0, 6, (c, 1)), rng.uniform(0.001, 0.4, (c, 1)),
                               rng.normal(size=(c, 2)) * 30], axis=1)  # fmt: skip
        ex = np.concatenate([rng.integers(0, 6, (e, 1)), rng.uniform(0.001, 0.4, (e, 1)),
                             rng.normal(size=(e, 9)) * 300], axis=1)  # fmt: skip
        pv = np.concatenate([rng.integers(0, 6, (d, 1)), rng.normal(size=(d, 12)) * 5000], axis=1)
        feeds = {k: v.astype(np.float32)[None] for k, v in
                 (("candidates", cand), ("exposures", ex), ("page_views", pv))}  # fmt: skip
        out.append(Sample(f"d{i}", feeds, np.zeros(c, np.float32)))
    return out


@pytest.mark.parametrize("dims", [DIMS, MATCH, WIDE, WIDE_ONLY, RECENT, SOFT, SOFT_ONLY, OUTCOME,
                                  OUTCOME_EXACT],
                         ids=["plain", "match", "wide", "wide-no-match", "recent", "soft",
                              "soft-only", "outcome", "outcome-exact"])  # fmt: skip
def test_export_matches_pytorch_and_numpy_with_scaling(dims: er.Dims) -> None:
    import torch

    torch.manual_seed(1)
    pages = _pages(np.random.default_rng(1), 30)
    m = EdgeRecModule(dims)
    if dims.outcome:
        m.outcome.params.copy_(torch.tensor(OUTCOME_PARAMS))
    if dims.wide:  # trained from zero: give the linear part weights that change the scores
        with torch.no_grad():
            m.wide.weight.normal_(0.0, 0.5)
    norms = input_norms(pages)
    assert float(np.abs(norms["cand.mean"]).max()) > 0.5  # not the identity
    m.set_norms(norms)
    w = to_weights(m)
    for key, value in norms.items():
        np.testing.assert_array_equal(w[key], value)
    data = export(m)
    assert check_export(m, data, pages, pages=30) < 1e-4
    # the scaling changes the scores: the same weights without it score otherwise
    assert ("match.weight" in w) == dims.match
    assert ("wide.weight" in w) == dims.wide
    assert er.dims_of(w) == dims
    bare = {k: v for k, v in w.items() if k.split(".")[0] not in er.NORM_FIELDS}
    s = pages[0]
    args = (s.feeds["candidates"][0], s.feeds["exposures"][0], s.feeds["page_views"][0])
    assert float(np.abs(er.forward(w, *args) - er.forward(bare, *args)).max()) > 1e-3


def test_absent_scaling_is_the_identity() -> None:
    w = er.init_weights(np.random.default_rng(5), DIMS)
    s = _pages(np.random.default_rng(2), 1)[0]
    args = (s.feeds["candidates"][0], s.feeds["exposures"][0], s.feeds["page_views"][0])
    with_identity = {**w, **er.identity_norms()}
    np.testing.assert_array_equal(er.forward(w, *args), er.forward(with_identity, *args))


def test_match_features_against_a_plain_reference() -> None:
    s = _pages(np.random.default_rng(4), 9)[8]
    cand, ex, pv = s.feeds["candidates"][0], s.feeds["exposures"][0], s.feeds["page_views"][0]
    got = er._match(cand, ex, pv)
    ci, di = er.EXPOSURE_FIELDS.index("clicked"), er.EXPOSURE_FIELDS.index("deleted")
    for i, row in enumerate(cand):
        c = row[0]
        ref = [sum(1.0 for e in ex if e[0] == c), sum(float(e[ci]) for e in ex if e[0] == c),
               sum(float(e[di]) for e in ex if e[0] == c), sum(1.0 for d in pv if d[0] == c)]  # fmt: skip
        want = [math.copysign(math.log1p(abs(v)), v) for v in ref]
        np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-5)
    # the recency-weighted ones: row t of E weighs RECENCY ** (E - 1 - t)
    got = er._match(cand, ex, pv, recent=True)
    ms = er.EXPOSURE_FIELDS.index("exposure_ms")
    n = len(ex)
    for i, row in enumerate(cand):
        rows = [(er.RECENCY ** (n - 1 - t), e) for t, e in enumerate(ex) if e[0] == row[0]]
        ref = [sum(r for r, _ in rows), sum(r * float(e[ci]) for r, e in rows),
               sum(r * float(e[di]) for r, e in rows),
               sum(r * math.copysign(math.log1p(abs(float(e[ms]))), float(e[ms])) for r, e in rows)]  # fmt: skip
        want = [math.copysign(math.log1p(abs(v)), v) for v in ref]
        np.testing.assert_allclose(got[i, 4:], want, rtol=1e-4, atol=1e-4)
    # the soft matches: s(c, c') = max(0, E[c] . E[c']) ** SIM_POWER in place of [c = c']
    emb = np.random.default_rng(9).normal(size=(4, 2)).astype(np.float32)
    got = er._match(cand, ex, pv, sim=emb)

    dw = er.PAGE_VIEW_FIELDS.index("dwell_ms")

    def slog1(x: float) -> float:
        return math.copysign(math.log1p(abs(x)), x)

    def sim(a: float, b: float) -> float:
        return max(0.0, float(emb[int(a) % 4] @ emb[int(b) % 4])) ** er.SIM_POWER

    for i, row in enumerate(cand):
        c = row[0]
        ref = [sum(sim(c, e[0]) for e in ex), sum(sim(c, e[0]) * float(e[ci]) for e in ex),
               sum(sim(c, e[0]) * float(e[di]) for e in ex), sum(sim(c, d[0]) for d in pv),
               sum(sim(c, e[0]) * slog1(float(e[ms])) for e in ex),
               sum(sim(c, d[0]) * slog1(float(d[dw])) for d in pv)]  # fmt: skip
        want = [math.copysign(math.log1p(abs(v)), v) for v in ref]
        np.testing.assert_allclose(got[i, 4:], want, rtol=1e-4, atol=1e-4)
    # the outcomes: row t weighs recency ** (E - 1 - t) times s(c, c_t) (or [c = c_t])
    rec, long_ms, short_ms = OUTCOME_PARAMS
    params = np.array(OUTCOME_PARAMS, np.float32)
    s = _pages(np.random.default_rng(4), 9)[4]  # exposure_ms 13, -75, -101, 78, -3
    cand, ex, pv = s.feeds["candidates"][0], s.feeds["exposures"][0], s.feeds["page_views"][0]
    n = len(ex)
    for emb_or_none, same in ((emb, sim), (None, lambda a, b: float(a == b))):
        got = er._match(cand, ex, pv, sim=emb_or_none, outcome=params)
        n_long = n_short = 0
        for i, row in enumerate(cand):
            ref = [0.0, 0.0, 0.0, 0.0]
            for t, e in enumerate(ex):
                w = rec ** (n - 1 - t) * same(row[0], e[0])
                ck, dl, x = float(e[ci]), float(e[di]), float(e[ms])
                rest = (1 - ck) * (1 - dl)
                ref[0] += w * ck
                ref[1] += w * dl
                ref[2] += w * rest * (x >= long_ms)
                ref[3] += w * rest * (0 < x < short_ms)
                n_long += x >= long_ms
                n_short += 0 < x < short_ms
            want = [math.copysign(math.log1p(abs(v)), v) for v in ref]
            np.testing.assert_allclose(got[i, -4:], want, rtol=1e-4, atol=1e-4)
        assert n_long  # both thresholds were crossed
        assert n_short


@pytest.mark.parametrize("dims", [MATCH, WIDE, RECENT, SOFT, OUTCOME],
                         ids=["match", "wide", "recent", "soft", "outcome"])  # fmt: skip
def test_batched_match_scores_equal_single_pages(dims: er.Dims) -> None:
    import torch

    from streamfeat.models.edgerec_torch import pad_batch

    torch.manual_seed(2)
    m = EdgeRecModule(dims)
    if dims.outcome:
        m.outcome.params.copy_(torch.tensor(OUTCOME_PARAMS))
    if dims.wide:
        with torch.no_grad():
            m.wide.weight.normal_(0.0, 0.5)
    pages = _pages(np.random.default_rng(6), 7)
    batch = pad_batch([(p.feeds["candidates"][0], p.feeds["exposures"][0],
                        p.feeds["page_views"][0], p.labels) for p in pages])  # fmt: skip
    cand, ex, el, pv, dl, _lab, _mask = batch
    with torch.no_grad():
        out = torch.sigmoid(m.logits_batch(cand, ex, el, pv, dl)).numpy()
        for i, p in enumerate(pages):
            t = [torch.from_numpy(p.feeds[k]) for k in ("candidates", "exposures", "page_views")]
            one = m(*t)[0].numpy()
            np.testing.assert_allclose(out[i, : len(p.labels)], one, atol=1e-5)


def test_shuffled_labels_learn_nothing_with_scaling_and_matches() -> None:
    from streamfeat.train import FitOptions, fit, shuffle_labels, split_by_device

    train, held = split_by_device(synthetic_samples(devices=50, pages=16, seed=7), 0.3, seed=0)
    opts = FitOptions(epochs=3, batch=32, seed=0, dims=er.Dims(match=True, wide=True))
    _, real = fit(train, held, opts)
    assert real[-1].auc > 0.9, real  # the same options do learn the known feature
    _, control = fit(shuffle_labels(train, seed=1), held, opts)
    assert abs(control[-1].auc - 0.5) < 0.08, control
