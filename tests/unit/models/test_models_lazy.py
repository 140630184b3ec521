"""Reading a tasks file and replaying a log import neither numpy nor onnxruntime.

Most commands read the tasks file and run no model (a replay, ``tasks check`` of a file
without models, the agent before its first re-rank): numpy alone is about 20 MB of resident
memory and a third of the command's start-up. What needs it is imported when first asked for
(:mod:`streamfeat.models`, :mod:`streamfeat.ranking`, the store's ``sqlite_utils``). Each
check runs in a fresh interpreter, since this test process has imported numpy long ago.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

HEAVY = ("numpy", "onnxruntime", "torch")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint('HEAVY:', *(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    line = [x for x in out.splitlines() if x.startswith("HEAVY:")][-1]
    return set(line.split()[1:])


def test_a_replay_of_the_default_tasks_file_imports_no_numpy(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    events = [
        {"device": "d", "ts": 1_000 * i, "type": t, "page": "home_feed", "item": f"i{i % 3}"}
        for i, t in enumerate(["page_enter", "exposure", "exposure", "click", "page_exit"])
    ]
    log.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    code = (
        "from streamfeat.cli import main\n"
        f"assert main(['replay', {str(log)!r}, '--out', {str(tmp_path / 'o')!r}, "
        "'--no-progress']) == 0"
    )
    assert _modules_after(code) == set()
    assert (tmp_path / "o").read_bytes().count(b"\n") > 0


def test_the_lazy_names_are_the_real_ones() -> None:
    # the names still resolve, to the very objects of their modules
    import streamfeat.models as models
    import streamfeat.ranking as ranking
    from streamfeat.models import _runtime
    from streamfeat.ranking import _book, _context, _rerank

    assert models.Model is _runtime.Model
    assert models.load_model is _runtime.load_model
    assert ranking.PageBook is _book.PageBook
    assert ranking.build_inputs is _context.build_inputs
    assert ranking.Reranker is _rerank.Reranker
    for name in ranking.__all__:
        assert getattr(ranking, name) is not None
    for name in models.__all__:
        assert getattr(models, name) is not None


def test_an_unknown_name_is_an_attribute_error() -> None:
    import pytest

    import streamfeat.models as models
    import streamfeat.ranking as ranking

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = models.Nope  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = ranking.Nope  # type: ignore[attr-defined]


def test_loading_the_models_of_a_tasks_file_still_loads_them() -> None:
    code = (
        "from streamfeat.data import default_tasks_text\n"
        "from streamfeat.tasks import parse_tasks\n"
        "cfg = parse_tasks(default_tasks_text())\n"
        "assert set(cfg.loaded_models) == {'edgerec'}"
    )
    assert {"numpy", "onnxruntime"} <= _modules_after(code)
