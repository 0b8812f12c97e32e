"""Stand-ins for CloudWatch alarm notifications delivered by SNS, and for the Lambda runtime that
runs functions/rollback: the events as AWS sends them, and the real handler loaded from its
folder."""

import importlib.util
import json
import sys
import uuid
from typing import Any

import pytest

from fakes.moto_server import ALIAS, REGION
from release.config import quarantine_parameter_name

PROJECT_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]
FUNCTION_DIR = PROJECT_ROOT / "functions" / "rollback"
FUNCTION = "deploy-patterns-demo-staging"
STATE_CHANGE_TIME = "2025-03-10T00:05:12.345+0000"


# --- events as AWS sends them --------------------------------------------------------------------

def dimensions(function: str = FUNCTION, alias: str = ALIAS, executed_version: str | None = None
               ) -> list[dict[str, str]]:
    """Lambda alias dimensions, spelled as in alarm notifications (lower-case name/value)."""
    found = [{"value": function, "name": "FunctionName"},
             {"value": f"{function}:{alias}", "name": "Resource"}]
    if executed_version:
        found.append({"value": executed_version, "name": "ExecutedVersion"})
    return found


def _notification(name: str, state: str, trigger: dict[str, Any]) -> dict[str, Any]:
    return {
        "AlarmName": name,
        "AlarmDescription": "set by the release stack",
        "AWSAccountId": "123456789012",
        "AlarmConfigurationUpdatedTimestamp": "2025-03-10T00:00:01.000+0000",
        "NewStateValue": state,
        "NewStateReason": ("Threshold Crossed: 2 out of the last 3 datapoints [12.5 (10/03/25 "
                           "00:04:00), 9.1 (10/03/25 00:03:00)] were greater than or equal to "
                           "the threshold (5.0) (minimum 2 datapoints for OK -> ALARM "
                           "transition)."),
        "StateChangeTime": STATE_CHANGE_TIME,
        "Region": "EU (Ireland)",
        "AlarmArn": f"arn:aws:cloudwatch:{REGION}:123456789012:alarm:{name}",
        "OldStateValue": "OK",
        "OKActions": [],
        "AlarmActions": [f"arn:aws:sns:{REGION}:123456789012:{FUNCTION}-rollback"],
        "InsufficientDataActions": [],
        "Trigger": trigger,
    }


def single_metric_alarm(name: str = f"{FUNCTION}-p99-duration", state: str = "ALARM",
                        metric_dimensions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A single-metric alarm's notification (the p99 Duration alarm of the stack)."""
    return _notification(name, state, {
        "MetricName": "Duration",
        "Namespace": "AWS/Lambda",
        "StatisticType": "ExtendedStatistic",
        "ExtendedStatistic": "p99",
        "Unit": None,
        "Dimensions": dimensions() if metric_dimensions is None else metric_dimensions,
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanThreshold",
        "Threshold": 3000.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
    })


def metric_math_alarm(name: str = f"{FUNCTION}-canary-error-rate", state: str = "ALARM",
                      metric_dimensions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """A metric-math alarm's notification (the stack's error-rate alarms: errors / invocations)."""
    metric_dimensions = (dimensions(executed_version="2") if metric_dimensions is None
                         else metric_dimensions)

    def metric(query_id: str, metric_name: str) -> dict[str, Any]:
        return {"Id": query_id, "MetricStat": {
            "Metric": {"Dimensions": metric_dimensions, "MetricName": metric_name,
                       "Namespace": "AWS/Lambda"},
            "Period": 60, "Stat": "Sum"}, "ReturnData": False}

    return _notification(name, state, {
        "Period": 60,
        "EvaluationPeriods": 3,
        "DatapointsToAlarm": 2,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "Threshold": 5.0,
        "TreatMissingData": "notBreaching",
        "EvaluateLowSampleCountPercentile": "",
        "Metrics": [metric("errors", "Errors"), metric("invocations", "Invocations"),
                    {"Expression": "IF(invocations > 0, 100 * errors / invocations, 0)",
                     "Id": "error_rate", "Label": "Error rate (%)", "ReturnData": True}],
    })


def sns_record(message: dict[str, Any] | str) -> dict[str, Any]:
    topic = f"arn:aws:sns:{REGION}:123456789012:{FUNCTION}-rollback"
    body = message if isinstance(message, str) else json.dumps(message)
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": f"{topic}:{uuid.uuid4()}",
        "Sns": {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": topic,
            "Subject": "ALARM: \"alarm\" in EU (Ireland)",
            "Message": body,
            "Timestamp": "2025-03-10T00:05:12.456Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLE",
            "SigningCertUrl": "EXAMPLE",
            "UnsubscribeUrl": "EXAMPLE",
            "MessageAttributes": {},
        },
    }


def sns_event(*messages: dict[str, Any] | str) -> dict[str, Any]:
    return {"Records": [sns_record(message) for message in messages]}



def load_handler(name: str | None = None):
    """functions/rollback/handler.py as its own module (the caller forgets it from sys.modules)."""
    unique_name = name or f"rollback_handler_{uuid.uuid4().hex}"
    path = FUNCTION_DIR / "handler.py"
    spec = importlib.util.spec_from_file_location(unique_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a module", path=str(path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def load_rollback(monkeypatch):
    """Load functions/rollback/handler.py under a unique module name; forget it afterwards."""
    # Keep the source tree free of __pycache__ (git status should not see it).
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    loaded = []

    def load():
        module = load_handler()
        loaded.append(module.__name__)
        return module

    yield load
    for unique_name in loaded:
        del sys.modules[unique_name]




class RollbackFunction:
    """functions/rollback as the stack deploys it for `function`: its environment and the real
    handler, to which `deliver` hands a canary alarm the way SNS does. A context manager."""

    def __init__(self, monkeypatch, function: str, alarm_names: list[str], alias: str = ALIAS):
        self.function = function
        for name, value in {"FUNCTION_NAME": function, "ALIAS_NAME": alias,
                            "ALARM_NAMES": ",".join(alarm_names),
                            "QUARANTINE_PARAMETER": quarantine_parameter_name(function)}.items():
            monkeypatch.setenv(name, value)
        self.handler = load_handler()

    def deliver(self, alarm_name: str, executed_version: str) -> list[dict[str, Any]]:
        notification = metric_math_alarm(
            name=alarm_name,
            metric_dimensions=dimensions(function=self.function, executed_version=executed_version))
        return self.handler.lambda_handler(sns_event(notification), None)

    def __enter__(self) -> "RollbackFunction":
        return self

    def __exit__(self, *exc_info: object) -> None:
        del sys.modules[self.handler.__name__]
