"""What one endpoint allows: deadlines, caps, window, quota (no I/O; the command line reads its
defaults without loading the server)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from streamfeat.errors import ConfigError

__all__ = ["LimitOption", "Limits", "limit_options", "option_of"]


def _opt(default: Any, metavar: str, help: str, *, option: str = "", scale: int = 1) -> Any:
    """A field with what its ``streamfeat serve`` option needs (see :func:`limit_options`)."""
    meta = {"metavar": metavar, "help": help, "option": option, "scale": scale}
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class Limits:
    """What one endpoint allows (``streamfeat serve`` options of the same names).

    Attributes:
        handshake_timeout: seconds from accept to a completed Noise handshake (HTTP request,
            websocket upgrade and handshake together); later, the connection is aborted.
        max_unauthenticated: connections not yet authenticated, in total (also at most a
            quarter of the open-file limit).
        max_unauthenticated_per_source: the same, per source address.
        window: batches a device may have unacknowledged on one connection; one more and
            the connection is closed with ``window_exceeded`` (4011). The device's own window
            (32 by default) must not be larger.
        quota_bytes: payload bytes stored per device (0: no quota); a batch beyond it is not
            stored and the connection is closed with ``quota_exceeded`` (4012).
        revocation_poll: seconds between checks of the registry for devices revoked by
            another process (``streamfeat device revoke``); their connections are closed.
    """

    handshake_timeout: float = _opt(
        10.0, "SECONDS", "a connection must finish its HTTP request, websocket upgrade and "
        "Noise handshake within this time",
    )  # fmt: skip
    max_unauthenticated: int = _opt(
        512, "N", "connections not yet authenticated, in total; also at most a quarter of the "
        "open-file limit",
    )  # fmt: skip
    max_unauthenticated_per_source: int = _opt(
        64, "N", "connections not yet authenticated, per source address"
    )
    window: int = _opt(64, "N", "batches a device may have unacknowledged on a connection")
    quota_bytes: int = _opt(
        0, "MB", "payload bytes stored per device, in MB; 0 = no quota",
        option="--quota-mb", scale=1_000_000,
    )  # fmt: skip
    revocation_poll: float = _opt(
        1.0, "SECONDS", "how often the registry is checked for devices revoked by another "
        "process",
    )  # fmt: skip

    def check(self) -> None:
        """Refuse values that make no sense.

        Raises:
            ConfigError: naming the option and the value.
        """
        for name in ("handshake_timeout", "revocation_poll"):
            v = getattr(self, name)
            if not (v > 0 and v < 1e9):  # also refuses nan
                msg = f"must be a positive number of seconds, got {v}"
                raise ConfigError(msg, key=option_of(name))
        for name in ("max_unauthenticated", "max_unauthenticated_per_source", "window"):
            if getattr(self, name) < 1:
                msg = f"must be at least 1, got {getattr(self, name)}"
                raise ConfigError(msg, key=option_of(name))
        if self.quota_bytes < 0:
            msg = f"must be 0 (no quota) or more, got {self.quota_bytes / 1e6} MB"
            raise ConfigError(msg, key=option_of("quota_bytes"))


@dataclass(frozen=True, slots=True)
class LimitOption:
    """The command-line option of one :class:`Limits` field.

    Attributes:
        field: the field's name.
        option: ``--name-with-dashes``, or the field's own (``--quota-mb``).
        dest: the argparse destination of the option.
        kind: ``int`` or ``float``, what the option parses.
        default: the default in the option's unit.
        scale: field value = option value x scale (``--quota-mb``: 1,000,000).
        metavar: the value's name in ``--help``.
        help: the help text (without the default).
    """

    field: str
    option: str
    dest: str
    kind: type
    default: float | int
    scale: int
    metavar: str
    help: str

    def to_field(self, value: float | int) -> float | int:
        """The field's value from the option's."""
        return value if self.scale == 1 else int(value * self.scale)


def limit_options() -> list[LimitOption]:
    """One option per :class:`Limits` field, in field order (``streamfeat serve`` adds them)."""
    out = []
    for f in fields(Limits):
        meta = f.metadata
        option = meta["option"] or "--" + f.name.replace("_", "-")
        scale = int(meta["scale"])
        base = f.default
        assert isinstance(base, int | float)  # every limit has a numeric default
        kind: type = float if scale != 1 else type(base)
        default = base if scale == 1 else (base / scale or 0)
        dest = option[2:].replace("-", "_")
        out.append(
            LimitOption(f.name, option, dest, kind, default, scale, meta["metavar"], meta["help"])
        )
    return out


def option_of(name: str) -> str:
    """The option of the :class:`Limits` field ``name`` (for error messages)."""
    return next(o.option for o in limit_options() if o.field == name)
