"""Record schemas, derived from a tasks file so that device and endpoint agree on them.

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

from streamfeat.tasks import FeatureConfig, TasksConfig, WindowConfig
from streamfeat.windows import AggSpec

__all__ = [
    "NAME_KEY",
    "SCHEMA_VERSION",
    "Field",
    "Schema",
    "SchemaSet",
    "index_schemas",
    "schemas_for",
]

SCHEMA_VERSION = 1  # bump when the rules turning a tasks file into schemas change
ID_FIELDS = ("item", "args.category")  # event fields whose values go through admission
_STR_FIELDS = ("device", "page", "type")
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
_DEVICE = Field("device", "str", derive=("prev",))


def _field_kind(name: str) -> str:
    if name == "ts":
        return "ts"
    if name in ID_FIELDS:
        return "id"
    if name in _STR_FIELDS:
        return "str"
    return "any"


def _agg_field(out: str, agg: AggSpec) -> Field:
    if agg.op in ("count", "distinct"):
        return Field(out, "uint", in_values=True)
    if agg.op == "mean":
        return Field(out, "num", in_values=True, nullable=True, decimals=MEAN_DECIMALS)
    kind = _field_kind(agg.field or "")
    if agg.op == "top":
        return Field(out, "top", in_values=True, of=kind)
    if agg.op == "sum":
        # a sum of timestamps is a plain int, and sums of anything else keep their type
        return Field(out, "num" if kind == "ts" else "any", in_values=True, nullable=True)
    return Field(out, kind, in_values=True, nullable=kind != "any")


def _window_schema(w: WindowConfig) -> Schema:
    end: Field
    if w.assign.kind in ("tumbling", "sliding"):
        end = Field("end", "ts", derive=("sum", "start", w.assign.size))
    else:
        end = Field("end", "ts")
    key_kind = "id" if any(k in ID_FIELDS for k in w.key) else "str"
    fields = (
        _DEVICE,
        Field("start", "ts"),
        end,
        Field("key", key_kind, derive=("eq", "device")),
        *(_agg_field(out, agg) for out, agg in w.aggregates),
        Field("final", "flag"),
    )
    layout = ("kind", "window", "device", "key", "start", "end", "values", "final")
    return Schema("window", w.name, fields, layout, tuple(out for out, _ in w.aggregates))


def _feature_schema(f: FeatureConfig) -> Schema:
    layout = ("kind", "feature", "device", "ts", "values")
    fields: tuple[Field, ...]
    if f.kind == "ipv":
        fields = (
            _DEVICE,
            Field("item", "id", in_values=True),
            Field("enter_ts", "ts", in_values=True),
            Field("dwell_ms", "int", in_values=True),  # event ts may go back
            Field("ts", "ts", derive=("sum", "v.enter_ts", "v.dwell_ms")),
            Field("truncated", "flag", in_values=True),
            *(Field(a, "count", in_values=True) for a in f.actions),
        )
        values = ("item", "enter_ts", "dwell_ms", "truncated", *f.actions)
        return Schema("feature", f.name, fields, layout, values)
    fields = (
        _DEVICE,
        Field("item", "id", in_values=True),
        Field("page", "str", in_values=True),
        # the exposures of one feed visit share visit_start, and those closed together their ts
        Field("visit_start", "ts", in_values=True, derive=("prev",)),
        Field("ts", "ts", derive=("prev",)),
        Field("first_pos", "num", in_values=True, nullable=True),
        Field("exposures", "count", in_values=True),
        Field("exposure_ms", "num", in_values=True, decimals=1),
        Field("scrolls", "count", in_values=True),
        Field("max_scroll_speed", "num", in_values=True, nullable=True, decimals=2),
        Field("clicked", "flag", in_values=True),
        Field("deleted", "flag", in_values=True),
        Field("delete_reason", "str", in_values=True, nullable=True),
    )
    values = (
        "item", "page", "visit_start", "first_pos", "exposures", "exposure_ms", "scrolls",
        "max_scroll_speed", "clicked", "deleted", "delete_reason",
    )  # fmt: skip
    return Schema("feature", f.name, fields, layout, values)


def schemas_for(config: TasksConfig) -> SchemaSet:
    """Return the schemas of every record type the tasks file ``config`` can produce.

    Only what shapes records matters (features and their actions, windows' assigners, keys and
    aggregates, trigger and task names): two files that differ elsewhere share an id.
    """
    out: list[Schema] = []
    for name in sorted(config.features):
        out.append(_feature_schema(config.features[name]))
    for name in sorted(config.windows):
        out.append(_window_schema(config.windows[name]))
        out.append(
            Schema("late", name, (_DEVICE, Field("ts", "ts")), ("kind", "window", "device", "ts"))
        )
    for name in sorted(config.triggers):
        fields = (
            _DEVICE,
            Field("first", "uint"),
            Field("last", "uint", ref="first"),
            Field("first_ts", "ts"),
            Field("last_ts", "ts"),
        )
        layout = ("kind", "trigger", "device", "first", "last", "first_ts", "last_ts")
        out.append(Schema("trigger", name, fields, layout))
    task_fields = (_DEVICE, Field("ts", "ts"), Field("values", "map"))
    for name in sorted(config.tasks):
        out.append(Schema("task", name, task_fields, ("kind", "task", "device", "ts", "values")))
    return SchemaSet(tuple(out))
