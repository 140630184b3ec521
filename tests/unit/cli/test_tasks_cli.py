"""`streamfeat tasks init` / `tasks check`, `--version`, and the tasks-file JSON Schema."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import jsonschema
import pytest

import streamfeat
from streamfeat.cli import main
from streamfeat.data import default_tasks_text, starter_tasks_text, tasks_schema


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamfeat", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_init_output_passes_check(tmp_path: Path) -> None:
    init = _cli("tasks", "init", cwd=tmp_path)
    assert init.returncode == 0, init.stderr
    (tmp_path / "tasks.toml").write_text(init.stdout, encoding="utf-8")
    check = _cli("tasks", "check", "tasks.toml", cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert check.stdout.startswith("tasks.toml: ok\n")
    assert "rerank: on no_click -> streamfeat.tasks.examples:rerank_no_click" in check.stdout
    assert "visit = page_enter@item_detail * page_exit@item_detail within 30m" in check.stdout


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[triggers]\nt = "click{0}"\n', "triggers.t"),
        ('[windows.w]\nassign = "hopping 1h"\n', "windows.w.assign"),
        ('[triggers]\nt = "click"\n[tasks.x]\non = ["t"]\nrun = "sf_cli_nope:f"\n', "tasks.x.run"),
        ('[upload]\nencoding = "xml"\n', "upload.encoding"),
    ],
)
def test_check_exits_2_naming_file_key_and_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    assert main(["tasks", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamfeat tasks check: {path}: `{key}`: ")
    assert len(err.strip().splitlines()) == 1  # one line, no traceback


def test_check_imports_task_code_next_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "sf_cli_score.py").write_text("def score(ctx):\n    pass\n", encoding="utf-8")
    (tmp_path / "t.toml").write_text(
        '[triggers]\nt = "click"\n[tasks.s]\non = ["t"]\nrun = "sf_cli_score:score"\n',
        encoding="utf-8",
    )
    # run from another folder: the tasks file's folder is what counts, not the cwd
    other = tmp_path / "elsewhere"
    other.mkdir()
    done = _cli("tasks", "check", str(tmp_path / "t.toml"), "-q", cwd=other)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""


def test_version_flag_prints_the_metadata_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"streamfeat {streamfeat.__version__}\n"


@pytest.mark.parametrize("text", [default_tasks_text(), starter_tasks_text()])
def test_the_shipped_tasks_files_validate_against_the_schema(text: str) -> None:
    jsonschema.validate(tomllib.loads(text), tasks_schema())


@pytest.mark.parametrize(
    "doc",
    [
        {"triggers": {"t": "click"}, "tasks": {"x": {"on": ["t"]}}},  # no run
        {"windows": {"w": {"assign": "tumbling 1h", "size": 3}}},  # unknown key
        {"upload": {"encoding": "xml"}},
        {"engine": {"lateness": "2 seconds"}},
        {"features": {"f": {"kind": "ipv", "feed_pages": ["x"]}}},
        {"unknown_section": {}},
    ],
)
def test_a_bad_tasks_file_does_not_validate(doc: dict[str, object]) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, tasks_schema())


@pytest.mark.parametrize("content", [None, "[bad", '[tasks.x]\non = ["nope"]\nrun = "m:f"\n'])
def test_device_config_refuses_a_tasks_file_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None
) -> None:
    from streamfeat.endpoint import SQLiteStorage

    db = str(tmp_path / "ep.db")
    assert main(["keys", "--dir", str(tmp_path)]) == 0
    assert (
        main(["device", "add", "a", "--init", "--db", db, "--out", str(tmp_path / "a.json")]) == 0
    )
    path = tmp_path / "new_tasks.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    capsys.readouterr()
    assert main(["device", "config", "a", str(path), "--version", "2", "--db", db]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"streamfeat device config: error: {path}: ")
    assert len(err.strip().splitlines()) == 1
    storage = SQLiteStorage(db)
    try:
        assert storage.get_config("a") is None
    finally:
        storage.close()
