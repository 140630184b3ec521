"""Window aggregates (SPEC section 3): one small class per aggregate.

Each aggregate is a stateless object built from an :class:`~streamfeat.windows.AggSpec`; the
running value of one window (its *accumulator*) is a plain, msgpack-able Python value that the
window keeps. The methods are:

* ``init()``: the accumulator of an empty window;
* ``update(acc, value, seq)``: fold in ``value`` (the event's field, ``None`` when absent) of
  the event with arrival number ``seq``, returning the new accumulator (it may be ``acc``);
* ``merge(a, b)``: the accumulator of the union of two windows (sessions that merge);
* ``result(acc)``: the value written to the window record;
* ``dump(acc)`` / ``load(data)``: a msgpack-able form and back (exact round trip).

Value rules (documented in docs/windows.md): events missing the field are skipped by that
aggregate only; ``sum`` and ``mean`` use numeric values (int, float; booleans and strings are
skipped); ``min``/``max`` order numbers before strings; ``distinct`` and ``top`` treat ``1`` and
``1.0`` as one value and booleans as values of their own. ``first``/``last``/``min``/``max``
ties and ``top`` ties go by arrival (``seq``), so a merge gives what one window would have.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from streamfeat._event import Event
from streamfeat._records import raw_size
from streamfeat.windows._spec import AggSpec

__all__ = [
    "AggregateSet",
    "Count",
    "Distinct",
    "First",
    "Last",
    "Max",
    "Mean",
    "Min",
    "Sum",
    "Top",
    "build_aggregate",
    "field_getter",
]

Getter = Callable[[Event], Any]
Step = Callable[[list[Any], Event, int], None]
_NUMERIC: Final = (int, float)


def field_getter(name: str) -> Getter:
    """Return a fast function reading field ``name`` (an event key or ``args.NAME``)."""
    if name.startswith("args."):
        arg = name[5:]

        def get_arg(event: Event) -> Any:
            return event.args.get(arg)

        return get_arg
    return operator.attrgetter(name)


def _one(event: Event) -> int:
    return 1


def _add_size(accs: list[Any], event: Event, seq: int) -> None:
    accs[0] += raw_size(event)


def _rank(value: Any) -> tuple[int, Any]:
    # numbers (and booleans, which are ints) order before strings; never compare across kinds
    return (1, value) if type(value) is str else (0, value)


def _norm(value: Any) -> Any:
    # True == 1 in Python, but they are different values in an event
    return (value,) if type(value) is bool else value


def _denorm(key: Any) -> Any:
    return key[0] if type(key) is tuple else key


class Count:
    """``count``: the number of events in the window."""

    def init(self) -> Any:
        return 0

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        return acc + 1

    def updater(self, i: int, get: Getter) -> Step:
        """Return the in-place step ``(accs, event, seq)`` updating slot ``i`` (the hot path)."""
        if type(self) is Count:

            def count(accs: list[Any], event: Event, seq: int) -> None:
                accs[i] += 1

            return count
        update = self.update

        def step(accs: list[Any], event: Event, seq: int) -> None:
            accs[i] = update(accs[i], get(event), seq)

        return step

    def merge(self, a: Any, b: Any) -> Any:
        return a + b

    def merge_into(self, a: Any, b: Any) -> Any:
        """Return ``merge(a, b)``, free to reuse ``a``, which no one else holds (a merge's
        own result); ``b`` is left as it is. By default the same as :meth:`merge`."""
        return self.merge(a, b)

    def result(self, acc: Any) -> Any:
        return acc

    def dump(self, acc: Any) -> Any:
        return acc

    def load(self, data: Any) -> Any:
        return data


class Sum(Count):
    """``sum F``: the sum of the numeric values (``null`` over none); int stays int."""

    def init(self) -> Any:
        return None

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if type(value) not in _NUMERIC:
            return acc
        return value if acc is None else acc + value

    def updater(self, i: int, get: Getter) -> Step:
        def add(accs: list[Any], event: Event, seq: int) -> None:
            v = get(event)
            if type(v) is int or type(v) is float:
                a = accs[i]
                accs[i] = v if a is None else a + v

        return add

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        return a if b is None else a + b

    def result(self, acc: Any) -> Any:
        return acc


class Mean(Count):
    """``mean F``: the mean of the numeric values as a float (``null`` over none)."""

    def init(self) -> Any:
        return None

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if type(value) not in _NUMERIC:
            return acc
        if acc is None:
            return [value, 1]
        acc[0] += value
        acc[1] += 1
        return acc

    def updater(self, i: int, get: Getter) -> Step:
        def mean(accs: list[Any], event: Event, seq: int) -> None:
            v = get(event)
            if type(v) is int or type(v) is float:
                a = accs[i]
                if a is None:
                    accs[i] = [v, 1]
                else:
                    a[0] += v
                    a[1] += 1

        return mean

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return [a[0] + b[0], a[1] + b[1]]

    def result(self, acc: Any) -> Any:
        return None if acc is None else acc[0] / acc[1]

    def load(self, data: Any) -> Any:
        return None if data is None else list(data)


class Min(Count):
    """``min F``: the smallest value; the first to arrive wins a tie."""

    sign = 1

    def init(self) -> Any:
        return None

    def _better(self, a: Any, b: Any) -> bool:
        # is a strictly better than b (smaller for min)?
        ra, rb = _rank(a), _rank(b)
        return ra < rb if self.sign > 0 else ra > rb

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if value is None:
            return acc
        if acc is None or self._better(value, acc[0]):
            return [value, seq]
        return acc

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        if self._better(a[0], b[0]):
            return a
        if self._better(b[0], a[0]):
            return b
        return a if a[1] <= b[1] else b

    def result(self, acc: Any) -> Any:
        return None if acc is None else acc[0]

    def load(self, data: Any) -> Any:
        return None if data is None else list(data)


class Max(Min):
    """``max F``: the largest value; the first to arrive wins a tie."""

    sign = -1


class First(Count):
    """``first F``: the value of the first event (in arrival order) that has the field."""

    def init(self) -> Any:
        return None

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if value is None or acc is not None:
            return acc
        return [seq, value]

    def updater(self, i: int, get: Getter) -> Step:
        def first(accs: list[Any], event: Event, seq: int) -> None:
            if accs[i] is None:
                v = get(event)
                if v is not None:
                    accs[i] = [seq, v]

        return first

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return a if a[0] <= b[0] else b

    def result(self, acc: Any) -> Any:
        return None if acc is None else acc[1]

    def load(self, data: Any) -> Any:
        return None if data is None else list(data)


class Last(First):
    """``last F``: the value of the last event (in arrival order) that has the field."""

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        return acc if value is None else [seq, value]

    def updater(self, i: int, get: Getter) -> Step:
        def last(accs: list[Any], event: Event, seq: int) -> None:
            v = get(event)
            if v is not None:
                accs[i] = [seq, v]

        return last

    def merge(self, a: Any, b: Any) -> Any:
        if a is None:
            return b
        if b is None:
            return a
        return a if a[0] >= b[0] else b


class Distinct(Count):
    """``distinct F``: the exact number of distinct values (a set of them)."""

    def init(self) -> Any:
        return set()

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if value is not None:
            acc.add(_norm(value))
        return acc

    def updater(self, i: int, get: Getter) -> Step:
        def distinct(accs: list[Any], event: Event, seq: int) -> None:
            v = get(event)
            if v is not None:
                accs[i].add((v,) if type(v) is bool else v)

        return distinct

    def merge(self, a: Any, b: Any) -> Any:
        return a | b

    def merge_into(self, a: Any, b: Any) -> Any:
        a |= b
        return a

    def result(self, acc: Any) -> int:
        return len(acc)

    def dump(self, acc: Any) -> Any:
        # sorted, so that equal states dump to equal bytes
        return [_denorm(k) for k in sorted(acc, key=lambda k: (type(k).__name__, repr(k)))]

    def load(self, data: Any) -> Any:
        return {_norm(v) for v in data}


_TOP_BY_INSERTION: Final = 16  # a larger k is ranked by one sort


class Top(Count):
    """``top K F``: the K most frequent values as ``[value, count]``, ties by first arrival.

    The accumulator maps each value to ``[value, count, seq of its first arrival]``.
    """

    def __init__(self, k: int) -> None:
        self.k = k

    def init(self) -> Any:
        return {}

    def update(self, acc: Any, value: Any, seq: int) -> Any:
        if value is None:
            return acc
        key = _norm(value)
        slot = acc.get(key)
        if slot is None:
            acc[key] = [value, 1, seq]
        else:
            slot[1] += 1
        return acc

    def updater(self, i: int, get: Getter) -> Step:
        def top(accs: list[Any], event: Event, seq: int) -> None:
            v = get(event)
            if v is not None:
                acc = accs[i]
                key = (v,) if type(v) is bool else v
                slot = acc.get(key)
                if slot is None:
                    acc[key] = [v, 1, seq]
                else:
                    slot[1] += 1

        return top

    def merge(self, a: Any, b: Any) -> Any:
        # the maps typed, so that the compiled build reads and copies the slots as lists
        src: dict[Any, list[Any]] = a
        out: dict[Any, list[Any]] = {}
        for k, s in src.items():
            out[k] = [s[0], s[1], s[2]]
        return self.merge_into(out, b)

    def merge_into(self, a: Any, b: Any) -> Any:
        out: dict[Any, list[Any]] = a
        src: dict[Any, list[Any]] = b
        for k, s in src.items():
            slot = out.get(k)
            if slot is None:
                out[k] = [s[0], s[1], s[2]]
            else:
                seq = s[2]
                if seq < slot[2]:
                    slot[0], slot[2] = s[0], seq
                slot[1] += s[1]
        return out

    def result(self, acc: Any) -> Any:
        k = self.k
        slots: dict[Any, list[Any]] = acc
        best: list[list[Any]]
        if k > _TOP_BY_INSERTION:
            best = sorted(slots.values(), key=lambda s: (-s[1], s[2]))[:k]
            return [[s[0], s[1]] for s in best]
        # the same order as the sort above (count down, then first arrival; equal keys in the
        # dict's order), kept by insertion into the k best so far: no key tuple per value and
        # no sort of them all, for the small k a `top` usually has
        best = []
        for s in slots.values():
            n: int = s[1]  # counts and arrival numbers: compared as ints
            q: int = s[2]
            i = len(best)
            if i == k:
                last_n: int = best[i - 1][1]
                last_q: int = best[i - 1][2]
                if n < last_n or (n == last_n and q >= last_q):
                    continue
                best.pop()
                i -= 1
            while i > 0:
                prev_n: int = best[i - 1][1]
                prev_q: int = best[i - 1][2]
                if prev_n > n or (prev_n == n and prev_q <= q):
                    break
                i -= 1
            best.insert(i, s)
        return [[s[0], s[1]] for s in best]

    def dump(self, acc: Any) -> Any:
        return sorted(([v, n, s] for v, n, s in acc.values()), key=lambda x: x[2])

    def load(self, data: Any) -> Any:
        return {_norm(v): [v, n, s] for v, n, s in data}


_CLASSES: dict[str, type[Count]] = {
    "count": Count, "sum": Sum, "mean": Mean, "min": Min, "max": Max,
    "first": First, "last": Last, "distinct": Distinct,
}  # fmt: skip


def build_aggregate(spec: AggSpec) -> Count:
    """Return the aggregate object for ``spec`` (all share :class:`Count`'s method set)."""
    if spec.op == "top":
        return Top(spec.k)
    return _CLASSES[spec.op]()


# How AggregateSet.update folds an event into one slot: the common aggregates written out in
# one compiled loop (no call per aggregate), any other through its updater.
_OP_STEP: Final = 0
_OP_COUNT: Final = 1
_OP_SUM: Final = 2
_OP_FIRST: Final = 3
_OP_LAST: Final = 4
_OP_DISTINCT: Final = 5
_OP_TOP: Final = 6
_OP_SIZE: Final = 7
_OPS: Final[dict[type, int]] = {
    Count: _OP_COUNT, Sum: _OP_SUM, First: _OP_FIRST, Last: _OP_LAST,
    Distinct: _OP_DISTINCT, Top: _OP_TOP,
}  # fmt: skip
# where the value comes from: an event field (its index in the Event tuple), args, or nowhere
_FROM_ARGS: Final = -1
_FROM_NOWHERE: Final = -2
_FIELD_INDEX: Final[dict[str, int]] = {f: i for i, f in enumerate(Event._fields) if f != "args"}
_ARGS_AT: Final = 5  # args, the Event tuple's last field (checked below)
assert Event._fields.index("args") == _ARGS_AT


class _Fold:
    """One slot of :meth:`AggregateSet.update`'s plan."""

    def __init__(self, op: int, slot: int, source: int, arg: str, step: Step) -> None:
        self.op = op
        self.slot = slot
        self.source = source
        self.arg = arg
        self.step = step


def _fold(slot: int, agg: Count, spec: AggSpec, step: Step) -> _Fold:
    op = _OPS.get(type(agg), _OP_STEP)
    field = spec.field
    if field is None:
        return _Fold(op, slot, _FROM_NOWHERE, "", step)
    if field.startswith("args."):
        return _Fold(op, slot, _FROM_ARGS, field[5:], step)
    return _Fold(op, slot, _FIELD_INDEX[field], "", step)  # (the spec admits event fields only)


class AggregateSet:
    """The aggregates of one window config, run together over one accumulator list.

    A window's accumulator is a list: ``[raw_bytes, acc_1, ..., acc_n]`` (``raw_bytes`` stays 0
    unless ``sizes`` is set).

    Args:
        specs: ``(output name, AggSpec)`` pairs, in the tasks file's order.
        sizes: sum :func:`streamfeat._records.raw_size` of the events into slot 0.
    """

    def __init__(self, specs: tuple[tuple[str, AggSpec], ...], *, sizes: bool = False) -> None:
        self.names = tuple(name for name, _ in specs)
        self.aggs = tuple(build_aggregate(spec) for _, spec in specs)
        getters = tuple(
            _one if spec.field is None else field_getter(spec.field) for _, spec in specs
        )
        self.steps = tuple(
            a.updater(i, g) for i, (g, a) in enumerate(zip(getters, self.aggs, strict=True), 1)
        )
        self.sizes = sizes
        inits = [a.init() for a in self.aggs]
        self._template = [0, *(None if isinstance(x, set | dict) else x for x in inits)]
        self._fresh = tuple(
            (i, a)
            for i, (a, x) in enumerate(zip(self.aggs, inits, strict=True), 1)
            if isinstance(x, set | dict)
        )
        if sizes:
            self.steps += (_add_size,)
        plan = [
            _fold(i, a, spec, self.steps[i - 1])
            for i, (a, (_, spec)) in enumerate(zip(self.aggs, specs, strict=True), 1)
        ]
        if sizes:
            plan.append(_Fold(_OP_SIZE, 0, _FROM_NOWHERE, "", _add_size))
        self._plan = plan

    def new(self) -> list[Any]:
        """Return the accumulator of an empty window."""
        acc = self._template[:]  # immutable initial values (0, None) copied in one go
        for i, agg in self._fresh:
            acc[i] = agg.init()
        return acc

    def update(self, acc: list[Any], event: Event, seq: int) -> None:
        """Fold ``event`` (arrival number ``seq``) into ``acc`` in place.

        What the updaters in :attr:`steps` do, one after the other, with the common aggregates
        written out here (``tests/property/test_windows_aggregates.py`` checks the two agree).
        """
        for f in self._plan:
            op = f.op
            source = f.source
            if source >= 0:
                v: Any = event[source]
            elif source == _FROM_ARGS:
                v = event[_ARGS_AT].get(f.arg)
            else:
                v = None
            if op == _OP_COUNT:
                acc[f.slot] += 1
            elif op == _OP_DISTINCT:
                if v is not None:
                    seen: set[Any] = acc[f.slot]  # (typed: the set's own add, not a lookup)
                    seen.add((v,) if type(v) is bool else v)
            elif op == _OP_TOP:
                if v is not None:
                    top: dict[Any, list[Any]] = acc[f.slot]
                    key = (v,) if type(v) is bool else v
                    slot = top.get(key)
                    if slot is None:
                        top[key] = [v, 1, seq]
                    else:
                        slot[1] += 1
            elif op == _OP_LAST:
                if v is not None:
                    acc[f.slot] = [seq, v]
            elif op == _OP_SUM:
                if type(v) is int or type(v) is float:
                    a = acc[f.slot]
                    acc[f.slot] = v if a is None else a + v
            elif op == _OP_FIRST:
                if v is not None and acc[f.slot] is None:
                    acc[f.slot] = [seq, v]
            elif op == _OP_SIZE:
                acc[0] += raw_size(event)
            else:
                f.step(acc, event, seq)

    def merge(self, a: list[Any], b: list[Any]) -> list[Any]:
        """Return the accumulator of the union of the windows of ``a`` and ``b``."""
        out = [a[0] + b[0]]
        for i, agg in enumerate(self.aggs, 1):  # by index: no slices, no zip call
            out.append(agg.merge(a[i], b[i]))
        return out

    def merge_all(self, accs: list[list[Any]]) -> list[Any]:
        """Return ``merge(...merge(merge(accs[0], accs[1]), accs[2])..., accs[-1])``, copying
        each set-valued accumulator once, not once per merge; ``accs`` are left as they are
        (one accumulator is returned itself)."""
        if len(accs) == 1:
            return accs[0]
        out = self.merge(accs[0], accs[1])
        aggs = self.aggs
        for b in accs[2:]:
            out[0] += b[0]
            for i, agg in enumerate(aggs, 1):
                out[i] = agg.merge_into(out[i], b[i])
        return out

    def values(self, acc: list[Any]) -> dict[str, Any]:
        """Return the record's ``values``: one entry per aggregate name."""
        names = self.names
        out: dict[str, Any] = {}
        for i, agg in enumerate(self.aggs):  # by index: no slice, no zip call
            out[names[i]] = agg.result(acc[i + 1])
        return out

    def dump(self, acc: list[Any]) -> list[Any]:
        """Return a msgpack-able form of ``acc``."""
        return [acc[0], *[a.dump(acc[i]) for i, a in enumerate(self.aggs, 1)]]

    def load(self, data: list[Any]) -> list[Any]:
        """Rebuild an accumulator from :meth:`dump`'s output."""
        return [data[0], *[a.load(data[i]) for i, a in enumerate(self.aggs, 1)]]
