"""Opening an environment for release commands: its release lock, a synth when the app changed,
the preflight checks (Terraform or the remote workspace, AWS credentials, the synthesized stack,
the account), then the `ReleaseContext` the commands work with. Also the account stack's
bootstrap, which is prepared the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

from release import aws
from release import synth as synthesis
from release.config import EnvironmentConfig, ProjectConfig, account_stack_name, synth_output_dir
from release.context import DEFAULT_OPTIONS, PhaseApplier, Progress, ReleaseContext, RunnerOptions
from release.kinds import Phase
from release.lock import ReleaseLock
from release.outputs import required_output
from release.remote import RemoteTerraform
from release.terraform import DEFAULT_LOCK_TIMEOUT, STACK_FILE, ChangeSummary, Terraform
from release.tfc import TfcClient

# Taking traffic off a bad version, or the stack away, must work whatever the account's state;
# lifting a quarantine changes nothing the account check is about.
WITHOUT_ACCOUNT_CHECK = (Phase.ROLLBACK, Phase.DESTROY, Phase.RELEASE_QUARANTINE)


def connect(environment: EnvironmentConfig, progress: Progress, *,
            lock_timeout: str = DEFAULT_LOCK_TIMEOUT, remote: bool = False,
            options: RunnerOptions = DEFAULT_OPTIONS) -> ReleaseContext:
    """The environment's context after the preflight: the Terraform binary and version (or the
    remote workspace), the synthesized stack, AWS credentials."""
    applier: PhaseApplier
    if remote:
        backend = environment.backend
        applier = RemoteTerraform(
            environment, TfcClient(backend.hostname, address=backend.address or None),
            on_line=progress.terraform_line)
    else:
        applier = Terraform(environment.stack_dir, lock_timeout=lock_timeout,
                            on_line=progress.terraform_line)
    applier.version()
    if not remote and not (environment.stack_dir / STACK_FILE).is_file():
        raise synthesis.SynthError(f"no synthesized stack at {environment.stack_dir}: "
                                   "run `invoke synth`")
    aws.preflight_credentials(environment.region)
    return ReleaseContext(environment, applier, options=options, progress=progress)


@contextlib.contextmanager
def open_release(config: ProjectConfig, environment: EnvironmentConfig, command: str,
                 progress: Progress, *, lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                 remote: bool = False,
                 options: RunnerOptions = DEFAULT_OPTIONS) -> Iterator[ReleaseContext]:
    """The environment's context, with its release lock held for the block.

    The lock comes first: a second caller is refused at once, before a synth rewrites the stack
    the first one is applying. A remote workspace runs its own (committed) configuration, and a
    destroy removes what the state holds: neither synthesizes."""
    with ReleaseLock(environment.name, f"invoke {command}"):
        if not remote and command != Phase.DESTROY:
            synthesis.refresh(config, on_status=progress.status)
        context = connect(environment, progress, lock_timeout=lock_timeout, remote=remote,
                          options=options)
        if environment.promotion is not None:
            context.upstream = config.environment(environment.promotion.after)
        if not remote and command not in WITHOUT_ACCOUNT_CHECK:
            context.preflight_account()
        yield context


@dataclass(frozen=True)
class AccountBootstrap:
    stack: str
    summary: ChangeSummary
    # The role API Gateway writes its logs with.
    role_arn: str


def bootstrap_account(config: ProjectConfig, environment: EnvironmentConfig, progress: Progress,
                      *, lock_timeout: str = DEFAULT_LOCK_TIMEOUT) -> AccountBootstrap:
    """Apply the account stack of the environment's region (once per account and region)."""
    name = account_stack_name(environment.region)
    with ReleaseLock(name, "invoke bootstrap"):
        synthesis.refresh(config, on_status=progress.status)
        terraform = Terraform(synth_output_dir() / "stacks" / name, lock_timeout=lock_timeout,
                              on_line=progress.terraform_line)
        terraform.version()
        aws.preflight_credentials(environment.region)
        summary = terraform.apply_variables({})
        role = required_output(terraform.outputs(), "api_gateway_cloudwatch_role_arn", stack=name,
                               fix=f"run `invoke bootstrap --env {environment.name}` again")
    return AccountBootstrap(name, summary, str(role))
