"""One deterministic workload over the compiled modules, printed as digests (run as a script).

``tests/property/test_compiled_differential.py`` runs it twice, once on the pure-Python code
(``STREAMFEAT_PURE=1``) and once on the compiled core, and requires the same output: the
trigger firings of random patterns over random events (both drivers), every record of the
default tasks file over those events, the bytes of every codec's batches and the decoded
records, and tunnel frames. Usage: ``python -m tests.property._compiled_workload SEED``.
"""

from __future__ import annotations

import hashlib
import random
import sys
from pathlib import Path
from typing import Any

import orjson

import streamfeat._compiled
from streamfeat._event import Event, event_from_obj
from streamfeat.encoders import decode_batch, encoder_for, index_schemas
from streamfeat.engine import schemas_for
from streamfeat.engine._build import build_engine
from streamfeat.tasks import load_tasks
from streamfeat.triggers import Matcher, parse_pattern

ROOT = Path(__file__).resolve().parents[2]
TYPES = ("exposure", "click", "scroll", "page_enter", "page_exit", "add_cart", "purchase", "x")
PAGES = (None, "home_feed", "item_detail", "shop")


def _events(rng: random.Random, n: int) -> list[Event]:
    out = []
    ts = 1_700_000_000_000
    for _ in range(n):
        ts += rng.randint(-2_000, 60_000)
        obj: dict[str, Any] = {"device": f"d{rng.randrange(4)}", "ts": ts}
        obj["type"] = rng.choice(TYPES)
        page = rng.choice(PAGES)
        if page is not None:
            obj["page"] = page
        if rng.random() < 0.7:
            obj["item"] = str(rng.randrange(12))
        obj["args"] = {
            "pos": rng.randrange(20),
            "dur_ms": rng.randrange(5_000),
            "speed": rng.random() * 3,
            "control": rng.choice(("add_cart", "shop", "share", "buy")),
            "v": rng.choice((0, 1, 2, 1.5, "1", True)),
        }
        out.append(event_from_obj(obj))
    return out


def _token(rng: random.Random) -> str:
    t = rng.choice(TYPES)
    p = rng.choice(PAGES)
    tok = t if p is None else f"{t}@{p}"
    if rng.random() < 0.2:
        tok += rng.choice(("[args.v < 2]", "[item = 3 or args.pos >= 10]", "[page != shop]"))
    return tok


def _pattern(rng: random.Random) -> str:
    steps = []
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(8)
        if k == 0:
            steps.append("*")
        elif k == 1:
            steps.append("?")
        elif k == 2:
            steps.append(f"({_token(rng)}|{_token(rng)})")
        elif k == 3:
            steps.append(f"{_token(rng)}{{{rng.randint(1, 3)}}}")
        elif k == 4:
            steps.append(_token(rng) + rng.choice(("+", "?")))
        else:
            steps.append(_token(rng))
    if steps[0] in ("*", "?"):
        steps[0] = _token(rng)
    text = " ".join(steps)
    if rng.random() < 0.3:
        text += f" within {rng.choice((1, 5, 30))}m"
    if rng.random() < 0.2:
        text += f" without {_token(rng)}"
    return text


def main(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, 3_000)
    digest: dict[str, str] = {"status": streamfeat._compiled.status().split(":")[0]}

    pats = {}
    for i in range(200):
        text = _pattern(rng)
        try:
            pats[f"t{i}"] = parse_pattern(text, name=f"t{i}")
        except ValueError as exc:  # a refused pattern must be refused the same way
            pats[f"bad{i}"] = None
            digest[f"refused t{i}"] = repr(exc)
    m = Matcher({k: v for k, v in pats.items() if v is not None}, limit_ms=600_000, limit_events=50)
    states: dict[str, Any] = {}
    counts: dict[str, int] = {}
    fired = []
    for ev in events:
        st = states.setdefault(ev.device, m.new_state())
        i = counts.get(ev.device, 0)
        counts[ev.device] = i + 1
        fired.extend(repr(f) for f in m.step(st, i, ev))
    groups: dict[str, list[Event]] = {}
    for ev in events:
        groups.setdefault(ev.device, []).append(ev)
    batch = [repr(f) for g in groups.values() for f in m.run_batch(g)]
    digest["firings per event"] = _h(fired)
    digest["firings batch"] = _h(batch)
    digest["firings count"] = str(len(fired))

    config = load_tasks(ROOT / "streamfeat" / "data" / "default.toml")
    engine = build_engine(config, sizes=True)
    records: list[dict[str, Any]] = []
    for ev in events:
        engine.process_into(ev, records)
    records += engine.close()
    digest["records"] = _h(
        [orjson.dumps(r, option=orjson.OPT_SORT_KEYS, default=repr) for r in records]
    )
    digest["records count"] = str(len(records))
    schemas = schemas_for(config)
    by_id = index_schemas(schemas)
    for codec in ("compact", "msgpack", "json"):
        enc = encoder_for(codec, schemas)
        blobs = [enc.encode_batch(records[i : i + 64]) for i in range(0, len(records), 64)]
        digest[f"{codec} bytes"] = _h(blobs)
        decoded = [repr(decode_batch(b, by_id)) for b in blobs]
        digest[f"{codec} decoded"] = _h(decoded)
    for k, v in sorted(digest.items()):
        print(f"{k}: {v}")


def _h(items: list[Any]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(it if isinstance(it, bytes) else str(it).encode())
        h.update(b"\x00")
    return h.hexdigest()


if __name__ == "__main__":
    main(int(sys.argv[1]))
