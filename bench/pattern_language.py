"""The trigger matcher on the bench mix, plain and with the pattern language of issue 12.

    .venv/bin/python bench/pattern_language.py LOG.jsonl [cond] [plus]

LOG is a generated log (``streamfeat generate --devices 333 --minutes 60 --seed 7 --out
LOG.jsonl``, the log ``bench_triggers`` uses). For 10 and 1,000 patterns of
``bench_triggers.patterns`` it prints the per-event and batch rates (best of 3) of:

* ``plain``: the mix as it is;
* ``cond``: every pattern whose first step is a single token gets a condition on it
  (``TOKEN[args.pos < K or item != 1]``): the automaton finds the same candidates, the
  condition is checked on them;
* ``plus``: half of those first tokens get ``+``: those triggers run on their own NFA.

Not part of ``make bench`` (no ``bench_`` prefix): it compares variants, it does not gate.
"""

from __future__ import annotations

import gc
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import bench_triggers as b

from streamfeat.triggers import Matcher, Pattern, parse_pattern


def variant_patterns(n: int, variant: str) -> dict[str, Pattern]:
    base = b.patterns(n)
    if variant == "plain":
        return base
    rng = random.Random(5)
    out = {}
    for name, pat in base.items():
        text = pat.text
        first, _, rest = text.partition(" ")
        single = "(" not in first and "{" not in first and not first.startswith("?")
        if variant == "cond" and single:
            first = f"{first}[args.pos < {rng.randint(1, 20)} or item != 1]"
        if variant == "plus" and single and rng.random() < 0.5:
            first = f"{first}+"
        out[name] = parse_pattern(f"{first} {rest}".strip(), name=name)
    return out


def main() -> None:
    log = Path(sys.argv[1])
    events = b.load(log)
    groups = b.by_device(events)
    print(f"{len(events):,} events, {len(groups)} devices")
    for variant in ["plain", *sys.argv[2:]]:
        for n in (10, 1000):
            m = Matcher(variant_patterns(n, variant), limit_ms=24 * 3_600_000, limit_events=10_000)
            fired = b.run_step(m, events)  # warms the memoised tables
            best_step = best_batch = 0.0
            for _ in range(3):
                gc.collect()
                t0 = time.perf_counter()
                b.run_step(m, events)
                best_step = max(best_step, len(events) / (time.perf_counter() - t0))
                gc.collect()
                t0 = time.perf_counter()
                b.run_batch(m, groups)
                best_batch = max(best_batch, len(events) / (time.perf_counter() - t0))
            print(
                f"{variant:6s} {n:5d} patterns: per-event {best_step:10,.0f} events/s, "
                f"batch {best_batch:10,.0f} events/s, {fired:,} firings"
            )


if __name__ == "__main__":
    main()
