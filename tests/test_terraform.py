"""The Terraform runner against the terraform double (and once against the real CLI, offline)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fakes.terraform_double import TerraformDouble, write_stack
from release.terraform import (
    ChangeSummary,
    Terraform,
    TerraformError,
    TerraformLockError,
    find_binary,
    init_fingerprint,
    render_variable,
)


@pytest.fixture
def double(tmp_path: Path) -> TerraformDouble:
    return TerraformDouble(tmp_path, candidate_version="4")


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    return write_stack(tmp_path / "cdktf.out" / "stacks" / "dev")


def runner(double: TerraformDouble, stack: Path, **options) -> Terraform:
    return Terraform(stack, binary=str(double.binary), **options)


def call_args(double: TerraformDouble, command: str) -> list[list[str]]:
    return [call["argv"] for call in double.calls() if call["argv"][0] == command]


def test_init_runs_once_until_the_backend_changes(double, stack):
    terraform = runner(double, stack)
    terraform.plan({"canary_weight": 0})
    terraform.plan({"canary_weight": 0})
    terraform.outputs()
    assert double.commands() == ["init", "plan", "plan", "output"]

    write_stack(stack, backend={"s3": {"bucket": "team-state", "key": "dev.tfstate",
                                       "use_lockfile": True}})
    terraform.plan({"canary_weight": 0})
    assert double.commands()[-2:] == ["init", "plan"]
    assert call_args(double, "init")[-1] == ["init", "-input=false", "-no-color"]


def test_init_runs_again_when_dot_terraform_is_gone(double, stack):
    terraform = runner(double, stack)
    assert terraform.init() is True
    assert terraform.init() is False
    shutil.rmtree(stack / ".terraform")
    assert terraform.init() is True
    assert double.commands() == ["init", "init"]


def test_failed_init_is_retried_next_time(double, stack):
    double.configure(failures={"init": "error"})
    terraform = runner(double, stack)
    with pytest.raises(TerraformError) as failure:
        terraform.init()
    assert failure.value.step == "init"
    assert "Error: Failed to query available provider packages" in str(failure.value)
    double.configure(failures={})
    assert terraform.init() is True


def test_fingerprint_ignores_resources_but_not_module_sources():
    stack = {"terraform": {"backend": {"local": {}}}, "resource": {"a": 1},
             "module": {"m": {"source": "./x"}}}
    same = {**stack, "resource": {"a": 2}}
    moved = {**stack, "module": {"m": {"source": "./y"}}}
    assert init_fingerprint(stack) == init_fingerprint(same)
    assert init_fingerprint(stack) != init_fingerprint(moved)


def test_missing_stack_file_says_to_synthesize(double, tmp_path):
    terraform = runner(double, tmp_path / "cdktf.out" / "stacks" / "prod")
    with pytest.raises(TerraformError,
                       match=r"no synthesized stack at .*cdk\.tf\.json: run `cdktf synth`"):
        terraform.plan({})
    assert double.calls() == []


def test_plan_arguments(double, stack):
    plan = runner(double, stack, lock_timeout="5m").plan({"canary_weight": 0.1,
                                                           "stable_version": "3"})
    (argv,) = call_args(double, "plan")
    assert argv[:6] == ["plan", "-input=false", "-lock-timeout=5m", "-detailed-exitcode",
                        "-no-color", f"-out={plan.path}"]
    assert argv[6:] == ["-var", "canary_weight=0.1", "-var", "stable_version=3"]
    assert plan.path == (stack / "release.tfplan").resolve()
    assert plan.path.is_file()


@pytest.mark.parametrize(("value", "rendered"), [
    (0.1, "0.1"), (1e-05, "0.00001"), (0.25, "0.25"), (1.0, "1.0"), (0, "0"), (1, "1"),
    ("7", "7"), ("", ""),
])
def test_variables_render_without_exponent(value, rendered):
    assert render_variable(value) == rendered


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_variables_are_refused(value):
    with pytest.raises(ValueError, match="not a finite number"):
        render_variable(value)


def test_lock_timeout_must_be_a_duration(double, stack):
    with pytest.raises(TerraformError,
                       match="lock timeout '60' is not a duration: use a value such as 60s"):
        runner(double, stack, lock_timeout="60")


def test_plan_reports_changes_then_no_changes(double, stack):
    terraform = runner(double, stack)
    first = terraform.plan({"canary_weight": 0, "stable_version": ""})
    assert first.has_changes
    assert first.summary == ChangeSummary(add=14, change=0, destroy=0)
    terraform.apply(first)

    again = terraform.plan({"canary_weight": 0, "stable_version": ""})
    assert not again.has_changes
    assert again.summary == ChangeSummary()
    assert str(again.summary) == "no resource changes"

    shift = terraform.plan({"canary_weight": 0.5, "stable_version": "3"})
    assert shift.has_changes
    assert str(shift.summary) == "0 to add, 1 to change, 0 to destroy"


def test_apply_applies_the_plan_file_and_outputs_follow_the_routing(double, stack):
    double.configure(candidate_version="3")
    terraform = runner(double, stack)
    terraform.apply(terraform.plan({"canary_weight": 0, "stable_version": ""}))
    double.configure(candidate_version="4")
    plan = terraform.plan({"canary_weight": 0.1, "stable_version": "3"})
    terraform.apply(plan)

    assert call_args(double, "apply")[-1] == ["apply", "-input=false", "-lock-timeout=60s",
                                             "-no-color", str(plan.path)]
    outputs = terraform.outputs()
    assert outputs["candidate_version"] == "4"
    assert outputs["primary_version"] == "3"
    assert outputs["additional_version_weights"] == {"4": 0.1}
    assert outputs["canary_weight"] == 0.1
    assert outputs["function_name"] == "deploy-patterns-demo-dev"
    assert outputs["alarm_names"][0] == "deploy-patterns-demo-dev-errors"


def test_outputs_are_empty_before_the_first_apply(double, stack):
    assert runner(double, stack).outputs() == {}


def test_destroy_plan_removes_the_state(double, stack):
    terraform = runner(double, stack)
    terraform.apply(terraform.plan({"canary_weight": 0}))
    plan = terraform.plan({}, destroy=True)
    assert "-destroy" in call_args(double, "plan")[-1]
    assert plan.summary == ChangeSummary(destroy=14)
    terraform.apply(plan)
    assert double.state(stack) is None


def test_subprocess_environment_marks_automation(double, stack):
    runner(double, stack).plan({})
    assert {tuple(sorted(call["env"].items())) for call in double.calls()} == {
        (("TF_INPUT", "0"), ("TF_IN_AUTOMATION", "1"))}


def test_apply_failure_carries_the_stderr_tail(double, stack):
    terraform = runner(double, stack)
    plan = terraform.plan({"canary_weight": 0.1, "stable_version": "3"})
    double.configure(failures={"apply": "error"})
    with pytest.raises(TerraformError) as failure:
        terraform.apply(plan)
    error = failure.value
    assert not isinstance(error, TerraformLockError)
    assert (error.step, error.exit_code) == ("apply", 1)
    assert "\n" not in str(error)
    assert str(error).startswith(f"terraform apply failed (exit 1) in {stack}: "
                                 "Error: updating Lambda Alias")
    assert any("ResourceConflictException" in line for line in error.stderr_tail)
    assert double.state(stack) is None


def test_apply_variables_plans_and_applies_in_one_run(double, stack):
    double.configure(candidate_version="3")
    terraform = runner(double, stack)
    first = terraform.apply_variables({"canary_weight": 0, "stable_version": ""})
    double.configure(candidate_version="4")
    canary = terraform.apply_variables({"canary_weight": 0.1, "stable_version": "3"})

    assert call_args(double, "apply")[-1] == [
        "apply", "-auto-approve", "-input=false", "-lock-timeout=60s", "-no-color",
        "-var", "canary_weight=0.1", "-var", "stable_version=3"]
    assert "plan" not in double.commands()
    assert (first, canary) == (ChangeSummary(add=14), ChangeSummary(change=2))
    assert terraform.outputs()["additional_version_weights"] == {"4": 0.1}


def test_apply_variables_that_fail_the_plan_apply_nothing(double, stack):
    double.configure(candidate_version="3")
    terraform = runner(double, stack)
    terraform.apply_variables({"canary_weight": 0, "stable_version": ""})
    state = double.state(stack)
    with pytest.raises(TerraformError, match="Error: Invalid value for variable"):
        terraform.apply_variables({"canary_weight": 1.5, "stable_version": "3"})
    assert double.state(stack) == state


def test_plan_failure_names_the_error_and_the_fix(double, stack):
    double.configure(failures={"plan": "error"})
    with pytest.raises(TerraformError) as failure:
        runner(double, stack).plan({"canary_weight": 0})
    # The headline, Terraform's own explanation (not the configuration it points at), the fix.
    assert str(failure.value).endswith(
        "Error: No valid credential sources found: Please see "
        "https://registry.terraform.io/providers/hashicorp/aws for more information about "
        "providing credentials.; configure AWS credentials (AWS_PROFILE, or "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")


def test_plan_failure_on_an_invalid_variable(double, stack):
    with pytest.raises(TerraformError,
                       match="terraform plan failed .*Error: Invalid value for variable"
                       ) as failure:
        runner(double, stack).plan({"canary_weight": 1.5})
    assert failure.value.step == "plan"


@pytest.mark.parametrize("step", ["plan", "apply"])
def test_state_lock_held_gives_a_lock_error_with_the_fix(double, stack, step):
    terraform = runner(double, stack, lock_timeout="1s")
    plan = terraform.plan({"canary_weight": 0}) if step == "apply" else None
    double.configure(failures={step: "lock"})
    with pytest.raises(TerraformLockError) as failure:
        terraform.apply(plan) if plan else terraform.plan({"canary_weight": 0})
    assert failure.value.step == step
    message = str(failure.value)
    assert "Error: Error acquiring the state lock: " in message and "Lock Info:" in message
    assert message.endswith("; another Terraform run holds the state lock; wait, or raise the lock "
                            "timeout with --lock-timeout")
    assert any("Lock Info:" in line for line in failure.value.stderr_tail)


def test_missing_binary_names_it_and_the_fix(monkeypatch, stack):
    monkeypatch.setenv("TERRAFORM_BINARY", "no-such-terraform")
    expected = ("terraform binary 'no-such-terraform' not found on PATH: install Terraform >= 1.5 "
                "or set TERRAFORM_BINARY")
    with pytest.raises(TerraformError) as failure:
        Terraform(stack)
    assert str(failure.value) == expected
    with pytest.raises(TerraformError):
        find_binary()


def test_binary_comes_from_terraform_binary_or_path(monkeypatch, double, stack):
    monkeypatch.setenv("PATH", double.env["PATH"])
    monkeypatch.delenv("TERRAFORM_BINARY", raising=False)
    assert find_binary() == str(double.binary)
    monkeypatch.setenv("TERRAFORM_BINARY", "tofu")
    (double.bin_dir / "tofu").symlink_to(double.binary)
    assert Terraform(stack).binary == str(double.bin_dir / "tofu")


def test_version_from_json_and_from_plain_text(double, stack):
    terraform = runner(double, stack)
    assert terraform.version() == "1.9.8"
    double.configure(version="1.6.2", version_json=False)
    assert terraform.version() == "1.6.2"


def test_progress_lines_stream_while_terraform_runs(double, stack, tmp_path):
    # The double's apply pauses until the resume file exists; only a callback that sees lines
    # while apply is still running can create it in time.
    resume = tmp_path / "resume"
    terraform = runner(double, stack)
    plan = terraform.plan({"canary_weight": 0})
    double.configure(slow={"apply": 10}, resume_file=str(resume))
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if "still working" in line:
            resume.touch()

    terraform.on_line = on_line
    terraform.apply(plan)
    assert "apply: resumed early" in "\n".join(seen)
    assert any(line.startswith("Apply complete!") for line in seen)


def test_interrupt_waits_for_terraform_to_finish(double, stack, tmp_path):
    # Ctrl-C reaches Terraform too; we must not abandon it mid-apply (it would lose the state
    # write).
    resume = tmp_path / "resume"
    terraform = runner(double, stack)
    plan = terraform.plan({"canary_weight": 0})
    double.configure(slow={"apply": 10}, resume_file=str(resume))

    def on_line(line: str) -> None:
        if "still working" in line:
            resume.touch()
            raise KeyboardInterrupt

    terraform.on_line = on_line
    with pytest.raises(KeyboardInterrupt):
        terraform.apply(plan)
    assert double.state(stack) is not None


REAL_STACK = {
    "terraform": {"backend": {"local": {"path": "terraform.tfstate"}}},
    "variable": {"canary_weight": {"type": "number", "default": 0},
                 "stable_version": {"type": "string", "default": ""}},
    "output": {"canary_weight": {"value": "${var.canary_weight}"},
               "stable_version": {"value": "${var.stable_version}"}},
}


def test_flags_work_with_the_real_terraform_cli(tmp_path):
    """Offline: a stack with no providers, so init needs no network."""
    try:
        terraform_binary = find_binary("terraform")
    except TerraformError:
        pytest.skip("no real terraform on PATH")
    stack = tmp_path / "stack"
    stack.mkdir()
    (stack / "cdk.tf.json").write_text(json.dumps(REAL_STACK))
    lines: list[str] = []
    terraform = Terraform(stack, binary=terraform_binary, on_line=lines.append)
    assert terraform.version()
    plan = terraform.plan({"canary_weight": 0.00001, "stable_version": "3"})
    assert plan.has_changes
    terraform.apply(plan)
    assert terraform.outputs() == {"canary_weight": 0.00001, "stable_version": "3"}
    assert not terraform.plan({"canary_weight": 0.00001, "stable_version": "3"}).has_changes
    assert any("Apply complete!" in line for line in lines)
