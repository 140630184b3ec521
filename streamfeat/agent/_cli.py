"""``streamfeat agent``: run the embedded agent on JSONL events read from standard input."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import queue
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from streamfeat._cli_env import EnvDefault
from streamfeat.errors import StreamfeatError

__all__ = ["add_parsers", "read_endpoint_key"]

_READ_AHEAD = 64  # lines read from stdin and not yet accepted, at most


def add_parsers(sub: Any) -> None:
    """Add ``agent`` to the ``streamfeat`` command line."""
    p = sub.add_parser(
        "agent", help="run the embedded agent on JSONL events from stdin",
        description="Run the on-device pipeline (engine, store, tasks, encoder, uploader) on JSONL "
        "events read from standard input, uploading to the endpoint. Tasks files pushed by the "
        "endpoint are applied live. At end of input: snapshot, wait for uploads, print a summary.",
    )  # fmt: skip
    p.add_argument("--tasks", metavar="T", help="tasks file (default: the embedded default)")
    p.add_argument("--store", metavar="S", required=True, help="the device's SQLite store")
    p.add_argument(
        "--endpoint",
        metavar="URL",
        action=EnvDefault,
        envvar="STREAMFEAT_ENDPOINT",
        help="ws://host:port/v1/tunnel (default: the device file's url)",
    )
    p.add_argument(
        "--endpoint-key",
        metavar="FILE",
        help="the endpoint's public key: hex text, or a key file (default: the device file's)",
    )
    p.add_argument(
        "--device-key",
        metavar="FILE",
        required=True,
        help="the device file written by `streamfeat device add` (0600)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="the device whose features and windows the agent's views read (default: the device file's name)",
    )
    p.add_argument(
        "--tick",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="seconds between wall-clock advances of idle devices' windows; 0 turns them off "
        "(for logs of past events, whose windows wall time would close at once) (default: %(default)s)",
    )
    p.add_argument(
        "--connect-wait",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="before reading input, wait this long for the endpoint (and a tasks file it holds "
        "for this device); 0 reads at once (default: %(default)s)",
    )
    p.add_argument(
        "--final", action="store_true", help="at end of input close every window (final records)"
    )
    p.add_argument(
        "--drain",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="at end of input wait this long for uploads to be acknowledged (default: %(default)s)",
    )
    p.set_defaults(func=_run)


def read_endpoint_key(path: str | Path) -> bytes:
    """Return the endpoint public key from a file of hex text or a JSON key file.

    Raises:
        StorageError: the file is missing or holds no 32-byte key.
    """
    from streamfeat.errors import StorageError

    try:
        text = Path(path).read_text().strip()
    except OSError as exc:
        msg = f"can't read endpoint key file {path}: {exc}"
        raise StorageError(msg) from exc
    if text.startswith("{"):
        data = json.loads(text)
        text = str(data.get("endpoint_public_key") or data.get("public_key") or "")
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        msg = f"endpoint key file {path} holds no 32-byte hex key"
        raise StorageError(msg)
    return key


def _run(args: argparse.Namespace) -> int:
    from streamfeat.upload._keys import read_key_file

    if sys.stdin is None:  # started with stdin closed (`<&-`): nothing to read, ever
        args.parser.error("standard input is closed: pipe JSONL events in")

    try:
        device_file = read_key_file(args.device_key)
        url = str(args.endpoint or device_file.get("url") or "")
        if not url:
            args.parser.error("no endpoint: give --endpoint or a device file with a url")
        key = (
            read_endpoint_key(args.endpoint_key)
            if args.endpoint_key
            else bytes.fromhex(device_file["endpoint_public_key"])
        )
        private = bytes.fromhex(device_file["private_key"])
    except (StreamfeatError, KeyError, ValueError) as exc:
        args.parser.error(f"device or endpoint key: {exc}")
    if args.tasks is None:
        from streamfeat.data import default_tasks_text

        tasks: Any = default_tasks_text()
    else:
        tasks = Path(args.tasks)
    try:
        summary, error = asyncio.run(
            _agent_main(args, tasks, url, key, private, device_file.get("device", "local"))
        )
    except StreamfeatError as exc:
        print(f"streamfeat agent: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary, sort_keys=True))
    if error is not None:
        print(f"streamfeat agent: {error}", file=sys.stderr)
        return 1
    return 0


def _reader(
    loop: asyncio.AbstractEventLoop, lines: queue.Queue[bytes | None], wake: Callable[[], None]
) -> None:
    """Read stdin on a thread, handing over each line as it arrives (a slow producer's records
    come at once); a full hand-over queue slows reading (backpressure)."""
    try:
        for line in sys.stdin.buffer:
            lines.put(line)
            loop.call_soon_threadsafe(wake)
    except (OSError, ValueError, AttributeError):  # a closed or missing stdin ends the input
        pass
    lines.put(None)
    with contextlib.suppress(RuntimeError):  # the loop may be gone already
        loop.call_soon_threadsafe(wake)


async def _agent_main(
    args: argparse.Namespace, tasks: Any, url: str, key: bytes, private: bytes, name: str
) -> tuple[dict[str, Any], str | None]:
    from streamfeat.agent import Agent

    agent = Agent(tasks=tasks, store_path=args.store, endpoint_url=url, endpoint_public_key=key,
                  device_key=private, device=args.device or name, tick=args.tick)  # fmt: skip
    await agent.start()
    gc.collect()
    gc.freeze()  # a long-running process: keep its long-lived objects out of full collections
    if args.connect_wait > 0:
        await agent.wait_connected(args.connect_wait)
    loop = asyncio.get_running_loop()
    lines: queue.Queue[bytes | None] = queue.Queue(_READ_AHEAD)
    ready = asyncio.Event()
    threading.Thread(
        target=_reader, args=(loop, lines, ready.set), daemon=True, name="streamfeat-stdin"
    ).start()
    line_no = 0
    error: str | None = None
    try:
        done = False
        while not done:
            await ready.wait()
            ready.clear()
            while True:
                try:
                    line = lines.get_nowait()
                except queue.Empty:
                    break
                if line is None:
                    done = True
                    break
                line_no += 1
                if line.strip():
                    await agent.submit_line(line, source="stdin", position=line_no)
    except StreamfeatError as exc:  # the store failed: intake stopped, what was accepted is kept
        error = f"{exc}; input line {line_no} was not accepted"
    finally:
        await agent.aclose(close_windows=args.final and error is None, drain_timeout=args.drain)
    if error is None and agent.failure is not None:
        error = str(agent.failure)
    s = agent.stats
    summary = {
        "lines": line_no, "events": s.submitted, "quarantined": s.quarantined, "records": s.records,
        "uploaded_records": s.uploaded_records, "payload_bytes": s.payload_bytes,
        "raw_bytes": s.events_raw_bytes, "outbox_waiting": agent.outbox_waiting,
        "config_version": agent.version, "replayed": s.replayed, "accepted": agent.accepted,
    }  # fmt: skip
    return summary, error
