"""End to end: the release runner and the invoke tasks in the release world (see
tests/fakes/release_world.py: Terraform double, moto server, local endpoint that follows the
alias)."""

import dataclasses
import itertools
import json
import re
import subprocess
from typing import Any

import pytest

from fakes.alarm_notifications import RollbackFunction
from fakes.moto_server import REGION
from fakes.release_world import (
    ALARMS,
    FUNCTION,
    SMOKE_REQUESTS,
    BackgroundLoop,
    commit_terraform,
)
from release.aws import AwsError, Routing
from release.context import AwsClients
from release.history import PhaseRecord
from release.kinds import Phase
from release.lock import current_caller
from release.outputs import MissingOutputError
from release.phases import PhaseInputError
from release.rollout import bake, run_rollout
from release.runner import PhaseFailed, fast_rollback, run_phase
from release.status import read_status

# The config pins of a version published before settings were pinned.
UNPINNED: dict[str, Any] = {"settings_version": None, "secrets": {}}


def test_canary_10_percent_passes_and_is_recorded(world):
    report = run_phase(world.context(), Phase.CANARY, 0.1)

    assert report.outcome == "succeeded"
    assert world.live() == Routing("1", {"2": 0.1})
    assert report.smoke.passed and report.smoke.completed == SMOKE_REQUESTS
    assert set(report.smoke.version_counts) == {"1", "2"}
    assert report.alarms == {name: "INSUFFICIENT_DATA" for name in ALARMS}  # no traffic judged yet
    last = world.history.last("dev")
    assert (last["phase"], last["outcome"], last["candidate_version"]) == (
        "canary", "succeeded", "2")
    assert last["routing_after"] == Routing("1", {"2": 0.1}).to_dict()


def test_the_history_record_is_the_phase_field_by_field(world):
    report = run_phase(world.context(), Phase.CANARY, 0.1)
    record = world.history.last("dev")

    assert list(record) == [field.name for field in dataclasses.fields(PhaseRecord)]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["time"])
    assert record == {
        "time": record["time"], "environment": "dev", "caller": current_caller(),
        "phase": "canary",
        "routing_before": {"primary_version": "1", "additional_version_weights": {}},
        "routing_after": {"primary_version": "1", "additional_version_weights": {"2": 0.1}},
        "candidate_version": "2", "stable_version": "1",
        # The smoke result as the report has it (through JSON, where tuples become lists).
        "smoke": json.loads(json.dumps(report.smoke.to_dict())),
        "alarms": {name: "INSUFFICIENT_DATA" for name in ALARMS},
        "outcome": "succeeded", "detail": "",
        "duration_seconds": round(report.duration_seconds, 3),
        "gate": None,  # dev has no promotion gate
        # Each version's config pins, read when the record was written (these two versions
        # were published without settings).
        "config": {"2": UNPINNED, "1": UNPINNED},
    }
    assert record["smoke"]["passed"] is True
    assert record["smoke"]["completed"] == SMOKE_REQUESTS
    assert record["smoke"]["version_counts"].keys() == {"1", "2"}


def test_promote_after_canary_makes_the_candidate_stable(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    report = run_phase(world.context(), Phase.PROMOTE)

    assert report.outcome == "succeeded"
    assert world.live() == Routing("2")
    assert report.smoke.version_counts == {"2": SMOKE_REQUESTS}
    # The next release canaries against the promoted version.
    world.new_version()
    run_phase(world.context(), Phase.CANARY, 0.25)
    assert world.live() == Routing("2", {"3": 0.25})


def test_bad_candidate_is_rolled_back_to_zero_and_stable_traffic_is_untouched(world):
    world.endpoint.configure(candidate_error_rate=0.6)

    with pytest.raises(PhaseFailed) as failure:
        run_phase(world.context(), Phase.CANARY, 0.25)

    report = failure.value.report
    assert report.outcome == "rolled-back"
    assert "error rate" in report.detail and "rolled back through Terraform" in report.detail
    assert world.live() == Routing("1")
    assert world.double.state(world.outdir / "stacks" / "dev")["canary_weight"] == 0
    assert world.history.last("dev")["outcome"] == "rolled-back"
    # The stable version answered every request it got: only candidate requests failed.
    assert report.smoke.version_counts["1"] > 0


def test_wrong_split_is_rolled_back(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    # The endpoint serves 50 % to the candidate while the alias says 10 %.
    with AliasPinned(world, weight=0.5), pytest.raises(PhaseFailed) as failure:
        run_phase(world.context(), Phase.CANARY, 0.1)
    assert failure.value.report.outcome == "rolled-back"
    assert "candidate" in failure.value.report.detail
    assert world.live() == Routing("1")


class AliasPinned(BackgroundLoop):
    """Overrides the follower by pinning the endpoint's split (a misrouting endpoint)."""

    interval = 0.001

    def __init__(self, world, weight):
        super().__init__()
        self.world, self.weight = world, weight

    def step(self) -> None:
        self.world.endpoint.configure(stable_version="1", candidate_version="2", weight=self.weight)


def test_alarm_in_alarm_state_rolls_the_canary_back(world):
    world.aws.set_alarm_state(ALARMS[1], "ALARM")
    with pytest.raises(PhaseFailed) as failure:
        run_phase(world.context(), Phase.CANARY, 0.1)
    assert failure.value.report.outcome == "rolled-back"
    assert ALARMS[1] in failure.value.report.detail
    assert world.live() == Routing("1")


def test_failed_apply_restores_the_live_alias_and_says_so(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    world.double.configure(failures={"apply": "error-after-change"})

    with pytest.raises(PhaseFailed) as failure:
        run_phase(world.context(), Phase.CANARY, 0.5)

    report = failure.value.report
    assert report.outcome == "failed"
    assert "terraform apply failed" in report.detail
    assert "live alias restored from v1 50 % + v2 50 % to v1 90 % + v2 10 %" in report.detail
    assert world.live() == Routing("1", {"2": 0.1})


def test_rollback_twice_is_harmless(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    first = run_phase(world.context(), Phase.ROLLBACK)
    second = run_phase(world.context(), Phase.ROLLBACK)
    assert first.routing_after == second.routing_after == Routing("1")
    assert second.smoke.version_counts == {"1": SMOKE_REQUESTS}


def test_rollout_steps_through_to_promotion(world):
    reports = run_rollout(world.context(), (0.1, 0.5, 1.0), bake_seconds=0)
    assert [r.phase for r in reports] == ["rollout-step", "rollout-step", "promote"]
    assert all(r.outcome == "succeeded" for r in reports)
    assert world.live() == Routing("2")


def test_rollout_bake_rolls_back_on_an_alarm(world):
    context = world.context()
    context.sleep = lambda seconds: world.aws.set_alarm_state(ALARMS[0], "ALARM")
    with pytest.raises(PhaseFailed) as failure:
        run_rollout(context, (0.1, 1.0), bake_seconds=30)
    assert failure.value.report.outcome == "rolled-back"
    assert ALARMS[0] in failure.value.report.detail
    assert world.live() == Routing("1")


def test_rollout_bake_pauses_when_the_canary_saw_too_little_traffic(world):
    with pytest.raises(PhaseFailed) as failure:
        run_rollout(world.context(), (0.1, 1.0), bake_seconds=0.05)
    report = failure.value.report
    assert report.outcome == "paused"
    assert "rerun `invoke rollout`" in report.detail
    assert world.live() == Routing("1", {"2": 0.1})


def test_a_canary_without_new_code_is_refused_by_the_plan_before_any_apply(world):
    run_phase(world.context(), Phase.PROMOTE)
    stack = world.outdir / "stacks" / "dev"
    state = world.double.state(stack)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(world.context(), Phase.CANARY, 0.1)
    report = failure.value.report
    assert report.outcome == "refused"
    assert report.detail.startswith(
        "no new version to send traffic to: v2 already is the candidate")
    assert world.double.state(stack) == state  # the stack's precondition failed the plan
    assert world.live() == Routing("2")
    refused = world.history.last("dev")
    assert refused["outcome"] == "refused"
    assert refused["config"] == {"2": UNPINNED}  # what is known: the version already serving


def test_a_bake_judges_even_when_its_window_passed_before_the_first_look(world):
    # A slow machine, taken to the extreme: every clock reading is 1000 s after the last, so the
    # bake window is over before the loop starts. The canary must still be judged, once.
    canary = run_phase(world.context(), Phase.CANARY, 0.1)
    context = world.context()
    context.clock = itertools.count(0, 1000).__next__
    with pytest.raises(PhaseFailed) as failure:
        bake(context, canary, bake_seconds=60)
    report = failure.value.report
    assert (report.outcome, report.verdict.status) == ("paused", "inconclusive")
    assert world.live() == Routing("1", {"2": 0.1})


class ChangedAfterEachRead:
    """A Lambda client on which someone else moves the alias right after each GetAlias."""

    def __init__(self, lambda_client, change):
        self.lambda_client, self.change = lambda_client, change

    def get_alias(self, **request):
        response = self.lambda_client.get_alias(**request)
        self.change()
        return response

    def __getattr__(self, name):
        return getattr(self.lambda_client, name)


def test_fast_rollback_never_overwrites_a_change_made_after_it_read_the_alias(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    context = world.context()
    context.clients = AwsClients(REGION, {"lambda": ChangedAfterEachRead(
        world.lambda_client, lambda: world.aws.set_routing(FUNCTION, "1", {"2": 0.5}))})
    with pytest.raises(AwsError, match="changed since revision"):
        fast_rollback(context)
    assert world.live() == Routing("1", {"2": 0.5})  # the newer change stands


def test_fast_rollback_is_one_update_alias_then_terraform_agrees(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    context = world.context()
    live, seconds = fast_rollback(context)
    assert live.routing == Routing("1") == world.live()
    report = run_phase(context, Phase.ROLLBACK)
    assert report.outcome == "succeeded"
    assert world.double.state(world.outdir / "stacks" / "dev")["canary_weight"] == 0


def test_a_deploy_finishes_a_stack_whose_outputs_are_incomplete(world):
    run_phase(world.context(), Phase.PROMOTE)
    world.new_version()
    stack = world.outdir / "stacks" / "dev"
    world.double.drop_outputs(stack, "alarm_names", "api_url")
    with pytest.raises(MissingOutputError, match="no `api_url` output"):
        run_phase(world.context(), Phase.CANARY, 0.1)
    # The live alias, found by name, says what serves traffic: v2 stays the stable version.
    report = run_phase(world.context(), Phase.DEPLOY)
    assert (report.outcome, report.stable_version, report.candidate_version) == (
        "succeeded", "2", "3")
    assert world.live() == Routing("2")
    assert run_phase(world.context(), Phase.CANARY, 0.1).routing_after == Routing("2", {"3": 0.1})


def test_destroy_is_recorded_in_the_history(world):
    result = world.run_task("destroy", "--yes")
    assert (result.exit_code, result.stdout) == (0, "destroy dev: 0 to add, 0 to change, 14 to "
                                                    "destroy\n")
    record = world.history.last("dev")
    assert (record["phase"], record["outcome"], record["candidate_version"]) == (
        "destroy", "succeeded", "1")
    assert record["routing_before"] == Routing("1").to_dict()
    assert record["config"] == {"1": UNPINNED}  # read before the function was destroyed
    assert json.loads(world.run_task("status", "--json").stdout) == {
        "environment": "dev", "deployed": False, "last_phase": record}


def test_a_failed_destroy_is_recorded_and_said_in_one_line(world):
    world.double.configure(failures={"apply": "error"})
    result = world.run_task("destroy", "--yes")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: terraform apply failed") and \
        len(result.stderr.splitlines()) == 1
    record = world.history.last("dev")
    assert (record["phase"], record["outcome"]) == ("destroy", "failed")
    assert record["detail"] == result.stderr.removeprefix("error: ").strip()
    assert world.live() == Routing("1")


def test_status_json_keeps_its_keys_and_values(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    info = json.loads(world.run_task("status", "--json").stdout)
    assert info == {
        "environment": "dev", "deployed": True, "endpoint": world.endpoint.url,
        "function_name": FUNCTION, "candidate_version": "2", "stable_version": "1",
        "terraform_routing": Routing("1", {"2": 0.1}).to_dict(),
        "live_routing": Routing("1", {"2": 0.1}).to_dict(),
        "live_routing_text": "v1 90 % + v2 10 %",
        "config": {"1": UNPINNED, "2": UNPINNED},
        "drift": False, "terraform_drift": [],
        "rolled_back_by_alarm": None, "quarantined": {}, "plan_refused": None,
        "alarms": {name: "INSUFFICIENT_DATA" for name in ALARMS},
        "last_phase": world.history.last("dev"),
    }
    assert list(info) == ["environment", "deployed", "endpoint", "function_name",
                          "candidate_version", "stable_version", "terraform_routing",
                          "live_routing", "live_routing_text", "config", "drift",
                          "terraform_drift",
                          "rolled_back_by_alarm", "quarantined", "plan_refused", "alarms",
                          "last_phase"]
    # Versions published before settings were pinned are said to be so, not an error.
    lines = world.run_task("status").stdout.splitlines()
    assert lines[1:3] == ["  candidate v2, stable v1",
                          "  config: v1 no pinned settings, v2 no pinned settings"]


# ------------------------------------------------------------------ the CLI itself

def test_cli_canary_prints_one_summary_line_and_json(world):
    result = world.invoke("canary", "--weight=0.1", "--requests=200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("canary dev: succeeded - v1 90 % + v2 10 %")

    status = world.invoke("status", "--json")
    info = json.loads(status.stdout)
    assert info["live_routing"] == Routing("1", {"2": 0.1}).to_dict()
    assert info["drift"] is False and info["last_phase"]["phase"] == "canary"


def test_cli_missing_terraform_binary_is_one_line(world, monkeypatch):
    monkeypatch.setenv("TERRAFORM_BINARY", "/nonexistent/terraform")
    result = world.invoke("canary", "--weight=0.1")
    assert result.returncode != 0
    assert "terraform binary '/nonexistent/terraform' not found" in result.stderr


def test_cli_missing_credentials_is_one_line(world, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    applies = world.applies()
    result = world.invoke("canary", "--weight=0.1")
    assert result.returncode != 0
    assert "no AWS credentials found" in result.stderr
    assert world.applies() == applies


def test_cli_concurrent_release_is_refused_with_the_holder(world):
    from release.lock import ReleaseLock
    applies = world.applies()
    with ReleaseLock("dev", "invoke rollout"):
        result = world.invoke("canary", "--weight=0.1")
    assert result.returncode != 0
    assert "environment dev is locked by" in result.stderr and "invoke rollout" in result.stderr
    assert world.applies() == applies


def test_ctrl_c_during_an_apply_is_recorded_with_where_traffic_stands(world, monkeypatch):
    run_phase(world.context(), Phase.CANARY, 0.1)
    context = world.context()

    def interrupted_apply(variables):
        raise KeyboardInterrupt

    monkeypatch.setattr(context.applier, "apply_variables", interrupted_apply)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(context, Phase.CANARY, 0.5)
    report = failure.value.report
    assert report.outcome == "interrupted"
    assert "traffic is at v1 90 % + v2 10 %" in report.detail
    assert world.history.last("dev")["outcome"] == "interrupted"


def test_cli_rollout_prints_one_line_per_step(world):
    result = world.invoke("rollout", "--steps=0.1,1", "--bake=0", "--requests=200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["rollout-step dev", "promote dev"]
    assert world.live() == Routing("2")


def test_cli_rollback_fast_moves_traffic_first_then_applies(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    result = world.invoke("rollback", "--fast", "--json")
    assert result.returncode == 0, result.stderr
    assert "after one UpdateAlias" in result.stderr
    report = json.loads(result.stdout)
    assert report["outcome"] == "succeeded"
    assert report["routing_after"] == {"primary_version": "1", "additional_version_weights": {}}
    assert world.live() == Routing("1")


def test_cli_failed_canary_exits_non_zero_with_the_reason(world):
    world.endpoint.configure(candidate_error_rate=0.6)
    result = world.invoke("canary", "--weight=0.25", "--requests=200")
    assert result.returncode == 1
    assert result.stdout.startswith("canary dev: rolled-back - v1 100 %")
    assert world.live() == Routing("1")


@pytest.fixture
def committed_repo(world, tmp_path, monkeypatch):
    """A git repository holding terraform/dev as `invoke synth` would have committed it."""
    return commit_terraform(world.outdir / "stacks" / "dev", tmp_path / "repo" / "terraform",
                            monkeypatch)


def test_cli_canary_commit_writes_and_commits_only_the_phase(world, committed_repo):
    applies = world.applies()
    result = world.invoke("canary", "--weight=0.1", "--commit")
    assert result.returncode == 0, result.stderr
    assert "committed" in result.stdout
    phase = json.loads((committed_repo / "dev" / "phase.auto.tfvars.json").read_text())
    assert phase == {"canary_weight": 0.1, "stable_version": "1"}
    show = subprocess.run(["git", "show", "--name-only", "--format=%s", "HEAD"], cwd=committed_repo,
                          check=True, capture_output=True, text=True).stdout.split("\n")
    assert show[0] == "release(dev): canary 10 % on the new version, stable v1"
    assert [line for line in show[1:] if line] == ["terraform/dev/phase.auto.tfvars.json"]
    assert world.applies() == applies  # nothing applied, nothing moved
    assert world.live() == Routing("1")

    again = world.invoke("canary", "--weight=0.1", "--commit")
    assert "already holds this phase, nothing to commit" in again.stdout


def test_cli_deploy_commit_names_the_stable_version_after_the_first_deployment(world,
                                                                              committed_repo):
    """The committed phase file leaves the first-deployment row ("" = new code takes 100 %) as
    soon as something serves: the next VCS run with new code keeps it at weight 0."""
    assert json.loads((committed_repo / "dev" / "phase.auto.tfvars.json").read_text())[
        "stable_version"] == ""
    result = world.invoke("deploy", "--commit")
    assert result.returncode == 0, result.stderr
    assert json.loads((committed_repo / "dev" / "phase.auto.tfvars.json").read_text()) == {
        "canary_weight": 0.0, "stable_version": "1"}


def test_cli_rollback_commit_returns_to_the_committed_stable_version(world, committed_repo):
    assert world.invoke("canary", "--weight=0.25", "--commit").returncode == 0
    result = world.invoke("rollback", "--commit")
    assert result.returncode == 0, result.stderr
    assert json.loads((committed_repo / "dev" / "phase.auto.tfvars.json").read_text()) == {
        "canary_weight": 0.0, "stable_version": "1"}


def test_cli_commit_without_aws_needs_the_stable_version(world, committed_repo, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    refused = world.invoke("promote", "--commit")
    assert refused.returncode != 0 and "pass --stable-version N" in refused.stderr
    accepted = world.invoke("promote", "--commit", "--stable-version=1")
    assert accepted.returncode == 0, accepted.stderr


def test_cli_commit_refuses_a_stale_committed_tree(world, committed_repo):
    (committed_repo / "dev" / "cdk.tf.json").write_text("{}")
    result = world.invoke("canary", "--weight=0.1", "--commit")
    assert result.returncode != 0
    assert "terraform/dev is stale (changed cdk.tf.json): run `invoke synth`" in result.stderr


# ------------------------------------------------------------------ rollback by alarm, in AWS

def deliver_canary_alarm(monkeypatch, executed_version: str):
    """CloudWatch + SNS, played by the test: the canary alarm fires and the real rollback
    function (functions/rollback) receives the notification, as deployed by the stack."""
    with RollbackFunction(monkeypatch, FUNCTION, ALARMS) as rollback_function:
        return rollback_function.deliver(ALARMS[1], executed_version)


def test_alarm_rollback_is_reported_refused_then_acknowledged_by_rollback(world, monkeypatch):
    run_phase(world.context(), Phase.CANARY, 0.1)
    outcomes = deliver_canary_alarm(monkeypatch, executed_version="2")
    assert [outcome["action"] for outcome in outcomes] == ["rolled-back"]
    assert world.live() == Routing("1")

    status = read_status(world.context()).to_dict()
    assert status["rolled_back_by_alarm"].startswith(f"rolled back by alarm {ALARMS[1]} at ")
    with pytest.raises(PhaseInputError, match="acknowledge it with `invoke rollback`"):
        run_phase(world.context(), Phase.CANARY, 0.25)
    recorded = world.history.last("dev")
    assert (recorded["caller"], recorded["outcome"]) == (f"alarm {ALARMS[1]}", "rolled-back")
    assert recorded["routing_before"]["additional_version_weights"] == {"2": 0.1}

    report = run_phase(world.context(), Phase.ROLLBACK)
    assert report.outcome == "succeeded"
    assert report.detail.startswith(f"acknowledged: rolled back by alarm {ALARMS[1]}")
    # Terraform put its own description back on the alias.
    assert read_status(world.context()).deployment.rolled_back_by_alarm is None
    assert [r["caller"].startswith("alarm") for r in world.history.read("dev")].count(True) == 1
    assert run_phase(world.context(), Phase.CANARY, 0.1).outcome == "succeeded"


def test_force_goes_on_after_an_alarm_rollback_and_keeps_the_record(world, monkeypatch):
    run_phase(world.context(), Phase.CANARY, 0.1)
    deliver_canary_alarm(monkeypatch, executed_version="2")
    report = run_phase(world.context(), Phase.CANARY, 0.1, force=True)
    assert report.outcome == "succeeded"
    assert world.live() == Routing("1", {"2": 0.1})
    assert any(r["caller"] == f"alarm {ALARMS[1]}" for r in world.history.read("dev"))


def test_cli_status_says_who_rolled_back(world, monkeypatch):
    run_phase(world.context(), Phase.CANARY, 0.1)
    deliver_canary_alarm(monkeypatch, executed_version="2")
    result = world.invoke("status")
    assert result.returncode == 0, result.stderr
    assert f"rolled back by alarm {ALARMS[1]} at" in result.stdout
    assert "acknowledge with `invoke rollback`" in result.stdout
    refused = world.invoke("canary", "--weight=0.2")
    assert refused.returncode != 0 and "acknowledge it with `invoke rollback`" in refused.stderr


def test_a_config_change_and_its_rollback_show_in_status_and_the_history(world):
    """A config-only release (same code, new settings and secret version) goes out as a canary
    and is rolled back: `invoke status` and every history record name each version's pins."""
    world.new_version(settings={"greeting": "hej"})  # v3: settings parameter version 1
    assert run_phase(world.context(), Phase.PROMOTE).outcome == "succeeded"
    world.new_version(settings={"greeting": "bonjour"}, secrets={"api-key": "v-9"})  # v4
    assert run_phase(world.context(), Phase.CANARY, 0.1).outcome == "succeeded"

    old = {"settings_version": "1", "secrets": {}}
    new = {"settings_version": "2", "secrets": {"api-key": "v-9"}}
    status = world.run_task("status")
    assert status.exit_code == 0, status.stderr
    lines = status.stdout.splitlines()
    assert "  config: v3 settings v1, v4 settings v2 (secret api-key @ v-9)" in lines
    assert "  last phase config: v4 settings v2 (secret api-key @ v-9), v3 settings v1" in lines
    assert json.loads(world.run_task("status", "--json").stdout)["config"] == {"3": old,
                                                                               "4": new}
    canary = world.history.last("dev")
    assert (canary["phase"], canary["config"]) == ("canary", {"4": new, "3": old})

    assert run_phase(world.context(), Phase.ROLLBACK).outcome == "succeeded"
    rollback = world.history.last("dev")
    assert (rollback["phase"], rollback["routing_after"]["primary_version"]) == ("rollback", "3")
    # What was rolled back (v4, settings v2) and what serves again (v3, settings v1).
    assert rollback["config"] == {"4": new, "3": old}
    lines = world.run_task("status").stdout.splitlines()
    assert "  config: v3 settings v1" in lines
    # The versions from before settings were pinned: shown as such, never an error.
    first = world.history.read("dev")[0]
    assert (first["phase"], first["config"]) == (
        "deploy", {"1": {"settings_version": None, "secrets": {}}})
    assert json.loads(world.run_task("status", "--json").stdout)["config"] == {"3": old}
    # `invoke history`: one line per phase, what it served after and each version's pins.
    history = [line.split(": ", 1)[1] for line in world.run_task("history").stdout.splitlines()]
    assert history[-3:] == [
        "v3 100 %; config v3 settings v1, v1 no pinned settings",  # promote of v3
        "v3 90 % + v4 10 %; config v4 settings v2 (secret api-key @ v-9), v3 settings v1",
        "v3 100 %; config v4 settings v2 (secret api-key @ v-9), v3 settings v1",  # rollback
    ]
