"""Process helpers for the tunnel integration tests (endpoint and device subprocesses)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEVICE_PROC = Path(__file__).with_name("tunnel_device_proc.py")


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = str(ROOT) + os.pathsep + e.get("PYTHONPATH", "")
    return e


class Endpoint:
    """A ``streamfeat serve`` subprocess on 127.0.0.1."""

    def __init__(self, db: Path, port: int = 0, extra: list[str] | None = None) -> None:
        self.db = db
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamfeat",
                "serve",
                "--init",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--db",
                str(db),
                *(extra or []),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env(),
            cwd=ROOT,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), line
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"ws://127.0.0.1:{self.port}/v1/tunnel"
        self.http = f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(self.http + path, timeout=5) as r:
            return r.status, r.read().decode()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._close()

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(20)
        self._close()
        return code

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def start_device(
    device_file: Path, store: Path, n: int, url: str, delay: float = 0.002
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(DEVICE_PROC), str(device_file), str(store), str(n), url, str(delay)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env(),
        cwd=ROOT,
        text=True,
    )


def wait_until(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False
