"""The replay app: a recorded event log through a tasks file (SPEC section 6).

:func:`run_replay` is the library entry; ``streamfeat replay`` (``_cli.py``) is the command.
"""

from __future__ import annotations

from streamfeat.replay._replay import ReplayOptions, ReplaySummary, run_replay

__all__ = ["ReplayOptions", "ReplaySummary", "run_replay"]
