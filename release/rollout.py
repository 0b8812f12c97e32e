"""`invoke rollout`: one phase per traffic step, with a bake after each step below 100 % that
judges alarms and per-version metrics, and rolls back when they fail.

Every rollout walks all its steps, even after a paused one: the first apply may publish newer
code than the canary that was running, and that code starts at the first step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from release import aws
from release.context import ReleaseContext
from release.errors import ReleaseError
from release.flags import whole_number
from release.kinds import Outcome, Phase
from release.metrics import Verdict, judge_alarms, judge_canary
from release.outputs import StackOutputs
from release.runner import (
    PhaseFailed,
    PhaseReport,
    failed,
    read_deployed_stack,
    return_to_stable,
    run_phase,
)

if TYPE_CHECKING:  # release.report loads matplotlib: only `rollout --report` pays for it
    from release.report import ReportedRollout, WrittenReport

# The longest bake, like rollout.bake_seconds in environments.toml: a day.
MAX_BAKE_SECONDS = 86400


def parse_bake(value: object, preset: int) -> int:
    """`--bake` seconds: -1 for the environment's preset, else a whole number up to a day."""
    if str(value).strip() == "-1":
        return preset
    return whole_number(value, "--bake", maximum=MAX_BAKE_SECONDS)


def run_rollout(context: ReleaseContext, steps: tuple[float, ...], bake_seconds: float, *,
                force: bool = False,
                on_step: Callable[[PhaseReport], None] | None = None) -> list[PhaseReport]:
    """Each step: apply, check, then bake while judging alarms and per-version metrics."""
    reports: list[PhaseReport] = []
    try:
        for step in steps:
            kind = Phase.PROMOTE if step >= 1 else Phase.ROLLOUT_STEP
            report = run_phase(context, kind, step, force=force)
            if kind == Phase.ROLLOUT_STEP and bake_seconds > 0:
                report = bake(context, report, bake_seconds)
            reports.append(report)
            if on_step:
                on_step(report)
    except PhaseFailed as failure:
        failure.steps = [*reports, failure.report]
        failure.result = failure.steps
        raise
    return reports


def run_reported_rollout(context: ReleaseContext, steps: tuple[float, ...], bake_seconds: float,
                         out: Path, *, force: bool = False,
                         on_step: Callable[[PhaseReport], None] | None = None,
                         on_written: Callable[[WrittenReport], None] | None = None,
                         ) -> ReportedRollout:
    """`rollout --report`: the rollout, then the environment's `invoke report` at `out`, a
    failed rollout's too (its PhaseFailed then carries the report, for --json)."""
    try:
        reports = run_rollout(context, steps, bake_seconds, force=force, on_step=on_step)
    except PhaseFailed as failure:
        failure.result = _report(context, out, failure.steps, on_written)
        raise
    return _report(context, out, reports, on_written)


def _report(context: ReleaseContext, out: Path, steps: list[PhaseReport],
            on_written: Callable[[WrittenReport], None] | None) -> ReportedRollout:
    """The report after a rollout. One that cannot be written is a note: the rollout's own
    outcome decides the exit code."""
    from release.report import ReportedRollout, write_report

    try:
        written = write_report(context.environment, out, history=context.history)
    except ReleaseError as error:
        context.progress.note(f"rollout {context.environment.name}: no report written: {error}")
        return ReportedRollout(steps, None)
    if on_written:
        on_written(written)
    return ReportedRollout(steps, written)


def bake(context: ReleaseContext, report: PhaseReport, bake_seconds: float) -> PhaseReport:
    """Watch the canary for `bake_seconds`; roll back on a failing verdict, pause when the
    canary saw too little traffic to judge, stop cleanly (traffic unchanged) on Ctrl-C."""
    started = context.clock()
    stack = read_deployed_stack(context)
    window_start = datetime.now(UTC)
    # From here, not from `started`: reading the stack may take longer than a short bake, and
    # a bake of N seconds judges at least N seconds of metrics.
    deadline = context.clock() + bake_seconds
    try:
        # Judged after every poll and always once at (or after) the end of the window, however
        # slow the machine: a bake never passes without a verdict.
        while True:
            remaining = deadline - context.clock()
            if remaining > 0:
                context.progress.status(f"baking {stack.routing.describe()}: "
                                        f"{remaining:.0f} s left")
                context.sleep(min(context.options.bake_poll_seconds, remaining))
            alarms, verdict = _analyse(context, stack, window_start)
            if verdict.status == "fail":
                judged = replace(report, phase=Phase.ROLLOUT_STEP, alarms=alarms,
                                 verdict=verdict, outcome=Outcome.FAILED,
                                 detail="; ".join(verdict.reasons))
                raise failed(context, return_to_stable(
                    context, judged, stack.routing.primary_version, stack), started)
            if context.clock() >= deadline:
                break
    except KeyboardInterrupt:
        live = context.live_alias(stack)
        interrupted = replace(report, outcome=Outcome.INTERRUPTED, routing_after=live.routing,
                              detail=f"stopped by Ctrl-C during the bake; traffic stays at "
                                     f"{live.routing.describe()}")
        raise failed(context, interrupted, started) from None
    if verdict.status == "inconclusive":
        paused = replace(report, outcome=Outcome.PAUSED, alarms=alarms, verdict=verdict,
                         detail=(f"{'; '.join(verdict.reasons)}; traffic stays at "
                                 f"{stack.routing.describe()}: rerun `invoke rollout` (it "
                                 "starts from its first step) or `invoke rollback`"))
        raise failed(context, paused, started)
    return replace(report, alarms=alarms, verdict=verdict)


def _analyse(context: ReleaseContext, stack: StackOutputs,
             window_start: datetime) -> tuple[dict[str, str], Verdict]:
    cloudwatch = context.clients["cloudwatch"]
    alarms = aws.alarm_states(cloudwatch, stack.alarm_names)
    alarm_verdict = judge_alarms(alarms)
    if alarm_verdict.status == "fail":
        return alarms, alarm_verdict
    # Whole minutes (Lambda's metric period) covering the bake so far.
    start = window_start.replace(second=0, microsecond=0)
    end = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    candidate, stable = stack.candidate_version, stack.routing.primary_version
    metrics = {version: aws.version_metrics(cloudwatch, stack.function_name, stack.alias_name,
                                            version, start, end)
               for version in (candidate, stable)}
    return alarms, judge_canary(metrics[candidate], metrics[stable], context.environment.alarms)
