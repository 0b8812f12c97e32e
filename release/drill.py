"""Rollback drills: prove that the stack rolls a bad canary back by itself, with timings.

A drill ships the next version with injected failures (the stack's `fault_rate` variable, which
the demo function reads as FAULT_RATE), starts a canary of it, and drives traffic while it
watches the alarms and the alias. The auto-rollback function, not this process, must take the
canary off. The drill then reports how long the alarm took, when traffic was back on the stable
version, and whether the stable version failed any request, and brings Terraform's state back
in line (`rollback`, which also ships the next version without faults).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from release import aws
from release.context import ReleaseContext
from release.errors import ReleaseError
from release.history import PhaseRecord
from release.kinds import Outcome, Phase
from release.lock import current_caller, utc_timestamp
from release.outputs import StackOutputs
from release.runner import read_deployed_stack, run_phase
from release.smoke import probe
from release.weights import check_weight


class DrillError(ReleaseError):
    """A drill that cannot start; one line naming the value and the fix."""


@dataclass(frozen=True)
class DrillOptions:
    fault_rate: float = 0.5
    weight: float = 0.25
    # CloudWatch needs minutes: the alarms evaluate 60 s periods, several of them.
    timeout_seconds: float = 900.0
    concurrency: int = 4
    request_interval: float = 0.2
    alarm_poll_seconds: float = 5.0
    alias_poll_seconds: float = 1.0
    # Traffic after the rollback, to show the stable version serving cleanly. Requests in the
    # first `grace_seconds` may still reach the canary: an alias change takes seconds to settle.
    settle_seconds: float = 15.0
    grace_seconds: float = 5.0

    def __post_init__(self) -> None:
        check_weight(self.fault_rate, "--fault-rate", zero=False)
        check_weight(self.weight, "--weight", zero=False, one=False)


@dataclass(frozen=True)
class DrillReport:
    environment: str
    fault_rate: float
    weight: float
    candidate_version: str
    stable_version: str
    requests: int
    failed_requests: int
    # Failed requests later than grace_seconds after the alias was back on the stable version.
    failed_after_restore: int
    # CloudWatch `Errors` of the stable version (ExecutedVersion) during the drill.
    stable_errors: int | None
    alarm: str | None
    seconds_to_alarm: float | None
    seconds_to_restore: float | None
    outcome: Outcome
    detail: str
    versions_served: dict[str, int] = field(default_factory=dict)

    def summary_line(self) -> str:
        def seconds(value: float | None) -> str:
            return "never" if value is None else f"{value:.1f} s"
        stable_errors = "unknown" if self.stable_errors is None else str(self.stable_errors)
        alarm = f" ({self.alarm})" if self.alarm else ""
        line = (f"drill {self.environment}: {self.outcome} - v{self.candidate_version} at "
                f"{self.weight:.0%} failing {self.fault_rate:.0%}; first alarm "
                f"{seconds(self.seconds_to_alarm)}{alarm}, traffic back on v{self.stable_version} "
                f"{seconds(self.seconds_to_restore)}; {self.failed_requests}/{self.requests} "
                f"requests failed, {self.failed_after_restore} after the rollback; stable version "
                f"errors {stable_errors}")
        return line if self.outcome == Outcome.SUCCEEDED else f"{line}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


@dataclass
class _Watch:
    """What the drill has seen so far."""

    started: float  # clock(), for the loop
    started_at: datetime  # wall time, to place CloudWatch's alarm timestamps
    requests: int = 0
    failed: int = 0
    failed_after_restore: int = 0
    versions: Counter = field(default_factory=Counter)
    alarm: str | None = None
    seconds_to_alarm: float | None = None
    seconds_to_restore: float | None = None


def run_drill(context: ReleaseContext, options: DrillOptions, *,
              sleep: Callable[[float], None] = time.sleep,
              clock: Callable[[], float] = time.monotonic) -> DrillReport:
    environment = context.environment
    if not environment.auto_rollback:
        raise DrillError(f"environment {environment.name} has auto_rollback = false: there is "
                         "nothing to drill; turn it on in environments.toml and deploy first")
    before = context.read_stack()
    live = context.live_alias(before) if before else None
    if live is None or live.routing.additional_version_weights:
        raise DrillError(f"environment {environment.name} is "
                         + ("not deployed: run `invoke deploy` first" if live is None else
                            f"running a canary ({live.routing.describe()}): finish it with "
                            "promote or rollback first"))
    window_start = datetime.now(UTC)
    # The canary is meant to fail: the phase must not smoke-test it and roll it back itself.
    canary = run_phase(context.with_options(smoke=False), Phase.CANARY, options.weight,
                       extra_variables={"fault_rate": options.fault_rate})
    stack = read_deployed_stack(context)
    stable = stack.routing.primary_version
    watch = _Watch(started=clock(), started_at=datetime.now(UTC))
    context.progress.status(f"drill: v{stack.candidate_version} at {options.weight:.0%} failing "
                            f"{options.fault_rate:.0%}; waiting for the alarm and the rollback")
    with httpx.Client() as http, ThreadPoolExecutor(max_workers=options.concurrency) as pool:
        _drive(context, stack, options, watch, http, pool, sleep, clock)

    window_end = datetime.now(UTC) + timedelta(minutes=1)
    stable_errors = aws.version_metrics(context.clients["cloudwatch"], stack.function_name,
                                        stack.alias_name, stable,
                                        window_start.replace(second=0, microsecond=0),
                                        window_end.replace(second=0, microsecond=0)).errors
    problems = []
    if watch.seconds_to_restore is None:
        problems.append(f"the auto-rollback did not take the canary off within "
                        f"{options.timeout_seconds:g} s")
    if watch.failed_after_restore:
        problems.append(f"{watch.failed_after_restore} requests failed after the rollback")
    if stable_errors:
        problems.append(f"the stable version v{stable} had {stable_errors} errors")
    # Terraform's state still says canary (with faults): put it back on the stable version.
    # This also acknowledges the alarm rollback and ships the next version without faults.
    run_phase(context, Phase.ROLLBACK)
    report = DrillReport(
        environment=environment.name, fault_rate=options.fault_rate, weight=options.weight,
        candidate_version=canary.candidate_version, stable_version=stable,
        requests=watch.requests, failed_requests=watch.failed,
        failed_after_restore=watch.failed_after_restore, stable_errors=stable_errors,
        alarm=watch.alarm, seconds_to_alarm=watch.seconds_to_alarm,
        seconds_to_restore=watch.seconds_to_restore,
        outcome=Outcome.FAILED if problems else Outcome.SUCCEEDED,
        detail="; ".join(problems) or "rolled back by the stack itself",
        versions_served=dict(watch.versions))
    context.history.append(PhaseRecord(
        time=utc_timestamp(), environment=environment.name, caller=current_caller(),
        phase=Phase.DRILL,
        routing_before=canary.routing_before.to_dict() if canary.routing_before else {},
        routing_after=stack.routing.to_dict(), candidate_version=canary.candidate_version,
        stable_version=stable, smoke=None, alarms=None, outcome=report.outcome,
        detail=report.summary_line(), duration_seconds=round(clock() - watch.started, 3)))
    return report


def _drive(context: ReleaseContext, stack: StackOutputs, options: DrillOptions, watch: _Watch,
           http: httpx.Client, pool: ThreadPoolExecutor, sleep: Callable[[float], None],
           clock: Callable[[], float]) -> None:
    """Send traffic until the alias is back on stable and has settled, or the drill times out."""
    lambda_client, cloudwatch = context.clients["lambda"], context.clients["cloudwatch"]
    next_alarm_poll = next_alias_poll = watch.started
    while True:
        now = clock()
        elapsed = now - watch.started
        if watch.seconds_to_restore is not None:
            if elapsed - watch.seconds_to_restore >= options.settle_seconds:
                return
        elif elapsed >= options.timeout_seconds:
            return
        for result in pool.map(lambda _: probe(http, stack.api_url, 10.0),
                               range(options.concurrency)):
            watch.requests += 1
            if result.error:
                watch.failed += 1
                restored = watch.seconds_to_restore
                if restored is not None and elapsed - restored > options.grace_seconds:
                    watch.failed_after_restore += 1
            else:
                watch.versions[result.version] += 1
        # Once traffic is back, the alarm has fired: look at once rather than at the next poll.
        if watch.alarm is None and (now >= next_alarm_poll or watch.seconds_to_restore is not None):
            first = aws.first_alarm_since(cloudwatch, stack.alarm_names, watch.started_at)
            if first:
                watch.alarm = first[0]
                watch.seconds_to_alarm = (first[1] - watch.started_at).total_seconds()
            next_alarm_poll = now + options.alarm_poll_seconds
        if watch.seconds_to_restore is None and now >= next_alias_poll:
            live = aws.read_alias(lambda_client, stack.function_name, stack.alias_name)
            if not live.routing.additional_version_weights:
                watch.seconds_to_restore = clock() - watch.started
                context.progress.status(f"drill: traffic back on {live.routing.describe()}; "
                                       f"checking it for {options.settle_seconds:g} s")
            next_alias_poll = now + options.alias_poll_seconds
        sleep(options.request_interval)
