"""The release dashboard: one CloudWatch dashboard per environment that shows a canary at a glance.

Every graph that splits by version uses a SEARCH over the `ExecutedVersion` dimension behind the
alias, so versions published after the last synth show up without a code change, and the body
holds no value that changes per apply (a version number would make every release a dashboard
change). The thresholds drawn on the graphs and the alarm names come from the same config as
`modules/alarms.py`, so the two cannot disagree.
"""

import json
import re
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.cloudwatch_dashboard import CloudwatchDashboard
from constructs import Construct

from modules.alarms import PERIOD_SECONDS, alarm_name
from release.config import REGION_PATTERN, AlarmThresholds

# The dashboard grid is 24 units wide; two graphs per row.
GRID_WIDTH = 24
GRAPH_WIDTH = 12
GRAPH_HEIGHT = 6
ALARM_COLOR = "#d62728"
# Each SEARCH result is labelled with its version: CloudWatch's dynamic label ${PROP(...)},
# written `$${` because Terraform would otherwise read `${` as its own interpolation.
VERSION_LABEL = "v$${PROP('Dim.ExecutedVersion')}"


@dataclass(frozen=True)
class DashboardConfig:
    dashboard_name: str
    region: str
    function_name: str
    alias_name: str
    api_name: str
    stage_name: str
    thresholds: AlarmThresholds
    # Tokens: the ARNs of the release alarms (the alarm widget takes ARNs, not names).
    alarm_arns: tuple[str, ...]

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", self.dashboard_name):
            raise ValueError(f"dashboard_name = {self.dashboard_name!r}: must be 1-255 letters, "
                             "digits, - or _ (CloudWatch's rule)")
        if not REGION_PATTERN.fullmatch(self.region):
            raise ValueError(f"region = {self.region!r}: must be an AWS region such as eu-west-1")
        if not self.alarm_arns:
            raise ValueError("alarm_arns is empty: the alarm widget needs the release alarms")

    @property
    def url(self) -> str:
        return (f"https://{self.region}.console.aws.amazon.com/cloudwatch/home?region={self.region}"
                f"#dashboards:name={self.dashboard_name}")


def _number(value: float) -> float | int:
    """10.0 -> 10: thresholds read in the body as they do in environments.toml."""
    return int(value) if float(value).is_integer() else value


def _search(config: DashboardConfig, metric: str, stat: str) -> str:
    """Every version behind the alias: one time series per ExecutedVersion value."""
    return (f"SEARCH('{{AWS/Lambda,FunctionName,Resource,ExecutedVersion}} "
            f"FunctionName=\"{config.function_name}\" "
            f"Resource=\"{config.function_name}:{config.alias_name}\" "
            f"MetricName=\"{metric}\"', '{stat}', {PERIOD_SECONDS})")


def _threshold(config: DashboardConfig, value: float, *kinds: str) -> dict[str, Any]:
    """A horizontal line at an alarm's threshold, labelled with the alarm(s) it belongs to."""
    names = " / ".join(alarm_name(config.function_name, kind) for kind in kinds)
    return {"label": f"{names} threshold", "value": _number(value), "color": ALARM_COLOR}


def _graph(config: DashboardConfig, title: str, metrics: list[list[Any]], *, y_label: str,
           annotations: tuple[dict[str, Any], ...] = (), stacked: bool = False) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title, "region": config.region, "view": "timeSeries", "stacked": stacked,
        "period": PERIOD_SECONDS, "metrics": metrics,
        "yAxis": {"left": {"label": y_label, "showUnits": False, "min": 0}},
    }
    if annotations:
        properties["annotations"] = {"horizontal": list(annotations)}
    return {"type": "metric", "width": GRAPH_WIDTH, "height": GRAPH_HEIGHT,
            "properties": properties}


def _expression(query_id: str, expression: str, label: str) -> list[dict[str, Any]]:
    return [{"id": query_id, "expression": expression, "label": label}]


def dashboard_body(config: DashboardConfig) -> str:
    """The dashboard as canonical JSON (sorted keys, no whitespace): the same config gives the
    same bytes, so Terraform (which compares normalized JSON) never sees a difference."""
    thresholds = config.thresholds
    alias_dimensions = ["FunctionName", config.function_name,
                        "Resource", f"{config.function_name}:{config.alias_name}"]
    stage_dimensions = ["ApiName", config.api_name, "Stage", config.stage_name]
    error_annotations = (
        (_threshold(config, thresholds.error_rate_percent, "error-rate", "canary-error-rate"),)
        if thresholds.error_rate_percent == thresholds.canary_error_rate_percent else
        (_threshold(config, thresholds.error_rate_percent, "error-rate"),
         _threshold(config, thresholds.canary_error_rate_percent, "canary-error-rate")))
    widgets = [
        {"type": "text", "width": GRID_WIDTH, "height": 2, "properties": {"markdown": (
            f"## Release of {config.function_name} (alias `{config.alias_name}`)\n"
            "Every version behind the alias appears by itself (dimension `ExecutedVersion`): "
            "during a canary, the new version is the smaller band. Red lines are the release "
            "alarms' thresholds from environments.toml.")}},
        _graph(config, "Invocations by version (stacked: the traffic split)",
               [_expression("invocations", _search(config, "Invocations", "Sum"), VERSION_LABEL)],
               y_label="invocations / minute", stacked=True),
        # Lambda sends Errors as a 0/1 indicator per invocation, so its Average is the error
        # rate; dividing one SEARCH by another is not possible (metric math has no TS[] / TS[]).
        _graph(config, "Error rate by version (%)",
               [_expression("error_rate", f"100 * {_search(config, 'Errors', 'Average')}",
                            VERSION_LABEL)],
               y_label="% of invocations", annotations=error_annotations),
        _graph(config, "Duration by version: p50 and p99 (ms)",
               [_expression("p50", _search(config, "Duration", "p50"), f"{VERSION_LABEL} p50"),
                _expression("p99", _search(config, "Duration", "p99"), f"{VERSION_LABEL} p99")],
               y_label="milliseconds",
               annotations=(_threshold(config, thresholds.p99_duration_ms, "p99-duration"),)),
        _graph(config, "Throttles (alias)",
               [["AWS/Lambda", "Throttles", *alias_dimensions,
                 {"id": "throttles", "stat": "Sum", "label": "throttled requests"}]],
               y_label="requests / minute",
               annotations=(_threshold(config, thresholds.throttles, "throttles"),)),
        # 5XXError is 0 or 1 per request, so its Average is the rate (as in the stage alarm).
        _graph(config, "API Gateway 5XX rate (%)",
               [["AWS/ApiGateway", "5XXError", *stage_dimensions,
                 {"id": "errors_5xx", "stat": "Average", "visible": False}],
                _expression("rate_5xx", "100 * errors_5xx", "5XX responses")],
               y_label="% of requests",
               annotations=(_threshold(config, thresholds.api_5xx_rate_percent, "api-5xx-rate"),)),
        _graph(config, "API Gateway latency (ms)",
               [["AWS/ApiGateway", "Latency", *stage_dimensions,
                 {"id": "latency_p50", "stat": "p50", "label": "p50"}],
                ["AWS/ApiGateway", "Latency", *stage_dimensions,
                 {"id": "latency_p99", "stat": "p99", "label": "p99"}]],
               y_label="milliseconds"),
        {"type": "alarm", "width": GRID_WIDTH, "height": 3, "properties": {
            "title": "Release alarms", "alarms": list(config.alarm_arns),
            "sortBy": "stateUpdatedTimestamp"}},
    ]
    return json.dumps({"widgets": _laid_out(widgets)}, sort_keys=True, separators=(",", ":"))


def _laid_out(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Explicit x/y for each widget, left to right then top to bottom, so the layout is part of
    the synthesized (and reviewed) body rather than CloudWatch's automatic placement."""
    x = y = row_height = 0
    placed = []
    for widget in widgets:
        if x + widget["width"] > GRID_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append({**widget, "x": x, "y": y})
        x += widget["width"]
        row_height = max(row_height, widget["height"])
    return placed


class ReleaseDashboard(Construct):
    def __init__(self, scope: Construct, id: str, config: DashboardConfig) -> None:
        super().__init__(scope, id)
        self.url = config.url
        self.dashboard = CloudwatchDashboard(
            self, "dashboard",
            dashboard_name=config.dashboard_name,
            dashboard_body=dashboard_body(config),
        )
