"""``serve --workers N`` gives every worker ``serve``'s limits and admission guard: a quota set
on the command line is enforced by whichever worker takes the device (it used to be ignored)."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from pathlib import Path

from streamfeat.endpoint._registry import endpoint_keypair
from streamfeat.tunnel import Batch, Hello, Role, TunnelConnection
from tests.integration.test_pg_endpoint import _exchange, _register, _serve


def _refusals(port: int, reason: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith("streamfeat_tunnel_refusals_total{") and f'reason="{reason}"' in line
    )


def _all_refusals(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return [
        x
        for x in text.splitlines()
        if "refusals" in x and not x.startswith("#") and not x.endswith(" 0.0")
    ]


def test_every_worker_enforces_the_quota_given_to_serve(pg_url: str, tmp_path: Path) -> None:
    key = tmp_path / "endpoint.key"
    ep = endpoint_keypair(key)
    devices = [_register(pg_url, f"phone-{i}") for i in range(6)]
    proc = _serve(pg_url, key, "--workers", "2", "--quota-mb", "0.001")  # 1,000 bytes
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        port = int(line.rsplit(":", 1)[1])
        url = f"ws://127.0.0.1:{port}/v1/tunnel"
        for kp in devices:  # spread over both workers by the kernel
            conn = TunnelConnection(Role.DEVICE, static=kp, remote_static=ep.public)
            hello = conn.send(Hello(0, Batch(b"Q" * 16, b"x" * 2000)))  # over the quota
            asyncio.run(_exchange(url, hello))
        # A scrape is answered by one worker: its own live counters plus what the others last
        # published (every second). So right after one scrape shows all six, a scrape served
        # by another worker may still miss the first one's newest refusals: wait until every
        # worker has published again, then every scrape must count all six.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _refusals(port, "quota_exceeded") < len(devices):
            time.sleep(0.3)
        time.sleep(2.5)
        for _ in range(6):  # whichever worker answers
            assert _refusals(port, "quota_exceeded") == len(devices), _all_refusals(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc.stdout.close()
    from streamfeat.endpoint._postgres import PostgresStorage

    s = PostgresStorage(pg_url)
    try:
        assert s.batches() == []  # nothing over the quota was stored
    finally:
        s.close()
