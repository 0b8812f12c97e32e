"""A moto server on 127.0.0.1 standing in for Lambda, CloudWatch and IAM.

One server per test process (`moto_endpoint()` starts it on first use, on a free port);
the `fake_aws` fixture wipes its state (`POST /moto-api/reset`), points boto3 at it through
the environment (fake credentials, region, `AWS_ENDPOINT_URL`, no instance-metadata lookups,
no ~/.aws files) and returns a `FakeAws` to create what a test needs (tests/conftest.py
registers the fixture for every test module):

    def test_x(fake_aws):
        fake_aws.deploy("fn", versions=2, primary="1", weights={"2": 0.1}, alarm_names=["a"])

moto 5.2.5 differs from AWS where the release code (and the real Terraform AWS provider that the
real-Terraform tests run against this server) depend on it. `_teach_moto` is the one place that
makes it AWS-faithful, each patch as AWS documents it:
- RevisionId: UpdateAlias with a RevisionId that is not the alias's current one fails with
  PreconditionFailedException (412), and every update gives the alias a new RevisionId (moto
  ignores RevisionId and never changes it). Source: Lambda API reference, UpdateAlias
  ("RevisionId: Only update the alias if the revision ID matches the ID that's specified").
- Empty routing: GetAlias, CreateAlias and UpdateAlias omit `RoutingConfig` when the alias has no
  additional version weights (moto returns `{"AdditionalVersionWeights": {}}` once one was set).
  Source: terraform-provider-aws acceptance test `testAccCheckAliasRoutingDoesNotExistConfig`,
  which asserts exactly that against AWS. `moto_alias_routing()` switches back to moto's own
  behaviour, for tests that must pass against both.
- Alarm state: a new metric alarm starts in INSUFFICIENT_DATA (moto starts it in OK). Source:
  CloudWatch user guide, "Alarm states" / PutMetricAlarm ("the alarm ... is initially set to
  INSUFFICIENT_DATA").
- Account settings: GetAccountSettings (moto 5.2.5 has no route for it) answers with a total
  concurrency of `ACCOUNT_CONCURRENCY["total"]` (1000, AWS's default quota; tests lower it to a
  new account's 10) less what the functions reserve. Source: Lambda API reference,
  GetAccountSettings (AccountLimit.ConcurrentExecutions, UnreservedConcurrentExecutions).
- AWS managed policies exist (an account stack attaches AmazonAPIGatewayPushToCloudWatchLogs):
  moto loads them only with MOTO_IAM_LOAD_MANAGED_POLICIES=true, set for the server here.
- Percentiles: GetMetricData with a statistic such as `p99` (moto answers HTTP 500). As in
  CloudWatch, percentiles are computed from raw values (PutMetricData `Values`/`Counts`), not
  from statistic sets.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import io
import json
import logging
import os
import re
import threading
import time
import uuid
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import unquote

import boto3
import httpx
import numpy
import pytest
from moto.awslambda import urls as lambda_urls
from moto.awslambda.exceptions import PreconditionFailedException
from moto.awslambda.models import LambdaAlias, lambda_backends
from moto.awslambda.responses import LambdaResponse
from moto.cloudwatch.exceptions import ValidationError as CloudWatchValidationError
from moto.cloudwatch.models import Alarm, Statistics
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer

REGION = "eu-west-1"
ALIAS = "production"
FAKE_KEY_ID = "AKIAFAKEMOTOTESTING0"
FAKE_SECRET = "fake-secret-for-moto"
# Variables that would let a developer's real AWS setup leak into a test.
_REAL_AWS_VARIABLES = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                       "AWS_SECURITY_TOKEN", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
                       "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                       "AWS_CONTAINER_CREDENTIALS_FULL_URI")
# The account's total Lambda concurrency that GetAccountSettings reports.
ACCOUNT_CONCURRENCY = {"total": 1000}
# Whether GetAlias omits an empty RoutingConfig as AWS does (see `moto_alias_routing`).
_ALIAS_ROUTING = {"aws_faithful": True}
_HANDLER = "def lambda_handler(event, context):\n    return {{'statusCode': 200}}  # build {}\n"


def _teach_moto() -> None:
    """Make moto behave like AWS where this project depends on it (see the module docstring)."""
    original_update_alias = LambdaResponse.update_alias
    original_alias_update = LambdaAlias.update
    original_alias_json = LambdaAlias.to_json
    original_alarm_init = Alarm.__init__
    original_statistic = Statistics.get_statistics_for_type

    def update_alias(self: LambdaResponse) -> Any:
        function_name = unquote(self.path.rsplit("/")[-3])
        alias_name = unquote(self.path.rsplit("/", 2)[-1])
        expected = json.loads(self.body).get("RevisionId")
        alias = self.backend.get_alias(name=alias_name, function_name=function_name)
        if expected and expected != alias.revision_id:
            raise PreconditionFailedException(
                "The Revision Id provided does not match the latest Revision Id. "
                "Call the GetAlias API to retrieve the latest Revision Id")
        return original_update_alias(self)

    def alias_update(self: LambdaAlias, *args: Any, **kwargs: Any) -> None:
        original_alias_update(self, *args, **kwargs)
        self.revision_id = str(uuid.uuid4())

    def alias_json(self: LambdaAlias) -> dict[str, Any]:
        response = original_alias_json(self)
        weights = (response.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
        if _ALIAS_ROUTING["aws_faithful"] and not weights:
            response.pop("RoutingConfig", None)
        return response

    def alarm_init(self: Alarm, *args: Any, **kwargs: Any) -> None:
        original_alarm_init(self, *args, **kwargs)
        self.state_value = "INSUFFICIENT_DATA"

    def get_account_settings(self: LambdaResponse) -> Any:
        reserved = sum(int(function.reserved_concurrency or 0)
                       for function in self.backend.list_functions())
        total = ACCOUNT_CONCURRENCY["total"]
        return 200, {}, json.dumps({"AccountLimit": {
            "ConcurrentExecutions": total, "UnreservedConcurrentExecutions": total - reserved,
            "TotalCodeSize": 80530636800, "CodeSizeUnzipped": 262144000,
            "CodeSizeZipped": 52428800}, "AccountUsage": {"TotalCodeSize": 0,
                                                          "FunctionCount": 0}})

    def statistic(self: Statistics, stat: str) -> Any:
        percentile = re.fullmatch(r"p(\d{1,2}(?:\.\d+)?)", stat)
        if percentile and self.metric_single_values_list:
            return float(numpy.percentile(self.metric_single_values_list, float(percentile[1]),
                                          method="inverted_cdf"))
        return original_statistic(self, stat)

    # Replacing moto's methods is the point of this function; mypy rejects it by default.
    LambdaResponse.update_alias = update_alias  # type: ignore[method-assign]
    LambdaAlias.update = alias_update  # type: ignore[method-assign]
    LambdaAlias.to_json = alias_json  # type: ignore[method-assign]
    LambdaResponse.get_account_settings = get_account_settings  # type: ignore[attr-defined]
    lambda_urls.url_paths[r"{0}/(?P<api_version>[^/]+)/account-settings/?$"] = (
        LambdaResponse.dispatch)
    Alarm.__init__ = alarm_init  # type: ignore[method-assign]
    Statistics.get_statistics_for_type = statistic  # type: ignore[method-assign]


class LambdaChanges:
    """A counter of the Lambda API calls that may have changed something (any request that is
    not a GET), which a thread can wait on: what lets a follower of an alias (the fake
    endpoint's AliasFollower, standing in for API Gateway) react to each change at once instead
    of polling GetAlias every few milliseconds. Polling at 100 Hz per environment kept this
    process, which also serves moto to Terraform, busy for half a core the whole session."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def changed(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float, stop: threading.Event) -> None:
        """Until a change after generation `seen`, `stop` is set (then call `wake`) or `timeout`."""
        with self._condition:
            self._condition.wait_for(lambda: self._generation != seen or stop.is_set(), timeout)

    def wake(self) -> None:
        with self._condition:
            self._condition.notify_all()


LAMBDA_CHANGES = LambdaChanges()


def _announce_lambda_changes() -> None:
    """Every Lambda call but a GET counts as a change in LAMBDA_CHANGES, once it is done."""
    original_call_action = LambdaResponse.call_action

    def call_action(self: LambdaResponse) -> Any:
        try:
            return original_call_action(self)
        finally:
            if self.method != "GET":
                LAMBDA_CHANGES.changed()

    LambdaResponse.call_action = call_action  # type: ignore[method-assign, assignment]


@functools.cache
def moto_endpoint() -> str:
    """URL of this process's moto server, started on the first call on a free local port."""
    _teach_moto()
    _announce_lambda_changes()
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    # One INFO line per request drowns test and benchmark output; errors still show.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


@contextlib.contextmanager
def moto_alias_routing() -> Iterator[None]:
    """Within the block, GetAlias returns an empty RoutingConfig as moto 5.2.5 does, not as AWS."""
    _ALIAS_ROUTING["aws_faithful"] = False
    try:
        yield
    finally:
        _ALIAS_ROUTING["aws_faithful"] = True


def _canary_weights(alias: LambdaAlias) -> dict[str, float]:
    # moto annotates routing_config as str; it holds the request's RoutingConfig object.
    routing = cast(dict[str, Any] | None, alias.routing_config) or {}
    return routing.get("AdditionalVersionWeights") or {}


@contextlib.contextmanager
def alarm_update_fails_after_the_alias_moves(function_name: str, timeout: float = 120.0
                                             ) -> Iterator[None]:
    """Within the block, the next PutMetricAlarm waits until the function's alias carries a
    canary weight, then fails (once): an apply that fails after it already moved traffic, which
    Terraform does not roll back. A failure a real Terraform cannot be made to produce on demand
    otherwise."""
    original = CloudWatchResponse.put_metric_alarm
    armed = threading.Event()
    armed.set()

    def put_metric_alarm(self: CloudWatchResponse) -> Any:
        if armed.is_set():
            armed.clear()
            alias = lambda_backends[DEFAULT_ACCOUNT_ID][self.region].get_alias(ALIAS, function_name)
            deadline = time.monotonic() + timeout
            while not _canary_weights(alias) and time.monotonic() < deadline:
                time.sleep(0.05)
            raise CloudWatchValidationError("Injected failure: the alarm could not be updated")
        return original(self)

    CloudWatchResponse.put_metric_alarm = put_metric_alarm  # type: ignore[method-assign]
    try:
        yield
    finally:
        CloudWatchResponse.put_metric_alarm = original  # type: ignore[method-assign]


def reset(endpoint: str) -> None:
    """Forget every resource the server holds (all services, all regions)."""
    # Not httpx's 5 s default: on a loaded machine a reset of many resources takes longer, and
    # a timeout here fails a test that has nothing to do with speed.
    httpx.post(f"{endpoint}/moto-api/reset", timeout=120).raise_for_status()


def fake_aws_environment(endpoint: str, home: Path) -> dict[str, str]:
    """Environment that points boto3 at `endpoint` with fake credentials and no real config."""
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": FAKE_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": FAKE_SECRET,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        # botocore would otherwise ask 169.254.169.254 for an instance role: never in tests.
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
    }


class FakeAws:
    """Creates Lambda, alias, alarm and metric state in the moto server, as Terraform would."""

    def __init__(self, endpoint: str, region: str = REGION):
        self.endpoint = endpoint
        self.region = region
        # The fake's own clients name the endpoint and keys, so setup works whatever the
        # environment of the code under test says.
        self.lambda_client, self.cloudwatch, self.iam, self.apigateway = (
            boto3.client(service, region_name=region, endpoint_url=endpoint,
                         aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET)
            for service in ("lambda", "cloudwatch", "iam", "apigateway"))
        self.ssm_client = boto3.client("ssm", region_name=region, endpoint_url=endpoint,
                                       aws_access_key_id=FAKE_KEY_ID,
                                       aws_secret_access_key=FAKE_SECRET)

    def bootstrap_account(self) -> None:
        """API Gateway's account-level CloudWatch Logs role, as `invoke bootstrap` sets it."""
        self.apigateway.update_account(patchOperations=[{
            "op": "replace", "path": "/cloudwatchRoleArn",
            "value": "arn:aws:iam::123456789012:role/api-gateway-cloudwatch-logs"}])

    def create_function(self, function_name: str) -> None:
        role = self.iam.create_role(
            RoleName=f"{function_name}-role",
            AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
        self.lambda_client.create_function(
            FunctionName=function_name, Runtime="python3.13", Role=role,
            Handler="handler.lambda_handler", Code={"ZipFile": _zip_handler()})

    def publish_version(self, function_name: str,
                        environment: Mapping[str, str] | None = None) -> str:
        """Change the code, or with `environment` only the environment variables (a config-only
        change), and publish it, as each deploy does; returns the new version."""
        if environment is not None:
            self.lambda_client.update_function_configuration(
                FunctionName=function_name, Environment={"Variables": dict(environment)})
        else:
            self.lambda_client.update_function_code(FunctionName=function_name,
                                                    ZipFile=_zip_handler())
        return self.lambda_client.publish_version(FunctionName=function_name)["Version"]

    def put_settings(self, name: str, settings: Mapping[str, Any]) -> str:
        """Write the settings parameter as the stack does; returns its new version."""
        return str(self.ssm_client.put_parameter(Name=name, Value=json.dumps(settings),
                                                 Type="String", Overwrite=True)["Version"])

    def set_routing(self, function_name: str, primary: str,
                    weights: Mapping[str, float] | None = None, alias_name: str = ALIAS) -> str:
        """Route the alias (created on first use) like a Terraform apply; returns the RevisionId."""
        routing = {"AdditionalVersionWeights": dict(weights or {})}
        existing = {alias["Name"] for alias in
                    self.lambda_client.list_aliases(FunctionName=function_name)["Aliases"]}
        change = (self.lambda_client.update_alias if alias_name in existing
                  else self.lambda_client.create_alias)
        return change(FunctionName=function_name, Name=alias_name, FunctionVersion=primary,
                      RoutingConfig=routing)["RevisionId"]

    def create_alarms(self, function_name: str, alarm_names: Sequence[str]) -> None:
        """Metric alarms on the alias's Errors; they start in INSUFFICIENT_DATA, as in AWS."""
        for name in alarm_names:
            self.cloudwatch.put_metric_alarm(
                AlarmName=name, Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum",
                Dimensions=[{"Name": "FunctionName", "Value": function_name},
                            {"Name": "Resource", "Value": f"{function_name}:{ALIAS}"}],
                Period=60, EvaluationPeriods=1, Threshold=1,
                ComparisonOperator="GreaterThanOrEqualToThreshold")

    def set_alarm_state(self, alarm_name: str, state: str) -> None:
        self.cloudwatch.set_alarm_state(AlarmName=alarm_name, StateValue=state,
                                        StateReason="set by a test")

    def deploy(self, function_name: str, *, versions: int = 1, primary: str | None = None,
               weights: Mapping[str, float] | None = None, alarm_names: Sequence[str] = ()
               ) -> None:
        """A function with `versions` published versions, its alias and alarms.

        `primary` defaults to the newest version (a fresh deploy with no canary).
        """
        self.create_function(function_name)
        published = [self.publish_version(function_name) for _ in range(versions)]
        self.set_routing(function_name, primary or published[-1], weights)
        self.create_alarms(function_name, alarm_names)

    def put_version_metrics(self, function_name: str, version: str, at: datetime, *,
                            invocations: int, errors: int,
                            durations_ms: Mapping[float, int] | None = None,
                            alias_name: str = ALIAS) -> None:
        """One minute of Lambda metrics for `version` behind the alias, as Lambda emits them.

        `durations_ms` maps a duration to how many invocations took it (raw values, so
        CloudWatch, and the fake, can compute percentiles).
        """
        dimensions = [{"Name": "FunctionName", "Value": function_name},
                      {"Name": "Resource", "Value": f"{function_name}:{alias_name}"},
                      {"Name": "ExecutedVersion", "Value": str(version)}]
        data: list[dict[str, Any]] = [
            {"MetricName": "Invocations", "Dimensions": dimensions, "Timestamp": at,
             "Value": invocations, "Unit": "Count"},
            {"MetricName": "Errors", "Dimensions": dimensions, "Timestamp": at,
             "Value": errors, "Unit": "Count"}]
        if durations_ms:
            data.append({"MetricName": "Duration", "Dimensions": dimensions, "Timestamp": at,
                         "Values": list(durations_ms), "Counts": list(durations_ms.values()),
                         "Unit": "Milliseconds"})
        self.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=data)


def _zip_handler() -> bytes:
    """A trivial handler; a fresh comment each time so that publishing makes a new version."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("handler.py", _HANDLER.format(uuid.uuid4()))
    return archive.getvalue()


@pytest.fixture
def fake_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeAws:
    """An empty moto server with boto3 pointed at it through the environment."""
    endpoint = moto_endpoint()
    reset(endpoint)
    for name in _REAL_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in fake_aws_environment(endpoint, tmp_path).items():
        monkeypatch.setenv(name, value)
    return FakeAws(endpoint)
