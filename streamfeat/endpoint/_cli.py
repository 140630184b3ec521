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
from streamfeat.endpoint._backend import decoder_for, open_registry, open_storage
from streamfeat.endpoint._postgres import is_postgres_url
from streamfeat.endpoint._registry import Registry, endpoint_keypair, write_key_file
from streamfeat.endpoint._storage import MissingDatabase, SQLiteStorage
from streamfeat.errors import ConfigError, StorageError
from streamfeat.tunnel._crypto import KeyPair
from streamfeat.tunnel._frames import MAX_BODY

__all__ = ["add_parsers"]

_DEFAULT_DB = "streamfeat-endpoint.db"


# a CONFIG message is version u32 + body inside one DATA record (5 header bytes, 16 tag bytes)
MAX_CONFIG_BYTES = MAX_BODY - 5 - 16


class CliError(Exception):
    """A user's mistake in an endpoint command: printed as one line, exit status 2."""


def _key_default(args: argparse.Namespace) -> Path:
    if args.key:
        return Path(args.key)
    if is_postgres_url(args.db):
        return Path("endpoint.key")  # a URL has no directory to put it beside
    return Path(args.db).with_name("endpoint.key")


def _fail(args: argparse.Namespace, exc: BaseException | str) -> int:
    """Print one line ``streamfeat COMMAND: error: ...`` on stderr; return the exit status."""
    command = args.command if args.command != "device" else f"device {args.device_command}"
    print(f"streamfeat {command}: error: {exc}", file=sys.stderr)
    return 2


def _init_hint(args: argparse.Namespace) -> str:
    return f"create it with `streamfeat keys --db {args.db}`"


def _require_endpoint(args: argparse.Namespace, *, key: bool) -> None:
    """Refuse to go on without the endpoint database (and key): never create them implicitly.

    Raises:
        CliError: one is missing and ``--init`` was not given.
    """
    if getattr(args, "init", False):
        return
    db, key_path = Path(args.db), _key_default(args)
    if not is_postgres_url(args.db) and not db.exists():
        msg = f"endpoint database {db} does not exist; {_init_hint(args)} (or add --init)"
        raise CliError(msg)
    if key and not key_path.exists():
        msg = (
            f"endpoint key {key_path} does not exist; {_init_hint(args)} (or add --init; "
            "a new key means every device must be provisioned again)"
        )
        raise CliError(msg)


def _open_registry(args: argparse.Namespace) -> Any:
    if is_postgres_url(args.db):
        return open_registry(args.db)  # StorageError (server down, no driver): one line
    try:
        return Registry(args.db, create=False)
    except MissingDatabase as exc:
        msg = f"{exc}; {_init_hint(args)}"
        raise CliError(msg) from exc


def _db_option(p: argparse.ArgumentParser, *, init: bool = False) -> None:
    p.add_argument(
        "--db",
        metavar="PATH|URL",
        action=EnvDefault,
        envvar="STREAMFEAT_ENDPOINT_DB",
        default=_DEFAULT_DB,
        help="endpoint database (devices, batches, configs): an SQLite file, or "
        "postgresql://USER@HOST:PORT/DB (pip install 'streamfeat[postgres]')",
    )
    p.add_argument(
        "--key",
        metavar="FILE",
        action=EnvDefault,
        envvar="STREAMFEAT_ENDPOINT_KEY",
        default=None,
        help="endpoint key file (default: endpoint.key beside an SQLite --db, "
        "./endpoint.key with a postgresql:// one)",
    )
    if init:
        p.add_argument(
            "--init",
            action="store_true",
            help="create the endpoint database and key if they are missing "
            "(otherwise a missing one is an error: run `streamfeat keys --db PATH` once)",
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
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        action=EnvDefault,
        envvar="STREAMFEAT_WORKERS",
        metavar="N",
        help="endpoint processes on the port (SO_REUSEPORT; above 1 needs a postgresql:// --db)",
    )
    p.add_argument(
        "--pid-file",
        metavar="FILE",
        help='keep {"supervisor": PID, "workers": [PID, ...]} in FILE (runs the supervisor)',
    )
    _db_option(p, init=True)
    _limit_options(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "keys",
        help="initialise the endpoint: create its key pair (owner-only file) and, with --db, "
        "its database; print the public key",
    )
    p.add_argument("--dir", default=None, metavar="DIR", help="where to write endpoint.key")
    p.add_argument(
        "--db",
        metavar="PATH",
        default=None,
        help="also create this endpoint database (endpoint.key goes beside it)",
    )
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
    _db_option(p, init=True)
    p.add_argument(
        "--url", default="ws://127.0.0.1:8470/v1/tunnel", help="endpoint URL for the device file"
    )
    p.add_argument(
        "--out",
        metavar="FILE",
        help="device file to write (default: keys/NAME.device.json beside --db, folder 0700)",
    )
    p.set_defaults(func=_device_add)
    p = dsub.add_parser("revoke", help="refuse this device from now on (open connections close)")
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
    p.add_argument("file", help="the tasks file to send (checked before it is stored)")
    p.add_argument(
        "--version",
        type=int,
        required=True,
        help="config version, 1 .. 2**32-1 (devices keep the highest)",
    )
    _db_option(p)
    p.set_defaults(func=_device_config)


def _limit_options(p: argparse.ArgumentParser) -> None:
    """One option per :class:`Limits` field, generated from the dataclass (its help, unit
    and default), so a new limit is on the command line as soon as it is in ``Limits``."""
    from streamfeat.endpoint._limits import limit_options

    g = p.add_argument_group("limits (what one endpoint process allows)")
    for o in limit_options():
        g.add_argument(
            o.option, dest=o.dest, type=o.kind, default=o.default, metavar=o.metavar,
            help=f"{o.help} (default: %(default)s)",
        )  # fmt: skip


def limits_from_args(args: argparse.Namespace) -> Any:
    """The :class:`Limits` that the ``serve`` options of :func:`_limit_options` give."""
    from streamfeat.endpoint._limits import Limits, limit_options

    values: dict[str, Any] = {o.field: o.to_field(getattr(args, o.dest)) for o in limit_options()}
    return Limits(**values)


def _run(func: Any) -> Any:
    """Wrap a command: a user's mistake (CliError, StorageError, ConfigError) is one line."""

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (CliError, StorageError, ConfigError) as exc:
            return _fail(args, exc)

    return wrapper


@_run
def _serve(args: argparse.Namespace) -> int:
    from streamfeat.endpoint._server import serve

    if not 0 <= args.port <= 65535:
        msg = f"--port must be between 0 and 65535, got {args.port}"
        raise CliError(msg)
    limits = limits_from_args(args)
    limits.check()
    if args.workers < 1:
        msg = f"--workers must be at least 1, got {args.workers}"
        raise CliError(msg)
    _require_endpoint(args, key=True)
    decoder = decoder_for(args.tasks)
    token = None
    if args.admin_token_file:
        from streamfeat.endpoint._admin import load_admin_token

        token = load_admin_token(args.admin_token_file)  # ConfigError: one line (_run)
        if args.workers > 1 or args.pid_file:
            msg = (
                "--admin-token-file does not work with --workers or --pid-file yet (each worker's "
                "operator routes are loopback-only)"
            )
            raise CliError(msg)

    def ready(host: str, port: int) -> None:
        # scripts and tests read the bound port from this line
        print(f"listening on http://{host}:{port}", flush=True)

    if args.workers > 1 or args.pid_file or is_postgres_url(args.db):
        from streamfeat.endpoint._workers import run_supervisor, serve_worker

        if args.workers > 1 or args.pid_file:
            return run_supervisor(
                workers=args.workers,
                host=args.host,
                port=args.port,
                db=args.db,
                key_path=_key_default(args),
                tasks=args.tasks,
                pid_file=Path(args.pid_file) if args.pid_file else None,
                ready=ready,
                limits=limits,
            )
        asyncio.run(
            serve_worker(
                host=args.host,
                port=args.port,
                db=args.db,
                key_path=_key_default(args),
                decoder=decoder,
                ready=ready,
                admin_token=token,
                limits=limits,
            )
        )
        return 0

    try:
        asyncio.run(
            serve(
                host=args.host,
                port=args.port,
                db=Path(args.db),
                key_path=_key_default(args),
                decoder=decoder,
                ready=ready,
                limits=limits,
                admin_token=token,
            )
        )
    except OSError as exc:  # bind failed: port in use, address not available, no permission
        msg = f"can't listen on {args.host}:{args.port}: {exc.strerror or exc}"
        raise CliError(msg) from exc
    return 0


def _make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) with mode 0700 if missing."""
    if not path.exists():
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask


@_run
def _keys(args: argparse.Namespace) -> int:
    if args.db is None and args.dir is None:
        args.dir = "."
    if args.db is not None and is_postgres_url(args.db):
        path = Path(args.dir or ".") / "endpoint.key"
        if path.exists() and args.force:
            path.unlink()
        kp = endpoint_keypair(path)
        open_storage(args.db).close()  # creates or migrates the schema
        open_registry(args.db).close()
        print(f"{args.db}\tendpoint database")
        print(f"{path}\t{kp.public.hex()}")
        return 0
    if args.db is not None:
        db = Path(args.db)
        _make_private_dir(db.parent)
        path = Path(args.dir) / "endpoint.key" if args.dir else db.with_name("endpoint.key")
    else:
        path = Path(args.dir) / "endpoint.key"
    if path.exists() and args.force:
        path.unlink()
    kp = endpoint_keypair(path)
    if args.db is not None:
        SQLiteStorage(args.db).close()
        Registry(args.db, check=False).close()
        print(f"{args.db}\tendpoint database")
    print(f"{path}\t{kp.public.hex()}")
    return 0


@_run
def _device_add(args: argparse.Namespace) -> int:
    _require_endpoint(args, key=True)
    endpoint = endpoint_keypair(_key_default(args), create=bool(args.init))
    kp = KeyPair.generate(os.urandom)
    reg = (
        open_registry(args.db)
        if is_postgres_url(args.db)
        else Registry(args.db, create=bool(args.init))
    )
    try:
        reg.add(args.name, kp.public)
    finally:
        reg.close()
    if args.out:
        out = Path(args.out)
    else:
        keys = Path(args.db).parent / "keys"
        _make_private_dir(keys)
        out = keys / f"{args.name}.device.json"
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
    print(f"device file (private key, mode 0600) written to {out}", file=sys.stderr)
    return 0


@_run
def _device_revoke(args: argparse.Namespace) -> int:
    reg = _open_registry(args)
    try:
        if not reg.revoke(args.name):
            print(f"no active device named {args.name!r}", file=sys.stderr)
            return 1
    finally:
        reg.close()
    print(f"revoked {args.name}")
    return 0


@_run
def _device_list(args: argparse.Namespace) -> int:
    reg = _open_registry(args)
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


def check_config(path: Path, version: int) -> bytes:
    """Read and check a config for ``device config``; return its bytes.

    Raises:
        ConfigError: the file can't be read, is not UTF-8, not TOML, not a valid tasks file,
            too large for the downlink, or the version is out of range (file, key, reason).
    """
    from streamfeat.tasks import parse_tasks

    if not 1 <= version < 2**32:
        msg = f"`--version` must be between 1 and {2**32 - 1} (a u32 on the wire), got {version}"
        raise ConfigError(msg, file=str(path))
    try:
        body = path.read_bytes()
    except OSError as exc:
        msg = f"can't read the config file: {exc.strerror or exc}"
        raise ConfigError(msg, file=str(path)) from exc
    if len(body) > MAX_CONFIG_BYTES:
        msg = (
            f"{len(body)} bytes is too large for the downlink (one CONFIG message holds at most "
            f"{MAX_CONFIG_BYTES} bytes)"
        )
        raise ConfigError(msg, file=str(path))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.start}): a tasks file is TOML"
        raise ConfigError(msg, file=str(path)) from exc
    parse_tasks(text, source=str(path))  # TOML and the tasks contract: file, key, reason
    return body


@_run
def _device_config(args: argparse.Namespace) -> int:
    body = check_config(Path(args.file), args.version)
    reg = _open_registry(args)
    try:
        entry = reg.get(args.name)
    finally:
        reg.close()
    if entry is None:
        msg = f"no device named {args.name!r} in {args.db} (see `streamfeat device list`)"
        raise CliError(msg)
    # stored, and queued so every running endpoint process pushes it live (_downlink)
    from streamfeat.endpoint._release_store import open_release_store
    from streamfeat.endpoint._releases import queue_config

    store = open_release_store(args.db)
    try:
        queue_config(store, args.name, args.version, body)
    finally:
        store.close()
    print(f"config v{args.version} set for {args.name}")
    return 0
