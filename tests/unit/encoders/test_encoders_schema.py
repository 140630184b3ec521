"""Schemas derived from a tasks file: kinds per aggregate, deterministic ids."""

from __future__ import annotations

import subprocess
import sys

from streamfeat.encoders import SchemaSet, schemas_for
from streamfeat.encoders._schema import SCHEMA_VERSION
from streamfeat.tasks import TasksConfig, parse_tasks
from tests.unit.encoders.conftest import TASKS_TOML


def kinds(schemas: SchemaSet, label: str) -> dict[str, tuple[str, bool, int, str]]:
    (schema,) = [s for s in schemas.schemas if s.label == label]
    return {f.qname: (f.kind, f.nullable, f.decimals, f.of) for f in schema.fields}


def test_every_record_type_has_a_schema(schemas: SchemaSet) -> None:
    assert sorted(s.label for s in schemas.schemas) == sorted([
        "feature:ipv", "feature:exposure", "window:clicks_10m", "window:by_item", "window:session",
        "window:every50", "late:clicks_10m", "late:by_item", "late:session", "late:every50",
        "trigger:ipv_done", "trigger:no_click", "task:rerank",
    ])  # fmt: skip


def test_ipv_fields(schemas: SchemaSet) -> None:
    k = kinds(schemas, "feature:ipv")
    assert k["v.item"][0] == "id"
    assert k["v.enter_ts"][0] == "ts"
    assert k["ts"][0] == "ts"
    assert k["v.truncated"][0] == "flag"
    assert k["v.scroll"][0] == "count"
    assert k["v.add_cart"][0] == "count"


def test_window_values_are_typed_by_aggregate_and_field(schemas: SchemaSet) -> None:
    k = kinds(schemas, "window:by_item")
    assert k["key"][0] == "id"  # key = item
    assert k["v.n"] == ("uint", False, 0, "")
    assert k["v.mean_pos"] == ("num", True, 3, "")
    assert k["v.first"] == ("ts", True, 0, "")
    assert k["v.last"] == ("id", True, 0, "")
    assert k["v.lo"][0] == "any"  # args.* may be a number or a string
    assert k["v.hi"] == ("str", True, 0, "")
    assert k["v.cats"] == ("top", False, 0, "id")  # args.category goes through admission
    assert k["v.pages"] == ("top", False, 0, "str")
    assert k["v.times"] == ("top", False, 0, "ts")
    assert k["v.tsum"] == ("num", True, 0, "")
    assert kinds(schemas, "window:clicks_10m")["key"][0] == "str"


def test_task_values_are_free_form(schemas: SchemaSet) -> None:
    assert kinds(schemas, "task:rerank")["values"][0] == "map"


def test_id_is_deterministic_and_follows_what_shapes_records(config: TasksConfig) -> None:
    a = schemas_for(config)
    assert schemas_for(parse_tasks(TASKS_TOML)).id == a.id
    assert a.version == SCHEMA_VERSION
    # sections that do not shape records leave the id alone
    assert (
        schemas_for(parse_tasks(TASKS_TOML.replace('encoding = "compact"', 'encoding = "json"'))).id
        == a.id
    )
    # K of top K does not shape the bytes; a changed assigner, field, feature or name does
    assert schemas_for(parse_tasks(TASKS_TOML.replace("top 3 item", "top 4 item"))).id == a.id
    for old, new in [
        ('"tumbling 10m"', '"tumbling 5m"'),
        ("top 3 item", "top 3 page"),
        ('[features.exposure]\nkind = "exposure"', ""),
        ("ipv_done =", "ipv_over ="),
    ]:
        assert schemas_for(parse_tasks(TASKS_TOML.replace(old, new))).id != a.id, (old, new)


def test_id_is_the_same_in_another_process(schemas: SchemaSet) -> None:
    code = (
        "from streamfeat.encoders import schemas_for; from streamfeat.tasks import parse_tasks;"
        "from tests.unit.encoders.conftest import TASKS_TOML;"
        "print(schemas_for(parse_tasks(TASKS_TOML)).id)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PYTHONPATH": "."})  # fmt: skip
    assert int(out.stdout) == schemas.id
