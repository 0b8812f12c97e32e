"""The quarantine record: versions a rollback took traffic from, kept in AWS where every plan
reads it, so no path (invoke, `cdktf deploy`, a Terraform Cloud VCS run) gives them traffic again
without someone lifting it on purpose.

The stack creates the SSM parameter with "{}" and then never writes it again (`ignore_changes`):
the alarm rollback function and `invoke rollback --fast` add to it, `invoke release-quarantine`
takes a version out. Plans read it through data sources, which Terraform reads at plan time:
- `aws_ssm_parameters_by_path` lists the parameter without failing when it does not exist yet
  (the first deployment), which also tells whether the stack was applied before;
- `aws_ssm_parameter` (only when it exists) gives its value as `insecure_value`, which Terraform
  does not mark sensitive, so the refusal can name the version and its rollback.

The parameter's existence also tells that the stack was deployed before (it is created after the
alias), and then `aws_lambda_alias` gives the version the alias serves: an empty stable_version
stands for it, so that new code never takes 100 % at once after the first deployment (e.g. a VCS
run of a phase file still at its first value).
"""

from dataclasses import dataclass

from cdktf import Fn, TerraformResource, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.data_aws_lambda_alias import DataAwsLambdaAlias
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.data_aws_ssm_parameters_by_path import DataAwsSsmParametersByPath
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from release.config import quarantine_parameter_name


@dataclass(frozen=True)
class QuarantineConfig:
    function_name: str  # the released function; the parameter lives under /<function>/release/
    alias_name: str     # the alias whose serving version an empty stable_version stands for

    def __post_init__(self) -> None:
        if not self.function_name:
            raise ValueError("function_name = '': the quarantine parameter is named after the "
                             "released function")
        if not self.alias_name:
            raise ValueError("alias_name = '': name the alias that serves the released function")


class ReleaseQuarantine(Construct):
    def __init__(self, scope: Construct, id: str, config: QuarantineConfig) -> None:
        super().__init__(scope, id)
        name = quarantine_parameter_name(config.function_name)
        self.parameter = SsmParameter(
            self, "parameter",
            name=name,
            type="String",
            insecure_value="{}",
            description=("Versions of " + config.function_name + " a rollback took traffic from "
                         "(JSON {version: {reason, at}}); plans refuse to give them traffic."),
            # Written by the rollback paths, not by Terraform: an apply must never reset it.
            lifecycle=TerraformResourceLifecycle(ignore_changes=["insecure_value"]),
        )
        self.listing = DataAwsSsmParametersByPath(
            self, "listing", path=name.rsplit("/", 1)[0], with_decryption=False)
        exists = Fn.contains(self.listing.names, name)
        current = DataAwsSsmParameter(self, "current", name=name, with_decryption=False)
        current.add_override("count", Fn.conditional(exists, 1, 0))
        # "" before the first apply (no parameter yet); the traffic policy reads "" as no entries.
        self.versions_json: str = Token.as_string(
            f'${{join("", {current.fqn}[*].insecure_value)}}')
        serving = DataAwsLambdaAlias(self, "serving", function_name=config.function_name,
                                     name=config.alias_name)
        serving.add_override("count", Fn.conditional(exists, 1, 0))
        # "" before the first deployment.
        self.serving_version: str = Token.as_string(
            f'${{join("", {serving.fqn}[*].function_version)}}')

    def created_after(self, alias: TerraformResource) -> None:
        """Create the parameter only once the alias exists: its existence then means that the
        alias can be read, even after a first apply that failed half-way."""
        # A plain address: depends_on takes references, not interpolations.
        self.parameter.add_override(
            "depends_on", [f"{alias.terraform_resource_type}.{alias.friendly_unique_id}"])
