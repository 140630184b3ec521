"""Event input: JSONL (plain, ``.gz``, or ``-`` for stdin) and msgpack streams.

A reader yields, for every input unit (a line of JSONL, a message of msgpack), exactly one of:
a valid :class:`~streamfeat.Event`, or a :class:`~streamfeat.io._store.QuarantineEntry` with the
source, the 1-based position, the raw bytes and the reason. Nothing is dropped and nothing is
loaded whole: files are streamed.

A msgpack stream has no framing to resynchronise on: bytes that are not msgpack end the stream
with one quarantine entry holding the rest of the input (up to 1 MiB of it; the reason says how
much was read), since no later message boundary can be trusted.
"""

from __future__ import annotations

import gzip
import io
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgpack
import orjson

from streamfeat._event import Event, event_from_obj
from streamfeat.errors import EventError
from streamfeat.io._store import QuarantineEntry

__all__ = ["InputFile", "detect_format", "read_events", "read_jsonl", "read_msgpack"]

_MAX_QUARANTINE_TAIL = 1 << 20


def detect_format(name: str) -> str:
    """Return ``"msgpack"`` for ``.msgpack``/``.mpk`` names (optionally ``.gz``), else ``"jsonl"``."""
    base = name[:-3] if name.endswith(".gz") else name
    return "msgpack" if base.endswith((".msgpack", ".mpk")) else "jsonl"


class InputFile:
    """An opened event source that also reports how far it has been read (for progress bars).

    Args:
        name: a path (``.gz`` is decompressed) or ``-`` for standard input.
    """

    def __init__(self, name: str | Path) -> None:
        self.name = str(name)
        self._raw: BinaryIO
        if self.name == "-":
            self._raw = sys.stdin.buffer
            self.size: int | None = None
        else:
            path = Path(self.name)
            self._raw = path.open("rb")
            self.size = path.stat().st_size
        self.stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
            if self.name.endswith(".gz")
            else self._raw
        )

    def consumed(self) -> int:
        """Bytes of the underlying file read so far (compressed bytes for ``.gz``)."""
        try:
            return self._raw.tell()
        except (OSError, io.UnsupportedOperation):
            return 0

    def close(self) -> None:
        if self.stream is not self._raw:
            self.stream.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


def _reason(exc: Exception) -> str:
    return str(exc)


def read_jsonl(
    stream: BinaryIO, *, source: str = "-", skip: int = 0
) -> Iterator[Event | QuarantineEntry]:
    """Yield one Event or QuarantineEntry per line of ``stream``.

    Args:
        stream: a binary stream of JSON lines.
        source: the name used in quarantine entries.
        skip: lines to skip first (resuming after a checkpoint); positions still count them.
    """
    loads = orjson.loads
    make = event_from_obj
    line_no = 0
    for line in stream:
        line_no += 1
        if line_no <= skip:
            continue
        try:
            # orjson skips the trailing newline as JSON whitespace: no strip on the hot path
            yield make(loads(line))
        except orjson.JSONDecodeError as exc:
            body = line.rstrip(b"\r\n")
            why = "empty line" if not body.strip() else f"not valid JSON ({exc.msg})"
            yield QuarantineEntry(source, line_no, body, f"line {line_no}: {why}")
        except EventError as exc:
            body = line.rstrip(b"\r\n")
            yield QuarantineEntry(source, line_no, body, f"line {line_no}: {_reason(exc)}")


class NonStringKeyMap(list[tuple[object, object]]):
    """A msgpack map with a key that is not a string: never a valid event or args object."""

    def __repr__(self) -> str:
        return "a map with non-string keys"


def _map(pairs: list[tuple[object, object]]) -> dict[object, object] | NonStringKeyMap:
    # Maps are built here rather than by the unpacker, which raises TypeError on an unhashable
    # key (a map used as a key) and would lose the rest of the stream with it.
    for k, _ in pairs:
        if type(k) is not str:
            return NonStringKeyMap(pairs)
    return dict(pairs)


def read_msgpack(
    stream: BinaryIO, *, source: str = "-", skip: int = 0, chunk_size: int = 1 << 16
) -> Iterator[Event | QuarantineEntry]:
    """Yield one Event or QuarantineEntry per msgpack message of ``stream``.

    The unpacker is fed chunk by chunk and its offsets are tracked, so every quarantine entry
    carries the message's exact original bytes. A truncated last message is quarantined too.
    """
    unpacker = msgpack.Unpacker(
        raw=False, strict_map_key=False, max_buffer_size=64 << 20, object_pairs_hook=_map
    )
    buf = bytearray()  # input bytes from stream offset `base` on
    base = 0  # stream offset of buf[0]; always the end of the last whole message
    pos = 0
    while True:
        chunk = stream.read(chunk_size)
        if chunk:
            unpacker.feed(chunk)
            buf += chunk
        while True:
            try:
                obj = unpacker.unpack()
            except msgpack.OutOfData:
                break
            except (ValueError, msgpack.UnpackException, UnicodeDecodeError) as exc:
                pos += 1
                rest = bytes(buf) + stream.read(_MAX_QUARANTINE_TAIL)
                yield QuarantineEntry(
                    source,
                    pos,
                    rest[:_MAX_QUARANTINE_TAIL],
                    f"message {pos}: not valid msgpack ({type(exc).__name__}); "
                    f"the rest of the stream ({len(rest)} bytes read) is quarantined",
                )
                return
            end = unpacker.tell()
            raw = bytes(buf[: end - base])
            del buf[: end - base]
            base = end
            pos += 1
            if pos <= skip:
                continue
            try:
                yield event_from_obj(obj)
            except EventError as exc:
                yield QuarantineEntry(source, pos, raw, f"message {pos}: {_reason(exc)}")
        if not chunk:
            if buf:
                pos += 1
                yield QuarantineEntry(
                    source,
                    pos,
                    bytes(buf),
                    f"message {pos}: truncated ({len(buf)} bytes at the end)",
                )
            return


def read_events(
    source: InputFile, *, fmt: str | None = None, skip: int = 0
) -> Iterator[Event | QuarantineEntry]:
    """Yield events and quarantine entries from an :class:`InputFile` in its format."""
    fmt = fmt or detect_format(source.name)
    reader = read_msgpack if fmt == "msgpack" else read_jsonl
    return reader(source.stream, source=source.name, skip=skip)
