"""The embedded agent: the whole on-device pipeline on one asyncio loop, and its live reconfiguration."""

from __future__ import annotations

from streamfeat.agent._agent import Agent, AgentStats, load_config
from streamfeat.agent._outbox import TimedOutbox, UploadTimes
from streamfeat.agent._switch import SwitchReport, diff_configs, switch_engine

__all__ = [
    "Agent",
    "AgentStats",
    "SwitchReport",
    "TimedOutbox",
    "UploadTimes",
    "diff_configs",
    "load_config",
    "switch_engine",
]
