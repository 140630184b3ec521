"""Record schemas from a tasks file: the rules turning its sections into a :class:`SchemaSet`.

The device and the endpoint derive the same schemas from the same file, so both compute the
same :attr:`SchemaSet.id`. Bump :data:`~streamfeat.encoders._schema.SCHEMA_VERSION` when
these rules change.

>>> from streamfeat.encoders import decode_batch, encoder_for, index_schemas
>>> from streamfeat.tasks import parse_tasks
>>> schemas = schemas_for(parse_tasks('[features.ipv]\\nkind = "ipv"'))
>>> rec = {"kind": "feature", "feature": "ipv", "device": "d1", "ts": 1_700_000_030_000,
...        "values": {"item": "42", "enter_ts": 1_700_000_000_000, "dwell_ms": 30_000,
...                   "truncated": False, "add_cart": 1, "purchase": 0, "favorite": 0,
...                   "comment": 0, "select_sku": 0, "ask": 0, "service": 0, "detail": 0,
...                   "shop": 0, "recommend": 0, "share": 0, "scroll": 4}}
>>> data = encoder_for("compact", schemas).encode_batch([rec])
>>> decode_batch(data, index_schemas(schemas)) == [rec]
True
"""

from __future__ import annotations

from streamfeat.encoders._schema import (
    ID_FIELDS,
    MEAN_DECIMALS,
    SCHEMA_VERSION,
    STR_FIELDS,
    Field,
    Schema,
    SchemaSet,
)
from streamfeat.features import FeatureConfig
from streamfeat.tasks import TasksConfig
from streamfeat.windows import AggSpec, WindowConfig

__all__ = ["schemas_for"]

_DEVICE = Field("device", "str", derive=("prev",))


def _field_kind(name: str) -> str:
    if name == "ts":
        return "ts"
    if name in ID_FIELDS:
        return "id"
    if name in STR_FIELDS:
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


def _window_schema(w: WindowConfig, version: int) -> Schema:
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
    )
    layout: tuple[str, ...] = ("kind", "window", "device", "key", "start", "end", "values")
    if version >= 2:
        fields += (Field("forced", "flag"), Field("final", "flag", derive=("eq", "forced")))
        layout += ("forced", "final")  # `final`: the deprecated twin of `forced`
    else:
        fields += (Field("final", "flag"),)
        layout += ("final",)
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


def schemas_for(config: TasksConfig, version: int = SCHEMA_VERSION) -> SchemaSet:
    """Return the schemas of every record type the tasks file ``config`` can produce.

    Only what shapes records matters (features and their actions, windows' assigners, keys and
    aggregates, trigger and task names): two files that differ elsewhere share an id.

    Args:
        config: the tasks file.
        version: the derivation rules: the current :data:`SCHEMA_VERSION`, or 1 (the previous
            release: window records carry only ``final``, ``late`` records no ``event``), which
            an endpoint indexes too so that devices not yet upgraded keep uploading.
    """
    out: list[Schema] = []
    for name in sorted(config.features):
        out.append(_feature_schema(config.features[name]))
    for name in sorted(config.windows):
        out.append(_window_schema(config.windows[name], version))
        late: tuple[Field, ...] = (_DEVICE, Field("ts", "ts"))
        late_layout: tuple[str, ...] = ("kind", "window", "device", "ts")
        if version >= 2:
            late, late_layout = (*late, Field("event", "map")), (*late_layout, "event")
        out.append(Schema("late", name, late, late_layout))
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
    for name in sorted({*config.tasks, *config.reranks}):
        out.append(Schema("task", name, task_fields, ("kind", "task", "device", "ts", "values")))
    return SchemaSet(tuple(out), version)
