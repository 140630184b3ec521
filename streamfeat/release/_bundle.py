"""Bundles: a tasks file, the model files it names and its task code, as one signed package.

Theory of operation. A bundle's *archive* is a canonical tar (USTAR, members sorted by path,
every header with mtime 0, mode 0644, uid/gid 0 and no user names), so the same files always
give the same bytes; its **id** is the sha256 of those bytes (content addressing: a device
that holds an id holds exactly those files). The archive holds ``bundle.json`` (name, version,
the tasks file's path and each file's sha256) beside the files.

The *signed bundle* is what travels and what a device caches::

    b"SFBUNDLE1\\n"                      magic, 10 bytes
    u32 big-endian N, N bytes           header: canonical JSON {"id", "key", "name",
                                        "size", "version"} (sorted keys, no spaces)
    64 bytes                            Ed25519 signature over SIGNING_CONTEXT + header bytes
    size bytes                          the archive

The release key is Ed25519 (``cryptography``); the device pins its public key, as it pins the
endpoint's tunnel key. :func:`verify_bundle` checks, in order: the framing, the key named in
the header against the pinned key, the signature, the size, the sha256 against the id, and
the archive's members against ``bundle.json``. Any failure raises :class:`BundleError` with a
short ``reason``; nothing here touches files (building from a folder is a thin helper).
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from streamfeat.errors import BundleError

__all__ = [
    "MAGIC",
    "MANIFEST",
    "SIGNING_CONTEXT",
    "Bundle",
    "BundleHeader",
    "build_archive",
    "files_from_dir",
    "public_key_bytes",
    "read_header",
    "sign_bundle",
    "verify_bundle",
]

MAGIC = b"SFBUNDLE1\n"
SIGNING_CONTEXT = b"streamfeat bundle v1\x00"
MANIFEST = "bundle.json"
TASKS_FILE = "tasks.toml"
_SIG = 64
_MAX_HEADER = 4096
_MAX_FILES = 256
# Files a bundle may carry: the tasks file, task code, models and small data next to them.
_SUFFIXES = (".toml", ".py", ".onnx", ".mnn", ".json", ".txt", ".csv", ".npy")


@dataclass(frozen=True, slots=True)
class BundleHeader:
    """The signed header of a bundle."""

    id: str
    key: str
    name: str
    size: int
    version: str

    def encode(self) -> bytes:
        """The canonical JSON bytes that are signed."""
        doc = {
            "id": self.id,
            "key": self.key,
            "name": self.name,
            "size": self.size,
            "version": self.version,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified bundle: its header and its files (path -> bytes), ``bundle.json`` aside."""

    header: BundleHeader
    files: Mapping[str, bytes]

    @property
    def id(self) -> str:
        """The content address: sha256 of the archive, hex."""
        return self.header.id

    @property
    def tasks_text(self) -> str:
        """The bundle's tasks file."""
        return self.files[TASKS_FILE].decode("utf-8")


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """The raw 32-byte Ed25519 public key."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(Encoding.Raw, PublicFormat.Raw)


def _check_path(name: str) -> None:
    p = PurePosixPath(name)
    if (
        not name
        or p.is_absolute()
        or ".." in p.parts
        or name != p.as_posix()
        or len(name.encode()) > 100
        or any(part.startswith(".") for part in p.parts)
    ):
        raise BundleError("content", f"{name!r} is not a plain relative path of <= 100 bytes")


def build_archive(files: Mapping[str, bytes], *, name: str, version: str) -> bytes:
    """Return the canonical archive of ``files`` (relative POSIX path -> bytes).

    ``bundle.json`` is written from the files; ``tasks.toml`` must be among them.

    Raises:
        BundleError: a path that is not plain and relative, no tasks file, too many files.
    """
    if TASKS_FILE not in files:
        raise BundleError("content", f"a bundle needs a {TASKS_FILE} at its top")
    if MANIFEST in files:
        raise BundleError("content", f"{MANIFEST} is written by the build, not given")
    if len(files) > _MAX_FILES:
        raise BundleError("content", f"{len(files)} files; at most {_MAX_FILES}")
    for path in files:
        _check_path(path)
    manifest = {
        "name": name,
        "version": version,
        "tasks": TASKS_FILE,
        "files": {p: hashlib.sha256(files[p]).hexdigest() for p in sorted(files)},
    }
    members = {**files, MANIFEST: json.dumps(manifest, sort_keys=True, indent=1).encode()}
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(members):
            data = members[path]
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def files_from_dir(folder: str | Path) -> dict[str, bytes]:
    """Read the files a bundle carries from ``folder`` (hidden files and caches left out).

    Raises:
        BundleError: the folder is missing or has no tasks file.
    """
    root = Path(folder)
    if not root.is_dir():
        raise BundleError("content", f"{root} is not a folder")
    files: dict[str, bytes] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or any(part.startswith((".", "__pycache__")) for part in rel.split("/")):
            continue
        if p.suffix not in _SUFFIXES:
            continue
        files[rel] = p.read_bytes()
    if TASKS_FILE not in files:
        raise BundleError("content", f"{root} has no {TASKS_FILE}")
    return files


def sign_bundle(
    archive: bytes, key: Ed25519PrivateKey, *, name: str, version: str
) -> tuple[BundleHeader, bytes]:
    """Sign ``archive`` with the release key; return the header and the signed bundle bytes."""
    header = BundleHeader(
        id=hashlib.sha256(archive).hexdigest(),
        key=public_key_bytes(key).hex(),
        name=name,
        size=len(archive),
        version=version,
    )
    head = header.encode()
    sig = key.sign(SIGNING_CONTEXT + head)
    return header, MAGIC + struct.pack(">I", len(head)) + head + sig + archive


def read_header(data: bytes) -> tuple[BundleHeader, int]:
    """Parse the framing; return the header and the offset of the signature.

    Raises:
        BundleError: ``format`` or ``truncated``.
    """
    if len(data) < len(MAGIC) + 4:
        raise BundleError("truncated", f"{len(data)} bytes is shorter than a bundle's framing")
    if not data.startswith(MAGIC):
        raise BundleError("format", "not a streamfeat bundle (bad magic)")
    (n,) = struct.unpack_from(">I", data, len(MAGIC))
    start = len(MAGIC) + 4
    if n > _MAX_HEADER:
        raise BundleError("format", f"header of {n} bytes; at most {_MAX_HEADER}")
    if len(data) < start + n + _SIG:
        raise BundleError("truncated", "the header or the signature is cut short")
    try:
        doc = json.loads(data[start : start + n])
        header = BundleHeader(
            id=str(doc["id"]),
            key=str(doc["key"]),
            name=str(doc["name"]),
            size=int(doc["size"]),
            version=str(doc["version"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BundleError("format", f"unreadable header: {exc}") from exc
    if header.encode() != data[start : start + n]:
        raise BundleError("format", "the header is not in canonical form")
    return header, start + n


def verify_bundle(data: bytes, pinned_key: bytes) -> Bundle:
    """Verify a signed bundle against the pinned release public key (32 raw bytes).

    Returns:
        The bundle with its files.

    Raises:
        BundleError: with ``reason`` one of ``format``, ``truncated``, ``key`` (signed by
            another key), ``signature``, ``hash``, ``content``. Nothing is changed.
    """
    header, at = read_header(data)
    if header.key != pinned_key.hex():
        raise BundleError("key", f"signed by key {header.key[:16]}..., not the pinned release key")
    head = data[len(MAGIC) + 4 : at]
    sig = data[at : at + _SIG]
    try:
        Ed25519PublicKey.from_public_bytes(pinned_key).verify(sig, SIGNING_CONTEXT + head)
    except (InvalidSignature, ValueError) as exc:
        raise BundleError("signature", "the signature does not verify") from exc
    archive = data[at + _SIG :]
    if len(archive) != header.size:
        reason = "truncated" if len(archive) < header.size else "format"
        raise BundleError(reason, f"archive of {len(archive)} bytes, header says {header.size}")
    if hashlib.sha256(archive).hexdigest() != header.id:
        raise BundleError("hash", "the archive's sha256 does not match the bundle id")
    return Bundle(header, _read_archive(archive))


def _read_archive(archive: bytes) -> dict[str, bytes]:
    members: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:") as tar:
            for info in tar:
                if not info.isreg():
                    raise BundleError("content", f"{info.name!r} is not a regular file")
                _check_path(info.name)
                f = tar.extractfile(info)
                if f is None:  # pragma: no cover - regular files always have data
                    raise BundleError("content", f"{info.name!r} has no data")
                members[info.name] = f.read()
    except tarfile.TarError as exc:
        raise BundleError("content", f"unreadable archive: {exc}") from exc
    try:
        manifest = json.loads(members.pop(MANIFEST))
        listed = manifest["files"]
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError("content", f"no readable {MANIFEST}") from exc
    if set(listed) != set(members):
        raise BundleError("content", f"{MANIFEST} does not list exactly the archive's files")
    for path, digest in listed.items():
        if hashlib.sha256(members[path]).hexdigest() != digest:
            raise BundleError("content", f"{path} does not match its sha256 in {MANIFEST}")
    if TASKS_FILE not in members:
        raise BundleError("content", f"no {TASKS_FILE}")
    return members
