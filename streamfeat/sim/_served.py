"""The served feed in the simulator: ranking modes, their tasks file, and the device driver.

``streamfeat simulate --ranking MODE`` replaces the behaviour generator's feed with users who
respond to the order they see (:mod:`streamfeat.sim._users`). MODE is one of:

* ``server``: the device shows the server's order (no re-rank is shown; the device still runs
  the shipped model's re-rank task *in the shadow*, ``apply = false``, so its task records,
  with the model inputs of each re-rank, reach the endpoint for training);
* ``heuristic``: the hand-written re-rank (:mod:`streamfeat.sim._heuristic`: boost the
  categories clicked in the recent exposures, and their group, demote deleted ones);
* ``model:FILE``: an ONNX model with the EdgeRec-style inputs through the re-rank task
  (``model:builtin:edgerec-small`` for the shipped one);
* ``oracle``: not a device's order but the ceiling of any: at every look the user sees the
  unseen items ordered by their true click logit under the user's *current* interests,
  which only the simulator knows (the device runs the shipped model in the shadow, as in
  ``server``). What no re-rank from the device's context can beat.

:func:`drive` plays one device: it installs each visit's page, submits the user's events in
order, and at each :class:`~streamfeat.sim._users.Look` hands the user the order the device
shows at that moment. To make that order a function of the seed and not of thread timing, the
driver waits for the device's re-ranks to end after every feed event it submits, and for the
engine to settle after every detail visit (whose ``ipv`` record is a model input).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streamfeat.models.edgerec import input_specs
from streamfeat.ranking._catalogue import item_features
from streamfeat.ranking._page import Candidate, Page
from streamfeat.sim._options import fleet_key
from streamfeat.sim._users import FEED, Look, ServedUser, SetPage, category_of, server_logit

__all__ = [
    "RERANK_POLICIES",
    "RankingMode",
    "drive",
    "oracle_order",
    "order_by",
    "page_of",
    "parse_mode",
    "served_tasks_text",
]

#: The re-rank task's time limit in the simulator: long, so a loaded machine never turns a
#: re-rank into a timeout (the order shown must not depend on the machine's load).
TIMEOUT = "30s"


@dataclass(frozen=True, slots=True)
class RankingMode:
    """A parsed ``--ranking`` mode: ``name`` (``server``, ``heuristic``, ``model``) and the
    model file the device runs (the shipped model in the server mode's shadow)."""

    text: str
    name: str
    file: str

    @property
    def shows_reranks(self) -> bool:
        """The device's re-ranks are applied and shown (``heuristic``, ``model``)."""
        return self.name not in ("server", "oracle")

    @property
    def compared(self) -> bool:
        """The mode gets its CTR ratio over the server's order (every mode but ``server``)."""
        return self.name != "server"


def parse_mode(text: str) -> RankingMode:
    """Parse ``server``, ``heuristic``, ``model:FILE`` or ``oracle``.

    Raises:
        ValueError: naming the mode; a missing model file too.
    """
    if text == "server":
        return RankingMode(text, "server", "builtin:edgerec-small")
    if text == "oracle":
        return RankingMode(text, "oracle", "builtin:edgerec-small")
    if text == "heuristic":
        from streamfeat.sim._heuristic import heuristic_model_path

        return RankingMode(text, "heuristic", str(heuristic_model_path()))
    if text.startswith("model:") and len(text) > len("model:"):
        file = text.removeprefix("model:")
        if not file.startswith("builtin:"):
            path = Path(file).expanduser()
            if not path.is_file():
                msg = f"--ranking {text}: no model file {str(path)!r}"
                raise ValueError(msg)
            file = str(path.resolve())
        return RankingMode(text, "model", file)
    msg = f"--ranking must be server, heuristic, model:FILE or oracle, got {text!r}"
    raise ValueError(msg)


#: When the served feed's re-rank task fires: ``edgerec``, on a click, a delete and 5
#: exposures without a click; ``swipe``, on a click, a delete and after every exposure (an
#: ``edgerec`` task with ``k = 1``); ``kuaishou``, after every exposure only (a ``kuaishou``
#: task: the click on the item just shown reaches the order one exposure later).
RERANK_POLICIES = ("edgerec", "swipe", "kuaishou")


def served_tasks_text(mode: RankingMode, policy: str = "edgerec") -> str:
    """The tasks file of a ranking run: the ``ipv`` and ``exposure`` features, the model of the
    mode with the EdgeRec-style inputs, one re-rank task on the feed of kind ``policy`` (one of
    :data:`RERANK_POLICIES`; greedy order either way), uploads of feature and task records in
    the compact encoding.

    Raises:
        ValueError: an unknown ``policy``.
    """
    if policy not in RERANK_POLICIES:
        msg = f"--rerank-policy must be one of {', '.join(RERANK_POLICIES)}, got {policy!r}"
        raise ValueError(msg)
    lines = ["[features.ipv]", 'kind = "ipv"', "", "[features.exposure]", 'kind = "exposure"', "",
             "[models.ranker]", f"file = {json.dumps(mode.file)}"]  # fmt: skip
    for spec in input_specs():
        lines += [
            f"[models.ranker.inputs.{spec.name}]",
            f"source = {json.dumps(spec.source)}",
            f"fields = {json.dumps(list(spec.fields))}",
            f"shape = {json.dumps(list(spec.shape))}",
        ]
    kind = "kuaishou" if policy == "kuaishou" else "edgerec"
    fires = {"edgerec": ["k = 5"], "swipe": ["k = 1"]}.get(policy, [])
    lines += ["", "[tasks.ranker]", f"kind = {json.dumps(kind)}", 'model = "ranker"',
              f'feed = "{FEED}"', *fires, 'strategy = "greedy"', f'timeout = "{TIMEOUT}"',
              "record_inputs = true",
              f"apply = {'true' if mode.shows_reranks else 'false'}", "", "[upload]",
              'records = ["feature", "task"]', 'encoding = "compact"']  # fmt: skip
    return "\n".join(lines) + "\n"


def page_of(step: SetPage, user: ServedUser) -> Page:
    """The page the server sends for ``step``: each item's catalogue features, with
    ``server_score`` the server's predicted CTR for this user (long-term interests only)."""
    cands = []
    for item in step.items:
        feats = dict(item_features(item))
        cat = int(feats["category"])
        logit = server_logit(user.params, user.interests.get(cat, 0.0), item)
        feats["server_score"] = round(1.0 / (1.0 + pow(2.718281828459045, -logit)), 6)
        cands.append(Candidate(item, feats))
    return Page.of(step.feed, step.page_id, cands)


async def drive(
    agent: Any,
    user: ServedUser,
    mode: RankingMode,
    *,
    minutes: float,
    start_ts: int,
    clock: Any,
    speed: float,
    t0: float,
    on_event: Any = None,
) -> None:
    """Play ``user`` on ``agent`` (see the module docstring).

    ``clock`` (the fleet process's :class:`~streamfeat.clock.ManualClock`) is moved forward to
    each event's ``ts``; with ``speed`` > 0 each event waits for its time (``t0`` + event time
    / speed). ``on_event()`` is called after each submitted event.
    """
    gen = user.play(minutes, start_ts)
    page: SetPage | None = None
    step: Any = next(gen, None)
    settle = False
    while step is not None:
        reply: list[str] | None = None
        if isinstance(step, SetPage):
            page = step
            agent.set_page(page_of(step, user))
        elif isinstance(step, Look):
            assert page is not None
            if settle:  # the detail visit's ipv record is a model input: let the engine emit it
                await agent.drain()
                settle = False
            if mode.shows_reranks:
                await agent.ranking.drain()
                reply = agent.page(step.feed)
            elif mode.name == "oracle":
                reply = oracle_order(page, user)
            else:
                reply = page.server_order()
        else:
            ts = step["ts"]
            if speed > 0:
                wait = t0 + (ts - start_ts) / 1000.0 / speed - time.time()
                if wait > 0:
                    await asyncio.sleep(wait)
            if ts / 1000 > clock.time():
                clock.set(ts / 1000)
            await agent.submit(step)
            if on_event is not None:
                on_event(step)
            if step.get("page") == FEED and agent.ranking is not None:
                await agent.ranking.drain()  # one re-rank at a time, in event order
            elif step["type"] == "page_exit" and step.get("page") == "item_detail":
                settle = True
        try:
            step = gen.send(reply)
        except StopIteration:
            step = None


def order_by(step: SetPage, score: Callable[[str], float]) -> list[str]:
    """The page's items (less deleted ones) by ``score``, highest first, ties in the server's
    order."""
    order = step.server_order()
    rank = {item: i for i, item in enumerate(order)}
    return sorted(order, key=lambda item: (-score(item), rank[item]))


def oracle_order(step: SetPage, user: ServedUser) -> list[str]:
    """The ``oracle`` mode's order: by the click logit under the user's current interests."""
    return order_by(
        step, lambda item: server_logit(user.params, user.interest(category_of(item)), item)
    )


def server_baseline(names: list[str], options: Any) -> dict[str, dict[str, Any]]:
    """Each device's counts under the server's order, played without a device: a device that
    does not re-rank shows exactly the server's order, so this equals a ``server`` run of the
    same devices and seed (a test checks it)."""
    from streamfeat.sim._users import play_offline

    out = {}
    for name in names:
        user = ServedUser(name, options.seed, key=fleet_key(name))
        play_offline(user, options.minutes, options.start_ts)
        out[name] = user.stats.as_dict()
    return out


def fill_ranking(report: Any, results: list[dict[str, Any]], options: Any) -> None:
    """Fill ``report.ranking`` (and ``report.served``, per device) from the fleet's results;
    a non-server mode gets its CTR ratio over the server's order on the same devices and
    seed, with the paired bootstrap interval (:func:`streamfeat.sim._compare.paired_ratio`)."""
    from streamfeat.sim._compare import paired_ratio, summarise_ranking

    served = {n: d["served"] for r in results for n, d in r["devices"].items() if d.get("served")}
    report.served = served
    mode = parse_mode(options.ranking)
    summary = summarise_ranking(options.ranking, served)
    summary["rerank_ms"] = dict(report.rerank_ms)
    if mode.compared and summary["exposures"]:
        base = server_baseline(sorted(served), options)
        server = summarise_ranking("server", base)
        summary["server_ctr"] = server["ctr"]
        summary["server"] = {k: v for k, v in server.items() if k != "by_position"}
        summary["vs_server"] = paired_ratio(base, served, seed=options.seed)
    report.ranking = summary
