"""What `invoke report` shows, read from release history records (see release/history.py).

The history outlives the code that wrote it, so records are read tolerantly: unknown keys are
ignored, and a missing or malformed value leaves its part of the report empty instead of failing.
Pure functions on the records; no I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from release.aws import Routing
from release.errors import ReleaseError

# `--since 90m`, `24h`, `7d`, `2w`.
SINCE_PATTERN = re.compile(r"([1-9][0-9]*)([mhdw])")
SINCE_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
               "w": timedelta(weeks=1)}
# How functions/rollback describes its rollback on the alias, which the runner copies into the
# history record: "rolled back by alarm <name> at <StateChangeTime>: <before> -> <after>".
ALARM_ROLLBACK_DETAIL = re.compile(r"rolled back by alarm .+? at (?P<time>\S+?):? ")
# The runner's callers: "user@host", or "alarm <name>" for a rollback the stack did by itself.
ALARM_CALLER_PREFIX = "alarm "
# What ended a phase on the stable version; each kind is drawn and listed as a labelled event.
EVENT_LABELS = {
    "alarm": "alarm rollback",
    "fast": "rollback --fast",
    "invoke": "invoke rollback",
    "check": "check failed: rolled back",
    "bake": "bake failed: rolled back",
}


class ReportInputError(ReleaseError):
    """A report argument that cannot be used; the message names the value and the fix."""


def parse_since(text: str) -> timedelta:
    """`24h` -> 24 hours; minutes (m), hours (h), days (d) or weeks (w)."""
    match = SINCE_PATTERN.fullmatch(text.strip())
    if not match:
        raise ReportInputError(f"--since {text!r} is not a duration: pass a whole number and a "
                               "unit, e.g. 90m, 24h, 7d or 2w")
    return int(match[1]) * SINCE_UNITS[match[2]]


def parse_time(value: Any) -> datetime | None:
    """An ISO 8601 time as an aware UTC datetime; None when it is not one."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def select(records: Sequence[Mapping[str, Any]], *, since: timedelta | None = None,
           last: int = 0, now: datetime | None = None) -> list[Mapping[str, Any]]:
    """The records newer than `since` (records without a readable time are dropped then), or
    the newest `last` ones, or all of them."""
    if since is not None:
        cutoff = (now or datetime.now(UTC)) - since
        records = [r for r in records if (t := parse_time(r.get("time"))) and t >= cutoff]
    return list(records[-last:] if last > 0 else records)


@dataclass(frozen=True)
class Observation:
    """The candidate's share in one smoke check, with its Wilson interval."""

    share: float
    low: float | None
    high: float | None
    passed: bool | None


@dataclass(frozen=True)
class Event:
    kind: str  # a key of EVENT_LABELS
    time: datetime

    @property
    def label(self) -> str:
        return EVENT_LABELS[self.kind]


@dataclass(frozen=True)
class Bake:
    status: str  # pass, fail, inconclusive, or the outcome when no verdict was recorded
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Phase:
    """One history record as the report shows it. Shares are the candidate version's share of
    traffic, from 0 to 1; None where the record does not say."""

    number: int  # position in the selected records, from 1
    start: datetime
    end: datetime
    phase: str
    outcome: str
    caller: str
    candidate: str
    stable: str
    before: float | None
    intended: float | None
    after: float | None
    routing_after: str
    observed: Observation | None
    requests: int | None
    latency_ms: tuple[float | None, float | None, float | None]
    error_rate: float | None
    event: Event | None
    bake: Bake | None
    detail: str


@dataclass(frozen=True)
class Timeline:
    phases: tuple[Phase, ...]
    skipped: int  # records without a readable time

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version the records name, in numeric order."""
        names = {version for phase in self.phases for version in (phase.candidate, phase.stable)
                 if version}
        return tuple(sorted(names, key=_version_key))

    @property
    def events(self) -> tuple[Event, ...]:
        return tuple(phase.event for phase in self.phases if phase.event)

    @property
    def start(self) -> datetime | None:
        return self.phases[0].start if self.phases else None

    @property
    def end(self) -> datetime | None:
        return max(phase.end for phase in self.phases) if self.phases else None

    def routing_steps(self) -> list[tuple[datetime, float]]:
        """The intended candidate share as a step line: vertices (time, share), with a vertical
        pair wherever it changes (a phase start, a rollback at the phase end, a new candidate)."""
        vertices: list[tuple[datetime, float]] = []
        current: float | None = None

        def move(time: datetime, share: float | None) -> None:
            nonlocal current
            if share is None or share == current:
                return
            if current is not None:
                vertices.append((time, current))
            vertices.append((time, share))
            current = share

        for phase in self.phases:
            move(phase.start, phase.before)
            move(phase.start, phase.intended if phase.intended is not None else phase.after)
            move(phase.end, phase.after)
        if vertices and self.end is not None:
            vertices.append((self.end, vertices[-1][1]))
        return vertices


def _version_key(version: str) -> tuple[int, int | str]:
    return (0, int(version)) if version.isdigit() else (1, version)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _share(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and 0 <= number <= 1 else None


def _routing(value: Any) -> Routing | None:
    if not isinstance(value, Mapping) or not value.get("primary_version"):
        return None
    weights = value.get("additional_version_weights") or {}
    try:
        return Routing(str(value["primary_version"]),
                       weights if isinstance(weights, Mapping) else {})
    except ReleaseError:  # a weight out of range, or more than one weighted version
        return None


def _candidate_share(routing: Routing | None, candidate: str) -> float | None:
    if routing is None or not candidate:
        return None
    if candidate in routing.additional_version_weights:
        return routing.additional_version_weights[candidate]
    return 1 - routing.canary_weight if routing.primary_version == candidate else 0.0


def _observation(smoke: Mapping[str, Any]) -> Observation | None:
    share = _share(smoke.get("candidate_share"))
    if share is None:
        return None
    interval = smoke.get("share_interval")
    low = high = None
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        low, high = _share(interval[0]), _share(interval[1])
    passed = smoke.get("passed")
    return Observation(share=share, low=low, high=high,
                       passed=passed if isinstance(passed, bool) else None)


def _count(smoke: Mapping[str, Any]) -> int | None:
    for key in ("completed", "requests"):
        value = smoke.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def _bake(record: Mapping[str, Any], repeats_smoke: bool) -> Bake | None:
    """The bake a record reports: its `verdict`, or else (the runner records a bake that fails
    or pauses as a second rollout-step record repeating its step's smoke result) its outcome,
    whose detail says why."""
    verdict = record.get("verdict")
    if isinstance(verdict, Mapping) and verdict.get("status"):
        reasons = verdict.get("reasons")
        return Bake(str(verdict["status"]),
                    tuple(map(str, reasons)) if isinstance(reasons, (list, tuple)) else ())
    if record.get("phase") == "rollout-step" and repeats_smoke:
        outcome = str(record.get("outcome", ""))
        status = {"rolled-back": "fail", "failed": "fail", "paused": "inconclusive"}.get(outcome,
                                                                                         outcome)
        return Bake(status, ())
    return None


def _event(record: Mapping[str, Any], end: datetime, routing_before: Routing | None,
           routing_after: Routing | None, previous: Mapping[str, Any] | None,
           bake: Bake | None) -> Event | None:
    if str(record.get("caller", "")).startswith(ALARM_CALLER_PREFIX):
        # The record is written when a release task first notices; the rollback itself happened
        # when the alarm fired, which the rollback function wrote into the description.
        match = ALARM_ROLLBACK_DETAIL.search(str(record.get("detail", "")))
        fired = parse_time(match["time"]) if match else None
        return Event("alarm", fired or end)
    if record.get("phase") == "rollback":
        # `rollback --fast` moves the alias with one API call before Terraform runs, so the
        # record's routing_before already is where the rollback goes, while the phase before
        # (unless it was an alarm's rollback, which moved it) left traffic elsewhere.
        left = _routing(previous.get("routing_after")) if previous else None
        fast = (previous is not None and left is not None and routing_before is not None
                and routing_before == routing_after and left != routing_before
                and not str(previous.get("caller", "")).startswith(ALARM_CALLER_PREFIX))
        return Event("fast" if fast else "invoke", end)
    if record.get("outcome") == "rolled-back":
        return Event("bake" if bake else "check", end)
    return None


def timeline(records: Sequence[Mapping[str, Any]]) -> Timeline:
    """The records (oldest first, one environment) as phases in time order."""
    phases = []
    previous: Mapping[str, Any] | None = None
    for number, record in enumerate(records, start=1):
        end = parse_time(record.get("time"))
        if end is None:
            continue
        smoke = record.get("smoke") if isinstance(record.get("smoke"), Mapping) else None
        repeats_smoke = smoke is not None and smoke == (previous or {}).get("smoke")
        candidate = str(record.get("candidate_version") or "")
        before = _routing(record.get("routing_before"))
        after = _routing(record.get("routing_after"))
        after_share = _candidate_share(after, candidate)
        intended = _share(smoke.get("expected_weight")) if smoke else None
        bake = _bake(record, repeats_smoke)
        event = _event(record, end, before, after, previous, bake)
        if event and event.kind == "alarm":
            start = end = event.time  # it takes no time; drawn where it happened
        else:
            seconds = _number(record.get("duration_seconds")) or 0.0
            start = end - timedelta(seconds=max(seconds, 0.0))
        phases.append(Phase(
            number=number, start=start, end=end,
            phase=str(record.get("phase", "")), outcome=str(record.get("outcome", "")),
            caller=str(record.get("caller", "")), candidate=candidate,
            stable=str(record.get("stable_version") or ""),
            before=_candidate_share(before, candidate),
            intended=intended if intended is not None else after_share, after=after_share,
            routing_after=after.describe() if after else "",
            # A repeated smoke result is its step's, already drawn with the step.
            observed=_observation(smoke) if smoke and not repeats_smoke else None,
            requests=_count(smoke) if smoke else None,
            latency_ms=(_number(smoke.get("latency_p50_ms")), _number(smoke.get("latency_p95_ms")),
                        _number(smoke.get("latency_p99_ms"))) if smoke else (None, None, None),
            error_rate=_number(smoke.get("error_rate")) if smoke else None,
            event=event, bake=bake, detail=str(record.get("detail", "")),
        ))
        previous = record
    return Timeline(tuple(sorted(phases, key=lambda phase: phase.start)),
                    skipped=len(records) - len(phases))
