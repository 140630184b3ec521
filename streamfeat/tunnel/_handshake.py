"""The Noise IK handshake (Noise section 7.5), without I/O.

::

    IK:
      <- s
      ...
      -> e, es, s, ss
      <- e, ee, se

The initiator (the device) knows the responder's (endpoint's) static key in advance; the
first message carries the device's static key encrypted, so the endpoint learns who is
calling, and may carry a payload (the device's first batch: 0-RTT data). The second message
completes mutual authentication; ``split()`` then yields the transport ciphers.

Ephemeral keys are passed in, so the published vectors can be replayed byte for byte.
"""

from __future__ import annotations

from streamfeat.errors import HandshakeError, LocalProtocolError
from streamfeat.tunnel._crypto import DHLEN, TAGLEN, CipherState, KeyPair, SymmetricState, dh

__all__ = ["PROTOCOL_NAME", "HandshakeState"]

PROTOCOL_NAME = b"Noise_IK_25519_ChaChaPoly_BLAKE2s"


class HandshakeState:
    """One side of an IK handshake.

    Args:
        initiator: True on the device, False on the endpoint.
        s: our static key pair.
        e: our ephemeral key pair for this handshake (fresh for every connection).
        rs: the responder's static public key (initiator only: the pinned endpoint key).
        prologue: bytes both sides must agree on (mixed into the hash).
        protocol_name: the full Noise protocol name; only ``Noise_IK_25519_ChaChaPoly_*``.
    """

    __slots__ = ("_step", "e", "initiator", "re", "rs", "s", "ss")

    def __init__(
        self,
        *,
        initiator: bool,
        s: KeyPair,
        e: KeyPair,
        rs: bytes | None = None,
        prologue: bytes = b"",
        protocol_name: bytes = PROTOCOL_NAME,
    ) -> None:
        if not protocol_name.startswith(b"Noise_IK_25519_ChaChaPoly_"):
            msg = f"unsupported protocol {protocol_name.decode(errors='replace')!r}"
            raise ValueError(msg)
        if initiator and (rs is None or len(rs) != DHLEN):
            msg = "an ik initiator needs the responder's 32-byte static public key"
            raise ValueError(msg)
        self.initiator = initiator
        self.s, self.e, self.rs = s, e, rs
        self.re: bytes | None = None
        self.ss = SymmetricState(protocol_name)
        self.ss.mix_hash(prologue)
        # pre-message "<- s": both sides hash the responder's static key
        self.ss.mix_hash(rs if initiator and rs is not None else s.public)
        self._step = 0

    @property
    def handshake_hash(self) -> bytes:
        """The handshake hash ``h`` (channel binding)."""
        return self.ss.h

    def _expect(self, step: int, initiator: bool, what: str) -> None:
        if self._step != step or self.initiator != initiator:
            msg = f"can't {what} at handshake step {self._step} as {'initiator' if self.initiator else 'responder'}"
            raise LocalProtocolError(msg)

    def write_message_1(self, payload: bytes) -> bytes:
        """Initiator: ``-> e, es, s, ss`` followed by the encrypted payload."""
        self._expect(0, True, "write message 1")
        assert self.rs is not None  # checked in __init__
        sym = self.ss
        sym.mix_hash(self.e.public)
        sym.mix_key(dh(self.e.private, self.rs))
        enc_s = sym.encrypt_and_hash(self.s.public)
        sym.mix_key(dh(self.s.private, self.rs))
        self._step = 1
        return self.e.public + enc_s + sym.encrypt_and_hash(payload)

    def read_message_1(self, message: bytes) -> bytes:
        """Responder: read message 1 and return its payload; ``rs`` is then the caller's key.

        Raises:
            HandshakeError: the message is too short or does not decrypt (the sender does
                not hold our static key's peer secret, or it was altered).
        """
        self._expect(0, False, "read message 1")
        if len(message) < DHLEN + DHLEN + TAGLEN + TAGLEN:
            msg = f"handshake message 1 is {len(message)} bytes, too short"
            raise HandshakeError(msg)
        sym = self.ss
        self.re = message[:DHLEN]
        sym.mix_hash(self.re)
        try:
            sym.mix_key(dh(self.s.private, self.re))
            self.rs = sym.decrypt_and_hash(message[DHLEN : 2 * DHLEN + TAGLEN])
            sym.mix_key(dh(self.s.private, self.rs))
            payload = sym.decrypt_and_hash(message[2 * DHLEN + TAGLEN :])
        except Exception as exc:
            msg = "handshake message 1 did not decrypt (wrong endpoint key or altered)"
            raise HandshakeError(msg) from exc
        self._step = 1
        return payload

    def write_message_2(self, payload: bytes) -> bytes:
        """Responder: ``<- e, ee, se`` followed by the encrypted payload."""
        self._expect(1, False, "write message 2")
        assert self.re is not None
        assert self.rs is not None
        sym = self.ss
        sym.mix_hash(self.e.public)
        sym.mix_key(dh(self.e.private, self.re))
        sym.mix_key(dh(self.e.private, self.rs))
        self._step = 2
        return self.e.public + sym.encrypt_and_hash(payload)

    def read_message_2(self, message: bytes) -> bytes:
        """Initiator: read message 2 and return its payload.

        Raises:
            HandshakeError: too short or does not decrypt (not the pinned endpoint).
        """
        self._expect(1, True, "read message 2")
        if len(message) < DHLEN + TAGLEN:
            msg = f"handshake message 2 is {len(message)} bytes, too short"
            raise HandshakeError(msg)
        sym = self.ss
        self.re = message[:DHLEN]
        sym.mix_hash(self.re)
        try:
            sym.mix_key(dh(self.e.private, self.re))
            sym.mix_key(dh(self.s.private, self.re))
            payload = sym.decrypt_and_hash(message[DHLEN:])
        except Exception as exc:
            msg = "handshake message 2 did not decrypt (not the pinned endpoint, or altered)"
            raise HandshakeError(msg) from exc
        self._step = 2
        return payload

    def split(self) -> tuple[CipherState, CipherState]:
        """Return ``(send, receive)`` transport ciphers for this side."""
        if self._step != 2:
            msg = f"can't split at handshake step {self._step}"
            raise LocalProtocolError(msg)
        c1, c2 = self.ss.split()
        return (c1, c2) if self.initiator else (c2, c1)
