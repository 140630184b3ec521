"""The category similarity computed from co-occurrence (streamfeat.train._similarity): against
a plain PPMI reference, and it finds groups of categories shown to the same devices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamfeat.train import Sample
from streamfeat.train._similarity import category_similarity


def _sample(device: str, cats: list[int]) -> Sample:
    cand = np.zeros((len(cats), 4), np.float32)
    cand[:, 0] = cats
    cand[:, 1] = 0.1
    feeds = {"candidates": cand[None], "exposures": np.zeros((1, 1, 11), np.float32),
             "page_views": np.zeros((1, 1, 13), np.float32)}  # fmt: skip
    return Sample(device, feeds, np.zeros(len(cats), np.float32))


def _grouped(seed: int) -> tuple[list[Sample], dict[int, int]]:
    """Devices each interested in one of 4 groups of 8 categories, pages half from their group,
    half from anywhere."""
    rng = np.random.default_rng(seed)
    group = {c: (c - 100) // 8 for c in range(100, 132)}
    out = []
    for d in range(80):
        g = d % 4
        for _ in range(6):
            own = rng.choice(np.arange(100 + 8 * g, 108 + 8 * g), 4, replace=False)
            other = rng.choice(np.arange(100, 132), 4, replace=False)
            out.append(_sample(f"d{d}", [int(c) for c in (*own, *other)]))
    return out, group


def test_categories_shown_to_the_same_devices_are_similar() -> None:
    samples, group = _grouped(1)
    emb = category_similarity(samples, buckets=256, size=4)
    cats = sorted(group)
    sim = emb[cats] @ emb[cats].T
    same = [sim[i, j] for i in range(32) for j in range(32)
            if i != j and group[cats[i]] == group[cats[j]]]  # fmt: skip
    diff = [sim[i, j] for i in range(32) for j in range(32) if group[cats[i]] != group[cats[j]]]
    assert np.mean(same) > 0.8 > 0.3 > np.mean(diff), (np.mean(same), np.mean(diff))
    # rows are unit length where a bucket was seen, zero where not
    np.testing.assert_allclose(np.linalg.norm(emb[cats], axis=1), 1.0, atol=1e-5)
    assert not emb[0].any()
    assert not emb[200].any()


def test_the_control_without_structure_finds_none() -> None:
    """Pages drawn from every category alike: the same partition into groups finds pairs
    within a group no more similar than pairs across groups."""
    rng = np.random.default_rng(2)
    samples = [_sample(f"d{d}", [int(c) for c in rng.choice(np.arange(100, 132), 8, replace=False)])
               for d in range(80) for _ in range(6)]  # fmt: skip
    emb = category_similarity(samples, buckets=256, size=4)
    cats = list(range(100, 132))
    sim = emb[cats] @ emb[cats].T
    group = [(c - 100) // 8 for c in cats]
    same = [sim[i, j] for i in range(32) for j in range(32) if i != j and group[i] == group[j]]
    diff = [sim[i, j] for i in range(32) for j in range(32) if group[i] != group[j]]
    assert abs(float(np.mean(same)) - float(np.mean(diff))) < 0.1, (np.mean(same), np.mean(diff))


def test_ppmi_against_a_plain_reference() -> None:
    """With every dimension kept, ``E E^T`` is the square root of ``P P^T`` (``P`` the PPMI
    matrix, ``E = U sqrt(S)``), scaled to a unit diagonal: checked through an eigen-decomposition
    of a PPMI matrix built with plain loops."""
    samples, _ = _grouped(3)
    cats = list(range(100, 132))
    devices = sorted({s.device for s in samples})
    n = {(c, d): 0 for c in cats for d in devices}
    for s in samples:
        for c in {int(x) for x in s.feeds["candidates"][0][:, 0]}:
            n[(c, s.device)] += 1
    total = sum(n.values())
    pc = {c: sum(n[(c, d)] for d in devices) / total for c in cats}
    pd = {d: sum(n[(c, d)] for c in cats) / total for d in devices}

    def ppmi(c: int, d: int) -> float:
        if n[(c, d)] == 0:
            return 0.0
        return max(0.0, math.log((n[(c, d)] / total) / (pc[c] * pd[d])))

    p = np.array([[ppmi(c, d) for d in devices] for c in cats])
    lam, v = np.linalg.eigh(p @ p.T)
    root = (v * np.sqrt(np.clip(lam, 0.0, None))) @ v.T
    emb = category_similarity(samples, buckets=256, size=64)
    for a, b in ((100, 101), (100, 120), (131, 104)):
        i, j = a - 100, b - 100
        want = root[i, j] / math.sqrt(root[i, i] * root[j, j])
        assert float(emb[a] @ emb[b]) == pytest.approx(want, abs=1e-4)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        category_similarity([], buckets=8, size=0)
    assert not category_similarity([], buckets=8, size=2).any()
