"""What one endpoint allows: deadlines, caps, window, quota (no I/O; the command line reads its
defaults without loading the server)."""

from __future__ import annotations

from dataclasses import dataclass

from streamfeat.errors import ConfigError

__all__ = ["Limits"]


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

    handshake_timeout: float = 10.0
    max_unauthenticated: int = 512
    max_unauthenticated_per_source: int = 64
    window: int = 64
    quota_bytes: int = 0
    revocation_poll: float = 1.0

    def check(self) -> None:
        """Refuse values that make no sense.

        Raises:
            ConfigError: naming the option and the value.
        """
        for name in ("handshake_timeout", "revocation_poll"):
            v = getattr(self, name)
            if not (v > 0 and v < 1e9):  # also refuses nan
                msg = f"must be a positive number of seconds, got {v}"
                raise ConfigError(msg, key="--" + name.replace("_", "-"))
        for name in ("max_unauthenticated", "max_unauthenticated_per_source", "window"):
            if getattr(self, name) < 1:
                msg = f"must be at least 1, got {getattr(self, name)}"
                raise ConfigError(msg, key="--" + name.replace("_", "-"))
        if self.quota_bytes < 0:
            msg = f"must be 0 (no quota) or more, got {self.quota_bytes / 1e6} MB"
            raise ConfigError(msg, key="--quota-mb")
