"""The stack's Terraform outputs as one typed value, read once per look at the stack (from
`terraform output -json`, or from a Terraform Cloud workspace)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from release.aws import Routing
from release.errors import ReleaseError
from release.weights import check_weight


class MissingOutputError(ReleaseError):
    """The stack's outputs lack one the release needs; the message names it and the fix."""


def required_output(outputs: Mapping[str, Any], name: str, *, stack: str, fix: str) -> Any:
    """`outputs[name]`, or a MissingOutputError naming the output, the stack and `fix`."""
    if name not in outputs:
        raise MissingOutputError(f"the {stack} stack has no `{name}` output (its last apply did "
                                 f"not finish, or another version of it was applied): {fix}")
    return outputs[name]


@dataclass(frozen=True)
class StackOutputs:
    """What an environment's stack says about itself after an apply (see modules/stack.py).

    A new output read here breaks every stack applied before it until its next apply: give it
    a default rather than make it required."""

    function_name: str
    alias_name: str
    api_url: str
    # The version the last apply published: the code under release.
    candidate_version: str
    # The variables the last apply used.
    stable_version: str
    canary_weight: float
    # The alias routing Terraform set.
    routing: Routing
    alarm_names: tuple[str, ...]
    # The SSM parameter of the quarantine (modules/quarantine.py); "" for a stack applied before
    # it existed, until its next apply.
    quarantine_parameter: str = ""

    @classmethod
    def parse(cls, outputs: Mapping[str, Any], environment: str) -> StackOutputs | None:
        """The outputs of `environment`'s stack; None when nothing was deployed yet (no version
        published). A stack that is deployed must have every output."""
        if not outputs.get("candidate_version"):
            return None

        def output(name: str) -> Any:
            return required_output(outputs, name, stack=environment,
                                   fix=f"apply it again with `invoke deploy --env {environment}`")

        return cls(
            function_name=str(output("function_name")),
            alias_name=str(output("alias_name")),
            api_url=str(output("api_url")),
            candidate_version=str(output("candidate_version")),
            stable_version=str(output("stable_version") or ""),
            canary_weight=check_weight(output("canary_weight"), "canary_weight output"),
            routing=Routing(str(output("primary_version")),
                            output("additional_version_weights") or {}),
            alarm_names=tuple(map(str, output("alarm_names"))),
            quarantine_parameter=str(outputs.get("quarantine_parameter") or ""),
        )

    @property
    def candidate_share(self) -> float:
        """The candidate's intended share of traffic under this routing."""
        if self.routing.primary_version == self.candidate_version:
            return 1.0
        return self.routing.additional_version_weights.get(self.candidate_version, 0.0)
