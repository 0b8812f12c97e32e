"""Every task, given each kind of broken input, ends with exactly one line on stderr and a non-zero
exit, and changes nothing: no apply, the live alias, the history, the locks and the committed
tree as they were. Anything that is not a ReleaseError would escape `run_task` and fail the test
with its traceback.

The tasks run in this process (`World.run_task`) in one release world shared by the module:
every case asserts that it left the world as it found it.
"""

import contextlib

import pytest

from fakes.terraform_double import STATE_FILE
from release.lock import ReleaseLock

ENVIRONMENT_TASKS = [("synth",), ("bootstrap",), ("deploy",), ("canary", "--weight=0.1"),
                     ("promote",), ("rollback",), ("rollout",), ("drill",), ("status",),
                     ("destroy", "--yes"), ("report",), ("release-quarantine", "--version=6")]
APPLYING_TASKS = [("deploy",), ("canary", "--weight=0.1"), ("promote",), ("rollback",),
                  ("rollout",)]
READING_TASKS = [("canary", "--weight=0.1"), ("promote",), ("rollback",), ("rollback", "--fast"),
                 ("rollout",), ("drill", "--env=dev"), ("status",)]
MISSING_OUTPUT = "the dev stack has no `alarm_names` output"
NOT_A_URL = "url 'ftp://example.com/demo' is not an http(s) URL"

CASES = {
    **{f"{task[0]} of an unknown environment": (
        (*task, "--env=qa"), "unknown environment 'qa': known are dev, prod", "nothing")
       for task in ENVIRONMENT_TASKS},
    **{f"canary at --weight={weight}": (
        ("canary", f"--weight={weight}"),
        f"--weight = '{weight}': must be a number from 0 to 1", "nothing")
       for weight in ("1.5", "-0.1", "nan", "inf", "abc")},
    "canary without a weight": (("canary",), "canary needs the share of traffic", "nothing"),
    **{f"release-quarantine --version={version!r}": (
        ("release-quarantine", f"--version={version}"),
        f"--version {version!r} is not a published version: pass its number", "nothing")
       for version in ("", "abc", "$LATEST")},
    "rollout steps descending": (("rollout", "--steps=0.5,0.2,1"),
                                 "steps must be strictly ascending", "nothing"),
    "rollout steps of text": (("rollout", "--steps=0.1,abc,1"),
                              "--steps[1] = 'abc': must be a number in (0, 1]", "nothing"),
    "rollout steps not ending at 1": (("rollout", "--steps=0.1,0.5"),
                                      "the last step must be 1", "nothing"),
    **{f"rollout --bake={bake}": (
        ("rollout", f"--bake={bake}"),
        f"--bake = '{bake}': must be a whole number from 0 to 86400", "nothing")
       for bake in ("abc", "-5", "86401", "1.5")},
    **{f"{task[0]} --requests={requests}": (
        (*task, f"--requests={requests}"), f"--requests = '{requests}': must be a whole number",
        "nothing")
       for task in APPLYING_TASKS for requests in ("-1", "many")},
    **{f"{task[0]} --url that is no http(s) URL": (
        (*task, "--url=ftp://example.com/demo"), NOT_A_URL, "nothing")
       for task in APPLYING_TASKS},
    **{f"{task[0]} --lock-timeout that is no duration": (
        (*task, "--lock-timeout=soon"), "lock timeout 'soon' is not a duration", "nothing")
       for task in [*APPLYING_TASKS, ("bootstrap",), ("status",), ("destroy", "--yes"),
                    ("drill", "--env=dev"), ("release-quarantine", "--version=6")]},
    **{f"{' '.join(task)} with a stack output missing": (task, MISSING_OUTPUT, "missing output")
       for task in READING_TASKS},
    **{f"{task[0]} while another release holds the environment": (
        task, "environment dev is locked by", "locked")
       for task in [("canary", "--weight=0.1"), ("rollback",), ("rollout",),
                    ("drill", "--env=dev"), ("destroy", "--yes")]},
    "canary --commit without a committed tree": (
        ("canary", "--weight=0.1", "--commit"), "terraform/dev is stale (missing cdk.tf.json)",
        "nothing"),
    **{f"{task[0]} --skip-gate where there is no gate": (
        (*task, "--skip-gate=hotfix"), "dev has no promotion gate (no promotion table in "
        "environments.toml): drop --approved-by and --skip-gate", "nothing")
       for task in [("canary", "--weight=0.1"), ("promote",), ("rollout",)]},
    "canary --approved-by where there is no gate": (
        ("canary", "--weight=0.1", "--approved-by=Ada"), "dev has no promotion gate", "nothing"),
    "drill of a production environment": (("drill", "--env=prod"),
                                          "prod is marked production = true", "nothing"),
    "drill --fault-rate=1.5": (("drill", "--env=dev", "--fault-rate=1.5"),
                               "--fault-rate = '1.5': must be a number from 0 to 1", "nothing"),
    "drill --fault-rate=0": (("drill", "--env=dev", "--fault-rate=0"),
                             "--fault-rate = 0.0: must be a number in (0, 1]", "nothing"),
    "drill --weight=1": (("drill", "--env=dev", "--weight=1"),
                         "--weight = 1.0: must be a number in (0, 1)", "nothing"),
    "drill --timeout=0": (("drill", "--env=dev", "--timeout=0"),
                          "--timeout = '0': must be a whole number >= 1", "nothing"),
    "smoke without a URL": (("smoke",), "smoke needs the endpoint: pass --url", "nothing"),
    "smoke of no http(s) URL": (("smoke", "--url=ftp://example.com/demo"), NOT_A_URL, "nothing"),
    "smoke --expect-weight=2": (("smoke", "--url=http://127.0.0.1:9/demo", "--expect-weight=2"),
                                "--expect-weight = '2': must be a number from 0 to 1", "nothing"),
    "smoke --concurrency=0": (("smoke", "--url=http://127.0.0.1:9/demo", "--concurrency=0"),
                              "--concurrency = '0': must be a whole number >= 1", "nothing"),
    "destroy without --yes and no one to ask": (("destroy",), "destroy needs confirmation",
                                                "nothing"),
    "report --since=yesterday": (("report", "--since=yesterday"),
                                 "--since 'yesterday' is not a duration", "nothing"),
    "report --last=-2": (("report", "--last=-2"), "--last = '-2': must be a whole number >= 0",
                         "nothing"),
    "report --metrics=sometimes": (("report", "--metrics=sometimes"), "--metrics 'sometimes'",
                                   "nothing"),
    "report of a history file that is not there": (
        ("report", "--from-history=/nonexistent/history.jsonl"),
        "no release phases of dev in /nonexistent/history.jsonl", "nothing"),
    "report into a folder that cannot be made": (
        ("report", "--out={a_file}/report.html", "--metrics=off"), "cannot write", "nothing"),
    "history --last=abc": (("history", "--last=abc"), "--last = 'abc': must be a whole number",
                           "nothing"),
    "history of an unknown environment": (("history", "--env=qa"), "unknown environment 'qa'",
                                          "nothing"),
}


@contextlib.contextmanager
def missing_output(world):
    """The dev stack's outputs lack alarm_names (until the next apply)."""
    state = world.outdir / "stacks" / "dev" / STATE_FILE
    applied = state.read_text()
    world.double.drop_outputs(state.parent, "alarm_names")
    try:
        yield
    finally:
        state.write_text(applied)


SETUPS = {
    "nothing": lambda world: contextlib.nullcontext(),
    "missing output": missing_output,
    "locked": lambda world: ReleaseLock("dev", "invoke rollout"),
}


def footprint(world):
    """What a task could change: Terraform's state, applies, the live alias, the history, locks,
    a committed tree."""
    state_dir = world.config_path.parent / "state"
    return (world.double.state(world.outdir / "stacks" / "dev"), world.applies(), world.live(),
            world.history.read(), sorted(path.name for path in state_dir.rglob("*.lock")),
            sorted(world.config_path.parent.glob("terraform/**/*")))


@pytest.mark.parametrize("args, message, setup", CASES.values(), ids=CASES.keys())
def test_broken_input_is_one_line_and_changes_nothing(module_world, tmp_path, monkeypatch, args,
                                                      message, setup):
    world = module_world
    # Where a --commit would write: never the project's own terraform/.
    monkeypatch.setenv("SAFE_RELEASE_TERRAFORM_DIR", str(world.config_path.parent / "terraform"))
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    args = tuple(arg.format(a_file=a_file) for arg in args)
    with SETUPS[setup](world):
        before = footprint(world)
        run = world.run_task(*args)
        after = footprint(world)
    assert run.exit_code != 0
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith(("error: ", "destroy: ")) and message in run.stderr, run.stderr
    assert run.stdout == ""
    assert after == before


# prod released after dev, as environments.toml declares a promotion gate (the world's stacks are
# not re-synthesized: these refusals come before anything reads them).
GATED = """
[environments.prod]
region = "eu-west-1"
function_name = "deploy-patterns-demo-prod"
production = true
promotion = { after = "dev", soak_minutes = 30, approval = "required" }
"""
GATE_CASES = {
    **{f"{task[0]} of a gated environment without an approver": (
        (*task, "--env=prod"), 'prod requires a named approval (promotion.approval = "required"): '
        "pass --approved-by NAME")
       for task in [("canary", "--weight=0.1"), ("promote",), ("rollout",)]},
    "canary --skip-gate with a blank reason": (
        ("canary", "--weight=0.1", "--env=prod", "--approved-by=Ada", "--skip-gate= "),
        '--skip-gate needs a reason, e.g. --skip-gate "hotfix INC-42"'),
    "promote --approved-by a blank name": (
        ("promote", "--env=prod", "--approved-by= "), "--approved-by needs the approver's name"),
    "canary --commit --skip-gate with a blank reason": (
        ("canary", "--weight=0.1", "--env=prod", "--commit", "--skip-gate= "),
        '--skip-gate needs a reason, e.g. --skip-gate "hotfix INC-42"'),
    "canary --commit --approved-by": (
        ("canary", "--weight=0.1", "--env=prod", "--commit", "--approved-by=Ada"),
        "--commit leaves the apply to the Terraform Cloud workspace, whose manual apply is the "
        "approval: drop --approved-by (docs/terraform-cloud.md)"),
}


@pytest.mark.parametrize("args, message", GATE_CASES.values(), ids=GATE_CASES.keys())
def test_broken_gate_input_is_one_line_and_changes_nothing(module_world, monkeypatch, args,
                                                           message):
    world = module_world
    text = world.config_path.read_text()
    gated = world.config_path.parent / "gated.toml"
    gated.write_text(text[:text.index("[environments.prod]")] + GATED)
    monkeypatch.setenv("SAFE_RELEASE_CONFIG", str(gated))
    monkeypatch.setenv("SAFE_RELEASE_TERRAFORM_DIR", str(world.config_path.parent / "terraform"))
    before = footprint(world)
    run = world.run_task(*args)
    assert footprint(world) == before
    assert run.exit_code != 0
    assert len(run.stderr.splitlines()) == 1, run.stderr
    assert run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert run.stdout == ""
