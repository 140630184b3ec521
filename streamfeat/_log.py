"""Named loggers of the shell. The core never logs; the shell never configures handlers."""

from __future__ import annotations

import logging

replay_log = logging.getLogger("streamfeat.replay")
store_log = logging.getLogger("streamfeat.store")
agent_log = logging.getLogger("streamfeat.agent")
tasks_log = logging.getLogger("streamfeat.tasks")
tunnel_log = logging.getLogger("streamfeat.tunnel")
server_log = logging.getLogger("streamfeat.server")
