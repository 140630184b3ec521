"""Values that used to pass the loader and then crash or stall (issue 11, item 11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamfeat._durations import MAX_DURATION_MS, parse_duration
from streamfeat.errors import ConfigError
from streamfeat.tasks import load_tasks, parse_tasks
from streamfeat.tasks._file import MAX_BATCH_BYTES
from streamfeat.tunnel._frames import MAX_BATCH
from streamfeat.windows._spec import MAX_PANES, parse_assign


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ('[windows.w]\nassign = "sliding 365d every 1ms"\n', "windows.w.assign", "panes"),
        ('[windows.w]\nassign = "sliding 7d every 1m"\n', "windows.w.assign", "panes"),
        ("[upload]\nbatch_max_bytes = 65001\n", "upload.batch_max_bytes", "at most"),
        ("[upload]\noutbox_max_mb = nan\n", "upload.outbox_max_mb", "finite"),
        ("[upload]\noutbox_max_mb = inf\n", "upload.outbox_max_mb", "finite"),
        ("[store]\nmax_mb = inf\n", "store.max_mb", "finite"),
        ('[engine]\nlateness = "99999999999999999999d"\n', "engine.lateness", "longest"),
        ('[engine]\npartial_limit = "36501d"\n', "engine.partial_limit", "longest"),
        ('[windows.w]\nassign = "tumbling 1m"\nlateness = "9999999d"\n', "windows.w.lateness", ""),
        ('[triggers]\nt = "click * buy within 99999999999d"\n', "triggers.t", ""),
    ],
)
def test_values_that_crashed_later_are_refused_at_load(text: str, key: str, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_tasks(text, source="t.toml")
    assert info.value.file == "t.toml"
    assert info.value.key == key
    assert words in info.value.reason


def test_limits_at_the_bound_are_accepted() -> None:
    cfg = parse_tasks(
        '[engine]\nlateness = "36500d"\n'
        f"[upload]\nbatch_max_bytes = {MAX_BATCH_BYTES}\noutbox_max_mb = 1e3\n"
        '[windows.w]\nassign = "sliding 1d every 10s"\n'
    )
    assert cfg.engine.lateness == MAX_DURATION_MS
    assert cfg.upload.batch_max_bytes == MAX_BATCH_BYTES
    assert parse_assign("sliding 10000s every 1s").size == 10_000_000
    assert MAX_PANES == 10_000


def test_batch_bound_is_the_tunnels() -> None:
    assert MAX_BATCH_BYTES == MAX_BATCH


def test_duration_digits_without_end_are_refused_quickly() -> None:
    with pytest.raises(ValueError, match="longest"):
        parse_duration("9" * 5000 + "d")


def test_tasks_file_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "t.toml"
    path.write_bytes(b'[engine]\nlateness = "\xff5s"\n')
    with pytest.raises(ConfigError) as info:
        load_tasks(path)
    assert info.value.file == str(path)
    assert "not UTF-8" in info.value.reason
