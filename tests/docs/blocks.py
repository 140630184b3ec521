"""Find the code blocks of the README and docs, with the markers that say how to run them.

A fenced block's language says what it is:

* ``sh`` / ``bash``: shell commands, run with ``bash -eo pipefail`` in the page's folder;
* ``python``: a script, run with the test's interpreter in the page's folder;
* ``toml``: a tasks file (validated whole with ``streamfeat.tasks.parse_tasks``);
* ``json``: one JSON value, or JSON lines;
* ``text`` or no language: output, grammar, diagrams, synopses with placeholders: not run.
  Such a block must not look like a command (``streamfeat ...``, ``.venv/bin/...``, ``$ ...``):
  a command is tagged ``sh`` and runs, or is marked ``skip`` with its reason.

An HTML comment right before the fence changes that (``;`` separates several):

* ``<!-- example: skip REASON -->``: not run (deliberately not runnable; say why);
* ``<!-- example: file NAME -->``: the block is written to NAME in the page's folder (a
  ``toml`` file is validated as a tasks file too), for the blocks after it;
* ``<!-- example: background; ready URL -->``: a shell block started in the background (a
  server); the next block runs once URL answers; it is stopped at the end of the page;
* ``<!-- example: timeout SECONDS -->``: a longer bound than the default 120 s.

Each page runs in its own temporary folder, blocks in page order, so files made by one block are
there for the next. ``.venv`` in that folder points at the interpreter's environment, so
``.venv/bin/streamfeat`` works as written; ``STREAMFEAT_PORT`` is a free port.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNABLE = {"sh", "bash", "python", "toml", "json"}
TEXT = {"", "text", "console"}
_FENCE = re.compile(r"^(\s*)```\s*([A-Za-z0-9_+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*example:\s*(.*?)\s*-->\s*$")
_COMMANDISH = re.compile(r"^\s*(\$ |\.venv/bin/|streamfeat |make |python )")


@dataclass
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}, block at line {self.line} ({self.lang or 'text'})"

    @property
    def looks_like_a_command(self) -> bool:
        return any(_COMMANDISH.match(line) for line in self.code.splitlines())


def pages() -> list[Path]:
    """The pages whose examples must run: the README files and every page under docs/."""
    found = [ROOT / "README.md", ROOT / "replay" / "README.md"]
    found += sorted((ROOT / "docs").rglob("*.md"))
    return [p for p in found if p.is_file()]


def parse_options(text: str) -> dict[str, str]:
    """``"background; ready URL"`` -> ``{"background": "", "ready": "URL"}``."""
    opts: dict[str, str] = {}
    for part in text.split(";"):
        key, _, value = part.strip().partition(" ")
        if key:
            opts[key] = value.strip()
    return opts


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, with the options of the marker right before it."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    pending: dict[str, str] = {}
    while i < len(lines):
        m = _MARKER.match(lines[i])
        if m:
            pending = parse_options(m.group(1))
            i += 1
            continue
        f = _FENCE.match(lines[i])
        if f is None:
            if lines[i].strip():
                pending = {}
            i += 1
            continue
        indent, lang = f.group(1), f.group(2).lower()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        out.append(Block(page, start + 1, lang, "\n".join(body) + "\n", pending))
        pending = {}
        i += 1
    return out
