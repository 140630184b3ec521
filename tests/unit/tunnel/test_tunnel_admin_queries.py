"""The endpoint's query and admin methods the simulator and its audit use instead of SQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfeat.endpoint._registry import DeviceEntry, Registry
from streamfeat.endpoint._storage import SQLiteStorage, StoredBatch
from streamfeat.errors import StorageError


def _key(i: int) -> bytes:
    return bytes([i]) * 32


def test_add_many_registers_every_device_in_order(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "ep.db")
    try:
        got = reg.add_many([("b", _key(2)), ("a", _key(1))], now=5.0)
        assert got == [DeviceEntry("b", _key(2), 5.0, None), DeviceEntry("a", _key(1), 5.0, None)]
        assert reg.list() == sorted(got, key=lambda e: e.name)
        assert reg.lookup(_key(2)) == got[0]
    finally:
        reg.close()


@pytest.mark.parametrize(
    "batch",
    [
        [("new", _key(9)), ("old", _key(8))],  # name taken
        [("new", _key(9)), ("other", _key(1))],  # key taken
        [("new", _key(9)), ("new2", _key(9))],  # key twice in the batch
        [("new", _key(9)), ("", _key(7))],  # no name
        [("new", _key(9)), ("short", b"k")],  # not 32 bytes
    ],
)
def test_add_many_is_all_or_nothing(tmp_path: Path, batch: list[tuple[str, bytes]]) -> None:
    reg = Registry(tmp_path / "ep.db")
    try:
        reg.add("old", _key(1), now=1.0)
        with pytest.raises(StorageError):
            reg.add_many(batch, now=2.0)
        assert [e.name for e in reg.list()] == ["old"]
    finally:
        reg.close()


def test_iter_batches_yields_stored_batches_in_insertion_order(tmp_path: Path) -> None:
    storage = SQLiteStorage(tmp_path / "ep.db")
    try:
        assert list(storage.iter_batches()) == []
        first = StoredBatch("d2", b"\x01" * 16, b"one", 10.0, records=[{"x": 1}])
        second = StoredBatch("d1", b"\x02" * 16, b"two", 11.5)
        assert storage.store_batches([first, second]) == [True, True]
        assert storage.store_batches([first]) == [False]  # a duplicate adds nothing
        got = list(storage.iter_batches())
        assert got == [
            StoredBatch("d2", b"\x01" * 16, b"one", 10.0),
            StoredBatch("d1", b"\x02" * 16, b"two", 11.5),
        ]
        assert [(b.device, b.batch_id, b.payload) for b in got] == storage.batches()
    finally:
        storage.close()
