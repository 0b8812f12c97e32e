"""Release tasks: `invoke --list` shows them, `invoke <task> --help` documents every flag.

A thin layer: arguments and messages here, the work in the `release` package. User errors end
with one line on stderr and a non-zero exit, before anything is applied. Each phase prints one
summary line on stdout (or, with --json, a JSON result); progress goes to stderr on a terminal.
"""

import sys
import tempfile
import time
from json import dumps
from pathlib import Path

from invoke import Exit, task

from release import aws, committed, quarantine, synth as synthesis
from release.config import (
    ALIAS_NAME, ConfigError, EnvironmentConfig, ProjectConfig, account_stack_name, load_config,
    synth_output_dir,
)
from release.console import ConsoleProgress
from release.drill import DrillError, DrillOptions, run_drill
from release.lock import ReleaseLock, ReleaseLockedError
from release.phases import PhaseInputError, parse_steps, parse_weight, plan_committed
from release.remote import RemoteTerraform
from release.runner import PhaseFailed, ReleaseRunner, RunnerOptions
from release.smoke import SmokeInputError, smoke_check
from release.terraform import Terraform, TerraformError
from release.tfc import TfcClient, TfcError

ENV_HELP = "Environment from environments.toml (default: dev)."
JSON_HELP = "Print a machine-readable JSON result on stdout instead of the summary line."
NO_SMOKE_HELP = "Skip the smoke check after the apply (the alias wait and alarm check still run)."
REQUESTS_HELP = "Smoke requests (default 0: sized from the weight so 10 % vs 20 % is told apart)."
LOCK_TIMEOUT_HELP = "How long Terraform waits for the state lock, e.g. 60s or 5m."
URL_HELP = ("Endpoint the smoke check calls instead of the stack's api_url output (a custom domain, "
            "a private API through a tunnel, a local stand-in).")
# What a failing release step may raise besides PhaseFailed; each is one line for the user.
USER_ERRORS = (ConfigError, PhaseInputError, ReleaseLockedError, TerraformError, aws.AwsError,
               synthesis.SynthError, committed.CommittedError, TfcError, DrillError,
               quarantine.QuarantineInputError)
REMOTE_HELP = ("Apply through the environment's Terraform Cloud workspace (backend type cloud): set "
               "its variables, run it, then check and roll back as locally. Token: TFE_TOKEN or "
               "`terraform login`.")
COMMIT_HELP = ("Do not apply: write the phase to terraform/<env>/phase.auto.tfvars.json and git-commit "
               "that file alone, for a Terraform Cloud VCS-driven workspace to apply.")
FORCE_HELP = ("Go on although the auto-rollback function rolled the alias back since the last "
              "phase (it is recorded in the history either way).")
STABLE_VERSION_HELP = ("With --commit: the version serving traffic now ('' on the first deployment); "
                       "default auto reads it from the live alias.")
PHASE_TEXT = {
    "deploy": "deploy (new version idle, stable v{stable})",
    "canary": "canary {percent:g} % on the new version, stable v{stable}",
    "promote": "promote the new version (blue-green switch from v{stable})",
    "rollback": "rollback to v{stable}",
}


def _fail(error: Exception) -> Exit:
    return Exit(f"error: {error}")


def _load_config() -> ProjectConfig:
    try:
        return load_config()
    except ConfigError as error:
        raise _fail(error) from None


def _load(env: str) -> tuple[ProjectConfig, EnvironmentConfig]:
    config = _load_config()
    try:
        return config, config.environment(env)
    except ConfigError as error:
        raise _fail(error) from None


def _synthesize(config: ProjectConfig, force: bool = False,
                outdir: Path | None = None) -> float | None:
    """Run the CDKTF app unless its output is up to date; returns the seconds it took."""
    if not force and synthesis.is_up_to_date(config, outdir):
        return None
    started = time.monotonic()
    with ConsoleProgress() as progress:
        progress.status("synthesizing the stacks (python main.py)")
        synthesis.synthesize(config, outdir)
    return time.monotonic() - started


def _runner(environment: EnvironmentConfig, progress: ConsoleProgress, *, lock_timeout: str,
            smoke: bool = True, requests: int = 0, remote: bool = False,
            url: str = "") -> ReleaseRunner:
    """Preflight (Terraform binary and version or the remote workspace, AWS credentials,
    synthesized stack), then the runner."""
    if remote:
        backend = environment.backend
        terraform = RemoteTerraform(
            environment, TfcClient(backend.hostname, address=backend.address or None),
            on_line=progress.terraform_line)
    else:
        terraform = Terraform(environment.stack_dir, lock_timeout=lock_timeout,
                              on_line=progress.terraform_line)
        terraform.version()
        if not (environment.stack_dir / "cdk.tf.json").is_file():
            raise synthesis.SynthError(f"no synthesized stack at {environment.stack_dir}: "
                                       "run `invoke synth`")
    aws.preflight_credentials(environment.region)
    options = RunnerOptions(smoke=smoke, smoke_requests=requests or None, smoke_url=url)
    return ReleaseRunner(environment, terraform, options=options, progress=progress)


def _print(result, as_json: bool) -> None:
    """A report (or a rollout's list of them) as summary lines, or as JSON."""
    reports = result if isinstance(result, list) else [result]
    if not as_json:
        for report in reports:
            print(report.summary_line())
    elif isinstance(result, list):
        print(dumps([report.to_dict() for report in reports], indent=2))
    else:
        print(dumps(result.to_dict(), indent=2))


def _release(env: str, command: str, work, *, as_json: bool, lock_timeout: str,
             smoke: bool = True, requests: int = 0, remote: bool = False, url: str = ""):
    """Load, lock, synth if needed, preflight, then return `work(runner)`'s report(s).

    The lock comes first: a second caller is refused at once, before a synth rewrites the
    stack the first one is applying. A failed phase is printed here (its report, or with --json
    everything done so far) and ends the command with exit code 1."""
    config, environment = _load(env)
    try:
        with ReleaseLock(environment.name, f"invoke {command}"):
            if not remote:  # a remote workspace runs its own (committed) configuration
                _synthesize(config)
            with ConsoleProgress() as progress:
                runner = _runner(environment, progress, lock_timeout=lock_timeout, smoke=smoke,
                                 requests=requests, remote=remote, url=url)
                # Not before a rollback: taking traffic off a bad version must always be possible.
                if not remote and command != "rollback":
                    runner.preflight_account()
                result = work(runner)
    except PhaseFailed as failure:
        _print(failure.result if as_json else failure.report, as_json)
        raise Exit(code=1) from None
    except USER_ERRORS as error:
        raise _fail(error) from None
    return result


def _phase(env: str, kind: str, weight: float | None = None, *, force: bool, as_json: bool,
           **options) -> None:
    """One phase (deploy, canary, promote) through `_release`, printed."""
    _print(_release(env, kind, lambda runner: runner.run(kind, weight, force=force),
                    as_json=as_json, **options), as_json)


def _commit(env: str, kind: str, weight: float | None = None, stable_version: str = "auto") -> None:
    """The phase as a commit of its phase file, for a VCS-driven Terraform Cloud workspace."""
    config, environment = _load(env)
    directory = committed.committed_root() / env
    try:
        _synthesize(config)
        stale = committed.differences(environment.stack_dir, directory)
        if stale:
            raise committed.CommittedError(
                f"{committed.committed_root().name}/{env} is stale ({stale[0]}): run `invoke synth` and "
                "commit it first, so that the phase commit holds only the phase")
        live = None
        if stable_version == "auto" or kind == "deploy":
            try:
                aws.preflight_credentials(environment.region)
                live = aws.read_alias(aws.client("lambda", environment.region),
                                      environment.function_name, ALIAS_NAME).routing
            except aws.AwsError as error:
                if stable_version == "auto" and kind != "rollback":
                    raise PhaseInputError(f"cannot read the live alias ({error}); pass "
                                          "--stable-version N") from None
        variables = plan_committed(kind, committed.read_phase(directory), live, weight,
                                   None if stable_version == "auto" else stable_version)
        text = PHASE_TEXT[kind].format(percent=variables.canary_weight * 100,
                                       stable=variables.stable_version or "(none)")
        commit = committed.commit_phase(directory, variables.as_terraform(), f"release({env}): {text}")
    except USER_ERRORS as error:
        raise _fail(error) from None
    where = f"{committed.committed_root().name}/{env}/{committed.PHASE_FILE}"
    print(f"{kind} {env}: {where} already holds this phase, nothing to commit" if commit is None
          else f"{kind} {env}: committed {commit} \"release({env}): {text}\" ({where}); push it for "
               "the workspace to apply")


@task(help={"env": "Only check that this environment is known (every stack is synthesized "
                   "together: one app, about the cost of one).",
            "force": "Synthesize even when nothing that feeds the app changed.",
            "check": "Synthesize into a temporary directory and fail if the committed terraform/ "
                     "differs from it (for CI); changes nothing."})
def synth(c, env="", force=False, check=False):
    """Synthesize every environment into cdktf.out and refresh the committed terraform/<env>."""
    config = _load(env)[0] if env else _load_config()
    try:
        if check:
            with tempfile.TemporaryDirectory() as scratch:
                _synthesize(config, force=True, outdir=Path(scratch))
                committed.check(config, Path(scratch))
            print(f"synth --check: {committed.committed_root().name}/ matches a fresh synth "
                  f"({', '.join(config.stack_names)})")
            return
        seconds = _synthesize(config, force)
        changed = committed.write_all(config, synthesis.synth_output_dir())
    except (synthesis.SynthError, committed.CommittedError) as error:
        raise _fail(error) from None
    stacks = synthesis.synth_output_dir() / "stacks"
    print(f"synth: up to date ({stacks})" if seconds is None else
          f"synth: {', '.join(config.stack_names)} in {seconds:.1f} s ({stacks})")
    if changed:
        root = committed.committed_root().name
        print(f"synth: refreshed {', '.join(f'{root}/{name}' for name in changed)} "
              "(commit it for Terraform Cloud runs)")


@task(help={"env": "An environment of the account and region to prepare (default: dev); its "
                   "region picks the account stack.",
            "lock_timeout": LOCK_TIMEOUT_HELP})
def bootstrap(c, env="dev", lock_timeout="60s"):
    """Apply the account stack of the environment's region (API Gateway's logging role).

    Once per account and region, before the first deploy; `destroy` never touches it."""
    config, environment = _load(env)
    name = account_stack_name(environment.region)
    try:
        with ReleaseLock(name, "invoke bootstrap"):
            _synthesize(config)
            with ConsoleProgress() as progress:
                terraform = Terraform(synth_output_dir() / "stacks" / name,
                                      lock_timeout=lock_timeout, on_line=progress.terraform_line)
                terraform.version()
                aws.preflight_credentials(environment.region)
                summary = terraform.apply_variables({})
                role = terraform.outputs()["api_gateway_cloudwatch_role_arn"]
    except USER_ERRORS as error:
        raise _fail(error) from None
    print(f"bootstrap {name}: {summary}; API Gateway logs with {role}")


@task(help={"env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP, "commit": COMMIT_HELP,
            "stable_version": STABLE_VERSION_HELP, "remote": REMOTE_HELP, "force": FORCE_HELP,
            "url": URL_HELP})
def deploy(c, env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s", commit=False,
           stable_version="auto", remote=False, force=False, url=""):
    """Publish new code as the candidate at weight 0 (first deployment: it takes all traffic)."""
    if commit:
        return _commit(env, "deploy", stable_version=stable_version)
    _phase(env, "deploy", force=force, as_json=json, lock_timeout=lock_timeout,
           smoke=not no_smoke, requests=requests, remote=remote, url=url)


@task(help={"weight": "Share of requests for the new version, from 0 to 1 (e.g. 0.1).",
            "env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP, "commit": COMMIT_HELP,
            "stable_version": STABLE_VERSION_HELP, "remote": REMOTE_HELP, "force": FORCE_HELP,
            "url": URL_HELP})
def canary(c, weight="", env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s",
           commit=False, stable_version="auto", remote=False, force=False, url=""):
    """Send a share of traffic to the new version, verify it, roll back by itself on failure."""
    if weight == "":
        raise Exit("error: canary needs the share of traffic for the new version: pass --weight, "
                   "e.g. --weight=0.1")
    try:
        share = parse_weight(weight)
    except PhaseInputError as error:
        raise _fail(error) from None
    if commit:
        return _commit(env, "canary", share, stable_version)
    _phase(env, "canary", share, force=force, as_json=json, lock_timeout=lock_timeout,
           smoke=not no_smoke, requests=requests, remote=remote, url=url)


@task(help={"env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP, "commit": COMMIT_HELP,
            "stable_version": STABLE_VERSION_HELP, "remote": REMOTE_HELP, "force": FORCE_HELP,
            "url": URL_HELP})
def promote(c, env="dev", no_smoke=False, requests=0, json=False, lock_timeout="60s", commit=False,
            stable_version="auto", remote=False, force=False, url=""):
    """Blue-green switch: all traffic to the new version, which becomes the stable one."""
    if commit:
        return _commit(env, "promote", stable_version=stable_version)
    _phase(env, "promote", force=force, as_json=json, lock_timeout=lock_timeout,
           smoke=not no_smoke, requests=requests, remote=remote, url=url)


@task(help={"env": ENV_HELP,
            "fast": "First point the alias back with one Lambda API call, then apply.",
            "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP, "json": JSON_HELP,
            "lock_timeout": LOCK_TIMEOUT_HELP, "commit": COMMIT_HELP, "remote": REMOTE_HELP,
            "url": URL_HELP})
def rollback(c, env="dev", fast=False, no_smoke=False, requests=0, json=False, lock_timeout="60s",
             commit=False, remote=False, url=""):
    """All traffic back to the stable version (weight 0); running it twice is harmless."""
    if commit:
        return _commit(env, "rollback")
    def work(runner):
        if fast:
            try:
                live, seconds = runner.fast_rollback()
                print(f"rollback {env}: traffic at {live.routing.describe()} after one UpdateAlias "
                      f"({seconds * 1000:.0f} ms); applying so Terraform's state agrees",
                      file=sys.stderr)
            except (aws.AwsError, PhaseInputError) as error:
                print(f"rollback {env}: fast path failed ({error}); rolling back through Terraform",
                      file=sys.stderr)
        return runner.run("rollback")
    _print(_release(env, "rollback", work, as_json=json, lock_timeout=lock_timeout,
                    smoke=not no_smoke, requests=requests, remote=remote, url=url), json)


@task(help={"env": ENV_HELP,
            "version": "The quarantined version to let serve again, e.g. 7 (`invoke status` lists them).",
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def release_quarantine(c, env="dev", version="", json=False, lock_timeout="60s"):
    """Let a version that a rollback took traffic from get traffic again (recorded in the history)."""
    _, environment = _load(env)
    try:
        parsed = quarantine.parse_version(version)
        with ReleaseLock(environment.name, "invoke release-quarantine"):
            with ConsoleProgress() as progress:
                runner = _runner(environment, progress, lock_timeout=lock_timeout)
                state = runner.stack_state()
                lifted, record = quarantine.lift(env, state, runner.live_alias(state),
                                                 runner.clients["ssm"], runner.history, parsed)
    except USER_ERRORS as error:
        raise _fail(error) from None
    if json:
        print(dumps(record.to_dict(), indent=2))
    else:
        print(f"release-quarantine {env}: {record.detail}")


@task(help={"env": ENV_HELP,
            "steps": "Comma-separated weights, ascending, ending at 1 (default: the environment's preset).",
            "bake": "Seconds to watch alarms and metrics after each step (default -1: the preset).",
            "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP, "json": JSON_HELP,
            "lock_timeout": LOCK_TIMEOUT_HELP, "remote": REMOTE_HELP, "force": FORCE_HELP,
            "report": "Afterwards (a failed rollout too) write `invoke report` HTML of the "
                      "environment to this path and print it; --json then prints "
                      "{\"steps\": [...], \"report\": {...}} instead of the list of steps.",
            "url": URL_HELP})
def rollout(c, env="dev", steps="", bake=-1, no_smoke=False, requests=0, json=False,
            lock_timeout="60s", remote=False, force=False, report="", url=""):
    """Step through the weights with a bake after each; any failure rolls back to 0."""
    _, environment = _load(env)
    try:
        weights = parse_steps(steps) if steps else environment.rollout.steps
    except PhaseInputError as error:
        raise _fail(error) from None
    bake_seconds = environment.rollout.bake_seconds if int(bake) < 0 else int(bake)
    # Humans see each step's line as it finishes (bakes take minutes); pipelines get one JSON list.
    on_step = None if json else (lambda report: print(report.summary_line(), flush=True))

    def work(runner):
        try:
            return runner.rollout(weights, bake_seconds, force=force, on_step=on_step)
        except PhaseFailed as failure:
            if report:  # written before the failure is printed, so that --json carries it
                failure.result = _reported_rollout(environment, report, failure.result, json)
            raise
    reports = _release(env, "rollout", work, as_json=json, lock_timeout=lock_timeout,
                       smoke=not no_smoke, requests=requests, remote=remote, url=url)
    if report:
        reports = _reported_rollout(environment, report, reports, json)
    if json:
        _print(reports, json)


@task(help={"env": "Environment to drill (default: staging; production ones need --yes-production).",
            "fault_rate": "Share of the faulty version's requests that fail, in (0, 1].",
            "weight": "Canary weight of the faulty version, between 0 and 1.",
            "timeout": "Seconds to wait for the stack to roll back by itself.",
            "yes_production": "Allow a drill on an environment marked production = true.",
            "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def drill(c, env="staging", fault_rate="0.5", weight="0.25", timeout=900, yes_production=False,
          json=False, lock_timeout="60s"):
    """Rollback drill: ship a failing canary and time the stack's own rollback."""
    _, environment = _load(env)
    if environment.production and not yes_production:
        raise Exit(f"error: {env} is marked production = true: a drill fails real users' requests; "
                   "drill staging, or pass --yes-production")
    try:
        options = DrillOptions(fault_rate=parse_weight(fault_rate, "--fault-rate"),
                               weight=parse_weight(weight, "--weight"), timeout_seconds=timeout)
    except (DrillError, PhaseInputError) as error:
        raise _fail(error) from None
    report = _release(env, "drill", lambda runner: run_drill(runner, options), as_json=json,
                      lock_timeout=lock_timeout)
    _print(report, json)
    if report.outcome != "succeeded":
        raise Exit(code=1)


@task(help={"url": "Endpoint to test, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod/demo.",
            "expect_weight": "Expected share of the candidate version, from 0 to 1.",
            "candidate_version": "Candidate's Lambda version (default: the highest version seen).",
            "requests": REQUESTS_HELP, "concurrency": "Requests in flight at once.",
            "json": JSON_HELP})
def smoke(c, url="", expect_weight=0.0, candidate_version="", requests=0, concurrency=16, json=False):
    """Statistical smoke check of any endpoint that answers like the demo function."""
    if not url:
        raise Exit("error: smoke needs the endpoint: pass --url, e.g. the stack's api_url output")
    try:
        result = smoke_check(url, expected_weight=parse_weight(expect_weight, "--expect-weight"),
                             candidate_version=candidate_version or None,
                             requests=requests or None, concurrency=concurrency)
    except (SmokeInputError, PhaseInputError) as error:
        raise _fail(error) from None
    print(dumps(result.to_dict(), indent=2) if json else result.summary())
    if not result.passed:
        raise Exit(code=1)


@task(help={"env": ENV_HELP, "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP,
            "remote": "Read the outputs from the environment's Terraform Cloud workspace."})
def status(c, env="dev", json=False, lock_timeout="60s", remote=False):
    """Live alias routing, versions, alarms, endpoint, last phase; flags drift from Terraform."""
    _, environment = _load(env)
    try:
        with ConsoleProgress() as progress:
            info = _runner(environment, progress, lock_timeout=lock_timeout, remote=remote).status()
    except USER_ERRORS as error:
        raise _fail(error) from None
    if json:
        print(dumps(info, indent=2))
        return
    if not info["deployed"]:
        print(f"{env}: not deployed yet (run `invoke deploy --env {env}`)")
        return
    print(f"{env}: {info['live_routing_text']} at {info['endpoint']}")
    print(f"  candidate v{info['candidate_version']}, stable v{info['stable_version'] or '-'}")
    if info["rolled_back_by_alarm"]:
        print(f"  {info['rolled_back_by_alarm']}")
        print("  acknowledge with `invoke rollback`: it brings Terraform's state in line")
    elif info["live_routing"] != info["terraform_routing"]:
        print(f"  DRIFT: Terraform expects {info['terraform_routing']}, the live alias differs; "
              "rerun the last phase or `invoke rollback`")
    if info["terraform_drift"]:
        print(f"  DRIFT: a plan with the last phase's variables would change "
              f"{', '.join(info['terraform_drift'])}: something was changed outside Terraform; "
              "rerun the last phase to put it back")
    if info["plan_refused"]:
        print(f"  the stack refuses a plan with the last phase's variables: "
              f"{info['plan_refused']}")
    for version, entry in info["quarantined"].items():
        print(f"  QUARANTINED: v{version}, rolled back by {entry['reason']} at {entry['at']}; "
              f"plans refuse to give it traffic (`invoke release-quarantine --env {env} "
              f"--version {version}` lifts it)")
    print("  alarms: " + ", ".join(f"{name} {state}" for name, state in info["alarms"].items()))
    last = info["last_phase"]
    if last:
        print(f"  last phase: {last['phase']} {last['outcome']} at {last['time']} by {last['caller']}")


@task(help={"env": ENV_HELP, "yes": "Do not ask for confirmation (for pipelines).",
            "lock_timeout": LOCK_TIMEOUT_HELP})
def destroy(c, env="dev", yes=False, lock_timeout="60s"):
    """Destroy the environment's stack (asks first unless --yes)."""
    _, environment = _load(env)
    if not yes:
        if not sys.stdin.isatty():
            raise Exit("error: destroy needs confirmation: pass --yes when no one can answer")
        answer = input(f"Destroy every resource of {env} ({environment.function_name})? "
                       "Type the environment name to confirm: ")
        if answer.strip() != env:
            raise Exit("destroy: not confirmed, nothing changed")
    try:
        with ConsoleProgress() as progress:
            terraform = _runner(environment, progress, lock_timeout=lock_timeout).terraform
            with ReleaseLock(environment.name, "invoke destroy"):
                plan = terraform.plan({}, destroy=True)
                terraform.apply(plan)
    except USER_ERRORS as error:
        raise _fail(error) from None
    print(f"destroy {env}: {plan.summary}")


def _write_report(environment: EnvironmentConfig, out: str, *, history: str = "", since: str = "",
                  last: int = 0, metrics: str = "auto", png: bool = False):
    """The report's work, for `report` and `rollout --report`; what the user can fix is Exit."""
    # Imported here: matplotlib takes about a second to load, which no other task should pay.
    from release.history import ReleaseHistory
    from release.report import ReportOptions, write_report
    from release.report_model import ReportInputError, parse_since

    try:
        options = ReportOptions(since=parse_since(since) if since else None, last=int(last),
                                metrics=metrics, png=png)
        return write_report(environment, Path(out),
                            history=ReleaseHistory(Path(history) if history else None),
                            options=options)
    except (ReportInputError, aws.AwsError, OSError) as error:
        raise _fail(error) from None


def _reported_rollout(environment: EnvironmentConfig, out: str, steps, as_json: bool):
    """`rollout --report`: the report after the steps. One that cannot be written is one line on
    stderr; the rollout's own outcome decides the exit code."""
    from release.report import ReportedRollout

    try:
        written = _write_report(environment, out)
    except Exit as error:
        print(f"rollout {environment.name}: no report written: "
              f"{error.message.removeprefix('error: ')}", file=sys.stderr)
        written = None
    if written and not as_json:
        print(written.summary_line(environment.name))
    return ReportedRollout(steps, written)


@task(help={"env": ENV_HELP,
            "since": "Only phases newer than this: 90m, 24h, 7d, 2w (default: all).",
            "last": "Only the newest N phases (default 0: all).",
            "out": "HTML file to write (default: release-report-<env>.html).",
            "png": "Also write the main chart as a PNG beside the HTML (same name, .png).",
            "metrics": "Per-version CloudWatch metrics: auto (when AWS credentials and network "
                       "allow, else a note in the page), on (fail without them) or off.",
            "from_history": "History file to read (default: .release/history.jsonl), e.g. "
                            "one downloaded from a CI run.",
            "json": JSON_HELP})
def report(c, env="dev", since="", last=0, out="", png=False, metrics="auto", from_history="",
           json=False):
    """Self-contained HTML report of the environment's releases, from the history (offline)."""
    _, environment = _load(env)
    written = _write_report(environment, out or f"release-report-{env}.html", history=from_history,
                            since=since, last=last, metrics=metrics, png=png)
    print(dumps(written.to_dict(), indent=2) if json else written.summary_line(env))
