"""One environment's whole safe-release stack: function, alias, API, alarms and the phase inputs."""

from cdktf import TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from modules.alarms import AlarmsConfig, ReleaseAlarms
from modules.alias import AliasConfig, ProductionAlias
from modules.api import ApiConfig, RestApiFrontDoor
from modules.backend import configure_backend
from modules.function import FunctionConfig, ReleasedFunction
from modules.phase_variables import PhaseVariables
from modules.traffic_policy import TrafficPolicy, TrafficPolicyConfig
from release.config import ALIAS_NAME, EnvironmentConfig


class SafeReleaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, config: EnvironmentConfig) -> None:
        super().__init__(scope, id)
        configure_backend(self, config)
        AwsProvider(self, "aws", region=config.region, default_tags=[AwsProviderDefaultTags(
            tags={**config.tags, "environment": config.name})])

        phase = PhaseVariables(self, "phase_variables")
        function = ReleasedFunction(self, "function", FunctionConfig(
            function_name=config.function_name,
            environment_name=config.name,
            settings=config.function,
        ))
        policy = TrafficPolicy(self, "traffic_policy", TrafficPolicyConfig(
            candidate_version=function.function.version,
            stable_version=phase.stable_version.string_value,
            canary_weight=phase.canary_weight.number_value,
        ))
        alias = ProductionAlias(self, "alias", AliasConfig(
            function_name=function.function.function_name,
            primary_version=policy.primary_version,
            additional_version_weights=policy.additional_version_weights,
        )).alias
        api = RestApiFrontDoor(self, "api", ApiConfig(
            api_name=config.function_name,
            settings=config.api,
            function_name=function.function.function_name,
            alias_name=alias.name,
            alias_invoke_arn=alias.invoke_arn,
            log_retention_days=config.function.log_retention_days,
            manage_account_logging_role=config.api.manage_account_logging_role,
        ))
        alarms = ReleaseAlarms(self, "alarms", AlarmsConfig(
            function_name=config.function_name,
            alias_name=ALIAS_NAME,
            candidate_version=function.function.version,
            api_name=config.function_name,
            stage_name=config.api.stage_name,
            thresholds=config.alarms,
        ))

        outputs = {
            "api_url": (api.url, "URL of GET /<path> on the API stage; what the smoke check calls."),
            "function_name": (function.function.function_name, "Name of the released Lambda function."),
            "alias_name": (alias.name, "Name of the alias API Gateway invokes."),
            "alias_arn": (alias.arn, "ARN of the production alias."),
            "candidate_version": (function.function.version,
                                  "Version published by this apply: the code under release."),
            "primary_version": (alias.function_version,
                                "Version the alias points at (takes 1 - canary weight)."),
            "additional_version_weights": (policy.additional_version_weights,
                                           "Alias routing weights: {candidate = weight} during a canary, else empty."),
            "phase": (policy.phase, "Routing table row: candidate-only, stable-only, canary or promoted."),
            "canary_weight": (phase.canary_weight.number_value, "The canary_weight this apply used."),
            "stable_version": (phase.stable_version.string_value, "The stable_version this apply used."),
            "alarm_names": ([alarm.alarm_name for alarm in alarms.all],
                            "Names of the CloudWatch alarms that judge a release."),
            "region": (config.region, "AWS region of the stack."),
        }
        for name, (value, description) in outputs.items():
            TerraformOutput(self, name, value=value, description=description)
