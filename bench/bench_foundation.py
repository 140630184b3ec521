"""Foundation floors: parse, dispatch, and replay with no stages (issue: foundation).

* parse floor: orjson over every line of the log;
* dispatch floor: parse + one dict lookup per event (the least any per-device engine does);
* validate: parse + SPEC section 1 validation into Event (the reader);
* replay, no stages: `streamfeat replay` with an empty tasks file, in-process, to /dev/null;
* replay, default tasks: the same with the embedded default tasks file.
Each as events/s and as a ratio to the parse floor, on a generated log and on the Taobao log.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import orjson
from _harness import Context, Row

from streamfeat.io._readers import read_jsonl
from streamfeat.replay._replay import ReplayOptions, run_replay
from streamfeat.tasks import parse_tasks


def _count(path: Path) -> int:
    with path.open("rb") as fh:
        return sum(1 for _ in fh)


def _parse(path: Path) -> None:
    loads = orjson.loads
    with path.open("rb") as fh:
        for line in fh:
            loads(line)


def _dispatch(path: Path) -> None:
    loads = orjson.loads
    seen: dict[str, int] = {}
    with path.open("rb") as fh:
        for line in fh:
            obj = loads(line)
            d = obj.get("device", "local")
            seen[d] = seen.get(d, 0) + 1


def _validate(path: Path) -> None:
    with path.open("rb") as fh:
        for _ in read_jsonl(fh):
            pass


def _replay(path: Path, tasks_text: str, tmp: Path) -> None:
    cfg = parse_tasks(tasks_text)
    run_replay(ReplayOptions(events=str(path), config=cfg, out=os.devnull))


def _idle_tasks(tmp: Path, idle: str = "10m") -> Path:
    """The default tasks file with replay's idle rule on (``[engine] idle``)."""
    from streamfeat.data import default_tasks_text

    path = tmp / f"default-idle-{idle}.toml"
    path.write_text(default_tasks_text().replace("[engine]\n", f'[engine]\nidle = "{idle}"\n', 1))
    return path


def _peak_rss_replay(path: Path, tmp: Path, tasks: Path | None = None) -> float:
    """Peak RSS (MB) of a separate `streamfeat replay` process (default tasks file unless
    ``tasks``).

    Read from the child's own ``VmHWM`` (``/proc/self/status``), the high-water mark of its
    address space after ``exec``: its ``ru_maxrss`` would not do, since Linux keeps the
    largest of the forking parent's RSS across ``exec`` (this benchmark process, hundreds of
    MB after its in-process replays, made both rows read the parent's size)."""
    extra = [] if tasks is None else ["--tasks", str(tasks)]
    code = (
        "import sys; from streamfeat.cli import main; "
        f"main(['replay', {str(path)!r}, '--out', {os.devnull!r}, '--json', *{extra!r}]); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]; "
        "print(int(hwm.split()[1]), file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(proc.stderr.strip().splitlines()[-1]) / 1024.0


def _rows_for(label: str, path: Path, ctx: Context) -> list[Row]:
    from streamfeat.data import default_tasks_text

    n = _count(path)
    t_parse = ctx.timeit(lambda: _parse(path))
    rows = [
        Row(
            "foundation",
            f"{label}: parse floor (orjson)",
            n / t_parse,
            "events/s",
            1.0,
            "parse",
            f"{n:,} events",
        )
    ]
    cases = [
        ("dispatch floor (parse + dict)", lambda: _dispatch(path)),
        ("parse + validate (reader)", lambda: _validate(path)),
        ("replay, no stages", lambda: _replay(path, "", ctx.tmp)),
        ("replay, default tasks", lambda: _replay(path, default_tasks_text(), ctx.tmp)),
        (
            "replay, default tasks + idle 10m",
            lambda: _replay(path, _idle_tasks(ctx.tmp).read_text(), ctx.tmp),
        ),
    ]
    for name, fn in cases:
        try:
            t = ctx.timeit(fn)
        except Exception as exc:  # a stage still missing must not hide the floors
            rows.append(
                Row("foundation", f"{label}: {name}", 0.0, "events/s", None, "", f"failed: {exc}")
            )
            continue
        rows.append(Row("foundation", f"{label}: {name}", n / t, "events/s", t_parse / t, "parse"))
    return rows


def run(ctx: Context) -> list[Row]:
    rows: list[Row] = []
    gen = ctx.generated_log(50_000 if ctx.quick else 500_000)
    rows += _rows_for("generated", gen, ctx)
    taobao = ctx.taobao_log()
    if taobao is None:
        rows.append(Row("foundation", "taobao", 0, "", None, "", "../shared/data absent: skipped"))
    else:
        rows += _rows_for("taobao", taobao, ctx)
        rss = _peak_rss_replay(taobao, ctx.tmp)
        rows.append(
            Row(
                "foundation",
                "taobao: peak RSS, replay default tasks",
                rss,
                "MB",
                None,
                "",
                "separate process",
            )
        )
        rss_idle = _peak_rss_replay(taobao, ctx.tmp, _idle_tasks(ctx.tmp))
        rows.append(
            Row(
                "foundation",
                "taobao: peak RSS, replay default tasks + idle 10m",
                rss_idle,
                "MB",
                rss_idle / rss if rss else None,
                "peak RSS, default tasks",
                "separate process; [engine] idle = 10m",
            )
        )
    _ = resource  # peak RSS is read in the child
    return rows
