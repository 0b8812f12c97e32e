"""Release tasks: `invoke --list` shows them, `invoke <task> --help` documents every flag.

A thin layer: arguments and messages here, the work in the `release` package. User errors end
with one line and a non-zero exit, before anything is applied.
"""

import time
from json import dumps

from invoke import Exit, task

from release import aws, synth as synthesis
from release.config import ConfigError, EnvironmentConfig, load_config, synth_output_dir
from release.console import ConsoleProgress
from release.history import ReleaseHistory
from release.lock import ReleaseLock, ReleaseLockedError
from release.phases import PhaseInputError, parse_steps, parse_weight
from release.runner import PhaseFailed, ReleaseRunner, RunnerOptions
from release.smoke import SmokeInputError, smoke_check
from release.terraform import Terraform, TerraformError

ENV_HELP = "Environment from environments.toml (default: dev)."
JSON_HELP = "Print a machine-readable JSON result on stdout instead of the summary line."
NO_SMOKE_HELP = "Skip the smoke check after the apply (alarms and the alias wait still run)."
REQUESTS_HELP = "Smoke requests (default 0: sized from the weight so 10 % vs 20 % is told apart)."
LOCK_TIMEOUT_HELP = "How long Terraform waits for the state lock, e.g. 60s or 5m."


def _environment(env: str) -> EnvironmentConfig:
    try:
        return load_config().environment(env)
    except ConfigError as error:
        raise Exit(f"error: {error}") from None


def _ensure_synth(environment: EnvironmentConfig) -> None:
    config = load_config()
    if synthesis.is_up_to_date(config):
        return
    with ConsoleProgress() as progress:
        progress.status("synthesizing the stacks (python main.py)")
        try:
            synthesis.synthesize(config)
        except synthesis.SynthError as error:
            raise Exit(f"error: {error}") from None


def _runner(environment: EnvironmentConfig, progress: ConsoleProgress, lock_timeout: str,
            smoke: bool = True, requests: int = 0) -> ReleaseRunner:
    """Preflight (Terraform binary and version, AWS credentials, synthesized stack), then the runner."""
    try:
        terraform = Terraform(environment.stack_dir, lock_timeout=lock_timeout,
                              on_line=progress.terraform_line)
        terraform.version()
        aws.preflight_credentials(environment.region)
    except (TerraformError, aws.AwsError) as error:
        raise Exit(f"error: {error}") from None
    if not (environment.stack_dir / "cdk.tf.json").is_file():
        raise Exit(f"error: no synthesized stack at {environment.stack_dir}: run `invoke synth`")
    options = RunnerOptions(smoke=smoke, smoke_requests=requests or None)
    return ReleaseRunner(environment, terraform, options=options, progress=progress)


def dumps_indented(value) -> str:
    return dumps(value, indent=2)


def _report(result, as_json: bool) -> None:
    if as_json:
        print(dumps_indented(result.to_dict()))
    else:
        print(result.summary_line())


def _phase(env: str, kind: str, *, weight: float | None = None, smoke: bool = True,
           requests: int = 0, as_json: bool = False, lock_timeout: str = "60s",
           before_apply=None) -> None:
    environment = _environment(env)
    _ensure_synth(environment)
    with ConsoleProgress() as progress:
        runner = _runner(environment, progress, lock_timeout, smoke, requests)
        try:
            with ReleaseLock(environment.name, f"invoke {kind}"):
                if before_apply:
                    before_apply(runner)
                report = runner.run(kind, weight)
        except ReleaseLockedError as error:
            raise Exit(f"error: {error}") from None
        except (PhaseInputError, TerraformError, aws.AwsError) as error:
            raise Exit(f"error: {error}") from None
        except PhaseFailed as failure:
            _report(failure.report, as_json)
            raise Exit(code=1) from None
    _report(report, as_json)


@task(help={"force": "Synthesize even when nothing that feeds the app changed."})
def synth(c, force=False):
    """Synthesize every environment's stack into cdktf.out (skipped when up to date)."""
    try:
        config = load_config()
    except ConfigError as error:
        raise Exit(f"error: {error}") from None
    if not force and synthesis.is_up_to_date(config):
        print(f"synth: up to date ({synth_output_dir()})")
        return
    started = time.monotonic()
    with ConsoleProgress() as progress:
        progress.status("synthesizing the stacks (python main.py)")
        try:
            synthesis.synthesize(config)
        except synthesis.SynthError as error:
            raise Exit(f"error: {error}") from None
    print(f"synth: {', '.join(config.environments)} in {time.monotonic() - started:.1f} s "
          f"({synth_output_dir()}/stacks)")


@task(help={"env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def deploy(c, env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s"):
    """Publish new code as the candidate at weight 0 (first deployment: it takes all traffic)."""
    _phase(env, "deploy", smoke=not no_smoke, requests=requests, as_json=json,
           lock_timeout=lock_timeout)


@task(help={"weight": "Share of requests for the new version, from 0 to 1 (e.g. 0.1).",
            "env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def canary(c, weight, env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s"):
    """Send a share of traffic to the new version, verify it, roll back by itself on failure."""
    try:
        share = parse_weight(weight)
    except PhaseInputError as error:
        raise Exit(f"error: {error}") from None
    _phase(env, "canary", weight=share, smoke=not no_smoke, requests=requests, as_json=json,
           lock_timeout=lock_timeout)


@task(help={"env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def promote(c, env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s"):
    """Blue-green switch: all traffic to the new version, which becomes the stable one."""
    _phase(env, "promote", smoke=not no_smoke, requests=requests, as_json=json,
           lock_timeout=lock_timeout)


@task(help={"env": ENV_HELP,
            "fast": "First point the alias back with one Lambda API call, then apply.",
            "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP, "json": JSON_HELP,
            "lock_timeout": LOCK_TIMEOUT_HELP})
def rollback(c, env="dev", fast=False, no_smoke=False, requests=0, json=False, lock_timeout="60s"):
    """All traffic back to the stable version (weight 0); running it twice is harmless."""
    def fast_path(runner):
        live, seconds = runner.fast_rollback()
        print(f"rollback {env}: traffic at {live.routing.describe()} after one UpdateAlias "
              f"({seconds * 1000:.0f} ms); applying to bring Terraform's state in line")
    _phase(env, "rollback", smoke=not no_smoke, requests=requests, as_json=json,
           lock_timeout=lock_timeout, before_apply=fast_path if fast else None)


@task(help={"env": ENV_HELP,
            "steps": "Comma-separated weights, ascending, ending at 1 (default: the environment's preset).",
            "bake": "Seconds to watch alarms and metrics after each step (default -1: the preset).",
            "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP, "json": JSON_HELP,
            "lock_timeout": LOCK_TIMEOUT_HELP})
def rollout(c, env="dev", steps="", bake=-1, no_smoke=False, requests=0, json=False,
            lock_timeout="60s"):
    """Step through the weights with a bake after each; any failure rolls back to 0."""
    environment = _environment(env)
    try:
        weights = parse_steps(steps) if steps else environment.rollout.steps
    except PhaseInputError as error:
        raise Exit(f"error: {error}") from None
    bake_seconds = environment.rollout.bake_seconds if int(bake) < 0 else int(bake)
    _ensure_synth(environment)
    reports = []
    with ConsoleProgress() as progress:
        runner = _runner(environment, progress, lock_timeout, not no_smoke, requests)
        try:
            with ReleaseLock(environment.name, "invoke rollout"):
                for report in runner.rollout(weights, bake_seconds):
                    reports.append(report)
                    if not json:
                        print(report.summary_line())
        except ReleaseLockedError as error:
            raise Exit(f"error: {error}") from None
        except (PhaseInputError, TerraformError, aws.AwsError) as error:
            raise Exit(f"error: {error}") from None
        except PhaseFailed as failure:
            reports.append(failure.report)
            if json:
                print(dumps_indented([r.to_dict() for r in reports]))
            else:
                print(failure.report.summary_line())
            raise Exit(code=1) from None
    if json:
        print(dumps_indented([r.to_dict() for r in reports]))


@task(help={"url": "Endpoint to test, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod/demo.",
            "expect_weight": "Expected share of the candidate version, from 0 to 1.",
            "candidate_version": "Candidate's Lambda version (default: the highest version seen).",
            "requests": REQUESTS_HELP, "concurrency": "Requests in flight at once.",
            "json": JSON_HELP})
def smoke(c, url, expect_weight=0.0, candidate_version="", requests=0, concurrency=16, json=False):
    """Statistical smoke check of any endpoint that answers like the demo function."""
    try:
        result = smoke_check(url, expected_weight=parse_weight(expect_weight, "--expect-weight"),
                             candidate_version=candidate_version or None,
                             requests=requests or None, concurrency=concurrency)
    except (SmokeInputError, PhaseInputError) as error:
        raise Exit(f"error: {error}") from None
    print(dumps_indented(result.to_dict()) if json else result.summary())
    if not result.passed:
        raise Exit(code=1)


@task(help={"env": ENV_HELP, "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def status(c, env="dev", json=False, lock_timeout="60s"):
    """Live alias routing, versions, alarms, endpoint, last phase; flags drift from Terraform."""
    environment = _environment(env)
    with ConsoleProgress() as progress:
        runner = _runner(environment, progress, lock_timeout)
        try:
            info = runner.status()
        except (TerraformError, aws.AwsError) as error:
            raise Exit(f"error: {error}") from None
    if json:
        print(dumps_indented(info))
        return
    if not info["deployed"]:
        print(f"{env}: not deployed yet (run `invoke deploy --env {env}`)")
        return
    last = info["last_phase"]
    print(f"{env}: {info['live_routing_text']} at {info['endpoint']}")
    print(f"  candidate v{info['candidate_version']}, stable v{info['stable_version'] or '-'}")
    if info["drift"]:
        print(f"  DRIFT: Terraform expects {info['terraform_routing']}, the live alias differs; "
              "rerun the last phase or `invoke rollback`")
    print("  alarms: " + ", ".join(f"{name} {state}" for name, state in info["alarms"].items()))
    if last:
        print(f"  last phase: {last['phase']} {last['outcome']} at {last['time']} by {last['caller']}")


@task(help={"env": ENV_HELP, "yes": "Do not ask for confirmation (for pipelines).",
            "lock_timeout": LOCK_TIMEOUT_HELP})
def destroy(c, env="dev", yes=False, lock_timeout="60s"):
    """Destroy the environment's stack (asks first unless --yes)."""
    environment = _environment(env)
    if not yes:
        answer = input(f"Destroy every resource of {env} ({environment.function_name})? "
                       f"Type the environment name to confirm: ")
        if answer.strip() != env:
            raise Exit("destroy: not confirmed, nothing changed")
    with ConsoleProgress() as progress:
        runner = _runner(environment, progress, lock_timeout, smoke=False)
        try:
            with ReleaseLock(environment.name, "invoke destroy"):
                plan = runner.terraform.plan({}, destroy=True)
                runner.terraform.apply(plan)
        except (ReleaseLockedError, TerraformError) as error:
            raise Exit(f"error: {error}") from None
    print(f"destroy {env}: {plan.summary}")
