"""The routing table, evaluated by a real Terraform (1.0.3) on the provider-free module.

The same checks run on the module as written (`modules/traffic_policy`) and on the copy cdktf
placed in a synthesized stack, which is what `terraform apply` (or Terraform Cloud) uses.
"""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

MODULE_DIR = PROJECT_ROOT / "modules" / "traffic_policy"

ROUTING_COLUMNS = "stable, weight, candidate, primary, weights, phase, blocks"
ROUTING_TABLE = [
    # stable, weight, candidate -> primary, additional weights, phase, routing_config blocks
    pytest.param("", 0, "1", "1", {}, "candidate-only", [], id="first-deployment"),
    pytest.param("", 0.5, "1", "1", {}, "candidate-only", [], id="first-deployment-any-weight"),
    # The stack's precondition refuses this row (a canary weight with nothing new to send it to).
    pytest.param("4", 0.25, "4", "4", {}, "candidate-only", [{}], id="stable-is-candidate"),
    pytest.param("4", 1, "4", "4", {}, "candidate-only", [], id="stable-is-candidate-weight-1"),
    pytest.param("3", 0, "4", "3", {}, "stable-only", [], id="rollback-or-baseline"),
    pytest.param("3", 0.1, "4", "3", {"4": 0.1}, "canary", [{"4": 0.1}], id="canary-10"),
    pytest.param("3", 0.5, "4", "3", {"4": 0.5}, "canary", [{"4": 0.5}], id="canary-50"),
    pytest.param("3", 0.999, "4", "3", {"4": 0.999}, "canary", [{"4": 0.999}],
                 id="canary-almost-all"),
    pytest.param("3", 1, "4", "4", {}, "promoted", [], id="blue-green-switch"),
    pytest.param("12", 0.05, "9", "12", {"9": 0.05}, "canary", [{"9": 0.05}],
                 id="numeric-not-lexical"),
]

REJECTED = [
    pytest.param({"canary_weight": "-0.1"}, "canary_weight must be a number from 0 to 1",
                 id="weight--0.1"),
    pytest.param({"canary_weight": "1.5"}, "canary_weight must be a number from 0 to 1",
                 id="weight-1.5"),
    pytest.param({"stable_version": "abc"}, "stable_version must be empty", id="stable-abc"),
    pytest.param({"stable_version": "$LATEST"}, "stable_version must be empty", id="stable-latest"),
    pytest.param({"candidate_version": "$LATEST"}, "$LATEST cannot take weighted traffic",
                 id="candidate-latest"),
]


@pytest.fixture(scope="module", params=["source", "synthesized"])
def module_dir(request, tmp_path_factory, terraform_1_0) -> Path:
    """A working copy of the module, initialised once (no providers, so init is offline)."""
    if request.param == "source":
        original = MODULE_DIR
    else:
        synth = request.getfixturevalue("synth")
        stack_dir = synth.stack_dir("prod")
        source = synth.stack("prod")["module"]["traffic_policy"]["source"]
        assert source.startswith("./assets/"), source
        original = stack_dir / source
    workdir = tmp_path_factory.mktemp(f"traffic-policy-{request.param}")
    for tf_file in original.glob("*.tf"):
        shutil.copy(tf_file, workdir)
    subprocess.run([terraform_1_0, "init", "-input=false", "-no-color"], cwd=workdir,
                   check=True, capture_output=True)
    return workdir


def apply(terraform: str, workdir: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    args = [f"-var={name}={value}" for name, value in variables.items()]
    return subprocess.run([terraform, "apply", "-auto-approve", "-input=false", "-no-color", *args],
                          cwd=workdir, capture_output=True, text=True)


def outputs(terraform: str, workdir: Path) -> dict:
    raw = subprocess.run([terraform, "output", "-json"], cwd=workdir, check=True,
                         capture_output=True, text=True).stdout
    return {name: value["value"] for name, value in json.loads(raw).items()}


@pytest.mark.parametrize(ROUTING_COLUMNS, ROUTING_TABLE)
def test_routing_table(terraform_1_0, module_dir, stable, weight, candidate, primary, weights,
                       phase, blocks):
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": candidate, "stable_version": stable, "canary_weight": weight})
    assert result.returncode == 0, result.stderr
    assert outputs(terraform_1_0, module_dir) == {
        "primary_version": primary, "additional_version_weights": weights, "phase": phase,
        "routing_config": [{"additional_version_weights": block} for block in blocks],
        "canary_of_stable_version": blocks == [{}],
        # Nothing quarantined: no refusal.
        "serving_quarantined_versions": [], "serves_quarantined_version": False,
        "quarantine_refusal": "",
        # No promotion gate: nothing to refuse.
        "promotion_gate_refuses": False, "promotion_refusal": ""}


QUARANTINE = json.dumps({"4": {"reason": "alarm demo-canary-error-rate",
                               "at": "2026-12-01T10:00:00Z"}})


@pytest.mark.parametrize("stable, weight, candidate, serving_quarantined", [
    pytest.param("3", 0.1, "4", ["4"], id="canary-of-it"),
    pytest.param("3", 1, "4", ["4"], id="promote-it"),
    pytest.param("4", 0, "5", ["4"], id="it-as-stable"),
    pytest.param("3", 0, "4", [], id="rollback-away-from-it"),
    pytest.param("3", 0.1, "5", [], id="canary-of-new-code"),
    pytest.param("4", 1, "5", [], id="promote-new-code-over-it"),
])
def test_a_quarantined_version_gets_no_traffic(terraform_1_0, module_dir, stable, weight,
                                               candidate, serving_quarantined):
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": candidate, "stable_version": stable, "canary_weight": weight,
        "quarantined_versions_json": QUARANTINE, "environment": "staging"})
    assert result.returncode == 0, result.stderr
    routing = outputs(terraform_1_0, module_dir)
    assert routing["serving_quarantined_versions"] == serving_quarantined
    assert routing["serves_quarantined_version"] is bool(serving_quarantined)
    if serving_quarantined:
        assert routing["quarantine_refusal"] == (
            "Quarantined version would get traffic: v4 (rolled back by alarm "
            "demo-canary-error-rate at 2026-12-01T10:00:00Z). Keep it out: apply canary_weight = "
            "0 with the previous stable_version, or release new code. To serve it again on "
            "purpose: invoke release-quarantine --env staging --version 4.")
    else:
        assert routing["quarantine_refusal"] == ""


@pytest.mark.parametrize("stable, weight, serving, primary, weights", [
    pytest.param("", 0, "", "4", {}, id="first-deployment"),
    pytest.param("", 0, "3", "3", {}, id="new-code-at-weight-0"),
    pytest.param("", 0.1, "3", "3", {"4": 0.1}, id="canary-over-the-serving-version"),
    pytest.param("", 0, "4", "4", {}, id="replan-after-the-first-deployment"),
    pytest.param("2", 0, "3", "2", {}, id="a-named-stable-version-wins"),
])
def test_an_empty_stable_version_stands_for_the_serving_version(
        terraform_1_0, module_dir, stable, weight, serving, primary, weights):
    """Once something serves, "" never sends new code 100 % at once (e.g. a VCS run of a phase
    file still at its first value): the version serving now stays the stable one."""
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": "4", "stable_version": stable, "canary_weight": weight,
        "serving_version": serving})
    assert result.returncode == 0, result.stderr
    routing = outputs(terraform_1_0, module_dir)
    assert (routing["primary_version"], routing["additional_version_weights"]) == (primary, weights)


STAGING_CODE = "c3RhZ2luZy1zZXJ2ZXMtdGhpcy1jb2RlLWhhc2g9PT0="
OTHER_CODE = "b3RoZXItY29kZS1ub3QteWV0LWluLXN0YWdpbmc9PT0="


@pytest.mark.parametrize("stable, weight, serving, release_code, override, refuses", [
    pytest.param("3", 0.1, "3", OTHER_CODE, "", True, id="canary-of-code-staging-does-not-serve"),
    pytest.param("3", 1, "3", OTHER_CODE, "", True, id="promote-of-it"),
    pytest.param("3", 0.25, "3", OTHER_CODE, "", True, id="rollout-step-of-it"),
    pytest.param("3", 0.1, "3", STAGING_CODE, "", False, id="canary-of-what-staging-serves"),
    pytest.param("3", 0, "3", OTHER_CODE, "", False, id="deploy-at-weight-0"),
    pytest.param("3", 0, "4", OTHER_CODE, "", False, id="rollback"),
    pytest.param("3", 1, "4", OTHER_CODE, "", False, id="rerun-of-a-done-promote"),
    pytest.param("", 0, "", OTHER_CODE, "", False, id="first-deployment"),
    pytest.param("3", 0.1, "3", OTHER_CODE, "hotfix INC-42", False, id="overridden"),
])
def test_new_code_gets_traffic_only_once_the_after_environment_serves_it(
        terraform_1_0, module_dir, stable, weight, serving, release_code, override, refuses):
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": "4", "stable_version": stable, "canary_weight": weight,
        "serving_version": serving, "environment": "prod", "promotion_after": "staging",
        "after_version": "7", "after_pins": f'{{code="{STAGING_CODE}"}}',
        "release_pins": f'{{code="{release_code}"}}', "promotion_gate_override": override})
    assert result.returncode == 0, result.stderr
    gate = outputs(terraform_1_0, module_dir)
    assert gate["promotion_gate_refuses"] is refuses
    if release_code == OTHER_CODE:
        assert gate["promotion_refusal"] == (
            f"Promotion gate: staging serves code {STAGING_CODE[:12]} (v7) but prod would release "
            f"code {OTHER_CODE[:12]}. Release it in staging first and let it soak; to go on "
            'anyway, apply with promotion_gate_override = "<reason>" (invoke: --skip-gate '
            "REASON).")


def test_the_same_code_with_other_shared_settings_is_refused_naming_that_pin(terraform_1_0,
                                                                            module_dir):
    shared, other = "5f0c" * 16, "9e2a" * 16
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": "4", "stable_version": "3", "canary_weight": 0.1,
        "serving_version": "3", "environment": "prod", "promotion_after": "staging",
        "after_version": "7",
        "after_pins": f'{{code="{STAGING_CODE}", shared_settings="{shared}"}}',
        "release_pins": f'{{code="{STAGING_CODE}", shared_settings="{other}"}}'})
    assert result.returncode == 0, result.stderr
    gate = outputs(terraform_1_0, module_dir)
    assert gate["promotion_gate_refuses"] is True
    assert gate["promotion_refusal"].startswith(
        "Promotion gate: staging serves shared_settings 5f0c5f0c5f0c (v7) but prod would release "
        "shared_settings 9e2a9e2a9e2a.")


def test_an_after_environment_that_serves_nothing_refuses_new_code(terraform_1_0, module_dir):
    result = apply(terraform_1_0, module_dir, {
        "candidate_version": "4", "stable_version": "3", "canary_weight": 0.1,
        "environment": "prod", "promotion_after": "staging", "after_pins": '{code=""}',
        "release_pins": f'{{code="{OTHER_CODE}"}}'})
    assert result.returncode == 0, result.stderr
    gate = outputs(terraform_1_0, module_dir)
    assert gate["promotion_gate_refuses"] is True
    assert gate["promotion_refusal"].startswith(
        f"Promotion gate: staging serves nothing but prod would release code {OTHER_CODE[:12]}.")
