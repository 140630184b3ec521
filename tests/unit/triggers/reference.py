"""A plain, slow, obviously-right trigger matcher: SPEC section 2 read literally.

For every event ``e`` and every trigger, try every start ``s`` from ``e`` down to ``L + 1`` and
match the slice with a regular expression over an encoding of its events; the first ``s`` that
matches (with the clauses and the engine's limits) is the shortest match.
"""

from __future__ import annotations

import re

from streamfeat._event import Event
from streamfeat._tokens import Token
from streamfeat.triggers import Pattern, Step


def _enc(event: Event) -> str:
    return f"{event.type}\x00{event.page or ''}\x01"


def _tok(tok: Token) -> str:
    if tok.page is None:
        return re.escape(tok.type) + "\x00[^\x01]*\x01"
    return re.escape(tok.type) + "\x00" + re.escape(tok.page) + "\x01"


def _step(step: Step) -> str:
    if step.kind == "star":
        return "(?:[^\x01]*\x01)*"
    if step.kind == "any":
        return "[^\x01]*\x01"
    body = "(?:" + "|".join(_tok(t) for t in step.tokens) + ")"
    return f"(?:{body}){{{step.count}}}"


def compile_ref(pattern: Pattern) -> re.Pattern[str]:
    return re.compile("".join(_step(s) for s in pattern.steps))


def reference_firings(
    triggers: dict[str, Pattern],
    events: list[Event],
    *,
    limit_ms: int = 24 * 3_600_000,
    limit_events: int = 10_000,
) -> list[tuple[str, int, int]]:
    """Return ``(trigger, first, last)`` of every firing, in event order then trigger order."""
    enc = [_enc(e) for e in events]
    regexes = {n: compile_ref(p) for n, p in triggers.items()}
    last = dict.fromkeys(triggers, -1)
    out = []
    clock = []  # the device's clock (largest ts so far) at each event
    maxts = -1
    for ev in events:
        maxts = max(maxts, ev.ts)
        clock.append(maxts)
    maxts = -1
    for e, ev in enumerate(events):
        maxts = max(maxts, ev.ts)
        for name, pattern in triggers.items():
            for s in range(e, last[name], -1):
                if e - s + 1 > limit_events:
                    break  # a smaller s only makes the slice longer
                if maxts - clock[s] > limit_ms:
                    break  # the device's clock at an earlier start is no later
                if any(t.matches(x) for x in events[s : e + 1] for t in pattern.without):
                    break  # a smaller s still holds the forbidden event
                if pattern.within is not None and ev.ts - events[s].ts > pattern.within:
                    continue
                if regexes[name].fullmatch("".join(enc[s : e + 1])):
                    out.append((name, s, e))
                    last[name] = e
                    break
    return out
