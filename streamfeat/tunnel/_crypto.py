"""Noise Protocol Framework primitives: DH, cipher, hash, CipherState and SymmetricState.

Sections 4 and 5 of the Noise specification (revision 34), built on `cryptography`'s
X25519 and ChaCha20-Poly1305 and `hashlib`'s BLAKE2s / SHA-256. No I/O, no clock:
ephemeral keys come in from the caller, so the published test vectors can be replayed
byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from streamfeat.errors import DecryptError

__all__ = [
    "DHLEN",
    "MAX_MESSAGE",
    "MAX_NONCE",
    "TAGLEN",
    "CipherState",
    "KeyPair",
    "SymmetricState",
    "dh",
]

DHLEN = 32
TAGLEN = 16
MAX_MESSAGE = 65535  # Noise messages never exceed this (spec section 3)
MAX_NONCE = _MAX_NONCE = 2**64 - 1  # reserved by the spec; reaching it means the key is spent

_HASHES: dict[str, Callable[[], Any]] = {
    "BLAKE2s": hashlib.blake2s,
    "SHA256": hashlib.sha256,
}


@dataclass(frozen=True, slots=True)
class KeyPair:
    """An X25519 key pair as raw 32-byte strings."""

    private: bytes
    public: bytes

    @classmethod
    def from_private(cls, private: bytes) -> KeyPair:
        """Derive the public half of a raw 32-byte X25519 private key."""
        if len(private) != DHLEN:
            msg = f"an x25519 private key is {DHLEN} bytes, not {len(private)}"
            raise ValueError(msg)
        pub = X25519PrivateKey.from_private_bytes(private).public_key()
        return cls(private, pub.public_bytes(Encoding.Raw, PublicFormat.Raw))

    @classmethod
    def generate(cls, random_bytes: Callable[[int], bytes]) -> KeyPair:
        """Make a key pair from ``random_bytes(32)`` (``os.urandom`` outside tests)."""
        return cls.from_private(random_bytes(DHLEN))

    def __repr__(self) -> str:
        # never print private keys
        return f"KeyPair(public={self.public.hex()})"


def dh(private: bytes, public: bytes) -> bytes:
    """X25519 shared secret of ``private`` and ``public`` (Noise ``DH``)."""
    key = X25519PrivateKey.from_private_bytes(private)
    try:
        return key.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:  # all-zero result: a low-order point sent by a peer
        msg = "x25519 exchange with a low-order public key"
        raise DecryptError(msg) from exc


# ChaChaPoly nonce: 32 bits of zeros then the 64-bit little-endian counter (spec 12.3)
_NONCE = struct.Struct("<4xQ")


def _nonce(n: int) -> bytes:
    return _NONCE.pack(n)


#: ``nonce(n)``: the 12-byte ChaChaPoly nonce of counter ``n`` (for callers of ``aead``)
nonce = _NONCE.pack


class CipherState:
    """A key ``k`` (or none) and a nonce counter ``n`` (Noise section 5.1)."""

    __slots__ = ("_aead", "k", "n")

    def __init__(self, k: bytes | None = None) -> None:
        self.k = k
        self.n = 0
        self._aead = ChaCha20Poly1305(k) if k is not None else None

    def has_key(self) -> bool:
        """True once a key was set."""
        return self.k is not None

    @property
    def aead(self) -> ChaCha20Poly1305 | None:
        """The AEAD object of the key (made once), for a caller that keeps its own counter:
        ``aead.encrypt(nonce(n), plaintext, ad)`` is ``encrypt_at(n, ad, plaintext)`` for
        ``n < MAX_NONCE``, with ``InvalidTag`` where ``decrypt_at`` raises ``DecryptError``."""
        return self._aead

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt with the next nonce, or return the plaintext when there is no key yet."""
        if self._aead is None:
            return plaintext
        out = self.encrypt_at(self.n, ad, plaintext)
        self.n += 1
        return out

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt with the next nonce; the nonce moves on only when the tag verifies.

        Raises:
            DecryptError: the tag did not verify; ``n`` is unchanged.
        """
        if self._aead is None:
            return ciphertext
        out = self.decrypt_at(self.n, ad, ciphertext)
        self.n += 1
        return out

    def encrypt_at(self, n: int, ad: bytes, plaintext: bytes) -> bytes:
        """Encrypt with an explicit nonce ``n`` (transport frames carry their counter)."""
        if self._aead is None or n >= _MAX_NONCE:
            msg = f"can't encrypt with nonce {n} (no key or nonce spent)"
            raise DecryptError(msg)
        return self._aead.encrypt(_nonce(n), plaintext, ad)

    def decrypt_at(self, n: int, ad: bytes, ciphertext: bytes) -> bytes:
        """Decrypt with an explicit nonce ``n``.

        Raises:
            DecryptError: the tag did not verify (tampered, truncated or wrong key).
        """
        if self._aead is None or n >= _MAX_NONCE:
            msg = f"can't decrypt with nonce {n} (no key or nonce spent)"
            raise DecryptError(msg)
        try:
            return self._aead.decrypt(_nonce(n), ciphertext, ad)
        except InvalidTag as exc:
            msg = f"aead tag did not verify at nonce {n}"
            raise DecryptError(msg) from exc


class SymmetricState:
    """Chaining key ``ck``, handshake hash ``h`` and a CipherState (Noise section 5.2).

    Args:
        protocol_name: e.g. ``b"Noise_IK_25519_ChaChaPoly_BLAKE2s"``; the hash is its last part.
    """

    __slots__ = ("_hash", "ck", "cs", "h", "hashlen")

    def __init__(self, protocol_name: bytes) -> None:
        hash_name = protocol_name.decode().rsplit("_", 1)[-1]
        if hash_name not in _HASHES:
            msg = f"unsupported noise hash {hash_name!r}"
            raise ValueError(msg)
        self._hash = _HASHES[hash_name]
        self.hashlen = self._hash().digest_size
        if len(protocol_name) <= self.hashlen:
            self.h = protocol_name + bytes(self.hashlen - len(protocol_name))
        else:
            self.h = self.hash(protocol_name)
        self.ck = self.h
        self.cs = CipherState()

    def hash(self, data: bytes) -> bytes:
        """``HASH(data)``."""
        h = self._hash()
        h.update(data)
        return bytes(h.digest())

    def hkdf(self, ikm: bytes, outputs: int) -> tuple[bytes, ...]:
        """Noise ``HKDF(chaining_key, input_key_material, num_outputs)`` with HMAC-HASH."""
        temp = hmac.new(self.ck, ikm, self._hash).digest()
        out1 = hmac.new(temp, b"\x01", self._hash).digest()
        out2 = hmac.new(temp, out1 + b"\x02", self._hash).digest()
        if outputs == 2:
            return out1, out2
        out3 = hmac.new(temp, out2 + b"\x03", self._hash).digest()
        return out1, out2, out3

    def mix_key(self, ikm: bytes) -> None:
        """``MixKey``: new chaining key and cipher key from ``ikm``."""
        self.ck, temp_k = self.hkdf(ikm, 2)
        self.cs = CipherState(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        """``MixHash``: ``h = HASH(h || data)``."""
        self.h = self.hash(self.h + data)

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        """``EncryptAndHash``."""
        ciphertext = self.cs.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        """``DecryptAndHash``.

        Raises:
            DecryptError: the tag did not verify; ``h`` is unchanged.
        """
        plaintext = self.cs.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        """``Split``: the initiator-to-responder and responder-to-initiator ciphers."""
        k1, k2 = self.hkdf(b"", 2)
        return CipherState(k1[:32]), CipherState(k2[:32])
