"""Phase planning: which Terraform variables each release command applies, and what to expect.

Pure functions over Terraform outputs and the live alias; no I/O. The stack's traffic policy
module (`modules/traffic_policy`) turns the two variables into the alias routing:

| stable_version     | canary_weight | alias primary | additional_version_weights |
|--------------------|---------------|---------------|----------------------------|
| "" or == candidate | any           | candidate     | {}                         |
| N                  | 0             | N             | {}                         |
| N                  | 0 < w < 1     | N             | {candidate: w}             |
| N                  | 1             | candidate     | {}                         |

`routing_for` is the same table in Python, used to say what a phase will do before it runs; a
test holds it to the Terraform module row by row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from release.aws import Routing
from release.config import ConfigError, validate_steps

PHASE_KINDS = ("deploy", "canary", "promote", "rollback", "rollout-step")


class PhaseInputError(ValueError):
    """A phase argument or state that cannot be applied; one line naming the value and the fix."""


@dataclass(frozen=True)
class PhaseVariables:
    """The two Terraform variables a phase applies."""

    canary_weight: float
    stable_version: str

    def as_terraform(self) -> dict[str, Any]:
        return {"canary_weight": self.canary_weight, "stable_version": self.stable_version}


def parse_weight(value: object, name: str = "--weight") -> float:
    """A canary weight from the command line: a finite number from 0 to 1."""
    try:
        weight = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        weight = math.nan
    if not (math.isfinite(weight) and 0 <= weight <= 1):
        raise PhaseInputError(f"{name} {value!r} is not a share of traffic: pass a number from 0 "
                              "to 1, e.g. --weight=0.1 for 10 % on the new version")
    return weight


def parse_steps(value: str) -> tuple[float, ...]:
    """Rollout steps such as "0.05,0.25,0.5,1": finite, strictly ascending, in (0, 1], ending at 1."""
    try:
        steps = tuple(parse_weight(part.strip(), "--steps entry") for part in value.split(","))
        validate_steps(steps, "--steps")
    except (PhaseInputError, ConfigError) as error:
        raise PhaseInputError(f"{error} (got --steps={value!r}; e.g. --steps=0.05,0.25,0.5,1)") from None
    return steps


def routing_for(candidate_version: str, stable_version: str, canary_weight: float) -> Routing:
    """The alias routing the traffic policy module gives for these inputs."""
    if stable_version in ("", candidate_version) or canary_weight >= 1:
        return Routing(candidate_version)
    if canary_weight <= 0:
        return Routing(stable_version)
    return Routing(stable_version, {candidate_version: canary_weight})


@dataclass(frozen=True)
class StackState:
    """What `terraform output -json` says about the stack (empty before the first apply)."""

    outputs: Mapping[str, Any]

    @property
    def deployed(self) -> bool:
        return bool(self.outputs.get("candidate_version"))

    @property
    def candidate_version(self) -> str:
        return str(self.outputs.get("candidate_version") or "")

    @property
    def stable_version(self) -> str:
        return str(self.outputs.get("stable_version") or "")

    @property
    def routing(self) -> Routing | None:
        if not self.deployed:
            return None
        return Routing(str(self.outputs["primary_version"]),
                       self.outputs.get("additional_version_weights") or {})

    @property
    def candidate_share(self) -> float:
        """The candidate's intended share of traffic under this state's routing."""
        routing = self.routing
        if routing is None:
            return 0.0
        if routing.primary_version == self.candidate_version:
            return 1.0
        return routing.additional_version_weights.get(self.candidate_version, 0.0)

    def __getitem__(self, name: str) -> Any:
        return self.outputs[name]


def plan_variables(kind: str, state: StackState, live: Routing | None,
                   weight: float | None = None) -> PhaseVariables:
    """The variables for one phase, from the stack's outputs and the live alias.

    The stable version is what serves traffic now: the live alias's primary (Terraform does not
    roll back a failed apply, so the live alias, not the state, is the truth). A rollback goes
    back to the stable version Terraform last applied with, which after a promotion is the
    version before it.
    """
    current_primary = ""
    if state.deployed:
        current_primary = (live or state.routing).primary_version
    elif kind in ("canary", "rollout-step", "promote"):
        # Without this, Terraform's first-deployment row would send the new code 100 % at once.
        raise PhaseInputError(f"{kind} needs a version that already serves traffic, and nothing "
                              "is deployed yet: run `invoke deploy` first")
    if kind == "deploy":
        if live is not None and live.additional_version_weights:
            raise PhaseInputError(
                f"deploy would end the running canary ({live.describe()}): finish it with "
                "`invoke promote` or `invoke rollback` first")
        return PhaseVariables(0.0, current_primary)
    if kind in ("canary", "rollout-step"):
        if weight is None:
            raise PhaseInputError(f"{kind} needs a weight, e.g. --weight=0.1")
        return PhaseVariables(weight, current_primary)
    if kind == "promote":
        return PhaseVariables(1.0, current_primary)
    if kind == "rollback":
        stable = state.stable_version
        if not state.deployed or stable in ("", state.candidate_version):
            version = state.candidate_version or "nothing"
            raise PhaseInputError(
                f"nothing to roll back to: {version} is the only released version "
                "(Terraform's stable_version is empty); deploy a fixed version instead")
        return PhaseVariables(0.0, stable)
    raise PhaseInputError(f"unknown phase {kind!r}: one of {', '.join(PHASE_KINDS)}")


def plan_committed(kind: str, committed_phase: Mapping[str, Any], live: Routing | None,
                   weight: float | None = None, stable_version: str | None = None) -> PhaseVariables:
    """The variables for a phase written to the committed phase file instead of applied.

    There are no Terraform outputs to read here (the workspace that applies it keeps the state):
    the stable version comes from `stable_version` (--stable-version), else the live alias; a
    rollback returns to the stable version the committed phase file names.
    """
    if kind == "rollback":
        stable = str(committed_phase.get("stable_version") or "")
        if not stable:
            raise PhaseInputError("nothing to roll back to: the committed phase has no "
                                  "stable_version (first deployment); deploy a fixed version instead")
        return PhaseVariables(0.0, stable)
    if stable_version is None:
        if live is None:
            raise PhaseInputError("cannot tell the stable version without the live alias: pass "
                                  "--stable-version N (or --stable-version '' for the first deployment)")
        stable_version = live.primary_version
    if stable_version and not stable_version.isdigit():
        raise PhaseInputError(f"--stable-version {stable_version!r} must be a published version "
                              "number such as 3, or '' for the first deployment")
    if kind == "deploy" and live is not None and live.additional_version_weights:
        raise PhaseInputError(f"deploy would end the running canary ({live.describe()}): finish it "
                              "with promote or rollback first")
    weights = {"deploy": 0.0, "promote": 1.0}
    if kind not in (*weights, "canary"):
        raise PhaseInputError(f"{kind} cannot be committed: use deploy, canary, promote or rollback")
    return PhaseVariables(weights.get(kind, weight if weight is not None else 0.0), stable_version)
