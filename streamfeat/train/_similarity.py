"""Category similarity from co-occurrence: which categories the same devices are shown.

The model's soft matches (``Dims.soft``, :mod:`streamfeat.models.edgerec`) need a similarity of
categories, ``s(c, c') = E[c] . E[c']``, so that a click on one category can lift the ones that
go with it. Learned by gradient from a few thousand re-ranks it mostly learns each category's
match with itself; computed from co-occurrence it finds the structure at once, the way item2vec
or a PPMI factorisation finds word similarity:

* a matrix ``N[c, d]``: in how many of device ``d``'s re-ranks category bucket ``c`` was
  among the candidates (the server's pages follow each user's interests);
* its positive pointwise mutual information, ``max(0, ln(p(c, d) / (p(c) p(d))))``;
* the ``size`` leading singular vectors, scaled by the square roots of their singular values,
  each row then scaled to length 1 (a bucket never seen stays all zero).

So ``s`` is a cosine in ``[-1, 1]``: categories shown to the same users score near 1.
Deterministic (no random start); numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from streamfeat.train._samples import Sample

__all__ = ["category_similarity"]

F32 = npt.NDArray[np.float32]


def category_similarity(samples: Sequence[Sample], buckets: int, size: int) -> F32:
    """Return the embedding ``[buckets, size]`` whose dot products are the similarity.

    Raises:
        ValueError: ``size`` or ``buckets`` below 1.
    """
    if size < 1 or buckets < 1:
        msg = f"size and buckets must be at least 1, got {size} and {buckets}"
        raise ValueError(msg)
    devices = {d: i for i, d in enumerate(sorted({s.device for s in samples}))}
    counts = np.zeros((buckets, max(len(devices), 1)), dtype=np.float64)
    for s in samples:
        cats = np.unique(np.mod(s.feeds["candidates"][0][:, 0].astype(np.int64), buckets))
        counts[cats, devices[s.device]] += 1.0
    total = counts.sum()
    out = np.zeros((buckets, size), dtype=np.float32)
    if total <= 0:
        return out
    p_c = counts.sum(axis=1, keepdims=True) / total
    p_d = counts.sum(axis=0, keepdims=True) / total
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log((counts / total) / (p_c * p_d))
    pmi = np.where(np.isfinite(pmi) & (pmi > 0.0), pmi, 0.0)
    u, sv, _ = np.linalg.svd(pmi, full_matrices=False)
    k = min(size, len(sv))
    emb = u[:, :k] * np.sqrt(sv[:k])
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    emb = np.where(norm > 1e-9, emb / np.maximum(norm, 1e-9), 0.0)
    out[:, :k] = emb
    return out
