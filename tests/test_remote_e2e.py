"""Remote phases end to end: `--remote` drives a Terraform Cloud workspace (the fake API server)
whose runs move the alias in moto, as a real workspace's apply would; the endpoint follows the
alias; the smoke check and the rollback logic are the local ones."""

import os
import subprocess
import sys

import pytest

from conftest import PROJECT_ROOT
from fakes.endpoint import FakeEndpoint
from fakes.moto_server import REGION
from fakes.release_world import ALARMS, FUNCTION, AliasFollower
from fakes.tfc_server import FakeTfc
from release.aws import Routing, client, read_alias
from release.config import parse_config
from release.context import ReleaseContext, RunnerOptions
from release.history import ReleaseHistory
from release.kinds import Phase
from release.phases import routing_for
from release.remote import RemoteTerraform
from release.runner import PhaseFailed, run_phase
from release.tfc import TfcClient

WORKSPACE = "lambda-dev"


class RemoteWorld:
    def __init__(self, aws, tfc, endpoint, config_path, tmp_path):
        self.aws, self.tfc, self.endpoint, self.config_path = aws, tfc, endpoint, config_path
        self.history = ReleaseHistory(tmp_path / "state" / "history.jsonl")
        self.history_path = tmp_path / "state" / "history.jsonl"
        self.candidate = "1"
        self.lambda_client = client("lambda", REGION)
        self.tfc_clients = []

    def apply(self, workspace, variables):
        """What the workspace's Terraform apply does: route the alias, return the outputs."""
        weight = float(variables.get("canary_weight", "0"))
        stable = variables.get("stable_version", "")
        routing = routing_for(self.candidate, stable, weight)
        self.aws.set_routing(FUNCTION, routing.primary_version, routing.additional_version_weights)
        return {"api_url": self.endpoint.url, "function_name": FUNCTION, "alias_name": "production",
                "candidate_version": self.candidate, "primary_version": routing.primary_version,
                "additional_version_weights": dict(routing.additional_version_weights),
                "canary_weight": weight, "stable_version": stable, "alarm_names": ALARMS,
                "region": REGION}

    def context(self):
        config = parse_config(self.config_path.read_text(), self.config_path)
        environment = config.environment("dev")
        tfc_client = TfcClient("tfc.test", self.tfc.token, address=self.tfc.address,
                               sleep=lambda s: None)
        self.tfc_clients.append(tfc_client)
        remote = RemoteTerraform(environment, tfc_client)
        return ReleaseContext(environment, remote, history=self.history,
                              options=RunnerOptions(smoke_requests=200, routing_interval=0.01,
                                                    routing_timeout=5))

    def close(self):
        """Close the Terraform Cloud clients that `context` made."""
        while self.tfc_clients:
            self.tfc_clients.pop().close()

    def live(self):
        return read_alias(self.lambda_client, FUNCTION, "production").routing

    def invoke(self, *args):
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, env=dict(os.environ), timeout=120)


@pytest.fixture
def remote(fake_aws, tmp_path, monkeypatch):
    fake_aws.deploy(FUNCTION, versions=1, alarm_names=ALARMS)
    with FakeEndpoint(seed=3, stable_version="1", candidate_version="1") as endpoint:
        world = None
        with FakeTfc(on_apply=lambda workspace, variables: world.apply(workspace,
                                                                        variables)) as tfc:
            tfc.add_workspace(WORKSPACE)
            config_path = tmp_path / "environments.toml"
            config_path.write_text(
                f'[environments.dev]\nregion = "{REGION}"\nfunction_name = "{FUNCTION}"\n'
                f'backend = {{ type = "cloud", organization = "acme", workspace = "{WORKSPACE}", '
                f'hostname = "tfc.test", address = "{tfc.address}" }}\n')
            monkeypatch.setenv("SAFE_RELEASE_CONFIG", str(config_path))
            monkeypatch.setenv("SAFE_RELEASE_STATE_DIR", str(tmp_path / "state"))
            monkeypatch.setenv("TFE_TOKEN", tfc.token)
            world = RemoteWorld(fake_aws, tfc, endpoint, config_path, tmp_path)
            try:
                with AliasFollower(endpoint, world.lambda_client):
                    run_phase(world.context(), Phase.DEPLOY)
                    world.candidate = fake_aws.publish_version(FUNCTION)
                    yield world
            finally:
                world.close()


def test_remote_canary_sets_the_workspace_variables_runs_and_checks(remote):
    report = run_phase(remote.context(), Phase.CANARY, 0.1)

    assert report.outcome == "succeeded" and report.smoke.passed
    assert remote.live() == Routing("1", {"2": 0.1})
    variables = remote.tfc.variables(WORKSPACE)
    assert {name: value["value"] for name, value in variables.items()} == {
        "canary_weight": "0.1", "stable_version": "1"}
    assert remote.tfc.calls().count("POST /api/v2/runs") == 2  # the deploy and the canary


def test_remote_canary_whose_run_errors_is_reported_and_leaves_traffic_alone(remote):
    remote.tfc.script_run("errored")
    with pytest.raises(PhaseFailed) as failure:
        run_phase(remote.context(), Phase.CANARY, 0.1)
    report = failure.value.report
    assert report.outcome == "failed"
    assert "errored" in report.detail and "live alias unchanged at v1 100 %" in report.detail
    assert remote.live() == Routing("1")


def test_remote_bad_canary_is_rolled_back_by_a_second_run(remote):
    remote.endpoint.configure(candidate_error_rate=0.6)
    with pytest.raises(PhaseFailed) as failure:
        run_phase(remote.context(), Phase.CANARY, 0.25)
    assert failure.value.report.outcome == "rolled-back"
    assert remote.live() == Routing("1")
    assert {name: value["value"] for name, value in remote.tfc.variables(WORKSPACE).items()} == {
        "canary_weight": "0.0", "stable_version": "1"}


def test_cli_remote_canary_never_shows_the_token(remote):
    result = remote.invoke("canary", "--weight=0.1", "--remote", "--requests=200")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("canary dev: succeeded - v1 90 % + v2 10 %")
    token = remote.tfc.token
    assert token not in result.stdout and token not in result.stderr
    assert token not in remote.history_path.read_text()


@pytest.mark.parametrize("change, message", [
    ({"TFE_TOKEN": "wrong-token"}, "token rejected by tfc.test (401)"),
    ({"TFE_TOKEN": ""}, "no Terraform Cloud token for tfc.test"),
])
def test_cli_remote_token_problems_are_one_line_and_apply_nothing(remote, monkeypatch, change,
                                                                  message):
    for name, value in change.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HOME", str(remote.config_path.parent))  # no credentials file either
    runs = remote.tfc.calls().count("POST /api/v2/runs")
    result = remote.invoke("canary", "--weight=0.1", "--remote")
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "wrong-token" not in result.stderr
    assert remote.tfc.calls().count("POST /api/v2/runs") == runs


def test_cli_remote_unknown_workspace(remote):
    text = remote.config_path.read_text().replace(WORKSPACE, "lambda-typo")
    remote.config_path.write_text(text)
    result = remote.invoke("canary", "--weight=0.1", "--remote")
    assert result.returncode != 0
    assert "lambda-typo" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_remote_needs_a_cloud_backend(remote):
    remote.config_path.write_text(
        f'[environments.dev]\nregion = "{REGION}"\nfunction_name = "{FUNCTION}"\n')
    result = remote.invoke("canary", "--weight=0.1", "--remote")
    assert result.returncode != 0
    assert ('--remote needs a Terraform Cloud workspace: set [environments.dev.backend] type = '
            '"cloud"') in result.stderr
