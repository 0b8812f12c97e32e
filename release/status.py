"""`invoke status`: live alias routing, versions and the config each serving version is pinned
to, alarms, endpoint and the last phase, with any drift from what Terraform last applied."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from release import aws
from release.aws import Routing
from release.context import ReleaseContext
from release.errors import ReleaseError
from release.phases import PhaseVariables
from release.released_config import config_pins, describe_pins
from release.runner import ALARM_ROLLBACK_PREFIX, refusal


@dataclass(frozen=True)
class Deployment:
    """A deployed stack: Terraform's view of it and the live one."""

    endpoint: str
    function_name: str
    candidate_version: str
    stable_version: str
    terraform_routing: Routing
    live_routing: Routing
    # Resource addresses a plan with the last applied variables would change (None: not
    # checked, e.g. --remote).
    terraform_drift: list[str] | None
    # How the auto-rollback function described its rollback on the alias (None: it did not act).
    rolled_back_by_alarm: str | None
    alarms: Mapping[str, str]
    # Versions a rollback took traffic from: no plan gives them traffic until lifted.
    quarantined: Mapping[str, aws.QuarantineEntry]
    # Why the stack refuses a plan with the last applied variables (None: it does not), e.g. a
    # canary's variables after the alarm function quarantined that canary.
    plan_refused: str | None
    # Each version the live alias serves (primary first) -> its config pins
    # (release.released_config.config_pins: settings version, secret version ids, or an error).
    config: Mapping[str, Mapping[str, Any]]

    @property
    def drift(self) -> bool:
        return self.live_routing != self.terraform_routing or bool(self.terraform_drift)


@dataclass(frozen=True)
class Status:
    environment: str
    # The newest history record of the environment, as written.
    last_phase: Mapping[str, Any] | None
    deployment: Deployment | None  # None: nothing deployed yet

    def to_dict(self) -> dict[str, Any]:
        """What `invoke status --json` prints."""
        deployment = self.deployment
        if deployment is None:
            return {"environment": self.environment, "deployed": False,
                    "last_phase": self.last_phase}
        return {
            "environment": self.environment,
            "deployed": True,
            "endpoint": deployment.endpoint,
            "function_name": deployment.function_name,
            "candidate_version": deployment.candidate_version,
            "stable_version": deployment.stable_version,
            "terraform_routing": deployment.terraform_routing.to_dict(),
            "live_routing": deployment.live_routing.to_dict(),
            "live_routing_text": deployment.live_routing.describe(),
            "config": {version: dict(pin) for version, pin in deployment.config.items()},
            "drift": deployment.drift,
            "terraform_drift": deployment.terraform_drift,
            "rolled_back_by_alarm": deployment.rolled_back_by_alarm,
            "quarantined": {version: {"reason": entry.reason, "at": entry.at}
                            for version, entry in deployment.quarantined.items()},
            "plan_refused": deployment.plan_refused,
            "alarms": dict(deployment.alarms),
            "last_phase": self.last_phase,
        }

    def lines(self) -> list[str]:
        """What `invoke status` prints for humans."""
        name, deployment = self.environment, self.deployment
        if deployment is None:
            return [f"{name}: not deployed yet (run `invoke deploy --env {name}`)"]
        lines = [f"{name}: {deployment.live_routing.describe()} at {deployment.endpoint}",
                 f"  candidate v{deployment.candidate_version}, "
                 f"stable v{deployment.stable_version or '-'}",
                 f"  config: {describe_pins(deployment.config)}"]
        if deployment.rolled_back_by_alarm:
            lines += [f"  {deployment.rolled_back_by_alarm}",
                      "  acknowledge with `invoke rollback`: it brings Terraform's state in line"]
        elif deployment.live_routing != deployment.terraform_routing:
            lines.append(f"  DRIFT: Terraform expects {deployment.terraform_routing.describe()}, "
                         "the live alias differs; rerun the last phase or `invoke rollback`")
        if deployment.terraform_drift:
            lines.append(f"  DRIFT: a plan with the last phase's variables would change "
                         f"{', '.join(deployment.terraform_drift)}: something was changed "
                         "outside Terraform; rerun the last phase to put it back")
        if deployment.plan_refused:
            lines.append("  the stack refuses a plan with the last phase's variables: "
                         f"{deployment.plan_refused}")
        for version, entry in deployment.quarantined.items():
            lines.append(f"  QUARANTINED: v{version}, rolled back by {entry.reason} at "
                         f"{entry.at}; plans refuse to give it traffic (`invoke "
                         f"release-quarantine --env {name} --version {version}` lifts it)")
        lines.append("  alarms: " + ", ".join(f"{alarm} {state}"
                                               for alarm, state in deployment.alarms.items()))
        last = self.last_phase
        if last:
            lines.append(f"  last phase: {last['phase']} {last['outcome']} at {last['time']} "
                         f"by {last['caller']}")
            lines += gate_lines(last.get("gate"))
            if last.get("config"):  # records written before config pins have none
                lines.append(f"  last phase config: {describe_pins(last['config'])}")
        return lines


def gate_lines(gate: Mapping[str, Any] | None) -> list[str]:
    """The promotion gate of a history record: skipped (loudly), approved, or what it found."""
    if not gate:
        return []
    approver = f", approved by {gate['approved_by']}" if gate.get("approved_by") else ""
    if gate.get("skipped"):
        return [f"  PROMOTION GATE SKIPPED ({gate.get('after')} not checked): "
                f"{gate['skipped']}{approver}"]
    return [f"  promotion gate: {gate.get('detail', '')}{approver}"]


def read_status(context: ReleaseContext) -> Status:
    """The environment's status now; reads the stack, the live alias, the alarms and the history,
    and plans (read-only) with the last applied variables to find drift."""
    name = context.environment.name
    stack = context.read_stack()
    last_phase = context.history.last(name)
    if stack is None:
        return Status(name, last_phase, None)
    live = context.live_alias(stack)
    # Terraform's own view: anything in the stack changed outside it, not only the alias.
    last_applied = PhaseVariables(stack.canary_weight, stack.stable_version)
    plan_refused = None
    try:
        terraform_drift = context.applier.drift(last_applied.as_terraform())
    except ReleaseError as error:
        # E.g. after an alarm rollback the last phase's variables give a quarantined version
        # traffic: the stack refuses that plan, which is worth showing, not failing on.
        plan_refused = refusal(error, last_applied)
        if plan_refused is None:
            raise
        terraform_drift = None
    # One GetFunctionConfiguration per serving version (status read none before).
    config = config_pins(context.clients["lambda"], stack.function_name,
                         [live.routing.primary_version, *live.routing.additional_version_weights])
    quarantined = (aws.read_quarantine(context.clients["ssm"], stack.quarantine_parameter)
                   if stack.quarantine_parameter else {})
    return Status(name, last_phase, Deployment(
        endpoint=stack.api_url, function_name=stack.function_name,
        candidate_version=stack.candidate_version, stable_version=stack.stable_version,
        terraform_routing=stack.routing, live_routing=live.routing,
        terraform_drift=terraform_drift,
        rolled_back_by_alarm=(live.description
                              if live.description.startswith(ALARM_ROLLBACK_PREFIX) else None),
        alarms=aws.alarm_states(context.clients["cloudwatch"], stack.alarm_names),
        quarantined=quarantined, plan_refused=plan_refused, config=config))


def history_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """What `invoke history` prints: one line per record, oldest first, with the settings
    version each of its versions is pinned to (records written before config pins existed
    have no config part)."""
    lines = []
    for record in records:
        line = (f"{record.get('time', '?')} {record.get('phase', '?')} "
                f"{record.get('outcome', '?')} by {record.get('caller', '?')}: "
                f"{_routing_text(record.get('routing_after'))}")
        if record.get("config"):
            line += f"; config {describe_pins(record['config'])}"
        detail = str(record.get("detail") or "").splitlines()
        if record.get("outcome") != "succeeded" and detail:
            line += f" - {detail[0]}"
        lines.append(line)
    return lines


def _routing_text(routing: Mapping[str, Any] | None) -> str:
    """A recorded routing as `Routing.describe()` says it; "no alias" when there was none."""
    if not routing or not routing.get("primary_version"):
        return "no alias"
    try:
        return Routing(routing["primary_version"],
                       routing.get("additional_version_weights") or {}).describe()
    except (ReleaseError, AttributeError, TypeError):  # a record edited by hand
        return json.dumps(routing, sort_keys=True)
