"""Commands of releases: ``bundle keys/build/verify`` and ``release create/rollout/status/
rollback/groups``. Every user mistake ends in one line on stderr and exit status 1."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from streamfeat.endpoint._backend import open_registry
from streamfeat.endpoint._postgres import is_postgres_url
from streamfeat.endpoint._registry import write_key_file
from streamfeat.endpoint._releases import ReleaseBook
from streamfeat.errors import StreamfeatError
from streamfeat.release import (
    HealthThresholds,
    build_archive,
    files_from_dir,
    parse_thresholds,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)
from streamfeat.tasks import parse_tasks

__all__ = ["add_parsers"]


def add_parsers(sub: Any) -> None:
    """Add ``bundle`` and ``release`` to the ``streamfeat`` command line."""
    b = sub.add_parser("bundle", help="build, sign and verify release bundles")
    bsub = b.add_subparsers(dest="bundle_command", metavar="ACTION")
    bsub.required = True
    p = bsub.add_parser("keys", help="create the release signing key (release.key, 0600)")
    p.add_argument("--dir", default=".", metavar="DIR")
    p.add_argument("--force", action="store_true", help="replace an existing key")
    p.set_defaults(func=_keys)
    p = bsub.add_parser("build", help="package DIR (tasks.toml, task code, models) and sign it")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--key", required=True, metavar="FILE", help="release.key")
    p.add_argument("--out", required=True, metavar="FILE", help="the signed bundle to write")
    p.add_argument("--name", help="bundle name (default: the folder's name)")
    p.add_argument("--version", default="1", help="bundle version label (default 1)")
    p.set_defaults(func=_build)
    p = bsub.add_parser("verify", help="check a bundle's signature, hash and contents")
    p.add_argument("bundle", metavar="FILE")
    p.add_argument("--pub", required=True, help="release public key: hex, or a file holding it")
    p.set_defaults(func=_verify)

    r = sub.add_parser("release", help="release bundles to the fleet: matrix, rollout, rollback")
    rsub = r.add_subparsers(dest="release_command", metavar="ACTION")
    rsub.required = True
    p = rsub.add_parser("create", help="create a release of bundles targeted by a matrix")
    p.add_argument("bundles", nargs="+", metavar="BUNDLE")
    p.add_argument("--matrix", required=True, metavar="FILE")
    p.add_argument("--health", metavar="FILE", help="TOML [health] thresholds for rollback")
    p.add_argument("--pub", required=True, help="release public key (hex or file): verified")
    _db(p)
    p.set_defaults(func=_create)
    p = rsub.add_parser("rollout", help="reach P percent of the targeted devices")
    p.add_argument("id")
    p.add_argument("--percent", type=float, required=True)
    _db(p)
    p.set_defaults(func=_rollout)
    p = rsub.add_parser("status", help="devices announced / pulled / live / failed, health")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    _db(p)
    p.set_defaults(func=_status)
    p = rsub.add_parser("rollback", help="send every reached device back")
    p.add_argument("id")
    p.add_argument("--reason", default="operator rollback")
    _db(p)
    p.set_defaults(func=_rollback)
    p = rsub.add_parser("groups", help="load a device,group CSV (the matrix's rows)")
    p.add_argument("file", metavar="CSV")
    _db(p)
    p.set_defaults(func=_groups)


def _db(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        required=True,
        metavar="PATH|URL",
        help="the endpoint database: an SQLite file or postgresql://USER@HOST:PORT/DB",
    )


def _fail(msg: str) -> int:
    print(f"streamfeat: {msg}", file=sys.stderr)
    return 1


def _pub(value: str) -> bytes:
    text = Path(value).read_text().strip() if Path(value).is_file() else value
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        msg = "--pub must be 64 hex digits (a release public key) or a file holding them"
        raise StreamfeatError(msg)
    return key


def _private(path: str) -> Ed25519PrivateKey:
    try:
        doc = json.loads(Path(path).read_text())
        if doc.get("kind") != "streamfeat-release":
            raise ValueError
        return Ed25519PrivateKey.from_private_bytes(bytes.fromhex(doc["private_key"]))
    except (OSError, ValueError, KeyError) as exc:
        msg = f"{path} is not a release key file (make one with `streamfeat bundle keys`)"
        raise StreamfeatError(msg) from exc


def _book(db: str) -> ReleaseBook:
    if not is_postgres_url(db) and not Path(db).exists():
        msg = f"{db} does not exist: give the endpoint database (`streamfeat serve --db`)"
        raise StreamfeatError(msg)
    return ReleaseBook(db)


def _run(fn: Any, args: argparse.Namespace) -> int:
    try:
        return int(fn(args))
    except (StreamfeatError, OSError) as exc:
        return _fail(str(exc))


def _keys(args: argparse.Namespace) -> int:
    return _run(_keys_impl, args)


def _keys_impl(args: argparse.Namespace) -> int:
    path = Path(args.dir) / "release.key"
    if path.exists() and not args.force:
        return _fail(f"{path} exists (--force replaces it; bundles signed before then fail)")
    key = Ed25519PrivateKey.from_private_bytes(os.urandom(32))
    pub = public_key_bytes(key).hex()
    write_key_file(
        path,
        {
            "kind": "streamfeat-release",
            "private_key": key.private_bytes_raw().hex(),
            "public_key": pub,
        },
    )
    (Path(args.dir) / "release.pub").write_text(pub + "\n")
    print(f"wrote {path} (0600) and release.pub; public key {pub}")
    return 0


def _build(args: argparse.Namespace) -> int:
    return _run(_build_impl, args)


def _build_impl(args: argparse.Namespace) -> int:
    key = _private(args.key)
    files = files_from_dir(args.dir)
    parse_tasks(files["tasks.toml"].decode("utf-8"), source=f"{args.dir}/tasks.toml")
    name = args.name or Path(args.dir).resolve().name
    archive = build_archive(files, name=name, version=args.version)
    header, data = sign_bundle(archive, key, name=name, version=args.version)
    Path(args.out).write_bytes(data)
    print(
        f"{args.out}: bundle {header.id} ({name} v{args.version}, {len(files)} files, {len(data)} bytes)"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    return _run(_verify_impl, args)


def _verify_impl(args: argparse.Namespace) -> int:
    bundle = verify_bundle(Path(args.bundle).read_bytes(), _pub(args.pub))
    files = ", ".join(sorted(bundle.files))
    print(f"ok: bundle {bundle.id} ({bundle.header.name} v{bundle.header.version}): {files}")
    return 0


def _create(args: argparse.Namespace) -> int:
    return _run(_create_impl, args)


def _create_impl(args: argparse.Namespace) -> int:
    pub = _pub(args.pub)
    thresholds = HealthThresholds()
    if args.health:
        doc = tomllib.loads(Path(args.health).read_text())
        thresholds = parse_thresholds(doc.get("health", doc), source=args.health)
    book = _book(args.db)
    try:
        now = time.time()
        for path in args.bundles:
            data = Path(path).read_bytes()
            verify_bundle(data, pub)
            book.add_bundle(data, now=now)
        release_id = "r-" + os.urandom(4).hex()
        book.create(
            release_id,
            Path(args.matrix).read_text(),
            thresholds=thresholds,
            now=now,
            source=args.matrix,
        )
    finally:
        book.close()
    print(release_id)
    return 0


def _rollout(args: argparse.Namespace) -> int:
    return _run(_rollout_impl, args)


def _rollout_impl(args: argparse.Namespace) -> int:
    book = _book(args.db)
    registry = open_registry(args.db)
    try:
        devices = [d.name for d in registry.list() if d.active]
        n = book.rollout(args.id, args.percent, devices, now=time.time())
    finally:
        book.close()
        registry.close()
    print(f"{args.id}: at {args.percent:g}%, announced to {n} more device(s)")
    return 0


def _status(args: argparse.Namespace) -> int:
    return _run(_status_impl, args)


def _status_impl(args: argparse.Namespace) -> int:
    book = _book(args.db)
    try:
        st = book.status(args.id)
    finally:
        book.close()
    if args.json:
        doc = {
            "id": st.id,
            "state": st.state,
            "percent": st.percent,
            "devices": st.by_status,
            "bundles": st.by_bundle,
            "health": st.health or "ok",
            "history": [
                {
                    "at": t.at,
                    "step": t.step,
                    "state": t.state.value,
                    "percent": t.percent,
                    "reason": t.reason,
                }
                for t in st.history
            ],
        }
        print(json.dumps(doc, sort_keys=True))
        return 0
    print(f"{st.id}: {st.state} at {st.percent:g}%; health: {st.health or 'ok'}")
    for bundle, counts in sorted(st.by_bundle.items()):
        print(f"  {bundle}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for t in st.history:
        print(
            f"  {time.strftime('%H:%M:%S', time.gmtime(t.at))} {t.step} -> {t.state.value}: {t.reason}"
        )
    return 0


def _rollback(args: argparse.Namespace) -> int:
    return _run(_rollback_impl, args)


def _rollback_impl(args: argparse.Namespace) -> int:
    book = _book(args.db)
    try:
        n = book.rollback(args.id, args.reason, now=time.time())
    finally:
        book.close()
    print(f"{args.id}: rolled back; {n} device(s) told to go back")
    return 0


def _groups(args: argparse.Namespace) -> int:
    return _run(_groups_impl, args)


def _groups_impl(args: argparse.Namespace) -> int:
    with open(args.file, newline="") as fh:
        rows = [
            (r[0].strip(), r[1].strip()) for r in csv.reader(fh) if len(r) >= 2 and r[0].strip()
        ]
    book = _book(args.db)
    try:
        n = book.set_groups(rows)
    finally:
        book.close()
    print(f"{n} device group(s) loaded")
    return 0
