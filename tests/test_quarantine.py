"""The quarantine record as the release tasks read, add to and lift it (the alarm function's side
is in test_rollback_function.py; the plans that refuse it in test_traffic_policy.py and
test_real_terraform.py)."""

from __future__ import annotations

import json

import pytest

from fakes.moto_server import FakeAws
from release import aws, quarantine
from release.aws import AwsError, LiveAlias, QuarantineEntry, Routing
from release.config import QUARANTINE_REFUSAL_PREFIX
from release.history import ReleaseHistory
from release.outputs import StackOutputs
from release.phases import PhaseVariables
from release.runner import refusal
from release.terraform import TerraformError

PARAMETER = "/demo-staging/release/quarantined-versions"


def test_a_missing_parameter_is_an_empty_quarantine(fake_aws: FakeAws):
    assert aws.read_quarantine(fake_aws.ssm_client, PARAMETER) == {}


def test_adding_keeps_the_first_reason_and_the_other_versions(fake_aws: FakeAws):
    ssm = fake_aws.ssm_client
    assert aws.quarantine_versions(ssm, PARAMETER, ["3"], "alarm x", "t1") == ["3"]
    assert aws.quarantine_versions(ssm, PARAMETER, ["3", "4"], "invoke rollback --fast by a@b",
                                   "t2") == ["4"]
    assert aws.read_quarantine(ssm, PARAMETER) == {
        "3": QuarantineEntry("3", "alarm x", "t1"),
        "4": QuarantineEntry("4", "invoke rollback --fast by a@b", "t2")}
    # The same JSON the rollback function writes and the stack's plan reads.
    stored = json.loads(ssm.get_parameter(Name=PARAMETER)["Parameter"]["Value"])
    assert stored == {"3": {"reason": "alarm x", "at": "t1"},
                      "4": {"reason": "invoke rollback --fast by a@b", "at": "t2"}}


def test_lifting_takes_out_one_version_and_names_the_others_when_wrong(fake_aws: FakeAws):
    ssm = fake_aws.ssm_client
    aws.quarantine_versions(ssm, PARAMETER, ["3", "4"], "alarm x", "t1")
    assert aws.lift_quarantine(ssm, PARAMETER, "3") == QuarantineEntry("3", "alarm x", "t1")
    assert set(aws.read_quarantine(ssm, PARAMETER)) == {"4"}
    with pytest.raises(AwsError, match=r"^v3 is not quarantined \(quarantined: v4\); nothing "
                                       r"changed$"):
        aws.lift_quarantine(ssm, PARAMETER, "3")


def test_a_damaged_parameter_is_one_line_with_the_fix(fake_aws: FakeAws):
    fake_aws.ssm_client.put_parameter(Name=PARAMETER, Value="not json", Type="String")
    with pytest.raises(AwsError, match="is not JSON .* fix its value in SSM, e.g. to {}") as raised:
        aws.read_quarantine(fake_aws.ssm_client, PARAMETER)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("value, version", [("7", "7"), ("v12", "12"), (" 3 ", "3")])
def test_version_argument_accepted(value, version):
    assert quarantine.parse_version(value) == version


@pytest.mark.parametrize("value", ["", "abc", "$LATEST", "1.5", "-2"])
def test_version_argument_refused_with_the_fix(value):
    with pytest.raises(quarantine.QuarantineInputError) as raised:
        quarantine.parse_version(value)
    assert str(raised.value).startswith(f"--version {value!r} is not a published version: pass "
                                        "its number, e.g. --version 7")


def stack_outputs(quarantine_parameter: str = "") -> StackOutputs:
    return StackOutputs(
        function_name="demo-staging", alias_name="production", api_url="https://example.test/demo",
        candidate_version="6", stable_version="5", canary_weight=0.0, routing=Routing("5"),
        alarm_names=("demo-staging-canary-error-rate",),
        quarantine_parameter=quarantine_parameter)


def test_lifting_is_recorded_in_the_history(fake_aws: FakeAws, tmp_path):
    aws.quarantine_versions(fake_aws.ssm_client, PARAMETER, ["6"], "alarm x", "t1")
    history = ReleaseHistory(tmp_path / "history.jsonl")
    live = LiveAlias("demo-staging", "production", Routing("5"), "rev", "")
    ticks = iter([100.0, 100.25])  # the injected clock: the record's duration comes from it
    lifted, record = quarantine.lift("staging", stack_outputs(PARAMETER), live,
                                     fake_aws.ssm_client, history, "6", lambda: next(ticks))
    assert lifted == QuarantineEntry("6", "alarm x", "t1")
    [written] = history.read("staging")
    assert written == record.to_dict()
    assert (written["phase"], written["outcome"], written["candidate_version"]) == (
        "release-quarantine", "succeeded", "6")
    assert written["detail"] == ("lifted the quarantine of v6 (rolled back by alarm x at t1); "
                                 "plans may give it traffic again")
    assert written["routing_before"] == written["routing_after"] == Routing("5").to_dict()
    assert written["duration_seconds"] == 0.25


def test_a_stack_without_the_quarantine_output_says_what_to_do(fake_aws: FakeAws, tmp_path):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    with pytest.raises(quarantine.QuarantineInputError, match="run `invoke deploy --env staging`"):
        quarantine.lift("staging", stack_outputs(), None, fake_aws.ssm_client, history, "6",
                        lambda: 0.0)
    assert history.read() == []


def test_the_runner_reports_the_stacks_quarantinerefusal():
    # Terraform wraps the message over lines; the runner's detail is the whole of it.
    message = (f"{QUARANTINE_REFUSAL_PREFIX}: v6 (rolled back by alarm demo-canary-error-rate at "
               "2026-12-01T10:00:00Z). Keep it out: apply canary_weight = 0 with the previous "
               "stable_version, or release new code. To serve it again on purpose: invoke "
               "release-quarantine --env staging --version 6.")
    words = message.split()
    wrapped = [" ".join(words[start:start + 9]) for start in range(0, len(words), 9)]
    error = TerraformError("terraform plan failed", step="plan", exit_code=1,
                           stderr_tail=["Error: Resource precondition failed", "", *wrapped])
    assert refusal(error, PhaseVariables(0.1, "5")) == message
    other = TerraformError("terraform plan failed", step="plan", exit_code=1,
                           stderr_tail=["Error: creating Lambda alias: AccessDenied"])
    assert refusal(other, PhaseVariables(0.1, "5")) is None
