"""Release tasks: `invoke --list` shows them, `invoke <task> --help` documents every flag.

A thin layer: arguments and messages here, the work in the `release` package. Every task is a
`release_task`: an expected failure (a `release.errors.ReleaseError`) ends it with one line on
stderr and a non-zero exit, anything else is a bug and keeps its traceback. Each phase prints one
summary line on stdout (or, with --json, a JSON result); progress goes to stderr on a terminal.
"""

import functools
import sys
import tempfile
from collections.abc import Callable
from json import dumps
from pathlib import Path
from typing import Any

from invoke import Context, Exit, task

from release import committed, gate, quarantine
from release import synth as synthesis
from release.config import EnvironmentConfig, ProjectConfig, load_config
from release.console import ConsoleProgress
from release.context import RunnerOptions
from release.drill import DrillOptions, run_drill
from release.errors import ReleaseError
from release.flags import whole_number
from release.history import ReleaseHistory
from release.kinds import Outcome, Phase
from release.phases import parse_steps
from release.released_config import show_config
from release.rollout import parse_bake, run_reported_rollout, run_rollout
from release.runner import PhaseFailed, run_destroy, run_phase, run_rollback
from release.session import bootstrap_account, connect, open_release
from release.smoke import smoke_check
from release.status import history_lines, read_status
from release.weights import check_weight

ENV_HELP = "Environment from environments.toml (default: dev)."
JSON_HELP = "Print a machine-readable JSON result on stdout instead of the summary line."
NO_SMOKE_HELP = "Skip the smoke check after the apply (the alias wait and alarm check still run)."
REQUESTS_HELP = "Smoke requests (default 0: sized from the weight so 10 % vs 20 % is told apart)."
LOCK_TIMEOUT_HELP = "How long Terraform waits for the state lock, e.g. 60s or 5m."
URL_HELP = ("Endpoint the smoke check calls instead of the stack's api_url output (a custom "
            "domain, a private API through a tunnel, a local stand-in).")
REMOTE_HELP = ("Apply through the environment's Terraform Cloud workspace (backend type cloud): "
               "set its variables, run it, then check and roll back as locally. Token: TFE_TOKEN "
               "or `terraform login`.")
COMMIT_HELP = ("Do not apply: write the phase to terraform/<env>/phase.auto.tfvars.json and "
               "git-commit that file alone, for a Terraform Cloud VCS-driven workspace to apply.")
FORCE_HELP = ("Go on although the auto-rollback function rolled the alias back since the last "
              "phase (it is recorded in the history either way).")
STABLE_VERSION_HELP = ("With --commit: the version serving traffic now ('' on the first "
                       "deployment); default auto reads it from the live alias.")
APPROVED_BY_HELP = ("Name of the human who approves this release where environments.toml says "
                    "promotion.approval = \"required\" (asked on a terminal when left out); "
                    "recorded in the history.")
SKIP_GATE_HELP = ("Release although the promotion gate (what promotion.after serves, its soak "
                  "and alarms) refuses; the reason is recorded in the history and shown by "
                  "`invoke status` (with --commit: in the commit message, and as "
                  "promotion_gate_override in the phase file).")
GATE_HELP = {"approved_by": APPROVED_BY_HELP, "skip_gate": SKIP_GATE_HELP}
PHASE_HELP = {"env": ENV_HELP, "no_smoke": NO_SMOKE_HELP, "requests": REQUESTS_HELP,
              "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP, "remote": REMOTE_HELP,
              "url": URL_HELP}


def release_task(**task_options: Any) -> Callable[[Callable[..., Any]], Any]:
    """invoke's @task for a release task: a phase that failed prints its report (or with --json
    everything done so far) and exits 1; any other ReleaseError is one line on stderr."""
    def decorate(body: Callable[..., Any]) -> Any:
        @functools.wraps(body)
        def run(c: Context, *args: Any, **flags: Any) -> Any:
            try:
                return body(c, *args, **flags)
            except PhaseFailed as failure:
                as_json = bool(flags.get("json"))
                _print(failure.result if as_json else failure.report, as_json)
                raise Exit(code=1) from None
            except ReleaseError as error:
                raise Exit(f"error: {error}") from None
        return task(**task_options)(run)
    return decorate


def _print(result: Any, as_json: bool) -> None:
    """A report (or a rollout's list of them) as summary lines, or as JSON."""
    reports = result if isinstance(result, list) else [result]
    if not as_json:
        for report in reports:
            print(report.summary_line())
    elif isinstance(result, list):
        print(dumps([report.to_dict() for report in reports], indent=2))
    else:
        print(dumps(result.to_dict(), indent=2))


def _environment(env: str) -> tuple[ProjectConfig, EnvironmentConfig]:
    config = load_config()
    return config, config.environment(env)


def _options(no_smoke: bool, requests: str, url: str, *,
             gate: tuple[str, str] = ("", "")) -> RunnerOptions:
    """The phase options from the flags, checked before anything is locked or applied; `gate`
    is (approved_by, skip_gate) from `_gate_flags`."""
    approved_by, skip_gate = gate
    return RunnerOptions(smoke=not no_smoke,
                         smoke_requests=whole_number(requests, "--requests") or None,
                         smoke_url=url, approved_by=approved_by, skip_gate=skip_gate)


def _gate_flags(environment: EnvironmentConfig, approved_by: str, skip_gate: str,
                commit: bool = False) -> tuple[str, str]:
    """--approved-by and --skip-gate checked, the approver asked for on a terminal."""
    ask = input if sys.stdin.isatty() else None
    return gate.gate_flags(environment, approved_by, skip_gate, commit=commit, ask=ask)


def _phase(env: str, kind: Phase, weight: float | None = None, *, commit: bool,
           stable_version: str, force: bool, json: bool, lock_timeout: str, remote: bool,
           no_smoke: bool, requests: str, url: str, approved_by: str = "",
           skip_gate: str = "") -> None:
    """One phase (deploy, canary, promote): applied and checked, or with --commit committed."""
    config, environment = _environment(env)
    gate_flags = (_gate_flags(environment, approved_by, skip_gate, commit)
                  if kind != Phase.DEPLOY else ("", ""))
    options = _options(no_smoke, requests, url, gate=gate_flags)
    with ConsoleProgress() as progress:
        if commit:
            done = committed.commit_release_phase(config, environment, kind, weight,
                                                  stable_version, skip_gate=gate_flags[1],
                                                  on_status=progress.status)
        else:
            with open_release(config, environment, kind, progress, lock_timeout=lock_timeout,
                              remote=remote, options=options) as context:
                report = run_phase(context, kind, weight, force=force)
    if commit:
        print(done.summary_line())
    else:
        _print(report, json)


@release_task(help={"env": "Only check that this environment is known (every stack is "
                           "synthesized together: one app, about the cost of one).",
                    "force": "Synthesize even when nothing that feeds the app changed.",
                    "check": "Synthesize into a temporary directory and fail if the committed "
                             "terraform/ differs from it (for CI); changes nothing."})
def synth(c: Context, env: str = "", force: bool = False, check: bool = False) -> None:
    """Synthesize every environment into cdktf.out and refresh the committed terraform/<env>."""
    config = _environment(env)[0] if env else load_config()
    root = committed.committed_root().name
    with ConsoleProgress() as progress:
        if check:
            with tempfile.TemporaryDirectory() as scratch:
                synthesis.refresh(config, force=True, outdir=Path(scratch),
                                  on_status=progress.status)
                committed.check(config, Path(scratch))
        else:
            seconds = synthesis.refresh(config, force=force, on_status=progress.status)
            changed = committed.write_all(config, synthesis.synth_output_dir())
    if check:
        print(f"synth --check: {root}/ matches a fresh synth ({', '.join(config.stack_names)})")
        return
    stacks = synthesis.synth_output_dir() / "stacks"
    print(f"synth: up to date ({stacks})" if seconds is None else
          f"synth: {', '.join(config.stack_names)} in {seconds:.1f} s ({stacks})")
    if changed:
        print(f"synth: refreshed {', '.join(f'{root}/{name}' for name in changed)} "
              "(commit it for Terraform Cloud runs)")


@release_task(help={"env": "An environment of the account and region to prepare (default: "
                           "dev); its region picks the account stack.",
                    "lock_timeout": LOCK_TIMEOUT_HELP})
def bootstrap(c: Context, env: str = "dev", lock_timeout: str = "60s") -> None:
    """Apply the account stack of the environment's region (API Gateway's logging role).

    Once per account and region, before the first deploy; `destroy` never touches it."""
    config, environment = _environment(env)
    with ConsoleProgress() as progress:
        done = bootstrap_account(config, environment, progress, lock_timeout=lock_timeout)
    print(f"bootstrap {done.stack}: {done.summary}; API Gateway logs with {done.role_arn}")


@release_task(help={**PHASE_HELP, "commit": COMMIT_HELP, "stable_version": STABLE_VERSION_HELP,
                    "force": FORCE_HELP})
def deploy(c: Context, env: str = "dev", no_smoke: bool = False, requests: str = "0",
           json: bool = False, lock_timeout: str = "60s", commit: bool = False,
           stable_version: str = "auto", remote: bool = False, force: bool = False,
           url: str = "") -> None:
    """Publish new code as the candidate at weight 0 (first deployment: it takes all traffic)."""
    _phase(env, Phase.DEPLOY, commit=commit, stable_version=stable_version, force=force,
           json=json, lock_timeout=lock_timeout, remote=remote, no_smoke=no_smoke,
           requests=requests, url=url)


@release_task(help={"weight": "Share of requests for the new version, from 0 to 1 (e.g. 0.1).",
                    **PHASE_HELP, "commit": COMMIT_HELP, "stable_version": STABLE_VERSION_HELP,
                    "force": FORCE_HELP, **GATE_HELP})
def canary(c: Context, weight: str = "", env: str = "dev", no_smoke: bool = False,
           requests: str = "0", json: bool = False, lock_timeout: str = "60s", commit: bool = False,
           stable_version: str = "auto", remote: bool = False, force: bool = False,
           url: str = "", approved_by: str = "", skip_gate: str = "") -> None:
    """Send a share of traffic to the new version, verify it, roll back by itself on failure."""
    if weight == "":
        raise Exit("error: canary needs the share of traffic for the new version: pass --weight, "
                   "e.g. --weight=0.1")
    _phase(env, Phase.CANARY, check_weight(weight, "--weight"), commit=commit,
           stable_version=stable_version, force=force, json=json, lock_timeout=lock_timeout,
           remote=remote, no_smoke=no_smoke, requests=requests, url=url,
           approved_by=approved_by, skip_gate=skip_gate)


@release_task(help={**PHASE_HELP, "commit": COMMIT_HELP, "stable_version": STABLE_VERSION_HELP,
                    "force": FORCE_HELP, **GATE_HELP})
def promote(c: Context, env: str = "dev", no_smoke: bool = False, requests: str = "0",
            json: bool = False, lock_timeout: str = "60s", commit: bool = False,
            stable_version: str = "auto", remote: bool = False, force: bool = False,
            url: str = "", approved_by: str = "", skip_gate: str = "") -> None:
    """Blue-green switch: all traffic to the new version, which becomes the stable one."""
    _phase(env, Phase.PROMOTE, commit=commit, stable_version=stable_version, force=force,
           json=json, lock_timeout=lock_timeout, remote=remote, no_smoke=no_smoke,
           requests=requests, url=url, approved_by=approved_by, skip_gate=skip_gate)


@release_task(help={**PHASE_HELP, "commit": COMMIT_HELP,
                    "fast": "First point the alias back with one Lambda API call, then apply."})
def rollback(c: Context, env: str = "dev", fast: bool = False, no_smoke: bool = False,
             requests: str = "0", json: bool = False, lock_timeout: str = "60s",
             commit: bool = False, remote: bool = False, url: str = "") -> None:
    """All traffic back to the stable version (weight 0); running it twice is harmless."""
    options = _options(no_smoke, requests, url)
    config, environment = _environment(env)
    with ConsoleProgress() as progress:
        if commit:
            done = committed.commit_release_phase(config, environment, Phase.ROLLBACK,
                                                  on_status=progress.status)
        else:
            with open_release(config, environment, Phase.ROLLBACK, progress,
                              lock_timeout=lock_timeout, remote=remote, options=options) as context:
                report = run_rollback(context, fast=fast)
    if commit:
        print(done.summary_line())
    else:
        _print(report, json)


@release_task(help={**PHASE_HELP, "force": FORCE_HELP, **GATE_HELP,
                    "steps": "Comma-separated weights, ascending, ending at 1 (default: the "
                             "environment's preset).",
                    "bake": "Seconds to watch alarms and metrics after each step (default -1: "
                            "the preset).",
                    "report": "Afterwards (a failed rollout too) write `invoke report` HTML of "
                              "the environment to this path and print it; --json then prints "
                              "{\"steps\": [...], \"report\": {...}} instead of the list of "
                              "steps."})
def rollout(c: Context, env: str = "dev", steps: str = "", bake: str = "-1",
            no_smoke: bool = False, requests: str = "0", json: bool = False,
            lock_timeout: str = "60s", remote: bool = False, force: bool = False,
            report: str = "", url: str = "", approved_by: str = "", skip_gate: str = "") -> None:
    """Step through the weights with a bake after each; any failure rolls back to 0."""
    config, environment = _environment(env)
    options = _options(no_smoke, requests, url,
                       gate=_gate_flags(environment, approved_by, skip_gate))
    weights = parse_steps(steps) if steps else environment.rollout.steps
    bake_seconds = parse_bake(bake, environment.rollout.bake_seconds)
    # Humans see each step's line as it finishes (bakes take minutes); pipelines get one JSON list.
    on_step = None if json else (lambda step: print(step.summary_line(), flush=True))
    with ConsoleProgress() as progress, open_release(
            config, environment, "rollout", progress, lock_timeout=lock_timeout, remote=remote,
            options=options) as context:
        if not report:
            result: Any = run_rollout(context, weights, bake_seconds, force=force,
                                      on_step=on_step)
        else:
            result = run_reported_rollout(
                context, weights, bake_seconds, Path(report), force=force, on_step=on_step,
                on_written=None if json else lambda written: print(written.summary_line(env)))
    if json:
        _print(result, json)


@release_task(help={"env": "Environment to drill (default: staging; production ones need "
                           "--yes-production).",
                    "fault_rate": "Share of the faulty version's requests that fail, in (0, 1].",
                    "weight": "Canary weight of the faulty version, between 0 and 1.",
                    "timeout": "Seconds to wait for the stack to roll back by itself.",
                    "yes_production": "Allow a drill on an environment marked production = true.",
                    "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def drill(c: Context, env: str = "staging", fault_rate: str = "0.5", weight: str = "0.25",
          timeout: str = "900", yes_production: bool = False, json: bool = False,
          lock_timeout: str = "60s") -> None:
    """Rollback drill: ship a failing canary and time the stack's own rollback."""
    config, environment = _environment(env)
    if environment.production and not yes_production:
        raise Exit(f"error: {env} is marked production = true: a drill fails real users' requests; "
                   "drill staging, or pass --yes-production")
    options = DrillOptions(fault_rate=check_weight(fault_rate, "--fault-rate"),
                           weight=check_weight(weight, "--weight"),
                           timeout_seconds=whole_number(timeout, "--timeout", minimum=1))
    with ConsoleProgress() as progress, open_release(
            config, environment, Phase.DRILL, progress, lock_timeout=lock_timeout) as context:
        report = run_drill(context, options)
    _print(report, json)
    if report.outcome != Outcome.SUCCEEDED:
        raise Exit(code=1)


@release_task(help={"url": "Endpoint to test, e.g. "
                           "https://abc.execute-api.eu-west-1.amazonaws.com/prod/demo.",
                    "expect_weight": "Expected share of the candidate version, from 0 to 1.",
                    "candidate_version": "Candidate's Lambda version (default: the highest "
                                         "version seen).",
                    "requests": REQUESTS_HELP, "concurrency": "Requests in flight at once.",
                    "json": JSON_HELP})
def smoke(c: Context, url: str = "", expect_weight: str = "0", candidate_version: str = "",
          requests: str = "0", concurrency: str = "16", json: bool = False) -> None:
    """Statistical smoke check of any endpoint that answers like the demo function."""
    if not url:
        raise Exit("error: smoke needs the endpoint: pass --url, e.g. the stack's api_url output")
    result = smoke_check(url, expected_weight=check_weight(expect_weight, "--expect-weight"),
                         candidate_version=candidate_version or None,
                         requests=whole_number(requests, "--requests") or None,
                         concurrency=whole_number(concurrency, "--concurrency", minimum=1))
    print(dumps(result.to_dict(), indent=2) if json else result.summary())
    if not result.passed:
        raise Exit(code=1)


@release_task(help={"env": ENV_HELP, "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP,
                    "remote": "Read the outputs from the environment's Terraform Cloud "
                              "workspace."})
def status(c: Context, env: str = "dev", json: bool = False, lock_timeout: str = "60s",
           remote: bool = False) -> None:
    """Live alias routing, versions, alarms, endpoint, last phase; flags drift from Terraform."""
    environment = _environment(env)[1]
    with ConsoleProgress() as progress:
        info = read_status(connect(environment, progress, lock_timeout=lock_timeout,
                                   remote=remote))
    print(dumps(info.to_dict(), indent=2) if json else "\n".join(info.lines()))


@release_task(help={"env": ENV_HELP, "last": "Only the newest N phases (default 20; 0: all).",
                    "json": "Print the records as a JSON list instead of one line each."})
def history(c: Context, env: str = "dev", last: str = "20", json: bool = False) -> None:
    """The environment's release history (offline): one line per phase, with the settings
    version each of its versions is pinned to."""
    _environment(env)
    records = ReleaseHistory().read(env, limit=whole_number(last, "--last") or None)
    print(dumps(records, indent=2) if json
          else "\n".join(history_lines(records)) or f"{env}: no release recorded yet")


@release_task(help={"env": ENV_HELP, "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def config(c: Context, env: str = "dev", json: bool = False, lock_timeout: str = "60s") -> None:
    """Settings each live version (primary, canary) runs with, and the candidate's changes."""
    environment = _environment(env)[1]
    with ConsoleProgress() as progress:
        view = show_config(connect(environment, progress, lock_timeout=lock_timeout))
    print(dumps(view.to_dict(), indent=2) if json else "\n".join(view.lines()))


@release_task(help={"env": ENV_HELP,
                    "version": "The quarantined version to let serve again, e.g. 7 (`invoke "
                               "status` lists them).",
                    "json": JSON_HELP, "lock_timeout": LOCK_TIMEOUT_HELP})
def release_quarantine(c: Context, env: str = "dev", version: str = "", json: bool = False,
                       lock_timeout: str = "60s") -> None:
    """Let a rolled-back (quarantined) version get traffic again; recorded in the history."""
    lifted_version = quarantine.parse_version(version)
    config, environment = _environment(env)
    with ConsoleProgress() as progress, open_release(
            config, environment, Phase.RELEASE_QUARANTINE, progress,
            lock_timeout=lock_timeout) as context:
        record = quarantine.run_release_quarantine(context, lifted_version)
    print(dumps(record.to_dict(), indent=2) if json
          else f"release-quarantine {env}: {record.detail}")


@release_task(help={"env": ENV_HELP, "yes": "Do not ask for confirmation (for pipelines).",
                    "lock_timeout": LOCK_TIMEOUT_HELP})
def destroy(c: Context, env: str = "dev", yes: bool = False, lock_timeout: str = "60s") -> None:
    """Destroy the environment's stack (asks first unless --yes)."""
    config, environment = _environment(env)
    if not yes:
        if not sys.stdin.isatty():
            raise Exit("error: destroy needs confirmation: pass --yes when no one can answer")
        answer = input(f"Destroy every resource of {env} ({environment.function_name})? "
                       "Type the environment name to confirm: ")
        if answer.strip() != env:
            raise Exit("destroy: not confirmed, nothing changed")
    with ConsoleProgress() as progress, open_release(
            config, environment, Phase.DESTROY, progress, lock_timeout=lock_timeout) as context:
        report = run_destroy(context)
    print(f"destroy {env}: {report.plan_summary}")


@release_task(help={"env": ENV_HELP,
                    "since": "Only phases newer than this: 90m, 24h, 7d, 2w (default: all).",
                    "last": "Only the newest N phases (default 0: all).",
                    "out": "HTML file to write (default: release-report-<env>.html).",
                    "png": "Also write the main chart as a PNG beside the HTML (same name, .png).",
                    "metrics": "Per-version CloudWatch metrics: auto (when AWS credentials and "
                               "network allow, else a note in the page), on (fail without them) "
                               "or off.",
                    "from_history": "History file to read (default: .release/history.jsonl), "
                                    "e.g. one downloaded from a CI run.",
                    "json": JSON_HELP})
def report(c: Context, env: str = "dev", since: str = "", last: str = "0", out: str = "",
           png: bool = False, metrics: str = "auto", from_history: str = "",
           json: bool = False) -> None:
    """Self-contained HTML report of the environment's releases, from the history (offline)."""
    # Imported here: matplotlib takes about a second to load, which no other task should pay.
    from release.report import ReportOptions, write_report
    from release.report_model import parse_since

    environment = _environment(env)[1]
    options = ReportOptions(since=parse_since(since) if since else None,
                            last=whole_number(last, "--last"),
                            metrics=metrics, png=png)
    written = write_report(environment, Path(out or f"release-report-{env}.html"),
                           history=ReleaseHistory(Path(from_history) if from_history else None),
                           options=options)
    print(dumps(written.to_dict(), indent=2) if json else written.summary_line(env))
