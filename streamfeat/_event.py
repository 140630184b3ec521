"""The event model (SPEC section 1) and its validation.

An :class:`Event` is an immutable named tuple: cheap to build (the replay hot path makes
millions of them) and safe to share between stages. ``args`` is a plain dict that nobody may
mutate after validation; streamfeat itself never does.
"""

from __future__ import annotations

import re
from typing import Any, Final, NamedTuple

from streamfeat.errors import EventError

__all__ = ["MAX_TS", "Event", "event_from_obj", "event_to_obj"]

MAX_TS: Final = 2**53
_TYPE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_KNOWN_KEYS: Final = frozenset(("device", "ts", "type", "page", "item", "args"))

ArgValue = str | int | float | bool


class Event(NamedTuple):
    """One thing that happened on one device.

    Attributes:
        ts: event time, integer milliseconds since the Unix epoch.
        type: what happened (``page_enter``, ``exposure``, ``click``, ...).
        device: the stream it belongs to (default ``"local"``).
        page: the page it happened on, or ``None``.
        item: the item concerned (always a string), or ``None``.
        args: everything else; treat as read-only.
    """

    ts: int
    type: str
    device: str = "local"
    page: str | None = None
    item: str | None = None
    args: dict[str, ArgValue] = {}  # never mutated: one shared empty default

    def field(self, name: str) -> Any:
        """Return the value of ``name`` (an event key or ``args.NAME``), or ``None``."""
        if name.startswith("args."):
            return self.args.get(name[5:])
        return getattr(self, name, None) if name in _KNOWN_KEYS else None


def _describe(value: object) -> str:
    text = repr(value) if not isinstance(value, str) else '"' + value + '"'
    return text if len(text) <= 40 else text[:37] + "..."


_new_event: Final = tuple.__new__
# Types and pages seen valid before: the common case skips the regex / length checks. Bounded so
# that a stream of distinct junk can't grow it without limit.
_VALID_TYPES: Final[set[str]] = set()
_VALID_CACHE_MAX: Final = 4096


def event_from_obj(obj: object) -> Event:
    """Validate one decoded JSON object / msgpack map and return the :class:`Event`.

    Raises:
        EventError: naming the key and what was wrong with it.
    """
    if type(obj) is not dict:
        msg = f"an event must be an object, got {type(obj).__name__}"
        raise EventError(None, msg)
    d: dict[Any, Any] = obj
    # Every key is read first, typed as a dict (the compiled build then reads it directly).
    # The keys with a value are counted: when they are all the object has, it has no other key,
    # and the set comparison below (a walk over the keys) is skipped. A key given as null is
    # not counted, and the comparison decides. The checks then run in their usual order.
    ts = d.get("ts")
    etype = d.get("type")
    device = d.get("device")
    page = d.get("page")
    item = d.get("item")
    args = d.get("args")
    given = (
        (ts is not None) + (etype is not None) + (device is not None)
        + (page is not None) + (item is not None) + (args is not None)
    )  # fmt: skip
    if given != len(d) and not d.keys() <= _KNOWN_KEYS:
        key = next(k for k in d if k not in _KNOWN_KEYS)
        raise EventError(str(key), "is not an event key (device, ts, type, page, item, args)")
    if type(ts) is not int or not 0 <= ts < MAX_TS:
        _bad_ts(ts)
    if type(etype) is not str or etype not in _VALID_TYPES:  # (a list or a map is unhashable)
        _check_type(etype)
    if device is None and "device" not in d:
        device = "local"
    if type(device) is not str or not 0 < len(device) <= 128:
        raise EventError("device", f"must be a string of 1-128 chars, got {_describe(device)}")
    if page is not None and (type(page) is not str or len(page) > 128):
        raise EventError("page", f"must be a string of up to 128 chars, got {_describe(page)}")
    if item is not None and (type(item) is not str or len(item) > 128):
        item = _check_item(item)
    if args is None and "args" not in d:
        args = _NO_ARGS
    elif args is not _NO_ARGS:
        _check_args(args)
        if not args:
            args = _NO_ARGS
    return _new_event(Event, (ts, etype, device, page, item, args))


_NO_ARGS: Final[dict[str, ArgValue]] = Event._field_defaults["args"]


def _bad_ts(ts: object) -> None:
    if ts is None:
        raise EventError("ts", "is required")
    if type(ts) is not int:
        raise EventError("ts", f"must be an integer, got {_describe(ts)}")
    raise EventError("ts", f"must be in [0, 2**53), got {ts}")


def _check_type(etype: object) -> None:
    if type(etype) is not str or not _TYPE_RE.match(etype):
        if etype is None:
            raise EventError("type", "is required")
        raise EventError("type", f"must match [A-Za-z0-9_.-]{{1,64}}, got {_describe(etype)}")
    if len(_VALID_TYPES) < _VALID_CACHE_MAX:
        _VALID_TYPES.add(etype)


def _check_item(item: object) -> str:
    if type(item) is int:
        item = str(item)
    elif type(item) is not str:
        raise EventError("item", f"must be a string or an integer, got {_describe(item)}")
    if len(item) > 128:
        raise EventError("item", "must be at most 128 chars")
    return item


def _check_args(args: object) -> None:
    if type(args) is not dict:
        raise EventError("args", f"must be an object, got {_describe(args)}")
    for k, v in args.items():
        tv = type(v)
        if tv is str or tv is int or tv is bool:
            continue
        if tv is float and v == v:  # NaN cannot round-trip through JSON
            continue
        if tv is float:
            raise EventError(f"args.{k}", "must not be NaN")
        raise EventError(
            f"args.{k}", f"must be a string, integer, float or boolean, got {_describe(v)}"
        )


def event_to_obj(event: Event) -> dict[str, Any]:
    """Return the JSON-ready object of ``event``, omitting absent optional keys."""
    obj: dict[str, Any] = {"device": event.device, "ts": event.ts, "type": event.type}
    if event.page is not None:
        obj["page"] = event.page
    if event.item is not None:
        obj["item"] = event.item
    if event.args:
        obj["args"] = event.args
    return obj
