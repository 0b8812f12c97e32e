"""Runs release phases: plan + apply through Terraform, wait for the live alias, check, and roll
back on its own when a check fails. Every phase ends in one history record and one summary line.

The caller (tasks.py) holds the environment's release lock and did the preflight checks; this
module does the work and raises `PhaseFailed` (carrying the report) when a phase does not end
where it was meant to.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

from release import aws
from release.aws import AwsError, LiveAlias, Routing, RoutingTimeout
from release.config import (
    NO_NEW_VERSION_MESSAGE,
    QUARANTINE_REFUSAL_PREFIX,
    EnvironmentConfig,
)
from release.history import PhaseRecord, ReleaseHistory
from release.lock import current_caller, utc_timestamp
from release.metrics import Verdict, judge_alarms, judge_canary
from release.phases import PhaseInputError, PhaseVariables, StackState, plan_variables
from release.smoke import SmokeResult, smoke_check
from release.terraform import Terraform, TerraformError
from release.tfc import TfcError

# Phases that move traffic towards the candidate: a failed check sends traffic back.
FORWARD_PHASES = ("canary", "promote", "rollout-step")
# How functions/rollback describes what it did on the alias (a contract with that function).
ALARM_ROLLBACK_PREFIX = "rolled back by alarm "
# An apply that failed, locally (Terraform CLI) or remotely (a Terraform Cloud run).
APPLY_ERRORS = (TerraformError, TfcError)


class Progress:
    """Where the runner reports what it is doing; the CLI draws it, tests ignore it."""

    def status(self, text: str) -> None:
        """A new step of the phase, e.g. 'applying canary_weight=0.1'."""

    def terraform_line(self, line: str) -> None:
        """One line of Terraform output, as it arrives."""

    def smoke_progress(self, done: int, total: int) -> None:
        """`done` of `total` smoke requests answered."""


@dataclass(frozen=True)
class RunnerOptions:
    smoke: bool = True
    smoke_requests: int | None = None  # None: sized from the weight (release.stats)
    smoke_concurrency: int = 16
    # The endpoint the smoke check calls; "" means the stack's api_url output. For a custom
    # domain, a private API reached through a tunnel, or a local stand-in.
    smoke_url: str = ""
    routing_timeout: float = 120.0
    routing_interval: float = 1.0
    # How often a bake looks at alarms and per-version metrics.
    bake_poll_seconds: float = 60.0


@dataclass(frozen=True)
class PhaseReport:
    environment: str
    phase: str
    outcome: str  # one of release.history.OUTCOMES
    detail: str
    variables: PhaseVariables | None
    routing_before: Routing | None
    routing_after: Routing | None
    candidate_version: str
    stable_version: str
    plan_summary: str = ""
    smoke: SmokeResult | None = None
    alarms: Mapping[str, str] | None = None
    verdict: Verdict | None = None
    duration_seconds: float = 0.0

    @property
    def succeeded(self) -> bool:
        return self.outcome == "succeeded"

    def summary_line(self) -> str:
        """One line per phase for humans."""
        after = self.routing_after.describe() if self.routing_after else "no alias"
        line = f"{self.phase} {self.environment}: {self.outcome} - {after}"
        if self.smoke is not None:
            line += f"; smoke {self.smoke.completed} requests, errors {self.smoke.error_rate:.1%}"
            if self.smoke.candidate_share is not None:
                line += f", candidate share {self.smoke.candidate_share:.1%}"
        line += f" ({self.duration_seconds:.1f} s)"
        if not self.succeeded:
            line += f": {self.detail}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "phase": self.phase,
            "outcome": self.outcome,
            "detail": self.detail,
            "variables": self.variables.as_terraform() if self.variables else None,
            "routing_before": self.routing_before.to_dict() if self.routing_before else None,
            "routing_after": self.routing_after.to_dict() if self.routing_after else None,
            "candidate_version": self.candidate_version,
            "stable_version": self.stable_version,
            "plan_summary": self.plan_summary,
            "smoke": self.smoke.to_dict() if self.smoke else None,
            "alarms": dict(self.alarms) if self.alarms is not None else None,
            "verdict": ({"status": self.verdict.status, "reasons": list(self.verdict.reasons)}
                        if self.verdict else None),
            "duration_seconds": round(self.duration_seconds, 3),
        }

    def record(self) -> PhaseRecord:
        return PhaseRecord(
            time=utc_timestamp(), environment=self.environment, caller=current_caller(),
            phase=self.phase,
            routing_before=self.routing_before.to_dict() if self.routing_before else {},
            routing_after=self.routing_after.to_dict() if self.routing_after else {},
            candidate_version=self.candidate_version, stable_version=self.stable_version,
            smoke=self.smoke.to_dict() if self.smoke else None,
            alarms=dict(self.alarms) if self.alarms is not None else None,
            outcome=self.outcome, detail=self.detail,
            duration_seconds=round(self.duration_seconds, 3),
        )


class PhaseFailed(Exception):
    """A phase that did not end where it was meant to; `report` says where traffic is."""

    def __init__(self, report: PhaseReport) -> None:
        super().__init__(report.summary_line())
        self.report = report
        # What the command had produced when it failed: this report, or for a rollout the
        # reports of the steps before it too.
        self.result: PhaseReport | list[PhaseReport] = report


@dataclass
class AwsClients:
    """boto3 clients for one region, made on first use (importing and building them costs time)."""

    region: str
    _clients: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws.client(service, self.region)
        return self._clients[service]


class ReleaseRunner:
    """`terraform` is a local `Terraform` or a `release.remote.RemoteTerraform`: anything with
    apply_variables(variables) / drift(variables) / outputs()."""

    def __init__(self, environment: EnvironmentConfig, terraform: Terraform, *,
                 clients: AwsClients | None = None, history: ReleaseHistory | None = None,
                 options: RunnerOptions = RunnerOptions(), progress: Progress = Progress(),
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.environment = environment
        self.terraform = terraform
        self.clients = clients or AwsClients(environment.region)
        self.history = history or ReleaseHistory()
        self.options = options
        self.progress = progress
        self.sleep = sleep
        self.clock = clock

    def with_options(self, **changes: Any) -> ReleaseRunner:
        """The same runner (stack, clients, history, progress) with other options."""
        return ReleaseRunner(self.environment, self.terraform, clients=self.clients,
                             history=self.history, options=replace(self.options, **changes),
                             progress=self.progress, sleep=self.sleep, clock=self.clock)

    def preflight_account(self) -> None:
        """The AWS account can take this environment's stack (see aws.preflight_account)."""
        environment = self.environment
        aws.preflight_account(self.clients["apigateway"], self.clients["lambda"],
                              environment_name=environment.name,
                              function_name=environment.function_name,
                              logging=environment.api.logging,
                              reserved_concurrency=environment.function.reserved_concurrency)

    # ------------------------------------------------------------------ reading the stack

    def stack_state(self) -> StackState:
        return StackState(self.terraform.outputs())

    def live_alias(self, state: StackState) -> LiveAlias | None:
        if not state.deployed:
            return None
        return aws.read_alias(self.clients["lambda"], state["function_name"], state["alias_name"])

    # ------------------------------------------------------------------ one phase

    def run(self, kind: str, weight: float | None = None, *, force: bool = False,
            extra_variables: Mapping[str, Any] | None = None) -> PhaseReport:
        """Apply one phase and check it; raises PhaseFailed (after rolling back) when it fails.

        After the auto-rollback function acted, only a rollback (which acknowledges it) or
        `force` may go on. `extra_variables` are applied too (a drill's fault_rate)."""
        started = self.clock()
        state = self.stack_state()
        live = self.live_alias(state)
        acknowledged = self._alarm_rollback(state, live, kind, force)
        variables = plan_variables(kind, state, live.routing if live else None, weight)
        base = PhaseReport(
            environment=self.environment.name, phase=kind, outcome="failed", detail="",
            variables=variables, routing_before=live.routing if live else None,
            routing_after=live.routing if live else None,
            candidate_version=state.candidate_version, stable_version=variables.stable_version)

        self.progress.status(f"{kind} {self.environment.name}: applying canary_weight="
                             f"{variables.canary_weight:g} stable_version="
                             f"{variables.stable_version or '(none)'}")
        try:
            summary = self.terraform.apply_variables(
                {**variables.as_terraform(), **(extra_variables or {})})
        except APPLY_ERRORS as error:
            detail = _refusal(error, variables)
            if detail:
                # One of the stack's preconditions stopped the plan: nothing was applied.
                raise self._failed(replace(base, outcome="refused", detail=detail),
                                   started) from None
            raise self._failed(self._after_failed_apply(base, live, error), started) from None
        except KeyboardInterrupt:
            # The runner lets Terraform finish its state write before this arrives.
            raise self._failed(self._interrupted(base, state), started) from None
        after = self.stack_state()
        base = replace(base, routing_after=after.routing, candidate_version=after.candidate_version,
                       plan_summary=str(summary))

        report = self._check(base, after)
        if acknowledged:
            report = replace(report, detail="; ".join(filter(None, [
                f"acknowledged: {acknowledged}", report.detail])))
        if report.outcome == "succeeded":
            return self._finished(report, started)
        if kind in FORWARD_PHASES and self._can_roll_back(variables, after):
            report = self._roll_back(report, variables.stable_version, after)
        raise self._failed(report, started)

    def _alarm_rollback(self, state: StackState, live: LiveAlias | None, kind: str,
                        force: bool) -> str:
        """What the auto-rollback function did to the alias since the last phase ("" if nothing).

        The first phase to see it records it in the history; only `invoke rollback` (or force)
        goes on from there, and its apply puts Terraform's description back on the alias.
        """
        if live is None or not live.description.startswith(ALARM_ROLLBACK_PREFIX):
            return ""
        alarm = live.description.removeprefix(ALARM_ROLLBACK_PREFIX).split(" at ")[0]
        if not any(record["detail"] == live.description and record["caller"] == f"alarm {alarm}"
                   for record in self.history.read(self.environment.name)):
            self.history.append(PhaseRecord(
                time=utc_timestamp(), environment=self.environment.name, caller=f"alarm {alarm}",
                phase="rollback", routing_before=state.routing.to_dict(),
                routing_after=live.routing.to_dict(), candidate_version=state.candidate_version,
                stable_version=live.routing.primary_version, smoke=None, alarms=None,
                outcome="rolled-back", detail=live.description, duration_seconds=0.0))
        if kind != "rollback" and not force:
            raise PhaseInputError(f"the alias was {live.description}; acknowledge it with "
                                  "`invoke rollback` (brings Terraform's state in line), or pass "
                                  "--force")
        return live.description

    def _check(self, report: PhaseReport, after: StackState) -> PhaseReport:
        """Wait for the live alias, then smoke-test and read the alarms."""
        expected = after.routing
        reasons: list[str] = []
        self.progress.status(f"waiting for the live alias to show {expected.describe()}")
        try:
            aws.wait_for_routing(self.clients["lambda"], after["function_name"], after["alias_name"],
                                 expected, timeout=self.options.routing_timeout,
                                 interval=self.options.routing_interval, sleep=self.sleep,
                                 clock=self.clock)
        except RoutingTimeout as error:
            return replace(report, outcome="failed", detail=str(error))
        smoke = None
        if self.options.smoke:
            smoke = self.smoke(after)
            reasons += smoke.reasons
        alarms = aws.alarm_states(self.clients["cloudwatch"], after["alarm_names"])
        alarm_verdict = judge_alarms(alarms)
        # A rollback is the answer to a firing alarm, which takes minutes to clear: its states
        # are recorded, but they judge only the phases that send traffic to the candidate.
        if alarm_verdict.status == "fail" and report.phase in FORWARD_PHASES:
            reasons += alarm_verdict.reasons
        return replace(report, smoke=smoke, alarms=alarms,
                       outcome="failed" if reasons else "succeeded", detail="; ".join(reasons))

    def smoke(self, state: StackState) -> SmokeResult:
        """The statistical smoke check against the stack's endpoint and intended split."""
        routing = state.routing
        stable = routing.primary_version if routing.primary_version != state.candidate_version else None
        url = self.options.smoke_url or state["api_url"]
        self.progress.status(f"smoke-testing {url}")
        return smoke_check(
            url, expected_weight=state.candidate_share,
            candidate_version=state.candidate_version, stable_version=stable,
            requests=self.options.smoke_requests, concurrency=self.options.smoke_concurrency,
            on_response=self.progress.smoke_progress)

    # ------------------------------------------------------------------ failure paths

    @staticmethod
    def _can_roll_back(variables: PhaseVariables, after: StackState) -> bool:
        return variables.stable_version not in ("", after.candidate_version)

    def _roll_back(self, report: PhaseReport, stable_version: str, after: StackState) -> PhaseReport:
        """Send all traffic back to `stable_version`: through Terraform, else one UpdateAlias."""
        target = Routing(stable_version)
        self.progress.status(f"check failed ({report.detail}); rolling back to {target.describe()}")
        try:
            self.terraform.apply_variables(PhaseVariables(0.0, stable_version).as_terraform())
            how = "rolled back through Terraform"
        except APPLY_ERRORS as error:
            live = aws.fast_rollback(self.clients["lambda"], after["function_name"],
                                     after["alias_name"], stable_version)
            how = (f"Terraform could not roll back ({error}); traffic restored with one "
                   "UpdateAlias call; run `invoke rollback` to bring Terraform's state in line")
            return replace(report, outcome="rolled-back", routing_after=live.routing,
                           detail=f"{report.detail}; {how}")
        live = aws.wait_for_routing(self.clients["lambda"], after["function_name"],
                                    after["alias_name"], target,
                                    timeout=self.options.routing_timeout,
                                    interval=self.options.routing_interval, sleep=self.sleep,
                                    clock=self.clock)
        return replace(report, outcome="rolled-back", routing_after=live.routing,
                       detail=f"{report.detail}; {how} to {target.describe()}")

    def _after_failed_apply(self, report: PhaseReport, before: LiveAlias | None,
                            error: Exception) -> PhaseReport:
        """Terraform keeps what a failed apply changed: put the live alias back if it moved.

        The report names what the live function and alias show, not Terraform's last outputs: a
        failed apply may already have published a new version."""
        detail = f"{error}"
        if before is None:
            return replace(report, detail=f"{detail}; nothing was serving traffic before")
        try:
            now = aws.read_alias(self.clients["lambda"], before.function_name, before.alias_name)
            published = aws.latest_published_version(self.clients["lambda"], before.function_name)
            report = replace(report, candidate_version=published or report.candidate_version)
            if now.routing == before.routing:
                return replace(report, routing_after=now.routing,
                               detail=f"{detail}; live alias unchanged at {now.routing.describe()}")
            restored = aws.set_routing(self.clients["lambda"], before.function_name,
                                       before.alias_name, before.routing,
                                       revision_id=now.revision_id)
        except AwsError as aws_error:
            return replace(report, detail=f"{detail}; could not check the live alias ({aws_error}): "
                                          "run `invoke status` before anything else")
        return replace(report, routing_after=restored.routing,
                       detail=(f"{detail}; live alias restored from {now.routing.describe()} to "
                               f"{restored.routing.describe()}; run `invoke rollback` or rerun "
                               "the phase to bring Terraform's state in line"))

    def _interrupted(self, report: PhaseReport, state: StackState) -> PhaseReport:
        after = self.stack_state()
        live = self.live_alias(after if after.deployed else state)
        where = live.routing.describe() if live else "nothing deployed"
        return replace(report, outcome="interrupted", routing_after=live.routing if live else None,
                       detail=f"stopped by Ctrl-C during the apply; traffic is at {where}: rerun "
                              "the phase or `invoke rollback`")

    # ------------------------------------------------------------------ endings

    def _finished(self, report: PhaseReport, started: float) -> PhaseReport:
        report = replace(report, duration_seconds=self.clock() - started)
        self.history.append(report.record())
        return report

    def _failed(self, report: PhaseReport, started: float) -> PhaseFailed:
        return PhaseFailed(self._finished(report, started))

    # ------------------------------------------------------------------ composite commands

    def fast_rollback(self) -> tuple[LiveAlias, float]:
        """One UpdateAlias to the stable version before Terraform runs; returns it and its time."""
        state = self.stack_state()
        live = self.live_alias(state)
        variables = plan_variables("rollback", state, live.routing if live else None)
        self.progress.status(f"fast rollback: UpdateAlias to v{variables.stable_version}")
        started = self.clock()
        updated = aws.fast_rollback(self.clients["lambda"], state["function_name"],
                                    state["alias_name"], variables.stable_version,
                                    revision_id=live.revision_id)
        elapsed = self.clock() - started
        self._quarantine(state, live, variables.stable_version)
        return updated, elapsed

    def _quarantined(self, state: StackState) -> dict[str, aws.QuarantineEntry]:
        parameter = state.outputs.get("quarantine_parameter")
        return aws.read_quarantine(self.clients["ssm"], parameter) if parameter else {}

    def _quarantine(self, state: StackState, live: LiveAlias, stable_version: str) -> None:
        """Record the versions `rollback --fast` took traffic from, so that no later plan (a VCS
        run, `cdktf deploy`) gives them traffic again without `invoke release-quarantine`."""
        parameter = state.outputs.get("quarantine_parameter")
        taken_from = [version for version in (live.routing.primary_version,
                                              *live.routing.additional_version_weights)
                      if version != stable_version]
        if not parameter or not taken_from:
            return
        try:
            aws.quarantine_versions(self.clients["ssm"], parameter, taken_from,
                                    f"invoke rollback --fast by {current_caller()}",
                                    utc_timestamp())
        except aws.AwsError as error:
            raise aws.AwsError(f"traffic is back on v{stable_version}, but recording "
                               f"{', '.join('v' + v for v in taken_from)} in the quarantine "
                               f"failed: {error}") from None

    def rollout(self, steps: tuple[float, ...], bake_seconds: float, *, force: bool = False,
                on_step: Callable[[PhaseReport], None] | None = None) -> list[PhaseReport]:
        """Each step: apply, check, then bake while judging alarms and per-version metrics."""
        reports: list[PhaseReport] = []
        # Every rollout walks all its steps, even after a paused one: the first apply may publish
        # newer code than the canary that was running, and that code starts at the first step.
        try:
            for step in steps:
                kind = "promote" if step >= 1 else "rollout-step"
                report = self.run(kind, step, force=force)
                if kind == "rollout-step" and bake_seconds > 0:
                    report = self.bake(report, bake_seconds)
                reports.append(report)
                if on_step:
                    on_step(report)
        except PhaseFailed as failure:
            failure.result = [*reports, failure.report]
            raise
        return reports

    def bake(self, report: PhaseReport, bake_seconds: float) -> PhaseReport:
        """Watch the canary for `bake_seconds`; roll back on a failing verdict, pause when the
        canary saw too little traffic to judge, stop cleanly (traffic unchanged) on Ctrl-C."""
        started = self.clock()
        state = self.stack_state()
        window_start = datetime.now(timezone.utc)
        # From here, not from `started`: reading the state may take longer than a short bake, and
        # a bake of N seconds judges at least N seconds of metrics.
        deadline = self.clock() + bake_seconds
        try:
            # Judged after every poll and always once at (or after) the end of the window, however
            # slow the machine: a bake never passes without a verdict.
            while True:
                remaining = deadline - self.clock()
                if remaining > 0:
                    self.progress.status(f"baking {state.routing.describe()}: {remaining:.0f} s left")
                    self.sleep(min(self.options.bake_poll_seconds, remaining))
                alarms, verdict = self._analyse(state, window_start)
                if verdict.status == "fail":
                    failed = replace(report, phase="rollout-step", alarms=alarms, verdict=verdict,
                                     outcome="failed", detail="; ".join(verdict.reasons))
                    raise self._failed(self._roll_back(failed, state.routing.primary_version, state),
                                       started)
                if self.clock() >= deadline:
                    break
        except KeyboardInterrupt:
            live = self.live_alias(state)
            interrupted = replace(report, outcome="interrupted", routing_after=live.routing,
                                  detail=f"stopped by Ctrl-C during the bake; traffic stays at "
                                         f"{live.routing.describe()}")
            raise self._failed(interrupted, started) from None
        if verdict.status == "inconclusive":
            paused = replace(report, outcome="paused", alarms=alarms, verdict=verdict,
                             detail=(f"{'; '.join(verdict.reasons)}; traffic stays at "
                                     f"{state.routing.describe()}: rerun `invoke rollout` (it "
                                     "starts from its first step) or `invoke rollback`"))
            raise self._failed(paused, started)
        return replace(report, alarms=alarms, verdict=verdict)

    def _analyse(self, state: StackState, window_start: datetime) -> tuple[dict[str, str], Verdict]:
        cloudwatch = self.clients["cloudwatch"]
        alarms = aws.alarm_states(cloudwatch, state["alarm_names"])
        alarm_verdict = judge_alarms(alarms)
        if alarm_verdict.status == "fail":
            return alarms, alarm_verdict
        # Whole minutes (Lambda's metric period) covering the bake so far.
        start = window_start.replace(second=0, microsecond=0)
        end = datetime.now(timezone.utc).replace(second=0, microsecond=0) + timedelta(minutes=1)
        metrics = {version: aws.version_metrics(cloudwatch, state["function_name"],
                                                state["alias_name"], version, start, end)
                   for version in (state.candidate_version, state.routing.primary_version)}
        return alarms, judge_canary(metrics[state.candidate_version],
                                    metrics[state.routing.primary_version],
                                    self.environment.alarms)

    def status(self) -> dict[str, Any]:
        """Live routing, Terraform's view, drift, alarms, endpoint and the last phase."""
        state = self.stack_state()
        if not state.deployed:
            return {"environment": self.environment.name, "deployed": False,
                    "last_phase": self.history.last(self.environment.name)}
        live = self.live_alias(state)
        # Terraform's own view: anything in the stack changed outside it, not only the alias.
        last_applied = PhaseVariables(float(state["canary_weight"]), state.stable_version)
        plan_refused = None
        try:
            terraform_drift = self.terraform.drift(last_applied.as_terraform())
        except APPLY_ERRORS as error:
            # E.g. after an alarm rollback the last phase's variables give a quarantined version
            # traffic: the stack refuses that plan, which is worth showing, not failing on.
            plan_refused = _refusal(error, last_applied)
            if plan_refused is None:
                raise
            terraform_drift = None
        return {
            "environment": self.environment.name,
            "deployed": True,
            "endpoint": state["api_url"],
            "function_name": state["function_name"],
            "candidate_version": state.candidate_version,
            "stable_version": state.stable_version,
            "terraform_routing": state.routing.to_dict(),
            "live_routing": live.routing.to_dict(),
            "live_routing_text": live.routing.describe(),
            # Versions a rollback took traffic from: no plan gives them traffic until lifted.
            "quarantined": {version: {"reason": entry.reason, "at": entry.at}
                            for version, entry in self._quarantined(state).items()},
            "drift": live.routing != state.routing or bool(terraform_drift),
            # Resource addresses a plan with the last applied variables would change (None: not
            # checked, e.g. --remote).
            "terraform_drift": terraform_drift,
            # Why the stack refuses a plan with the last applied variables (None: it does not).
            "plan_refused": plan_refused,
            "rolled_back_by_alarm": (live.description
                                     if live.description.startswith(ALARM_ROLLBACK_PREFIX) else None),
            "alarms": aws.alarm_states(self.clients["cloudwatch"], state["alarm_names"]),
            "last_phase": self.history.last(self.environment.name),
        }


def _refusal(error: Exception, variables: PhaseVariables) -> str | None:
    """Why one of the stack's alias preconditions refused the plan; None for other failures."""
    lines = getattr(error, "stderr_tail", ())
    text = " ".join(" ".join([str(error), *lines]).split())
    if NO_NEW_VERSION_MESSAGE in text:
        return (f"no new version to send traffic to: v{variables.stable_version} already is the "
                "candidate; merge and deploy new code first")
    quarantined = re.search(re.escape(QUARANTINE_REFUSAL_PREFIX) + r".*?--version [0-9,]+\.", text)
    if quarantined:
        return quarantined.group(0)
    return None
