from __future__ import annotations

from pathlib import Path

import pytest

from streamfeat import ConfigError
from streamfeat.data import default_tasks_text
from streamfeat.errors import TriggerSpecError
from streamfeat.tasks import load_tasks, parse_tasks
from streamfeat.windows import AggSpec, AssignSpec

SPEC_EXAMPLE = """
[engine]
lateness = "0s"
partial_limit = "24h"
partial_limit_events = 10000

[triggers]
ipv_done = "page_enter@item_detail * page_exit@item_detail within 30m"
no_click = "exposure * exposure * exposure * exposure * exposure without click"

[windows.clicks_10m]
assign = "tumbling 10m"
key = "device"
filter = ["click"]
lateness = "5s"
aggregate = { n = "count", items = "distinct item", top = "top 3 item", dwell = "sum args.dur_ms" }

[features.ipv]
kind = "ipv"

[tasks.rerank]
on = ["no_click"]
run = "package.module:callable"

[upload]
records = ["feature", "window"]
encoding = "compact"
"""


def test_spec_example_loads() -> None:
    cfg = parse_tasks(SPEC_EXAMPLE, source="t.toml")
    assert cfg.engine.partial_limit == 24 * 3_600_000
    w = cfg.windows["clicks_10m"]
    assert w.assign == AssignSpec("tumbling", 600_000)
    assert w.lateness == 5000
    assert dict(w.aggregates)["top"] == AggSpec("top", "item", 3)
    assert [str(t) for t in w.filter or ()] == ["click"]
    assert cfg.tasks["rerank"].on == ("no_click",)
    assert cfg.features["ipv"].actions[0] == "add_cart"


def test_default_tasks_file_loads() -> None:
    cfg = parse_tasks(default_tasks_text())
    assert cfg.triggers
    assert cfg.windows
    assert cfg.features


def test_upload_admission_key() -> None:
    assert parse_tasks("[upload]\nadmission = 'bloom 3'\n").upload.admission == "bloom 3"
    assert parse_tasks("").upload.admission is None


def test_empty_file_is_a_valid_empty_config() -> None:
    cfg = parse_tasks("")
    assert not cfg.triggers
    assert not cfg.windows


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[bogus]\n", "bogus"),
        ("[engine]\nlateness = 5\n", "engine.lateness"),
        ("[engine]\nlateness = '5 parsecs'\n", "engine.lateness"),
        ("[engine]\npartial_limit_events = 0\n", "engine.partial_limit_events"),
        ("[engine]\ncolour = 'red'\n", "engine.colour"),
        ("[windows.w]\nassign = 'hopping 1h'\n", "windows.w.assign"),
        ("[windows.w]\nkey = 'device'\n", "windows.w.assign"),
        ("[windows.w]\nassign = 'tumbling 1h'\nkey = 'nope'\n", "windows.w.key"),
        ("[windows.w]\nassign = 'tumbling 1h'\nfilter = ['a b']\n", "windows.w.filter"),
        (
            "[windows.w]\nassign = 'tumbling 1h'\naggregate = { x = 'median ts' }\n",
            "windows.w.aggregate.x",
        ),
        ("[windows.w]\nassign = 'sliding 1h every 2h'\n", "windows.w.assign"),
        ("[features.f]\nkind = 'magic'\n", "features.f.kind"),
        ("[features.f]\nkind = 'ipv'\nfeed_pages = ['x']\n", "features.f.feed_pages"),
        ("[triggers]\nt = 'click'\n[tasks.k]\non = ['nope']\nrun = 'a:b'\n", "tasks.k.on"),
        ("[triggers]\nt = 'click'\n[tasks.k]\non = ['t']\nrun = 'no colon'\n", "tasks.k.run"),
        ("[upload]\nencoding = 'zip'\n", "upload.encoding"),
        ("[upload]\nrecords = ['raw']\n", "upload.records"),
        ("[upload]\nadmission = 'bloom many'\n", "upload.admission"),
        ("[upload]\nadmission = 'lottery'\n", "upload.admission"),
    ],
)
def test_bad_values_are_refused_with_file_and_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tasks(text, source="bad.toml")
    assert info.value.key == key
    assert info.value.file == "bad.toml"
    assert "bad.toml" in str(info.value)
    assert key in str(info.value)


def test_bad_trigger_pattern_names_the_trigger_key() -> None:
    with pytest.raises(TriggerSpecError) as info:
        parse_tasks("[triggers]\nipv_done = 'page_enter{0}'\n", source="t.toml")
    assert info.value.key == "triggers.ipv_done"
    assert info.value.file == "t.toml"


def test_not_toml_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "t.toml"
    p.write_text("[engine\n")
    with pytest.raises(ConfigError) as info:
        load_tasks(p)
    assert info.value.file == str(p)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_tasks(tmp_path / "absent.toml")
