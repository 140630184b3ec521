"""Task code next to the tasks file: found there first, refused at load with file and key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from streamfeat.errors import ConfigError, TaskError, TaskLoadError
from streamfeat.runtime import TaskRunner
from streamfeat.tasks import load_tasks, parse_tasks, resolve_tasks

TASKS = """
[triggers]
clicked = "click"
[tasks.score]
on = ["clicked"]
run = "{run}"
"""


def _write(folder: Path, run: str) -> Path:
    path = folder / "tasks.toml"
    path.write_text(TASKS.format(run=run), encoding="utf-8")
    return path


def test_module_next_to_the_tasks_file_is_found_without_pythonpath(tmp_path: Path) -> None:
    (tmp_path / "sf_rerank_next.py").write_text(
        "import sf_rerank_helper\ndef score(ctx):\n    ctx.emit({'n': sf_rerank_helper.N})\n",
        encoding="utf-8",
    )
    (tmp_path / "sf_rerank_helper.py").write_text("N = 7\n", encoding="utf-8")
    config = load_tasks(_write(tmp_path, "sf_rerank_next:score"))
    fns = resolve_tasks(config)
    assert fns["score"].__module__ == "sf_rerank_next"
    assert Path(fns["score"].__code__.co_filename).parent == tmp_path.resolve()


def test_the_folder_wins_over_an_installed_module(tmp_path: Path) -> None:
    # `streamfeat_demo_shadow` is not installed; a package of the same name in the folder is
    pkg = tmp_path / "sf_pkg_next"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("", encoding="utf-8")
    (pkg / "tasks.py").write_text("def go(ctx):\n    return None\n", encoding="utf-8")
    config = load_tasks(_write(tmp_path, "sf_pkg_next.tasks:go"))
    assert resolve_tasks(config)["score"].__module__ == "sf_pkg_next.tasks"


def test_a_shadowed_module_already_imported_elsewhere_is_refused(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("def f(ctx):\n    return None\n", encoding="utf-8")
    with pytest.raises(TaskLoadError) as info:
        resolve_tasks(load_tasks(_write(tmp_path, "json:f")))
    assert info.value.key == "tasks.score.run"
    assert "shadows" in info.value.reason


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        ("sf_no_such_module:score", "no module named 'sf_no_such_module'"),
        ("sf_has_no_fn:nope", "has no 'nope'"),
        ("sf_broken_import:score", "ZeroDivisionError"),
        ("sf_not_callable:VALUE", "is not callable"),
    ],
)
def test_a_missing_module_or_function_is_refused_with_file_key_and_reason(
    tmp_path: Path, run: str, reason: str
) -> None:
    # each case imports its own module: a name imported from another test's folder is refused
    (tmp_path / "sf_has_no_fn.py").write_text("VALUE = 3\n", encoding="utf-8")
    (tmp_path / "sf_not_callable.py").write_text("VALUE = 3\n", encoding="utf-8")
    (tmp_path / "sf_broken_import.py").write_text("1 / 0\n", encoding="utf-8")
    path = _write(tmp_path, run)
    with pytest.raises(TaskLoadError) as info:
        resolve_tasks(load_tasks(path))
    err = info.value
    assert isinstance(err, ConfigError)
    assert isinstance(err, TaskError)
    assert err.file == str(path)
    assert err.key == "tasks.score.run"
    assert reason in err.reason


def test_the_task_runner_resolves_through_the_same_step(tmp_path: Path) -> None:
    path = _write(tmp_path, "sf_missing_for_runner:score")

    async def build() -> None:
        TaskRunner(load_tasks(path), output=lambda r: None)

    with pytest.raises(TaskLoadError) as info:
        asyncio.run(build())
    assert info.value.file == str(path)


def test_tasks_text_has_no_folder() -> None:
    config = parse_tasks(TASKS.format(run="sf_text_only_missing:score"), source="<tasks v2>")
    with pytest.raises(TaskLoadError) as info:
        resolve_tasks(config)
    assert "looked in" not in info.value.reason
