"""The embedded agent: the whole on-device pipeline on one asyncio loop, and its live reconfiguration.

Layers, bottom up: ``_switch`` (carrying engine state to a new tasks file, pure),
``_sink`` (:class:`RecordSink`: store, encode, enqueue; synchronous), ``_switcher``
(:class:`ConfigSwitcher`: the running tasks file, snapshots and switches; synchronous),
``_journal``, ``_outbox`` (upload timing); the agent's collaborators ``_durable`` (commits,
recovery, snapshots, retention, ticks), ``_intake`` (validate, journal, queue), ``_downlink``
(configs that come down, live switches), ``_release`` (release wiring), ``_views`` (what
the app reads); ``_agent``
(:class:`Agent`, the thin asyncio shell wiring them to the engine queue, the tasks and the
:mod:`streamfeat.upload` uploader), ``_cli``. Never imports :mod:`streamfeat.endpoint`.
"""

from __future__ import annotations

from streamfeat.agent._agent import Agent, AgentStats, load_config
from streamfeat.agent._journal import Journal, accepted_events
from streamfeat.agent._outbox import TimedOutbox, UploadTimes
from streamfeat.agent._ports import TaskDispatcher, UploaderLike
from streamfeat.agent._results import ResultFeed, ResultIterator
from streamfeat.agent._sink import PayloadQueue, RecordSink, RecordStore
from streamfeat.agent._switch import SwitchReport, diff_configs, switch_engine
from streamfeat.agent._switcher import ConfigSwitcher

__all__ = [
    "Agent",
    "AgentStats",
    "ConfigSwitcher",
    "Journal",
    "PayloadQueue",
    "RecordSink",
    "RecordStore",
    "ResultFeed",
    "ResultIterator",
    "SwitchReport",
    "TaskDispatcher",
    "TimedOutbox",
    "UploadTimes",
    "UploaderLike",
    "accepted_events",
    "diff_configs",
    "load_config",
    "switch_engine",
]
