"""The fleet simulator and the demo: an endpoint and N agents, under faults, with an audit.

Layout: ``_options.py`` (what to run, what was found), ``_simulation.py`` (the run: work dir,
endpoint, fleet processes, chaos loop, live config pushes), ``_procs.py`` (child processes
speaking JSON lines), ``_endpoint.py`` and ``_fleet.py`` (the children:
``python -m streamfeat.sim._endpoint`` and ``python -m streamfeat.sim._fleet``), ``_chaos.py``
(a TCP proxy that cuts connections), ``_audit.py`` (the report's sums and the end-to-end
audit, read through the endpoint's storage API), ``_cli.py`` (``streamfeat simulate``) and
``_demo.py`` (``streamfeat demo``).
"""

from __future__ import annotations

from streamfeat.sim._options import SimOptions, SimReport
from streamfeat.sim._simulation import Simulation, simulate

__all__ = ["SimOptions", "SimReport", "Simulation", "simulate"]
