"""The PyTorch module (training extra) computes the numpy reference, alone and in padded batches."""

from __future__ import annotations

import numpy as np
import pytest

from streamfeat.models import edgerec as er

torch = pytest.importorskip("torch")
from streamfeat.models.edgerec_torch import EdgeRecModule, pad_batch, to_weights  # noqa: E402


def _rows(rng: np.random.Generator, n: int, ncols: int) -> np.ndarray:
    cat = rng.integers(0, 3000, size=(n, 1))
    return np.concatenate([cat, rng.normal(size=(n, ncols - 1)) * 50], axis=1).astype(np.float32)


def test_module_equals_reference_and_batches_equal_single_pages() -> None:
    torch.manual_seed(3)
    m = EdgeRecModule(er.Dims(buckets=32, emb=4, hidden=8))
    w = to_weights(m)
    rng = np.random.default_rng(3)
    pages = [(_rows(rng, c, 4), _rows(rng, e, 11), _rows(rng, d, 13), np.zeros(c, np.float32))
             for c, e, d in [(6, 4, 2), (2, 9, 1), (9, 1, 5)]]  # fmt: skip
    cand, ex, el, pv, dl, _lab, _mask = pad_batch(pages)
    with torch.no_grad():
        batch = torch.sigmoid(m.logits_batch(cand, ex, el, pv, dl)).numpy()
        for i, (c, e, d, _y) in enumerate(pages):
            one = m(*(torch.from_numpy(a[None]) for a in (c, e, d)))[0].numpy()
            ref = er.forward(w, c, e, d)
            np.testing.assert_allclose(one, ref, atol=1e-5)
            np.testing.assert_allclose(batch[i, : len(c)], ref, atol=1e-5)
