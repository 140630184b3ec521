"""The trigger language (SPEC section 2): text to a frozen :class:`Pattern`.

Grammar::

    pattern  := step+ clause*
    step     := atom ['{' N '}'] ['+'] [glued '?']  |  '*'  |  '?'
    atom     := token | '(' token ('|' token)* ')'
    token    := TYPE ['@' PAGE] ['[' condition ']']
    clause   := 'within' DURATION | 'without' plain-token (',' plain-token)*

Words are the whitespace-separated parts of the text, numbered from 1; every error names the
word it is about (:attr:`TriggerSpecError.word`). A condition in brackets belongs to its token's
word, spaces included (``exposure[args.dur_ms < 300]`` is one word). Inside a word the
punctuation ``( ) | , * ? +`` and ``{N}`` are lexemes of their own, so ``(click|delete)`` and
``( click | delete )`` read the same, as do ``exposure{3}`` and ``exposure {3}``. A ``?`` glued
to the end of a token, a group, ``{N}`` or ``+`` (``click?``, ``(a|b)?``) makes that step
optional; a ``?`` standing alone (``a ? b``) is one event of any kind. ``within`` and
``without`` are keywords: an event type of that name can only be written with a page
(``within@home``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple

from streamfeat._durations import parse_duration
from streamfeat._event import Event
from streamfeat._tokens import Token, parse_token
from streamfeat.errors import TriggerSpecError
from streamfeat.triggers._condition import Condition, ConditionError, parse_condition

__all__ = [
    "MAX_POSITIONS",
    "MAX_REPEAT",
    "CondToken",
    "Pattern",
    "PatternToken",
    "Step",
    "parse_pattern",
]

MAX_REPEAT = 64
#: Upper bound on the positions of a pattern once ``{N}`` is expanded (keeps compile size and
#: per-device state bounded whatever the text says).
MAX_POSITIONS = 256
_LEXEME_RE = re.compile(r"[()|,*?+\]]|\{[^}\s]*\}?|[^\s(){}|,*?+\[\]]+")
_KEYWORDS = ("within", "without")


class CondToken(NamedTuple):
    """A token with a condition: an event with this type (and page, when set) for which
    ``where`` holds (``exposure[args.dur_ms < 300]``)."""

    type: str
    page: str | None
    where: Condition

    def matches(self, event: Event) -> bool:
        return (
            event.type == self.type
            and (self.page is None or event.page == self.page)
            and self.where(event)
        )

    def __str__(self) -> str:
        head = self.type if self.page is None else f"{self.type}@{self.page}"
        return f"{head}[{self.where}]"


#: A token of a pattern step: plain (:class:`~streamfeat._tokens.Token`) or with a condition.
PatternToken = Token | CondToken


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a pattern.

    ``kind`` is ``"atom"`` (one of ``tokens``, ``count`` times in a row), ``"any"`` (``?``, one
    event of any kind) or ``"star"`` (``*``, zero or more events of any kind). An atom step with
    ``plus`` matches its ``count`` events one or more times in a row (``a+``, ``a{2}+``); with
    ``optional`` it may also match no event (``a?``).
    """

    kind: str
    tokens: tuple[PatternToken, ...] = ()
    count: int = 1
    plus: bool = False
    optional: bool = False

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
        if self.count != 1:
            body += f"{{{self.count}}}"
        return body + ("+" if self.plus else "") + ("?" if self.optional else "")


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

    @property
    def variable(self) -> bool:
        """Whether a step has ``+`` or is optional (the pattern's matches vary in length
        outside ``*``)."""
        return any(s.plus or s.optional for s in self.steps)


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
        self.glued: list[bool] = []  # lexeme i directly follows lexeme i - 1 (no space)
        self._lex(text)
        self.i = 0

    def _lex(self, text: str) -> None:
        """Split ``text`` into lexemes, numbering words; a ``[...]`` condition is one lexeme
        (spaces included) of the word where it opens."""
        i, n, word, prev_end = 0, len(text), 0, -1
        while i < n:
            if text[i].isspace():
                i += 1
                continue
            if prev_end != i:
                word += 1
            if text[i] == "[":
                j = _bracket_end(text, i)
                if j < 0:
                    msg = (
                        f"the condition `{text[i:]}` is not closed (missing `]`)"
                        if j == -1
                        else f"a string in the condition `{text[i:]}` is not closed"
                    )
                    raise self.fail(msg, word)
                end = j + 1
            else:
                m = _LEXEME_RE.match(text, i)
                assert m is not None  # every non-space character starts a lexeme
                end = m.end()
            self.lex.append((text[i:end], word))
            self.glued.append(prev_end == i)
            i = prev_end = end

    def fail(self, reason: str, word: int | None) -> TriggerSpecError:
        where = f"{self.label}, word {word}" if word is not None else self.label
        return TriggerSpecError(
            f"{where}: {reason}",
            word=word,
            pattern=self.name if self.name is not None else self.text,
            detail=reason,
        )

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
            if lexeme in ("+", "]"):
                msg = (
                    "`+` can only follow a token or a group (one or more of it)"
                    if lexeme == "+"
                    else "`]` without a `[` (a condition is written token[field < value])"
                )
                raise self.fail(msg, word)
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
            count = self.repeat()
            plus, optional = self.suffixes()
            steps.append(Step("atom", tokens, count, plus, optional))
        if not steps:
            cur = self.peek()
            assert cur is not None
            msg = f"`{cur[0]}` can't start a pattern (a pattern starts with a step)"
            raise self.fail(msg, cur[1])
        return steps

    def suffixes(self) -> tuple[bool, bool]:
        """``+`` and a glued ``?`` after an atom (and its ``{N}``)."""
        plus = optional = False
        while (cur := self.peek()) is not None:
            lexeme, word = cur
            if lexeme == "+":
                if plus or optional:
                    what = "`+` is given twice" if plus else "`+` must come before `?`"
                    msg = f"{what} (write a+ or a+?)"
                    raise self.fail(msg, word)
                plus = True
            elif lexeme == "?" and self.glued[self.i] and not optional:
                optional = True
            else:
                break
            self.i += 1
        return plus, optional

    def atom(self, lexeme: str, word: int) -> tuple[PatternToken, ...]:
        if lexeme != "(":
            self.i += 1
            return (self.cond_token(lexeme, word),)
        self.i += 1
        tokens: list[PatternToken] = []
        while True:
            cur = self.peek()
            if cur is None:
                msg = "the group is not closed (missing `)`)"
                raise self.fail(msg, self.last_word())
            self.i += 1
            tokens.append(self.cond_token(cur[0], cur[1]))
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
        if nxt is not None and nxt[0].startswith("[") and self.glued[self.i]:
            msg = (
                f"`{nxt[0]}` can't follow a group: a condition belongs to each token, "
                f"as in ({'|'.join(f'{t.type}{nxt[0]}' for t in tokens)})"
            )
            raise self.fail(msg, nxt[1])
        return tuple(dict.fromkeys(tokens))

    def cond_token(self, lexeme: str, word: int) -> PatternToken:
        """A token (lexeme ``self.i - 1``) and the condition glued to it, if any."""
        tok = self.token(lexeme, word)
        cur = self.peek()
        if cur is None or not cur[0].startswith("[") or not self.glued[self.i]:
            return tok
        self.i += 1
        try:
            where = parse_condition(cur[0][1:-1])
        except ConditionError as exc:
            msg = f"in the condition of `{tok}`: {exc}"
            raise self.fail(msg, cur[1]) from exc
        return CondToken(tok.type, tok.page, where)

    def token(self, lexeme: str, word: int) -> Token:
        if lexeme in _KEYWORDS:
            msg = f"expected a token, got the keyword `{lexeme}`"
            raise self.fail(msg, word)
        if lexeme.startswith("["):
            msg = f"`{lexeme}` must be glued to a token (write click[item = 42])"
            raise self.fail(msg, word)
        if lexeme in "()|,*?+]" or lexeme.startswith("{"):
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
            if sep is not None and sep[0].startswith("[") and self.glued[self.i]:
                msg = f"`without` takes tokens without conditions, got `{cur[0]}{sep[0]}`"
                raise self.fail(msg, sep[1])
            if sep is None or sep[0] != ",":
                return tokens
            self.i += 1


def _bracket_end(text: str, i: int) -> int:
    """The index of the ``]`` closing the ``[`` at ``i`` (quotes respected); -1 when there is
    none, -2 when a quote is left open."""
    quote = None
    for j in range(i + 1, len(text)):
        ch = text[j]
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "]":
            return j
    return -1 if quote is None else -2
