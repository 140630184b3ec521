"""The headroom study (``python -m streamfeat.sim._headroom``): its replayed user model is the
user model, its orders are seeded, and its command prints one line per order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from streamfeat.gen._model import CATEGORIES
from streamfeat.sim._headroom import ORDERS, _Context, main, play
from streamfeat.sim._users import Look, ServedUser, SetPage, UserParams


def test_the_tracker_replays_the_users_drift_exactly_when_sessions_have_no_intent() -> None:
    """Without an intent the session interest is the drift of what the user did: replayed
    from the observed events alone it equals the user's own, at every look."""
    params = replace(UserParams(), intent_p=0.0)
    looks = 0
    for key in ("dev000001", "dev000007"):
        user = ServedUser(key, 3, params)
        ctx = _Context(user, bayes=False)
        gen = user.play(20, 0)
        page: SetPage | None = None
        step: Any = next(gen)
        while step is not None:
            reply = None
            if isinstance(step, SetPage):
                page = step
            elif isinstance(step, Look):
                assert page is not None
                ctx.resolve()
                truth = np.array([user.session.get(c, 0.0) for c in CATEGORIES])
                np.testing.assert_allclose(ctx.drift, truth, atol=1e-9)
                looks += 1
                reply = page.server_order()
            else:
                ctx.observe(step)
            try:
                step = gen.send(reply)
            except StopIteration:
                step = None
    assert looks > 50


def test_orders_are_seeded_and_the_oracle_is_on_top() -> None:
    names = [f"dev{i:06d}" for i in range(40)]
    runs = {o: [play(n, 4, o, 6.0) for n in names] for o in ("server", "oracle", "bayes")}
    assert runs["bayes"] == [play(n, 4, "bayes", 6.0) for n in names]

    def ctr(order: str) -> float:
        return sum(d["clicks"] for d in runs[order]) / sum(d["exposures"] for d in runs[order])

    assert ctr("oracle") > ctr("server") * 1.1
    with pytest.raises(ValueError, match="no order"):
        play("dev000001", 1, "best", 1.0)
    with pytest.raises(ValueError, match="no policy"):
        play("dev000001", 1, "server", 1.0, policy="often")


def test_the_command_prints_each_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--devices", "3", "--minutes", "3", "--policy", "kuaishou"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "re-rank policy kuaishou" in out[0]
    assert [line.split()[0] for line in out[1:]] == list(ORDERS)
    assert all("ratio" in line for line in out[2:])
    with pytest.raises(SystemExit):
        main(["--orders", "server,best"])
