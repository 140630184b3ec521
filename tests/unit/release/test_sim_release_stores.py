"""Where the simulator keeps device stores: in memory only when N stores fit with room."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamfeat.sim._simulation import _stores_fit


def test_a_small_fleet_fits_in_memory_and_a_huge_one_goes_to_disk(tmp_path: Path) -> None:
    st = os.statvfs(tmp_path)
    free = st.f_bavail * st.f_frsize
    if free < 64 * 2**20:
        pytest.skip(f"{tmp_path} has under 64 MB free")
    assert _stores_fit(tmp_path, 1, 0.0)
    # 6 MB a device with a 1 MB bundle: beyond a quarter of what is free, never in memory
    too_many = int(free / (6 * 2**20)) + 1
    assert not _stores_fit(tmp_path, too_many, 1.0)


def test_no_memory_folder_means_disk(tmp_path: Path) -> None:
    assert not _stores_fit(tmp_path / "absent", 1, 0.0)
