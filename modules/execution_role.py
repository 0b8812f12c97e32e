"""A function's execution role: trusted by Lambda only, allowed to write its own logs, X-Ray
segments when tracing is on, and only the extra statements its config names."""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from constructs import Construct

IAM_NAME_LIMIT = 64


@dataclass(frozen=True)
class ExecutionRoleConfig:
    role_name: str
    log_group_arn: str  # token: the function's log group
    tracing: bool
    extra_statements: tuple[Mapping[str, object], ...] = ()

    def __post_init__(self) -> None:
        if not 1 <= len(self.role_name) <= IAM_NAME_LIMIT:
            raise ValueError(
                f"role_name = {self.role_name!r}: must be 1-{IAM_NAME_LIMIT} characters")


def role_name_for(function_name: str) -> str:
    """`<function>-exec`, shortened so that it fits IAM's 64 characters."""
    suffix = "-exec"
    return function_name[:IAM_NAME_LIMIT - len(suffix)] + suffix


class ExecutionRole(Construct):
    def __init__(self, scope: Construct, id: str, config: ExecutionRoleConfig) -> None:
        super().__init__(scope, id)
        self.role = IamRole(
            self, "role",
            name=config.role_name,
            description="Execution role of the released Lambda function (least privilege).",
            assume_role_policy=json.dumps({
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "lambda.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                }],
            }),
        )
        statements: list[Mapping[str, object]] = [{
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": f"{config.log_group_arn}:*",
        }]
        if config.tracing:
            # X-Ray's write actions support no resource-level permissions: "*" is the only choice.
            statements.append({
                "Sid": "WriteTraces",
                "Effect": "Allow",
                "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
                "Resource": "*",
            })
        statements += config.extra_statements
        self.policy = IamRolePolicy(
            self, "policy",
            name="least-privilege",
            role=self.role.id,
            policy=json.dumps({"Version": "2012-10-17", "Statement": statements}),
        )
