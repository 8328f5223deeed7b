"""Bar charts drawn on the server as SVG: geometry here, markup in agents/dashboard/_chart.html.

A chart is a viewBox that scales to its box (width 100%), one path of bars, the marked bars in
a second path, and a title and description; the template adds a table of the values as its
text alternative. No JavaScript, no library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone


@dataclass(frozen=True)
class Bar:
    start: datetime
    value: int
    marked: bool = False
    note: str = ""  # why it is marked, for the table and the marker's title


@dataclass
class Chart:
    title: str
    desc: str
    width: int
    height: int
    bars: list[Bar]
    path: str = ""
    marked_path: str = ""
    markers: list[dict[str, Any]] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    peak: int = 0
    total: int = 0
    plot: dict[str, float] = field(default_factory=dict)
    bar_width: float = 1.0

    @property
    def rows(self) -> list[Bar]:
        """The bars worth a row in the table: those with a value, and the marked ones."""
        return [b for b in self.bars if b.value or b.marked]


def series_fill(
    *, values: dict[datetime, int], since: datetime, until: datetime, step: timedelta
) -> list[tuple[datetime, int]]:
    """Every window from `since` to `until`, with 0 where nothing was counted."""
    seconds = int(step.total_seconds())
    stamp = int(since.timestamp())
    start = datetime.fromtimestamp(stamp - stamp % seconds, since.tzinfo)
    out = []
    while start <= until:
        out.append((start, values.get(start, 0)))
        start += step
    return out


def bar_chart(
    *,
    title: str,
    unit: str,
    series: list[tuple[datetime, int]],
    marks: dict[datetime, str] | None = None,
    width: int = 600,
    height: int = 200,
    ticks: int = 4,
    tick_format: str = "%H:%M",
    bucket: str = "window",
) -> Chart:
    """Lay out bars for a series of (window start, value); `marks` are notes by window start."""
    marks = marks or {}
    bars = [Bar(start=s, value=v, marked=s in marks, note=marks.get(s, "")) for s, v in series]
    peak = max((b.value for b in bars), default=0)
    total = sum(b.value for b in bars)
    left, right, top, bottom = 40.0, 8.0, 16.0, 28.0
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    step = plot_w / max(1, len(bars))
    bar_w = max(0.6, step * 0.8)
    scale = plot_h / peak if peak else 0.0

    def x_of(i: int) -> float:
        return left + step * i + step / 2

    plain, marked, markers = [], [], []
    for i, bar in enumerate(bars):
        x = x_of(i)
        if bar.value:
            segment = f"M{x:.1f} {base:.1f}V{base - max(1.0, bar.value * scale):.1f}"
            (marked if bar.marked else plain).append(segment)
        if bar.marked:
            y = base - bar.value * scale
            markers.append(
                {
                    "x": round(x, 1),
                    "y": round(max(top - 4, y - 6), 1),
                    "title": f"{_local(bar.start):%Y-%m-%d %H:%M}: {bar.note}",
                }
            )
    tick_list = []
    if bars and ticks:
        every = max(1, len(bars) // ticks)
        # No label in the last half interval: it would run off the right edge.
        for i in range(0, len(bars) - every // 2, every):
            tick_list.append(
                {
                    "x": round(x_of(i), 1),
                    "label": f"{_local(bars[i].start):{tick_format}}",
                    "anchor": "start" if i == 0 else "middle",
                }
            )
    first = f"{_local(bars[0].start):%Y-%m-%d %H:%M}" if bars else ""
    last = f"{_local(bars[-1].start):%Y-%m-%d %H:%M}" if bars else ""
    peak_bar = max(bars, key=lambda b: b.value) if peak else None
    desc = f"{total} {unit} from {first} to {last}"
    if peak_bar is not None:
        desc += f"; the most, {peak}, in the {bucket} from {_local(peak_bar.start):%H:%M}"
    if marks:
        desc += f"; {len(markers)} marked: " + ", ".join(m["title"] for m in markers[:5])
    return Chart(
        title=title,
        desc=desc + ".",
        width=width,
        height=height,
        bars=bars,
        path="".join(plain),
        marked_path="".join(marked),
        markers=markers,
        ticks=tick_list,
        peak=peak,
        total=total,
        plot={
            "left": left,
            "right": width - right,
            "top": top,
            "base": base,
            "label_x": left - 6,
            "tick_y": height - 8,
        },
        bar_width=round(bar_w, 2),
    )


def _local(value: datetime) -> datetime:
    return timezone.localtime(value) if timezone.is_aware(value) else value
