"""How strongly do the training labels of a ``make loop`` collect run show the drift? (docs/train.md)

Fits a logistic regression (L-BFGS, PyTorch) of "clicked afterwards" on the logit of
``server_score``, the candidate's category matches with the context (clicked, deleted,
exposed, viewed; :func:`streamfeat.models.edgerec._match`) and its position in the server's
order, over the samples ``streamfeat train`` reads, once over all candidates and once over
those the user then saw (``--exposed-only``), and prints the coefficients. The heuristic
re-rank gives the clicked matches a weight of 1.0 and the deleted ones -1.0 beside the
server's logit (docs/loop.md). Needs ``pip install 'streamfeat[train]'``.

    python bench/loop_label_drift.py loop-run/collect/endpoint.sqlite loop-run/collect/tasks.toml
"""

from __future__ import annotations

import sys

import numpy as np
import torch

from streamfeat.models.edgerec import _match
from streamfeat.train._batches import BatchRecords
from streamfeat.train._samples import read_samples

NAMES = ("logit(server_score)", "clicked matches", "deleted matches", "ln(1 + exposed matches)",
         "ln(1 + viewed matches)", "ln(1 + position)", "bias")  # fmt: skip


def _fit(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    x = torch.tensor(xs, dtype=torch.float64)
    y = torch.tensor(ys, dtype=torch.float64)
    w = torch.zeros(x.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w[:-1] + w[-1], y)
        loss.backward()
        return loss

    opt.step(closure)
    return np.asarray(w.detach().numpy())


def main() -> None:
    db, tasks = sys.argv[1], sys.argv[2]
    for exposed in (False, True):
        samples, _ = read_samples(BatchRecords(db, [tasks]), max_samples=4000, seed=0,
                                  exposed_only=exposed)  # fmt: skip
        xs, ys = [], []
        for s in samples:
            c, e, d = (s.feeds[k][0] for k in ("candidates", "exposures", "page_views"))
            p = np.clip(c[:, 1], 1e-6, 1 - 1e-6)
            m = np.expm1(_match(c, e, d))
            xs.append(np.column_stack([np.log(p / (1 - p)), m[:, 1], m[:, 2], np.log1p(m[:, 0]),
                                       np.log1p(m[:, 3]), np.log1p(np.arange(len(c)))]))  # fmt: skip
            ys.append(s.labels)
        w = _fit(np.concatenate(xs), np.concatenate(ys))
        y = np.concatenate(ys)
        coef = ", ".join(f"{n} {v:+.3f}" for n, v in zip(NAMES, w, strict=True))
        print(f"{'seen candidates' if exposed else 'all candidates'} ({len(y):,}): {coef}")


if __name__ == "__main__":
    main()
