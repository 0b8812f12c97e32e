"""What every release command works with: the environment, the thing that applies its stack
(`PhaseApplier`), AWS clients, the history, options, progress and the clock.

The commands themselves are functions over a `ReleaseContext`: one phase (release/runner.py), a
rollout with its bakes (release/rollout.py), `invoke status` (release/status.py), the drill
(release/drill.py). Tests build a context with a Terraform double, a fake clock or other options.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from release import aws
from release.aws import LiveAlias
from release.config import EnvironmentConfig
from release.history import ReleaseHistory
from release.outputs import StackOutputs
from release.smoke import check_url
from release.terraform import ChangeSummary


class PhaseApplier(Protocol):
    """What applies an environment's stack: `release.terraform.Terraform` in the local stack
    directory, or `release.remote.RemoteTerraform` through a Terraform Cloud workspace. Every
    expected failure is a `release.errors.ReleaseError`."""

    def version(self) -> str:
        """What applies (e.g. "1.9.8", or the workspace); fails when it cannot run at all."""

    def apply_variables(self, variables: Mapping[str, str | float | int]) -> ChangeSummary:
        """Plan and apply the stack with these variables (a phase)."""

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs as name -> value (empty before the first apply)."""

    def drift(self, variables: Mapping[str, str | float | int]) -> list[str] | None:
        """Resources a plan with these (the last applied) variables would change; None when the
        applier cannot tell without applying."""

    def destroy(self) -> ChangeSummary:
        """Remove every resource of the stack."""


class Progress:
    """Where a command reports what it is doing; the CLI draws it, tests ignore it."""

    def status(self, text: str) -> None:
        """A new step of the phase, e.g. 'applying canary_weight=0.1'."""

    def note(self, text: str) -> None:
        """A line the user keeps (stderr, also without a terminal), e.g. what a fallback did."""

    def terraform_line(self, line: str) -> None:
        """One line of Terraform output, as it arrives."""

    def smoke_progress(self, done: int, total: int) -> None:
        """`done` of `total` smoke requests answered."""


@dataclass(frozen=True)
class RunnerOptions:
    smoke: bool = True
    smoke_requests: int | None = None  # None: sized from the weight (release.stats)
    smoke_concurrency: int = 16
    # The endpoint the smoke check calls; "" means the stack's api_url output. For a custom
    # domain, a private API reached through a tunnel, or a local stand-in.
    smoke_url: str = ""
    routing_timeout: float = 120.0
    routing_interval: float = 1.0
    # How often a bake looks at alarms and per-version metrics.
    bake_poll_seconds: float = 60.0
    # The promotion gate (release/gate.py): who approved (--approved-by), and why it is skipped
    # (--skip-gate; "" checks it). Both are recorded in the history.
    approved_by: str = ""
    skip_gate: str = ""

    def __post_init__(self) -> None:
        if self.smoke_url:  # refused before anything is applied, not by the check after it
            check_url(self.smoke_url)


@dataclass
class AwsClients:
    """boto3 clients for one region, made on first use (importing and building them costs time)."""

    region: str
    _clients: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = aws.client(service, self.region)
        return self._clients[service]


# What a context reports to when nobody watches, and its options unless told otherwise.
NO_PROGRESS = Progress()
DEFAULT_OPTIONS = RunnerOptions()


class ReleaseContext:
    """One environment, ready for release commands (the caller holds its release lock)."""

    def __init__(self, environment: EnvironmentConfig, applier: PhaseApplier, *,
                 clients: AwsClients | None = None, history: ReleaseHistory | None = None,
                 options: RunnerOptions = DEFAULT_OPTIONS, progress: Progress = NO_PROGRESS,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 upstream: EnvironmentConfig | None = None) -> None:
        self.environment = environment
        self.applier = applier
        self.clients = clients or AwsClients(environment.region)
        self.history = history or ReleaseHistory()
        self.options = options
        self.progress = progress
        self.sleep = sleep
        self.clock = clock
        # Wall-clock time, for evidence CloudWatch and Lambda timestamp (the promotion gate).
        self.now = now
        # The environment named by `promotion.after`, whose evidence gates this one's releases.
        self.upstream = upstream

    def with_options(self, **changes: Any) -> ReleaseContext:
        """The same context (stack, clients, history, progress, clock) with other options."""
        return ReleaseContext(self.environment, self.applier, clients=self.clients,
                              history=self.history, options=replace(self.options, **changes),
                              progress=self.progress, sleep=self.sleep, clock=self.clock,
                              now=self.now, upstream=self.upstream)

    def read_stack(self) -> StackOutputs | None:
        """The stack's outputs now; None before the first deployment."""
        return StackOutputs.parse(self.applier.outputs(), self.environment.name)

    def live_alias(self, stack: StackOutputs) -> LiveAlias:
        """The stack's alias as Lambda serves it now."""
        return aws.read_alias(self.clients["lambda"], stack.function_name, stack.alias_name)

    def preflight_account(self) -> None:
        """The AWS account can take this environment's stack (see aws.preflight_account)."""
        environment = self.environment
        aws.preflight_account(self.clients["apigateway"], self.clients["lambda"],
                              environment_name=environment.name,
                              function_name=environment.function_name,
                              logging=environment.api.logging,
                              reserved_concurrency=environment.function.reserved_concurrency)
