"""The promotion gate (release/gate.py): the decision as a pure function of the evidence and an
injected time; the evidence as AWS (moto) shows it; a phase the gate refuses is a `refused`
history record with nothing applied, one it accepts records what it found and who approved."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fakes.release_world import FUNCTION, UPSTREAM, code_zip, serve_upstream_code
from release.aws import AlarmState, Routing, VersionCode, lambda_timestamp
from release.config import PromotionSettings, parse_config
from release.context import ReleaseContext, RunnerOptions
from release.gate import (
    CommitGate,
    GateFlagError,
    GateRefused,
    UpstreamEvidence,
    check_commit,
    decide,
    decide_commit,
    gate_flags,
    gives_candidate_traffic,
    override_variables,
    read_evidence,
)
from release.kinds import Outcome, Phase
from release.phases import PhaseVariables
from release.runner import PhaseFailed, refusal, run_phase
from release.status import gate_lines
from release.terraform import Terraform, TerraformError

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
STAGING_CODE = "c3RhZ2luZy1zZXJ2ZXMtdGhpcy1jb2RlLWhhc2g9PT0="
OTHER_CODE = "b3RoZXItY29kZS1ub3QteWV0LWluLXN0YWdpbmc9PT0="
SHARED = "5f0c" * 16  # hex SHA-256 of the shared settings staging's version was published with
SOAK = PromotionSettings(after="staging", soak_minutes=30)


def evidence(*, routing: Routing | None = None, code: str = STAGING_CODE,
             serving_for: timedelta = timedelta(minutes=45),
             alarms: tuple[AlarmState, ...] = ()) -> UpstreamEvidence:
    return UpstreamEvidence("staging", routing or Routing("7"),
                            {"code": code, "shared_settings": SHARED}, NOW - serving_for, alarms)


def pins(code: str = STAGING_CODE, shared_settings: str = SHARED) -> dict[str, str]:
    return {"code": code, "shared_settings": shared_settings}


def ok_alarm(name: str, changed_ago: timedelta = timedelta(days=2)) -> AlarmState:
    return AlarmState(name, "OK", NOW - changed_ago)


# ------------------------------------------------------------------ the decision


def test_what_staging_served_long_enough_without_an_alarm_passes():
    decision = decide(evidence(alarms=(ok_alarm("staging-error-rate"),)), "12", pins(), SOAK,
                      NOW)
    assert decision.passed
    assert decision.detail == (f"staging served v7 (code {STAGING_CODE[:12]}, shared_settings "
                               f"{SHARED[:12]}) at 100 % for 45 min without an alarm")
    assert (decision.upstream_version, decision.soaked_minutes) == ("7", 45)


def test_other_code_than_staging_serves_is_refused_naming_both():
    decision = decide(evidence(), "12", pins(code=OTHER_CODE), SOAK, NOW)
    assert not decision.passed
    assert decision.detail == (f"staging serves code {STAGING_CODE[:12]} (v7) but this release "
                               f"is code {OTHER_CODE[:12]} (v12): release it in staging first")


def test_the_same_code_with_other_shared_settings_is_refused():
    # A config-only change ([defaults.settings]) is released in staging first, like code.
    decision = decide(evidence(), "12", pins(shared_settings="9e2a" * 16), SOAK, NOW)
    assert not decision.passed
    assert decision.detail == (f"staging serves shared_settings {SHARED[:12]} (v7) but this "
                               "release is shared_settings 9e2a9e2a9e2a (v12): release it in "
                               "staging first")
    # A version from before versions carried the fingerprint has none.
    older = replace(evidence(), pins=pins(shared_settings=""))
    assert decide(older, "12", pins(), SOAK, NOW).detail.startswith(
        "staging serves shared_settings (none) (v7)")


def test_a_soak_too_short_says_how_long_and_how_long_is_needed():
    decision = decide(evidence(serving_for=timedelta(minutes=12, seconds=50)), "12",
                      pins(), SOAK, NOW)
    assert not decision.passed
    assert decision.detail == "staging serves v7 since 12 min; 30 needed"
    assert decision.soaked_minutes == 12


def test_the_soak_is_exactly_the_configured_minutes():
    at_limit = decide(evidence(serving_for=timedelta(minutes=30)), "12", pins(),
                      SOAK, NOW)
    assert at_limit.passed


def test_a_staging_canary_is_not_one_version_at_100_percent():
    decision = decide(evidence(routing=Routing("7", {"8": 0.1})), "12", pins(),
                      SOAK, NOW)
    assert not decision.passed
    assert decision.detail == ("staging serves v7 90 % + v8 10 %, not one version at 100 %: "
                               "promote or roll back staging first")


def test_a_staging_alarm_in_alarm_refuses():
    firing = AlarmState("staging-error-rate", "ALARM", NOW - timedelta(hours=3))
    decision = decide(evidence(alarms=(ok_alarm("staging-p99"), firing)), "12",
                      pins(), SOAK, NOW)
    assert not decision.passed
    assert decision.detail == "staging's alarm staging-error-rate is in ALARM"


def test_an_alarm_that_changed_state_during_the_soak_restarts_it():
    recovered = ok_alarm("staging-error-rate", changed_ago=timedelta(minutes=5))
    decision = decide(evidence(alarms=(recovered,)), "12", pins(), SOAK, NOW)
    assert not decision.passed
    assert decision.detail == ("staging's alarm staging-error-rate changed state since 5 min; "
                               "30 needed")


@pytest.mark.parametrize("text", ["2026-12-01T12:00:00.000+0000", "2026-12-01T12:00:00.000000000Z",
                                  "2026-12-01T12:00:00+00:00"])
def test_lambda_timestamps_of_any_precision(text):
    assert lambda_timestamp(text) == NOW


def test_no_soak_needs_only_the_same_code():
    decision = decide(evidence(serving_for=timedelta(0)), "12", pins(),
                      replace(SOAK, soak_minutes=0), NOW)
    assert decision.passed


# ------------------------------------------------------------------ the flags


def environments(promotion: str = 'promotion = { after = "staging", soak_minutes = 30 }'):
    text = f"""
[defaults]
region = "eu-west-1"
[environments.staging]
function_name = "{UPSTREAM}"
[environments.prod]
function_name = "{FUNCTION}"
{promotion}
"""
    return parse_config(text, Path("environments.toml"))


def test_the_approver_is_asked_for_on_a_terminal():
    prod = environments().environment("prod")
    assert gate_flags(prod, "", "", commit=False, ask=lambda prompt: " Ada ") == ("Ada", "")


def test_without_a_terminal_a_required_approval_needs_the_flag():
    prod = environments().environment("prod")
    with pytest.raises(GateFlagError, match="prod requires a named approval"):
        gate_flags(prod, "", "", commit=False, ask=None)


def test_approval_none_needs_no_name():
    prod = environments('promotion = { after = "staging", approval = "none" }').environment("prod")
    assert gate_flags(prod, "", "hotfix", commit=False, ask=None) == ("", "hotfix")


def test_commit_takes_skip_gate_and_leaves_the_approval_to_the_workspace():
    prod = environments().environment("prod")
    assert gate_flags(prod, "", " hotfix INC-42 ", commit=True, ask=None) == ("", "hotfix INC-42")
    # approval = "required": the workspace's manual apply is the approval, nobody is asked.
    assert gate_flags(prod, "", "", commit=True, ask=lambda prompt: "Ada") == ("", "")
    with pytest.raises(GateFlagError, match="drop --approved-by"):
        gate_flags(prod, "Ada", "", commit=True, ask=None)
    with pytest.raises(GateFlagError, match="--skip-gate needs a reason"):
        gate_flags(prod, "", "  ", commit=True, ask=None)


# ------------------------------------------------------------------ the gate with --commit

CANDIDATE = VersionCode("12", STAGING_CODE, NOW - timedelta(minutes=5), SHARED)


@pytest.mark.parametrize("kind, weight, gives", [
    (Phase.CANARY, 0.1, True), (Phase.CANARY, 0.0, False), (Phase.PROMOTE, 1.0, True),
    (Phase.ROLLOUT_STEP, 0.5, True), (Phase.DEPLOY, 0.0, False), (Phase.ROLLBACK, 0.0, False)])
def test_which_committed_phases_give_the_candidate_traffic(kind, weight, gives):
    assert gives_candidate_traffic(kind, weight) is gives


def test_a_committed_canary_is_decided_as_an_applied_one():
    short = decide_commit(Phase.CANARY, 0.1, Routing("11"), CANDIDATE,
                          evidence(serving_for=timedelta(minutes=12)), SOAK, NOW)
    assert short is not None and not short.passed
    assert short.detail == "staging serves v7 since 12 min; 30 needed"
    other = decide_commit(Phase.PROMOTE, 1.0, Routing("11", {"12": 0.1}),
                          replace(CANDIDATE, code_sha256=OTHER_CODE), evidence(), SOAK, NOW)
    assert other is not None and other.detail.endswith("(v12): release it in staging first")
    soaked = decide_commit(Phase.CANARY, 0.1, Routing("11"), CANDIDATE, evidence(), SOAK, NOW)
    assert soaked is not None and soaked.passed


def test_a_committed_phase_without_traffic_or_for_a_serving_candidate_is_not_decided():
    refusing = evidence(serving_for=timedelta(0))
    assert decide_commit(Phase.CANARY, 0.0, Routing("11"), CANDIDATE, refusing, SOAK, NOW) is None
    assert decide_commit(Phase.ROLLBACK, 0.0, Routing("11"), CANDIDATE, refusing, SOAK,
                         NOW) is None
    # A rerun of a promote the workspace applied: v12 has had its traffic.
    assert decide_commit(Phase.PROMOTE, 1.0, Routing("12"), CANDIDATE, refusing, SOAK,
                         NOW) is None


def test_the_committed_override_is_the_skip_reason_where_the_stack_has_the_variable():
    config = environments()
    prod, staging = config.environment("prod"), config.environment("staging")
    assert override_variables(prod, "hotfix INC-42") == {
        "promotion_gate_override": "hotfix INC-42"}
    assert override_variables(prod, "") == {}
    assert override_variables(staging, "hotfix INC-42") == {}  # no gate, no variable
    elsewhere = environments('promotion = { after = "staging", plan_check = false }')
    assert override_variables(elsewhere.environment("prod"), "hotfix INC-42") == {}


def test_a_skipped_commit_gate_reads_nothing_from_aws(monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    config = environments()
    prod, staging = config.environment("prod"), config.environment("staging")

    def no_aws(service: str, region: str):
        raise AssertionError(f"read {service} in {region}")
    checked = check_commit(prod, staging, Phase.CANARY, 0.1, None, skip_gate="hotfix INC-42",
                           client=no_aws, now=lambda: NOW)
    assert checked == CommitGate(skipped="hotfix INC-42")
    assert checked.line() == "promotion gate skipped (not checked): hotfix INC-42"
    assert check_commit(prod, staging, Phase.ROLLBACK, 0.0, None, client=no_aws) == CommitGate()
    assert check_commit(staging, None, Phase.PROMOTE, 1.0, None, client=no_aws) == CommitGate()


def test_the_commit_gate_refuses_in_aws_with_an_injected_clock(fake_aws):
    config = environments()
    prod, staging = config.environment("prod"), config.environment("staging")
    code = code_zip("def lambda_handler(event, context):\n    return {}\n")
    for function in (UPSTREAM, FUNCTION):
        fake_aws.create_function(function)
        fake_aws.lambda_client.update_function_code(FunctionName=function, ZipFile=code)
        fake_aws.lambda_client.publish_version(FunctionName=function)
        fake_aws.set_routing(function, "1")
    fake_aws.lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=code_zip("# 2"))
    fake_aws.lambda_client.publish_version(FunctionName=FUNCTION)
    fake_aws.lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=code)
    assert fake_aws.lambda_client.publish_version(FunctionName=FUNCTION)["Version"] == "3"
    staging_published = lambda_timestamp(fake_aws.lambda_client.get_function_configuration(
        FunctionName=UPSTREAM, Qualifier="1")["LastModified"])

    with pytest.raises(GateRefused) as refused:
        check_commit(prod, staging, Phase.CANARY, 0.1, None,
                     now=lambda: staging_published + timedelta(minutes=29, seconds=59))
    assert str(refused.value) == "promotion gate: staging serves v1 since 29 min; 30 needed"
    passed = check_commit(prod, staging, Phase.PROMOTE, 1.0, Routing("1"),
                          now=lambda: staging_published + timedelta(minutes=30))
    assert passed.decision is not None and passed.decision.passed
    assert passed.line().startswith("promotion gate: staging served v1 (code ")


def test_a_commit_gate_for_an_environment_not_deployed_says_so(fake_aws):
    config = environments()
    with pytest.raises(GateRefused) as refused:
        check_commit(config.environment("prod"), config.environment("staging"), Phase.PROMOTE,
                     1.0, None, now=lambda: NOW)
    assert str(refused.value).startswith(f"promotion gate: cannot read prod's candidate: Lambda "
                                         f"alias {FUNCTION}:production not found in eu-west-1")


# ------------------------------------------------------------------ the evidence in AWS


def test_evidence_reads_the_alias_code_metrics_and_alarms(fake_aws):
    fake_aws.deploy(UPSTREAM, versions=2, alarm_names=[f"{UPSTREAM}-error-rate"])
    config = fake_aws.lambda_client.get_function_configuration(FunctionName=UPSTREAM,
                                                               Qualifier="2")
    published = lambda_timestamp(config["LastModified"])
    now = published + timedelta(minutes=40)
    # v1 still answered a request through the alias 20 minutes after v2 was published.
    last_v1 = (published + timedelta(minutes=20)).replace(second=0, microsecond=0)
    fake_aws.put_version_metrics(UPSTREAM, "1", last_v1, invocations=3, errors=0)
    fake_aws.put_version_metrics(UPSTREAM, "2", last_v1, invocations=9, errors=0)
    # Lambda also publishes the alias's Invocations without ExecutedVersion: all versions.
    fake_aws.cloudwatch.put_metric_data(Namespace="AWS/Lambda", MetricData=[{
        "MetricName": "Invocations", "Timestamp": last_v1, "Value": 12, "Unit": "Count",
        "Dimensions": [{"Name": "FunctionName", "Value": UPSTREAM},
                       {"Name": "Resource", "Value": f"{UPSTREAM}:production"}]}])
    staging = environments().environment("staging")
    found = read_evidence(fake_aws.lambda_client, fake_aws.cloudwatch, staging, 30, now)
    assert found.routing == Routing("2")
    # A version published without the shared settings fingerprint has none.
    assert found.pins == {"code": config["CodeSha256"], "shared_settings": ""}
    assert found.serving_since == last_v1 + timedelta(minutes=1)
    assert [(alarm.name, alarm.state) for alarm in found.alarms] == [
        (f"{UPSTREAM}-error-rate", "INSUFFICIENT_DATA")]


def test_evidence_reads_the_shared_settings_fingerprint_of_the_served_version(fake_aws):
    fake_aws.create_function(UPSTREAM)
    fake_aws.lambda_client.update_function_configuration(
        FunctionName=UPSTREAM, Environment={"Variables": {"SHARED_SETTINGS_SHA256": SHARED}})
    fake_aws.set_routing(UPSTREAM, fake_aws.publish_version(UPSTREAM))
    staging = environments().environment("staging")
    found = read_evidence(fake_aws.lambda_client, fake_aws.cloudwatch, staging, 30, NOW)
    assert found.pins["shared_settings"] == SHARED


# ------------------------------------------------------------------ a phase through the gate


@pytest.fixture
def gated(world):
    """The world's dev function released as `prod` after `staging` (moto), v3 of dev being the
    code staging serves as its v1, published an hour ago by the clock the gate is given."""
    version = serve_upstream_code(world.aws, code_zip(
        "def lambda_handler(event, context):\n    return {'statusCode': 200}\n"))
    world.double.configure(candidate_version=version)
    config = environments()
    prod = replace(config.environment("prod"), name="dev")  # the world's stack directory

    def context(now: datetime, **options) -> ReleaseContext:
        return ReleaseContext(
            prod, Terraform(prod.stack_dir), history=world.history,
            options=RunnerOptions(smoke_requests=200, routing_interval=0.01, routing_timeout=5,
                                  **options),
            now=lambda: now, upstream=config.environment("staging"))
    return context


def published(world, function_name: str, version: str) -> datetime:
    config = world.aws.lambda_client.get_function_configuration(FunctionName=function_name,
                                                                Qualifier=version)
    return lambda_timestamp(config["LastModified"])


def test_a_canary_before_the_soak_is_refused_and_recorded_with_nothing_applied(world, gated):
    run_phase(world.context(), Phase.DEPLOY)
    applies, routing = world.applies(), world.live()
    soon = published(world, UPSTREAM, "1") + timedelta(minutes=10)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(gated(soon, approved_by="Ada"), Phase.CANARY, 0.1)
    report = failure.value.report
    assert report.outcome == Outcome.REFUSED
    assert report.detail == "promotion gate: staging serves v1 since 10 min; 30 needed"
    assert (world.applies(), world.live()) == (applies, routing)
    last = world.history.last("dev")
    assert (last["phase"], last["outcome"]) == ("canary", "refused")
    assert last["gate"]["approved_by"] == "Ada" and last["gate"]["passed"] is False


def test_a_canary_after_the_soak_goes_ahead_and_records_the_approver(world, gated):
    run_phase(world.context(), Phase.DEPLOY)
    later = published(world, UPSTREAM, "1") + timedelta(minutes=31)
    report = run_phase(gated(later, approved_by="Ada"), Phase.CANARY, 0.1)
    assert report.outcome == Outcome.SUCCEEDED
    gate = world.history.last("dev")["gate"]
    assert (gate["passed"], gate["after"], gate["after_version"], gate["approved_by"]) == (
        True, "staging", "1", "Ada")


def test_a_skipped_gate_is_recorded_with_its_reason(world, gated):
    run_phase(world.context(), Phase.DEPLOY)
    soon = published(world, UPSTREAM, "1")
    report = run_phase(gated(soon, approved_by="Ada", skip_gate="hotfix INC-42"), Phase.CANARY,
                       0.1)
    assert report.outcome == Outcome.SUCCEEDED
    gate = world.history.last("dev")["gate"]
    assert (gate["skipped"], gate["approved_by"]) == ("hotfix INC-42", "Ada")
    # The plan-time gate is overridden with the same reason.
    applied = [call["argv"] for call in world.double.calls() if call["argv"][0] == "apply"]
    assert "promotion_gate_override=hotfix INC-42" in applied[-1]


def test_an_after_environment_that_is_not_deployed_refuses(world, gated):
    run_phase(world.context(), Phase.DEPLOY)
    world.aws.lambda_client.delete_function(FunctionName=UPSTREAM)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(gated(NOW, approved_by="Ada"), Phase.CANARY, 0.1)
    report = failure.value.report
    assert report.outcome == Outcome.REFUSED
    assert report.detail.startswith(f"promotion gate: no evidence from staging: Lambda alias "
                                    f"{UPSTREAM}:production not found in eu-west-1")
    assert world.history.last("dev")["outcome"] == "refused"


def test_without_an_approver_the_phase_is_refused(world, gated):
    run_phase(world.context(), Phase.DEPLOY)
    later = published(world, UPSTREAM, "1") + timedelta(minutes=31)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(gated(later), Phase.PROMOTE)
    assert failure.value.report.outcome == Outcome.REFUSED
    assert failure.value.report.detail == "dev requires a named approval: pass --approved-by NAME"


def test_status_shows_a_skipped_gate_loudly_and_an_approval():
    skipped = {"after": "staging", "skipped": "hotfix INC-42", "approved_by": "Ada"}
    assert gate_lines(skipped) == [
        "  PROMOTION GATE SKIPPED (staging not checked): hotfix INC-42, approved by Ada"]
    checked = {"after": "staging", "passed": True, "approved_by": "Ada",
               "detail": "staging served v7 (code abc) at 100 % for 45 min without an alarm"}
    assert gate_lines(checked) == [
        "  promotion gate: staging served v7 (code abc) at 100 % for 45 min without an alarm, "
        "approved by Ada"]
    assert gate_lines(None) == []


def test_the_runner_reports_the_plan_time_gate_as_a_refusal():
    # Terraform frames and wraps the precondition's message; the runner's detail is all of it.
    message = (f"Promotion gate: staging serves code {STAGING_CODE[:12]} (v7) but prod would "
               f"release code {OTHER_CODE[:12]}. Release it in staging first and let it soak; to "
               'go on anyway, apply with promotion_gate_override = "<reason>" (invoke: '
               "--skip-gate REASON).")
    words = message.split()
    wrapped = ["│ " + " ".join(words[start:start + 7]) for start in range(0, len(words), 7)]
    error = TerraformError("terraform apply failed", step="apply", exit_code=1,
                           stderr_tail=["╷", "│ Error: Resource precondition failed", "│",
                                        *wrapped, "╵"])
    assert refusal(error, PhaseVariables(0.1, "7")) == message
