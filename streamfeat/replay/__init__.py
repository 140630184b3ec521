"""The replay app: a recorded event log through a tasks file (SPEC section 6).

:func:`run_replay` is the library entry; ``streamfeat replay`` (``_cli.py``) is the command.
:func:`run_cluster_replay` runs the same replay partitioned by device on a Dask cluster
(``_partition.py``: one partition, what each worker runs; ``_cluster.py``: the driver; Dask
is imported only when a cluster replay runs).
"""

from __future__ import annotations

from streamfeat.replay._cluster import (
    ClusterReplayOptions,
    ClusterReplaySummary,
    expand_inputs,
    parse_cluster,
    run_cluster_replay,
)
from streamfeat.replay._partition import PartitionJob, PartitionResult, route, run_partition
from streamfeat.replay._replay import ReplayOptions, ReplaySummary, run_replay

__all__ = [
    "ClusterReplayOptions",
    "ClusterReplaySummary",
    "PartitionJob",
    "PartitionResult",
    "ReplayOptions",
    "ReplaySummary",
    "expand_inputs",
    "parse_cluster",
    "route",
    "run_cluster_replay",
    "run_partition",
    "run_replay",
]
