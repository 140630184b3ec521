from __future__ import annotations

import pytest

from streamfeat import Clock, ManualClock, SystemClock


def test_manual_clock_moves_only_forward() -> None:
    c = ManualClock(10.0)
    c.advance(1.5)
    assert c.time() == c.monotonic() == 11.5
    with pytest.raises(ValueError, match="negative"):
        c.advance(-1)
    with pytest.raises(ValueError, match="backwards"):
        c.set(3.0)
    c.set(20.0)
    assert c.time() == 20.0


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(ManualClock(), Clock)
    assert isinstance(SystemClock(), Clock)
    assert SystemClock().monotonic() <= SystemClock().monotonic()
