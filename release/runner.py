"""One release phase: apply it, wait for the live alias, check it (smoke test and alarms), and
roll back on its own when a check fails. Every phase ends in one history record and one summary
line; a phase that does not end where it was meant to raises `PhaseFailed`, carrying its report.

The commands shaped like a phase are here too: `rollback` (with --fast, one UpdateAlias first)
and `destroy`. The caller holds the environment's release lock and did the preflight checks
(release/session.py); a rollout, phases with bakes between them, is release/rollout.py.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from release import aws, gate
from release.aws import AwsError, LiveAlias, Routing, RoutingTimeout
from release.config import (
    ALIAS_NAME,
    NO_NEW_VERSION_MESSAGE,
    PROMOTION_OVERRIDE_VARIABLE,
    PROMOTION_REFUSAL_PREFIX,
    QUARANTINE_REFUSAL_PREFIX,
)
from release.context import AwsClients, ReleaseContext
from release.errors import ReleaseError
from release.history import PhaseRecord
from release.kinds import FORWARD_PHASES, Outcome, Phase
from release.lock import current_caller, utc_timestamp
from release.metrics import Verdict, judge_alarms
from release.outputs import MissingOutputError, StackOutputs
from release.phases import PhaseInputError, PhaseVariables, plan_variables
from release.released_config import config_pins, expected_config_versions
from release.smoke import SmokeResult, smoke_check

if TYPE_CHECKING:  # release.report loads matplotlib: only `rollout --report` pays for it
    from release.report import ReportedRollout

# How functions/rollback describes what it did on the alias (a contract with that function).
ALARM_ROLLBACK_PREFIX = "rolled back by alarm "


@dataclass(frozen=True)
class PhaseReport:
    environment: str
    phase: Phase
    outcome: Outcome
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
    # The promotion gate's decision, approver or skip reason (None: no gate for this phase).
    gate: Mapping[str, Any] | None = None
    # The config pins of the phase's versions (release.released_config.config_pins), read when
    # the phase ends (None until then).
    config: Mapping[str, Any] | None = None

    @property
    def succeeded(self) -> bool:
        return self.outcome == Outcome.SUCCEEDED

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
            "gate": dict(self.gate) if self.gate is not None else None,
            "config": dict(self.config) if self.config is not None else None,
        }

    def versions(self) -> list[str]:
        """The versions the phase is about: candidate, stable, and those served after it."""
        served = ([self.routing_after.primary_version,
                   *self.routing_after.additional_version_weights] if self.routing_after else [])
        return [self.candidate_version, self.stable_version, *served]

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
            gate=dict(self.gate) if self.gate is not None else None,
            config=dict(self.config) if self.config is not None else None,
        )


class PhaseFailed(ReleaseError):
    """A phase that did not end where it was meant to; `report` says where traffic is."""

    def __init__(self, report: PhaseReport) -> None:
        super().__init__(report.summary_line())
        self.report = report
        # The reports of the command's phases so far, this one last (a rollout has several).
        self.steps: list[PhaseReport] = [report]
        # What --json prints: this report, a rollout's steps, or those and the report written
        # after them.
        self.result: PhaseReport | list[PhaseReport] | ReportedRollout = report


# ---------------------------------------------------------------------- one phase

def run_phase(context: ReleaseContext, kind: Phase, weight: float | None = None, *,
              force: bool = False,
              extra_variables: Mapping[str, str | float] | None = None) -> PhaseReport:
    """Apply one phase and check it; raises PhaseFailed (after rolling back) when it fails.

    After the auto-rollback function acted, only a rollback (which acknowledges it) or `force`
    may go on. `extra_variables` are applied too (a drill's fault_rate)."""
    started = context.clock()
    stack, live = _before(context, kind)
    acknowledged = _alarm_rollback(context, stack, live, kind, force)
    variables = plan_variables(kind, stack, live.routing if live else None, weight)
    base = PhaseReport(
        environment=context.environment.name, phase=kind, outcome=Outcome.FAILED, detail="",
        variables=variables, routing_before=live.routing if live else None,
        routing_after=live.routing if live else None,
        candidate_version=stack.candidate_version if stack else "",
        stable_version=variables.stable_version)
    if kind in FORWARD_PHASES and stack is not None and live is not None:
        base = _promotion_gate(context, base, stack, live)
        if base.outcome == Outcome.REFUSED:
            raise failed(context, base, started)
    extra_variables = {**gate_variables(context), **(extra_variables or {})}

    context.progress.status(f"{kind} {context.environment.name}: applying canary_weight="
                            f"{variables.canary_weight:g} stable_version="
                            f"{variables.stable_version or '(none)'}")
    try:
        summary = context.applier.apply_variables({**variables.as_terraform(), **extra_variables})
    except ReleaseError as error:  # the apply failed, locally or in the workspace's run
        detail = refusal(error, variables)
        if detail:
            # One of the stack's preconditions stopped the plan: nothing was applied.
            raise failed(context, replace(base, outcome=Outcome.REFUSED, detail=detail),
                         started) from None
        raise failed(context, _after_failed_apply(context, base, live, error), started) from None
    except KeyboardInterrupt:
        # Terraform.apply_variables lets Terraform finish its state write before this arrives.
        raise failed(context, _interrupted(context, base, stack), started) from None
    after = read_deployed_stack(context)
    base = replace(base, routing_after=after.routing, candidate_version=after.candidate_version,
                   plan_summary=str(summary))

    report = _check(context, base, after)
    if acknowledged:
        report = replace(report, detail="; ".join(filter(None, [
            f"acknowledged: {acknowledged}", report.detail])))
    if report.succeeded:
        return finish(context, report, started)
    if kind in FORWARD_PHASES and variables.stable_version not in ("", after.candidate_version):
        report = return_to_stable(context, report, variables.stable_version, after)
    raise failed(context, report, started)


def _promotion_gate(context: ReleaseContext, report: PhaseReport, stack: StackOutputs,
                    live: LiveAlias) -> PhaseReport:
    """The report with the promotion gate's record; outcome REFUSED when the gate refuses.

    Nothing to check without a gate, or once the candidate serves everything already (a rerun
    of a promote): it has had its traffic."""
    settings, upstream = context.environment.promotion, context.upstream
    serves_candidate = live.routing.primary_version == stack.candidate_version
    if settings is None or upstream is None or serves_candidate:
        return report
    options = context.options
    record: dict[str, Any] = {"after": upstream.name, "approved_by": options.approved_by or None,
                              "skipped": options.skip_gate or None}
    if settings.approval == "required" and not options.approved_by:
        return replace(report, outcome=Outcome.REFUSED, gate=record,
                       detail=f"{context.environment.name} requires a named approval: pass "
                              "--approved-by NAME")
    if options.skip_gate:
        context.progress.note(f"promotion gate skipped by {current_caller()}: {options.skip_gate}")
        return replace(report, gate=record)
    context.progress.status(f"promotion gate: reading {upstream.name}'s alias, code and alarms")
    upstream_clients = (context.clients if upstream.region == context.environment.region
                        else AwsClients(upstream.region))
    now = context.now()
    try:
        evidence = gate.read_evidence(upstream_clients["lambda"],
                                      upstream_clients["cloudwatch"], upstream,
                                      settings.soak_minutes, now)
    except AwsError as error:  # e.g. the after environment is not deployed: no evidence
        return replace(report, outcome=Outcome.REFUSED, gate=record,
                       detail=f"promotion gate: no evidence from {upstream.name}: {error}")
    candidate = aws.version_code(context.clients["lambda"], stack.function_name,
                                 stack.candidate_version)
    decision = gate.decide(evidence, stack.candidate_version, gate.release_pins(candidate),
                           settings, now)
    record.update(decision.to_dict())
    if not decision.passed:
        return replace(report, outcome=Outcome.REFUSED, gate=record,
                       detail=f"promotion gate: {decision.detail}")
    return replace(report, gate=record)


def gate_variables(context: ReleaseContext) -> dict[str, str]:
    """The plan-time gate's override for this phase: always set where the stack has it, so a
    reason given once never stays behind (a Terraform Cloud workspace keeps its variables)."""
    promotion = context.environment.promotion
    if promotion is None or not promotion.plan_check:
        return {}
    return {PROMOTION_OVERRIDE_VARIABLE: context.options.skip_gate}


def _before(context: ReleaseContext, kind: Phase) -> tuple[StackOutputs | None, LiveAlias | None]:
    """The stack's outputs (None: nothing deployed) and the live alias, before a phase."""
    try:
        stack = context.read_stack()
    except MissingOutputError:
        if kind != Phase.DEPLOY:
            raise
        # A first apply that did not finish, or a stack from before an output existed: what a
        # deploy needs is the live alias, found by the names the stack gives it, and its apply
        # puts every output in place.
        environment = context.environment
        return None, aws.find_alias(context.clients["lambda"], environment.function_name,
                                    ALIAS_NAME)
    return stack, context.live_alias(stack) if stack else None


def read_deployed_stack(context: ReleaseContext) -> StackOutputs:
    """The stack's outputs after an apply (which always publishes a version)."""
    stack = context.read_stack()
    if stack is None:
        raise MissingOutputError(
            f"the {context.environment.name} stack has no candidate_version output after its "
            "apply: check that the stack applied is this environment's")
    return stack


def _alarm_rollback(context: ReleaseContext, stack: StackOutputs | None, live: LiveAlias | None,
                    kind: Phase, force: bool) -> str:
    """What the auto-rollback function did to the alias since the last phase ("" if nothing).

    The first phase to see it records it in the history; only `invoke rollback` (or force)
    goes on from there, and its apply puts Terraform's description back on the alias.
    """
    if live is None or not live.description.startswith(ALARM_ROLLBACK_PREFIX):
        return ""
    alarm = live.description.removeprefix(ALARM_ROLLBACK_PREFIX).split(" at ")[0]
    environment = context.environment.name
    if not any(record["detail"] == live.description and record["caller"] == f"alarm {alarm}"
               for record in context.history.read(environment)):
        context.history.append(PhaseRecord(
            time=utc_timestamp(), environment=environment, caller=f"alarm {alarm}",
            phase=Phase.ROLLBACK, routing_before=stack.routing.to_dict() if stack else {},
            routing_after=live.routing.to_dict(),
            candidate_version=stack.candidate_version if stack else "",
            stable_version=live.routing.primary_version, smoke=None, alarms=None,
            outcome=Outcome.ROLLED_BACK, detail=live.description, duration_seconds=0.0,
            config=config_pins(context.clients["lambda"], live.function_name, [
                stack.candidate_version if stack else "", live.routing.primary_version])))
    if kind != Phase.ROLLBACK and not force:
        raise PhaseInputError(f"the alias was {live.description}; acknowledge it with "
                              "`invoke rollback` (brings Terraform's state in line), or pass "
                              "--force")
    return live.description


def _check(context: ReleaseContext, report: PhaseReport, after: StackOutputs) -> PhaseReport:
    """Wait for the live alias, then smoke-test and read the alarms."""
    options = context.options
    reasons: list[str] = []
    context.progress.status(f"waiting for the live alias to show {after.routing.describe()}")
    try:
        aws.wait_for_routing(context.clients["lambda"], after.function_name, after.alias_name,
                             after.routing, timeout=options.routing_timeout,
                             interval=options.routing_interval, sleep=context.sleep,
                             clock=context.clock)
    except RoutingTimeout as error:
        return replace(report, outcome=Outcome.FAILED, detail=str(error))
    smoke = None
    if options.smoke:
        smoke = _smoke(context, after)
        reasons += smoke.reasons
    alarms = aws.alarm_states(context.clients["cloudwatch"], after.alarm_names)
    alarm_verdict = judge_alarms(alarms)
    # A rollback is the answer to a firing alarm, which takes minutes to clear: its states
    # are recorded, but they judge only the phases that send traffic to the candidate.
    if alarm_verdict.status == "fail" and report.phase in FORWARD_PHASES:
        reasons += alarm_verdict.reasons
    return replace(report, smoke=smoke, alarms=alarms,
                   outcome=Outcome.FAILED if reasons else Outcome.SUCCEEDED,
                   detail="; ".join(reasons))


def _smoke(context: ReleaseContext, stack: StackOutputs) -> SmokeResult:
    """The statistical smoke check against the stack's endpoint and intended split, each version
    answering with the config it was published with."""
    routing = stack.routing
    stable = routing.primary_version if routing.primary_version != stack.candidate_version else None
    config_versions = expected_config_versions(context.clients["lambda"], stack.function_name,
                                               (stack.candidate_version, stable or ""))
    url = context.options.smoke_url or stack.api_url
    context.progress.status(f"smoke-testing {url}")
    return smoke_check(
        url, expected_weight=stack.candidate_share,
        candidate_version=stack.candidate_version, stable_version=stable,
        requests=context.options.smoke_requests, concurrency=context.options.smoke_concurrency,
        on_response=context.progress.smoke_progress, config_versions=config_versions)


# ---------------------------------------------------------------------- failure paths

def return_to_stable(context: ReleaseContext, report: PhaseReport, stable_version: str,
              stack: StackOutputs) -> PhaseReport:
    """Send all traffic back to `stable_version`: through Terraform, else one UpdateAlias."""
    target = Routing(stable_version)
    options = context.options
    context.progress.status(f"check failed ({report.detail}); rolling back to {target.describe()}")
    try:
        context.applier.apply_variables(PhaseVariables(0.0, stable_version).as_terraform())
        how = "rolled back through Terraform"
    except ReleaseError as error:
        live = aws.fast_rollback(context.clients["lambda"], stack.function_name, stack.alias_name,
                                 stable_version)
        how = (f"Terraform could not roll back ({error}); traffic restored with one "
               "UpdateAlias call; run `invoke rollback` to bring Terraform's state in line")
        return replace(report, outcome=Outcome.ROLLED_BACK, routing_after=live.routing,
                       detail=f"{report.detail}; {how}")
    live = aws.wait_for_routing(context.clients["lambda"], stack.function_name, stack.alias_name,
                                target, timeout=options.routing_timeout,
                                interval=options.routing_interval, sleep=context.sleep,
                                clock=context.clock)
    return replace(report, outcome=Outcome.ROLLED_BACK, routing_after=live.routing,
                   detail=f"{report.detail}; {how} to {target.describe()}")


def _after_failed_apply(context: ReleaseContext, report: PhaseReport, before: LiveAlias | None,
                        error: Exception) -> PhaseReport:
    """Terraform keeps what a failed apply changed: put the live alias back if it moved.

    The report names what the live function and alias show, not Terraform's last outputs: a
    failed apply may already have published a new version."""
    detail = f"{error}"
    if before is None:
        return replace(report, detail=f"{detail}; nothing was serving traffic before")
    lambda_client = context.clients["lambda"]
    try:
        now = aws.read_alias(lambda_client, before.function_name, before.alias_name)
        published = aws.latest_published_version(lambda_client, before.function_name)
        report = replace(report, candidate_version=published or report.candidate_version)
        if now.routing == before.routing:
            return replace(report, routing_after=now.routing,
                           detail=f"{detail}; live alias unchanged at {now.routing.describe()}")
        restored = aws.set_routing(lambda_client, before.function_name, before.alias_name,
                                   before.routing, revision_id=now.revision_id)
    except AwsError as aws_error:
        return replace(report, detail=f"{detail}; could not check the live alias ({aws_error}): "
                                      "run `invoke status` before anything else")
    return replace(report, routing_after=restored.routing,
                   detail=(f"{detail}; live alias restored from {now.routing.describe()} to "
                           f"{restored.routing.describe()}; run `invoke rollback` or rerun "
                           "the phase to bring Terraform's state in line"))


def _interrupted(context: ReleaseContext, report: PhaseReport,
                 before: StackOutputs | None) -> PhaseReport:
    stack = context.read_stack() or before
    live = context.live_alias(stack) if stack else None
    where = live.routing.describe() if live else "nothing deployed"
    return replace(report, outcome=Outcome.INTERRUPTED,
                   routing_after=live.routing if live else None,
                   detail=f"stopped by Ctrl-C during the apply; traffic is at {where}: rerun "
                          "the phase or `invoke rollback`")


def refusal(error: Exception, variables: PhaseVariables) -> str | None:
    """Why one of the stack's alias preconditions refused the plan; None for other failures."""
    # Without Terraform's frame characters, a message wrapped over lines reads as one sentence.
    lines = [line.strip("╷│╵") for line in getattr(error, "stderr_tail", ())]
    text = " ".join(" ".join([str(error), *lines]).split())
    if NO_NEW_VERSION_MESSAGE in text:
        return (f"no new version to send traffic to: v{variables.stable_version} already is the "
                "candidate; merge and deploy new code first")
    quarantined = re.search(re.escape(QUARANTINE_REFUSAL_PREFIX) + r".*?--version [0-9,]+\.", text)
    if quarantined:
        return quarantined.group(0)
    promotion = re.search(re.escape(PROMOTION_REFUSAL_PREFIX) + r".*?--skip-gate REASON\)\.", text)
    return promotion.group(0) if promotion else None


# ---------------------------------------------------------------------- endings

def finish(context: ReleaseContext, report: PhaseReport, started: float) -> PhaseReport:
    """The report with its duration and its versions' config pins, recorded in the history."""
    report = replace(report, duration_seconds=context.clock() - started)
    if report.config is None:
        report = replace(report, config=read_config_pins(context, report))
    context.history.append(report.record())
    return report


def read_config_pins(context: ReleaseContext, report: PhaseReport) -> dict[str, dict[str, Any]]:
    """The config pins of the report's versions, read now from AWS (one GetFunctionConfiguration
    each). A version that cannot be read gets its error text instead of failing the phase; a
    phase refused before anything was published records what is there (a first deploy: none)."""
    return config_pins(context.clients["lambda"], context.environment.function_name,
                       report.versions())


def failed(context: ReleaseContext, report: PhaseReport, started: float) -> PhaseFailed:
    """The failure to raise for a phase that did not succeed, recorded in the history."""
    return PhaseFailed(finish(context, report, started))


# ---------------------------------------------------------------------- commands like a phase

def fast_rollback(context: ReleaseContext) -> tuple[LiveAlias, float]:
    """One UpdateAlias to the stable version before Terraform runs; returns it and its time.

    The update carries the revision the alias was read at: Lambda refuses it if anyone changed
    the alias since, rather than overwrite a newer release."""
    stack = context.read_stack()
    if stack is None:
        raise PhaseInputError(f"nothing to roll back in {context.environment.name}: nothing is "
                              "deployed yet")
    live = context.live_alias(stack)
    variables = plan_variables(Phase.ROLLBACK, stack, live.routing)
    context.progress.status(f"fast rollback: UpdateAlias to v{variables.stable_version}")
    started = context.clock()
    updated = aws.fast_rollback(context.clients["lambda"], stack.function_name, stack.alias_name,
                                variables.stable_version, revision_id=live.revision_id)
    elapsed = context.clock() - started
    _quarantine(context, stack, live, variables.stable_version)
    return updated, elapsed


def _quarantine(context: ReleaseContext, stack: StackOutputs, live: LiveAlias,
                stable_version: str) -> None:
    """Record the versions `rollback --fast` took traffic from, so that no later plan (a VCS
    run, `cdktf deploy`) gives them traffic again without `invoke release-quarantine`."""
    taken_from = [version for version in (live.routing.primary_version,
                                          *live.routing.additional_version_weights)
                  if version != stable_version]
    if not stack.quarantine_parameter or not taken_from:
        return
    try:
        aws.quarantine_versions(context.clients["ssm"], stack.quarantine_parameter, taken_from,
                                f"invoke rollback --fast by {current_caller()}", utc_timestamp())
    except AwsError as error:
        raise AwsError(f"traffic is back on v{stable_version}, but recording "
                       f"{', '.join('v' + version for version in taken_from)} in the quarantine "
                       f"failed: {error}") from None


def run_rollback(context: ReleaseContext, *, fast: bool = False) -> PhaseReport:
    """All traffic back to the stable version through Terraform. With `fast`, one UpdateAlias
    takes traffic off the candidate first; if Lambda refuses it, Terraform still rolls back (a
    stack that cannot be read or has nothing to roll back to fails both ways: no fallback)."""
    name = context.environment.name
    if fast:
        try:
            live, seconds = fast_rollback(context)
            context.progress.note(f"rollback {name}: traffic at {live.routing.describe()} after "
                                  f"one UpdateAlias ({seconds * 1000:.0f} ms); applying so "
                                  "Terraform's state agrees")
        except AwsError as error:
            context.progress.note(f"rollback {name}: fast path failed ({error}); rolling back "
                                  "through Terraform")
    return run_phase(context, Phase.ROLLBACK)


def run_destroy(context: ReleaseContext) -> PhaseReport:
    """Remove the environment's stack, recorded in the history like a phase (a failed destroy
    too, before its error goes on to the caller)."""
    started = context.clock()
    try:
        stack = context.read_stack()
        live = context.live_alias(stack) if stack else None
    except ReleaseError:
        # The record names what served traffic when that can be read; a half-created stack is
        # destroyed all the same.
        stack, live = None, None
    report = PhaseReport(
        environment=context.environment.name, phase=Phase.DESTROY, outcome=Outcome.FAILED,
        detail="", variables=None, routing_before=live.routing if live else None,
        routing_after=None, candidate_version=stack.candidate_version if stack else "",
        stable_version=stack.stable_version if stack else "")
    # Read before the destroy: afterwards there is no function to read the pins from.
    report = replace(report, config=read_config_pins(context, report))
    context.progress.status(f"destroy {context.environment.name}: removing every resource")
    try:
        summary = context.applier.destroy()
    except ReleaseError as error:
        finish(context, replace(report, detail=str(error)), started)
        raise
    return finish(context, replace(report, outcome=Outcome.SUCCEEDED, plan_summary=str(summary),
                                   detail=f"destroyed: {summary}"), started)
