"""Event tokens: ``TYPE`` or ``TYPE@PAGE``, shared by trigger patterns and window filters."""

from __future__ import annotations

import re
from typing import NamedTuple

from streamfeat._event import Event

__all__ = ["Token", "parse_token"]

_TOKEN_RE = re.compile(r"([A-Za-z0-9_.\-]{1,64})(?:@([A-Za-z0-9_.\-]{1,128}))?\Z")


class Token(NamedTuple):
    """An event with this type (and, when ``page`` is set, on this page)."""

    type: str
    page: str | None = None

    def matches(self, event: Event) -> bool:
        return event.type == self.type and (self.page is None or event.page == self.page)

    def __str__(self) -> str:
        return self.type if self.page is None else f"{self.type}@{self.page}"


def parse_token(text: str) -> Token:
    """Parse ``TYPE`` or ``TYPE@PAGE``.

    >>> parse_token("page_exit@item_detail")
    Token(type='page_exit', page='item_detail')

    Raises:
        ValueError: naming the text when it is not a token.
    """
    m = _TOKEN_RE.match(text) if isinstance(text, str) else None
    if m is None:
        msg = f"{text!r} is not a token (TYPE or TYPE@PAGE, TYPE matching [A-Za-z0-9_.-]{{1,64}})"
        raise ValueError(msg)
    return Token(m.group(1), m.group(2))
