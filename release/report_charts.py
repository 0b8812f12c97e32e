"""The report's charts, drawn by matplotlib as static SVG (inlined in the HTML) and PNG.

No pyplot: figures are plain `Figure` objects rendered by matplotlib's SVG and Agg backends, so
nothing needs a display and no global state is left behind. Text stays text in the SVG
(`svg.fonttype = none`): small, selectable, and searchable by the tests.

Releases come in bursts of phases minutes apart, with hours or days between them. On a plain
time axis a whole rollout would be a sliver, so `TimeAxis` squeezes every idle stretch longer
than IDLE_GAP into a narrow hatched band that says how long it was.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, overload

import matplotlib
import numpy
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from release.report_cloudwatch import VersionSeries
from release.report_model import EVENT_LABELS, Observation, Timeline

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

IDLE_GAP = timedelta(minutes=10)
# Share of the axis an idle stretch takes (all of them together at most GAPS_SHARE), and the
# least a burst of phases takes.
GAP_SHARE = 0.04
GAPS_SHARE = 0.15
MIN_SPAN_SHARE = 0.05
# Beyond this many, events and versions are drawn without their text labels (they overlap).
MAX_LABELS = 30
# Versions with their own legend entry; older ones share one line saying how many there are.
MAX_LEGEND_VERSIONS = 8
TICK_STEPS_MINUTES = (1, 2, 5, 10, 15, 30, 60, 120, 240, 360, 720, 1440, 2880, 10080)
WIDTH_INCHES = 12.0
# Same left/right margins in every figure, so the time axes line up in the page.
MARGINS = {"left": 0.075, "right": 0.985}
INTENDED_COLOR = "#3a3a3a"
# Warm colours for events and cool ones for versions, so the two never look alike.
EVENT_COLORS = {"alarm": "#d62728", "fast": "#ff7f0e", "invoke": "#a0522d", "check": "#c71585",
                "bake": "#b8860b"}
BAKE_COLORS = {"pass": "#2ca02c", "fail": "#d62728", "inconclusive": "#b8860b"}
OTHER_BAKE_COLOR = "#7f7f7f"
VERSION_COLORS = ("#1f77b4", "#2ca02c", "#17becf", "#6a3d9a", "#00897b", "#3949ab", "#7cb342",
                  "#0277bd")
STYLE: dict[RcKeyType, Any] = {
    "svg.fonttype": "none",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e6e6e6",
    "legend.fontsize": 8.5,
}


@dataclass(frozen=True)
class TimeAxis:
    """Real time (epoch seconds) -> x, linear inside each burst of activity, squeezed between."""

    real: tuple[float, ...]  # knots, ascending
    shown: tuple[float, ...]
    spans: tuple[tuple[float, float], ...]  # the bursts, padded, in real time

    @classmethod
    def around(cls, intervals: Sequence[tuple[datetime, datetime]]) -> TimeAxis:
        bursts: list[list[float]] = []
        for start, end in sorted((s.timestamp(), e.timestamp()) for s, e in intervals):
            if bursts and start - bursts[-1][1] <= IDLE_GAP.total_seconds():
                bursts[-1][1] = max(bursts[-1][1], end)
            else:
                bursts.append([start, end])
        # Room around each burst so that its first and last points are not on the gap's edge.
        spans = [(start - pad, end + pad) for start, end in bursts
                 for pad in [min(120.0, max(30.0, 0.05 * (end - start)))]]
        lengths = [end - start for start, end in spans]
        widths = [max(length, MIN_SPAN_SHARE * sum(lengths)) for length in lengths]
        gap = min(GAP_SHARE, GAPS_SHARE / max(1, len(spans) - 1)) * sum(widths)
        real, shown, cursor = [], [], 0.0
        for (start, end), width in zip(spans, widths, strict=True):
            real += [start, end]
            shown += [cursor, cursor + width]
            cursor += width + gap
        return cls(tuple(real), tuple(shown), tuple(spans))

    @overload
    def x(self, times: datetime) -> float: ...
    @overload
    def x(self, times: Sequence[datetime]) -> numpy.ndarray: ...
    def x(self, times: Sequence[datetime] | datetime) -> numpy.ndarray | float:
        if isinstance(times, datetime):
            return float(numpy.interp(times.timestamp(), self.real, self.shown))
        return numpy.interp([t.timestamp() for t in times], self.real, self.shown)

    def covers(self, time: datetime) -> bool:
        return self.real[0] <= time.timestamp() <= self.real[-1]

    @property
    def limits(self) -> tuple[float, float]:
        return self.shown[0], self.shown[-1]

    def gaps(self) -> list[tuple[float, float, timedelta]]:
        """Each squeezed stretch: its x from/to and how long it really was."""
        return [(self.shown[i], self.shown[i + 1],
                 timedelta(seconds=self.real[i + 1] - self.real[i]))
                for i in range(1, len(self.real) - 1, 2)]

    def ticks(self) -> tuple[list[float], list[str]]:
        """Round clock times inside each burst, dated where the day changes; thinned so that
        labels do not overlap."""
        total = self.shown[-1] - self.shown[0] or 1.0
        candidates: list[tuple[float, datetime]] = []
        for index, (start, end) in enumerate(self.spans):
            width = self.shown[2 * index + 1] - self.shown[2 * index]
            room = max(1, int(7 * width / total))
            step = next((minutes * 60 for minutes in TICK_STEPS_MINUTES
                         if (end - start) / (minutes * 60) <= room), TICK_STEPS_MINUTES[-1] * 60)
            first = math.ceil(start / step) * step
            times = list(numpy.arange(first, end, step)) or [start + (end - start) / 2]
            candidates += [(float(numpy.interp(t, self.real, self.shown)),
                            datetime.fromtimestamp(t, UTC)) for t in times]
        positions, labels, last_x, last_day = [], [], -math.inf, None
        for x, moment in candidates:
            if x - last_x < total / 11:
                continue
            dated = moment.date() != last_day
            labels.append(moment.strftime("%b %d\n%H:%M" if dated else "%H:%M"))
            positions.append(x)
            last_x, last_day = x, moment.date()
        return positions, labels


def version_colors(versions: Sequence[str]) -> dict[str, str]:
    return {version: VERSION_COLORS[i % len(VERSION_COLORS)] for i, version in enumerate(versions)}


def _duration_text(duration: timedelta) -> str:
    minutes = round(duration.total_seconds() / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours / 24:.1f} days"


def _time_axis(ax: Axes, axis: TimeAxis, *, labels: bool) -> None:
    ax.set_xlim(*axis.limits)
    positions, texts = axis.ticks()
    ax.set_xticks(positions, texts if labels else [""] * len(positions))
    ax.grid(axis="x", visible=False)
    gaps = axis.gaps()
    for start, end, duration in gaps:
        ax.axvspan(start, end, facecolor="#f4f4f4", edgecolor="#d0d0d0", hatch="////",
                   linewidth=0, zorder=0)
        if labels and len(gaps) <= MAX_LABELS:
            ax.text((start + end) / 2, 0.5, f"{_duration_text(duration)} idle",
                    transform=ax.get_xaxis_transform(), rotation=90, ha="center", va="center",
                    fontsize=7.5, color="#777777")


def _events(ax: Axes, axis: TimeAxis, timeline: Timeline, *, labels: bool) -> list[str]:
    """A dashed line per rollback, with its label and SVG id (`event-<kind>-<n>`) where
    `labels`; returns the kinds drawn (for the legend)."""
    events = timeline.events
    for number, event in enumerate(events):
        x = axis.x(event.time)
        ax.axvline(x, color=EVENT_COLORS[event.kind], linestyle="--", linewidth=1.4, zorder=3,
                   gid=f"event-{event.kind}-{number}" if labels else None)
        if labels and len(events) <= MAX_LABELS:
            ax.text(x, 0.97, f" {event.label}", transform=ax.get_xaxis_transform(), rotation=90,
                    ha="right", va="top", fontsize=8, color=EVENT_COLORS[event.kind],
                    gid=f"label-{event.kind}-{number}")
    return list(dict.fromkeys(event.kind for event in events))


def _error_bars(observations: Sequence[Observation]) -> numpy.ndarray:
    below, above = [], []
    for seen in observations:
        below.append(100 * (seen.share - seen.low) if seen.low is not None else 0.0)
        above.append(100 * (seen.high - seen.share) if seen.high is not None else 0.0)
    return numpy.clip(numpy.array([below, above]), 0, None)


@matplotlib.rc_context(STYLE)
def share_figure(timeline: Timeline, axis: TimeAxis, colors: Mapping[str, str]) -> Figure:
    """The main chart: the candidate's intended share per phase as a step line, the smoke
    checks' observed shares with their Wilson intervals, bakes, and rollbacks as events."""
    figure = Figure()
    ax = figure.add_subplot()
    # Artists, and errorbar containers (tuples of artists), which the legend draws as such.
    handles: list[Artist | ErrorbarContainer] = []

    steps = timeline.routing_steps()
    if steps:
        xs = axis.x([time for time, _ in steps])
        ys = [100 * share for _, share in steps]
        ax.fill_between(xs, ys, color=INTENDED_COLOR, alpha=0.07, linewidth=0, zorder=1)
        handles += ax.plot(xs, ys, color=INTENDED_COLOR, linewidth=2.2, zorder=2,
                           solid_joinstyle="miter", gid="intended-share",
                           label="intended share: the alias routing each phase applied")

    bakes = [(phase, phase.bake) for phase in timeline.phases if phase.bake]
    for number, (phase, bake) in enumerate(bakes):
        ax.axvspan(axis.x(phase.start), axis.x(phase.end), zorder=0, linewidth=0, alpha=0.18,
                   color=BAKE_COLORS.get(bake.status, OTHER_BAKE_COLOR),
                   gid=f"bake-{bake.status}-{number}")
    for status in dict.fromkeys(bake.status for _, bake in bakes):
        handles.append(Patch(color=BAKE_COLORS.get(status, OTHER_BAKE_COLOR), alpha=0.3,
                             label=f"bake: {status}"))

    observed = [(phase, phase.observed) for phase in timeline.phases if phase.observed]
    version_handles: list[Artist | ErrorbarContainer] = []
    for version in dict.fromkeys(phase.candidate for phase, _ in observed):
        points = [(phase, seen) for phase, seen in observed if phase.candidate == version]
        container = ax.errorbar(
            axis.x([phase.end for phase, _ in points]),
            [100 * seen.share for _, seen in points],
            yerr=_error_bars([seen for _, seen in points]),
            fmt="o", color=colors.get(version, INTENDED_COLOR), markersize=6,
            markeredgecolor="white", markeredgewidth=0.8, elinewidth=1.6, capsize=4,
            capthick=1.6, zorder=4,
            label=f"v{version}: observed share (smoke check, Wilson interval)")
        container.lines[0].set_gid(f"observed-v{version}")
        version_handles.append(container)
    if len(version_handles) > MAX_LEGEND_VERSIONS:
        older = len(version_handles) - MAX_LEGEND_VERSIONS
        version_handles = [Line2D([], [], linestyle="none", label=(
            f"(observed shares of {older} older versions: the same, in other colours)")),
            *version_handles[-MAX_LEGEND_VERSIONS:]]
    handles += version_handles

    for kind in _events(ax, axis, timeline, labels=True):
        handles.append(Line2D([], [], color=EVENT_COLORS[kind], linestyle="--",
                              label=f"event: {EVENT_LABELS[kind]}"))

    # Each version's label goes where it first appears (in reverse, the earliest phase wins).
    firsts = {phase.candidate: phase for phase in reversed(timeline.phases) if phase.candidate}
    if len(firsts) <= MAX_LABELS:
        for version, phase in firsts.items():
            ax.text(axis.x(phase.start), 1.01, f"v{version}", transform=ax.get_xaxis_transform(),
                    ha="left", va="bottom", fontsize=8.5, fontweight="bold",
                    color=colors.get(version, INTENDED_COLOR), gid=f"candidate-v{version}")

    _time_axis(ax, axis, labels=True)
    ax.set_ylim(-4, 106)
    ax.set_yticks([0, 10, 25, 50, 75, 100])
    ax.set_ylabel("requests on the candidate version (%)")
    ax.set_xlabel("time (UTC); hatched: idle stretches squeezed out of the axis")
    ax.set_title("Traffic on the candidate version: intended vs observed", loc="left", pad=16)
    _size(figure, plot_inches=3.4, legend_rows=math.ceil(len(handles) / 2))
    figure.legend(handles=handles, loc="lower center", ncol=2, frameon=False,
                  bbox_to_anchor=(0.5, 0.0))
    return figure


def _size(figure: Figure, *, plot_inches: float, legend_rows: int, top_inches: float = 0.6,
          axis_inches: float = 0.95) -> None:
    """Height for the plot(s), the time axis labels and a legend of `legend_rows` below."""
    bottom = axis_inches + 0.2 * legend_rows
    height = top_inches + plot_inches + bottom
    figure.set_size_inches(WIDTH_INCHES, height)
    figure.subplots_adjust(top=1 - top_inches / height, bottom=bottom / height, **MARGINS)


@matplotlib.rc_context(STYLE)
def metrics_figure(timeline: Timeline, axis: TimeAxis, colors: Mapping[str, str],
                   series: Mapping[str, VersionSeries], *, error_limit_percent: float,
                   p99_limit_ms: float) -> Figure:
    """CloudWatch per version, on the same time axis: invocations, error rate, p99 Duration,
    with the alarm thresholds the environment configures."""
    figure = Figure()
    rows = figure.subplots(3, 1)
    panels = ((rows[0], "invocations", "invocations per period", None, None),
              (rows[1], "error_rate_percent", "error rate (%)", error_limit_percent,
               "canary error-rate alarm threshold"),
              (rows[2], "p99_ms", "p99 Duration (ms)", p99_limit_ms, "p99 alarm threshold"))
    for ax, field, label, limit, limit_label in panels:
        for version, data in series.items():
            shown = [(time, value)
                     for time, value in zip(data.times, getattr(data, field), strict=True)
                     if axis.covers(time)]
            ax.plot(axis.x([time for time, _ in shown]),
                    [numpy.nan if value is None else value for _, value in shown],
                    marker=".", markersize=3, linewidth=1.2,
                    color=colors.get(version, INTENDED_COLOR), label=f"v{version}")
        if limit is not None:
            ax.axhline(limit, color=EVENT_COLORS["alarm"], linewidth=1, linestyle=":",
                       label=limit_label)
        _events(ax, axis, timeline, labels=False)
        _time_axis(ax, axis, labels=ax is rows[-1])
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
    rows[0].set_title("CloudWatch, per version behind the alias", loc="left")
    rows[-1].set_xlabel("time (UTC), same axis as above")
    legend: dict[str, Line2D] = {}
    for ax in rows:
        for handle, text in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(text, handle)
    columns = min(6, len(legend)) or 1
    _size(figure, plot_inches=5.4, legend_rows=math.ceil(len(legend) / columns))
    figure.subplots_adjust(hspace=0.35)
    figure.legend(list(legend.values()), list(legend), loc="lower center", ncol=columns,
                  frameon=False)
    return figure


def svg(figure: Figure, name: str) -> str:
    """The figure as an `<svg>` element to inline in HTML: no XML prolog or DOCTYPE, no
    metadata block (it only names matplotlib), and every id prefixed with `name-`: ids are
    page-wide, and matplotlib numbers them the same way in every figure."""
    with matplotlib.rc_context({**STYLE, "svg.hashsalt": name}):
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text[text.index("<svg"):], count=1,
                  flags=re.DOTALL)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    return re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', text)


def png(figure: Figure) -> bytes:
    with matplotlib.rc_context(STYLE):
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=150)
    return buffer.getvalue()
