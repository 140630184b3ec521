"""The simulator's child processes: ``python -m MODULE`` speaking JSON lines on stdout."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from streamfeat._log import agent_log

__all__ = ["ChildProcess", "spawn"]


class ChildProcess:
    """A child process speaking JSON lines on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str, log: Path) -> None:
        self.proc = proc
        self.name = name
        self.log = log
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            try:
                self.messages.put_nowait(json.loads(line))
            except ValueError:
                agent_log.warning("%s: %s", self.name, line.decode(errors="replace").rstrip())
        self.messages.put_nowait({"exit": True})

    async def expect(self, key: str, within: float) -> dict[str, Any]:
        """Return the next message holding ``key`` (others are dropped)."""
        end = time.monotonic() + within
        while True:
            msg = await asyncio.wait_for(self.messages.get(), max(0.1, end - time.monotonic()))
            if key in msg:
                return msg
            if "exit" in msg:
                tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
                msg_text = f"{self.name} exited before sending {key!r}: {tail}"
                raise RuntimeError(msg_text)

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()


_ROOT = str(Path(__file__).resolve().parents[2])  # the directory holding streamfeat/


async def spawn(args: list[str], name: str, log: Path) -> ChildProcess:
    """Start ``python ARGS``; its stderr goes to ``log`` (appended: restarts keep the history)."""
    env = dict(os.environ)
    # the children import this very streamfeat, wherever the parent found it
    env["PYTHONPATH"] = _ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=err, limit=1 << 24, env=env,
        )  # fmt: skip
    return ChildProcess(proc, name, log)
