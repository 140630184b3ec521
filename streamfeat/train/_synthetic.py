"""A generated dataset whose label depends on one known candidate feature (for tests and docs).

Every page has random candidates (category, server score, price level, age), random
exposure and page-view rows, and a candidate is clicked when its ``price_level`` is at
least 3, with the label flipped with probability ``noise``. A model that learns reads the
price level; a control trained on shuffled labels cannot.
"""

from __future__ import annotations

import numpy as np

from streamfeat.models.edgerec import CANDIDATE_FIELDS, EXPOSURE_FIELDS, PAGE_VIEW_FIELDS
from streamfeat.train._samples import Sample

__all__ = ["synthetic_samples"]


def _items(rng: np.random.Generator, n: int) -> np.ndarray:
    out = np.zeros((n, len(CANDIDATE_FIELDS)), np.float32)
    out[:, 0] = rng.integers(1, 60, n)  # category
    out[:, 1] = rng.uniform(0.0, 0.1, n).round(4)  # server_score
    out[:, 2] = rng.integers(0, 5, n)  # price_level
    out[:, 3] = rng.integers(0, 240, n)  # age_h
    return out


def synthetic_samples(
    devices: int = 60, pages: int = 20, seed: int = 0, noise: float = 0.03
) -> list[Sample]:
    """Return ``devices x pages`` samples (device ids ``syn-0``, ``syn-1``, ...).

    Args:
        devices: how many devices.
        pages: re-ranks per device.
        seed: the generator's seed (same seed, same samples).
        noise: the probability that a label is flipped.
    """
    rng = np.random.default_rng(seed)
    out: list[Sample] = []
    for d in range(devices):
        for _ in range(pages):
            c = int(rng.integers(5, 30))
            cand = _items(rng, c)
            e = int(rng.integers(0, 30))
            ex = np.zeros((e + 1, len(EXPOSURE_FIELDS)), np.float32)
            ex[1:, :4] = _items(rng, e)
            ex[1:, 4] = rng.integers(100, 5000, e)  # exposure_ms
            ex[1:, 5] = rng.integers(1, 3, e)  # exposures
            ex[1:, 8] = rng.random(e) < 0.1  # clicked
            ex[1:, 10] = rng.integers(0, 50, e)  # first_pos
            v = int(rng.integers(0, 10))
            pv = np.zeros((v + 1, len(PAGE_VIEW_FIELDS)), np.float32)
            pv[1:, 0] = rng.integers(1, 60, v)
            pv[1:, 1] = rng.integers(500, 60000, v)  # dwell_ms
            labels = (cand[:, 2] >= 3).astype(np.float32)
            flip = rng.random(c) < noise
            labels[flip] = 1.0 - labels[flip]
            feeds = {"candidates": cand[None], "exposures": ex[None], "page_views": pv[None]}
            out.append(Sample(f"syn-{d}", feeds, labels))
    return out
