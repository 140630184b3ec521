"""Event input: JSONL (plain, ``.gz``, or ``-`` for stdin) and msgpack streams.

A reader yields, for every input unit (a line of JSONL, a message of msgpack), exactly one of:
a valid :class:`~streamfeat.Event`, or a :class:`~streamfeat.io._store.QuarantineEntry` with the
source, the 1-based position, the raw bytes and the reason. Nothing is dropped and nothing is
loaded whole: files are streamed.

A msgpack stream has no framing to resynchronise on: bytes that are not msgpack end the stream
with one quarantine entry holding the rest of the input (up to 1 MiB of it; the reason says how
much was read), since no later message boundary can be trusted. A message that is well formed
but holds a string that is not UTF-8 still has a known length: it alone is quarantined.
"""

from __future__ import annotations

import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgpack

from streamfeat._event import Event, event_from_obj
from streamfeat.errors import EventError, InputError
from streamfeat.io._jsonl import TWICE, read_jsonl
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

    Raises:
        InputError: the file can't be opened, or standard input is closed.
    """

    def __init__(self, name: str | Path) -> None:
        self.name = str(name)
        self.read_error: str | None = None  # why the input could not be read to its end
        self._raw: BinaryIO
        if self.name == "-":
            if sys.stdin is None:  # started with stdin closed (`<&-`)
                msg = "standard input is closed: give EVENTS as a file, or pipe events in"
                raise InputError(msg)
            self._raw = sys.stdin.buffer
            self.size: int | None = None
        else:
            path = Path(self.name)
            try:
                self._raw = path.open("rb")
                self.size = path.stat().st_size
            except OSError as exc:
                msg = f"can't read {self.name}: {(exc.strerror or str(exc)).lower()}"
                raise InputError(msg) from exc
        self.stream: BinaryIO = (
            gzip.GzipFile(fileobj=self._raw, mode="rb")  # type: ignore[assignment]
            if self.name.endswith(".gz")
            else self._raw
        )

    @property
    def decompressed(self) -> bool:
        """True for a ``.gz`` input: ``stream`` decompresses the underlying file."""
        return self.stream is not self._raw

    def consumed(self) -> int:
        """Bytes of the underlying file read so far (compressed bytes for ``.gz``)."""
        try:
            return self._raw.tell()
        except (OSError, io.UnsupportedOperation):
            return 0

    def raw_tail(self, limit: int) -> bytes:
        """Up to ``limit`` bytes of the underlying file not read yet (compressed, for ``.gz``)."""
        return self._raw.read(limit)

    def close(self) -> None:
        if self.decompressed:
            self.stream.close()
        if self._raw is not sys.stdin.buffer:
            self._raw.close()


def _reason(exc: Exception) -> str:
    return str(exc)


class NonStringKeyMap(list[tuple[object, object]]):
    """A msgpack map with a key that is not a string: never a valid event or args object."""

    def __repr__(self) -> str:
        return "a map with non-string keys"


class DuplicateKeyMap(list[tuple[object, object]]):
    """A msgpack map with a key given twice: never a valid event or args object."""

    def duplicate(self) -> str:
        """The first key given twice."""
        seen: set[object] = set()
        for k, _ in self:
            if k in seen:
                return str(k)
            seen.add(k)
        return ""  # not reached: built only for maps with a repeated key

    def __repr__(self) -> str:
        return f'a map with the key "{self.duplicate()}" twice'


def _map(
    pairs: list[tuple[object, object]],
) -> dict[object, object] | NonStringKeyMap | DuplicateKeyMap:
    # Maps are built here rather than by the unpacker, which raises TypeError on an unhashable
    # key (a map used as a key) and would lose the rest of the stream with it.
    for k, _ in pairs:
        if type(k) is not str:
            return NonStringKeyMap(pairs)
    obj = dict(pairs)
    if len(obj) != len(pairs):
        return DuplicateKeyMap(pairs)
    return obj


def _unpacker() -> msgpack.Unpacker:
    return msgpack.Unpacker(
        raw=False, strict_map_key=False, max_buffer_size=64 << 20, object_pairs_hook=_map
    )


def read_msgpack(
    stream: BinaryIO, *, source: str = "-", skip: int = 0, chunk_size: int = 1 << 16
) -> Iterator[Event | QuarantineEntry]:
    """Yield one Event or QuarantineEntry per msgpack message of ``stream``.

    The unpacker is fed chunk by chunk and its offsets are tracked, so every quarantine entry
    carries the message's exact original bytes. A truncated last message is quarantined too.
    A message holding a string that is not UTF-8 is well framed: it is quarantined alone and
    reading goes on after it. Bytes that are not msgpack (also after such a string) end the
    stream with one entry for the rest: no later message boundary can be trusted.
    """
    unpacker = _unpacker()
    buf = bytearray()  # input bytes from stream offset `base` on
    base = 0  # stream offset of buf[0]; always the end of the last whole message
    origin = 0  # stream offset at which the current unpacker was first fed
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
            except UnicodeDecodeError as exc:
                # The unpacker is left mid-message: measure the message without decoding its
                # strings, quarantine it, and start a fresh unpacker after it.
                pos += 1
                try:
                    size = _message_size(buf, stream, chunk_size)
                except (ValueError, msgpack.UnpackException) as bad:
                    # not framed after all (a byte no msgpack type starts with follows the
                    # string): as any other malformed message, the rest is quarantined
                    yield _malformed_rest(source, pos, buf, stream, bad)
                    return
                if size is None:
                    yield _truncated(source, pos, bytes(buf))
                    return
                if pos > skip:
                    yield QuarantineEntry(
                        source,
                        pos,
                        bytes(buf[:size]),
                        f"message {pos}: a string is not valid UTF-8 ({exc.reason} at byte "
                        f"{exc.start} of the string)",
                    )
                del buf[:size]
                base += size
                origin = base
                unpacker = _unpacker()
                unpacker.feed(bytes(buf))
                continue
            except (ValueError, msgpack.UnpackException) as exc:
                pos += 1
                yield _malformed_rest(source, pos, buf, stream, exc)
                return
            end = origin + unpacker.tell()
            raw = bytes(buf[: end - base])
            del buf[: end - base]
            base = end
            pos += 1
            if pos <= skip:
                continue
            try:
                if type(obj) is DuplicateKeyMap:
                    raise EventError(obj.duplicate(), TWICE)
                yield event_from_obj(obj)
            except EventError as exc:
                yield QuarantineEntry(source, pos, raw, f"message {pos}: {_reason(exc)}")
        if not chunk:
            if buf:
                yield _truncated(source, pos + 1, bytes(buf))
            return


def _malformed_rest(
    source: str, pos: int, buf: bytearray, stream: BinaryIO, exc: Exception
) -> QuarantineEntry:
    """The quarantine entry for the rest of a stream whose message ``pos`` is not msgpack."""
    rest = bytes(buf) + stream.read(_MAX_QUARANTINE_TAIL)
    return QuarantineEntry(
        source,
        pos,
        rest[:_MAX_QUARANTINE_TAIL],
        f"message {pos}: not valid msgpack ({type(exc).__name__}); "
        f"the rest of the stream ({len(rest)} bytes read) is quarantined",
    )


def _truncated(source: str, pos: int, raw: bytes) -> QuarantineEntry:
    return QuarantineEntry(
        source, pos, raw, f"message {pos}: truncated ({len(raw)} bytes at the end)"
    )


def _message_size(buf: bytearray, stream: BinaryIO, chunk_size: int) -> int | None:
    """Return the byte length of the msgpack message at the start of ``buf`` (None: the input
    ends inside it), reading more of ``stream`` into ``buf`` as needed."""
    skipper = msgpack.Unpacker(raw=True, max_buffer_size=64 << 20)
    skipper.feed(bytes(buf))
    while True:
        try:
            skipper.skip()
        except msgpack.OutOfData:
            more = stream.read(chunk_size)
            if not more:
                return None
            buf += more
            skipper.feed(more)
            continue
        return int(skipper.tell())


def read_events(
    source: InputFile, *, fmt: str | None = None, skip: int = 0
) -> Iterator[Event | QuarantineEntry]:
    """Yield events and quarantine entries from an :class:`InputFile` in its format.

    A ``.gz`` input that is not gzip, or is truncated or corrupt, ends with one quarantine
    entry for its unreadable tail (the compressed bytes not yet read, up to 1 MiB) whose
    reason says why and where; what was read before it is yielded as usual.
    """
    fmt = fmt or detect_format(source.name)
    reader = read_msgpack if fmt == "msgpack" else read_jsonl
    items = reader(source.stream, source=source.name, skip=skip)
    if not source.decompressed:
        return items  # not decompressed: no decompressor error to catch, one generator less
    return _unreadable_tail(items, source, skip)


def _unreadable_tail(
    items: Iterator[Event | QuarantineEntry], source: InputFile, skip: int
) -> Iterator[Event | QuarantineEntry]:
    pos = skip
    try:
        for item in items:
            pos = item.position if type(item) is QuarantineEntry else pos + 1
            yield item
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        # gzip reports a truncated file as EOFError, a wrong one as BadGzipFile (an OSError),
        # a corrupt block as zlib.error; the decompressor can't be resumed after any of them
        at = source.consumed()
        try:
            tail = source.raw_tail(_MAX_QUARANTINE_TAIL)
        except OSError:
            tail = b""
        text = str(exc) or type(exc).__name__
        pos += 1
        source.read_error = f"{text[:1].lower()}{text[1:]} (at byte {at:,}, line {pos})"
        yield QuarantineEntry(
            source.name,
            pos,
            tail,
            f"line {pos}: the compressed input can't be read from here on "
            f"({text[:1].lower()}{text[1:]}; at byte {at:,} of {source.size or 0:,}); "
            "the rest of the input is quarantined",
        )
