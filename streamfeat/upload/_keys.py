"""Key files on the device: reading the JSON file ``streamfeat device add`` writes.

The endpoint writes key files (``streamfeat.endpoint._registry.write_key_file``, mode 0600);
the device only reads its own, through this module, so the device side never imports the
endpoint's registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from streamfeat.errors import StorageError

__all__ = ["read_key_file"]


def read_key_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a key file written by ``streamfeat.endpoint._registry.write_key_file``.

    Raises:
        StorageError: missing, unreadable or not JSON.
    """
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        msg = f"can't read key file {path}: {exc}"
        raise StorageError(msg) from exc
    if not isinstance(data, dict):
        msg = f"key file {path} is not a JSON object"
        raise StorageError(msg)
    return data
