"""The cyclic collector's rule for a replay loop that runs only streamfeat's own stages.

The stages and the reader make no cyclic garbage: what they drop, reference counting frees
(``tests/unit/replay/test_replay_gc.py`` checks it with the collector collecting every 50
allocations). In such a loop the collector would find nothing and only walk the devices'
states as they are made, about a seventh of the Taobao sample's replay time. So it is off for
the loop (the single-process replay's compiled loop, a partition's loop), and on again after
it as the caller had it. What the loop left live is frozen first, as the replay freezes its
tables at the start: turned on with all of it in the young generation, the collector's next
pass would walk it all. A loop that runs task code (the replay's general loop) keeps it on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["collector_off"]


@contextmanager
def collector_off() -> Iterator[None]:
    """Run the block with the cyclic collector off; freeze what is live, then restore it."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
