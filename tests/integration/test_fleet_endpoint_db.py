"""The endpoint's database stays safe when another process opens it while the endpoint runs.

Regression: the endpoint opens its file twice (registry, storage); a plain descriptor opened and
closed on the file dropped the process's SQLite locks, so a second process (``streamfeat device
add``, ``device config``) closing its connection deleted the WAL, and batches acknowledged after
that were lost when the endpoint was killed. Found by the fleet simulator's audit.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

ENDPOINT = """
import os, sys, time
from streamfeat.endpoint._registry import Registry
from streamfeat.endpoint._storage import SQLiteStorage, StoredBatch
reg = Registry(sys.argv[1]); st = SQLiteStorage(sys.argv[1])
n = 0
while True:
    st.store_batches([StoredBatch("d", os.urandom(16), b"x", time.time())])
    n += 1
    print(n, flush=True)  # acknowledged: stored and committed
    time.sleep(0.005)
"""

OTHER = """
import sys
from streamfeat.endpoint._storage import SQLiteStorage
s = SQLiteStorage(sys.argv[1]); s.set_config("d", 1, b"tasks"); s.close()
"""


def test_acknowledged_batches_survive_a_kill_after_another_process_used_the_database(
    tmp_path: Path,
) -> None:
    db = tmp_path / "endpoint.sqlite"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = (tmp_path / "acks.txt").open("w")
    proc = subprocess.Popen([sys.executable, "-c", ENDPOINT, str(db)], stdout=out, env=env)
    try:
        time.sleep(1.5)
        subprocess.run([sys.executable, "-c", OTHER, str(db)], env=env, check=True, timeout=30)
        time.sleep(1.0)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        out.close()
    acknowledged = int((tmp_path / "acks.txt").read_text().split()[-1])
    conn = sqlite3.connect(db)
    stored = conn.execute("SELECT count(*) FROM batches").fetchone()[0]
    conn.close()
    assert acknowledged > 50
    assert stored >= acknowledged
