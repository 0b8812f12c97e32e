"""The committed Terraform (terraform/<env>/) that Terraform Cloud VCS-driven runs apply."""

import base64
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import PROJECT_ENVIRONMENTS, PROJECT_ROOT
from release import committed
from release.config import load_config, settings_sha256


@pytest.mark.parametrize("environment", (*PROJECT_ENVIRONMENTS, "account-eu-west-1"))
def test_committed_terraform_equals_a_fresh_synth(synth, environment):
    assert committed.differences(synth.stack_dir(environment),
                                 committed.committed_root() / environment) == [], (
        "terraform/ is stale: run `invoke synth` and commit terraform/")


@pytest.mark.parametrize("environment", PROJECT_ENVIRONMENTS)
def test_committed_directory_is_self_contained(environment):
    directory = committed.committed_root() / environment
    text = (directory / "cdk.tf.json").read_text()
    stack = json.loads(text)
    assert "backend" not in stack["terraform"] and "cloud" not in stack["terraform"]
    assert str(PROJECT_ROOT) not in text and "/tmp/" not in text
    function = next(iter(stack["resource"]["aws_lambda_function"].values()))
    assert (directory / function["filename"]).is_file()
    module_dir = directory / stack["module"]["traffic_policy"]["source"]
    assert {path.name for path in module_dir.glob("*.tf")} == {
        "main.tf", "variables.tf", "outputs.tf"}
    assert json.loads((directory / committed.PHASE_FILE).read_text()).keys() == {
        "canary_weight", "stable_version"}


@pytest.mark.parametrize("environment", PROJECT_ENVIRONMENTS)
def test_committed_pins_are_the_released_function_archive_and_shared_settings(environment):
    """What the promotion gate with --commit compares with the published candidate: the
    archive of the function that publishes versions (not the auto-rollback function's) and the
    fingerprint of [defaults.settings] it carries."""
    directory = committed.committed_root() / environment
    stack = json.loads((directory / "cdk.tf.json").read_text())
    released = [function for function in stack["resource"]["aws_lambda_function"].values()
                if function.get("publish") is True]
    assert len(released) == 1 and released[0]["source_code_hash"] == (
        f'${{filebase64sha256("{released[0]["filename"]}")}}')
    digest = hashlib.sha256((directory / released[0]["filename"]).read_bytes()).digest()
    assert committed.committed_release_pins(directory) == {
        "code": base64.b64encode(digest).decode(),
        "shared_settings": settings_sha256(load_config().environment(environment).shared_settings)}
    assert committed.committed_release_pins(committed.committed_root() / "account-eu-west-1") == {}


def provider_free_root(directory: Path, workdir: Path) -> Path:
    """The committed stack's variables, phase file and traffic-policy module as a root module a
    provider-less Terraform can run: the parts of the committed JSON that need no AWS."""
    stack = json.loads((directory / "cdk.tf.json").read_text())
    module = dict(stack["module"]["traffic_policy"])
    module.pop("//", None)
    module["candidate_version"] = "${var.candidate_version}"
    # What the stack reads from AWS at plan time: a stack never applied, with no quarantine,
    # and (prod's promotion gate) staging serving the code this plan releases.
    module.update(quarantined_versions_json="", serving_version="", after_version="7",
                  after_pins={"code": "c2FtZS1jb2Rl"}, release_pins={"code": "c2FtZS1jb2Rl"})
    shutil.copytree(directory / "assets", workdir / "assets")
    shutil.copy(directory / committed.PHASE_FILE, workdir)
    (workdir / "main.tf.json").write_text(json.dumps({
        "variable": {**stack["variable"], "candidate_version": {"type": "string"}},
        "module": {"traffic_policy": module},
        "output": {name: {"value": f"${{module.traffic_policy.{name}}}"}
                   for name in ("primary_version", "additional_version_weights", "phase")},
    }))
    return workdir


@pytest.fixture(scope="module")
def committed_root(tmp_path_factory, terraform_1_0):
    workdir = provider_free_root(committed.committed_root() / "prod",
                                 tmp_path_factory.mktemp("prod"))
    subprocess.run([terraform_1_0, "init", "-input=false", "-no-color"], cwd=workdir, check=True,
                   capture_output=True)
    return workdir


def apply_phase(terraform, workdir, phase) -> subprocess.CompletedProcess:
    (workdir / committed.PHASE_FILE).write_text(json.dumps(phase))
    return subprocess.run([terraform, "apply", "-auto-approve", "-input=false", "-no-color",
                           "-var", "candidate_version=8"], cwd=workdir, capture_output=True,
                          text=True)


@pytest.mark.parametrize("phase, routing", [
    ({"canary_weight": 0, "stable_version": ""}, ("8", {})),
    ({"canary_weight": 0.1, "stable_version": "7"}, ("7", {"8": 0.1})),
    ({"canary_weight": 1, "stable_version": "7"}, ("8", {})),
    ({"canary_weight": 0, "stable_version": "7"}, ("7", {})),
])
def test_committed_phase_file_drives_the_routing_in_a_real_terraform(terraform_1_0, committed_root,
                                                                      phase, routing):
    result = apply_phase(terraform_1_0, committed_root, phase)
    assert result.returncode == 0, result.stderr
    outputs = json.loads(subprocess.run([terraform_1_0, "output", "-json"], cwd=committed_root,
                                        check=True, capture_output=True, text=True).stdout)
    assert (outputs["primary_version"]["value"],
            outputs["additional_version_weights"]["value"]) == routing


@pytest.mark.parametrize("phase, message", [
    ({"canary_weight": 1.5, "stable_version": "7"}, "canary_weight must be a number from 0 to 1"),
    ({"canary_weight": 0.1, "stable_version": "v7"}, "stable_version must be empty"),
])
def test_committed_variables_reject_a_bad_phase_file(terraform_1_0, committed_root, phase, message):
    result = apply_phase(terraform_1_0, committed_root, phase)
    assert result.returncode != 0
    assert message in " ".join(result.stderr.split())


def test_check_names_the_stale_environment_and_the_fix(synth, tmp_path):
    config = load_config()
    root = tmp_path / "terraform"
    for name in config.stack_names:
        committed.write(synth.stack_dir(name), root / name)
    committed.check(config, synth.outdir, root)  # fresh: no error

    stale = json.loads((root / "prod" / "cdk.tf.json").read_text())
    stale["variable"]["canary_weight"]["default"] = 0.5
    (root / "prod" / "cdk.tf.json").write_text(json.dumps(stale))
    (root / "staging" / "assets" / "stray.txt").write_text("left behind")
    with pytest.raises(committed.CommittedError) as error:
        committed.check(config, synth.outdir, root)
    message = str(error.value)
    assert "terraform/prod (changed cdk.tf.json)" in message
    assert "terraform/staging (left over assets/stray.txt)" in message
    assert "dev" not in message and "run `invoke synth` and commit terraform/" in message


def test_refresh_keeps_the_phase_and_removes_stale_assets(synth, tmp_path):
    target = tmp_path / "dev"
    committed.write(synth.stack_dir("dev"), target)
    committed.write_phase(target, {"canary_weight": 0.25, "stable_version": "3"})
    (target / "assets" / "old.zip").write_text("stale")

    assert committed.write(synth.stack_dir("dev"), target) is True
    assert committed.read_phase(target) == {"canary_weight": 0.25, "stable_version": "3"}
    assert not (target / "assets" / "old.zip").exists()
    assert committed.write(synth.stack_dir("dev"), target) is False


def test_cdktf_cli_synth_gives_the_committed_terraform(tmp_path):
    """`cdktf synth` (the CLI, which runs main.py through cdktf.json with its own context) yields
    exactly what `invoke synth` committed: `cdktf deploy` applies the same stacks."""
    env = {**os.environ, "CHECKPOINT_DISABLE": "1",  # no version check over the network
           "PATH": f"{PROJECT_ROOT / 'node_modules' / '.bin'}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["cdktf", "synth", "--output", str(tmp_path / "out")], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for environment in (*PROJECT_ENVIRONMENTS, "account-eu-west-1"):
        assert committed.differences(tmp_path / "out" / "stacks" / environment,
                                     committed.committed_root() / environment) == []
