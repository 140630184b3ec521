"""The EdgeRec-style model as a PyTorch module, for training (``pip install 'streamfeat[train]'``).

Its ``state_dict`` names are the weight names of :mod:`streamfeat.models.edgerec` (the input
scaling buffers ``cand_mean`` ... are ``cand.mean`` ... there), and its
forward pass is that module's :func:`~streamfeat.models.edgerec.forward` for one page
(batch axis 1), so :func:`to_weights` then :func:`~streamfeat.models.edgerec.to_onnx` exports
exactly what was trained.
"""

from __future__ import annotations

import math
from typing import Any

try:
    import torch
    from torch import nn
except ImportError as exc:  # the training extra is optional
    msg = "training needs PyTorch: pip install 'streamfeat[train]'"
    raise ImportError(msg) from exc

import numpy as np

from streamfeat.models.edgerec import (
    EXPOSURE_FIELDS,
    LOGIT_EPS,
    NORM_FIELDS,
    OUTCOME_DEFAULTS,
    PAGE_VIEW_FIELDS,
    RECENCY,
    SIM_POWER,
    Dims,
    Weights,
)

_CLICKED, _DELETED = EXPOSURE_FIELDS.index("clicked"), EXPOSURE_FIELDS.index("deleted")
_EXPOSURE_MS = EXPOSURE_FIELDS.index("exposure_ms")
_DWELL_MS = PAGE_VIEW_FIELDS.index("dwell_ms")

__all__ = ["EdgeRecModule", "pad_batch", "to_weights"]


class EdgeRecModule(nn.Module):  # type: ignore[misc,unused-ignore]  # Any without torch stubs
    """GRU encoders of the exposure and page-view sequences, attention from each candidate
    to both, and a scoring head (see :mod:`streamfeat.models.edgerec`)."""

    def __init__(self, dims: Dims | None = None) -> None:
        super().__init__()
        dims = dims or Dims()
        h, e = dims.hidden, dims.emb
        self.dims = dims
        self.cat_emb = nn.Embedding(dims.buckets, e)
        self.cand_proj = nn.Linear(e + 3, h)
        self.gru_e = nn.GRU(e + 10, h, batch_first=True)
        self.gru_d = nn.GRU(e + 12, h, batch_first=True)
        self.q_e = nn.Linear(h, h, bias=False)
        self.k_e = nn.Linear(h, h, bias=False)
        self.q_d = nn.Linear(h, h, bias=False)
        self.k_d = nn.Linear(h, h, bias=False)
        self.head1 = nn.Linear(5 * h, h)
        self.head2 = nn.Linear(h, 1)
        if dims.match:
            self.match = nn.Linear(dims.match_features, h, bias=False)
            if dims.soft:
                self.sim_emb = nn.Embedding(dims.buckets, dims.soft)
                nn.init.normal_(self.sim_emb.weight, 0.0, 0.1)
            if dims.outcome:  # constants in the state_dict as "outcome.params", not trained
                self.outcome = nn.Module()
                self.outcome.register_buffer("params", torch.tensor(OUTCOME_DEFAULTS))
        if dims.wide:
            self.wide = nn.Linear(3 + dims.match_features, 1, bias=False)
            # the linear part starts at zero, and so does the deep part's last layer: the
            # score starts flat and each part grows only as far as the data asks
            nn.init.zeros_(self.wide.weight)
            nn.init.zeros_(self.head2.weight)
        # input scaling constants (buffers: saved in the state_dict, not trained), identity
        # until set_norms; named "cand.mean" etc. in the weights (see to_weights)
        for prefix, fields in NORM_FIELDS.items():
            n = len(fields)
            self.register_buffer(f"{prefix}_mean", torch.zeros(n))
            self.register_buffer(f"{prefix}_std", torch.ones(n))
            self.register_buffer(f"{prefix}_logit", torch.zeros(n))

    def set_norms(self, norms: Weights) -> None:
        """Set the input scaling constants (``cand.mean`` ... as :func:`input_norms` gives)."""
        for key, value in norms.items():
            getattr(self, key.replace(".", "_")).copy_(torch.from_numpy(np.asarray(value)))

    def _rows(self, x: Any, prefix: str) -> Any:
        idx = torch.remainder(x[..., 0].long(), self.dims.buckets)
        return torch.cat([self.cat_emb(idx), self._numbers(x, prefix)], dim=-1)

    def _numbers(self, x: Any, prefix: str) -> Any:
        num = x[..., 1:]
        t = torch.sign(num) * torch.log1p(num.abs())
        p = num.clamp(LOGIT_EPS, 1.0 - LOGIT_EPS)
        m = getattr(self, f"{prefix}_logit")
        t = m * torch.log(p / (1.0 - p)) + (1.0 - m) * t
        return (t - getattr(self, f"{prefix}_mean")) / getattr(self, f"{prefix}_std")

    def _head(self, z: Any, candidates: Any, ex: Any, e_mask: Any, pv: Any, d_mask: Any) -> Any:
        pre = self.head1(z)
        m = None
        if self.dims.match:
            cat = candidates[..., 0]
            eq_e = (cat[:, :, None] == ex[:, None, :, 0]).float() * e_mask[:, None, :]
            eq_d = (cat[:, :, None] == pv[:, None, :, 0]).float() * d_mask[:, None, :]
            clicked, deleted = ex[:, None, :, _CLICKED], ex[:, None, :, _DELETED]
            parts = [eq_e.sum(-1), (eq_e * clicked).sum(-1), (eq_e * deleted).sum(-1),
                     eq_d.sum(-1)]  # fmt: skip
            # rows after t up to the page's newest row: [B, T]
            n = e_mask.sum(-1, keepdim=True)  # [B, 1] true lengths
            age = (n - 1.0 - torch.arange(ex.shape[1])[None, :]).clamp(min=0.0)
            if self.dims.recent:  # RECENCY ** age
                r = eq_e * (RECENCY**age * e_mask)[:, None, :]
                ms = ex[:, None, :, _EXPOSURE_MS]
                ms = torch.sign(ms) * torch.log1p(ms.abs())
                parts += [r.sum(-1), (r * clicked).sum(-1), (r * deleted).sum(-1),
                          (r * ms).sum(-1)]  # fmt: skip
            if self.dims.soft:
                ec = self.sim_emb(torch.remainder(cat.long(), self.dims.buckets))  # [B, C, S]

                def sims(rows: Any, mask: Any) -> Any:  # [B, C, T], padded rows zeroed
                    et = self.sim_emb(torch.remainder(rows[..., 0].long(), self.dims.buckets))
                    dot = torch.relu(ec @ et.transpose(1, 2))
                    return dot**SIM_POWER * mask[:, None, :]

                s_e, s_d = sims(ex, e_mask), sims(pv, d_mask)

                def slog(x: Any) -> Any:
                    return torch.sign(x) * torch.log1p(x.abs())

                parts += [s_e.sum(-1), (s_e * clicked).sum(-1), (s_e * deleted).sum(-1),
                          s_d.sum(-1), (s_e * slog(ex[:, None, :, _EXPOSURE_MS])).sum(-1),
                          (s_d * slog(pv[:, None, :, _DWELL_MS])).sum(-1)]  # fmt: skip
            else:
                s_e = eq_e
            if self.dims.outcome:  # outcome.params = [recency, long_ms, short_ms]
                o: Any = self.outcome.params
                w = s_e * (o[0] ** age * e_mask)[:, None, :]
                ms = ex[:, None, :, _EXPOSURE_MS]
                rest = (1.0 - clicked) * (1.0 - deleted)
                long = (ms >= o[1]).float() * rest
                short = ((ms > 0) & (ms < o[2])).float() * rest
                parts += [(w * clicked).sum(-1), (w * deleted).sum(-1), (w * long).sum(-1),
                          (w * short).sum(-1)]  # fmt: skip
            m = torch.stack(parts, dim=-1)
            m = torch.sign(m) * torch.log1p(m.abs())
            pre = pre + self.match(m)
        out = self.head2(torch.relu(pre))
        if self.dims.wide:
            num = self._numbers(candidates, "cand")
            out = out + self.wide(num if m is None else torch.cat([num, m], dim=-1))
        return out.squeeze(-1)

    def _attend(self, c: Any, ys: Any, q: Any, k: Any) -> Any:
        s = q(c) @ k(ys).transpose(1, 2) / math.sqrt(self.dims.hidden)
        return torch.softmax(s, dim=-1) @ ys

    def logits(self, candidates: Any, exposures: Any, page_views: Any) -> Any:
        """Return the pre-sigmoid scores ``[1, C]`` (for a numerically stable loss)."""
        c = torch.relu(self.cand_proj(self._rows(candidates, "cand")))
        ye, _ = self.gru_e(self._rows(exposures, "exp"))
        yd, _ = self.gru_d(self._rows(page_views, "pv"))
        ae = self._attend(c, ye, self.q_e, self.k_e)
        ad = self._attend(c, yd, self.q_d, self.k_d)
        z = torch.cat([c, ae, ad, c * ae, c * ad], dim=-1)
        ones_e = torch.ones(exposures.shape[:2])
        ones_d = torch.ones(page_views.shape[:2])
        return self._head(z, candidates, exposures, ones_e, page_views, ones_d)

    def _encode(self, gru: Any, rows: Any, lengths: Any, prefix: str) -> Any:
        packed = nn.utils.rnn.pack_padded_sequence(
            self._rows(rows, prefix), lengths, batch_first=True, enforce_sorted=False
        )
        ys, _ = gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(ys, batch_first=True, total_length=rows.shape[1])
        return out

    def _attend_masked(self, c: Any, ys: Any, lengths: Any, q: Any, k: Any) -> Any:
        s = q(c) @ k(ys).transpose(1, 2) / math.sqrt(self.dims.hidden)
        pad = torch.arange(ys.shape[1])[None, :] >= lengths[:, None]  # [B, T]
        s = s.masked_fill(pad[:, None, :], float("-inf"))
        return torch.softmax(s, dim=-1) @ ys

    def logits_batch(self, candidates: Any, exposures: Any, e_len: Any, page_views: Any,
                     d_len: Any) -> Any:  # fmt: skip
        """Return the logits ``[B, C]`` of a padded batch of pages (training).

        Sequences are right-padded; ``e_len``/``d_len`` hold their true lengths (>= 1), so
        each page gets exactly the scores :meth:`logits` gives it alone. Padded candidate
        rows get scores too: mask them out of the loss.
        """
        c = torch.relu(self.cand_proj(self._rows(candidates, "cand")))
        ye = self._encode(self.gru_e, exposures, e_len, "exp")
        yd = self._encode(self.gru_d, page_views, d_len, "pv")
        ae = self._attend_masked(c, ye, e_len, self.q_e, self.k_e)
        ad = self._attend_masked(c, yd, d_len, self.q_d, self.k_d)
        z = torch.cat([c, ae, ad, c * ae, c * ad], dim=-1)
        e_mask = (torch.arange(exposures.shape[1])[None, :] < e_len[:, None]).float()
        d_mask = (torch.arange(page_views.shape[1])[None, :] < d_len[:, None]).float()
        return self._head(z, candidates, exposures, e_mask, page_views, d_mask)

    def forward(self, candidates: Any, exposures: Any, page_views: Any) -> Any:
        """Return the scores ``[1, C]``, as the ONNX model's ``scores`` output."""
        return torch.sigmoid(self.logits(candidates, exposures, page_views))


def to_weights(module: EdgeRecModule) -> Weights:
    """Return the module's weights as the float32 numpy dict of :mod:`streamfeat.models.edgerec`."""
    out: Weights = {}
    for k, v in module.state_dict().items():
        prefix, _, stat = k.partition("_")
        name = f"{prefix}.{stat}" if prefix in NORM_FIELDS and "." not in k else k
        out[name] = np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32)
    return out


def pad_batch(pages: list[tuple[Any, Any, Any, Any]]) -> tuple[Any, ...]:
    """Pad pages ``(candidates [C, 4], exposures [E, 11], page_views [D, 13], labels [C])``
    (numpy) into tensors ``(cand, e, e_len, d, d_len, labels, cand_mask)``."""
    b = len(pages)
    cm = max(p[0].shape[0] for p in pages)
    em = max(p[1].shape[0] for p in pages)
    dm = max(p[2].shape[0] for p in pages)
    cand = np.zeros((b, cm, pages[0][0].shape[1]), np.float32)
    ex = np.zeros((b, em, pages[0][1].shape[1]), np.float32)
    pv = np.zeros((b, dm, pages[0][2].shape[1]), np.float32)
    lab = np.zeros((b, cm), np.float32)
    mask = np.zeros((b, cm), np.float32)
    for i, (c, e, d, y) in enumerate(pages):
        cand[i, : len(c)] = c
        ex[i, : len(e)] = e
        pv[i, : len(d)] = d
        lab[i, : len(y)] = y
        mask[i, : len(y)] = 1.0
    e_len = torch.tensor([p[1].shape[0] for p in pages])
    d_len = torch.tensor([p[2].shape[0] for p in pages])
    t = torch.from_numpy
    return t(cand), t(ex), e_len, t(pv), d_len, t(lab), t(mask)
