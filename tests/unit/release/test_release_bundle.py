"""Bundles: canonical archives, signatures, and every refusal with its reason."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from streamfeat.errors import BundleError
from streamfeat.release import (
    MAGIC,
    Announcement,
    Pull,
    build_archive,
    files_from_dir,
    public_key_bytes,
    sign_bundle,
    verify_bundle,
)

TASKS = b'[triggers]\nclick = "click"\n'
FILES = {
    "tasks.toml": TASKS,
    "rerank.py": b"def score(ctx):\n    return 1\n",
    "models/m.onnx": b"\x08\x01",
}


def _signed(key: Ed25519PrivateKey, files: dict[str, bytes] = FILES) -> bytes:
    archive = build_archive(files, name="demo", version="3")
    return sign_bundle(archive, key, name="demo", version="3")[1]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def test_the_archive_is_canonical_whatever_the_order_of_the_files() -> None:
    a = build_archive(FILES, name="demo", version="3")
    b = build_archive(dict(reversed(list(FILES.items()))), name="demo", version="3")
    assert a == b
    assert build_archive({**FILES, "rerank.py": b"x"}, name="demo", version="3") != a


def test_a_signed_bundle_verifies_and_gives_back_its_files(key: Ed25519PrivateKey) -> None:
    data = _signed(key)
    bundle = verify_bundle(data, public_key_bytes(key))
    assert dict(bundle.files) == FILES
    assert bundle.tasks_text == TASKS.decode()
    archive = build_archive(FILES, name="demo", version="3")
    assert bundle.id == hashlib.sha256(archive).hexdigest()
    assert (bundle.header.name, bundle.header.version) == ("demo", "3")


def test_a_bundle_signed_by_another_key_is_refused(key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    with pytest.raises(BundleError) as err:
        verify_bundle(_signed(other), public_key_bytes(key))
    assert err.value.reason == "key"


def test_a_wrong_signature_is_refused(key: Ed25519PrivateKey) -> None:
    data = bytearray(_signed(key))
    n = struct.unpack_from(">I", data, len(MAGIC))[0]
    data[len(MAGIC) + 4 + n] ^= 1  # first byte of the signature
    with pytest.raises(BundleError) as err:
        verify_bundle(bytes(data), public_key_bytes(key))
    assert err.value.reason == "signature"


def test_a_header_naming_the_pinned_key_over_another_keys_signature_is_refused(
    key: Ed25519PrivateKey,
) -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    data = _signed(other).replace(
        public_key_bytes(other).hex().encode(), public_key_bytes(key).hex().encode()
    )
    with pytest.raises(BundleError) as err:
        verify_bundle(data, public_key_bytes(key))
    assert err.value.reason == "signature"


@given(st.integers(min_value=0, max_value=10_000), st.integers(1, 255))
def test_any_tampered_byte_is_refused(at: int, flip: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    data = bytearray(_signed(key))
    data[at % len(data)] ^= flip
    with pytest.raises(BundleError):
        verify_bundle(bytes(data), public_key_bytes(key))


def test_tampered_archive_bytes_are_a_hash_mismatch(key: Ed25519PrivateKey) -> None:
    data = bytearray(_signed(key))
    data[-1000] ^= 0x20  # inside the archive, after the signed header
    with pytest.raises(BundleError) as err:
        verify_bundle(bytes(data), public_key_bytes(key))
    assert err.value.reason == "hash"


@given(st.integers(min_value=0))
def test_a_truncated_bundle_is_refused(cut: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    data = _signed(key)
    with pytest.raises(BundleError) as err:
        verify_bundle(data[: cut % len(data)], public_key_bytes(key))
    assert err.value.reason in {"truncated", "format"}


@pytest.mark.parametrize(
    ("files", "what"),
    [
        ({"rerank.py": b""}, "tasks.toml"),
        ({**FILES, "../evil.py": b""}, "plain relative path"),
        ({**FILES, "/abs.py": b""}, "plain relative path"),
        ({**FILES, "bundle.json": b"{}"}, "written by the build"),
    ],
)
def test_bad_contents_are_refused_at_build(files: dict[str, bytes], what: str) -> None:
    with pytest.raises(BundleError, match=what) as err:
        build_archive(files, name="x", version="1")
    assert err.value.reason == "content"


def test_files_from_dir_takes_the_bundle_files_and_leaves_caches_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "tasks.toml").write_bytes(TASKS)
    (tmp_path / "rerank.py").write_bytes(b"x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "rerank.cpython-311.pyc").write_bytes(b"\0")
    (tmp_path / ".secret").write_bytes(b"k")
    assert sorted(files_from_dir(tmp_path)) == ["rerank.py", "tasks.toml"]
    with pytest.raises(BundleError):
        files_from_dir(tmp_path / "missing")


@given(st.lists(st.integers(min_value=1, max_value=4000), max_size=12), st.data())
def test_a_pull_cut_anywhere_resumes_to_the_identical_bundle(
    cuts: list[int], data: st.DataObject
) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    whole = _signed(key, {**FILES, "models/m.onnx": bytes(range(256)) * 20})
    pull = Pull(Announcement("r1", "id", len(whole)))
    for n in cuts:  # each connection delivers n bytes from the resume offset, then is cut
        start = pull.offset
        # a server may also resend from a little earlier than asked
        back = data.draw(st.integers(0, min(start, 7)))
        pull.feed(start - back, whole[start - back : start + n])
        if pull.done:
            break
    if not pull.done:
        pull.feed(pull.offset, whole[pull.offset :])
    assert pull.result() == whole
    assert (
        verify_bundle(pull.result(), public_key_bytes(key)).files["models/m.onnx"]
        == bytes(range(256)) * 20
    )


def test_a_pull_refuses_holes_overruns_and_early_results() -> None:
    pull = Pull(Announcement("r1", "id", 10))
    with pytest.raises(BundleError) as err:
        pull.result()
    assert err.value.reason == "truncated"
    with pytest.raises(BundleError):
        pull.feed(3, b"abc")
    with pytest.raises(BundleError):
        pull.feed(0, b"x" * 11)
