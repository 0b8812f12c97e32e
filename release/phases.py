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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from release.aws import Routing
from release.config import ConfigError, validate_steps
from release.errors import ReleaseError
from release.kinds import Phase
from release.outputs import StackOutputs
from release.weights import WeightError, check_weight


class PhaseInputError(ReleaseError):
    """A phase argument or state that cannot be applied; one line naming the value and the fix."""


@dataclass(frozen=True)
class PhaseVariables:
    """The two Terraform variables a phase applies."""

    canary_weight: float
    stable_version: str

    def as_terraform(self) -> dict[str, str | float]:
        return {"canary_weight": self.canary_weight, "stable_version": self.stable_version}


def parse_steps(value: str) -> tuple[float, ...]:
    """Rollout steps such as "0.05,0.25,0.5,1": finite, strictly ascending, in (0, 1], ending
    at 1."""
    try:
        steps = tuple(check_weight(part.strip(), f"--steps[{index}]", zero=False)
                      for index, part in enumerate(value.split(",")))
        validate_steps(steps, "--steps")
    except (WeightError, ConfigError) as error:
        raise PhaseInputError(f"{error} (got --steps={value!r}; e.g. "
                              "--steps=0.05,0.25,0.5,1)") from None
    return steps


def routing_for(candidate_version: str, stable_version: str, canary_weight: float) -> Routing:
    """The alias routing the traffic policy module gives for these inputs."""
    if stable_version in ("", candidate_version) or canary_weight >= 1:
        return Routing(candidate_version)
    if canary_weight <= 0:
        return Routing(stable_version)
    return Routing(stable_version, {candidate_version: canary_weight})


def plan_variables(kind: Phase, stack: StackOutputs | None, live: Routing | None,
                   weight: float | None = None) -> PhaseVariables:
    """The variables for one phase, from the stack's outputs (None: nothing deployed yet) and the
    live alias.

    The stable version is what serves traffic now: the live alias's primary (Terraform does not
    roll back a failed apply, so the live alias, not the state, is the truth). A rollback goes
    back to the stable version Terraform last applied with, which after a promotion is the
    version before it.
    """
    current_primary = ""
    if live is not None:
        current_primary = live.primary_version
    elif stack is not None:
        current_primary = stack.routing.primary_version
    if stack is None and kind in (Phase.CANARY, Phase.ROLLOUT_STEP, Phase.PROMOTE):
        # Without this, Terraform's first-deployment row would send the new code 100 % at once.
        raise PhaseInputError(f"{kind} needs a version that already serves traffic, and nothing "
                              "is deployed yet: run `invoke deploy` first")
    if kind == Phase.DEPLOY:
        if live is not None and live.additional_version_weights:
            raise PhaseInputError(
                f"deploy would end the running canary ({live.describe()}): finish it with "
                "`invoke promote` or `invoke rollback` first")
        return PhaseVariables(0.0, current_primary)
    if kind in (Phase.CANARY, Phase.ROLLOUT_STEP):
        if weight is None:
            raise PhaseInputError(f"{kind} needs a weight, e.g. --weight=0.1")
        return PhaseVariables(weight, current_primary)
    if kind == Phase.PROMOTE:
        return PhaseVariables(1.0, current_primary)
    if kind == Phase.ROLLBACK:
        if stack is None or stack.stable_version in ("", stack.candidate_version):
            version = stack.candidate_version if stack else "nothing"
            raise PhaseInputError(
                f"nothing to roll back to: {version} is the only released version "
                "(Terraform's stable_version is empty); deploy a fixed version instead")
        return PhaseVariables(0.0, stack.stable_version)
    raise PhaseInputError(f"{kind} is not a phase that applies variables")


def plan_committed(kind: Phase, committed_phase: Mapping[str, Any], live: Routing | None,
                   weight: float | None = None,
                   stable_version: str | None = None) -> PhaseVariables:
    """The variables for a phase written to the committed phase file instead of applied.

    There are no Terraform outputs to read here (the workspace that applies it keeps the state):
    the stable version comes from `stable_version` (--stable-version), else the live alias; a
    rollback returns to the stable version the committed phase file names.
    """
    if kind == Phase.ROLLBACK:
        stable = str(committed_phase.get("stable_version") or "")
        if not stable:
            raise PhaseInputError("nothing to roll back to: the committed phase has no "
                                  "stable_version (first deployment); deploy a fixed version "
                                  "instead")
        return PhaseVariables(0.0, stable)
    if stable_version is None:
        if live is None:
            raise PhaseInputError("cannot tell the stable version without the live alias: pass "
                                  "--stable-version N (or --stable-version '' for the first "
                                  "deployment)")
        stable_version = live.primary_version
    if stable_version and not stable_version.isdigit():
        raise PhaseInputError(f"--stable-version {stable_version!r} must be a published version "
                              "number such as 3, or '' for the first deployment")
    if kind == Phase.DEPLOY and live is not None and live.additional_version_weights:
        raise PhaseInputError(f"deploy would end the running canary ({live.describe()}): finish it "
                              "with promote or rollback first")
    weights = {Phase.DEPLOY: 0.0, Phase.PROMOTE: 1.0}
    if kind not in (*weights, Phase.CANARY):
        raise PhaseInputError(f"{kind} cannot be committed: use deploy, canary, promote or "
                              "rollback")
    return PhaseVariables(weights.get(kind, weight if weight is not None else 0.0), stable_version)
