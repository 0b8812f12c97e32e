"""The stack inputs a release changes: every phase is an apply with new values.

`canary_weight` and `stable_version` decide the alias routing; `fault_rate` ships the next
version with injected failures, for rollback drills. Values come from `-var`,
`*.auto.tfvars.json` or a Terraform Cloud workspace; Terraform itself validates them.
"""

import math
from dataclasses import dataclass

from cdktf import TerraformVariable, TerraformVariableValidationConfig
from constructs import Construct


@dataclass(frozen=True)
class PhaseVariablesConfig:
    # The environment's standing FAULT_RATE (environments.toml function.fault_rate, normally 0).
    default_fault_rate: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.default_fault_rate) and 0 <= self.default_fault_rate <= 1):
            raise ValueError(
                f"default_fault_rate = {self.default_fault_rate!r}: must be from 0 to 1")


class PhaseVariables(Construct):
    def __init__(self, scope: Construct, id: str, config: PhaseVariablesConfig) -> None:
        super().__init__(scope, id)
        self.canary_weight = TerraformVariable(
            self, "canary_weight",
            type="number",
            default=0,
            description=("Share of requests (0 to 1) for the version this apply publishes, while a "
                         "stable version exists: 0 keeps or restores the stable version, 1 is the "
                         "blue-green switch to the new version."),
            validation=[TerraformVariableValidationConfig(
                condition="${var.canary_weight >= 0 && var.canary_weight <= 1}",
                error_message=("The canary_weight must be a number from 0 to 1, for example 0.1 "
                               "for 10 percent of requests."),
            )],
        )
        self.stable_version = TerraformVariable(
            self, "stable_version",
            type="string",
            default="",
            description=("The published Lambda version that serves traffic before this release; "
                         "\"\" on the first deployment, when nothing is stable yet."),
            validation=[TerraformVariableValidationConfig(
                condition="${can(regex(\"^[0-9]*$\", var.stable_version))}",
                error_message=("The stable_version must be empty (first deployment) or a published "
                               "Lambda version number such as \"3\"."),
            )],
        )
        self.fault_rate = TerraformVariable(
            self, "fault_rate",
            type="number",
            default=config.default_fault_rate,
            description=("Share of requests (0 to 1) the version this apply publishes fails on "
                         "purpose, for rollback drills; changing it publishes a new version."),
            validation=[TerraformVariableValidationConfig(
                condition="${var.fault_rate >= 0 && var.fault_rate <= 1}",
                error_message=("The fault_rate must be a number from 0 to 1, "
                               "for example 0.5 in a drill."),
            )],
        )
        # Plain names: they are what `-var`, tfvars files and workspace variables set.
        for variable in (self.canary_weight, self.stable_version, self.fault_rate):
            variable.override_logical_id(variable.node.id)
