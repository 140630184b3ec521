"""Conditions on an event's fields inside a trigger token: ``exposure[args.dur_ms < 300]``.

Grammar (the text between ``[`` and ``]``)::

    cond   := conj ('or' conj)*
    conj   := prim ('and' prim)*
    prim   := '(' cond ')' | FIELD OP VALUE
    FIELD  := type | page | item | device | ts | args.NAME
    OP     := = | == | != | < | <= | > | >=
    VALUE  := number | "text" | 'text' | true | false | WORD

Semantics (docs/triggers.md, "Conditions"): a comparison on a field the event does not have is
false, whatever the operator. Numbers compare with numbers (int and float alike); strings with
strings; ``true``/``false`` with booleans (``=`` and ``!=`` only). A number literal against a
string value (``item``, which events keep as a string) reads the string as a number, so
``item = 42`` matches the item ``"42"``; a string that is not a number is not equal to it and not
ordered against it. ``!=`` is true when the field is present and ``=`` is false. ``and`` binds
tighter than ``or``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from streamfeat._event import Event

__all__ = ["Condition", "ConditionError", "parse_condition"]

_FIELDS = ("type", "page", "item", "device", "ts")
_OPS = ("=", "!=", "<", "<=", ">", ">=")
_LEX_RE = re.compile(
    r"""\s*(?:
      (?P<str>"[^"]*"|'[^']*')
    | (?P<badstr>["'])
    | (?P<op><=|>=|!=|==|=|<|>)
    | (?P<paren>[()])
    | (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.\-]))
    | (?P<word>[A-Za-z0-9_.\-]+)
    | (?P<other>\S)
    )""",
    re.VERBOSE,
)
_NUM_RE = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\Z")


class ConditionError(ValueError):
    """Raised by :func:`parse_condition`; the pattern parser turns it into a
    :class:`~streamfeat.errors.TriggerSpecError` naming the pattern and the word."""


@dataclass(frozen=True, slots=True)
class Condition:
    """A parsed condition: ``op`` is a comparison (``=``, ``!=``, ``<``, ...) on ``field`` and
    ``value``, or ``and`` / ``or`` over ``parts``. Call it on an event."""

    op: str
    field: str = ""
    value: Any = None
    parts: tuple[Condition, ...] = ()

    def __call__(self, event: Event) -> bool:
        if self.op == "and":
            return all(p(event) for p in self.parts)
        if self.op == "or":
            return any(p(event) for p in self.parts)
        v = event.field(self.field)
        if v is None:
            return False
        return _compare(v, self.op, self.value)

    def __str__(self) -> str:
        if self.op in ("and", "or"):
            inner = f" {self.op} ".join(
                f"({p})" if p.op in ("and", "or") and p.op != self.op else str(p)
                for p in self.parts
            )
            return inner
        return f"{self.field} {self.op} {_literal(self.value)}"


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"' if '"' not in value else "'" + value + "'"
    return repr(value)


def _compare(v: Any, op: str, lit: Any) -> bool:
    """``v OP lit`` under the rules of the module doc (``v`` is present)."""
    if isinstance(lit, bool) or isinstance(v, bool):
        if not (isinstance(lit, bool) and isinstance(v, bool)):
            return op == "!="
        if op == "=":
            return v == lit
        return v != lit if op == "!=" else False
    if isinstance(lit, (int, float)):
        if isinstance(v, str):
            if not _NUM_RE.match(v):
                return op == "!="
            v = float(v) if any(c in v for c in ".eE") else int(v)
        elif not isinstance(v, (int, float)):
            return op == "!="
    elif not isinstance(v, str):
        return op == "!="
    if op == "=":
        return bool(v == lit)
    if op == "!=":
        return bool(v != lit)
    if op == "<":
        return bool(v < lit)
    if op == "<=":
        return bool(v <= lit)
    if op == ">":
        return bool(v > lit)
    return bool(v >= lit)


def parse_condition(text: str) -> Condition:
    """Parse the text of a condition (without its brackets).

    >>> c = parse_condition("args.dur_ms < 300 and item = 42")
    >>> c(Event(0, "exposure", item="42", args={"dur_ms": 120}))
    True
    >>> str(c)
    'args.dur_ms < 300 and item = 42'

    Raises:
        ConditionError: with the reason.
    """
    lex: list[tuple[str, str]] = []
    for m in _LEX_RE.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue
        if kind == "badstr":
            msg = f"a string opened with {m.group(kind)} is not closed"
            raise ConditionError(msg)
        if kind == "other":
            msg = f"`{m.group(kind)}` is not allowed in a condition"
            raise ConditionError(msg)
        lex.append((kind, m.group(kind)))
    if not lex:
        msg = "the condition is empty (write a comparison such as args.dur_ms < 300)"
        raise ConditionError(msg)
    p = _Parser(lex)
    cond = p.disjunction()
    if p.i < len(lex):
        msg = f"`{lex[p.i][1]}` is not expected here (join comparisons with `and` / `or`)"
        raise ConditionError(msg)
    return cond


class _Parser:
    def __init__(self, lex: list[tuple[str, str]]) -> None:
        self.lex = lex
        self.i = 0

    def peek(self) -> tuple[str, str] | None:
        return self.lex[self.i] if self.i < len(self.lex) else None

    def disjunction(self) -> Condition:
        parts = [self.conjunction()]
        while (cur := self.peek()) is not None and cur == ("word", "or"):
            self.i += 1
            parts.append(self.conjunction("or"))
        return parts[0] if len(parts) == 1 else Condition("or", parts=tuple(parts))

    def conjunction(self, after: str | None = None) -> Condition:
        parts = [self.primary(after)]
        while (cur := self.peek()) is not None and cur == ("word", "and"):
            self.i += 1
            parts.append(self.primary("and"))
        return parts[0] if len(parts) == 1 else Condition("and", parts=tuple(parts))

    def primary(self, after: str | None) -> Condition:
        cur = self.peek()
        if cur is None:
            msg = f"`{after}` needs a comparison after it" if after else "a comparison is missing"
            raise ConditionError(msg)
        if cur == ("paren", "("):
            self.i += 1
            inner = self.disjunction()
            close = self.peek()
            if close != ("paren", ")"):
                msg = "a `(` in the condition is not closed"
                raise ConditionError(msg)
            self.i += 1
            return inner
        kind, field = cur
        if kind != "word" or field in ("and", "or"):
            msg = f"expected a field (type, page, item, device, ts or args.NAME), got `{field}`"
            raise ConditionError(msg)
        if field not in _FIELDS and not (field.startswith("args.") and len(field) > 5):
            msg = f"`{field}` is not a field (type, page, item, device, ts or args.NAME)"
            raise ConditionError(msg)
        self.i += 1
        op = self.peek()
        if op is None or op[0] != "op":
            got = "nothing" if op is None else f"`{op[1]}`"
            msg = f"expected a comparison (= != < <= > >=) after `{field}`, got {got}"
            raise ConditionError(msg)
        self.i += 1
        return Condition("=" if op[1] == "==" else op[1], field, self.value(field, op[1]))

    def value(self, field: str, op: str) -> Any:
        cur = self.peek()
        if (
            cur is None
            or cur[0] in ("op", "paren")
            or cur == ("word", "and")
            or cur == ("word", "or")
        ):
            msg = f"`{field} {op}` needs a value (a number, a string or true/false)"
            raise ConditionError(msg)
        self.i += 1
        kind, text = cur
        if kind == "str":
            value: Any = text[1:-1]
        elif kind == "num":
            value = float(text) if any(c in text for c in ".eE") else int(text)
        elif text in ("true", "false"):
            value = text == "true"
        else:
            value = text
        if isinstance(value, bool) and op not in ("=", "==", "!="):
            msg = f"`{field} {op} {text}`: booleans compare with = and != only"
            raise ConditionError(msg)
        return value
