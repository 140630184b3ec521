"""Commands of the tunnel: ``serve``, ``keys``, ``device add/revoke/list/config``."""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
from pathlib import Path
from typing import Any

from streamfeat._cli_env import EnvDefault
from streamfeat.endpoint._registry import Registry, endpoint_keypair, write_key_file
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.errors import StorageError
from streamfeat.tunnel._crypto import KeyPair

__all__ = ["add_parsers"]

_DEFAULT_DB = "streamfeat-endpoint.db"


def _key_default(args: argparse.Namespace) -> Path:
    return Path(args.key) if args.key else Path(args.db).with_name("endpoint.key")


def _db_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="PATH",
        action=EnvDefault,
        envvar="STREAMFEAT_ENDPOINT_DB",
        default=_DEFAULT_DB,
        help="endpoint database (devices, batches, configs)",
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        action=EnvDefault,
        envvar="STREAMFEAT_ENDPOINT_KEY",
        default=None,
        help="endpoint key file (default: endpoint.key beside --db)",
    )


def add_parsers(sub: Any) -> None:
    """Add ``serve``, ``keys`` and ``device`` to the ``streamfeat`` command line."""
    p = sub.add_parser(
        "serve", help="run the cloud endpoint (websocket /v1/tunnel, /healthz, /metrics)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        action=EnvDefault,
        envvar="STREAMFEAT_HOST",
        help="address to bind",
    )
    p.add_argument(
        "--port",
        type=int,
        default=8470,
        action=EnvDefault,
        envvar="STREAMFEAT_PORT",
        help="port (0 = any free port; the bound one is printed)",
    )
    p.add_argument(
        "--tasks",
        metavar="FILE",
        action="append",
        help="tasks file(s) whose records the devices upload, to decode and store them "
        "(repeat for several versions; default: the embedded default tasks file)",
    )
    p.add_argument(
        "--admin-token-file",
        metavar="FILE",
        action=EnvDefault,
        envvar="STREAMFEAT_ADMIN_TOKEN_FILE",
        default=None,
        help="owner-only file holding the token /dashboard and /metrics require "
        "(default: none, and only loopback clients may see them)",
    )
    _db_option(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "keys", help="create the endpoint's key pair (owner-only file) and print its public key"
    )
    p.add_argument("--dir", default=".", metavar="DIR", help="where to write endpoint.key")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing key (devices must be re-provisioned)",
    )
    p.set_defaults(func=_keys)

    dev = sub.add_parser("device", help="manage the devices the endpoint accepts")
    dsub = dev.add_subparsers(dest="device_command", metavar="ACTION")
    dsub.required = True
    p = dsub.add_parser("add", help="create a device key pair, register it, write its device file")
    p.add_argument("name")
    _db_option(p)
    p.add_argument(
        "--url", default="ws://127.0.0.1:8470/v1/tunnel", help="endpoint URL for the device file"
    )
    p.add_argument("--out", metavar="FILE", help="device file to write (default: NAME.device.json)")
    p.set_defaults(func=_device_add)
    p = dsub.add_parser("revoke", help="refuse this device from now on")
    p.add_argument("name")
    _db_option(p)
    p.set_defaults(func=_device_revoke)
    p = dsub.add_parser("list", help="list registered devices")
    _db_option(p)
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=_device_list)
    p = dsub.add_parser(
        "config", help="set the config sent down to a device (on its next connection)"
    )
    p.add_argument("name")
    p.add_argument("file", help="file whose bytes are the config (a tasks file)")
    p.add_argument(
        "--version", type=int, required=True, help="config version (devices keep the highest)"
    )
    _db_option(p)
    p.set_defaults(func=_device_config)


def _decoder(paths: list[str] | None) -> Any:
    """Return ``bytes -> records`` for the schemas of the given tasks files (or the default)."""
    from streamfeat.data import default_tasks_text
    from streamfeat.encoders import decode_batch, index_schemas, schemas_for
    from streamfeat.tasks import load_tasks, parse_tasks

    configs = [load_tasks(p) for p in paths] if paths else [parse_tasks(default_tasks_text())]
    schemas = index_schemas(*(schemas_for(c) for c in configs))
    return functools.partial(decode_batch, schemas_by_id=schemas)


def _serve(args: argparse.Namespace) -> int:
    from streamfeat.endpoint._server import serve
    from streamfeat.errors import ConfigError

    try:
        decoder = _decoder(args.tasks)
    except ConfigError as exc:
        args.parser.error(str(exc))
    token = None
    if args.admin_token_file:
        from streamfeat.endpoint._admin import load_admin_token

        try:
            token = load_admin_token(args.admin_token_file)
        except ConfigError as exc:
            print(f"streamfeat serve: {exc}", file=sys.stderr)
            return 2

    def ready(host: str, port: int) -> None:
        # scripts and tests read the bound port from this line
        print(f"listening on http://{host}:{port}", flush=True)

    asyncio.run(
        serve(
            host=args.host,
            port=args.port,
            db=Path(args.db),
            key_path=_key_default(args),
            decoder=decoder,
            ready=ready,
            admin_token=token,
        )
    )
    return 0


def _keys(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "endpoint.key"
    if path.exists() and args.force:
        path.unlink()
    kp = endpoint_keypair(path)
    print(f"{path}\t{kp.public.hex()}")
    return 0


def _device_add(args: argparse.Namespace) -> int:
    endpoint = endpoint_keypair(_key_default(args))
    kp = KeyPair.generate(os.urandom)
    reg = Registry(args.db)
    try:
        reg.add(args.name, kp.public)
    except StorageError as exc:
        args.parser.error(str(exc))
    finally:
        reg.close()
    out = Path(args.out or f"{args.name}.device.json")
    write_key_file(
        out,
        {
            "kind": "streamfeat-device",
            "device": args.name,
            "url": args.url,
            "private_key": kp.private.hex(),
            "public_key": kp.public.hex(),
            "endpoint_public_key": endpoint.public.hex(),
        },
    )
    print(f"{args.name}\t{kp.public.hex()}\t{out}")
    return 0


def _device_revoke(args: argparse.Namespace) -> int:
    reg = Registry(args.db)
    try:
        if not reg.revoke(args.name):
            print(f"no active device named {args.name!r}", file=sys.stderr)
            return 1
    finally:
        reg.close()
    print(f"revoked {args.name}")
    return 0


def _device_list(args: argparse.Namespace) -> int:
    reg = Registry(args.db)
    try:
        for d in reg.list():
            state = "active" if d.active else "revoked"
            if args.json:
                print(
                    json.dumps(
                        {
                            "name": d.name,
                            "public_key": d.public_key.hex(),
                            "added": d.added,
                            "revoked": d.revoked,
                            "state": state,
                        }
                    )
                )
            else:
                print(f"{d.name}\t{state}\t{d.public_key.hex()}")
    finally:
        reg.close()
    return 0


def _device_config(args: argparse.Namespace) -> int:
    storage = SQLiteStorage(args.db)
    try:
        storage.set_config(args.name, args.version, Path(args.file).read_bytes())
    finally:
        storage.close()
    print(f"config v{args.version} set for {args.name}")
    return 0
