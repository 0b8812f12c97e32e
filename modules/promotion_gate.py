"""The plan-time half of the promotion gate (release/gate.py is the invoke half): what the
`promotion.after` environment's `production` alias serves, read through data sources at plan
time, so that every plan of this stack (invoke, `cdktf deploy`, a Terraform Cloud VCS run with no
Python) compares it with the code it would release.

- `aws_lambda_functions` lists the region's functions without failing when the `after`
  environment is not deployed (then it "serves nothing", which refuses new code traffic but not
  a deploy at weight 0 nor a rollback);
- `aws_lambda_alias` gives the version its alias points at (its primary; weights are not
  readable from Terraform, invoke checks them), `aws_lambda_function` with that qualifier the
  version's pins: `code_sha256` (base64 SHA-256 of the zip, the same value as this stack's
  `source_code_hash`) and its SHARED_SETTINGS_SHA256 environment variable (the fingerprint of
  [defaults.settings] it was published with; "" for a version from before it existed).

They read with this stack's AWS provider: the same account and region. For an `after`
environment elsewhere, `promotion.plan_check = false` leaves this construct out (invoke checks).
"""

from dataclasses import dataclass

from cdktf import Fn, TerraformVariable, Token
from cdktf_cdktf_provider_aws.data_aws_lambda_alias import DataAwsLambdaAlias
from cdktf_cdktf_provider_aws.data_aws_lambda_function import DataAwsLambdaFunction
from cdktf_cdktf_provider_aws.data_aws_lambda_functions import DataAwsLambdaFunctions
from constructs import Construct

from release.config import PROMOTION_OVERRIDE_VARIABLE, SHARED_SETTINGS_VARIABLE


@dataclass(frozen=True)
class PromotionGateConfig:
    after_environment: str     # the environment that releases first (promotion.after)
    after_function_name: str   # its released function
    alias_name: str            # the alias both environments serve through

    def __post_init__(self) -> None:
        if not (self.after_environment and self.after_function_name and self.alias_name):
            raise ValueError(f"{self!r}: the gate needs the after environment, its function and "
                             "the alias name")


class PromotionGate(Construct):
    def __init__(self, scope: Construct, id: str, config: PromotionGateConfig) -> None:
        super().__init__(scope, id)
        self.after_environment = config.after_environment
        self.override = TerraformVariable(
            self, PROMOTION_OVERRIDE_VARIABLE,
            type="string",
            default="",
            description=(f"Why the promotion gate (this release must be what "
                         f"{config.after_environment} serves) is skipped on purpose, e.g. "
                         "\"hotfix INC-42\"; \"\" checks it. invoke --skip-gate REASON sets it "
                         "and records it in the history."),
        )
        # The plain name `-var`, tfvars files and workspace variables set.
        self.override.override_logical_id(PROMOTION_OVERRIDE_VARIABLE)
        listing = DataAwsLambdaFunctions(self, "functions")
        deployed = Fn.contains(listing.function_names, config.after_function_name)
        alias = DataAwsLambdaAlias(self, "alias", function_name=config.after_function_name,
                                   name=config.alias_name)
        alias.add_override("count", Fn.conditional(deployed, 1, 0))
        # "" when the after environment serves nothing.
        self.after_version: str = Token.as_string(f'${{join("", {alias.fqn}[*].function_version)}}')
        version = DataAwsLambdaFunction(self, "version",
                                        function_name=config.after_function_name,
                                        qualifier=self.after_version)
        version.add_override("count", Fn.conditional(deployed, 1, 0))
        # What after's version releases, by the pin names of release/gate.py `release_pins`;
        # "" each when it serves nothing.
        self.after_pins: dict[str, str] = {
            "code": Token.as_string(f'${{join("", {version.fqn}[*].code_sha256)}}'),
            "shared_settings": Token.as_string(
                f'${{join("", [for v in {version.fqn} : lookup(try(v.environment[0].variables, '
                f'{{}}), "{SHARED_SETTINGS_VARIABLE}", "")])}}'),
        }
