"""The promotion gate with --commit (VCS mode): before a phase that gives the candidate traffic is
written to terraform/<env>/phase.auto.tfvars.json and committed, invoke checks the same evidence
as when it applies the phase itself (release/gate.py), against the newest version AWS has
published. A refusal is one line, a non-zero exit, and the phase file and git as they were.

The tasks run in this process (`World.run_task`) so that the gate's clock is injected: the
world's dev environment is released after `staging` (a moto function serving the same code).
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from fakes.release_world import (
    FUNCTION,
    UPSTREAM,
    code_zip,
    commit_terraform,
    serve_upstream_code,
)
from fakes.terraform_double import write_stack
from release import committed, gate
from release.aws import lambda_timestamp

GATED_DEV = 'promotion = { after = "staging", soak_minutes = 30, approval = "required" }\n'
STAGING = f"""
[environments.staging]
region = "eu-west-1"
function_name = "{UPSTREAM}"
"""
REASON = "hotfix INC-42"


SAME_CODE = code_zip("def lambda_handler(event, context):\n    return {'statusCode': 200}\n")


@pytest.fixture
def repo(world, tmp_path, monkeypatch):
    """dev gated after staging in environments.toml; terraform/dev committed as `invoke synth`
    leaves it; dev v1 serving, dev v3 (the candidate) the code staging serves as its v1."""
    text = world.config_path.read_text()
    marker = "[environments.prod]"
    head, tail = text.split(marker)
    world.config_path.write_text(head.replace(
        "rollout = ", GATED_DEV + "rollout = ") + STAGING + marker + tail)
    write_stack(world.outdir / "stacks" / "staging")  # as a complete synth leaves it
    root = commit_terraform(world.outdir / "stacks" / "dev", tmp_path / "repo" / "terraform",
                            monkeypatch)
    assert serve_upstream_code(world.aws, SAME_CODE) == "3"
    return root


def at(monkeypatch, moment: datetime) -> None:
    """The gate judges the evidence at `moment`."""
    monkeypatch.setattr(gate, "wall_clock", lambda: moment)


def staging_published(world) -> datetime:
    config = world.aws.lambda_client.get_function_configuration(FunctionName=UPSTREAM,
                                                                Qualifier="1")
    return lambda_timestamp(config["LastModified"])


def phase_file(root: Path) -> dict:
    return json.loads((root / "dev" / committed.PHASE_FILE).read_text())


def git_log(root: Path) -> str:
    return subprocess.run(["git", "log", "--format=%H %B"], cwd=root, check=True,
                          capture_output=True, text=True).stdout


def git_status(root: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=root, check=True,
                          capture_output=True, text=True).stdout


def assert_refused(world, root: Path, args: tuple[str, ...], message: str) -> None:
    """The task exits non-zero with `message` as its one line, nothing written or committed."""
    before = (phase_file(root), git_log(root), world.applies(), world.live())
    run = world.run_task(*args)
    assert run.exit_code != 0
    assert run.stdout == ""
    assert run.stderr.splitlines() == [f"error: {message}"], run.stderr
    assert (phase_file(root), git_log(root), world.applies(), world.live()) == before
    assert git_status(root) == ""


@pytest.mark.parametrize("args", [("canary", "--weight=0.1", "--commit"),
                                  ("promote", "--commit"),
                                  ("canary", "--weight=0.1", "--commit", "--stable-version=1")])
def test_a_commit_before_the_soak_is_refused_and_nothing_is_written(world, repo, monkeypatch,
                                                                     args):
    at(monkeypatch, staging_published(world) + timedelta(minutes=10))
    assert_refused(world, repo, args,
                   "promotion gate: staging serves v1 since 10 min; 30 needed")


def test_a_commit_of_code_staging_does_not_serve_is_refused(world, repo, monkeypatch):
    world.aws.lambda_client.update_function_code(FunctionName=UPSTREAM,
                                                 ZipFile=code_zip("# other code\n"))
    world.aws.lambda_client.publish_version(FunctionName=UPSTREAM)
    world.aws.set_routing(UPSTREAM, "2")
    at(monkeypatch, staging_published(world) + timedelta(hours=2))
    run_message = "promotion gate: staging serves code "
    before = (phase_file(repo), git_log(repo))
    run = world.run_task("canary", "--weight=0.1", "--commit")
    assert run.exit_code != 0 and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith(f"error: {run_message}")
    assert "(v2) but this release is code" in run.stderr and "(v3): release it in staging first" \
        in run.stderr
    assert (phase_file(repo), git_log(repo)) == before


def test_a_staging_canary_refuses_the_commit(world, repo, monkeypatch):
    world.aws.lambda_client.update_function_code(FunctionName=UPSTREAM,
                                                 ZipFile=code_zip("# next\n"))
    version = world.aws.lambda_client.publish_version(FunctionName=UPSTREAM)["Version"]
    world.aws.set_routing(UPSTREAM, "1", {version: 0.1})
    at(monkeypatch, staging_published(world) + timedelta(hours=2))
    assert_refused(world, repo, ("promote", "--commit"),
                   f"promotion gate: staging serves v1 90 % + v{version} 10 %, not one version "
                   "at 100 %: promote or roll back staging first")


def test_after_the_soak_the_commit_goes_ahead_and_says_what_the_gate_found(world, repo,
                                                                          monkeypatch):
    at(monkeypatch, staging_published(world) + timedelta(minutes=31))
    run = world.run_task("canary", "--weight=0.1", "--commit")
    assert run.exit_code == 0, run.stderr
    assert phase_file(repo) == {"canary_weight": 0.1, "stable_version": "1"}
    found = "promotion gate: staging served v1 (code "
    assert found in run.stdout and "at 100 % for 31 min without an alarm" in run.stdout
    message = subprocess.run(["git", "log", "-1", "--format=%B"], cwd=repo, check=True,
                             capture_output=True, text=True).stdout
    assert message.splitlines()[0] == "release(dev): canary 10 % on the new version, stable v1"
    assert found in message
    assert world.live().primary_version == "1" and not world.live().additional_version_weights


def test_skip_gate_commits_the_override_and_the_next_phase_drops_it(world, repo, monkeypatch):
    at(monkeypatch, staging_published(world))  # staging has not soaked at all
    run = world.run_task("canary", "--weight=0.1", "--commit", f"--skip-gate={REASON}")
    assert run.exit_code == 0, run.stderr
    assert phase_file(repo) == {"canary_weight": 0.1, "stable_version": "1",
                                "promotion_gate_override": REASON}
    assert f"promotion gate skipped (not checked): {REASON}" in run.stdout
    assert f"promotion gate skipped (not checked): {REASON}" in git_log(repo)

    rollback = world.run_task("rollback", "--commit")
    assert rollback.exit_code == 0, rollback.stderr
    assert phase_file(repo) == {"canary_weight": 0.0, "stable_version": "1"}


@pytest.mark.parametrize("args", [("canary", "--weight=0.1", "--commit", "--stable-version=1"),
                                  ("promote", "--commit")])
def test_without_aws_credentials_the_gate_names_the_fix(world, repo, monkeypatch, args):
    at(monkeypatch, staging_published(world) + timedelta(hours=2))
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    before = (phase_file(repo), git_log(repo))
    run = world.run_task(*args)
    assert run.exit_code != 0 and run.stdout == ""
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("error: promotion gate: cannot read dev in AWS (no AWS "
                                 "credentials found")
    assert run.stderr.rstrip().endswith("it needs AWS credentials that can read dev and "
                                        "staging, or --skip-gate REASON")
    assert (phase_file(repo), git_log(repo)) == before


def test_phases_that_give_no_traffic_commit_without_evidence(world, repo, monkeypatch):
    """A canary at 0, a deploy and a rollback pass whatever staging shows (here: it is gone)."""
    world.aws.lambda_client.delete_function(FunctionName=UPSTREAM)
    for args in (("canary", "--weight=0", "--commit"), ("deploy", "--commit"),
                 ("rollback", "--commit")):
        run = world.run_task(*args)
        assert run.exit_code == 0, (args, run.stderr)
        assert "promotion gate" not in run.stdout
    assert phase_file(repo) == {"canary_weight": 0.0, "stable_version": "1"}


def test_an_after_environment_that_is_not_deployed_refuses_the_commit(world, repo):
    world.aws.lambda_client.delete_function(FunctionName=UPSTREAM)
    before = (phase_file(repo), git_log(repo))
    run = world.run_task("promote", "--commit")
    assert run.exit_code != 0 and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith(f"error: promotion gate: no evidence from staging: Lambda alias "
                                 f"{UPSTREAM}:production not found")
    assert (phase_file(repo), git_log(repo)) == before


def test_approved_by_with_commit_stays_rejected(world, repo):
    assert_refused(world, repo, ("promote", "--commit", "--approved-by=Ada"),
                   "--commit leaves the apply to the Terraform Cloud workspace, whose manual "
                   "apply is the approval: drop --approved-by (docs/terraform-cloud.md)")


def commit_function_archive(world, root: Path, code: bytes, shared_settings: str = "") -> None:
    """terraform/dev as a synth with this function archive (and shared settings fingerprint)
    leaves it, committed."""
    stack_dir = world.outdir / "stacks" / "dev"
    stack = json.loads((stack_dir / "cdk.tf.json").read_text())
    stack["resource"] = {"aws_lambda_function": {"function": {
        "function_name": FUNCTION, "filename": "assets/function_code/demo.zip", "publish": True,
        "source_code_hash": '${filebase64sha256("assets/function_code/demo.zip")}',
        **({"environment": {"variables": {"SHARED_SETTINGS_SHA256": shared_settings}}}
           if shared_settings else {})}}}
    (stack_dir / "cdk.tf.json").write_text(json.dumps(stack, indent=2))
    (stack_dir / "assets" / "function_code").mkdir(parents=True, exist_ok=True)
    (stack_dir / "assets" / "function_code" / "demo.zip").write_bytes(code)
    committed.write(stack_dir, root / "dev")
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run([*git, "add", "."], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "synth: new code"], cwd=root, check=True)


def test_committed_code_not_yet_published_is_refused(world, repo, monkeypatch):
    """terraform/dev holds code the workspace has not applied: the newest published version is
    not what the phase would give traffic to, so its evidence says nothing about it."""
    commit_function_archive(world, repo, code_zip("# merged, not applied yet\n"))
    at(monkeypatch, staging_published(world) + timedelta(hours=2))
    before = (phase_file(repo), git_log(repo))
    run = world.run_task("canary", "--weight=0.1", "--commit")
    assert run.exit_code != 0 and run.stdout == "" and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("error: promotion gate: terraform/dev holds code ")
    assert ("that dev has not published yet (its newest version, v3, is code "
            in run.stderr)
    assert run.stderr.rstrip().endswith(
        "let the workspace apply it at weight 0 first (`invoke deploy --env dev --commit`), then "
        "commit this phase")
    assert (phase_file(repo), git_log(repo)) == before


def test_committed_shared_settings_not_yet_published_are_refused(world, repo, monkeypatch):
    """The same code with a [defaults.settings] change the workspace has not applied yet."""
    commit_function_archive(world, repo, SAME_CODE, shared_settings="9e2a" * 16)
    at(monkeypatch, staging_published(world) + timedelta(hours=2))
    before = (phase_file(repo), git_log(repo))
    run = world.run_task("canary", "--weight=0.1", "--commit")
    assert run.exit_code != 0 and run.stdout == "" and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith(
        "error: promotion gate: terraform/dev holds shared_settings 9e2a9e2a9e2a that dev has not "
        "published yet (its newest version, v3, is shared_settings (none)): let the workspace "
        "apply it at weight 0 first")
    assert (phase_file(repo), git_log(repo)) == before


def test_committed_code_the_workspace_published_goes_ahead(world, repo, monkeypatch):
    commit_function_archive(world, repo, SAME_CODE)
    at(monkeypatch, staging_published(world) + timedelta(minutes=45))
    run = world.run_task("promote", "--commit")
    assert run.exit_code == 0, run.stderr
    assert phase_file(repo) == {"canary_weight": 1.0, "stable_version": "1"}
    assert "promotion gate: staging served v1" in run.stdout
