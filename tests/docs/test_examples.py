"""Every example of the README and docs runs as written (see ``blocks.py`` for the rules).

One test per page: its blocks run in order in a temporary folder. A failure names the page,
the block's line and language, and shows the block and its output.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from streamfeat.errors import ConfigError
from streamfeat.tasks import parse_tasks
from tests.docs.blocks import ROOT, RUNNABLE, TEXT, Block, blocks, pages

DEFAULT_TIMEOUT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMFEAT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["STREAMFEAT_PORT"] = str(port)
    env.pop("PYTHONPATH", None)
    return env


def _fail(block: Block, what: str, output: str = "") -> None:
    shown = "\n".join(f"    {line}" for line in block.code.rstrip().splitlines())
    tail = f"\n--- output ---\n{output[-4000:]}" if output else ""
    pytest.fail(f"{block.where}: {what}\n--- block ---\n{shown}{tail}", pytrace=False)


def _check_toml(block: Block, name: str) -> None:
    try:
        parse_tasks(block.code, source=name)
    except ConfigError as exc:
        _fail(block, f"not a valid tasks file: {exc}")


def _check_json(block: Block) -> None:
    try:
        json.loads(block.code)
    except ValueError:
        for n, line in enumerate(block.code.splitlines(), 1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as exc:
                _fail(block, f"line {n} is neither a JSON value nor a JSON line: {exc}")


def _wait_ready(
    block: Block, proc: subprocess.Popen[str], url: str, limit: float, log: Path
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log.read_text(errors="replace")
            _fail(block, f"the background command exited with {proc.returncode}", out)
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    _fail(block, f"{url} did not answer within {limit:g} s", log.read_text(errors="replace"))


def _run(
    block: Block, cwd: Path, env: dict[str, str], background: list[subprocess.Popen[str]]
) -> None:
    opts = block.options
    limit = float(opts.get("timeout", DEFAULT_TIMEOUT))
    if "file" in opts:
        (cwd / opts["file"]).write_text(block.code, encoding="utf-8")
        if block.lang == "toml":
            _check_toml(block, opts["file"])
        return
    if block.lang == "toml":
        _check_toml(block, f"{block.where}")
        return
    if block.lang == "json":
        _check_json(block)
        return
    if block.lang == "python":
        script = cwd / f"_example_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, str(script)]
    else:
        argv = ["bash", "-eo", "pipefail", "-c", block.code]
    if "background" in opts:
        # output to a file, not a pipe: a chatty server must never block on a full pipe
        log = cwd / f"_background_{block.line}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    text=True, start_new_session=True)  # fmt: skip
        background.append(proc)
        if "ready" in opts:
            url = opts["ready"].replace("$STREAMFEAT_PORT", env["STREAMFEAT_PORT"])
            _wait_ready(block, proc, url, limit, log)
        return
    # a session of its own: on a timeout, and after the block, whatever it started (a server
    # left in the foreground, a `cmd &`) is stopped with it, never left running
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        _stop([proc])
        out, _ = proc.communicate()
        _fail(block, f"did not finish within {limit:g} s", out or "")
        return
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        _fail(block, f"exited with {proc.returncode}", out or "")


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    env = _env(_free_port())
    background: list[subprocess.Popen[str]] = []
    try:
        for block in blocks(page):
            if "skip" in block.options:
                assert block.options["skip"], f"{block.where}: `skip` needs a reason"
                continue
            if block.lang in TEXT:
                if block.looks_like_a_command:
                    _fail(block, "looks like a command: tag it ```sh so that it runs, or mark it "
                          "<!-- example: skip REASON -->")  # fmt: skip
                continue
            if block.lang not in RUNNABLE:
                _fail(block, f"unknown block language {block.lang!r} (known: {sorted(RUNNABLE)})")
            t0 = time.monotonic()
            _run(block, tmp_path, env, background)
            print(f"{block.where}: {time.monotonic() - t0:.1f} s")  # shown with -s
    finally:
        _stop(background)


def test_the_block_finder_reads_markers_and_languages(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        'text\n\n<!-- example: file t.toml -->\n```toml\n[triggers]\nc = "click"\n```\n\n'
        "```sh\necho hi\n```\n<!-- example: skip needs a phone; timeout 5 -->\n```python\nx\n```\n",
        encoding="utf-8",
    )
    found = blocks(page)
    assert [(b.lang, b.line) for b in found] == [("toml", 4), ("sh", 9), ("python", 13)]
    assert found[0].options == {"file": "t.toml"}
    assert found[1].options == {}
    assert found[2].options == {"skip": "needs a phone", "timeout": "5"}
    assert tomllib.loads(found[0].code) == {"triggers": {"c": "click"}}
