"""The tasks file (SPEC section 5): load, validate, and return a frozen :class:`TasksConfig`.

Every section is checked here as far as its syntax goes, so a bad file is refused at load with
the file, the dotted key and the reason; nothing half-loaded ever reaches an engine. Unknown
keys are refused too (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from streamfeat._durations import parse_duration
from streamfeat._tokens import Token, parse_token
from streamfeat.errors import ConfigError, TriggerSpecError
from streamfeat.windows._spec import AggSpec, AssignSpec, parse_aggregate, parse_assign, parse_field

__all__ = [
    "DEFAULT_IPV_ACTIONS",
    "EngineConfig",
    "FeatureConfig",
    "StoreConfig",
    "TaskConfig",
    "TasksConfig",
    "UploadConfig",
    "WindowConfig",
    "load_tasks",
    "parse_tasks",
]

DEFAULT_IPV_ACTIONS = (
    "add_cart", "purchase", "favorite", "comment", "select_sku", "ask",
    "service", "detail", "shop", "recommend", "share", "scroll",
)  # fmt: skip
FEATURE_KINDS = ("ipv", "exposure")
UPLOAD_RECORDS = ("feature", "window", "trigger", "task", "late")
ENCODINGS = ("json", "msgpack", "compact")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")
_RUN_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine-wide settings (``[engine]``); times in ms."""

    lateness: int = 0
    partial_limit: int = 24 * 3_600_000
    partial_limit_events: int = 10_000


@dataclass(frozen=True, slots=True)
class WindowConfig:
    """One ``[windows.NAME]`` table."""

    name: str
    assign: AssignSpec
    key: tuple[str, ...] = ("device",)
    filter: tuple[Token, ...] | None = None
    lateness: int | None = None  # None: the engine's
    aggregates: tuple[tuple[str, AggSpec], ...] = ()


@dataclass(frozen=True, slots=True)
class FeatureConfig:
    """One ``[features.NAME]`` table: a built-in feature and its options."""

    name: str
    kind: str
    actions: tuple[str, ...] = DEFAULT_IPV_ACTIONS  # ipv
    page: str = "item_detail"  # ipv: the detail page
    feed_pages: tuple[str, ...] = ("home_feed",)  # exposure: the feed pages


@dataclass(frozen=True, slots=True)
class TaskConfig:
    """One ``[tasks.NAME]`` table: code to run when one of ``on`` fires."""

    name: str
    on: tuple[str, ...]
    run: str
    timeout: int = 5_000  # ms


@dataclass(frozen=True, slots=True)
class UploadConfig:
    """``[upload]``: what the embedded agent encodes and sends, and how it batches."""

    records: tuple[str, ...] = ("feature", "window")
    encoding: str = "compact"
    batch_max_bytes: int = 3072
    batch_max_age: int = 1_000  # ms
    outbox_max_mb: float = 16.0
    admission: str | None = (
        None  # "poisson P" | "bloom N" | "process K HORIZON"; None: ids verbatim
    )


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``: retention of the on-device store (0 = keep forever / no size bound)."""

    retention: int = 7 * 86_400_000  # ms
    max_mb: float = 256.0


@dataclass(frozen=True, slots=True)
class TasksConfig:
    """A whole validated tasks file."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    triggers: Mapping[str, str] = field(default_factory=dict)
    windows: Mapping[str, WindowConfig] = field(default_factory=dict)
    features: Mapping[str, FeatureConfig] = field(default_factory=dict)
    tasks: Mapping[str, TaskConfig] = field(default_factory=dict)
    upload: UploadConfig = field(default_factory=UploadConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    source: str | None = None
    text: str = ""


def load_tasks(path: str | Path) -> TasksConfig:
    """Read and validate the tasks file at ``path``.

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"can't read the tasks file: {exc.strerror or exc}"
        raise ConfigError(msg, file=str(p)) from exc
    return parse_tasks(text, source=str(p))


def parse_tasks(text: str, *, source: str | None = None) -> TasksConfig:
    """Validate the TOML ``text`` of a tasks file (``source`` names it in errors).

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"not valid TOML: {exc}"
        raise ConfigError(msg, file=source) from exc
    return _Loader(source).load(doc, text)


class _Loader:
    def __init__(self, source: str | None) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> ConfigError:
        return ConfigError(reason, file=self.source, key=key)

    def table(self, doc: Mapping[str, Any], key: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        value = doc.get(key.rsplit(".", 1)[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a table, got {type(value).__name__}")
        for k in value:
            if allowed and k not in allowed:
                raise self.fail(f"{key}.{k}", f"is not a known key (known: {', '.join(allowed)})")
        return value

    def duration(self, key: str, value: object, *, minimum: int = 0) -> int:
        if not isinstance(value, str):
            raise self.fail(key, f'must be a duration string such as "30s", got {value!r}')
        try:
            ms = parse_duration(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from exc
        if ms < minimum:
            raise self.fail(key, f"must be at least {minimum} ms, got {value}")
        return ms

    def integer(self, key: str, value: object, *, minimum: int) -> int:
        if type(value) is not int or value < minimum:
            raise self.fail(key, f"must be an integer >= {minimum}, got {value!r}")
        return value

    def number(self, key: str, value: object, *, minimum: float) -> float:
        if type(value) not in (int, float) or value < minimum:  # type: ignore[operator]
            raise self.fail(key, f"must be a number >= {minimum}, got {value!r}")
        return float(value)  # type: ignore[arg-type]

    def strings(self, key: str, value: object) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"must be a list of strings, got {value!r}")
        return tuple(value)

    def name(self, key: str, name: str) -> str:
        if not _NAME_RE.match(name):
            raise self.fail(key, "names must match [A-Za-z_][A-Za-z0-9_.-]{0,63}")
        return name

    # -- sections -------------------------------------------------------------------------

    def load(self, doc: dict[str, Any], text: str) -> TasksConfig:
        known = ("engine", "triggers", "windows", "features", "tasks", "upload", "store")
        for k in doc:
            if k not in known:
                raise self.fail(k, f"is not a known section (known: {', '.join(known)})")
        engine = self.engine(
            self.table(doc, "engine", ("lateness", "partial_limit", "partial_limit_events"))
        )
        triggers = self.triggers(self.table(doc, "triggers", ()))
        windows = {n: self.window(n, t) for n, t in self.table(doc, "windows", ()).items()}
        features = {n: self.feature(n, t) for n, t in self.table(doc, "features", ()).items()}
        tasks = {n: self.task(n, t, triggers) for n, t in self.table(doc, "tasks", ()).items()}
        upload = self.upload(self.table(doc, "upload", tuple(UploadConfig.__slots__)))
        store = self.store(self.table(doc, "store", ("retention", "max_mb")))
        return TasksConfig(
            engine, triggers, windows, features, tasks, upload, store, self.source, text
        )

    def engine(self, t: dict[str, Any]) -> EngineConfig:
        d = EngineConfig()
        return EngineConfig(
            lateness=self.duration("engine.lateness", t.get("lateness", "0s")),
            partial_limit=self.duration(
                "engine.partial_limit", t.get("partial_limit", "24h"), minimum=1
            ),
            partial_limit_events=self.integer(
                "engine.partial_limit_events",
                t.get("partial_limit_events", d.partial_limit_events),
                minimum=1,
            ),
        )

    def triggers(self, t: dict[str, Any]) -> dict[str, str]:
        from streamfeat.triggers import parse_pattern  # the trigger language owns its parser

        out: dict[str, str] = {}
        for name, pattern in t.items():
            key = f"triggers.{self.name(f'triggers.{name}', name)}"
            if not isinstance(pattern, str):
                raise self.fail(key, f"must be a pattern string, got {pattern!r}")
            try:
                parse_pattern(pattern, name=name)
            except TriggerSpecError as exc:
                raise TriggerSpecError(
                    exc.reason, file=self.source, key=key, word=exc.word
                ) from exc
            out[name] = pattern
        return out

    def window(self, name: str, t: object) -> WindowConfig:
        base = f"windows.{self.name(f'windows.{name}', name)}"
        if not isinstance(t, dict):
            raise self.fail(base, "must be a table")
        allowed = ("assign", "key", "filter", "lateness", "aggregate")
        for k in t:
            if k not in allowed:
                raise self.fail(f"{base}.{k}", f"is not a known key (known: {', '.join(allowed)})")
        if "assign" not in t:
            raise self.fail(f"{base}.assign", "is required")
        try:
            assign = parse_assign(t["assign"])
        except ValueError as exc:
            raise self.fail(f"{base}.assign", str(exc)) from exc
        key_text = t.get("key", "device")
        if not isinstance(key_text, str):
            raise self.fail(f"{base}.key", f"must be a string, got {key_text!r}")
        try:
            key = tuple(parse_field(p.strip()) for p in key_text.split(","))
        except ValueError as exc:
            raise self.fail(f"{base}.key", str(exc)) from exc
        filt = None
        if "filter" in t:
            try:
                filt = tuple(parse_token(x) for x in self.strings(f"{base}.filter", t["filter"]))
            except ValueError as exc:
                raise self.fail(f"{base}.filter", str(exc)) from exc
        lateness = None
        if "lateness" in t:
            lateness = self.duration(f"{base}.lateness", t["lateness"])
        aggs = t.get("aggregate", {"n": "count"})
        if not isinstance(aggs, dict) or not aggs:
            raise self.fail(f"{base}.aggregate", "must be a non-empty table of name = aggregate")
        parsed = []
        for out_name, text in aggs.items():
            try:
                parsed.append((out_name, parse_aggregate(text)))
            except ValueError as exc:
                raise self.fail(f"{base}.aggregate.{out_name}", str(exc)) from exc
        return WindowConfig(name, assign, key, filt, lateness, tuple(parsed))

    def feature(self, name: str, t: object) -> FeatureConfig:
        base = f"features.{self.name(f'features.{name}', name)}"
        if not isinstance(t, dict):
            raise self.fail(base, "must be a table")
        kind = t.get("kind")
        if kind not in FEATURE_KINDS:
            raise self.fail(
                f"{base}.kind", f"must be one of {', '.join(FEATURE_KINDS)}, got {kind!r}"
            )
        allowed = {"ipv": ("kind", "actions", "page"), "exposure": ("kind", "feed_pages")}[kind]
        for k in t:
            if k not in allowed:
                raise self.fail(
                    f"{base}.{k}", f"is not a key of a {kind} feature (known: {', '.join(allowed)})"
                )
        d = FeatureConfig(name, kind)
        actions = self.strings(f"{base}.actions", t.get("actions", list(d.actions)))
        page = t.get("page", d.page)
        if not isinstance(page, str) or not page:
            raise self.fail(f"{base}.page", f"must be a page name, got {page!r}")
        feed = self.strings(f"{base}.feed_pages", t.get("feed_pages", list(d.feed_pages)))
        return FeatureConfig(name, kind, actions, page, feed)

    def task(self, name: str, t: object, triggers: Mapping[str, str]) -> TaskConfig:
        base = f"tasks.{self.name(f'tasks.{name}', name)}"
        if not isinstance(t, dict):
            raise self.fail(base, "must be a table")
        for k in t:
            if k not in ("on", "run", "timeout"):
                raise self.fail(f"{base}.{k}", "is not a known key (known: on, run, timeout)")
        on = self.strings(f"{base}.on", t.get("on"))
        if not on:
            raise self.fail(f"{base}.on", "must name at least one trigger")
        for trig in on:
            if trig not in triggers:
                raise self.fail(
                    f"{base}.on", f"names {trig!r}, which is not a trigger of this file"
                )
        run = t.get("run")
        if not isinstance(run, str) or not _RUN_RE.match(run):
            raise self.fail(f"{base}.run", f'must be "package.module:callable", got {run!r}')
        timeout = self.duration(f"{base}.timeout", t.get("timeout", "5s"), minimum=1)
        return TaskConfig(name, on, run, timeout)

    def upload(self, t: dict[str, Any]) -> UploadConfig:
        d = UploadConfig()
        records = self.strings("upload.records", t.get("records", list(d.records)))
        for r in records:
            if r not in UPLOAD_RECORDS:
                raise self.fail(
                    "upload.records", f"{r!r} is not a record kind ({', '.join(UPLOAD_RECORDS)})"
                )
        enc = t.get("encoding", d.encoding)
        if enc not in ENCODINGS:
            raise self.fail(
                "upload.encoding", f"must be one of {', '.join(ENCODINGS)}, got {enc!r}"
            )
        return UploadConfig(
            records=records,
            encoding=enc,
            batch_max_bytes=self.integer(
                "upload.batch_max_bytes", t.get("batch_max_bytes", d.batch_max_bytes), minimum=64
            ),
            batch_max_age=self.duration("upload.batch_max_age", t.get("batch_max_age", "1s")),
            outbox_max_mb=self.number(
                "upload.outbox_max_mb", t.get("outbox_max_mb", d.outbox_max_mb), minimum=0.01
            ),
            admission=self.admission(t.get("admission")),
        )

    def admission(self, text: object) -> str | None:
        if text is None:
            return None
        from streamfeat.encoders import parse_admission  # the encoders own the filter forms

        if not isinstance(text, str):
            raise self.fail("upload.admission", f'must be a string such as "bloom 3", got {text!r}')
        try:
            parse_admission(text)
        except ValueError as exc:
            raise self.fail("upload.admission", str(exc)) from exc
        return text

    def store(self, t: dict[str, Any]) -> StoreConfig:
        d = StoreConfig()
        return StoreConfig(
            retention=self.duration("store.retention", t.get("retention", "7d")),
            max_mb=self.number("store.max_mb", t.get("max_mb", d.max_mb), minimum=0),
        )
