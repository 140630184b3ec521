"""Where the realistic mix's extra cost at 10,000 patterns comes from, template by template.

Usage (from the repository root)::

    python bench/trigger_templates.py LOG.jsonl [--rounds R]

The benchmark's 10,000-pattern mix (``bench_triggers.patterns``) has a few hundred patterns
that start on one of the log's common events; the rest never start on this log. This runs the
per-event driver (``bench_triggers.run_step``) with the 10 base patterns alone, then with the
base patterns plus the patterns of one template that start on a common event, for each
template, then with all of them, and prints the CPU per event above the base and the extra
firings. Each figure is the fastest of ``R`` rounds (3), the variants taking turns within a
round. ``STREAMFEAT_PURE=1`` runs the pure-Python build.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_triggers as B
from _harness import ROOT

sys.path.insert(0, str(ROOT))

from streamfeat.triggers import Matcher, parse_pattern

_COMMON = set(B.COMMON)


def _texts(n: int = 10_000, seed: int = 11) -> list[str]:
    """The pattern texts of ``bench_triggers.patterns(n, seed)``, in the same order."""
    rng = random.Random(seed)
    texts = list(B.BASE[:n])
    while len(texts) < n:
        texts.append(B._pattern(rng))
    return texts


def _first_tokens(text: str) -> list[str]:
    head = text.split(" ", 1)[0]
    if head.startswith("("):
        return [t.strip("()") for t in head.split(")")[0].split("|")]
    return [head.split("{", 1)[0]]


def template(text: str) -> str:
    """The template of ``bench_triggers._pattern`` a text was drawn from."""
    if " without " in text:
        return "A * B * C without D"
    if text.startswith("("):
        return "(A|B) * C within 1h"
    if "{2} ?" in text:
        return "A{2} ? B"
    if " * " in text:
        return "A * B within T"
    if " " in text:
        return "A B [C] (a literal run)"
    return "A (one token)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log", type=Path, help="a generated JSONL log")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; the fastest counts (3)")
    args = ap.parse_args(argv)
    from streamfeat._compiled import status

    texts = _texts()
    starting = [
        i for i in range(10, len(texts)) if any(t in _COMMON for t in _first_tokens(texts[i]))
    ]
    groups: dict[str, list[int]] = {}
    for i in starting:
        groups.setdefault(template(texts[i]), []).append(i)
    variants = {"base (the 10 patterns)": list(range(10))}
    for name, idx in sorted(groups.items()):
        variants[f"+ {len(idx)} x {name}"] = list(range(10)) + idx
    variants[f"+ all {len(starting)} that start on the log"] = list(range(10)) + starting
    events = B.load(args.log)
    matchers = {
        k: Matcher(
            {f"t{i}": parse_pattern(texts[i], name=f"t{i}") for i in idx},
            limit_ms=24 * 3_600_000,
            limit_events=10_000,
        )
        for k, idx in variants.items()
    }
    best = dict.fromkeys(variants, float("inf"))
    fired = dict.fromkeys(variants, 0)
    load0 = os.getloadavg()[0]
    for _ in range(args.rounds):
        for k, m in matchers.items():
            t0 = time.process_time()
            fired[k] = B.run_step(m, events)
            best[k] = min(best[k], (time.process_time() - t0) / len(events) * 1e6)
    base = "base (the 10 patterns)"
    print(
        f"{status()}; {len(events):,} events; load average {load0:.2f} / {os.getloadavg()[0]:.2f}; "
        f"CPU per event, fastest of {args.rounds}"
    )
    print(f"{'patterns':44s} {'us/event':>9s} {'above base':>11s} {'firings':>9s} {'extra':>8s}")
    for k in variants:
        extra = best[k] - best[base]
        print(f"{k:44s} {best[k]:9.2f} {extra:11.2f} {fired[k]:9,d} {fired[k] - fired[base]:8,d}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
