"""The account bootstrap stack (`account-<region>`): what one AWS account needs once per region,
before any environment's first apply, and must outlive every environment.

It holds API Gateway's CloudWatch Logs role (`aws_api_gateway_account`), without which a stage
with access or execution logs fails its first apply. An environment stack must not hold it: in
provider 6.x destroying `aws_api_gateway_account` resets the account setting for every API in
that account and region (terraform-provider-aws PR #42226), so `invoke destroy` of one
environment would break the logging of all others. `invoke bootstrap` applies this stack;
nothing destroys it.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from cdktf import TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.api_gateway_account import ApiGatewayAccount
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from modules.backend import local_state_backend
from release.config import REGION_PATTERN

PUSH_TO_CLOUDWATCH_LOGS = (
    "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs")


@dataclass(frozen=True)
class AccountConfig:
    region: str
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not REGION_PATTERN.fullmatch(self.region):
            raise ValueError(f"region = {self.region!r}: must be an AWS region such as eu-west-1")


class AccountBootstrapStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, config: AccountConfig) -> None:
        super().__init__(scope, id)
        local_state_backend(self, id)
        AwsProvider(self, "aws", region=config.region, default_tags=[AwsProviderDefaultTags(
            tags={**config.tags, "environment": id})])
        role = IamRole(
            self, "api_gateway_logging_role",
            # IAM is global: the region keeps the role of each region's stack apart.
            name=f"api-gateway-cloudwatch-logs-{config.region}",
            description="Lets API Gateway write access and execution logs to CloudWatch Logs "
                        f"in {config.region} (account setting).",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow",
                               "Principal": {"Service": "apigateway.amazonaws.com"},
                               "Action": "sts:AssumeRole"}],
            }),
        )
        policy = IamRolePolicyAttachment(self, "api_gateway_logging_policy", role=role.name,
                                         policy_arn=PUSH_TO_CLOUDWATCH_LOGS)
        ApiGatewayAccount(self, "api_gateway_account", cloudwatch_role_arn=role.arn,
                          depends_on=[policy])
        TerraformOutput(self, "api_gateway_cloudwatch_role_arn", value=role.arn,
                        description="The role API Gateway logs with in this account and region.")
