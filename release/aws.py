"""The boto3 layer: credentials, the live `production` alias, alarms and per-version metrics.

Every function takes its boto3 client as an argument, so the release tasks build clients once
with `client()` and tests point them at a moto server through `AWS_ENDPOINT_URL` (botocore
honours that variable itself). Expected AWS failures (a missing alias, an expired token, no
network) surface as `AwsError` with a one-line message, never as a botocore traceback.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from release.config import SHARED_SETTINGS_VARIABLE
from release.errors import ReleaseError
from release.weights import check_weight

# Lambda stores routing weights as doubles and may hand back a rounded value, so two routings
# whose weights differ by less than this are the same routing.
WEIGHT_TOLERANCE = 1e-4
# DescribeAlarms accepts at most 100 AlarmNames per request.
ALARM_NAMES_PER_REQUEST = 100
# A weighted alias must show the intended routing on this many consecutive reads: during a
# version switch GetAlias briefly returns transient weights.
CONSECUTIVE_READS = 2
METRIC_PERIOD_SECONDS = 60
MISSING = "MISSING"
NO_CREDENTIALS = ("no AWS credentials found: set AWS_PROFILE or "
                  "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run `aws sso login`")
# Standard retry mode backs off on throttling, which matters under Lambda's ~15 req/s
# control-plane quota; short timeouts keep a rollback from hanging on a dead network.
CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=5,
                       read_timeout=30)


class AwsError(ReleaseError):
    """An AWS call that failed in an expected way; the message is one line naming the fix."""


class RoutingTimeout(AwsError):
    """The alias did not settle on the expected routing within the wait."""


class RoutingError(ReleaseError):
    """A routing that Lambda cannot express (more than one extra version, $LATEST)."""


def client(service: str, region: str, session: boto3.Session | None = None) -> Any:
    """A boto3 client for `service` in `region`; `AWS_ENDPOINT_URL` (e.g. a moto server) applies."""
    return (session or boto3.Session()).client(service, region_name=region, config=CLIENT_CONFIG)


def _error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "Unknown")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def _translated(operation: str, not_found: str | None = None) -> Iterator[None]:
    """Turn botocore failures of `operation` into a one-line AwsError.

    `not_found`, when given, replaces the message of a ResourceNotFoundException: it names
    the missing resource and the fix.
    """
    try:
        yield
    except ClientError as error:
        code = _error_code(error)
        message = _one_line(error.response.get("Error", {}).get("Message", ""))
        if not_found and code == "ResourceNotFoundException":
            raise AwsError(f"{not_found} ({message})") from None
        raise AwsError(f"{operation} failed: {code}: {message}") from None
    except NoCredentialsError:
        raise AwsError(NO_CREDENTIALS) from None
    except BotoCoreError as error:  # no network, expired SSO token, bad profile, ...
        raise AwsError(f"{operation} failed: {_one_line(str(error))}") from None


def preflight_credentials(session_or_region: boto3.Session | str) -> str:
    """Resolve credentials locally (no STS call) and describe where they come from.

    botocore walks its provider chain (environment, profile files, SSO cache, container and
    instance roles); only the last two need the network. The secret is never part of the text.
    """
    with _translated("resolving AWS credentials"):
        if isinstance(session_or_region, str):
            session = boto3.Session(region_name=session_or_region)
        else:
            session = session_or_region
        credentials = session.get_credentials()
    if credentials is None:
        raise AwsError(NO_CREDENTIALS)
    return (f"AWS credentials from {credentials.method} (profile {session.profile_name}, "
            f"region {session.region_name or 'not set'})")


# Lambda keeps at least this much of the account's concurrency unreserved ("decreases account's
# UnreservedConcurrentExecution below its minimum value"); standard accounts have a minimum of 100.
MINIMUM_UNRESERVED_CONCURRENCY = 100


class AccountNotReady(AwsError):
    """The account cannot take the stack's first (or next) apply as configured."""


def reservation_room(unreserved: int, current_reservation: int, wanted: int) -> int:
    """What stays unreserved after the function reserves `wanted` (it gives back what it holds)."""
    return unreserved + current_reservation - wanted


def preflight_account(apigateway_client: Any, lambda_client: Any, *, environment_name: str,
                      function_name: str, logging: bool, reserved_concurrency: int | None) -> None:
    """Before anything is planned: the account can take what the stack asks of it.

    - stage logging needs API Gateway's account-level CloudWatch Logs role (GetAccount), else
      the first apply fails and leaves the stage tainted;
    - a reserved concurrency must leave the account its minimum unreserved concurrency
      (GetAccountSettings; new accounts often have a total of 10).
    """
    region = lambda_client.meta.region_name
    if logging:
        with _translated("apigateway:GetAccount"):
            role = apigateway_client.get_account().get("cloudwatchRoleArn")
        if not role:
            raise AccountNotReady(
                f"API Gateway in {region} has no CloudWatch Logs role for this account, so "
                f"{environment_name}'s stage logging would fail the first apply: run `invoke "
                f"bootstrap --env {environment_name}` once per account and region, or set api = "
                f"{{ logging = false }} for {environment_name} in environments.toml")
    if reserved_concurrency:
        with _translated("lambda:GetAccountSettings"):
            limits = lambda_client.get_account_settings()["AccountLimit"]
        with _translated("lambda:GetFunctionConcurrency"):
            try:
                current = lambda_client.get_function_concurrency(FunctionName=function_name).get(
                    "ReservedConcurrentExecutions") or 0
            except lambda_client.exceptions.ResourceNotFoundException:
                current = 0  # not deployed yet
        unreserved = limits["UnreservedConcurrentExecutions"]
        room = reservation_room(unreserved, current, reserved_concurrency)
        if room < MINIMUM_UNRESERVED_CONCURRENCY:
            raise AccountNotReady(
                f"function.reserved_concurrency = {reserved_concurrency} for {environment_name} "
                f"would leave {room} of the account's concurrency unreserved in {region} "
                f"(total {limits['ConcurrentExecutions']}, minimum unreserved "
                f"{MINIMUM_UNRESERVED_CONCURRENCY}): lower it in environments.toml, or ask AWS "
                "for a higher concurrency quota")


@dataclass(frozen=True, eq=False)
class Routing:
    """Where an alias sends traffic: a primary version plus at most one weighted extra version."""

    primary_version: str
    additional_version_weights: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        weights = {str(version): check_weight(weight, f"weight of version {version}")
                   for version, weight in self.additional_version_weights.items()}
        if len(weights) > 1:
            raise RoutingError(f"routing {weights}: a Lambda alias takes at most one additional "
                               "version; drop all but one")
        for version in weights:
            if version == self.primary_version:
                raise RoutingError(f"version {version} is both primary and weighted: give the "
                                   "additional weight to another version")
        object.__setattr__(self, "primary_version", str(self.primary_version))
        object.__setattr__(self, "additional_version_weights", MappingProxyType(weights))

    @classmethod
    def from_alias(cls, alias: Mapping[str, Any]) -> Routing:
        """The routing of a GetAlias/UpdateAlias response (an AliasConfiguration)."""
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return cls(alias["FunctionVersion"], weights)

    @property
    def canary_weight(self) -> float:
        """Share of traffic on the additional version; 0.0 when all goes to the primary."""
        return sum(self.additional_version_weights.values(), 0.0)

    def describe(self) -> str:
        """One line, e.g. 'v3 90 % + v4 10 %' or 'v4 100 %'."""
        parts = [f"v{self.primary_version} {_percent(1 - self.canary_weight)} %"]
        parts += [f"v{version} {_percent(weight)} %"
                  for version, weight in self.additional_version_weights.items()]
        return " + ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"primary_version": self.primary_version,
                "additional_version_weights": dict(self.additional_version_weights)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Routing):
            return NotImplemented
        mine, theirs = self.additional_version_weights, other.additional_version_weights
        return (self.primary_version == other.primary_version and mine.keys() == theirs.keys()
                and all(math.isclose(mine[v], theirs[v], abs_tol=WEIGHT_TOLERANCE) for v in mine))

    def __hash__(self) -> int:
        # Weights are left out: equal routings may differ by a rounding error.
        return hash((self.primary_version, frozenset(self.additional_version_weights)))


def _percent(share: float) -> str:
    return f"{round(share * 100, 2):g}"


@dataclass(frozen=True)
class LiveAlias:
    """The alias as Lambda reports it now; `revision_id` guards a later update against races."""

    function_name: str
    alias_name: str
    routing: Routing
    revision_id: str
    # Terraform sets it; the auto-rollback function replaces it with what it did.
    description: str = ""


def _live_alias(function_name: str, alias_name: str, response: Mapping[str, Any]) -> LiveAlias:
    return LiveAlias(function_name, alias_name, Routing.from_alias(response),
                     response["RevisionId"], response.get("Description", ""))


def _alias_not_found(lambda_client: Any, function_name: str, alias_name: str) -> str:
    return (f"Lambda alias {function_name}:{alias_name} not found in "
            f"{lambda_client.meta.region_name}: deploy the stack first")


def read_alias(lambda_client: Any, function_name: str, alias_name: str) -> LiveAlias:
    """GetAlias: the alias's live routing and revision id."""
    with _translated("GetAlias", _alias_not_found(lambda_client, function_name, alias_name)):
        response = lambda_client.get_alias(FunctionName=function_name, Name=alias_name)
    return _live_alias(function_name, alias_name, response)


def find_alias(lambda_client: Any, function_name: str, alias_name: str) -> LiveAlias | None:
    """GetAlias, or None when the function or the alias does not exist (yet)."""
    with _translated("GetAlias"):
        try:
            response = lambda_client.get_alias(FunctionName=function_name, Name=alias_name)
        except lambda_client.exceptions.ResourceNotFoundException:
            return None
    return _live_alias(function_name, alias_name, response)


def latest_published_version(lambda_client: Any, function_name: str) -> str:
    """The highest published version of the function ("" when only $LATEST exists)."""
    with _translated("ListVersionsByFunction",
                     f"Lambda function {function_name} not found in "
                     f"{lambda_client.meta.region_name}: deploy the stack first"):
        versions = [version["Version"]
                    for page in lambda_client.get_paginator("list_versions_by_function").paginate(
                        FunctionName=function_name)
                    for version in page["Versions"] if version["Version"].isdigit()]
    return max(versions, key=int, default="")


def function_environment(lambda_client: Any, function_name: str, version: str) -> dict[str, str]:
    """The environment variables of one published version (immutable, like its code)."""
    with _translated("GetFunctionConfiguration",
                     f"version {version} of Lambda function {function_name} not found in "
                     f"{lambda_client.meta.region_name}"):
        response = lambda_client.get_function_configuration(FunctionName=function_name,
                                                            Qualifier=version)
    return dict(response.get("Environment", {}).get("Variables", {}))


def read_parameter(ssm_client: Any, selector: str) -> tuple[str, str]:
    """(version, value) of an SSM parameter, `selector` being `name` or `name:version`."""
    with _translated("GetParameter", f"SSM parameter {selector} not found"):
        parameter = ssm_client.get_parameter(Name=selector)["Parameter"]
    return str(parameter["Version"]), str(parameter["Value"])


def wait_for_routing(lambda_client: Any, function_name: str, alias_name: str, expected: Routing, *,
                     timeout: float = 60.0, interval: float = 1.0,
                     sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> LiveAlias:
    """Poll GetAlias every `interval` s until it shows `expected` on consecutive reads.

    The 1 s default keeps well under Lambda's control-plane quota (~15 req/s per account,
    shared with every other tool). The last read happens at or just after `timeout`.
    """
    deadline = clock() + timeout
    matches = 0
    while True:
        live = read_alias(lambda_client, function_name, alias_name)
        matches = matches + 1 if live.routing == expected else 0
        if matches >= CONSECUTIVE_READS:
            return live
        remaining = deadline - clock()
        if remaining <= 0:
            raise RoutingTimeout(
                f"alias {function_name}:{alias_name} did not settle on {expected.describe()} "
                f"within {timeout:g} s; last seen {live.routing.describe()}: check for a "
                "concurrent deploy, then rerun")
        sleep(min(interval, remaining))


def set_routing(lambda_client: Any, function_name: str, alias_name: str, routing: Routing, *,
                revision_id: str | None = None) -> LiveAlias:
    """Point the alias at `routing` with ONE UpdateAlias call; safe to repeat.

    With `revision_id` (from a LiveAlias read earlier) Lambda refuses the update if the alias
    changed since, so a newer release started meanwhile is not silently overwritten.
    """
    versions = [routing.primary_version, *routing.additional_version_weights]
    for version in versions:
        if not version.isdigit():
            raise RoutingError(f"version {version!r}: must be a published version number such "
                               "as '3' ($LATEST cannot take production traffic)")
    request: dict[str, Any] = {
        "FunctionName": function_name, "Name": alias_name,
        "FunctionVersion": routing.primary_version,
        # Without weights an empty RoutingConfig removes the weighted version, as the Terraform
        # provider sends it: Lambda then reports no RoutingConfig at all, which is what the
        # stack's plan expects (an empty weights map is kept by some stand-ins).
        "RoutingConfig": ({"AdditionalVersionWeights": dict(routing.additional_version_weights)}
                          if routing.additional_version_weights else {}),
    }
    if revision_id:
        request["RevisionId"] = revision_id
    with _translated("UpdateAlias", _alias_not_found(lambda_client, function_name, alias_name)):
        try:
            response = lambda_client.update_alias(**request)
        except ClientError as error:
            if _error_code(error) == "PreconditionFailedException":
                raise AwsError(f"alias {function_name}:{alias_name} changed since revision "
                               f"{revision_id} was read (someone else updated it meanwhile): "
                               "read the alias again and rerun") from None
            raise
    return _live_alias(function_name, alias_name, response)


def fast_rollback(lambda_client: Any, function_name: str, alias_name: str, stable_version: str, *,
                  revision_id: str | None = None) -> LiveAlias:
    """Send all traffic to `stable_version` with ONE UpdateAlias call; safe to repeat."""
    return set_routing(lambda_client, function_name, alias_name, Routing(str(stable_version)),
                       revision_id=revision_id)


def _describe_alarms(cloudwatch_client: Any, names: list[str]) -> Iterator[Mapping[str, Any]]:
    """Every existing alarm among `names` (metric and composite), as DescribeAlarms gives it."""
    paginator = cloudwatch_client.get_paginator("describe_alarms")
    with _translated("DescribeAlarms"):
        for start in range(0, len(names), ALARM_NAMES_PER_REQUEST):
            batch = names[start:start + ALARM_NAMES_PER_REQUEST]
            pages = paginator.paginate(AlarmNames=batch,
                                       AlarmTypes=["MetricAlarm", "CompositeAlarm"])
            for page in pages:
                yield from page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])


def alarm_states(cloudwatch_client: Any, alarm_names: list[str] | tuple[str, ...]
                 ) -> dict[str, str]:
    """State (OK, ALARM, INSUFFICIENT_DATA) of each named alarm; MISSING for unknown names."""
    names = list(dict.fromkeys(alarm_names))
    states = dict.fromkeys(names, MISSING)
    for alarm in _describe_alarms(cloudwatch_client, names):
        if alarm["AlarmName"] in states:
            states[alarm["AlarmName"]] = alarm["StateValue"]
    return states


def first_alarm_since(cloudwatch_client: Any, alarm_names: list[str] | tuple[str, ...],
                      since: datetime) -> tuple[str, datetime] | None:
    """The alarm among `alarm_names` that went into ALARM first at or after `since`, and when
    (CloudWatch's StateUpdatedTimestamp: exact, whenever this is asked)."""
    firing = [(alarm["StateUpdatedTimestamp"], alarm["AlarmName"])
              for alarm in _describe_alarms(cloudwatch_client, list(dict.fromkeys(alarm_names)))
              if alarm["StateValue"] == "ALARM" and alarm["StateUpdatedTimestamp"] >= since]
    if not firing:
        return None
    when, name = min(firing)
    return name, when


@dataclass(frozen=True)
class VersionMetrics:
    """One version's traffic behind the alias over a time window (CloudWatch, 1-minute data)."""

    version: str
    invocations: int
    errors: int
    # errors / invocations, a fraction from 0 to 1; None when the version saw no invocations.
    error_rate: float | None
    # The worst 1-minute p99 in the window: CloudWatch cannot merge percentiles of several
    # periods, and the worst minute errs on the side of catching a slow canary.
    p99_duration_ms: float | None
    average_duration_ms: float | None


def _metric_query(query_id: str, metric: str, stat: str, dimensions: list[dict[str, str]]
                  ) -> dict[str, Any]:
    return {"Id": query_id, "ReturnData": True, "MetricStat": {
        "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
        "Period": METRIC_PERIOD_SECONDS, "Stat": stat}}


def version_metrics(cloudwatch_client: Any, function_name: str, alias_name: str, version: str,
                    start: datetime, end: datetime) -> VersionMetrics:
    """Invocations, errors and duration of `version` behind `<fn>:<alias>` in [start, end)."""
    dimensions = [{"Name": "FunctionName", "Value": function_name},
                  {"Name": "Resource", "Value": f"{function_name}:{alias_name}"},
                  {"Name": "ExecutedVersion", "Value": str(version)}]
    queries = [_metric_query("invocations", "Invocations", "Sum", dimensions),
               _metric_query("errors", "Errors", "Sum", dimensions),
               _metric_query("p99", "Duration", "p99", dimensions),
               _metric_query("duration_sum", "Duration", "Sum", dimensions),
               _metric_query("duration_count", "Duration", "SampleCount", dimensions)]
    values: dict[str, list[float]] = {query["Id"]: [] for query in queries}
    # One request in practice; the paginator only matters for windows of many days.
    paginator = cloudwatch_client.get_paginator("get_metric_data")
    with _translated("GetMetricData"):
        for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
            for result in page["MetricDataResults"]:
                values[result["Id"]].extend(result["Values"])
    invocations = int(round(sum(values["invocations"])))
    errors = int(round(sum(values["errors"])))
    duration_sum, duration_count = sum(values["duration_sum"]), sum(values["duration_count"])
    return VersionMetrics(
        version=str(version),
        invocations=invocations,
        errors=errors,
        error_rate=errors / invocations if invocations else None,
        p99_duration_ms=max(values["p99"]) if values["p99"] else None,
        average_duration_ms=duration_sum / duration_count if duration_count else None,
    )


@dataclass(frozen=True)
class QuarantineEntry:
    """A version a rollback took traffic from; the stack refuses plans that give it traffic."""

    version: str
    reason: str
    at: str

    def describe(self) -> str:
        return f"v{self.version} (rolled back by {self.reason} at {self.at})"


def read_quarantine(ssm_client: Any, parameter: str) -> dict[str, QuarantineEntry]:
    """The stack's quarantine record (modules/quarantine.py), by version; {} when it is empty."""
    with _translated("GetParameter"):
        try:
            value = ssm_client.get_parameter(Name=parameter)["Parameter"]["Value"]
        except ClientError as error:
            if _error_code(error) != "ParameterNotFound":
                raise
            return {}
    try:
        entries = json.loads(value or "{}")
        return {str(version): QuarantineEntry(str(version), str(entry.get("reason", "")),
                                              str(entry.get("at", "")))
                for version, entry in entries.items()}
    except (ValueError, AttributeError) as error:
        raise AwsError(f"quarantine parameter {parameter} is not JSON {{version: {{reason, at}}}} "
                       f"({error}): fix its value in SSM, e.g. to {{}}") from None


def _write_quarantine(ssm_client: Any, parameter: str, entries: Mapping[str, QuarantineEntry]
                      ) -> None:
    value = json.dumps({version: {"reason": entry.reason, "at": entry.at}
                        for version, entry in entries.items()})
    with _translated("PutParameter"):
        ssm_client.put_parameter(Name=parameter, Value=value, Type="String", Overwrite=True)


def quarantine_versions(ssm_client: Any, parameter: str, versions: Iterable[str], reason: str,
                        at: str) -> list[str]:
    """Add `versions` to the quarantine (an entry already there keeps its first reason);
    returns the versions added."""
    entries = read_quarantine(ssm_client, parameter)
    added = [version for version in dict.fromkeys(versions) if version not in entries]
    if added:
        entries.update({version: QuarantineEntry(version, reason, at) for version in added})
        _write_quarantine(ssm_client, parameter, entries)
    return added


def lift_quarantine(ssm_client: Any, parameter: str, version: str) -> QuarantineEntry:
    """Take `version` out of the quarantine; plans may give it traffic again."""
    entries = read_quarantine(ssm_client, parameter)
    if version not in entries:
        listed = ", ".join(f"v{entry}" for entry in entries) or "none"
        raise AwsError(f"v{version} is not quarantined (quarantined: {listed}); nothing changed")
    lifted = entries.pop(version)
    _write_quarantine(ssm_client, parameter, entries)
    return lifted


@dataclass(frozen=True)
class VersionCode:
    """A published version's code package (CodeSha256: base64 SHA-256 of the zip, the value
    Terraform's `source_code_hash` holds), the fingerprint of the shared settings it was
    published with ("" before versions carried it) and when it was published."""

    version: str
    code_sha256: str
    published: datetime
    shared_settings_sha256: str = ""


def version_code(lambda_client: Any, function_name: str, version: str) -> VersionCode:
    """GetFunctionConfiguration of one published version."""
    with _translated("GetFunctionConfiguration",
                     f"version {version} of {function_name} not found in "
                     f"{lambda_client.meta.region_name}"):
        response = lambda_client.get_function_configuration(FunctionName=function_name,
                                                            Qualifier=version)
    variables = response.get("Environment", {}).get("Variables", {})
    return VersionCode(str(version), response["CodeSha256"],
                       lambda_timestamp(response["LastModified"]),
                       variables.get(SHARED_SETTINGS_VARIABLE, ""))


def lambda_timestamp(text: str) -> datetime:
    """Lambda's LastModified, e.g. 2026-12-01T18:33:16.935+0000 (fractions of any length)."""
    fraction = re.search(r"\.(\d+)", text)
    if fraction:  # fromisoformat takes at most microseconds
        text = text.replace(fraction.group(0), "." + fraction.group(1)[:6].ljust(6, "0"))
    return datetime.fromisoformat(text)


def last_minute_of_other_versions(cloudwatch_client: Any, function_name: str, alias_name: str,
                                  version: str, start: datetime, end: datetime
                                  ) -> datetime | None:
    """The start of the newest minute in [start, end) in which the alias ran any version but
    `version` (its Invocations exceed those with ExecutedVersion = `version`); None if none."""
    alias_dimensions = [{"Name": "FunctionName", "Value": function_name},
                        {"Name": "Resource", "Value": f"{function_name}:{alias_name}"}]
    queries = [
        _metric_query("alias", "Invocations", "Sum", alias_dimensions),
        _metric_query("version", "Invocations", "Sum", [
            *alias_dimensions, {"Name": "ExecutedVersion", "Value": str(version)}]),
    ]
    per_minute: dict[str, dict[datetime, float]] = {"alias": {}, "version": {}}
    paginator = cloudwatch_client.get_paginator("get_metric_data")
    with _translated("GetMetricData"):
        for page in paginator.paginate(MetricDataQueries=queries, StartTime=start, EndTime=end):
            for result in page["MetricDataResults"]:
                for when, value in zip(result["Timestamps"], result["Values"], strict=True):
                    minutes = per_minute[result["Id"]]
                    minutes[when] = minutes.get(when, 0.0) + value
    others = [when for when, total in per_minute["alias"].items()
              if total > per_minute["version"].get(when, 0.0)]
    return max(others) if others else None


@dataclass(frozen=True)
class AlarmState:
    name: str
    state: str  # OK, ALARM or INSUFFICIENT_DATA
    # When the alarm last changed state (CloudWatch's StateTransitionedTimestamp, else
    # StateUpdatedTimestamp).
    changed: datetime


def alarms_named_after(cloudwatch_client: Any, function_name: str) -> list[AlarmState]:
    """The alarms named `<function_name>-*`: a stack's release alarms (modules/alarms.py)."""
    paginator = cloudwatch_client.get_paginator("describe_alarms")
    alarms = []
    with _translated("DescribeAlarms"):
        for page in paginator.paginate(AlarmNamePrefix=f"{function_name}-",
                                       AlarmTypes=["MetricAlarm", "CompositeAlarm"]):
            for alarm in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                changed = alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]
                alarms.append(AlarmState(alarm["AlarmName"], alarm["StateValue"], changed))
    return alarms
