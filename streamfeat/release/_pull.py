"""A resumable pull of a bundle's bytes: what the device keeps between cut connections.

The endpoint answers ``GET /v1/bundles/ID`` with ``Range: bytes=OFFSET-``; the device appends
what arrives to a partial file it keeps (in its store), and a pull cut at any point resumes at
``offset``. Only when every byte arrived and the sha256 of the signed bundle's archive matches
the announced id is the bundle handed on to :func:`~streamfeat.release.verify_bundle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from streamfeat.errors import BundleError

__all__ = ["Announcement", "Pull"]


@dataclass(frozen=True, slots=True)
class Announcement:
    """What a release announces over the tunnel's config downlink (stage one)."""

    release: str
    bundle: str  # the bundle id (sha256 of its archive)
    size: int  # bytes of the signed bundle


@dataclass
class Pull:
    """The bytes of one announced bundle, gathered across any number of connections."""

    announced: Announcement
    data: bytearray = field(default_factory=bytearray)

    @property
    def offset(self) -> int:
        """Where the next request starts (the ``Range`` header's first byte)."""
        return len(self.data)

    @property
    def done(self) -> bool:
        """Every announced byte arrived."""
        return len(self.data) >= self.announced.size

    def feed(self, offset: int, chunk: bytes) -> None:
        """Take ``chunk`` that starts at ``offset`` of the bundle.

        A chunk that overlaps what is already here is cut to the new bytes (a server that
        ignored the range); one that starts past the end is refused.

        Raises:
            BundleError: ``format`` when the chunk leaves a hole or runs past the announced size.
        """
        if offset > len(self.data):
            msg = f"chunk at {offset} leaves a hole after byte {len(self.data)}"
            raise BundleError("format", msg)
        new = chunk[len(self.data) - offset :]
        if len(self.data) + len(new) > self.announced.size:
            msg = f"more than the announced {self.announced.size} bytes"
            raise BundleError("format", msg)
        self.data += new

    def result(self) -> bytes:
        """The whole signed bundle.

        Raises:
            BundleError: ``truncated`` while bytes are missing.
        """
        if not self.done:
            msg = f"{len(self.data)} of {self.announced.size} bytes"
            raise BundleError("truncated", msg)
        return bytes(self.data)
