"""Remote phases: the Terraform runner's plan/apply/outputs as runs of a Terraform Cloud (or
Enterprise) workspace, so `invoke canary --remote` checks and rolls back exactly like a local run.

The workspace is the environment's `cloud` backend in environments.toml. A phase sets the
workspace variables `canary_weight` and `stable_version` (they stay there: the next run, whoever
starts it, applies the same phase), starts a run and follows it to its end; the run plans and
applies in one go, so `apply()` has nothing left to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from release.config import EnvironmentConfig
from release.terraform import ChangeSummary
from release.tfc import TfcClient, TfcError


class RemoteSetupError(TfcError):
    """The environment cannot run remotely as configured."""


@dataclass(frozen=True)
class RemotePlan:
    run_id: str
    url: str
    has_changes: bool
    summary: ChangeSummary


class RemoteTerraform:
    """What ReleaseRunner needs of Terraform (`plan`, `apply`, `outputs`), done by a workspace."""

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
        return f"Terraform Cloud workspace {self.environment.backend.organization}/{self.workspace.name}"

    def plan(self, variables: Mapping[str, Any], *, destroy: bool = False) -> RemotePlan:
        if destroy:
            raise RemoteSetupError("destroy is not run remotely: queue a destroy run in the "
                                   "workspace's settings, where it asks for confirmation")
        self.client.set_variables(self.workspace.id, variables)
        phase = ", ".join(f"{name}={value}" for name, value in variables.items())
        run_id = self.client.create_run(self.workspace.id, f"invoke release phase: {phase}")
        self.on_line(f"run {run_id} queued in {self.workspace.name}")
        result = self.client.follow_run(run_id, on_status=lambda status: self.on_line(
            f"run {run_id}: {status}"))
        summary = result.summary
        return RemotePlan(run_id=run_id, url=result.url,
                          has_changes=bool(summary.add or summary.change or summary.destroy),
                          summary=summary)

    def apply(self, plan: RemotePlan) -> None:
        """Nothing to do: the run `plan()` followed has applied already."""

    def apply_variables(self, variables: Mapping[str, Any]) -> ChangeSummary:
        """A phase: one run that plans and applies (see `plan()`)."""
        return self.plan(variables).summary

    def drift(self, variables: Mapping[str, Any]) -> None:
        """Not checked remotely: a speculative plan in the workspace would queue behind runs.
        None tells `invoke status` so."""
        return None

    def outputs(self) -> dict[str, Any]:
        return self.client.outputs(self.workspace.id)
