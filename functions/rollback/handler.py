"""Rolls the `production` alias back to its primary version when a release alarm fires.

The release tasks run on a laptop; if it sleeps in the middle of a canary, nobody is left to
react to the alarms. This function is subscribed (through SNS) to those alarms and, when one of
them goes to ALARM while a canary is running, sends all traffic back to the alias's primary
version with ONE UpdateAlias call guarded by the RevisionId it read. Then it records the canary
version in the stack's quarantine parameter, which every later plan reads: no apply (invoke,
`cdktf deploy`, a Terraform Cloud run) gives that version traffic again until someone lifts it.

Configuration (environment): FUNCTION_NAME (the released function), ALIAS_NAME (`production`),
ALARM_NAMES (comma-separated names of the alarms to act on), QUARANTINE_PARAMETER (the SSM
parameter holding {"<version>": {"reason", "at"}} as JSON).

Every record ends in exactly one JSON line on stdout (`action`: rolled-back, ignored or failed).
print, not logging: the Lambda runtime prefixes logging records with level, time and request id,
which would break one-JSON-object-per-line queries in CloudWatch Logs Insights.

Only the standard library and boto3/botocore (both in the Lambda Python runtime): this folder is
zipped as-is.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

# The release tasks look for this prefix in the alias description to report that this function
# rolled the canary back; change both together.
ROLLBACK_DESCRIPTION_PREFIX = "rolled back by alarm "
# UpdateAlias rejects longer descriptions (Lambda API reference, AliasConfiguration.Description),
# which would turn a long alarm name into a failed rollback.
DESCRIPTION_MAX_LENGTH = 256
ALARM_STATE = "ALARM"
# Standard retry mode backs off on throttling (Lambda's control plane allows ~15 req/s per
# account, shared with the release tasks) and on 5xx; short timeouts keep a dead network from
# eating the function's whole timeout on one attempt. total_max_attempts counts the first
# request too (botocore's `max_attempts` would not).
CLIENT_CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 5}, connect_timeout=2,
                       read_timeout=5)
REQUIRED_VARIABLES = ("FUNCTION_NAME", "ALIAS_NAME", "ALARM_NAMES", "QUARANTINE_PARAMETER")


class ConfigurationError(RuntimeError):
    """The function's environment is missing a variable it needs."""


class MalformedNotification(ValueError):
    """A record that is not a CloudWatch alarm notification delivered by SNS."""


class QuarantineFailed(RuntimeError):
    """The canary was rolled back, but recording its version in the quarantine parameter failed."""


class InvalidQuarantine(ValueError):
    """The quarantine parameter holds something other than a JSON object."""


class RollbackFailed(RuntimeError):
    """At least one record failed; raised so that Lambda retries the event, then dead-letters it."""


@dataclass(frozen=True)
class Settings:
    function_name: str
    alias_name: str
    alarm_names: frozenset[str]
    quarantine_parameter: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Settings:
        values = {name: environ.get(name, "").strip() for name in REQUIRED_VARIABLES}
        alarm_names = frozenset(name.strip() for name in values["ALARM_NAMES"].split(",")
                                if name.strip())
        missing = [name for name, value in values.items() if not value]
        if not alarm_names and "ALARM_NAMES" not in missing:
            missing.append("ALARM_NAMES")
        if missing:
            raise ConfigurationError(
                f"environment variable(s) {', '.join(missing)} empty or unset: set "
                "FUNCTION_NAME=<released function>, ALIAS_NAME=production and "
                "ALARM_NAMES=<comma-separated alarm names> and QUARANTINE_PARAMETER=<SSM "
                "parameter name> on the rollback function")
        return cls(values["FUNCTION_NAME"], values["ALIAS_NAME"], alarm_names,
                   values["QUARANTINE_PARAMETER"])


@dataclass(frozen=True)
class AlarmNotification:
    """The parts of a CloudWatch alarm notification that decide whether to roll back."""

    name: str
    state: str
    state_change_time: str
    # The dimensions of each metric the alarm reads, as {name: value}.
    metric_dimensions: tuple[Mapping[str, str], ...]

    @property
    def executed_versions(self) -> frozenset[str]:
        """Versions named by ExecutedVersion dimensions: the alarm watches only those."""
        return frozenset(dimensions["ExecutedVersion"] for dimensions in self.metric_dimensions
                         if "ExecutedVersion" in dimensions)


def parse_record(record: Mapping[str, Any]) -> AlarmNotification:
    """The alarm notification carried by one SNS record of the Lambda event.

    Shapes, as AWS sends them (aws/aws-lambda-go events/sns.go, CloudWatchAlarmSNSPayload, and
    its testdata cloudwatch-alarm-sns-payload-single-metric.json / -multiple-metrics.json):
    `Sns.Message` is a JSON string with AlarmName, NewStateValue, StateChangeTime and Trigger.
    A single-metric alarm's Trigger has MetricName, Namespace and Dimensions; a metric-math
    alarm's Trigger has Metrics, a list of {Id, Expression} or {Id, MetricStat: {Metric:
    {Dimensions, MetricName, Namespace}, Period, Stat}, ReturnData}. Dimensions in these
    notifications are [{"name": ..., "value": ...}], lower case, unlike the API's Name/Value.
    """
    try:
        if record.get("EventSource") != "aws:sns":
            raise MalformedNotification(
                f"record from {record.get('EventSource')!r}, not aws:sns: subscribe this "
                "function to the alarms' SNS topic only")
        message = json.loads(record["Sns"]["Message"])
        trigger = message.get("Trigger") or {}
        if "Metrics" in trigger:
            metrics = [query["MetricStat"]["Metric"] for query in trigger["Metrics"]
                       if "MetricStat" in query]
        elif "MetricName" in trigger:
            metrics = [trigger]
        else:  # composite alarms and Metrics Insights queries name no dimensions
            metrics = []
        return AlarmNotification(
            name=message["AlarmName"],
            state=message["NewStateValue"],
            state_change_time=message["StateChangeTime"],
            metric_dimensions=tuple(
                {dimension["name"]: dimension["value"]
                 for dimension in metric.get("Dimensions") or []}
                for metric in metrics),
        )
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as error:
        raise MalformedNotification(
            f"not a CloudWatch alarm notification ({type(error).__name__}: {error}): subscribe "
            "this function to the alarms' SNS topic only") from None


def _percent(share: float) -> str:
    return f"{round(share * 100, 2):g}"


@dataclass(frozen=True)
class AliasState:
    """The alias as GetAlias/UpdateAlias reports it."""

    primary_version: str
    additional_version_weights: Mapping[str, float]
    revision_id: str
    description: str = ""

    @classmethod
    def from_response(cls, response: Mapping[str, Any]) -> AliasState:
        weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return cls(response["FunctionVersion"],
                   {str(version): float(weight) for version, weight in weights.items()},
                   response["RevisionId"], response.get("Description") or "")

    @property
    def canary_version(self) -> str | None:
        """The weighted version; a Lambda alias has at most one."""
        return next(iter(self.additional_version_weights), None)

    def describe(self) -> str:
        """E.g. "v3 90 % + v4 10 %", or "v3 100 %" without a canary."""
        canary_share = sum(self.additional_version_weights.values())
        parts = [f"v{self.primary_version} {_percent(1 - canary_share)} %"]
        parts += [f"v{version} {_percent(weight)} %"
                  for version, weight in self.additional_version_weights.items()]
        return " + ".join(parts)


def rollback_description(alarm_name: str, state_change_time: str, before: str, after: str) -> str:
    """The alias description after a rollback; a too long alarm name is shortened to fit."""
    tail = f" at {state_change_time}: {before} -> {after}"
    room = DESCRIPTION_MAX_LENGTH - len(ROLLBACK_DESCRIPTION_PREFIX) - len(tail)
    if len(alarm_name) > room:
        alarm_name = alarm_name[:max(room - 3, 0)] + "..."
    return f"{ROLLBACK_DESCRIPTION_PREFIX}{alarm_name}{tail}"[:DESCRIPTION_MAX_LENGTH]


@dataclass(frozen=True)
class Outcome:
    """What happened to one alarm notification; logged as one JSON line and returned."""

    action: str  # "rolled-back" | "ignored" | "failed"
    reason: str
    alarm: str | None
    function: str | None
    alias: str | None
    routing_before: str | None = None
    routing_after: str | None = None
    revision_id: str | None = None  # the revision read (and, when rolled back, that guarded it)
    state_change_time: str | None = None
    quarantined: str | None = None  # the version recorded in the quarantine parameter

    def log(self) -> Outcome:
        print(json.dumps(asdict(self)), flush=True)
        return self


def _untargeted(alarm: AlarmNotification, settings: Settings) -> str | None:
    """Why the alarm's notification is not about this function's alias; None when it is."""
    if alarm.state != ALARM_STATE:
        return f"alarm state is {alarm.state}, not {ALARM_STATE}"
    if alarm.name not in settings.alarm_names:
        return "alarm is not in ALARM_NAMES"
    if not alarm.metric_dimensions:
        return "alarm names no metric dimensions (composite or query alarm)"
    resource = f"{settings.function_name}:{settings.alias_name}"
    for dimensions in alarm.metric_dimensions:
        if dimensions.get("FunctionName") != settings.function_name:
            return (f"alarm watches FunctionName={dimensions.get('FunctionName')}, "
                    f"not {settings.function_name}")
        if dimensions.get("Resource", resource) != resource:
            return f"alarm watches Resource={dimensions['Resource']}, not {resource}"
    return None


def _no_rollback(alarm: AlarmNotification, live: AliasState, canary_read_first: str | None
                 ) -> str | None:
    """Why the live alias must be left alone; None when the canary should be rolled back.

    `canary_read_first` is the canary seen before a RevisionId conflict: an alarm about that
    canary says nothing about a newer one.
    """
    if live.canary_version is None:
        return f"no canary running: alias routes {live.describe()}"
    if canary_read_first is not None and live.canary_version != canary_read_first:
        return (f"alias changed meanwhile and now runs canary v{live.canary_version}, not "
                f"v{canary_read_first}")
    if alarm.executed_versions and alarm.executed_versions != {live.canary_version}:
        watched = ", ".join(sorted(alarm.executed_versions))
        return (f"stale alarm: it watches ExecutedVersion {watched}, the running canary is "
                f"v{live.canary_version}")
    return None


def _get_alias(lambda_client: Any, settings: Settings) -> AliasState:
    return AliasState.from_response(
        lambda_client.get_alias(FunctionName=settings.function_name, Name=settings.alias_name))


def _clear_canary(lambda_client: Any, settings: Settings, alarm: AlarmNotification,
                  live: AliasState) -> AliasState:
    """ONE UpdateAlias: primary kept, weights cleared, refused if the alias changed since `live`."""
    after = AliasState(live.primary_version, {}, live.revision_id)
    response = lambda_client.update_alias(
        FunctionName=settings.function_name, Name=settings.alias_name,
        FunctionVersion=live.primary_version,
        # An empty RoutingConfig clears the weights, as the Terraform provider does: Lambda then
        # reports none, which is what the stack's next plan expects.
        RoutingConfig={},
        RevisionId=live.revision_id,
        Description=rollback_description(alarm.name, alarm.state_change_time, live.describe(),
                                         after.describe()))
    return AliasState.from_response(response)


def _is_revision_conflict(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "PreconditionFailedException"


def quarantine(ssm_client: Any, settings: Settings, version: str, alarm: AlarmNotification
               ) -> None:
    """Record that `version` was rolled back by `alarm`; the stack's plans then refuse to give
    it traffic. Read-modify-write of one small parameter; an existing entry is kept (the first
    rollback is the one to explain), so a retried delivery changes nothing."""
    try:
        current = ssm_client.get_parameter(Name=settings.quarantine_parameter)
        text = current["Parameter"]["Value"] or "{}"
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ParameterNotFound":
            raise
        text = "{}"
    try:
        entries = json.loads(text)
    except ValueError:
        entries = None
    if not isinstance(entries, dict):
        # Hand-edited into something else: never overwrite it (it may hold entries someone
        # wants); the delivery fails with the fix, and its retry records the version.
        raise InvalidQuarantine(f"{settings.quarantine_parameter} holds {_one_line(text)[:60]!r}, "
                                "not a JSON object of quarantined versions: fix its value in SSM "
                                "(e.g. {})")
    if version in entries:
        return
    entries[version] = {"reason": f"alarm {alarm.name}", "at": alarm.state_change_time}
    ssm_client.put_parameter(Name=settings.quarantine_parameter, Value=json.dumps(entries),
                             Type="String", Overwrite=True)


def _rolled_back_by(alarm: AlarmNotification, live: AliasState) -> str | None:
    """The version an earlier delivery of this same alarm took traffic from, when the alias still
    says so (its description names the alarm's state change) and that version serves nothing
    now: a retry then only has the quarantine left to write."""
    if live.canary_version is not None or len(alarm.executed_versions) != 1:
        return None
    [version] = alarm.executed_versions
    if version == live.primary_version:
        return None
    if not live.description.startswith(ROLLBACK_DESCRIPTION_PREFIX):
        return None
    if f" at {alarm.state_change_time}: " not in live.description:
        return None
    return version


def roll_back(alarm: AlarmNotification, settings: Settings, lambda_client: Any, ssm_client: Any
              ) -> Outcome:
    """Decide on one alarm notification and, when it calls for it, roll the canary back and
    quarantine it."""
    def outcome(action: str, reason: str, live: AliasState | None = None,
                after: AliasState | None = None, quarantined: str | None = None) -> Outcome:
        return Outcome(action, reason, alarm.name, settings.function_name, settings.alias_name,
                       routing_before=live.describe() if live else None,
                       routing_after=after.describe() if after else None,
                       revision_id=live.revision_id if live else None,
                       state_change_time=alarm.state_change_time, quarantined=quarantined)

    reason = _untargeted(alarm, settings)
    if reason:
        return outcome("ignored", reason)
    live = _get_alias(lambda_client, settings)
    reason = _no_rollback(alarm, live, canary_read_first=None)
    if reason:
        # A retried delivery whose first attempt moved the alias but failed to quarantine.
        version = _rolled_back_by(alarm, live)
        if version is not None:
            quarantine(ssm_client, settings, version, alarm)
            return outcome("ignored", f"{reason}; v{version} quarantined", live,
                           quarantined=version)
        return outcome("ignored", reason, live)
    try:
        after = _clear_canary(lambda_client, settings, alarm, live)
        rolled_back = live
        why = f"alarm {alarm.name} fired for canary v{live.canary_version}"
    except ClientError as error:
        if not _is_revision_conflict(error):
            raise
        # Someone (a newer release phase, an operator) changed the alias after our read: look
        # once more, and roll back only if the same canary is still running. A second conflict
        # fails.
        rolled_back = _get_alias(lambda_client, settings)
        reason = _no_rollback(alarm, rolled_back, canary_read_first=live.canary_version)
        if reason:
            return outcome("ignored", reason, rolled_back)
        after = _clear_canary(lambda_client, settings, alarm, rolled_back)
        why = (f"alarm {alarm.name} fired for canary v{rolled_back.canary_version} (alias "
               f"changed once meanwhile, revision {live.revision_id})")
    # The traffic is safe first; a failure here fails the delivery, and its retry (which finds
    # the canary gone, see _rolled_back_by) writes the quarantine.
    version = str(rolled_back.canary_version)
    try:
        quarantine(ssm_client, settings, version, alarm)
    except (ClientError, InvalidQuarantine) as error:
        raise QuarantineFailed(
            f"rolled back ({rolled_back.describe()} -> {after.describe()}), but recording "
            f"v{version} in {settings.quarantine_parameter} failed ({_one_line(error)}); the "
            "retried delivery records it") from error
    return outcome("rolled-back", why, rolled_back, after, quarantined=version)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())


def handle_event(event: Mapping[str, Any], settings: Settings, lambda_client: Any,
                 ssm_client: Any) -> list[dict[str, Any]]:
    """Process every record; raise RollbackFailed at the end if any of them failed."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not records:
        error = MalformedNotification("event has no Records: subscribe this function to the "
                                      "alarms' SNS topic only")
        Outcome("failed", str(error), None, settings.function_name, settings.alias_name).log()
        raise error
    outcomes: list[Outcome] = []
    first_error: Exception | None = None
    for record in records:
        alarm: AlarmNotification | None = None
        try:
            alarm = parse_record(record)
            outcomes.append(roll_back(alarm, settings, lambda_client, ssm_client).log())
        except Exception as error:  # one bad record must not stop the others
            first_error = first_error or error
            outcomes.append(Outcome(
                "failed", f"{type(error).__name__}: {_one_line(error)}",
                alarm.name if alarm else None, settings.function_name, settings.alias_name,
                state_change_time=alarm.state_change_time if alarm else None).log())
    failed = [outcome for outcome in outcomes if outcome.action == "failed"]
    if failed:
        raise RollbackFailed(
            f"{len(failed)} of {len(outcomes)} alarm notification(s) failed, first: "
            f"{failed[0].reason}") from first_error
    return [asdict(outcome) for outcome in outcomes]


@functools.cache
def lambda_client() -> Any:
    """One client per execution environment, reused by warm invocations."""
    return boto3.client("lambda", config=CLIENT_CONFIG)


@functools.cache
def ssm_client() -> Any:
    return boto3.client("ssm", config=CLIENT_CONFIG)


def lambda_handler(event: Mapping[str, Any], context: Any) -> list[dict[str, Any]]:
    try:
        settings = Settings.from_environment(os.environ)
    except ConfigurationError as error:
        Outcome("failed", str(error), None, os.environ.get("FUNCTION_NAME"),
                os.environ.get("ALIAS_NAME")).log()
        raise
    return handle_event(event, settings, lambda_client(), ssm_client())
