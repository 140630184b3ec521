"""Records of an endpoint database whose batches were stored without being decoded.

An endpoint started with a decoder (``streamfeat serve``) keeps one decoded row per record,
which :func:`streamfeat.endpoint.iter_records` reads. An endpoint without one (the
simulator's own endpoint) keeps only the raw batches; :class:`BatchRecords` decodes them
here, the way the endpoint would have (the batch's items, each decoded with the schemas of
the tasks files the devices ran), through the storage API (:meth:`SQLiteStorage.iter_batches`)
and the endpoint's decoder (:func:`~streamfeat.endpoint._backend.decoder_for`). It is a
:class:`~streamfeat.endpoint.RecordSource`, so :func:`~streamfeat.train.read_samples` takes it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streamfeat.endpoint._backend import decoder_for
from streamfeat.endpoint._records import RecordQuery
from streamfeat.endpoint._storage import SQLiteStorage
from streamfeat.errors import StorageError
from streamfeat.tunnel._items import split_items

__all__ = ["BatchRecords"]

_NAME_KEYS = ("feature", "window", "trigger", "task")


class BatchRecords:
    """Decode the raw batches of an endpoint's SQLite file on the fly.

    Args:
        db: the endpoint's SQLite file.
        tasks: the tasks files the devices ran (default: the embedded default).

    Attributes:
        undecodable: batches the schemas could not decode (skipped, counted).

    Raises:
        StorageError: no such file.
        ConfigError: a tasks file is refused.
    """

    def __init__(self, db: str | Path, tasks: list[str] | None = None) -> None:
        if not Path(db).is_file():
            msg = f"no endpoint database at {db}"
            raise StorageError(msg)
        self.db = Path(db)
        self._decode = decoder_for(tasks)
        self.undecodable = 0

    def batch_count(self) -> int:
        """How many batches the database holds."""
        st = SQLiteStorage(self.db, create=False)
        try:
            return sum(1 for _ in st.iter_batches())
        finally:
            st.close()

    def iter_records(self, query: RecordQuery) -> Iterator[dict[str, Any]]:
        """Yield rows as :func:`~streamfeat.endpoint.iter_records` does (oldest first here),
        filtered by ``device``, ``kind`` and ``name``."""
        st = SQLiteStorage(self.db, create=False)
        self.undecodable = 0
        n = 0
        try:
            for b in st.iter_batches():
                if query.device is not None and b.device != query.device:
                    continue
                try:
                    recs = [r for item in split_items(b.payload) for r in self._decode(item)]
                except Exception:  # a batch the schemas do not know: skipped and counted
                    self.undecodable += 1
                    continue
                for rec in recs:
                    name = next((rec[k] for k in _NAME_KEYS if k in rec), None)
                    if query.kind is not None and rec.get("kind") != query.kind:
                        continue
                    if query.name is not None and name != query.name:
                        continue
                    n += 1
                    yield {"id": n, "received": b.received, "device": b.device,
                           "kind": rec.get("kind"), "name": name, "record": rec}  # fmt: skip
        finally:
            st.close()
