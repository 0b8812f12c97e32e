"""CloudWatch alarms that judge a release: the alias as a whole, the canary version alone, and
the API stage in front (API Gateway failures such as a broken permission never reach Lambda).

All use 60 s periods (Lambda's metric resolution) and treat missing data as not breaching: a
canary at a small weight sees minutes without a request, which is not a failure.
"""

from dataclasses import dataclass
from typing import TypedDict

from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import (
    CloudwatchMetricAlarm,
    CloudwatchMetricAlarmMetricQuery,
    CloudwatchMetricAlarmMetricQueryMetric,
)
from constructs import Construct

from release.config import AlarmThresholds

PERIOD_SECONDS = 60
# The alarms that mean "the release is hurting users": with auto-rollback on, they notify the
# rollback topic. Latency and throttling alarms inform but do not roll back, nor does the stage's
# 5XX alarm: failures of API Gateway itself are no canary's doing, and a canary's errors already
# show in the Lambda error alarms.
ROLLBACK_TRIGGERS = ("error-rate", "canary-error-rate")


def alarm_name(function_name: str, kind: str) -> str:
    return f"{function_name}-{kind}"


@dataclass(frozen=True)
class AlarmsConfig:
    function_name: str
    alias_name: str
    candidate_version: str  # token: the version this apply published
    api_name: str
    stage_name: str
    thresholds: AlarmThresholds
    # SNS topic of the auto-rollback function; None when the environment opted out.
    rollback_topic_arn: str | None = None


class _Evaluation(TypedDict):
    """How every release alarm judges its periods (the arguments all five alarms share)."""
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str


def _error_rate_queries(dimensions: dict[str, str]) -> list[CloudwatchMetricAlarmMetricQuery]:
    """Errors / Invocations in percent, by metric math (raw error counts grow with traffic)."""
    def metric(query_id: str, name: str) -> CloudwatchMetricAlarmMetricQuery:
        return CloudwatchMetricAlarmMetricQuery(
            id=query_id,
            return_data=False,
            metric=CloudwatchMetricAlarmMetricQueryMetric(
                namespace="AWS/Lambda", metric_name=name, dimensions=dimensions,
                period=PERIOD_SECONDS, stat="Sum"),
        )
    return [
        metric("errors", "Errors"),
        metric("invocations", "Invocations"),
        CloudwatchMetricAlarmMetricQuery(
            id="error_rate",
            expression="IF(invocations > 0, 100 * errors / invocations, 0)",
            label="Error rate (%)",
            return_data=True,
        ),
    ]


class ReleaseAlarms(Construct):
    def __init__(self, scope: Construct, id: str, config: AlarmsConfig) -> None:
        super().__init__(scope, id)
        thresholds = config.thresholds
        prefix = config.function_name
        alias_dimensions = {"FunctionName": config.function_name,
                            "Resource": f"{config.function_name}:{config.alias_name}"}
        def actions(kind: str) -> list[str] | None:
            if config.rollback_topic_arn and kind in ROLLBACK_TRIGGERS:
                return [config.rollback_topic_arn]
            return None

        common = _Evaluation(
            evaluation_periods=thresholds.evaluation_periods,
            datapoints_to_alarm=thresholds.datapoints_to_alarm,
            treat_missing_data="notBreaching",
        )
        self.error_rate = CloudwatchMetricAlarm(
            self, "error_rate",
            alarm_name=alarm_name(prefix, "error-rate"),
            alarm_actions=actions("error-rate"),
            alarm_description="Errors / Invocations (%) of the production alias, all versions.",
            comparison_operator="GreaterThanThreshold",
            threshold=thresholds.error_rate_percent,
            metric_query=_error_rate_queries(alias_dimensions),
            **common,
        )
        self.canary_error_rate = CloudwatchMetricAlarm(
            self, "canary_error_rate",
            alarm_name=alarm_name(prefix, "canary-error-rate"),
            alarm_actions=actions("canary-error-rate"),
            alarm_description=("Errors / Invocations (%) of the candidate version alone "
                               "(ExecutedVersion behind the production alias)."),
            comparison_operator="GreaterThanThreshold",
            threshold=thresholds.canary_error_rate_percent,
            metric_query=_error_rate_queries(
                {**alias_dimensions, "ExecutedVersion": config.candidate_version}),
            **common,
        )
        self.p99_duration = CloudwatchMetricAlarm(
            self, "p99_duration",
            alarm_name=alarm_name(prefix, "p99-duration"),
            alarm_actions=actions("p99-duration"),
            alarm_description="p99 Duration (ms) of the production alias.",
            namespace="AWS/Lambda",
            metric_name="Duration",
            dimensions=alias_dimensions,
            extended_statistic="p99",
            period=PERIOD_SECONDS,
            comparison_operator="GreaterThanThreshold",
            threshold=thresholds.p99_duration_ms,
            **common,
        )
        self.throttles = CloudwatchMetricAlarm(
            self, "throttles",
            alarm_name=alarm_name(prefix, "throttles"),
            alarm_actions=actions("throttles"),
            alarm_description="Throttled invocations of the production alias.",
            namespace="AWS/Lambda",
            metric_name="Throttles",
            dimensions=alias_dimensions,
            statistic="Sum",
            period=PERIOD_SECONDS,
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=thresholds.throttles,
            **common,
        )
        self.api_5xx = CloudwatchMetricAlarm(
            self, "api_5xx",
            alarm_name=alarm_name(prefix, "api-5xx-rate"),
            alarm_actions=actions("api-5xx-rate"),
            alarm_description=("Share of API responses that are 5XX (the metric is 0 or 1 per "
                               "request, so its Average is the rate)."),
            namespace="AWS/ApiGateway",
            metric_name="5XXError",
            dimensions={"ApiName": config.api_name, "Stage": config.stage_name},
            statistic="Average",
            period=PERIOD_SECONDS,
            comparison_operator="GreaterThanThreshold",
            threshold=thresholds.api_5xx_rate_percent / 100,
            **common,
        )
        self.all = [self.error_rate, self.canary_error_rate, self.p99_duration, self.throttles,
                    self.api_5xx]
