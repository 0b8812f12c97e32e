"""The rollback function, invoked as SNS invokes it, against a moto Lambda: it clears a failing
canary by itself, leaves everything else alone, and fails loudly when AWS does."""

import ast
import json
import sys
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse

from conftest import PROJECT_ROOT
from fakes.alarm_notifications import (
    FUNCTION,
    STATE_CHANGE_TIME,
    dimensions,
    metric_math_alarm,
    single_metric_alarm,
    sns_event,
)
from fakes.moto_server import ALIAS
from release.config import quarantine_parameter_name

FUNCTION_DIR = PROJECT_ROOT / "functions" / "rollback"
CANARY_ALARM = f"{FUNCTION}-canary-error-rate"
P99_ALARM = f"{FUNCTION}-p99-duration"
LOG_FIELDS = {"action", "reason", "alarm", "function", "alias", "routing_before", "routing_after",
              "revision_id", "state_change_time", "quarantined"}


# --- the function under test ---------------------------------------------------------------------

@pytest.fixture
def rollback(fake_aws, load_rollback, monkeypatch):
    """The handler configured for FUNCTION, whose alias runs v2 as a 10 % canary over v1."""
    fake_aws.deploy(FUNCTION, versions=2, primary="1", weights={"2": 0.1})
    monkeypatch.setenv("FUNCTION_NAME", FUNCTION)
    monkeypatch.setenv("ALIAS_NAME", ALIAS)
    monkeypatch.setenv("ALARM_NAMES", f"{FUNCTION}-error-rate, {CANARY_ALARM},{P99_ALARM}")
    monkeypatch.setenv("QUARANTINE_PARAMETER", quarantine_parameter_name(FUNCTION))
    return load_rollback()


def alias(fake_aws) -> dict[str, Any]:
    response = fake_aws.lambda_client.get_alias(FunctionName=FUNCTION, Name=ALIAS)
    response.pop("ResponseMetadata")  # request ids differ from call to call
    return response


def weights(alias_response: dict[str, Any]) -> dict[str, float]:
    return (alias_response.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}


def count_requests(module, operation: str) -> list[str]:
    """HTTP attempts the handler's client makes for `operation` (retries count separately)."""
    attempts: list[str] = []
    module.lambda_client().meta.events.register(
        f"before-send.lambda.{operation}", lambda **_: attempts.append(operation))
    return attempts


def quarantined(fake_aws) -> dict[str, Any]:
    """The quarantine parameter's entries ({} while it does not exist)."""
    try:
        response = fake_aws.ssm_client.get_parameter(Name=quarantine_parameter_name(FUNCTION))
    except fake_aws.ssm_client.exceptions.ParameterNotFound:
        return {}
    return json.loads(response["Parameter"]["Value"])


def decisions(capsys) -> list[dict[str, Any]]:
    """The handler's log: every stdout line must be one JSON object with the decision fields."""
    lines = capsys.readouterr().out.splitlines()
    parsed = [json.loads(line) for line in lines]
    for entry in parsed:
        assert entry.keys() >= LOG_FIELDS, entry
        assert entry["action"] in {"rolled-back", "ignored", "failed"}
    return parsed


# --- rolling back --------------------------------------------------------------------------------

@pytest.mark.parametrize("notification", [metric_math_alarm(), single_metric_alarm()],
                         ids=["metric-math", "single-metric"])
def test_alarm_during_a_canary_sends_all_traffic_to_the_primary(rollback, fake_aws, capsys,
                                                                notification):
    revision_before = alias(fake_aws)["RevisionId"]
    updates = count_requests(rollback, "UpdateAlias")

    results = rollback.lambda_handler(sns_event(notification), None)

    after = alias(fake_aws)
    assert (after["FunctionVersion"], weights(after)) == ("1", {})
    name = notification["AlarmName"]
    assert after["Description"] == (f"rolled back by alarm {name} at {STATE_CHANGE_TIME}: "
                                    "v1 90 % + v2 10 % -> v1 100 %")
    assert after["Description"].startswith(rollback.ROLLBACK_DESCRIPTION_PREFIX)
    assert updates == ["UpdateAlias"]
    [logged] = decisions(capsys)
    assert logged == results[0]
    assert "canary v2" in logged.pop("reason")
    assert logged.items() >= {
        "action": "rolled-back", "alarm": name, "function": FUNCTION, "alias": ALIAS,
        "routing_before": "v1 90 % + v2 10 %", "routing_after": "v1 100 %",
        "revision_id": revision_before, "state_change_time": STATE_CHANGE_TIME,
        "quarantined": "2"}.items()
    assert quarantined(fake_aws) == {"2": {"reason": f"alarm {name}", "at": STATE_CHANGE_TIME}}


def test_a_second_delivery_of_the_same_alarm_changes_nothing(rollback, fake_aws, capsys):
    event = sns_event(metric_math_alarm())
    rollback.lambda_handler(event, None)
    rolled_back = alias(fake_aws)
    updates = count_requests(rollback, "UpdateAlias")

    rollback.lambda_handler(event, None)

    assert alias(fake_aws)["RevisionId"] == rolled_back["RevisionId"]
    assert updates == []
    first, second = decisions(capsys)
    assert (first["action"], second["action"]) == ("rolled-back", "ignored")
    assert "no canary" in second["reason"]
    assert quarantined(fake_aws) == {"2": {"reason": f"alarm {CANARY_ALARM}",
                                           "at": STATE_CHANGE_TIME}}


def test_the_quarantine_keeps_the_versions_already_in_it(rollback, fake_aws):
    earlier = {"1": {"reason": "invoke rollback --fast", "at": "2026-11-30T08:00:00Z"}}
    fake_aws.ssm_client.put_parameter(Name=quarantine_parameter_name(FUNCTION), Type="String",
                                      Value=json.dumps(earlier), Overwrite=True)
    rollback.lambda_handler(sns_event(metric_math_alarm()), None)
    assert quarantined(fake_aws) == {
        **earlier, "2": {"reason": f"alarm {CANARY_ALARM}", "at": STATE_CHANGE_TIME}}


def test_a_quarantine_write_that_fails_after_the_rollback_is_finished_by_the_retry(
        rollback, fake_aws, capsys):
    """Traffic comes first: the alias is rolled back even when SSM is down; the delivery fails,
    and Lambda's retry (the canary now gone) only writes the quarantine."""
    event = sns_event(metric_math_alarm())
    attempts = fail_requests(rollback, "PutParameter", times=5, service="ssm")
    with pytest.raises(rollback.RollbackFailed, match="PutParameter"):
        rollback.lambda_handler(event, None)
    assert len(attempts) == 5
    assert weights(alias(fake_aws)) == {}
    assert quarantined(fake_aws) == {}

    [retried] = rollback.lambda_handler(event, None)

    assert (retried["action"], retried["quarantined"]) == ("ignored", "2")
    assert quarantined(fake_aws) == {"2": {"reason": f"alarm {CANARY_ALARM}",
                                           "at": STATE_CHANGE_TIME}}
    failed, ignored = decisions(capsys)
    assert failed["action"] == "failed"
    assert failed["reason"].startswith("QuarantineFailed: rolled back (v1 90 % + v2 10 % -> "
                                       "v1 100 %), but recording v2 in ")


def test_a_hand_corrupted_quarantine_is_kept_and_named_and_the_retry_records_the_version(
        rollback, fake_aws, capsys):
    parameter = quarantine_parameter_name(FUNCTION)
    fake_aws.ssm_client.put_parameter(Name=parameter, Type="String", Value="v1, v2 (see INC-7)",
                                      Overwrite=True)
    event = sns_event(metric_math_alarm())
    with pytest.raises(rollback.RollbackFailed):
        rollback.lambda_handler(event, None)
    # The traffic is safe; the value someone wrote is not overwritten.
    assert weights(alias(fake_aws)) == {}
    value = fake_aws.ssm_client.get_parameter(Name=parameter)["Parameter"]["Value"]
    assert value == "v1, v2 (see INC-7)"
    [failed] = decisions(capsys)
    assert failed["reason"] == (
        "QuarantineFailed: rolled back (v1 90 % + v2 10 % -> v1 100 %), but recording v2 in "
        f"{parameter} failed ({parameter} holds 'v1, v2 (see INC-7)', not a JSON object of "
        "quarantined versions: fix its value in SSM (e.g. {})); the retried delivery records it")
    fake_aws.ssm_client.put_parameter(Name=parameter, Type="String", Value="{}", Overwrite=True)
    [retried] = rollback.lambda_handler(event, None)
    assert (retried["action"], retried["quarantined"]) == ("ignored", "2")
    assert list(quarantined(fake_aws)) == ["2"]


def test_an_alarm_for_a_version_nobody_rolled_back_quarantines_nothing(rollback, fake_aws):
    """Without this function's rollback description for this very alarm, an alarm about a
    version that serves nothing (e.g. one rolled back by invoke) is no reason to quarantine."""
    fake_aws.set_routing(FUNCTION, "1", {})
    [result] = rollback.lambda_handler(sns_event(metric_math_alarm()), None)
    assert (result["action"], result["quarantined"]) == ("ignored", None)
    assert quarantined(fake_aws) == {}


def test_a_long_alarm_name_still_fits_the_alias_description(rollback):
    description = rollback.rollback_description("x" * 255, STATE_CHANGE_TIME,
                                                "v1 95 % + v2 5 %", "v1 100 %")
    assert len(description) <= 256
    assert description.startswith(rollback.ROLLBACK_DESCRIPTION_PREFIX + "xxx")
    assert description.endswith(f" at {STATE_CHANGE_TIME}: v1 95 % + v2 5 % -> v1 100 %")


# --- leaving the alias alone ---------------------------------------------------------------------

def assert_untouched(rollback, fake_aws, capsys, event, reason_part: str) -> None:
    before = alias(fake_aws)
    updates = count_requests(rollback, "UpdateAlias")
    [result] = rollback.lambda_handler(event, None)
    assert alias(fake_aws) == before
    assert updates == []
    [logged] = decisions(capsys)
    assert logged == result
    assert logged["action"] == "ignored"
    assert reason_part in logged["reason"]


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
@pytest.mark.parametrize("make", [metric_math_alarm, single_metric_alarm])
def test_alarms_that_clear_or_lack_data_change_nothing(rollback, fake_aws, capsys, state, make):
    assert_untouched(rollback, fake_aws, capsys, sns_event(make(state=state)), state)


def test_an_alarm_not_in_alarm_names_changes_nothing(rollback, fake_aws, capsys):
    event = sns_event(metric_math_alarm(name=f"{FUNCTION}-some-other-alarm"))
    assert_untouched(rollback, fake_aws, capsys, event, "ALARM_NAMES")


@pytest.mark.parametrize("metric_dimensions, reason_part", [
    (dimensions(function="another-function"), "FunctionName=another-function"),
    ([{"value": FUNCTION, "name": "FunctionName"},
      {"value": "another-function:production", "name": "Resource"}], "Resource=another-function"),
    (dimensions(alias="staging"), f"Resource={FUNCTION}:staging"),
    ([{"value": "deploy-patterns-demo-staging", "name": "ApiName"},
      {"value": "prod", "name": "Stage"}], "FunctionName=None"),
], ids=["other-function", "other-resource", "other-alias", "api-gateway-metric"])
@pytest.mark.parametrize("make", [metric_math_alarm, single_metric_alarm])
def test_an_alarm_on_another_function_or_alias_changes_nothing(rollback, fake_aws, capsys, make,
                                                               metric_dimensions, reason_part):
    event = sns_event(make(metric_dimensions=metric_dimensions))
    assert_untouched(rollback, fake_aws, capsys, event, reason_part)


def test_an_alarm_raised_for_an_older_canary_changes_nothing(rollback, fake_aws, capsys):
    # v2's canary alarm fires late, after v3 replaced v2 as the canary.
    fake_aws.publish_version(FUNCTION)
    fake_aws.set_routing(FUNCTION, "1", {"3": 0.1})
    event = sns_event(metric_math_alarm(metric_dimensions=dimensions(executed_version="2")))
    assert_untouched(rollback, fake_aws, capsys, event, "stale alarm")


def test_an_alias_without_a_canary_is_left_alone(rollback, fake_aws, capsys):
    fake_aws.set_routing(FUNCTION, "2")
    assert_untouched(rollback, fake_aws, capsys, sns_event(single_metric_alarm()), "no canary")


# --- racing a newer phase ------------------------------------------------------------------------

class RacingClient:
    """The handler's client, with the alias changed right after the handler's first read."""

    def __init__(self, client: Any, change_alias):
        self._client = client
        self._change_alias = change_alias
        self.updates: list[dict[str, Any]] = []

    def get_alias(self, **request: Any) -> dict[str, Any]:
        response = self._client.get_alias(**request)
        if self._change_alias:
            self._change_alias()
            self._change_alias = None
        return response

    def update_alias(self, **request: Any) -> dict[str, Any]:
        self.updates.append(request)
        return self._client.update_alias(**request)


@pytest.mark.parametrize("primary, routing, outcome, reason_part", [
    ("1", {"2": 0.5}, "rolled-back", "changed once meanwhile"),  # the next step of the same canary
    ("1", {"3": 0.1}, "ignored", "now runs canary v3"),          # a newer release's canary
    ("1", {}, "ignored", "no canary"),                           # rolled back by someone else
    ("2", {}, "ignored", "no canary"),                           # promoted
], ids=["same-canary-moved-on", "new-canary", "already-rolled-back", "promoted"])
def test_an_alias_changed_between_read_and_update_is_read_again(
        rollback, fake_aws, capsys, monkeypatch, primary, routing, outcome, reason_part):
    fake_aws.publish_version(FUNCTION)  # v3, for the newer canary
    racing = RacingClient(rollback.lambda_client(),
                          lambda: fake_aws.set_routing(FUNCTION, primary, routing))
    monkeypatch.setattr(rollback, "lambda_client", lambda: racing)

    [result] = rollback.lambda_handler(sns_event(metric_math_alarm(
        metric_dimensions=dimensions())), None)

    after = alias(fake_aws)
    [logged] = decisions(capsys)
    assert logged == result
    assert (logged["action"], reason_part in logged["reason"]) == (outcome, True)
    if outcome == "rolled-back":
        assert (after["FunctionVersion"], weights(after)) == ("1", {})
        assert after["Description"].endswith(": v1 50 % + v2 50 % -> v1 100 %")
        assert len(racing.updates) == 2  # the first one refused by its stale RevisionId
        assert racing.updates[1]["RevisionId"] == logged["revision_id"]
    else:
        assert (after["FunctionVersion"], weights(after)) == (primary, routing)
        assert len(racing.updates) == 1


# --- AWS failures --------------------------------------------------------------------------------

class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any):
        yield self._data


def fail_requests(module, operation: str, times: int, service: str = "lambda") -> list[str]:
    """Answer the first `times` attempts of `operation` with HTTP 500 ServiceException."""
    attempts: list[str] = []

    def respond(request, **_: Any):
        attempts.append(operation)
        if len(attempts) > times:
            return None  # send it to moto
        body = json.dumps({"Type": "Service", "message": "injected outage"}).encode()
        return AWSResponse(request.url, 500, {"x-amzn-ErrorType": "ServiceException"},
                           _Body(body))

    client = getattr(module, f"{service}_client")()
    client.meta.events.register(f"before-send.{service}.{operation}", respond)
    return attempts


def test_a_transient_aws_error_is_retried_and_the_rollback_happens(rollback, fake_aws, capsys):
    attempts = fail_requests(rollback, "UpdateAlias", times=2)
    [result] = rollback.lambda_handler(sns_event(metric_math_alarm()), None)
    assert len(attempts) == 3
    assert weights(alias(fake_aws)) == {}
    assert decisions(capsys)[0]["action"] == result["action"] == "rolled-back"


def test_an_aws_error_that_outlasts_the_retries_fails_the_invocation(rollback, fake_aws, capsys):
    attempts = fail_requests(rollback, "UpdateAlias", times=100)
    with pytest.raises(rollback.RollbackFailed, match="ServiceException"):
        rollback.lambda_handler(sns_event(metric_math_alarm()), None)
    assert len(attempts) == 5  # standard retry mode, 5 attempts in all
    assert weights(alias(fake_aws)) == {"2": 0.1}
    [logged] = decisions(capsys)
    assert logged["action"] == "failed"
    assert "ServiceException" in logged["reason"] and "max retries" in logged["reason"]


def test_a_missing_function_fails_the_invocation(rollback, capsys, monkeypatch):
    monkeypatch.setenv("FUNCTION_NAME", "deleted-function")
    event = sns_event(single_metric_alarm(
        metric_dimensions=dimensions(function="deleted-function")))
    with pytest.raises(rollback.RollbackFailed, match="ResourceNotFoundException"):
        rollback.lambda_handler(event, None)
    [logged] = decisions(capsys)
    assert (logged["action"], logged["function"]) == ("failed", "deleted-function")
    assert "Function not found" in logged["reason"]


def test_one_bad_record_does_not_stop_the_others_but_fails_the_invocation(rollback, fake_aws,
                                                                          capsys):
    event = sns_event("this is not an alarm notification", metric_math_alarm(),
                      single_metric_alarm(state="OK"))
    with pytest.raises(rollback.RollbackFailed, match="1 of 3"):
        rollback.lambda_handler(event, None)
    assert weights(alias(fake_aws)) == {}
    assert [entry["action"] for entry in decisions(capsys)] == ["failed", "rolled-back", "ignored"]


def test_an_event_without_records_fails(rollback, capsys):
    with pytest.raises(rollback.MalformedNotification, match="no Records"):
        rollback.lambda_handler({}, None)
    assert decisions(capsys)[0]["action"] == "failed"


# --- configuration and packaging -----------------------------------------------------------------

@pytest.mark.parametrize("variable, value", [
    ("FUNCTION_NAME", None), ("ALIAS_NAME", None), ("ALARM_NAMES", None),
    ("QUARANTINE_PARAMETER", None), ("FUNCTION_NAME", "  "), ("ALARM_NAMES", " , "),
])
def test_missing_configuration_is_logged_and_raised(rollback, capsys, monkeypatch, variable,
                                                    value):
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)
    with pytest.raises(rollback.ConfigurationError, match=variable) as raised:
        rollback.lambda_handler(sns_event(metric_math_alarm()), None)
    assert "\n" not in str(raised.value)
    [logged] = decisions(capsys)
    assert logged["action"] == "failed" and variable in logged["reason"]


def test_the_function_imports_only_what_the_lambda_runtime_ships():
    tree = ast.parse((FUNCTION_DIR / "handler.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree)
                if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - set(sys.stdlib_module_names) == {"boto3", "botocore"}
