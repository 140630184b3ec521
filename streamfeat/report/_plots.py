"""The report's plots: matplotlib figures rendered to inline SVG strings.

matplotlib is an optional extra (``pip install 'streamfeat[report]'``); it is imported only
here, when a report is rendered, through the object-oriented API (``Figure``), so no pyplot
state and no GUI backend are involved. Text is drawn as paths, so an SVG needs no font and no
network; the SVG ids are salted with a fixed string so the same data gives the same bytes.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from streamfeat.errors import MissingExtraError

__all__ = ["MissingExtraError", "Plotter", "check_plotting"]

MINUTE_MS = 60_000
_MAX_BARS = 240
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)
_BUCKETS_MIN = (1, 5, 10, 15, 30, 60, 120, 360, 720, 1440, 10080)
_COLORS = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5"]


def _import_figure() -> Any:
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError as exc:
        msg = "the replay report needs matplotlib: pip install 'streamfeat[report]'"
        raise MissingExtraError(msg) from exc
    return matplotlib, Figure


def check_plotting() -> None:
    """Raise :class:`MissingExtraError` now if the report could not be drawn."""
    _import_figure()


def pick_bucket(minutes: Sequence[int]) -> int:
    """The bucket width, in minutes, that shows ``minutes``' span in at most ~240 bars."""
    if not minutes:
        return 1
    span = max(minutes) - min(minutes) + 1
    for b in _BUCKETS_MIN:
        if span / b <= _MAX_BARS:
            return b
    return math.ceil(span / _MAX_BARS)


def rebin(counts: Counter[int], bucket: int) -> tuple[list[datetime], list[int]]:
    """Per-minute counts to per-``bucket`` counts, every bucket of the span present (zeros)."""
    if not counts:
        return [], []
    lo, hi = min(counts) // bucket, max(counts) // bucket
    out = [0] * (hi - lo + 1)
    for m, n in counts.items():
        out[m // bucket - lo] += n
    xs = [datetime.fromtimestamp((lo + i) * bucket * 60, tz=UTC) for i in range(len(out))]
    return xs, out


class Plotter:
    """Makes figures and turns each into an SVG string."""

    def __init__(self) -> None:
        self._mpl, self._Figure = _import_figure()
        import matplotlib.dates

        self._mdates = matplotlib.dates

    def svg(self, draw: Callable[[Any], None], *, width: float = 9.0, height: float = 3.2) -> str:
        """Create a figure, let ``draw(fig)`` fill it, return it as an inline ``<svg>``."""
        rc = {
            "svg.hashsalt": "streamfeat-report",
            "svg.fonttype": "path",
            "font.size": 9,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.prop_cycle": self._mpl.cycler(color=_COLORS),
        }
        with self._mpl.rc_context(rc):
            fig = self._Figure(figsize=(width, height), layout="constrained")
            draw(fig)
            buf = io.StringIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
        # the RDF metadata block names creativecommons/purl namespaces: nothing a page needs
        return _METADATA.sub("", text[text.index("<svg") :], count=1)

    # -- the plots -------------------------------------------------------------------------

    def throughput(self, samples: Sequence[tuple[float, int]]) -> str:
        """Events per second of wall time over the replay, from progress samples."""
        xs, ys = [], []
        for (t0, n0), (t1, n1) in itertools.pairwise(samples):
            xs.append(t1)
            ys.append((n1 - n0) / (t1 - t0))

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            ax.plot(xs, ys, marker="o", markersize=2, linewidth=1)
            ax.set_xlabel("seconds since the replay started")
            ax.set_ylabel("events / s")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)

        return self.svg(draw)

    def over_event_time(self, series: dict[str, Counter[int]], ylabel: str) -> str:
        """Counts per time bucket of event time, one line per series."""
        bucket = pick_bucket([m for c in series.values() for m in c])

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            for name, counts in sorted(series.items()):
                xs, ys = rebin(counts, bucket)
                if len(xs) == 1:
                    ax.bar(xs, ys, width=bucket / 1440, label=name)
                else:
                    ax.step(xs, ys, where="post", linewidth=1, label=name)
            ax.set_ylabel(f"{ylabel} per {_bucket_label(bucket)}")
            ax.set_xlabel("event time (UTC)")
            ax.set_ylim(bottom=0)
            ax.grid(alpha=0.3)
            if len(series) > 1:
                ax.legend(loc="upper left", fontsize=8, frameon=False)
            locator = self._mdates.AutoDateLocator(maxticks=10)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(self._mdates.ConciseDateFormatter(locator))

        return self.svg(draw)

    def histograms(self, panels: Sequence[tuple[str, Sequence[float], bool]]) -> str:
        """One histogram per ``(title, values, log_x)`` panel, side by side (3 per row)."""
        cols = min(3, len(panels))
        rows = math.ceil(len(panels) / cols)

        def draw(fig: Any) -> None:
            axes = fig.subplots(rows, cols, squeeze=False)
            for ax, (title, values, log_x) in zip(axes.flat, panels, strict=False):
                _histogram(ax, values, log_x)
                ax.set_title(title, fontsize=9)
                ax.set_ylabel("records")
            for ax in list(axes.flat)[len(panels) :]:
                ax.set_visible(False)

        return self.svg(draw, width=9.0, height=2.6 * rows)

    def bars(self, counts: dict[str, int], xlabel: str) -> str:
        """Horizontal bars, largest on top (labels cut at 60 characters)."""
        items = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))[-30:]
        labels = [k if len(k) <= 60 else k[:59] + "…" for k, _ in items]

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            ax.barh(range(len(items)), [v for _, v in items], color=_COLORS[0])
            ax.set_yticks(range(len(items)), labels)
            ax.set_xlabel(xlabel)
            ax.grid(axis="x", alpha=0.3)
            for i, (_, v) in enumerate(items):
                ax.annotate(f"{v:,}", (v, i), xytext=(3, 0), textcoords="offset points",
                            va="center", fontsize=8)  # fmt: skip

        return self.svg(draw, height=max(1.4, 0.28 * len(items) + 0.8))

    def grouped_bars(self, groups: dict[str, dict[str, float]], ylabel: str) -> str:
        """Vertical bars, one group per key of ``groups``, one bar per inner key."""
        names = list(groups)
        inner = sorted({k for g in groups.values() for k in g})
        width = 0.8 / max(1, len(inner))

        def draw(fig: Any) -> None:
            ax = fig.subplots()
            for j, k in enumerate(inner):
                xs = [i + (j - (len(inner) - 1) / 2) * width for i in range(len(names))]
                ax.bar(xs, [groups[n].get(k, 0.0) for n in names], width=width, label=k)
            ax.set_xticks(range(len(names)), names, rotation=20, ha="right")
            ax.set_ylabel(ylabel)
            ax.set_yscale("log")
            ax.grid(axis="y", alpha=0.3)
            ax.legend(fontsize=8, frameon=False)

        return self.svg(draw)


def _histogram(ax: Any, values: Sequence[float], log_x: bool) -> None:
    from matplotlib.ticker import LogLocator, MaxNLocator

    if not values:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes)
        return
    lo, hi = min(values), max(values)
    ints = all(float(v).is_integer() for v in values)
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    if ints and hi - lo <= 40:  # small counts: one bar per value
        c = Counter(int(v) for v in values)
        ax.bar(list(c), list(c.values()), width=0.8)
        if len(c) <= 8:
            ax.set_xticks(sorted(c))
        return
    if log_x and lo > 0 and hi / lo > 50:
        edges = [lo * (hi / lo) ** (i / 40) for i in range(41)]
        ax.hist(values, bins=edges)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator())
        return
    ax.hist(values, bins=40)


def _bucket_label(minutes: int) -> str:
    if minutes % 1440 == 0:
        return "day" if minutes == 1440 else f"{minutes // 1440} days"
    if minutes % 60 == 0:
        return "hour" if minutes == 60 else f"{minutes // 60} h"
    return "minute" if minutes == 1 else f"{minutes} min"
