"""The trigger language (SPEC section 2): text to a frozen :class:`Pattern`.

Grammar::

    pattern  := step+ clause*
    step     := atom ['{' N '}']  |  '*'  |  '?'
    atom     := token | '(' token ('|' token)* ')'
    token    := TYPE | TYPE '@' PAGE
    clause   := 'within' DURATION | 'without' token (',' token)*

Words are the whitespace-separated parts of the text, numbered from 1; every error names the
word it is about (:attr:`TriggerSpecError.word`). Inside a word the punctuation ``( ) | , * ?``
and ``{N}`` are lexemes of their own, so ``(click|delete)`` and ``( click | delete )`` read the
same, as do ``exposure{3}`` and ``exposure {3}``. ``within`` and ``without`` are keywords: an
event type of that name can only be written with a page (``within@home``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from streamfeat._durations import parse_duration
from streamfeat._tokens import Token, parse_token
from streamfeat.errors import TriggerSpecError

__all__ = ["MAX_POSITIONS", "MAX_REPEAT", "Pattern", "Step", "parse_pattern"]

MAX_REPEAT = 64
#: Upper bound on the positions of a pattern once ``{N}`` is expanded (keeps compile size and
#: per-device state bounded whatever the text says).
MAX_POSITIONS = 256
_LEXEME_RE = re.compile(r"[()|,*?]|\{[^}\s]*\}?|[^\s(){}|,*?]+")
_KEYWORDS = ("within", "without")


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a pattern.

    ``kind`` is ``"atom"`` (one of ``tokens``, ``count`` times in a row), ``"any"`` (``?``, one
    event of any kind) or ``"star"`` (``*``, zero or more events of any kind).
    """

    kind: str
    tokens: tuple[Token, ...] = ()
    count: int = 1

    def __str__(self) -> str:
        if self.kind == "star":
            return "*"
        if self.kind == "any":
            return "?"
        body = (
            str(self.tokens[0])
            if len(self.tokens) == 1
            else "(" + "|".join(map(str, self.tokens)) + ")"
        )
        return body if self.count == 1 else f"{body}{{{self.count}}}"


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed trigger pattern.

    Attributes:
        steps: the steps in order; consecutive ``*`` are merged into one.
        within: the ``within`` bound in ms (``last.ts - first.ts <= within``), or None.
        without: tokens no event of a match may match (all ``without`` clauses together).
        name: the trigger's name, when given.
        text: the source text.
    """

    steps: tuple[Step, ...]
    within: int | None = None
    without: tuple[Token, ...] = ()
    name: str | None = None
    text: str = ""

    def __str__(self) -> str:
        parts = [str(s) for s in self.steps]
        if self.within is not None:
            parts.append(f"within {self.within}ms")
        if self.without:
            parts.append("without " + ",".join(map(str, self.without)))
        return " ".join(parts)

    @property
    def positions(self) -> int:
        """The number of event positions once ``{N}`` is expanded (``*`` not counted)."""
        return sum(s.count for s in self.steps if s.kind != "star")


def parse_pattern(text: str, *, name: str | None = None) -> Pattern:
    """Parse a trigger pattern.

    >>> str(parse_pattern("pv * cart * buy within 1h"))
    'pv * cart * buy within 3600000ms'

    Args:
        text: the pattern.
        name: the trigger's name, used in error messages.

    Returns:
        The frozen :class:`Pattern`.

    Raises:
        TriggerSpecError: naming the pattern and the 1-based word that is wrong (``word``).
    """
    return _Parser(text, name).parse()


class _Parser:
    def __init__(self, text: str, name: str | None) -> None:
        if not isinstance(text, str):
            text = repr(text)
        self.text = text
        self.label = f"pattern {name!r}" if name is not None else f"pattern {text!r}"
        self.name = name
        self.lex: list[tuple[str, int]] = []
        for w, word in enumerate(text.split(), start=1):
            self.lex.extend((m.group(0), w) for m in _LEXEME_RE.finditer(word))
        self.i = 0

    def fail(self, reason: str, word: int | None) -> TriggerSpecError:
        where = f"{self.label}, word {word}" if word is not None else self.label
        return TriggerSpecError(f"{where}: {reason}", word=word)

    def peek(self) -> tuple[str, int] | None:
        return self.lex[self.i] if self.i < len(self.lex) else None

    def last_word(self) -> int:
        return self.lex[-1][1] if self.lex else 1

    def parse(self) -> Pattern:
        if not self.lex:
            msg = "is empty (a pattern needs at least one step)"
            raise self.fail(msg, None)
        steps = self.steps()
        within, without = self.clauses()
        positions = sum(s.count for s in steps if s.kind != "star")
        if positions > MAX_POSITIONS:
            msg = f"has {positions} event positions, more than {MAX_POSITIONS}"
            raise self.fail(msg, None)
        return Pattern(tuple(steps), within, tuple(without), self.name, self.text)

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        while (cur := self.peek()) is not None and cur[0] not in _KEYWORDS:
            lexeme, word = cur
            if lexeme in ("*", "?"):
                self.i += 1
                if lexeme == "*" and steps and steps[-1].kind == "star":
                    continue  # `* *` means the same as `*`
                steps.append(Step("star" if lexeme == "*" else "any"))
                if (nxt := self.peek()) is not None and nxt[0].startswith("{"):
                    msg = f"`{nxt[0]}` can only follow a token or a group, not `{lexeme}`"
                    raise self.fail(msg, nxt[1])
                continue
            tokens = self.atom(lexeme, word)
            steps.append(Step("atom", tokens, self.repeat()))
        if not steps:
            cur = self.peek()
            assert cur is not None
            msg = f"`{cur[0]}` can't start a pattern (a pattern starts with a step)"
            raise self.fail(msg, cur[1])
        return steps

    def atom(self, lexeme: str, word: int) -> tuple[Token, ...]:
        if lexeme != "(":
            self.i += 1
            return (self.token(lexeme, word),)
        self.i += 1
        tokens: list[Token] = []
        while True:
            cur = self.peek()
            if cur is None:
                msg = "the group is not closed (missing `)`)"
                raise self.fail(msg, self.last_word())
            tokens.append(self.token(cur[0], cur[1]))
            self.i += 1
            sep = self.peek()
            if sep is None:
                msg = "the group is not closed (missing `)`)"
                raise self.fail(msg, self.last_word())
            self.i += 1
            if sep[0] == ")":
                break
            if sep[0] != "|":
                msg = f"expected `|` or `)` in a group, got `{sep[0]}`"
                raise self.fail(msg, sep[1])
        nxt = self.peek()
        if nxt is not None and nxt[0].startswith("@"):
            msg = (
                f"`{nxt[0]}` can't follow a group: the page belongs to each token, "
                f"as in ({'|'.join(f'{t.type}{nxt[0]}' for t in tokens)})"
            )
            raise self.fail(msg, nxt[1])
        return tuple(dict.fromkeys(tokens))

    def token(self, lexeme: str, word: int) -> Token:
        if lexeme in _KEYWORDS:
            msg = f"expected a token, got the keyword `{lexeme}`"
            raise self.fail(msg, word)
        if lexeme in "()|,*?" or lexeme.startswith("{"):
            msg = f"expected a token (TYPE or TYPE@PAGE), got `{lexeme}`"
            raise self.fail(msg, word)
        try:
            return parse_token(lexeme)
        except ValueError as exc:
            raise self.fail(str(exc), word) from exc

    def repeat(self) -> int:
        cur = self.peek()
        if cur is None or not cur[0].startswith("{"):
            return 1
        self.i += 1
        lexeme, word = cur
        body = lexeme[1:-1] if lexeme.endswith("}") else None
        if body is None or not body.isdigit():
            msg = f"`{lexeme}` is not a repeat count (write {{N}}, 1 <= N <= {MAX_REPEAT})"
            raise self.fail(msg, word)
        n = int(body)
        if not 1 <= n <= MAX_REPEAT:
            msg = f"`{lexeme}` must be 1..{MAX_REPEAT}"
            raise self.fail(msg, word)
        return n

    def clauses(self) -> tuple[int | None, list[Token]]:
        within: int | None = None
        without: list[Token] = []
        while (cur := self.peek()) is not None:
            keyword, word = cur
            if keyword not in _KEYWORDS:
                msg = f"`{keyword}` can't follow a clause (steps come before `within`/`without`)"
                raise self.fail(msg, word)
            self.i += 1
            if keyword == "within":
                if within is not None:
                    msg = "`within` is given twice"
                    raise self.fail(msg, word)
                within = self.duration(word)
            else:
                without.extend(self.token_list(word))
        return within, list(dict.fromkeys(without))

    def duration(self, word: int) -> int:
        cur = self.peek()
        if cur is None:
            msg = "`within` needs a duration (30s, 5m, 1h)"
            raise self.fail(msg, word)
        self.i += 1
        try:
            return parse_duration(cur[0])
        except ValueError as exc:
            raise self.fail(str(exc), cur[1]) from exc

    def token_list(self, word: int) -> list[Token]:
        tokens: list[Token] = []
        while True:
            cur = self.peek()
            if cur is None:
                msg = "`without` needs at least one token"
                raise self.fail(msg, word if not tokens else self.last_word())
            tokens.append(self.token(cur[0], cur[1]))
            self.i += 1
            sep = self.peek()
            if sep is None or sep[0] != ",":
                return tokens
            self.i += 1
