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
        "canary_of_stable_version": blocks == [{}]}


@pytest.mark.parametrize(ROUTING_COLUMNS, ROUTING_TABLE)
def test_routing_is_always_one_lambda_accepts(terraform_1_0, module_dir, stable, weight, candidate,
                                              primary, weights, phase, blocks):
    apply(terraform_1_0, module_dir, {
        "candidate_version": candidate, "stable_version": stable, "canary_weight": weight})
    routing = outputs(terraform_1_0, module_dir)
    extra = routing["additional_version_weights"]
    assert len(extra) <= 1
    assert routing["primary_version"].isdigit()
    assert all(version.isdigit() and version != routing["primary_version"] for version in extra)
    assert all(0 < share < 1 for share in extra.values())


@pytest.mark.parametrize("bad, message", REJECTED)
def test_rejected_inputs_change_nothing(terraform_1_0, module_dir, bad, message):
    good = {"candidate_version": "4", "stable_version": "3", "canary_weight": "0.1"}
    assert apply(terraform_1_0, module_dir, good).returncode == 0
    before = outputs(terraform_1_0, module_dir)

    result = apply(terraform_1_0, module_dir, {**good, **bad})

    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())
    assert outputs(terraform_1_0, module_dir) == before
