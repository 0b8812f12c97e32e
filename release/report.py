"""`invoke report`: one self-contained HTML page that shows an environment's releases.

From the release history alone (offline: a CI job or a Terraform Cloud run's artifact works the
same): the routing each phase applied over time, the split each smoke check observed with its
Wilson interval, bakes and their verdicts, and every rollback as a labelled event, then a table
of the phases. With AWS credentials it adds each version's CloudWatch metrics over the same time
range. Charts are matplotlib SVG inlined in the page; it references no script, stylesheet, font
or image, so it opens from a file anywhere.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from release import aws
from release.config import ALIAS_NAME, EnvironmentConfig
from release.history import ReleaseHistory
from release.report_charts import (
    EVENT_COLORS,
    TimeAxis,
    metrics_figure,
    png,
    share_figure,
    svg,
    version_colors,
)
from release.report_cloudwatch import VersionSeries, version_series
from release.report_model import Phase, ReportInputError, Timeline, select, timeline
from release.stats import CONFIDENCE

# auto: CloudWatch when credentials and network allow, else a note in the page; on: fail
# without them; off: history only.
METRICS_MODES = ("auto", "on", "off")
# CloudWatch is read from a little before the first phase to a little after the last one.
METRICS_MARGIN = timedelta(minutes=10)
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Beyond this many phases the chart gets crowded; the page says how to narrow it.
CROWDED_PHASES = 60
OUTCOME_COLORS = {"succeeded": "#2ca02c", "rolled-back": "#ff7f0e", "failed": "#d62728",
                  "refused": "#7f7f7f", "paused": "#bcbd22", "interrupted": "#7f7f7f"}


@dataclass(frozen=True)
class ReportOptions:
    since: timedelta | None = None  # only phases newer than this
    last: int = 0  # only the newest N phases; 0: all
    metrics: str = "auto"  # one of METRICS_MODES
    png: bool = False  # also write the main chart as <out>.png

    def __post_init__(self) -> None:
        if self.metrics not in METRICS_MODES:
            raise ReportInputError(f"--metrics {self.metrics!r}: pass one of "
                                   f"{', '.join(METRICS_MODES)}")
        if self.since is not None and self.last:
            raise ReportInputError("pass --since or --last, not both")
        if self.last < 0:
            raise ReportInputError(f"--last {self.last}: pass a number of phases > 0 "
                                   "(or leave it out for all of them)")


@dataclass(frozen=True)
class WrittenReport:
    html: Path
    png: Path | None
    phases: int
    rollbacks: int
    metrics_note: str

    def summary_line(self, environment: str) -> str:
        files = str(self.html) + (f" and {self.png}" if self.png else "")
        return (f"report {environment}: {self.phases} phases, {self.rollbacks} rollbacks -> "
                f"{files}")

    def to_dict(self) -> dict[str, Any]:
        return {"html": str(self.html), "png": str(self.png) if self.png else None,
                "phases": self.phases, "rollbacks": self.rollbacks,
                "metrics_note": self.metrics_note}


def write_report(environment: EnvironmentConfig, out: Path, *, history: ReleaseHistory,
                 options: ReportOptions = ReportOptions(), now: datetime | None = None
                 ) -> WrittenReport:
    """Write the HTML (and with `options.png` the main chart beside it as <out>.png)."""
    now = now or datetime.now(UTC)
    records = select(history.read(environment.name), since=options.since, last=options.last,
                     now=now)
    phases = timeline(records)
    start, end = phases.start, phases.end
    if start is None or end is None:  # no phases
        window = " in the range asked for" if options.since or options.last else ""
        raise ReportInputError(f"no release phases of {environment.name} in {history.path}"
                               f"{window}: run a phase first, or pass --from-history")
    axis = TimeAxis.around([(phase.start, phase.end) for phase in phases.phases])
    colors = version_colors(phases.versions)
    main_chart = share_figure(phases, axis, colors)
    series, note = _cloudwatch(environment, phases.versions, start, end, options.metrics)
    charts = [(svg(main_chart, "share"), SHARE_CAPTION)]
    if series:
        thresholds = environment.alarms
        figure = metrics_figure(phases, axis, colors, series,
                                error_limit_percent=thresholds.canary_error_rate_percent,
                                p99_limit_ms=thresholds.p99_duration_ms)
        charts.append((svg(figure, "metrics"), note))
    picture = out.with_suffix(".png") if options.png else None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(_page(environment, phases, start, end, charts, note if not series else "",
                             history.path, now), encoding="utf-8")
        if picture:
            picture.write_bytes(png(main_chart))
    except OSError as error:
        raise ReportInputError(f"cannot write {error.filename or out}: {error.strerror}; pass "
                               "--out a path in a writable folder") from None
    return WrittenReport(html=out, png=picture, phases=len(phases.phases),
                         rollbacks=len(phases.events), metrics_note=note)


def _cloudwatch(environment: EnvironmentConfig, versions: Sequence[str], start: datetime,
                end: datetime, mode: str) -> tuple[dict[str, VersionSeries], str]:
    """The versions' CloudWatch series from the phases' `start` to their `end` (with a margin
    either side), and a note for the page."""
    if mode == "off":
        return {}, "CloudWatch metrics were not asked for (--metrics off)."
    query_start = (start - METRICS_MARGIN).replace(second=0, microsecond=0)
    query_end = end + METRICS_MARGIN
    try:
        aws.preflight_credentials(environment.region)
        series = version_series(aws.client("cloudwatch", environment.region),
                                environment.function_name, ALIAS_NAME, versions, query_start,
                                query_end)
    except aws.AwsError as error:
        if mode == "on":
            raise
        return {}, f"CloudWatch metrics are left out: {error}. The rest comes from the history."
    if not series:
        return {}, (f"CloudWatch has no invocations of {environment.function_name}:{ALIAS_NAME} "
                    f"between {query_start:%Y-%m-%d %H:%M} and {query_end:%Y-%m-%d %H:%M} UTC.")
    period = next(iter(series.values())).period_seconds
    return series, (f"Lambda metrics of {environment.function_name}:{ALIAS_NAME} per version "
                    f"(dimension ExecutedVersion), {period // 60}-minute periods; dotted red: "
                    "the alarm thresholds in environments.toml.")


# ---------------------------------------------------------------------------- the page

# The history does not record an interval's confidence level: the page names the level of the
# release tasks that make it (records written by an older version may use another).
SHARE_CAPTION = (
    "Dark line: the share of requests the alias sent to the candidate version, as each phase "
    "set it. Dots: the share the smoke check measured right after the phase's apply, with its "
    f"Wilson interval ({100 * CONFIDENCE:g} % confidence in this version of the release tasks); "
    "one colour per candidate version. Dashed lines: rollbacks. Shaded spans: bakes (green "
    "pass, red fail, dark yellow inconclusive). Hatched bands: idle time squeezed out of the "
    "axis.")

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #222; margin: 0 auto; max-width: 1280px; padding: 24px 32px; line-height: 1.4; }
h1 { font-size: 1.6em; margin: 0 0 4px; }
h2 { font-size: 1.2em; margin: 28px 0 8px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
.meta { color: #555; font-size: 0.92em; }
.tiles { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.tile { border: 1px solid #ddd; border-radius: 6px; padding: 8px 14px; min-width: 150px; }
.tile b { display: block; font-size: 1.25em; }
.tile span { color: #666; font-size: 0.85em; }
figure { margin: 8px 0 0; }
figure svg { width: 100%; height: auto; }
figcaption, .note { color: #555; font-size: 0.88em; margin-top: 4px; }
.note { background: #f6f6f6; border-left: 3px solid #bbb; padding: 6px 10px; }
table { border-collapse: collapse; width: 100%; font-size: 0.85em; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid #eee; vertical-align: top; }
th { background: #fafafa; position: sticky; top: 0; }
tr.more td { color: #666; font-size: 0.92em; padding-top: 0; border-bottom: 1px solid #ddd; }
tr.phase td { border-bottom: none; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.detail { color: #555; max-width: 380px; overflow-wrap: anywhere; }
.badge { color: #fff; border-radius: 3px; padding: 1px 6px; white-space: nowrap; }
.event { font-weight: 600; white-space: nowrap; }
footer { color: #888; font-size: 0.8em; margin-top: 32px; }
"""


def _escape(value: object) -> str:
    return html.escape(str(value), quote=True)


def _percent(share: float | None, digits: int = 1) -> str:
    return "" if share is None else f"{round(100 * share, digits):g} %"


def _time(moment: datetime) -> str:
    return moment.strftime(TIME_FORMAT)


def _versions(phase: Phase) -> str:
    if not phase.candidate:
        return ""
    if not phase.stable or phase.stable == phase.candidate:
        return f"v{phase.candidate}"
    return f"v{phase.candidate} (stable v{phase.stable})"


def _share_cell(phase: Phase) -> str:
    intended = _percent(phase.intended, 2)
    seen = phase.observed
    if seen is None:
        return _escape(intended)
    interval = (f" [{_percent(seen.low)}–{_percent(seen.high)}]"
                if seen.low is not None and seen.high is not None else "")
    return _escape(f"{intended} → {_percent(seen.share)}{interval}")


def _latency_cell(phase: Phase) -> str:
    if all(value is None for value in phase.latency_ms):
        return ""
    return " / ".join("–" if value is None else f"{value:.0f}" for value in phase.latency_ms)


def _badge(outcome: str) -> str:
    color = OUTCOME_COLORS.get(outcome, "#7f7f7f")
    return f'<span class="badge" style="background:{color}">{_escape(outcome)}</span>'


def _event_cell(phase: Phase) -> str:
    if phase.event is None:
        return ""
    return (f'<span class="event" style="color:{EVENT_COLORS[phase.event.kind]}">'
            f"{_escape(phase.event.label)}</span>")


def _bake_cell(phase: Phase) -> str:
    if phase.bake is None:
        return ""
    reasons = "; ".join(phase.bake.reasons)
    return f"<b>{_escape(phase.bake.status)}</b>" + (f": {_escape(reasons)}" if reasons else "")


def _tiles(phases: Timeline) -> str:
    candidates = list(dict.fromkeys(phase.candidate for phase in phases.phases if phase.candidate))
    kinds = Counter(event.label for event in phases.events)
    checks = [phase.observed for phase in phases.phases if phase.observed]
    failed_checks = sum(check.passed is False for check in checks)
    bakes = Counter(phase.bake.status for phase in phases.phases if phase.bake)
    latest = max(phases.phases, key=lambda phase: phase.end)
    tiles = [
        (str(len(phases.phases)), "phases"),
        (", ".join(f"v{version}" for version in candidates[-4:]) or "–",
         "candidate versions" + (f" (last 4 of {len(candidates)})" if len(candidates) > 4 else "")),
        (str(len(phases.events)),
         "rollbacks" + (": " + "; ".join(f"{count} {label}" for label, count in kinds.items())
                        if kinds else "")),
        (str(len(checks)), f"smoke checks, {failed_checks} failed"),
        (str(sum(bakes.values())),
         "bakes" + (": " + ", ".join(f"{count} {status}" for status, count in bakes.items())
                    if bakes else " recorded")),
        (latest.routing_after or "–", f"routing after the last phase ({_time(latest.end)})"),
    ]
    return "".join(f'<div class="tile"><b>{_escape(value)}</b><span>{_escape(label)}</span></div>'
                   for value, label in tiles)


def _events_table(phases: Timeline) -> str:
    rows = [phase for phase in phases.phases if phase.event or phase.bake]
    if not rows:
        return '<p class="note">No rollbacks and no bake verdicts in this range.</p>'
    body = "".join(
        f"<tr><td class=\"time\">{_time(phase.event.time if phase.event else phase.end)}</td>"
        f"<td>{_event_cell(phase) or 'bake'}</td><td>{_escape(_versions(phase))}</td>"
        f"<td>{_bake_cell(phase)}</td><td class=\"detail\">{_escape(phase.detail)}</td></tr>"
        for phase in rows)
    return ("<table><thead><tr><th>time (UTC)</th><th>event</th><th>versions</th>"
            f"<th>bake verdict</th><th>detail</th></tr></thead><tbody>{body}</tbody></table>")


PHASE_COLUMNS = ("#", "ended (UTC)", "took", "phase", "outcome", "versions", "routing after",
                 "candidate share: intended → observed [interval]", "smoke requests",
                 "latency p50 / p95 / p99 (ms)", "smoke errors")


def _phases_table(phases: Timeline) -> str:
    """One row per phase; who ran it, the rollback or bake and the detail go in a second row
    under it, so the numbers stay in narrow columns."""
    rows = []
    for phase in phases.phases:
        rows.append(
            f"<tr class=\"phase\"><td class=\"num\">{phase.number}</td>"
            f"<td class=\"time\">{_escape(_time(phase.end))}</td>"
            f"<td class=\"num\">{(phase.end - phase.start).total_seconds():.0f} s</td>"
            f"<td>{_escape(phase.phase)}</td><td>{_badge(phase.outcome)}</td>"
            f"<td>{_escape(_versions(phase))}</td><td>{_escape(phase.routing_after)}</td>"
            f"<td class=\"num\">{_share_cell(phase)}</td>"
            f"<td class=\"num\">{'' if phase.requests is None else phase.requests}</td>"
            f"<td class=\"num\">{_latency_cell(phase)}</td>"
            f"<td class=\"num\">{_escape(_percent(phase.error_rate, 2))}</td></tr>")
        notes = [f"by {_escape(phase.caller)}" if phase.caller else "", _event_cell(phase),
                 f"bake {_bake_cell(phase)}" if phase.bake else "", _escape(phase.detail)]
        rows.append(f"<tr class=\"more\"><td></td><td colspan=\"{len(PHASE_COLUMNS) - 1}\">"
                    f"{' · '.join(note for note in notes if note)}</td></tr>")
    head = "".join(f"<th>{_escape(column)}</th>" for column in PHASE_COLUMNS)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _page(environment: EnvironmentConfig, phases: Timeline, start: datetime, end: datetime,
          charts: Sequence[tuple[str, str]], metrics_note: str, source: Path,
          now: datetime) -> str:
    title = f"Release report: {environment.name}"
    figures = "".join(f"<figure>{chart}<figcaption>{_escape(caption)}</figcaption></figure>"
                      for chart, caption in charts)
    skipped = (f'<p class="note">{phases.skipped} history records without a readable time '
               "are left out.</p>" if phases.skipped else "")
    crowded = (f'<p class="note">{len(phases.phases)} phases make a crowded chart: narrow it '
               "with <code>--since 24h</code> or <code>--last 30</code>.</p>"
               if len(phases.phases) > CROWDED_PHASES else "")
    note = f'<p class="note">{_escape(metrics_note)}</p>' if metrics_note else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{_escape(title)}</h1>
<p class="meta">Function <b>{_escape(environment.function_name)}</b>, alias
<b>{ALIAS_NAME}</b>, region {_escape(environment.region)}: {len(phases.phases)} release phases
from {_escape(_time(start))} to {_escape(_time(end))} UTC, read from
<code>{_escape(source)}</code>. Made {_escape(_time(now))} UTC.</p>
<div class="tiles">{_tiles(phases)}</div>
<h2>Traffic split over time</h2>
{figures}{note}{skipped}{crowded}
<h2>Rollbacks and bakes</h2>
{_events_table(phases)}
<h2>Phases</h2>
{_phases_table(phases)}
<footer>Made by <code>invoke report</code> from the release history. Self-contained: no scripts,
no network access, charts drawn with matplotlib.</footer>
</body>
</html>
"""


@dataclass(frozen=True)
class ReportedRollout:
    """What `rollout --json --report` prints: the steps' reports and the report written after
    them (None when it could not be written)."""

    steps: Sequence[Any]  # release.runner.PhaseReport
    report: WrittenReport | None

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [step.to_dict() for step in self.steps],
                "report": self.report.to_dict() if self.report else None}
