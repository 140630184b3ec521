"""The streamfeat exception tree.

Every error streamfeat raises derives from :class:`StreamfeatError`, with one subtree per
subsystem. Where the meaning matches a builtin, the class also derives from it, so callers
may catch ``ValueError`` or ``TimeoutError`` as they already do. Messages are lowercase and
name what was wrong; the structured fields (``key``, ``close_code``, ...) are what code and
tests should look at.
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "ConfigError",
    "DecodeError",
    "DecryptError",
    "EncodeError",
    "EncoderError",
    "EventError",
    "HandshakeError",
    "InputError",
    "LocalProtocolError",
    "MissingExtraError",
    "OutputError",
    "RemoteProtocolError",
    "StorageError",
    "StreamfeatError",
    "TaskError",
    "TaskLoadError",
    "TriggerSpecError",
    "TunnelClosed",
    "TunnelError",
    "TunnelTimeout",
    "UnknownSchemaError",
    "WindowSpecError",
]


class StreamfeatError(Exception):
    """Root of every error raised by streamfeat."""


# --- events -------------------------------------------------------------------------------


class EventError(StreamfeatError, ValueError):
    """Raised when an event breaks the event contract (SPEC section 1).

    Attributes:
        key: the event key that was wrong (``"ts"``, ``"args.pos"``), or ``None`` when the
            input was not an object at all.
        reason: what was wrong with it.
    """

    def __init__(self, key: str | None, reason: str) -> None:
        self.key = key
        self.reason = reason
        msg = f"`{key}` {reason}" if key is not None else reason
        super().__init__(msg)


class InputError(StreamfeatError, OSError):
    """Raised when an event source can't be opened or read (a missing file, a closed standard
    input). Input that can be read but is bad is never raised: it is quarantined."""


class OutputError(StreamfeatError, OSError):
    """Raised when an output file can't be created or written (a missing folder, a full disk).

    What was committed before (a replay's last checkpoint) is intact."""


# --- configuration ------------------------------------------------------------------------


class ConfigError(StreamfeatError, ValueError):
    """Raised when a tasks file (or a part of it) is refused at load.

    Attributes:
        file: the file it came from, when known.
        key: the dotted key that was wrong (``"windows.clicks.assign"``), when known.
        reason: what was wrong.
    """

    def __init__(self, reason: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.reason = reason
        where = ": ".join(p for p in (file, f"`{key}`" if key else None) if p)
        super().__init__(f"{where}: {reason}" if where else reason)


class TriggerSpecError(ConfigError):
    """Raised when a trigger pattern does not parse or breaks a limit of the language.

    Attributes:
        word: the 1-based index of the offending word of the pattern, when known.
        pattern: the trigger's name, else the pattern's text, when known.
        detail: what was wrong, without the pattern and the word.
    """

    def __init__(
        self,
        reason: str,
        *,
        file: str | None = None,
        key: str | None = None,
        word: int | None = None,
        pattern: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.word = word
        self.pattern = pattern
        self.detail = detail if detail is not None else reason
        super().__init__(reason, file=file, key=key)


class WindowSpecError(ConfigError):
    """Raised when a window's assigner, key, filter or aggregate is not valid."""


# --- storage ------------------------------------------------------------------------------


class StorageError(StreamfeatError):
    """Raised when the on-device store cannot be opened, migrated or written."""


# --- tasks --------------------------------------------------------------------------------


class TaskError(StreamfeatError):
    """Raised when a task cannot be loaded (bad ``run`` target); failures of a running task
    are recorded, never raised into the engine."""


class TaskLoadError(ConfigError, TaskError):
    """Raised when a task's ``run = "module:callable"`` cannot be resolved: the module is
    missing or fails to import, or the callable is missing or not callable. It is a
    :class:`ConfigError` (``file``: the tasks file, ``key``: ``tasks.NAME.run``) and a
    :class:`TaskError`."""


# --- encoders -----------------------------------------------------------------------------


class EncoderError(StreamfeatError):
    """Root of the encoders subsystem's errors."""


class EncodeError(EncoderError, ValueError):
    """Raised when a record does not fit its schema and cannot be encoded."""


class DecodeError(EncoderError, ValueError):
    """Raised when bytes cannot be decoded: truncated, corrupt, or of an unknown format."""


class UnknownSchemaError(DecodeError):
    """Raised when a batch names a schema id or version the decoder does not know."""


# --- tunnel -------------------------------------------------------------------------------


class TunnelError(StreamfeatError):
    """Root of the tunnel subsystem's errors.

    Attributes:
        close_code: the close reason code the connection was (or should be) closed with.
    """

    def __init__(self, msg: str, *, close_code: int | None = None) -> None:
        self.close_code = close_code
        super().__init__(msg)


class LocalProtocolError(TunnelError):
    """Raised when *we* tried to do something the protocol state does not allow."""


class RemoteProtocolError(TunnelError):
    """Raised when the *peer* broke the protocol (bad frame, wrong state, bad length)."""


class HandshakeError(RemoteProtocolError):
    """Raised when the Noise handshake fails: unknown or revoked key, bad message."""


class DecryptError(RemoteProtocolError):
    """Raised when an AEAD frame fails authentication (tampered, reordered or replayed)."""


class TunnelClosed(TunnelError):
    """Raised when using a tunnel that we closed (not broken by the peer)."""


class TunnelTimeout(TunnelError, TimeoutError):
    """Raised when the peer does not answer within the configured time."""


# --- optional dependencies -----------------------------------------------------------------


class MissingExtraError(StreamfeatError, ImportError):
    """Raised when a feature needs an optional extra that is not installed (matplotlib for the
    replay report, pyarrow for Parquet); the message gives the ``pip install`` line."""


# --- releases -----------------------------------------------------------------------------


class BundleError(StreamfeatError, ValueError):
    """Raised when a bundle cannot be built, or is refused on verification or load.

    Attributes:
        reason: a short machine-readable reason (``"signature"``, ``"hash"``, ``"key"``,
            ``"format"``, ``"truncated"``, ``"tasks"``, ``"content"``), counted by devices.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"bundle refused ({reason}): {detail}")
