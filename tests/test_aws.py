"""The boto3 layer against a moto server (tests/fakes/moto_server.py), not against mocks."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.config import Config

from fakes.moto_server import ACCOUNT_CONCURRENCY, FAKE_KEY_ID, FAKE_SECRET, REGION, FakeAws
from release.aws import (
    NO_CREDENTIALS,
    AccountNotReady,
    AwsError,
    Routing,
    RoutingError,
    RoutingTimeout,
    alarm_states,
    client,
    fast_rollback,
    first_alarm_since,
    preflight_account,
    preflight_credentials,
    read_alias,
    reservation_room,
    version_metrics,
    wait_for_routing,
)
from release.errors import ReleaseError

FN = "deploy-patterns-demo-dev"
ALIAS = "production"


class FakeTime:
    """A clock that only moves when the code under test sleeps; runs `on_sleep` hooks in order."""

    def __init__(self, *on_sleep):
        self.now = 0.0
        self.sleeps: list[float] = []
        self.pending = list(on_sleep)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.pending:
            self.pending.pop(0)()


def api_calls(boto_client) -> list[str]:
    """Names of the API operations `boto_client` sends from now on (botocore event hook)."""
    calls: list[str] = []
    boto_client.meta.events.register(
        "before-call.*.*", lambda model, **_: calls.append(model.name))
    return calls


# Routing: the value object the release tasks compare live aliases with.

def test_routing_describes_itself_in_one_line():
    assert Routing("3", {"4": 0.1}).describe() == "v3 90 % + v4 10 %"
    assert Routing("4").describe() == "v4 100 %"
    assert Routing("3", {"4": 0.055}).describe() == "v3 94.5 % + v4 5.5 %"


def test_routing_weights_compare_with_a_tolerance_for_api_rounding():
    assert Routing("3", {"4": 0.1}) == Routing("3", {"4": 0.1000001})
    assert Routing("3", {"4": 0.1}) != Routing("3", {"4": 0.2})
    assert Routing("3", {"4": 0.1}) != Routing("3", {"5": 0.1})
    assert Routing("3") != Routing("4")
    assert Routing("3", {"4": 0.1}).canary_weight == pytest.approx(0.1)
    assert Routing("4").canary_weight == 0.0
    assert Routing("3", {4: 0.5}).to_dict() == {"primary_version": "3",
                                                "additional_version_weights": {"4": 0.5}}


@pytest.mark.parametrize("weights, named", [({"4": 0.1, "5": 0.1}, "at most one"),
                                            ({"4": 1.5}, "weight of version 4 = 1.5"),
                                            ({"3": 0.5}, "both primary")])
def test_routing_refuses_what_an_alias_cannot_do(weights, named):
    with pytest.raises(ReleaseError, match=named):
        Routing("3", weights)


# read_alias

def test_read_alias_without_routing(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=1)
    live = read_alias(client("lambda", REGION), FN, ALIAS)
    assert live.routing == Routing("1")
    assert live.routing.describe() == "v1 100 %"
    assert live.revision_id


def test_read_alias_with_a_canary(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.1})
    live = read_alias(client("lambda", REGION), FN, ALIAS)
    assert live.routing == Routing("1", {"2": 0.1})
    assert live.routing.canary_weight == pytest.approx(0.1)


@pytest.mark.parametrize("function_name, alias_name", [("not-deployed", ALIAS), (FN, "staging")])
def test_read_alias_names_what_is_missing_and_the_fix(fake_aws: FakeAws, function_name,
                                                      alias_name):
    fake_aws.deploy(FN)
    with pytest.raises(AwsError) as raised:
        read_alias(client("lambda", REGION), function_name, alias_name)
    message = str(raised.value)
    assert f"{function_name}:{alias_name}" in message
    assert "deploy the stack first" in message
    assert "\n" not in message


# wait_for_routing

def test_wait_for_routing_returns_once_the_change_shows(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.1})
    time = FakeTime(lambda: fake_aws.set_routing(FN, "2"))
    live = wait_for_routing(client("lambda", REGION), FN, ALIAS, Routing("2"),
                            sleep=time.sleep, clock=time.clock)
    assert live.routing == Routing("2")


def test_wait_for_routing_is_not_fooled_by_a_transient_read(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.1})
    time = FakeTime(lambda: fake_aws.set_routing(FN, "2"),
                    lambda: fake_aws.set_routing(FN, "1", {"2": 0.5}),
                    lambda: fake_aws.set_routing(FN, "2"))
    live = wait_for_routing(client("lambda", REGION), FN, ALIAS, Routing("2"),
                            sleep=time.sleep, clock=time.clock)
    assert not time.pending, "returned while the alias was still flipping"
    assert live.routing == Routing("2")


def test_wait_for_routing_times_out_naming_both_routings(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.1})
    time = FakeTime()
    with pytest.raises(RoutingTimeout) as raised:
        wait_for_routing(client("lambda", REGION), FN, ALIAS, Routing("2"), timeout=5,
                         interval=1, sleep=time.sleep, clock=time.clock)
    message = str(raised.value)
    assert "v2 100 %" in message and "v1 90 % + v2 10 %" in message
    assert "\n" not in message
    assert time.sleeps == [1, 1, 1, 1, 1]  # gentle polling, stops at the deadline


# fast_rollback

def test_fast_rollback_sends_all_traffic_to_stable_in_one_call(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.25})
    lambda_client = client("lambda", REGION)
    calls = api_calls(lambda_client)
    live = fast_rollback(lambda_client, FN, ALIAS, "1")
    assert calls == ["UpdateAlias"]
    assert live.routing == Routing("1")
    assert read_alias(lambda_client, FN, ALIAS).routing == Routing("1")


def test_fast_rollback_is_idempotent_and_undoes_a_full_promotion(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="2")
    lambda_client = client("lambda", REGION)
    first = fast_rollback(lambda_client, FN, ALIAS, "1")
    second = fast_rollback(lambda_client, FN, ALIAS, "1")
    assert first.routing == second.routing == Routing("1")


def test_fast_rollback_refuses_a_stale_revision(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=3, primary="1", weights={"2": 0.1})
    lambda_client = client("lambda", REGION)
    seen = read_alias(lambda_client, FN, ALIAS)
    fake_aws.set_routing(FN, "2", {"3": 0.1})  # another release moved on meanwhile
    with pytest.raises(AwsError, match="changed since revision") as raised:
        fast_rollback(lambda_client, FN, ALIAS, "1", revision_id=seen.revision_id)
    assert "\n" not in str(raised.value)
    assert read_alias(lambda_client, FN, ALIAS).routing == Routing("2", {"3": 0.1})
    fresh = read_alias(lambda_client, FN, ALIAS)
    live = fast_rollback(lambda_client, FN, ALIAS, "1", revision_id=fresh.revision_id)
    assert live.routing == Routing("1")


def test_fast_rollback_without_a_stack_says_deploy_first(fake_aws: FakeAws):
    with pytest.raises(AwsError, match="deploy the stack first"):
        fast_rollback(client("lambda", REGION), FN, ALIAS, "1")


def test_fast_rollback_needs_a_published_version():
    with pytest.raises(RoutingError, match=r"\$LATEST"):
        fast_rollback(None, FN, ALIAS, "$LATEST")


# alarm_states

def test_alarm_states_reports_alarm_insufficient_data_and_missing(fake_aws: FakeAws):
    fake_aws.deploy(FN, alarm_names=["errors", "p99", "throttles"])
    fake_aws.set_alarm_state("p99", "ALARM")
    fake_aws.set_alarm_state("errors", "OK")
    states = alarm_states(client("cloudwatch", REGION), ["errors", "p99", "throttles", "canary"])
    # "throttles" was never evaluated: a new alarm starts in INSUFFICIENT_DATA, as in AWS.
    assert states == {"errors": "OK", "p99": "ALARM", "throttles": "INSUFFICIENT_DATA",
                      "canary": "MISSING"}


def test_alarm_states_asks_for_at_most_100_names_per_request(fake_aws: FakeAws):
    names = [f"alarm-{index:03}" for index in range(150)]
    fake_aws.deploy(FN, alarm_names=names)
    fake_aws.set_alarm_state("alarm-149", "ALARM")
    cloudwatch = client("cloudwatch", REGION)
    calls = api_calls(cloudwatch)
    states = alarm_states(cloudwatch, names)
    assert calls == ["DescribeAlarms", "DescribeAlarms"]
    assert len(states) == 150
    assert states["alarm-149"] == "ALARM" and states["alarm-000"] == "INSUFFICIENT_DATA"


def test_first_alarm_since_names_the_earliest_new_alarm_and_when(fake_aws: FakeAws):
    fake_aws.deploy(FN, alarm_names=["old", "canary", "errors", "quiet"])
    fake_aws.set_alarm_state("old", "ALARM")  # fired before the drill started: not this drill's
    since = datetime.now(UTC)
    fake_aws.set_alarm_state("canary", "ALARM")
    fake_aws.set_alarm_state("errors", "ALARM")
    first = first_alarm_since(client("cloudwatch", REGION), ["old", "canary", "errors", "quiet"],
                              since)
    assert first is not None
    name, when = first
    assert name == "canary"
    assert since <= when <= datetime.now(UTC)
    assert first_alarm_since(client("cloudwatch", REGION), ["quiet", "old"], since) is None


# version_metrics

def test_version_metrics_reads_back_what_lambda_put(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2, primary="1", weights={"2": 0.1})
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    fake_aws.put_version_metrics(FN, "2", start + timedelta(seconds=10), invocations=60, errors=3,
                                 durations_ms={100: 55, 900: 5})
    fake_aws.put_version_metrics(FN, "2", start + timedelta(seconds=70), invocations=40, errors=1,
                                 durations_ms={120: 39, 2500: 1})
    # The stable version's data and the alias total must not be counted for version 2.
    fake_aws.put_version_metrics(FN, "1", start + timedelta(seconds=10), invocations=900,
                                 errors=0, durations_ms={80: 900})
    cloudwatch = client("cloudwatch", REGION)
    calls = api_calls(cloudwatch)
    metrics = version_metrics(cloudwatch, FN, ALIAS, "2", start, start + timedelta(minutes=5))
    assert calls == ["GetMetricData"]
    assert (metrics.version, metrics.invocations, metrics.errors) == ("2", 100, 4)
    assert metrics.error_rate == pytest.approx(0.04)
    assert metrics.p99_duration_ms == 2500  # the worst minute's p99
    total_ms = 100 * 55 + 900 * 5 + 120 * 39 + 2500 * 1
    assert metrics.average_duration_ms == pytest.approx(total_ms / 100)


def test_version_metrics_without_traffic_has_no_rates(fake_aws: FakeAws):
    fake_aws.deploy(FN, versions=2)
    end = datetime.now(UTC)
    metrics = version_metrics(client("cloudwatch", REGION), FN, ALIAS, "2",
                              end - timedelta(minutes=5), end)
    assert (metrics.invocations, metrics.errors) == (0, 0)
    assert metrics.error_rate is None and metrics.p99_duration_ms is None
    assert metrics.average_duration_ms is None


def test_an_api_error_becomes_one_line_naming_the_operation(fake_aws: FakeAws):
    end = datetime.now(UTC)
    with pytest.raises(AwsError) as raised:
        version_metrics(client("cloudwatch", REGION), FN, ALIAS, "2", end, end - timedelta(1))
    assert str(raised.value).startswith("GetMetricData failed: ValidationError: ")
    assert "\n" not in str(raised.value)


def test_an_unreachable_endpoint_becomes_one_line():
    with socket.socket() as probe:  # a local port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    unreachable = boto3.client("lambda", region_name=REGION, endpoint_url=closed,
                               aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET,
                               config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(AwsError, match=r"^GetAlias failed: Could not connect") as raised:
        read_alias(unreachable, FN, ALIAS)
    assert "\n" not in str(raised.value)


# preflight_credentials

def test_preflight_describes_the_source_without_secrets(fake_aws: FakeAws):
    description = preflight_credentials(REGION)
    assert "env" in description and REGION in description
    assert FAKE_SECRET not in description and FAKE_KEY_ID not in description


def test_preflight_without_credentials_says_how_to_get_some(fake_aws: FakeAws, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AwsError) as raised:
        preflight_credentials(boto3.Session(region_name=REGION))
    assert str(raised.value) == NO_CREDENTIALS


def test_preflight_names_an_unknown_profile(fake_aws: FakeAws, monkeypatch):
    monkeypatch.setenv("AWS_PROFILE", "release-bot")
    with pytest.raises(AwsError, match="release-bot"):
        preflight_credentials(REGION)


# preflight_account

def preflight(fake_aws: FakeAws, *, logging: bool = True, reserved: int | None = None) -> None:
    preflight_account(client("apigateway", REGION), client("lambda", REGION),
                      environment_name="prod", function_name=FN, logging=logging,
                      reserved_concurrency=reserved)


def test_stage_logging_on_an_account_without_the_api_gateway_role_is_refused(fake_aws: FakeAws):
    with pytest.raises(AccountNotReady) as refusal:
        preflight(fake_aws)
    message = str(refusal.value)
    assert "\n" not in message
    assert message.startswith(f"API Gateway in {REGION} has no CloudWatch Logs role")
    assert "run `invoke bootstrap --env prod`" in message
    assert "api = { logging = false }" in message
    preflight(fake_aws, logging=False)  # nothing to log, nothing needed
    fake_aws.bootstrap_account()
    preflight(fake_aws)


def test_a_reservation_must_leave_the_account_its_minimum_unreserved(fake_aws, monkeypatch):
    fake_aws.bootstrap_account()
    monkeypatch.setitem(ACCOUNT_CONCURRENCY, "total", 10)  # a new account's quota
    with pytest.raises(AccountNotReady, match=r"function.reserved_concurrency = 100 for prod would "
                                              r"leave -90 .* unreserved .*total 10, minimum "
                                              r"unreserved 100\): lower it"):
        preflight(fake_aws, reserved=100)
    monkeypatch.setitem(ACCOUNT_CONCURRENCY, "total", 200)
    preflight(fake_aws, reserved=100)
    preflight(fake_aws, reserved=None)


def test_a_redeploy_counts_the_reservation_the_function_already_holds(fake_aws, monkeypatch):
    fake_aws.bootstrap_account()
    monkeypatch.setitem(ACCOUNT_CONCURRENCY, "total", 200)
    fake_aws.deploy(FN)
    fake_aws.lambda_client.put_function_concurrency(FunctionName=FN,
                                                    ReservedConcurrentExecutions=100)
    # Unreserved is 100 now; keeping the 100 it holds leaves 100, asking 101 leaves 99.
    preflight(fake_aws, reserved=100)
    with pytest.raises(AccountNotReady, match="would leave 99 "):
        preflight(fake_aws, reserved=101)


def test_reservation_room():
    assert reservation_room(unreserved=1000, current_reservation=0, wanted=100) == 900
    assert reservation_room(unreserved=100, current_reservation=100, wanted=100) == 100
