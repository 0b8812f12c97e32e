"""One environment's whole safe-release stack: function, alias, API, alarms and the phase inputs."""

from typing import Any

from cdktf import TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.provider import AwsProvider, AwsProviderDefaultTags
from constructs import Construct

from modules.alarms import ROLLBACK_TRIGGERS, AlarmsConfig, ReleaseAlarms, alarm_name
from modules.alias import AliasConfig, ProductionAlias
from modules.api import ApiConfig, RestApiFrontDoor
from modules.auto_rollback import AutoRollback, AutoRollbackConfig
from modules.backend import configure_backend
from modules.dashboard import DashboardConfig, ReleaseDashboard
from modules.function import FunctionConfig, PackagedFunction
from modules.phase_variables import PhaseVariables, PhaseVariablesConfig
from modules.promotion_gate import PromotionGate, PromotionGateConfig
from modules.quarantine import QuarantineConfig, ReleaseQuarantine
from modules.settings import ReleaseSettings, SettingsConfig
from modules.traffic_policy import TrafficPolicy, TrafficPolicyConfig
from release.config import (
    ALIAS_NAME,
    SHARED_SETTINGS_VARIABLE,
    EnvironmentConfig,
    settings_json,
    settings_sha256,
)


def promotion_gate(stack: TerraformStack, config: EnvironmentConfig,
                   after: EnvironmentConfig | None, release_pins: dict[str, str]) -> dict[str, Any]:
    """The traffic policy's promotion gate inputs (none without a plan-time gate): the pins of
    what the plan releases (`release_pins`) and of what `after` serves, by the same names."""
    if config.promotion is None or not config.promotion.plan_check:
        return {}
    if after is None or after.name != config.promotion.after:
        raise ValueError(f"{config.name}.promotion.after = {config.promotion.after!r}: pass that "
                         "environment's config as `after`")
    gate = PromotionGate(stack, "promotion_gate", PromotionGateConfig(
        after_environment=after.name, after_function_name=after.function_name,
        alias_name=ALIAS_NAME))
    return {"promotion_after": after.name, "after_version": gate.after_version,
            "release_pins": release_pins,
            "after_pins": gate.after_pins,
            "promotion_gate_override": gate.override.string_value}


class SafeReleaseStack(TerraformStack):
    def __init__(self, scope: Construct, id: str, config: EnvironmentConfig,
                 after: EnvironmentConfig | None = None) -> None:
        """`after`: the environment named by `config.promotion.after` (its promotion gate)."""
        super().__init__(scope, id)
        configure_backend(self, config)
        AwsProvider(self, "aws", region=config.region, default_tags=[AwsProviderDefaultTags(
            tags={**config.tags, "environment": config.name})])

        phase = PhaseVariables(self, "phase_variables", PhaseVariablesConfig(
            default_fault_rate=config.function.fault_rate))
        settings = ReleaseSettings(self, "settings", SettingsConfig(
            function_name=config.function_name,
            settings_json=settings_json(config.settings),
            secrets=config.secrets,
        ))
        function = PackagedFunction(self, "function", FunctionConfig(
            function_name=config.function_name,
            settings=config.function,
            description=f"Released with canary and blue-green phases ({config.name}).",
            variables={"DEPLOY_ENVIRONMENT": config.name,
                       "FAULT_RATE": phase.fault_rate.string_value,
                       # What the promotion gate compares besides the code (release/gate.py).
                       SHARED_SETTINGS_VARIABLE: settings_sha256(config.shared_settings),
                       **settings.variables},
            extra_statements=settings.statements(),
        ))
        quarantine = ReleaseQuarantine(self, "quarantine", QuarantineConfig(
            function_name=config.function_name, alias_name=ALIAS_NAME))
        gate = promotion_gate(self, config, after, {
            "code": function.function.source_code_hash,
            "shared_settings": settings_sha256(config.shared_settings)})
        policy = TrafficPolicy(self, "traffic_policy", TrafficPolicyConfig(
            candidate_version=function.function.version,
            stable_version=phase.stable_version.string_value,
            canary_weight=phase.canary_weight.number_value,
            environment=config.name,
            quarantined_versions_json=quarantine.versions_json,
            serving_version=quarantine.serving_version,
            **gate,
        ))
        alias = ProductionAlias(self, "alias", AliasConfig(
            function_name=function.function.function_name,
            primary_version=policy.primary_version,
            routing_config=policy.routing_config,
            canary_of_stable_version=policy.canary_of_stable_version,
            serves_quarantined_version=policy.serves_quarantined_version,
            quarantine_refusal=policy.quarantine_refusal,
            promotion_gate_refuses=policy.promotion_gate_refuses,
            promotion_refusal=policy.promotion_refusal,
        )).alias
        quarantine.created_after(alias)
        api = RestApiFrontDoor(self, "api", ApiConfig(
            api_name=config.function_name,
            settings=config.api,
            function_name=function.function.function_name,
            alias_name=alias.name,
            alias_invoke_arn=alias.invoke_arn,
            log_retention_days=config.function.log_retention_days,
        ))
        auto_rollback = None
        if config.auto_rollback:
            auto_rollback = AutoRollback(self, "auto_rollback", AutoRollbackConfig(
                function_name=config.function_name,
                alias_name=ALIAS_NAME,
                function_arn=function.function.arn,
                quarantine_parameter_arn=quarantine.parameter.arn,
                alarm_names=tuple(alarm_name(config.function_name, kind)
                                  for kind in ROLLBACK_TRIGGERS),
                log_retention_days=config.function.log_retention_days,
            ))
        alarms = ReleaseAlarms(self, "alarms", AlarmsConfig(
            function_name=config.function_name,
            alias_name=ALIAS_NAME,
            candidate_version=function.function.version,
            api_name=config.function_name,
            stage_name=config.api.stage_name,
            thresholds=config.alarms,
            rollback_topic_arn=auto_rollback.topic.arn if auto_rollback else None,
        ))
        dashboard = ReleaseDashboard(self, "dashboard", DashboardConfig(
            dashboard_name=f"{config.function_name}-release",
            region=config.region,
            function_name=config.function_name,
            alias_name=ALIAS_NAME,
            api_name=config.function_name,
            stage_name=config.api.stage_name,
            thresholds=config.alarms,
            alarm_arns=tuple(alarm.arn for alarm in alarms.all),
        ))

        outputs = {
            "api_url": (api.url,
                        "URL of GET /<path> on the API stage; what the smoke check calls."),
            "function_name": (function.function.function_name,
                              "Name of the released Lambda function."),
            "alias_name": (alias.name, "Name of the alias API Gateway invokes."),
            "alias_arn": (alias.arn, "ARN of the production alias."),
            "candidate_version": (function.function.version,
                                  "Version published by this apply: the code under release."),
            "primary_version": (alias.function_version,
                                "Version the alias points at (takes 1 - canary weight)."),
            "additional_version_weights": (policy.additional_version_weights,
                                           "Alias routing weights: {candidate = weight} during a "
                                           "canary, else empty."),
            "phase": (policy.phase,
                      "Routing table row: candidate-only, stable-only, canary or promoted."),
            "canary_weight": (phase.canary_weight.number_value,
                              "The canary_weight this apply used."),
            "stable_version": (phase.stable_version.string_value,
                               "The stable_version this apply used."),
            "alarm_names": ([alarm.alarm_name for alarm in alarms.all],
                            "Names of the CloudWatch alarms that judge a release."),
            "region": (config.region, "AWS region of the stack."),
            "quarantine_parameter": (quarantine.parameter.name,
                                     "SSM parameter listing the versions a rollback took traffic "
                                     "from; plans refuse to give them traffic until lifted."),
            "settings_parameter": (settings.parameter.name,
                                   "SSM parameter holding the environment's settings (JSON); "
                                   "each function version pins one version of it."),
            "dashboard_url": (dashboard.url, "CloudWatch console link to the release dashboard: "
                              "traffic, errors and latency per version, the release alarms."),
            "auto_rollback_function": (
                auto_rollback.handler.function_name if auto_rollback else "",
                "Function that takes the canary weight off the alias when a release alarm fires "
                "(\"\" when the environment opted out)."),
            "auto_rollback_dead_letter_queue": (
                auto_rollback.dead_letters.url if auto_rollback else "",
                "Queue holding alarm events the rollback function could not handle (\"\" when "
                "off)."),
        }
        for name, (value, description) in outputs.items():
            TerraformOutput(self, name, value=value, description=description)
