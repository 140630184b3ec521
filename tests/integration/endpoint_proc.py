"""A ``streamfeat serve`` subprocess with options, an optional open-file limit and its log kept."""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from streamfeat.upload._client import Uploader, load_device_file
from streamfeat.upload._outbox import Outbox, OutboxConfig

ROOT = Path(__file__).resolve().parents[2]


class Serve:
    """``streamfeat serve --init --port 0`` on 127.0.0.1; stderr goes to ``log``."""

    def __init__(self, db: Path, *args: str, nofile: int | None = None) -> None:
        self.db = db
        self.log = db.with_name(db.name + ".serve.log")
        env = dict(os.environ, PYTHONPATH=str(ROOT))

        def limit() -> None:
            if nofile is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self._err = open(self.log, "ab")  # noqa: SIM115 - kept open for the process's life
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamfeat",
                "serve",
                "--init",
                "--port",
                "0",
                "--db",
                str(db),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=self._err,
            env=env,
            cwd=ROOT,
            text=True,
            preexec_fn=limit,  # only setrlimit, before exec
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("listening on "), (line, self.log.read_text())
        self.port = int(line.rsplit(":", 1)[1])
        self.url = f"ws://127.0.0.1:{self.port}/v1/tunnel"
        self.http = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, timeout: float = 5) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.http + path, timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def metric(self, name: str, **labels: str) -> float:
        want = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else ""
        )
        for line in self.get("/metrics")[1].splitlines():
            if line.startswith(want + " "):
                return float(line.split()[-1])
        raise AssertionError(want)

    def refusals(self, reason: str) -> float:
        return self.metric("streamfeat_tunnel_refusals_total", reason=reason)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(20)
        finally:
            self._close()
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close()

    def _close(self) -> None:
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._err.close()


def add_device(db: Path, name: str) -> Path:
    """``streamfeat device add`` in a subprocess; returns the device file."""
    out = db.parent / f"{name}.device.json"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "streamfeat",
            "device",
            "add",
            name,
            "--init",
            "--db",
            str(db),
            "--out",
            str(out),
        ],
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=True,
        capture_output=True,
    )
    return out


def add_devices(db: Path, names: list[str]) -> None:
    """Register many devices in one transaction (in this process) and write their files."""
    from streamfeat.endpoint import Registry
    from streamfeat.endpoint._registry import endpoint_keypair, write_key_file
    from streamfeat.tunnel import KeyPair

    endpoint = endpoint_keypair(db.with_name("endpoint.key"))
    keys = {n: KeyPair.generate(os.urandom) for n in names}
    reg = Registry(db)
    try:
        reg.add_many((n, k.public) for n, k in keys.items())
    finally:
        reg.close()
    for n, k in keys.items():
        write_key_file(
            db.parent / f"{n}.device.json",
            {
                "kind": "streamfeat-device",
                "device": n,
                "url": "ws://127.0.0.1:1/v1/tunnel",
                "private_key": k.private.hex(),
                "public_key": k.public.hex(),
                "endpoint_public_key": endpoint.public.hex(),
            },
        )


def uploader(device_file: Path, store: Path, url: str, **cfg: object) -> Uploader:
    """A device uploader with short timings for tests."""
    opts: dict[str, object] = {"backoff_base": 0.05, "backoff_cap": 0.5}
    opts.update(cfg)
    key, config = load_device_file(device_file, url=url, **opts)
    return Uploader(Outbox(store, OutboxConfig(batch_max_age=0.01)), key, config)


async def run_until(pred: object, timeout: float) -> bool:  # noqa: ASYNC109 - a poll, not I/O
    """Poll ``pred()`` every 20 ms until it is true or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if pred():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return False
