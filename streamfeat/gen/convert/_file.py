"""The converter shell: read a source file (plain, gzip or stdin) and write JSON lines.

The source is streamed line by line, never loaded whole. Each reject is reported on ``err`` as
``NAME: line N: REASON``, counted, and its raw row written to ``rejects`` when given.
"""

from __future__ import annotations

import errno
import gzip
import io
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any, cast

from streamfeat._jsonl import jsonl
from streamfeat.gen.convert._core import Converter, Reject

__all__ = ["ConvertSummary", "convert_file", "open_source"]

_BATCH = 4096

_GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True, slots=True)
class ConvertSummary:
    """What one conversion did.

    Attributes:
        rows: source lines read.
        events: events written.
        rejects: rows refused (each reported, never silently dropped).
        error: why reading stopped early (missing file, bad gzip, truncated), or ``None``.
    """

    rows: int
    events: int
    rejects: int
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the whole source was read and some row converted (or it was empty)."""
        return self.error is None and (self.events > 0 or self.rows == 0)


@contextmanager
def open_source(path: str) -> Iterator[IO[bytes]]:
    """Open ``path`` (``-`` = stdin) for binary reading, gunzipping when it starts as gzip.

    Raises:
        OSError: the file cannot be opened.
    """
    if path == "-":
        if sys.stdin is None:  # started with stdin closed (`<&-`)
            raise OSError(errno.EBADF, "standard input is closed")
        stdin = sys.stdin.buffer
        # peek needs a buffered reader; a replaced sys.stdin (tests) may be a plain BytesIO
        buffered = (
            stdin
            if isinstance(stdin, io.BufferedReader)
            else io.BufferedReader(cast("io.RawIOBase", stdin))
        )
        magic = buffered.peek(2)[:2]
        yield cast(
            "IO[bytes]", gzip.GzipFile(fileobj=buffered) if magic == _GZIP_MAGIC else buffered
        )
        return
    with open(path, "rb") as fh:
        magic = fh.read(2)
        fh.seek(0)
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=fh) as gz:
                yield cast("IO[bytes]", io.BufferedReader(gz, buffer_size=1 << 16))
        else:
            yield fh


def convert_file(
    converter: Converter,
    path: str,
    out: IO[bytes],
    *,
    rejects: IO[bytes] | None = None,
    err: IO[str] | None = None,
) -> ConvertSummary:
    """Convert the source at ``path`` to JSON lines on ``out``.

    Args:
        converter: the source format.
        path: a file (plain or gzip, detected by its first bytes) or ``-`` for stdin.
        out: where the JSON lines go.
        rejects: where the raw bad rows go (one per line), if anywhere.
        err: where each reject is reported (default: nowhere).

    Returns:
        The counts; ``error`` is set when the source could not be read to its end (what was
        converted before that is written).

    Raises:
        OSError: writing ``out`` or ``rejects`` failed (a full disk); a read error of the
            source is not raised but reported in ``error``.
    """
    counts = [0, 0, 0]  # rows, events, rejects
    error = None
    try:
        with open_source(path) as src:
            _pump(converter, src, out, rejects, err, counts)
    except _WriteError as exc:
        raise exc.error from None
    except (OSError, EOFError, zlib.error) as exc:
        # a truncated or corrupt gzip surfaces as EOFError / BadGzipFile(OSError) / zlib.error
        text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        error = f"{path}: {text[:1].lower()}{text[1:]}"
    return ConvertSummary(counts[0], counts[1], counts[2], error)


class _WriteError(Exception):
    """An output write failed: kept apart from the source's read errors, which are reported."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _pump(
    converter: Converter,
    src: IO[bytes],
    out: IO[bytes],
    rejects: IO[bytes] | None,
    err: IO[str] | None,
    counts: list[int],
) -> None:
    batch: list[dict[str, Any]] = []
    add = batch.append
    name = converter.name
    try:
        for obj in converter.convert(src):
            counts[0] += 1
            if type(obj) is dict:
                add(obj)
                if len(batch) == _BATCH:
                    _flush(out, batch, counts)
            else:
                _reject(name, obj, rejects, err, counts)  # type: ignore[arg-type]
    finally:
        _flush(out, batch, counts)  # what was converted before a read error is kept


def _flush(out: IO[bytes], batch: list[dict[str, Any]], counts: list[int]) -> None:
    try:
        out.write(jsonl(batch))
    except OSError as exc:
        raise _WriteError(exc) from exc
    counts[1] += len(batch)
    batch.clear()


def _reject(
    name: str, rej: Reject, rejects: IO[bytes] | None, err: IO[str] | None, counts: list[int]
) -> None:
    counts[2] += 1
    if err is not None:
        print(f"{name}: line {rej.line}: {rej.reason}", file=err)
    if rejects is not None:
        try:
            rejects.write(rej.raw + b"\n")
        except OSError as exc:
            raise _WriteError(exc) from exc
