"""The public names of the windows and features packages resolve, and the stages fit the engine."""

from __future__ import annotations

import streamfeat.features as features
import streamfeat.windows as windows
from streamfeat import Stage
from streamfeat.tasks import parse_tasks


def test_every_exported_name_resolves() -> None:
    for mod in (windows, features):
        for name in mod.__all__:
            assert getattr(mod, name) is not None, name


def test_both_stages_implement_the_stage_protocol() -> None:
    config = parse_tasks('[windows.w]\nassign = "count 2"\n[features.i]\nkind = "ipv"\n')
    ws, fs = windows.WindowStage(config), features.FeatureStage(config)
    assert isinstance(ws, Stage)
    assert isinstance(fs, Stage)
    assert (ws.name, fs.name) == ("windows", "features")
    for stage in (ws, fs):
        state = stage.new_state("d")
        assert stage.idle(state)
        assert stage.dump(stage.load(stage.dump(state))) == stage.dump(state)
        assert "d" in repr(state)
