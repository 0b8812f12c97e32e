"""Every release phase through the real `invoke` tasks, a real Terraform and the real AWS
provider, against moto (tests/fakes/real_world.py). The tests of each class are the steps of one
release history, in order: each asserts where traffic is (live alias = the routing table), what
the stack outputs say, the history line, and that a fresh plan with the phase's variables is
clean (`plan -detailed-exitcode` exits 0: the stack converges).
"""

from __future__ import annotations

import json
import zipfile

import pytest

from fakes.alarm_notifications import STATE_CHANGE_TIME, RollbackFunction
from fakes.moto_server import alarm_update_fails_after_the_alias_moves, moto_alias_routing
from fakes.real_terraform import lay_overrides
from fakes.real_world import RealWorld, real_world
from release.aws import Routing, client, read_quarantine

# Minutes of real Terraform runs: `scripts/test -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow
# scripts/test runs the suite on pytest-xdist workers with --dist loadfile (see pyproject.toml):
# this file runs whole, in file order, on one worker, with that worker's own moto server. Its
# classes share the module's `world`: they are steps of one history. The promotion gate, with a
# world of its own, is in test_real_terraform_gate.py, so it can run beside it on another worker.


@pytest.fixture(scope="module")
def world(tmp_path_factory, synth):
    with real_world(tmp_path_factory, synth, ("staging", "dev", "configured")) as world:
        yield world


def assert_phase(world: RealWorld, env: str, result: dict, *, phase: str, routing: Routing,
                 candidate: str, stable: str, outcome: str = "succeeded") -> None:
    """The live alias, the stack outputs, the history and a clean re-plan all agree."""
    assert (result["phase"], result["outcome"]) == (phase, outcome), result["detail"]
    assert world.live(env) == routing
    outputs = world.outputs(env)
    assert Routing(outputs["primary_version"], outputs["additional_version_weights"]) == routing
    assert (outputs["candidate_version"], outputs["stable_version"]) == (candidate, stable)
    last = world.history.last(env)
    assert (last["phase"], last["outcome"], last["candidate_version"]) == (phase, outcome,
                                                                            candidate)
    assert last["routing_after"] == routing.to_dict()
    replan = world.replan(env)
    assert replan.returncode == 0, f"the stack does not converge:\n{replan.stdout}{replan.stderr}"


class TestReleaseHistoryInStaging:
    """a fresh account refused -> bootstrap -> deploy -> canary -> promote -> new code -> canary
    -> rollback -> fast rollback -> rollout -> status -> refused canary -> failed apply ->
    alarm rollback and quarantine -> destroy, in the staging stack (auto-rollback function, SNS,
    SQS and all)."""

    def test_a_fresh_account_is_refused_before_anything_is_planned(self, world):
        result = world.invoke("deploy", "--env", "staging", "--url", world.endpoints["staging"].url)
        assert result.returncode == 1
        assert result.stderr.strip().startswith(
            "error: API Gateway in eu-west-1 has no CloudWatch Logs role for this account, so "
            "staging's stage logging would fail the first apply: run `invoke bootstrap --env "
            "staging`")
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (world.root / "terraform-state" / "staging").exists()  # never planned
        assert world.history.read("staging") == []

    def test_bootstrap_gives_the_account_its_api_gateway_logging_role(self, world):
        result = world.invoke("bootstrap", "--env", "staging")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("bootstrap account-eu-west-1: 3 to add, 0 to change")
        role = client("apigateway", "eu-west-1").get_account()["cloudwatchRoleArn"]
        assert role.endswith(":role/api-gateway-cloudwatch-logs-eu-west-1")
        replan = world.terraform_cli("account-eu-west-1", "plan", "-input=false", "-no-color",
                                     "-detailed-exitcode")
        assert replan.returncode == 0, replan.stdout + replan.stderr

    def test_first_deploy_gives_version_1_all_traffic(self, world):
        result = world.phase("deploy", "staging")
        assert_phase(world, "staging", result, phase="deploy", routing=Routing("1"),
                     candidate="1", stable="")
        assert result["smoke"]["version_counts"] == {"1": result["smoke"]["completed"]}

    def test_an_unchanged_first_phase_file_never_sends_new_code_everything(self, world):
        """A VCS run with new code and the phase file still at its first value (stable_version
        ""): the version serving now stays the stable one, the new code is published at 0 %."""
        world.new_code("staging")
        apply = world.terraform_cli("staging", "apply", "-auto-approve", "-input=false",
                                    "-no-color", "-var", "canary_weight=0", "-var",
                                    "stable_version=")
        assert apply.returncode == 0, apply.stdout + apply.stderr
        assert world.live("staging") == Routing("1")
        assert world.published_versions("staging")[-1] == "2"
        assert world.replan("staging").returncode == 0

    def test_canary_of_new_code(self, world):
        result = world.phase("canary", "staging", "--weight=0.1")
        assert_phase(world, "staging", result, phase="canary", routing=Routing("1", {"2": 0.1}),
                     candidate="2", stable="1")
        assert set(result["smoke"]["version_counts"]) == {"1", "2"}

    def test_promote(self, world):
        result = world.phase("promote", "staging")
        assert_phase(world, "staging", result, phase="promote", routing=Routing("2"),
                     candidate="2", stable="1")

    def test_canary_of_the_next_change_right_after_a_promote(self, world):
        # Failed with "Provider produced inconsistent final plan" while the alias always carried
        # a routing_config block: the new version is unknown at plan time.
        world.new_code("staging")
        result = world.phase("canary", "staging", "--weight=0.1")
        assert_phase(world, "staging", result, phase="canary", routing=Routing("2", {"3": 0.1}),
                     candidate="3", stable="2")

    def test_rollback(self, world):
        result = world.phase("rollback", "staging")
        assert_phase(world, "staging", result, phase="rollback", routing=Routing("2"),
                     candidate="3", stable="2")

    def test_fast_rollback_then_terraform_agrees(self, world):
        world.phase("canary", "staging", "--weight=0.25")  # v3 again: it is still the candidate
        assert world.live("staging") == Routing("2", {"3": 0.25})
        result = world.invoke("rollback", "--env", "staging", "--fast", "--url",
                              world.endpoints["staging"].url, "--json")
        assert result.returncode == 0, result.stderr
        assert "after one UpdateAlias" in result.stderr
        assert_phase(world, "staging", json.loads(result.stdout), phase="rollback",
                     routing=Routing("2"), candidate="3", stable="2")
        # The version it took traffic from is quarantined: no later plan gives it traffic.
        quarantined = read_quarantine(client("ssm", "eu-west-1"),
                                      world.outputs("staging")["quarantine_parameter"])
        assert set(quarantined) == {"3"}
        assert quarantined["3"].reason.startswith("invoke rollback --fast by ")

    def test_rollout_walks_its_steps(self, world):
        world.new_code("staging")
        result = world.phase("rollout", "staging", "--steps=0.1,0.5,1", "--bake=0")
        assert [(step["phase"], step["outcome"]) for step in result] == [
            ("rollout-step", "succeeded"), ("rollout-step", "succeeded"), ("promote", "succeeded")]
        assert [step["routing_after"] for step in result] == [
            Routing("2", {"4": 0.1}).to_dict(), Routing("2", {"4": 0.5}).to_dict(),
            Routing("4").to_dict()]
        assert_phase(world, "staging", result[-1], phase="promote", routing=Routing("4"),
                     candidate="4", stable="2")

    def test_status_reports_drift_anywhere_in_the_stack(self, world):
        status = world.invoke("status", "--env", "staging", "--json")
        assert status.returncode == 0, status.stderr
        info = json.loads(status.stdout)
        assert (info["drift"], info["terraform_drift"]) == (False, [])
        assert info["live_routing"] == Routing("4").to_dict()
        # A console change to something other than the alias.
        world.lambda_client.update_function_configuration(
            FunctionName=world.function_name("staging"), MemorySize=1024)
        info = json.loads(world.invoke("status", "--env", "staging", "--json").stdout)
        assert info["drift"] is True
        assert [address for address in info["terraform_drift"] if "aws_lambda_function" in address]
        text = world.invoke("status", "--env", "staging").stdout
        assert "something was changed outside Terraform" in text
        # An apply puts the memory back; it publishes that as v5, which a promote then releases.
        world.phase("deploy", "staging")
        assert world.replan("staging").returncode == 0
        result = world.phase("promote", "staging")
        assert_phase(world, "staging", result, phase="promote", routing=Routing("5"),
                     candidate="5", stable="4")

    def test_a_canary_without_new_code_is_refused_from_the_plan(self, world):
        serial_before = world.outputs("staging")
        result = world.invoke("canary", "--env", "staging", "--weight=0.1", "--json",
                              "--url", world.endpoints["staging"].url)
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["outcome"] == "refused"
        assert report["detail"].startswith("no new version to send traffic to")
        assert world.outputs("staging") == serial_before
        assert world.live("staging") == Routing("5")

    def test_a_failed_apply_puts_the_live_routing_back(self, world):
        world.new_code("staging")
        with alarm_update_fails_after_the_alias_moves(world.function_name("staging")):
            result = world.invoke("canary", "--env", "staging", "--weight=0.1", "--json",
                                  "--url", world.endpoints["staging"].url)
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["outcome"] == "failed"
        # Terraform's own explanation, not only its headline.
        assert "Injected failure: the alarm could not be updated" in report["detail"]
        assert "live alias restored from" in report["detail"]
        assert world.live("staging") == Routing("5")
        # What the live function shows: the failed apply had published v6 already.
        assert report["candidate_version"] == "6" == world.published_versions("staging")[-1]
        assert world.history.last("staging")["candidate_version"] == "6"
        # Rerunning the phase finishes it.
        result = world.phase("canary", "staging", "--weight=0.1")
        assert_phase(world, "staging", result, phase="canary", routing=Routing("5", {"6": 0.1}),
                     candidate="6", stable="5")

    def test_an_alarm_rollback_keeps_the_version_out_on_every_path(self, world, monkeypatch):
        function = world.function_name("staging")
        with RollbackFunction(monkeypatch, function, [f"{function}-canary-error-rate"]) as rollback:
            [outcome] = rollback.deliver(f"{function}-canary-error-rate", executed_version="6")
        assert (outcome["action"], outcome["quarantined"]) == ("rolled-back", "6")
        assert world.live("staging") == Routing("5")
        refusal = (f"Quarantined version would get traffic: v6 (rolled back by alarm "
                   f"{function}-canary-error-rate at {STATE_CHANGE_TIME}).")

        # Terraform's variables still say "canary": a plain plan (a VCS run, cdktf deploy) of them.
        plan = world.terraform_cli("staging", "plan", "-input=false", "-no-color",
                                   "-var", "canary_weight=0.1", "-var", "stable_version=5")
        assert plan.returncode == 1
        assert refusal in " ".join(plan.stderr.split())
        # invoke, even past its own alarm check, gets the same refusal from the plan.
        result = world.invoke("canary", "--env", "staging", "--weight=0.1", "--force", "--json",
                              "--url", world.endpoints["staging"].url)
        assert result.returncode == 1, result.stderr
        report = json.loads(result.stdout)
        assert report["outcome"] == "refused"
        assert report["detail"].startswith(refusal)
        assert report["detail"].endswith("invoke release-quarantine --env staging --version 6.")
        assert world.live("staging") == Routing("5")
        status = world.invoke("status", "--env", "staging")
        assert status.returncode == 0, status.stderr
        assert "QUARANTINED: v6, rolled back by alarm" in status.stdout
        assert ("the stack refuses a plan with the last phase's variables: Quarantined version "
                "would get traffic: v6") in status.stdout

        # Taking its traffic away applies, and new code is not blocked.
        result = world.phase("rollback", "staging")
        assert_phase(world, "staging", result, phase="rollback", routing=Routing("5"),
                     candidate="6", stable="5")
        world.new_code("staging")
        result = world.phase("canary", "staging", "--weight=0.1")
        assert_phase(world, "staging", result, phase="canary", routing=Routing("5", {"7": 0.1}),
                     candidate="7", stable="5")

    def test_lifting_the_quarantine_is_one_recorded_command(self, world):
        result = world.invoke("release-quarantine", "--env", "staging", "--version", "6")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith("release-quarantine staging: lifted the quarantine of v6 "
                                        "(rolled back by alarm ")
        last = world.history.last("staging")
        assert (last["phase"], last["outcome"]) == ("release-quarantine", "succeeded")
        info = json.loads(world.invoke("status", "--env", "staging", "--json").stdout)
        assert list(info["quarantined"]) == ["3"]  # `rollback --fast` took v3's traffic earlier
        again = world.invoke("release-quarantine", "--env", "staging", "--version", "6")
        assert again.returncode == 1
        assert again.stderr.strip() == ("error: v6 is not quarantined (quarantined: v3); "
                                        "nothing changed")

    def test_destroy(self, world):
        result = world.invoke("destroy", "--env", "staging", "--yes")
        assert result.returncode == 0, result.stderr
        assert world.outputs("staging") == {}
        functions = world.lambda_client.list_functions()["Functions"]
        assert world.function_name("staging") not in {function["FunctionName"]
                                                      for function in functions}
        # The account stack outlives every environment.
        assert client("apigateway", "eu-west-1").get_account().get("cloudwatchRoleArn")


@pytest.fixture
def moto_own_routing():
    with moto_alias_routing():
        yield


@pytest.mark.usefixtures("moto_own_routing")
class TestMotoOwnAliasRouting:
    """The core flow again, with moto answering GetAlias its own way (an empty RoutingConfig is
    kept and reported once set, where AWS omits it), in the dev stack."""

    def test_deploy_canary_promote(self, world):
        world.phase("deploy", "dev")
        world.new_code("dev")
        world.phase("canary", "dev", "--weight=0.1")
        result = world.phase("promote", "dev")
        assert_phase(world, "dev", result, phase="promote", routing=Routing("2"), candidate="2",
                     stable="1")

    def test_canary_of_the_next_change_right_after_a_promote(self, world):
        world.new_code("dev")
        result = world.phase("canary", "dev", "--weight=0.1")
        assert_phase(world, "dev", result, phase="canary", routing=Routing("2", {"3": 0.1}),
                     candidate="3", stable="2")

    def test_canary_after_a_fast_rollback(self, world):
        result = world.invoke("rollback", "--env", "dev", "--fast", "--json",
                              "--url", world.endpoints["dev"].url)
        assert result.returncode == 0, result.stderr
        world.new_code("dev")
        result = world.phase("canary", "dev", "--weight=0.1")
        assert_phase(world, "dev", result, phase="canary", routing=Routing("2", {"4": 0.1}),
                     candidate="4", stable="2")


class TestCdktfDeploy:
    """The cdktf CLI path the README promises, for platform teams: `cdktf deploy <env> --var ...`,
    a first deploy and a canary, with the same routing as the invoke tasks (prod stack)."""

    def deploy(self, world: RealWorld, outdir, *args: str):
        env = {name: value for name, value in world.env.items() if name != "CDKTF_OUTDIR"}
        # cdktf runs Terraform by this name; --skip-provider-lock because no registry is reachable
        # to hash the provider for every platform; NODE_OPTIONS silences Node's DEP0044 warning,
        # which the CLI would print as an ERROR line (it concerns the CLI's own dependencies).
        env.update(TERRAFORM_BINARY_NAME=world.terraform.binary, NODE_OPTIONS="--no-deprecation")
        return world.run("node_modules/.bin/cdktf", "deploy", "prod", "--output", str(outdir),
                         "--auto-approve", "--skip-provider-lock", "--no-color", *args,
                         env_overrides=env)

    def test_first_deploy_then_a_canary(self, world, tmp_path_factory):
        outdir = tmp_path_factory.mktemp("cdktf-cli") / "cdktf.out"
        stack = outdir / "stacks" / "prod"
        stack.mkdir(parents=True)
        lay_overrides(stack, world.terraform, world.moto)  # kept by the CLI's synth
        first = self.deploy(world, outdir, "--var", "canary_weight=0", "--var", "stable_version=")
        assert first.returncode == 0, first.stdout + first.stderr
        assert "DEP0044" not in first.stdout + first.stderr
        assert world.live("prod") == Routing("1")

        (archive,) = stack.glob("assets/function_code_*/*/*.zip")
        with zipfile.ZipFile(archive, "a") as bundle:  # merged code, without a new synth
            bundle.writestr("change.txt", "merged\n")
        # prod's promotion gate would refuse: staging serves nothing in this world (the gate has
        # its own class, TestPromotionGate); overridden on purpose, as a platform team may.
        canary = self.deploy(world, outdir, "--skip-synth", "--var", "canary_weight=0.1",
                             "--var", "stable_version=1", "--var",
                             "promotion_gate_override=no staging in this test")
        assert canary.returncode == 0, canary.stdout + canary.stderr
        assert world.live("prod") == Routing("1", {"2": 0.1})


class TestConfigReleasedWithItsVersion:
    """A config-only change is a release like a code change, in the `configured` stack (a test
    environment with settings and one secret): it publishes a new version pinned to the new
    settings parameter version, a canary serves both configs, a rollback serves the old one."""

    ENV = "configured"

    def pinned(self, world: RealWorld, version: str) -> dict[str, str]:
        variables = world.lambda_client.get_function_configuration(
            FunctionName=world.function_name(self.ENV), Qualifier=version)["Environment"]
        return variables["Variables"]

    def config(self, world: RealWorld) -> dict:
        result = world.invoke("config", "--env", self.ENV, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def test_first_deploy_pins_settings_and_secret_versions(self, world):
        secrets = client("secretsmanager", "eu-west-1")
        created = secrets.create_secret(Name="test-configured/api-key", SecretString="key-1")
        result = world.phase("deploy", self.ENV)
        assert_phase(world, self.ENV, result, phase="deploy", routing=Routing("1"),
                     candidate="1", stable="")
        assert result["smoke"]["config_versions_seen"] == {"1": ["1"]}
        parameter = world.outputs(self.ENV)["settings_parameter"]
        variables = self.pinned(world, "1")
        assert variables["SETTINGS_PARAMETER"] == f"{parameter}:1"
        assert json.loads(variables["SECRETS"]) == {"test-configured/api-key": {
            "arn": created["ARN"], "version_id": created["VersionId"]}}
        pin = {"settings_version": "1",
               "secrets": {"test-configured/api-key": created["VersionId"]}}
        assert world.history.last(self.ENV)["config"] == {"1": pin}
        status = world.invoke("status", "--env", self.ENV, "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["config"] == {"1": pin}
        # Its key may be used only through Secrets Manager, for this secret (modules/settings.py).
        iam = client("iam", "eu-west-1")
        role = world.lambda_client.get_function(
            FunctionName=world.function_name(self.ENV))["Configuration"]["Role"].split("/")[-1]
        [policy_name] = iam.list_role_policies(RoleName=role)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role, PolicyName=policy_name)["PolicyDocument"]
        decrypt = {s["Sid"]: s for s in document["Statement"]}["DecryptPinnedSecrets"]
        account = created["ARN"].split(":")[4]
        assert decrypt["Resource"] == [f"arn:aws:kms:eu-west-1:{account}:key/*"]
        assert decrypt["Condition"] == {
            "StringEquals": {"kms:ViaService": ["secretsmanager.eu-west-1.amazonaws.com"]},
            "ForAnyValue:StringEquals": {"kms:EncryptionContext:SecretARN": [created["ARN"]]}}
        # The secret's value is in neither the plan's nor the state's data.
        state = world.terraform_cli(self.ENV, "show", "-json")
        assert state.returncode == 0 and "key-1" not in state.stdout
        view = self.config(world)
        assert view["primary"]["settings"] == {"greeting": "hej", "max_items": 20}
        assert (view["canary"], view["diff"]) == (None, {})

    def test_a_config_only_change_is_a_new_version_and_a_canary_serves_both_configs(self, world):
        world.new_settings(self.ENV, {"greeting": "bonjour", "max_items": 20})
        result = world.phase("canary", self.ENV, "--weight=0.5")
        assert_phase(world, self.ENV, result, phase="canary", routing=Routing("1", {"2": 0.5}),
                     candidate="2", stable="1")
        # Each version answered with the settings version it was published with.
        assert result["smoke"]["config_versions_seen"] == {"1": ["1"], "2": ["2"]}
        secret = json.loads(self.pinned(world, "1")["SECRETS"])["test-configured/api-key"][
            "version_id"]
        pins = {"1": {"settings_version": "1", "secrets": {"test-configured/api-key": secret}},
                "2": {"settings_version": "2", "secrets": {"test-configured/api-key": secret}}}
        assert world.history.last(self.ENV)["config"] == pins
        status = world.invoke("status", "--env", self.ENV)
        assert status.returncode == 0, status.stderr
        assert (f"  config: v1 settings v1 (secret test-configured/api-key @ {secret}), "
                f"v2 settings v2 (secret test-configured/api-key @ {secret})"
                ) in status.stdout.splitlines()
        view = self.config(world)
        assert (view["primary"]["parameter_version"], view["canary"]["parameter_version"]) == (
            "1", "2")
        assert view["diff"] == {"greeting": {"stable": "hej", "candidate": "bonjour"}}
        text = world.invoke("config", "--env", self.ENV).stdout
        assert 'greeting: "hej" -> "bonjour"' in text

    def test_rollback_serves_the_old_code_with_its_old_config(self, world):
        result = world.phase("rollback", self.ENV)
        assert_phase(world, self.ENV, result, phase="rollback", routing=Routing("1"),
                     candidate="2", stable="1")
        assert result["smoke"]["config_versions_seen"] == {"1": ["1"]}
        # The history and status show which settings came back with the old code.
        record = world.history.last(self.ENV)
        assert {v: p["settings_version"] for v, p in record["config"].items()} == {
            "2": "2", "1": "1"}
        status = json.loads(world.invoke("status", "--env", self.ENV, "--json").stdout)
        assert {v: p["settings_version"] for v, p in status["config"].items()} == {"1": "1"}
        last_line = world.invoke("history", "--env", self.ENV).stdout.splitlines()[-1]
        assert " rollback succeeded by " in last_line
        assert ", v1 settings v1 (secret test-configured/api-key @ " in last_line
        # v1 still reads parameter version 1, though the parameter's latest value is v2's.
        parameter = world.outputs(self.ENV)["settings_parameter"]
        ssm = client("ssm", "eu-west-1")
        assert json.loads(ssm.get_parameter(Name=f"{parameter}:1")["Parameter"]["Value"]) == {
            "greeting": "hej", "max_items": 20}
        assert ssm.get_parameter(Name=parameter)["Parameter"]["Version"] == 2
