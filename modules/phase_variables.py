"""The two stack inputs a rollout phase changes: every phase is an apply with new values."""

from constructs import Construct
from cdktf import TerraformVariable, TerraformVariableValidationConfig


class PhaseVariables(Construct):
    """`canary_weight` and `stable_version`, validated by Terraform itself.

    Takes no config: the variables are the same in every environment; their values come from
    `-var`, `*.auto.tfvars.json` or a Terraform Cloud workspace.
    """

    def __init__(self, scope: Construct, id: str) -> None:
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
        # Plain names: they are what `-var`, tfvars files and workspace variables set.
        for variable in (self.canary_weight, self.stable_version):
            variable.override_logical_id(variable.node.id)
