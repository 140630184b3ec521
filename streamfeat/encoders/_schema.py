"""Record schemas: what the codecs know of a record type (derived from a tasks file by
:func:`streamfeat.engine.schemas_for`, so that device and endpoint agree on them).

A :class:`Schema` describes one record type (the ``ipv`` feature, the window ``clicks_10m``,
the trigger ``no_click``, ...): its fields in encoding order, each with a *kind* that says how
the compact codec writes it. A :class:`SchemaSet` is every schema one tasks file can produce,
with an ``id`` (a hash of the schemas' canonical description, so two processes that load the
same tasks file compute the same id) and a ``version`` (the version of the rules below that
turn a tasks file into schemas). A batch names both in its header; a decoder that does not know
them refuses the batch (:class:`~streamfeat.errors.UnknownSchemaError`).

Field kinds (``docs/encoders.md`` has the byte layout):

========  ======================================================================
``int``   int (zigzag varint)
``uint``  non-negative int (varint); with ``ref``, a signed delta from another field
``count`` non-negative int, one presence bit; zero costs no byte
``ts``    int timestamp, a signed delta from the batch's previous timestamp
``id``    item / category id (str or int): string dictionary, or a hashed bucket when
          the encoder's admission filter refuses it
``str``   string through the per-batch dictionary
``flag``  bool, one bit
``num``   int (exact) or float quantised to ``decimals`` places; non-finite or huge
          floats are sent raw
``any``   self-describing: null, bool, int, float (exact), str, list, map
``top``   list of ``[value, count]``; the value has the kind ``of``
``map``   free-form ``values`` object (self-describing, exact)
========  ======================================================================

Modifiers: ``nullable`` (one bit), ``derive`` (one bit set when the value equals what the
expression predicts from fields already written, e.g. an ipv's ``ts`` is ``enter_ts +
dwell_ms``; the value is then not written at all).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = [
    "NAME_KEY",
    "SCHEMA_VERSION",
    "Field",
    "Schema",
    "SchemaSet",
    "index_schemas",
]

#: bump when the rules turning a tasks file into schemas change (2: window records gained
#: ``forced``, with ``final`` as its deprecated twin; ``late`` records carry their ``event``)
SCHEMA_VERSION = 2
ID_FIELDS = ("item", "args.category")  # event fields whose values go through admission
STR_FIELDS = ("device", "page", "type")
MEAN_DECIMALS = 3
KINDS = ("int", "uint", "count", "ts", "id", "str", "flag", "num", "any", "top", "map")


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a schema.

    Attributes:
        name: the record key, or (``in_values``) the key inside ``values``.
        kind: how it is encoded (see the module docstring).
        in_values: the field lives in the record's ``values`` object.
        nullable: the value may be ``None`` (one bit).
        decimals: ``num``: the stated precision, ``10**-decimals``.
        of: ``top``: the kind of the listed values (``id``, ``str``, ``ts``, ``any``).
        derive: expression predicting the value: ``("sum", a, b)`` (b a field or an int),
            ``("eq", a)`` or ``("prev",)`` (the same field of the batch's previous record).
        ref: ``uint``: the field the value is written as a delta from.
    """

    name: str
    kind: str
    in_values: bool = False
    nullable: bool = False
    decimals: int = 0
    of: str = ""
    derive: tuple[Any, ...] = ()
    ref: str = ""

    @property
    def qname(self) -> str:
        """The name other fields use to refer to this one (``v.`` prefix inside values)."""
        return "v." + self.name if self.in_values else self.name

    def describe(self) -> list[Any]:
        """Return the canonical, JSON-able description hashed into the schema id."""
        return [
            self.qname,
            self.kind,
            self.nullable,
            self.decimals,
            self.of,
            list(self.derive),
            self.ref,
        ]


@dataclass(frozen=True)
class Schema:
    """One record type: ``kind`` (``feature``, ``window``, ...), its ``name`` and its fields.

    ``layout`` is the key order of the decoded record; ``values`` is the key order of its
    ``values`` object (``None`` when it has none, or when it is a free-form ``map`` field).
    """

    kind: str
    name: str
    fields: tuple[Field, ...]
    layout: tuple[str, ...]
    values: tuple[str, ...] | None = None
    bits: dict[str, tuple[int, ...]] = field(default_factory=dict, compare=False, repr=False)
    nbytes: int = field(default=0, compare=False, repr=False)
    topkeys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    valuekeys: frozenset[str] = field(default=frozenset(), compare=False, repr=False)
    plan: tuple[tuple[Field, str, tuple[int, ...]], ...] = field(
        default=(), compare=False, repr=False
    )
    prev_fields: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        bits: dict[str, tuple[int, ...]] = {}
        n = 0
        for f in self.fields:
            want = (
                int(f.nullable)
                + int(bool(f.derive))
                + {"flag": 1, "count": 1, "num": 2}.get(f.kind, 0)
            )
            bits[f.qname] = tuple(range(n, n + want))
            n += want
        object.__setattr__(self, "bits", bits)
        object.__setattr__(self, "nbytes", (n + 7) // 8)
        object.__setattr__(self, "topkeys", frozenset(self.layout))
        object.__setattr__(self, "valuekeys", frozenset(self.values or ()))
        # what the codec loops over: no property calls or lookups per field on the hot path
        object.__setattr__(self, "plan", tuple((f, f.qname, bits[f.qname]) for f in self.fields))
        prev = tuple(f.qname for f in self.fields if f.derive and f.derive[0] == "prev")
        object.__setattr__(self, "prev_fields", prev)

    @property
    def label(self) -> str:
        """``kind:name``, the row label of size reports."""
        return f"{self.kind}:{self.name}"

    def describe(self) -> list[Any]:
        """Return the canonical, JSON-able description hashed into the schema id."""
        return [self.kind, self.name, list(self.layout), [f.describe() for f in self.fields]]


class SchemaSet:
    """Every schema of one tasks file, with the id and version a batch header names.

    Attributes:
        schemas: the schemas; type index ``i + 1`` in a compact batch is ``schemas[i]`` (0 is
            the self-describing fallback for records that fit no schema).
        id: unsigned 32-bit hash of the schemas' canonical description.
        version: :data:`SCHEMA_VERSION` of the derivation rules.
    """

    def __init__(self, schemas: tuple[Schema, ...], version: int = SCHEMA_VERSION) -> None:
        self.schemas = schemas
        self.version = version
        canon = orjson.dumps([version, [s.describe() for s in schemas]])
        self.id = int.from_bytes(hashlib.sha256(canon).digest()[:4], "big")
        self.by_type: dict[tuple[str, str], tuple[int, Schema]] = {
            (s.kind, s.name): (i + 1, s) for i, s in enumerate(schemas)
        }
        # the compact codec's generated batch writer, built on first use (_compact_writers.py)
        self.writer: Any = None
        # the compiled core's walk over typed field plans, built on first use (_compact_walk.py)
        self.walk: Any = None

    def lookup(self, record: Mapping[str, Any]) -> tuple[int, Schema | None]:
        """Return the type index and schema of ``record`` (``(0, None)`` when none fits)."""
        kind = record.get("kind")
        name_key = NAME_KEY.get(kind) if isinstance(kind, str) else None
        if name_key is None:
            return 0, None
        name = record.get(name_key)
        if not isinstance(name, str):
            return 0, None
        hit = self.by_type.get((kind, name))  # type: ignore[arg-type]
        return hit if hit is not None else (0, None)

    def __repr__(self) -> str:
        return f"SchemaSet(id={self.id:#010x}, version={self.version}, types={len(self.schemas)})"


def index_schemas(*sets: SchemaSet) -> dict[int, SchemaSet]:
    """Return the ``schemas_by_id`` mapping :func:`decode_batch` takes."""
    return {s.id: s for s in sets}


NAME_KEY = {
    "feature": "feature",
    "window": "window",
    "late": "window",
    "trigger": "trigger",
    "task": "task",
}
