"""Helpers of the agent: tasks-file loading, key parsing, quarantine bytes, schema and
admission-filter set-up, and the agent's counters."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from streamfeat._log import agent_log
from streamfeat.encoders import SchemaSet, schemas_for
from streamfeat.encoders.admission import AdmissionFilter
from streamfeat.errors import ConfigError
from streamfeat.io._store import Store
from streamfeat.tasks import TasksConfig, load_tasks, parse_tasks

__all__ = ["ADMISSION_KEY", "ADMISSION_SPEC_KEY", "AgentStats", "device_seed", "key_bytes",
           "load_config", "new_admission", "raw_of", "schemas"]  # fmt: skip

ADMISSION_KEY = "admission"
ADMISSION_SPEC_KEY = "admission.spec"


def load_config(tasks: TasksConfig | str | Path) -> TasksConfig:
    """Return a validated tasks file from a config, a path, or TOML text (``[`` or newline)."""
    if isinstance(tasks, TasksConfig):
        return tasks
    text = str(tasks)
    if isinstance(tasks, str) and ("\n" in text or text.lstrip().startswith("[")):
        return parse_tasks(text, source="<tasks>")
    return load_tasks(tasks)


def key_bytes(value: bytes | str | None, what: str) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        msg = f"{what} must be 32 bytes or 64 hex digits, got {value[:16]!r}..."
        raise ConfigError(msg) from exc


def raw_of(obj: object) -> bytes:
    """The bytes kept in quarantine for an object that is not a valid event."""
    try:
        return orjson.dumps(obj, default=repr)
    except TypeError:  # non-string keys and the like: keep its repr rather than nothing
        return repr(obj).encode()


_SCHEMAS: dict[str, SchemaSet] = {}


def schemas(config: TasksConfig) -> SchemaSet:
    """The schema set of a tasks file, computed once per file text (many agents share one)."""
    found = _SCHEMAS.get(config.text)
    if found is None or not config.text:
        found = schemas_for(config)
        if len(_SCHEMAS) < 64:
            _SCHEMAS[config.text] = found
    return found


@dataclass
class AgentStats:
    """What the agent did since it started (the store's counters persist across restarts)."""

    submitted: int = 0
    quarantined: int = 0
    events_raw_bytes: int = 0
    records: dict[str, int] = field(default_factory=dict)
    uploaded_records: int = 0
    uploaded_json_bytes: int = 0  # the same records as JSON lines: the "feature" size
    payloads: int = 0
    payload_bytes: int = 0
    encode_errors: int = 0  # records that could not be encoded (stored, not uploaded)
    store_errors: int = 0  # records the store could not write (still uploaded)
    queue_errors: int = 0  # records the outbox could not take (stored, not uploaded)
    tasks_started: int = 0
    config_version: int = 0
    configs_applied: int = 0
    configs_refused: int = 0
    snapshots: int = 0
    evicted: int = 0  # store records and quarantine entries evicted by [store] retention
    replayed: int = 0  # journaled events processed again at start (accepted before a crash)
    store_failures: int = 0  # store failures that stopped the agent (see Agent.failure)


def device_seed(public_key: bytes | None, name: str) -> int:
    """A per-device seed (hashed buckets and sampling differ by device), stable across restarts."""
    who = public_key if public_key is not None else name.encode()
    return int.from_bytes(hashlib.blake2b(who, digest_size=8).digest(), "big")


def new_admission(store: Store, spec: str, seed: int) -> AdmissionFilter:
    """The admission filter for ``spec``: the one saved in ``store`` with that spec, else a new one."""
    from streamfeat.encoders import load_admission, parse_admission
    from streamfeat.errors import DecodeError

    saved = store.get_state(ADMISSION_KEY)
    if saved is not None and store.get_state(ADMISSION_SPEC_KEY) == spec.encode():
        try:
            return load_admission(saved)
        except DecodeError:
            agent_log.warning("stored admission state is unreadable; starting a new filter")
    return parse_admission(spec, seed=seed)
