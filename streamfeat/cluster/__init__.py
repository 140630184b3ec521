"""Replay partitioned by device on a Dask cluster (``pip install 'streamfeat[cluster]'``).

Importing this package does not import Dask; running a replay on a cluster does, and says how
to install it when it is missing. :func:`run_partition` (one partition, no Dask) is what each
worker runs.
"""

from __future__ import annotations

from streamfeat.cluster._driver import (
    ClusterReplayOptions,
    ClusterReplaySummary,
    expand_inputs,
    parse_cluster,
    run_cluster_replay,
)
from streamfeat.cluster._partition import PartitionJob, PartitionResult, route, run_partition

__all__ = [
    "ClusterReplayOptions",
    "ClusterReplaySummary",
    "PartitionJob",
    "PartitionResult",
    "expand_inputs",
    "parse_cluster",
    "route",
    "run_cluster_replay",
    "run_partition",
]
