"""How much a re-rank can gain on the served feed, and how much of that the device can know.

``python -m streamfeat.sim._headroom [--devices 1000] [--minutes 10] [--seed 2] [--policy edgerec]``
plays the simulated users of ``streamfeat simulate --ranking`` offline (no device, no endpoint,
no model runtime: a few seconds per order), each user under several orders on the same seeds
(common random numbers, as the fleet's comparisons), and prints each order's CTR and its ratio
over the server's order with the paired bootstrap interval of ``simulate --compare``.

The order is re-ranked when the device's re-rank task would fire, with what the device
knows at that moment (``--policy edgerec``: a click, a delete, ``--k`` (5) exposures without a
click; ``swipe``: a click, a delete, every exposure; ``kuaishou``: every exposure, before the
user acts on the item: ``simulate --rerank-policy``), and shows the server's order until the
page's first firing, as the device does. The orders, from least to
most knowledge:

* ``server``: the server's order (long-term interests only).
* ``heuristic``: the shipped heuristic (:mod:`streamfeat.sim._heuristic`), computed here in
  Python over the same 50 exposure rows; a fleet run of ``--ranking heuristic`` on the same
  devices and seed gives the same clicks and exposures (a test checks it).
* ``outcomes``: the context a trained model reads, with the user model's own weights: each
  exposure row's click, delete, long look or fast skip, weighted by the user model's decay
  per row, lifts (or lowers) its category and, by ``rho`` of it, the category's group.
* ``tracker``: the user model's session drift replayed from the observed outcomes with the
  user model's parameters, reset at each session start (knows the session boundaries).
* ``bayes``: the tracker plus the posterior of the session's intent (which category, if
  any), from every look's outcome and exposure time with the user model's likelihoods: the
  best a device could do knowing the user model exactly.
* ``oracle``: the user's true current interests (``simulate --ranking oracle``).

The core is pure and seeded (:func:`play`); only :func:`main` prints.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from streamfeat.gen._model import CATEGORIES, CATEGORIES_PER_GROUP
from streamfeat.sim._heuristic import CLICK, DELETE, GROUP
from streamfeat.sim._served import RERANK_POLICIES, oracle_order, order_by
from streamfeat.sim._users import (
    Look,
    ServedUser,
    SetPage,
    UserParams,
    category_of,
    group_of,
    item_features,
    server_logit,
)

__all__ = ["ORDERS", "play"]

ORDERS = ("server", "heuristic", "outcomes", "tracker", "bayes", "oracle")
ROWS = 50  # exposure rows a re-rank sees (the feed's last 50 exposed or deleted items)
_C0, _NC = CATEGORIES[0], len(CATEGORIES)


class _Context:
    """What the device saw: exposure rows ``[category, clicked, deleted, exposure_ms]`` and,
    for ``tracker``/``bayes``, the user model replayed from them."""

    def __init__(self, user: ServedUser, bayes: bool) -> None:
        p = self.p = user.params
        self.user, self.bayes = user, bayes
        self.rows: list[list[float]] = []
        self.long = np.array([user.interests.get(c, 0.0) for c in CATEGORIES])
        self.drift = np.zeros(_NC)
        self.n = 0  # looks in this session
        self.pending: list[Any] | None = None  # the last look, until its outcome is known
        # the intent hypotheses: a category (s += intent, its group rho of it), or none
        self.intent = np.zeros((_NC + 1, _NC))
        for h in range(_NC):
            g = h // CATEGORIES_PER_GROUP
            self.intent[h, g * CATEGORIES_PER_GROUP : (g + 1) * CATEGORIES_PER_GROUP] = (
                p.intent * p.rho
            )
            self.intent[h, h] = p.intent
        own = sorted({group_of(c) for c in user.interests})
        prior = np.full(_NC + 1, p.intent_p * (1 - p.intent_own_group_p) / _NC)
        for g in own:
            lo = g * CATEGORIES_PER_GROUP
            prior[lo : lo + CATEGORIES_PER_GROUP] += (
                p.intent_p * p.intent_own_group_p / len(own) / CATEGORIES_PER_GROUP
            )
        prior[_NC] = 1.0 - p.intent_p
        with np.errstate(divide="ignore"):  # a hypothesis the parameters rule out: -inf
            self.log_prior = np.log(prior)
        self.log_post = self.log_prior.copy()

    def observe(self, ev: dict[str, Any]) -> None:
        t = ev["type"]
        if t == "app_foreground":
            self.resolve()
            self.drift[:] = 0.0
            self.n = 0
            self.log_post = self.log_prior.copy()
        elif t == "exposure":
            self.resolve()
            a = ev["args"]
            self.rows.append([float(a["category"]), 0.0, 0.0, float(a["dur_ms"])])
            self.pending = [int(a["category"]), int(a["pos"]), self.n, float(a["dur_ms"]),
                            ev["item"], ""]  # fmt: skip
        elif t in ("click", "delete") and self.rows:
            self.rows[-1][1 if t == "click" else 2] = 1.0
            if self.pending is not None:
                self.pending[5] = t

    def _shift(self, cat: int, x: float) -> None:
        g = (cat - _C0) // CATEGORIES_PER_GROUP
        self.drift[g * CATEGORIES_PER_GROUP : (g + 1) * CATEGORIES_PER_GROUP] += x * self.p.rho
        self.drift[cat - _C0] += x * (1.0 - self.p.rho)

    def resolve(self) -> None:
        """Fold the last look's outcome into the replayed user model."""
        if self.pending is None:
            return
        cat, pos, n, dur, item, out = self.pending
        self.pending = None
        p = self.p
        if self.bayes:  # the look's likelihood under each intent hypothesis
            k = cat - _C0
            u = self.long[k] + self.drift[k] + p.decay**n * self.intent[:, k]
            z = (math.log(max(dur, 1.0) / p.look_ms) - 0.35 * u) / 0.5
            exam = (1.0 + pos / p.tau) ** -p.beta
            q = p.a_q * math.log(max(item_features(item)["server_score"], 1e-6) / p.q0)
            pc = exam * math.exp(-n / p.phi) / (1.0 + np.exp(-(p.a0 + p.a_u * u + q)))
            pd = exam * p.delete_p * np.exp(-u)
            po = pc if out == "click" else pd if out == "delete" else np.clip(1 - pc - pd, 1e-9, 1)
            self.log_post = self.log_post - 0.5 * z * z + np.log(po)
        self.drift *= p.decay
        self.n += 1
        if out == "click":
            self._shift(cat, p.click_gain)
        elif out == "delete":
            self._shift(cat, -p.delete_loss)
        elif dur > p.dwell_long_ms:
            self._shift(cat, p.dwell_gain)
        elif dur < p.fast_ms:
            self._shift(cat, -p.skip_loss)


def _lifts(ctx: _Context, order: str) -> tuple[dict[int, float], dict[int, float]]:
    """Per category and per group: the logit added by ``heuristic`` or ``outcomes``."""
    by_cat: dict[int, float] = {}
    by_group: dict[int, float] = {}
    rows = ctx.rows[-ROWS:]
    p = ctx.p
    for k, (c, clicked, deleted, dur) in enumerate(rows):
        cat, g = int(c), group_of(int(c))
        if order == "heuristic":
            own, grp = CLICK * clicked - DELETE * deleted, GROUP * clicked
        else:
            x = (p.click_gain * clicked - p.delete_loss * deleted if clicked or deleted
                 else p.dwell_gain if dur > p.dwell_long_ms
                 else -p.skip_loss if dur < p.fast_ms else 0.0)  # fmt: skip
            w = p.a_u * x * p.decay ** (len(rows) - 1 - k)
            own, grp = w * (1.0 - p.rho), w * p.rho
        by_cat[cat] = by_cat.get(cat, 0.0) + own
        by_group[g] = by_group.get(g, 0.0) + grp
    return by_cat, by_group


def _scorer(ctx: _Context, order: str) -> Callable[[str], float]:
    user, p = ctx.user, ctx.p

    def base(item: str) -> float:
        return server_logit(p, user.interests.get(category_of(item), 0.0), item)

    if order in ("heuristic", "outcomes"):
        by_cat, by_group = _lifts(ctx, order)
        return lambda item: (base(item) + by_cat.get(category_of(item), 0.0)
                             + by_group.get(group_of(category_of(item)), 0.0))  # fmt: skip
    if ctx.pending is not None and ctx.pending[5]:  # a click or delete is final: fold it in
        ctx.resolve()
    if order == "tracker":
        return lambda item: base(item) + p.a_u * float(ctx.drift[category_of(item) - _C0])
    w = np.exp(ctx.log_post - ctx.log_post.max())
    w /= w.sum()
    fade = p.decay**ctx.n

    def expected(item: str) -> float:  # E[P(click)] over the intent's posterior
        k = category_of(item) - _C0
        boost = p.a_u * (ctx.drift[k] + fade * ctx.intent[:, k])
        return float(w @ (1.0 / (1.0 + np.exp(-(base(item) + boost)))))

    return expected


def play(device: str, seed: int, order: str, minutes: float, *, policy: str = "edgerec",
         k: int = 5, params: UserParams | None = None) -> dict[str, Any]:  # fmt: skip
    """Play the user ``device`` (its key: ``dev000001``, not a fleet's ``sim-dev000001``)
    under ``order`` (one of :data:`ORDERS`); returns its counts
    (:meth:`~streamfeat.sim._users.ServedStats.as_dict`)."""
    if order not in ORDERS:
        msg = f"no order {order!r} (orders: {', '.join(ORDERS)})"
        raise ValueError(msg)
    if policy not in RERANK_POLICIES:
        msg = f"no policy {policy!r} (policies: {', '.join(RERANK_POLICIES)})"
        raise ValueError(msg)
    user = ServedUser(device, seed, params)
    ctx = _Context(user, bayes=order == "bayes")
    gen = user.play(minutes, 1_767_225_600_000)
    page: SetPage | None = None
    shown: list[str] | None = None  # the device's order since its last re-rank
    since = 0
    step: Any = next(gen, None)
    while step is not None:
        reply: list[str] | None = None
        if isinstance(step, SetPage):
            page, shown, since = step, None, 0
        elif isinstance(step, Look):
            assert page is not None
            if order == "oracle":
                shown = oracle_order(page, user)
            reply = page.server_order() if shown is None else shown
        else:
            ctx.observe(step)
            t = step["type"]
            fire = False
            if policy == "kuaishou":  # after every exposure, before the user acts on it
                fire = t == "exposure"
            elif t in ("click", "delete"):
                fire, since = True, 0
            elif t == "exposure":
                since += 1
                fire = since >= (1 if policy == "swipe" else k)
                since = 0 if fire else since
            if fire and page is not None and order not in ("server", "oracle"):
                shown = order_by(page, _scorer(ctx, order))  # what the device knows now
        try:
            step = gen.send(reply)
        except StopIteration:
            step = None
    return user.stats.as_dict()


def main(argv: list[str] | None = None) -> int:
    """Print the table (see the module docstring)."""
    ap = argparse.ArgumentParser(prog="python -m streamfeat.sim._headroom",
                                 description=__doc__.split("\n\n")[0] if __doc__ else None)  # fmt: skip
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--policy", choices=RERANK_POLICIES, default="edgerec")
    ap.add_argument("--k", type=int, default=5, help="edgerec: exposures without a click that fire")
    ap.add_argument(
        "--orders", default=",".join(ORDERS), help="comma-separated, of: " + ", ".join(ORDERS)
    )
    args = ap.parse_args(argv)
    orders = [o.strip() for o in args.orders.split(",") if o.strip()]
    bad = [o for o in orders if o not in ORDERS]
    if bad or args.devices < 1:
        ap.error(f"--orders: no order {bad[0]!r}" if bad else "--devices must be at least 1")
    from streamfeat.sim._compare import paired_ratio

    names = [f"dev{i:06d}" for i in range(args.devices)]
    print(f"{args.devices} users x {args.minutes:g} min, seed {args.seed}, re-rank policy "
          f"{args.policy}; CTR ratio over the server's order, paired bootstrap 95% CI")  # fmt: skip
    base: dict[str, dict[str, Any]] | None = None
    heuristic: dict[str, dict[str, Any]] | None = None
    for order in ["server", *[o for o in orders if o != "server"]]:
        t0 = time.perf_counter()
        got = {n: play(n, args.seed, order, args.minutes, policy=args.policy, k=args.k)
               for n in names}  # fmt: skip
        clicks = sum(d["clicks"] for d in got.values())
        exposures = sum(d["exposures"] for d in got.values())
        line = f"{order:10s} clicks {clicks:7,d} exposures {exposures:8,d} CTR {clicks / exposures:.4f}"
        if base is None:
            base = got
        else:
            r = paired_ratio(base, got, seed=args.seed)
            line += f"  ratio {r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
        if heuristic is not None:
            r = paired_ratio(heuristic, got, seed=args.seed)
            line += f"  over heuristic {r['ratio']:.3f} [{r['low']:.3f}, {r['high']:.3f}]"
        elif order == "heuristic":
            heuristic = got
        print(f"{line}  ({time.perf_counter() - t0:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
