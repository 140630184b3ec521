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
from typing import TYPE_CHECKING, Any

from streamfeat._tables import TableReader
from streamfeat.encoders.admission import AdmissionSpec, parse_admission_spec
from streamfeat.errors import ConfigError
from streamfeat.features import DEFAULT_IPV_ACTIONS, FeatureConfig, parse_feature
from streamfeat.models import ModelError, ModelSpec, parse_model_spec
from streamfeat.ranking import RERANK_KINDS, RerankTaskConfig, parse_rerank_task
from streamfeat.triggers import MatchLimits, TriggerConfig, parse_triggers
from streamfeat.windows import WindowConfig, parse_window

if TYPE_CHECKING:
    from streamfeat.models import Model

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

UPLOAD_RECORDS = ("feature", "window", "trigger", "task", "late")
ENCODINGS = ("json", "msgpack", "compact")
_RUN_RE = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*\Z")
# The tunnel's largest batch (streamfeat.tunnel._frames.MAX_BATCH, kept equal by a test; not
# imported, so that loading a tasks file loads no tunnel code): a larger batch_max_bytes would
# seal batches the tunnel refuses, and nothing would ever upload.
MAX_BATCH_BYTES = 65_000


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Engine-wide settings (``[engine]``); times in ms."""

    lateness: int = 0
    partial_limit: int = 24 * 3_600_000
    partial_limit_events: int = 10_000
    idle: int | None = None  # replay only: advance a device silent this long in log time

    @property
    def limits(self) -> MatchLimits:
        """The partial-match limits, the slice the trigger stage is built from."""
        return MatchLimits(self.partial_limit, self.partial_limit_events)


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
    admission_spec: AdmissionSpec | None = field(default=None, compare=False)  # admission, parsed


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``[store]``: retention of the on-device store (0 = keep forever / no size bound)."""

    retention: int = 7 * 86_400_000  # ms
    max_mb: float = 256.0


@dataclass(frozen=True, slots=True)
class TasksConfig:
    """A whole validated tasks file."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    triggers: Mapping[str, TriggerConfig] = field(default_factory=dict)
    windows: Mapping[str, WindowConfig] = field(default_factory=dict)
    features: Mapping[str, FeatureConfig] = field(default_factory=dict)
    tasks: Mapping[str, TaskConfig] = field(default_factory=dict)
    upload: UploadConfig = field(default_factory=UploadConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    source: str | None = None
    text: str = ""
    models: Mapping[str, ModelSpec] = field(default_factory=dict)
    reranks: Mapping[str, RerankTaskConfig] = field(default_factory=dict)  # kind edgerec/kuaishou
    #: the ``[models]`` loaded and checked when the file was (once per tasks-file version)
    loaded_models: Mapping[str, Model] = field(default_factory=dict, compare=False, repr=False)


def load_tasks(path: str | Path, *, load_models: bool = True) -> TasksConfig:
    """Read and validate the tasks file at ``path`` (``load_models``: see :func:`parse_tasks`).

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        msg = f"can't read the tasks file: {exc.strerror or exc}"
        raise ConfigError(msg, file=str(p)) from exc
    except UnicodeDecodeError as exc:
        msg = f"is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); save it as UTF-8"
        raise ConfigError(msg, file=str(p)) from exc
    return parse_tasks(text, source=str(p), load_models=load_models)


def parse_tasks(text: str, *, source: str | None = None, load_models: bool = True) -> TasksConfig:
    """Validate the TOML ``text`` of a tasks file (``source`` names it in errors).

    ``load_models=False`` checks the ``[models]`` declarations but loads no model file (no
    onnxruntime, ``loaded_models`` empty): for a replay, which runs no re-rank.

    Raises:
        ConfigError: naming the file, the key and the reason.
    """
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = f"not valid TOML: {exc}"
        raise ConfigError(msg, file=source) from exc
    return _Loader(source).load(doc, text, load_models=load_models)


_UPLOAD_KEYS = (
    "records", "encoding", "batch_max_bytes", "batch_max_age", "outbox_max_mb", "admission",
)  # fmt: skip


class _Loader(TableReader):
    """Reads the sections the tasks file owns; each subsystem parses its own tables."""

    def load(self, doc: dict[str, Any], text: str, *, load_models: bool = True) -> TasksConfig:
        known = ("engine", "triggers", "windows", "features", "models", "tasks", "upload",
                 "store")  # fmt: skip
        for k in doc:
            if k not in known:
                raise self.fail(k, f"is not a known section (known: {', '.join(known)})")
        engine = self.engine(
            self.table(doc, "engine", ("lateness", "partial_limit", "partial_limit_events", "idle"))
        )
        triggers = parse_triggers(self.table(doc, "triggers", ()), self)
        windows = {n: parse_window(n, t, self) for n, t in self.table(doc, "windows", ()).items()}
        features = {
            n: parse_feature(n, t, self) for n, t in self.table(doc, "features", ()).items()
        }
        models = self.models(self.table(doc, "models", ()))
        tables = self.table(doc, "tasks", ())
        reranks = {
            n: self.rerank(n, t, models)
            for n, t in tables.items()
            if isinstance(t, dict) and "kind" in t
        }
        tasks = {n: self.task(n, t, triggers) for n, t in tables.items() if n not in reranks}
        upload = self.upload(self.table(doc, "upload", _UPLOAD_KEYS))
        store = self.store(self.table(doc, "store", ("retention", "max_mb")))
        loaded = self.load_models(models) if load_models else {}
        return TasksConfig(
            engine, triggers, windows, features, tasks, upload, store, self.source, text,
            models, reranks, loaded,
        )  # fmt: skip

    def models(self, t: dict[str, Any]) -> dict[str, ModelSpec]:
        base = Path(self.source).parent if self.source else None
        out: dict[str, ModelSpec] = {}
        for name, table in t.items():
            key = f"models.{self.name(f'models.{name}', name)}"
            if not isinstance(table, dict):
                raise self.fail(key, "must be a table")
            try:
                out[name] = parse_model_spec(name, table, base=base)
            except ModelError as exc:
                raise exc.located(file=self.source, key=exc.key or key) from exc
        return out

    def load_models(self, models: Mapping[str, ModelSpec]) -> dict[str, Model]:
        # a missing, corrupt or mismatched model refuses the whole file, now, not when a task fires
        from streamfeat.models._runtime import load_model  # here: it imports numpy

        out: dict[str, Model] = {}
        for name, spec in models.items():
            try:
                out[name] = load_model(spec)
            except ModelError as exc:
                raise exc.located(file=self.source, key=f"models.{name}") from exc
        return out

    def rerank(
        self, name: str, t: dict[str, Any], models: Mapping[str, ModelSpec]
    ) -> RerankTaskConfig:
        base = f"tasks.{self.name(f'tasks.{name}', name)}"
        if t.get("kind") not in RERANK_KINDS:
            raise self.fail(f"{base}.kind", f"must be one of {', '.join(RERANK_KINDS)} (or absent "
                            f"for a task with `run`), got {t.get('kind')!r}")  # fmt: skip
        return parse_rerank_task(name, t, models, file=self.source)

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
            idle=None if "idle" not in t else self.duration("engine.idle", t["idle"], minimum=1),
        )

    def task(self, name: str, t: object, triggers: Mapping[str, TriggerConfig]) -> TaskConfig:
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
        max_bytes = self.integer(
            "upload.batch_max_bytes",
            t.get("batch_max_bytes", d.batch_max_bytes),
            minimum=64,
            maximum=MAX_BATCH_BYTES,
        )
        max_age = self.duration("upload.batch_max_age", t.get("batch_max_age", "1s"))
        outbox_mb = self.number(
            "upload.outbox_max_mb", t.get("outbox_max_mb", d.outbox_max_mb), minimum=0.01
        )
        spec = self.admission(t.get("admission"))
        text = spec.text if spec is not None else None
        return UploadConfig(records, enc, max_bytes, max_age, outbox_mb, text, spec)

    def admission(self, text: object) -> AdmissionSpec | None:
        if text is None:
            return None
        if not isinstance(text, str):
            raise self.fail("upload.admission", f'must be a string such as "bloom 3", got {text!r}')
        try:
            return parse_admission_spec(text)  # the encoders own the filter forms
        except ValueError as exc:
            raise self.fail("upload.admission", str(exc)) from exc

    def store(self, t: dict[str, Any]) -> StoreConfig:
        d = StoreConfig()
        return StoreConfig(
            retention=self.duration("store.retention", t.get("retention", "7d")),
            max_mb=self.number("store.max_mb", t.get("max_mb", d.max_mb), minimum=0),
        )
