"""Rollback that needs nobody: the release alarms notify an SNS topic, and a small function
subscribed to it takes the canary's weight off the alias (functions/rollback).

It works the same whichever way the phase was applied (invoke, `cdktf deploy`, a Terraform Cloud
run), because the wiring is part of the stack. The function may read and update the released
function's aliases (it touches only the `production` alias) and the stack's quarantine parameter,
where it records the version it took traffic from, and nothing else; deliveries it cannot handle
are retried by Lambda, then kept in a dead-letter queue instead of vanishing.
"""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.lambda_function_event_invoke_config import (
    LambdaFunctionEventInvokeConfig,
    LambdaFunctionEventInvokeConfigDestinationConfig,
    LambdaFunctionEventInvokeConfigDestinationConfigOnFailure,
)
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription
from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from modules.function import FunctionConfig, PackagedFunction
from release.config import FunctionSettings, quarantine_parameter_name

# Lambda retries a failed asynchronous invocation at most twice; then the event goes to the
# dead-letter queue, where it stays for SQS's maximum of 14 days.
RETRY_ATTEMPTS = 2
MAX_EVENT_AGE_SECONDS = 3600
DLQ_RETENTION_SECONDS = 14 * 24 * 3600


@dataclass(frozen=True)
class AutoRollbackConfig:
    function_name: str       # the released function's name
    alias_name: str
    # Token: the released function's UNQUALIFIED ARN. Lambda authorizes GetAlias and UpdateAlias
    # on the function resource ("Actions, resources, and condition keys for AWS Lambda"); an
    # alias ARN in the policy never matches them. Which alias it changes is the function's own
    # guard (ALIAS_NAME).
    function_arn: str
    # Token: the stack's quarantine parameter (modules/quarantine.py); after a rollback the
    # function records there the version it took traffic from.
    quarantine_parameter_arn: str
    alarm_names: tuple[str, ...]  # the alarms it acts on
    log_retention_days: int

    def __post_init__(self) -> None:
        if not self.alarm_names:
            raise ValueError("alarm_names = (): name at least one alarm that triggers the rollback")


def rollback_function_name(function_name: str) -> str:
    """`<function>-rollback`, shortened so that it fits Lambda's 64 characters."""
    suffix = "-rollback"
    return function_name[:64 - len(suffix)] + suffix


class AutoRollback(Construct):
    def __init__(self, scope: Construct, id: str, config: AutoRollbackConfig) -> None:
        super().__init__(scope, id)
        name = rollback_function_name(config.function_name)
        # Unencrypted on purpose: CloudWatch alarms cannot publish to a topic that uses the AWS
        # managed SNS key, and the messages hold alarm metadata only (see .checkov.yaml).
        self.topic = SnsTopic(self, "topic", name=f"{name}-alarms")
        self.dead_letters = SqsQueue(
            self, "dead_letters",
            name=f"{name}-dlq",
            message_retention_seconds=DLQ_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
        )
        self.handler = PackagedFunction(self, "function", FunctionConfig(
            function_name=name,
            settings=FunctionSettings(source="rollback", memory_mb=128, timeout_seconds=60,
                                      log_retention_days=config.log_retention_days),
            description=(f"Takes the canary weight off {config.function_name}:{config.alias_name} "
                         "when a release alarm fires."),
            variables={
                "FUNCTION_NAME": config.function_name,
                "ALIAS_NAME": config.alias_name,
                "ALARM_NAMES": ",".join(config.alarm_names),
                "QUARANTINE_PARAMETER": quarantine_parameter_name(config.function_name),
            },
            publish=False,
            extra_statements=(
                {"Sid": "RollBackTheReleasedFunction", "Effect": "Allow",
                 "Action": ["lambda:GetAlias", "lambda:UpdateAlias"],
                 "Resource": config.function_arn},
                {"Sid": "QuarantineTheRolledBackVersion", "Effect": "Allow",
                 "Action": ["ssm:GetParameter", "ssm:PutParameter"],
                 "Resource": config.quarantine_parameter_arn},
                {"Sid": "KeepUndeliveredAlarms", "Effect": "Allow",
                 "Action": ["sqs:SendMessage"],
                 "Resource": self.dead_letters.arn},
            ),
        )).function
        LambdaFunctionEventInvokeConfig(
            self, "retries",
            function_name=self.handler.function_name,
            maximum_retry_attempts=RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config=LambdaFunctionEventInvokeConfigDestinationConfig(
                on_failure=LambdaFunctionEventInvokeConfigDestinationConfigOnFailure(
                    destination=self.dead_letters.arn)),
        )
        self.permission = LambdaPermission(
            self, "permission",
            statement_id="AllowReleaseAlarmTopic",
            action="lambda:InvokeFunction",
            principal="sns.amazonaws.com",
            function_name=self.handler.function_name,
            source_arn=self.topic.arn,
        )
        self.subscription = SnsTopicSubscription(
            self, "subscription",
            topic_arn=self.topic.arn,
            protocol="lambda",
            endpoint=self.handler.arn,
            depends_on=[self.permission],
        )
