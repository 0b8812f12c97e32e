"""The promotion gate through the real `invoke` tasks, a real Terraform and the real AWS provider,
against moto (tests/fakes/real_world.py), with staging and prod in one world. The tests of the
class are the steps of one release history, in order.

Its own file (it was the last class of test_real_terraform.py): scripts/test runs the suite on
pytest-xdist workers with --dist loadfile, so this world, which shares nothing with that file's,
runs on one worker beside it instead of after it.
"""

from __future__ import annotations

import re
import subprocess
import time
import zipfile

import pytest

from fakes.real_world import RealWorld, real_world
from release.aws import Routing
from release.config import parse_config, settings_sha256
from release.synth import FINGERPRINT_FILE, fingerprint

# Minutes of real Terraform runs: `scripts/test -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="class")
def gate_world(tmp_path_factory, synth):
    """staging and prod applied into the same (fresh) moto account. Its own world: it resets the
    moto server (that of the test process, or of the xdist worker), so no other class uses it."""
    with real_world(tmp_path_factory, synth, ("staging", "prod")) as world:
        yield world


def same_change(world: RealWorld, name: str, *envs: str) -> None:
    """Code change `name` merged into each stack's archive, byte for byte the same (fixed zip
    timestamp): archives that had the same changes in the same order have the same CodeSha256."""
    for env in envs:
        (archive,) = world.stack_dir(env).glob("assets/function_code_*/*/*.zip")
        with zipfile.ZipFile(archive, "a") as bundle:
            bundle.writestr(zipfile.ZipInfo(name, (1980, 1, 1, 0, 0, 0)), "merged\n")


def use_soak(world: RealWorld, minutes: int) -> None:
    """prod's promotion.soak_minutes, which only invoke reads (the stacks do not change): a copy
    of the config, marked as the one the stacks were synthesized from."""
    text = world.config_path.read_text().replace("soak_minutes = 30", f"soak_minutes = {minutes}")
    path = world.root / f"environments-soak-{minutes}.toml"
    path.write_text(text)
    world.env["SAFE_RELEASE_CONFIG"] = str(path)
    (world.outdir / FINGERPRINT_FILE).write_text(fingerprint(parse_config(text, path)))


def prod_plan(world: RealWorld, weight: str, stable: str) -> subprocess.CompletedProcess:
    """A plain `terraform plan` of prod, as a Terraform Cloud VCS run would make it."""
    return world.terraform_cli("prod", "plan", "-input=false", "-no-color", "-var",
                               f"canary_weight={weight}", "-var", f"stable_version={stable}")


class TestPromotionGate:
    """prod (promotion = {after = "staging", soak_minutes = 30, approval = "required"}) gives new
    code traffic only once staging serves it: refused by invoke (a `refused` history record,
    nothing applied) and by a plain `terraform plan`, accepted once staging serves the same code
    and (invoke) the soak is over; --skip-gate goes on, recorded."""

    def test_both_environments_deploy_at_weight_0_without_a_gate(self, gate_world):
        world = gate_world
        assert world.invoke("bootstrap", "--env", "staging").returncode == 0
        world.phase("deploy", "staging")
        same_change(world, "change-a.txt", "prod")  # code staging never served: a deploy is free
        result = world.phase("deploy", "prod")
        assert (result["outcome"], result["gate"]) == ("succeeded", None)
        same_change(world, "change-b.txt", "prod")
        result = world.phase("deploy", "prod")
        assert (result["outcome"], world.live("prod")) == ("succeeded", Routing("1"))
        assert world.published_versions("prod")[-1] == "2"

    def test_invoke_refuses_a_canary_of_code_staging_does_not_serve(self, gate_world):
        world = gate_world
        result = world.invoke("canary", "--env", "prod", "--weight", "0.1", "--approved-by",
                              "Ada", "--url", world.endpoints["prod"].url)
        assert result.returncode == 1
        staging_code = world.lambda_client.get_function_configuration(
            FunctionName=world.function_name("staging"), Qualifier="1")["CodeSha256"]
        prod_code = world.lambda_client.get_function_configuration(
            FunctionName=world.function_name("prod"), Qualifier="2")["CodeSha256"]
        assert result.stdout.strip().endswith(
            f"promotion gate: staging serves code {staging_code[:12]} (v1) but this release is "
            f"code {prod_code[:12]} (v2): release it in staging first")
        assert world.live("prod") == Routing("1")
        last = world.history.last("prod")
        assert (last["phase"], last["outcome"], last["gate"]["approved_by"]) == (
            "canary", "refused", "Ada")

    def test_a_plain_terraform_plan_refuses_it_too(self, gate_world):
        plan = prod_plan(gate_world, "0.1", "1")
        assert plan.returncode == 1
        message = " ".join(plan.stderr.replace("│", " ").split())
        assert "Resource precondition failed" in message
        assert "Promotion gate: staging serves code " in message
        assert "(v1) but prod would release code " in message
        # A plan at weight 0 (a deploy, a rollback) is not gated.
        assert prod_plan(gate_world, "0", "1").returncode == 0

    def test_once_staging_serves_it_the_soak_still_holds_invoke(self, gate_world):
        world = gate_world
        # Before anything the soak can count from (less 1 s: AWS timestamps may be truncated
        # to the second).
        started = time.monotonic() - 1
        same_change(world, "change-a.txt", "staging")  # the same two changes as prod, in order
        world.phase("deploy", "staging")
        same_change(world, "change-b.txt", "staging")
        world.phase("deploy", "staging")
        world.phase("promote", "staging")
        assert world.live("staging") == Routing("3")
        result = world.invoke("promote", "--env", "prod", "--approved-by", "Ada", "--url",
                              world.endpoints["prod"].url)
        assert result.returncode == 1
        # Since v3 serves, or since a release alarm last changed state, whichever is later: both
        # within this test, so at most the whole minutes it has taken so far (0 on an idle
        # machine; it was `since 0 min` exactly, which a loaded machine, or a worker beside
        # another, does not always make: three applies can take more than a minute).
        soak = re.search(r"since (\d+) min; 30 needed$", result.stdout.strip())
        assert soak, result.stdout
        assert int(soak[1]) <= (time.monotonic() - started) // 60
        assert "promotion gate: staging" in result.stdout
        assert world.live("prod") == Routing("1")
        # Terraform cannot see the soak: its plan compares the code, which now matches.
        assert prod_plan(world, "0.1", "1").returncode == 0

    def test_after_the_soak_the_canary_goes_ahead_with_its_approver(self, gate_world):
        world = gate_world
        use_soak(world, 0)
        result = world.phase("canary", "prod", "--weight=0.1", "--approved-by", "Ada")
        assert result["outcome"] == "succeeded", result["detail"]
        assert world.live("prod") == Routing("1", {"2": 0.1})
        gate = world.history.last("prod")["gate"]
        assert (gate["passed"], gate["after_version"], gate["approved_by"]) == (True, "3", "Ada")
        assert world.replan("prod").returncode == 0

    def test_skip_gate_goes_on_and_is_recorded_and_shown(self, gate_world):
        world = gate_world
        world.phase("rollback", "prod")
        same_change(world, "change-c.txt", "prod")  # v3 in prod: code staging never served
        world.phase("deploy", "prod")
        result = world.phase("canary", "prod", "--weight=0.1", "--approved-by", "Ada",
                             "--skip-gate", "hotfix INC-42")
        assert result["outcome"] == "succeeded", result["detail"]
        assert world.live("prod") == Routing("1", {"3": 0.1})
        assert result["gate"]["skipped"] == "hotfix INC-42"
        status = world.invoke("status", "--env", "prod")
        assert status.returncode == 0, status.stderr
        assert ("PROMOTION GATE SKIPPED (staging not checked): hotfix INC-42, approved by Ada"
                in status.stdout)

    def test_a_shared_settings_change_waits_for_staging_like_code(self, gate_world):
        """A config-only change ([defaults.settings]) travels staging -> prod as a canary: prod
        publishes it, but it gets traffic only once staging serves it and has soaked."""
        world = gate_world
        world.phase("rollback", "prod")
        same_change(world, "change-c.txt", "staging")  # staging serves prod's v3 code too
        world.phase("deploy", "staging")
        world.phase("promote", "staging")
        assert world.live("staging") == Routing("4")
        shared = {"greeting": "hello, promoted"}
        for env in ("staging", "prod"):
            world.new_shared_settings(env, shared)
        result = world.phase("deploy", "prod")
        assert (result["outcome"], result["candidate_version"]) == ("succeeded", "4")
        code = {version: world.lambda_client.get_function_configuration(
            FunctionName=world.function_name("prod"), Qualifier=version)["CodeSha256"]
            for version in ("3", "4")}
        assert code["3"] == code["4"]  # the same code: only the config changed
        use_soak(world, 30)
        refused = world.invoke("canary", "--env", "prod", "--weight", "0.1", "--approved-by",
                               "Ada", "--url", world.endpoints["prod"].url)
        assert refused.returncode == 1
        old, new = settings_sha256({"greeting": "hello"}), settings_sha256(shared)
        assert refused.stdout.strip().endswith(
            f"promotion gate: staging serves shared_settings {old[:12]} (v4) but this release "
            f"is shared_settings {new[:12]} (v4): release it in staging first")
        message = " ".join(prod_plan(world, "0.1", "1").stderr.replace("│", " ").split())
        assert (f"Promotion gate: staging serves shared_settings {old[:12]} (v4) but prod "
                f"would release shared_settings {new[:12]}.") in message
        # staging releases the change (v5), then prod waits for the soak.
        started = time.monotonic() - 1  # see test_once_staging_serves_it_the_soak_still_holds
        world.phase("deploy", "staging")
        world.phase("promote", "staging")
        assert world.live("staging") == Routing("5")
        refused = world.invoke("canary", "--env", "prod", "--weight", "0.1", "--approved-by",
                               "Ada", "--url", world.endpoints["prod"].url)
        assert refused.returncode == 1
        soak = re.search(r"since (\d+) min; 30 needed$", refused.stdout.strip())
        assert soak, refused.stdout
        assert int(soak[1]) <= (time.monotonic() - started) // 60
        assert world.live("prod") == Routing("1")
        use_soak(world, 0)
        result = world.phase("canary", "prod", "--weight=0.1", "--approved-by", "Ada")
        assert result["outcome"] == "succeeded", result["detail"]
        assert world.live("prod") == Routing("1", {"4": 0.1})
        # Each version answers with the settings it was published with: v4 with the new ones.
        assert result["smoke"]["config_versions_seen"] == {"1": ["1"], "4": ["2"]}
        assert world.replan("prod").returncode == 0
