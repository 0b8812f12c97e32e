"""Remote phases: the stack applied by runs of a Terraform Cloud (or Enterprise) workspace, so
`invoke canary --remote` checks and rolls back exactly like a local run.

The workspace is the environment's `cloud` backend in environments.toml. A phase sets the
workspace variables `canary_weight` and `stable_version` (they stay there: the next run, whoever
starts it, applies the same phase), starts a run and follows it to its end; the run plans and
applies in one go.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from release.config import EnvironmentConfig
from release.errors import ReleaseError
from release.terraform import ChangeSummary
from release.tfc import TfcClient


class RemoteSetupError(ReleaseError):
    """The environment cannot run remotely as configured."""


class RemoteTerraform:
    """The environment's stack as applied by its Terraform Cloud workspace (a
    `release.context.PhaseApplier`, like the local `release.terraform.Terraform`)."""

    def __init__(self, environment: EnvironmentConfig, client: TfcClient, *,
                 on_line: Callable[[str], None] = lambda line: None) -> None:
        backend = environment.backend
        if backend.type != "cloud":
            raise RemoteSetupError(
                f"--remote needs a Terraform Cloud workspace: set [environments.{environment.name}."
                f"backend] type = \"cloud\" with organization and workspace in environments.toml")
        self.environment = environment
        self.client = client
        self.on_line = on_line
        self.workspace = client.workspace(backend.organization, backend.workspace)

    def version(self) -> str:
        organization = self.environment.backend.organization
        return f"Terraform Cloud workspace {organization}/{self.workspace.name}"

    def apply_variables(self, variables: Mapping[str, Any]) -> ChangeSummary:
        """A phase: set the workspace variables, then one run that plans and applies them,
        followed to its end."""
        self.client.set_variables(self.workspace.id, variables)
        phase = ", ".join(f"{name}={value}" for name, value in variables.items())
        run_id = self.client.create_run(self.workspace.id, f"invoke release phase: {phase}")
        self.on_line(f"run {run_id} queued in {self.workspace.name}")
        result = self.client.follow_run(run_id, on_status=lambda status: self.on_line(
            f"run {run_id}: {status}"))
        return result.summary

    def drift(self, variables: Mapping[str, Any]) -> None:
        """Not checked remotely: a speculative plan in the workspace would queue behind runs.
        None tells `invoke status` so."""
        return None

    def outputs(self) -> dict[str, Any]:
        return self.client.outputs(self.workspace.id)

    def destroy(self) -> ChangeSummary:
        raise RemoteSetupError("destroy is not run remotely: queue a destroy run in the "
                               "workspace's settings, where it asks for confirmation")
