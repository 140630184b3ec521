"""Ranking modes, their tasks file, the page sent for a visit, the shipped heuristic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamfeat.models import load_model
from streamfeat.sim._heuristic import heuristic_model_path
from streamfeat.sim._served import oracle_order, page_of, parse_mode, served_tasks_text
from streamfeat.sim._users import ServedUser, SetPage
from streamfeat.tasks import parse_tasks


def test_modes_parse_and_their_tasks_files_load(tmp_path: Path) -> None:
    assert parse_mode("server").shows_reranks is False
    assert parse_mode("heuristic").file == str(heuristic_model_path())
    model = tmp_path / "m.onnx"
    model.write_bytes(heuristic_model_path().read_bytes())
    for text in ("server", "heuristic", f"model:{model}", "model:builtin:edgerec-small", "oracle"):
        config = parse_tasks(served_tasks_text(parse_mode(text)), source=text)
        (task,) = config.reranks.values()
        assert task.feed == "home_feed"
        # the server and oracle modes' re-rank is a shadow
        assert task.apply is (text not in ("server", "oracle"))
        assert task.record_inputs
        assert parse_mode(text).compared is (text != "server")


def test_the_oracle_orders_by_the_users_current_interest() -> None:
    user = ServedUser("dev000004", 1)
    gen = user.play(30, 0)
    step = next(gen)
    while not isinstance(step, SetPage):
        step = next(gen)
    user.session = {}
    assert oracle_order(step, user) == step.server_order()  # long-term only: the server's order
    # the user now wants the category of the page's last item: its items move to the top
    last = step.server_order()[-1]
    cat = int(last) // 100_000
    user.session = {cat: 5.0}
    order = oracle_order(step, user)
    mine = [i for i in step.server_order() if int(i) // 100_000 == cat]
    assert order[: len(mine)] == mine
    assert sorted(order) == sorted(step.server_order())


def test_the_rerank_policy_sets_the_tasks_kind() -> None:
    for policy, kind, k in (("edgerec", "edgerec", 5), ("swipe", "edgerec", 1),
                            ("kuaishou", "kuaishou", None)):  # fmt: skip
        config = parse_tasks(served_tasks_text(parse_mode("heuristic"), policy), source=policy)
        (task,) = config.reranks.values()
        assert task.kind == kind
        if k is not None:
            assert task.k == k
        assert task.strategy == "greedy"
    with pytest.raises(ValueError, match="--rerank-policy"):
        served_tasks_text(parse_mode("heuristic"), "often")


@pytest.mark.parametrize("bad", ["", "best", "model:", "model:/no/such/file.onnx"])
def test_bad_modes_are_refused_in_one_line(bad: str) -> None:
    with pytest.raises(ValueError, match=r"--ranking") as info:
        parse_mode(bad)
    assert "\n" not in str(info.value)


def test_the_page_carries_the_servers_predicted_ctr_in_server_order() -> None:
    user = ServedUser("dev000004", 1)
    gen = user.play(30, 0)
    step = next(gen)
    while not isinstance(step, SetPage):
        step = next(gen)
    page = page_of(step, user)
    scores = [c.get("server_score") for c in page.candidates]
    assert page.items == step.items
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 < s < 1.0 for s in scores)


def test_the_heuristic_lifts_clicked_categories_and_drops_deleted_ones() -> None:
    from streamfeat.models.edgerec import builtin_spec

    spec = builtin_spec("edgerec-small", name="heuristic")
    model = load_model(type(spec)(spec.name, heuristic_model_path(), spec.inputs))
    cands = np.array([[[117, 0.10, 1, 5], [118, 0.10, 1, 5], [150, 0.10, 1, 5], [200, 0.2, 1, 5]]],
                     np.float32)  # fmt: skip
    exp = np.zeros((1, 3, 11), np.float32)
    exp[0, 1, 0], exp[0, 1, 8] = 117, 1  # clicked an item of 117
    exp[0, 2, 0], exp[0, 2, 9] = 200, 1  # deleted an item of 200
    scores = model.run({"candidates": cands, "exposures": exp,
                        "page_views": np.zeros((1, 1, 13), np.float32)}).reshape(-1)  # fmt: skip
    assert scores[0] > scores[1] > scores[2]  # the category, then its group, then the rest
    assert scores[3] < scores[2]  # deleted category: below an equal item, though scored higher


def test_the_shipped_heuristic_is_what_the_builder_writes() -> None:
    pytest.importorskip("onnx")
    from streamfeat.sim._heuristic import build_heuristic

    assert build_heuristic() == heuristic_model_path().read_bytes()
