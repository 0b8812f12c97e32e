"""Per-version CloudWatch metrics for the report: invocations, error rate and p99 Duration behind
the alias, as time series over the report's range (GetMetricData on `ExecutedVersion`).

`release.aws.version_metrics` sums a window into one number per version, which is what a bake
judges; a report draws the series instead, so it asks for every period.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from release.aws import AwsError

# Points per series at most: a longer range gets longer periods (60 s is Lambda's resolution).
MAX_POINTS = 1440
MIN_PERIOD_SECONDS = 60
# GetMetricData takes at most 500 queries per request.
QUERIES_PER_REQUEST = 500
# (query key, metric, statistic) per version.
QUERIES = (("invocations", "Invocations", "Sum"), ("errors", "Errors", "Sum"),
           ("p99", "Duration", "p99"))


@dataclass(frozen=True)
class VersionSeries:
    """One version's metrics per period; periods without invocations are left out."""

    period_seconds: int
    times: tuple[datetime, ...]
    invocations: tuple[float, ...]
    error_rate_percent: tuple[float, ...]
    p99_ms: tuple[float | None, ...]


def period_for(start: datetime, end: datetime) -> int:
    """Whole minutes, so that [start, end) has at most MAX_POINTS periods."""
    seconds = (end - start).total_seconds() / MAX_POINTS
    return max(MIN_PERIOD_SECONDS, math.ceil(seconds / 60) * 60)


def version_series(cloudwatch_client: Any, function_name: str, alias_name: str,
                   versions: Sequence[str], start: datetime, end: datetime
                   ) -> dict[str, VersionSeries]:
    """Each version's series behind `<fn>:<alias>` in [start, end); versions without any
    invocations in the range are left out."""
    period = period_for(start, end)
    queries: list[dict[str, Any]] = []
    for index, version in enumerate(versions):
        dimensions = [{"Name": "FunctionName", "Value": function_name},
                      {"Name": "Resource", "Value": f"{function_name}:{alias_name}"},
                      {"Name": "ExecutedVersion", "Value": str(version)}]
        queries += [{"Id": f"{key}_{index}", "ReturnData": True, "MetricStat": {
            "Metric": {"Namespace": "AWS/Lambda", "MetricName": metric, "Dimensions": dimensions},
            "Period": period, "Stat": stat}} for key, metric, stat in QUERIES]
    values: dict[str, dict[datetime, float]] = {query["Id"]: {} for query in queries}
    paginator = cloudwatch_client.get_paginator("get_metric_data")
    try:
        for first in range(0, len(queries), QUERIES_PER_REQUEST):
            batch = queries[first:first + QUERIES_PER_REQUEST]
            for page in paginator.paginate(MetricDataQueries=batch, StartTime=start, EndTime=end):
                for result in page["MetricDataResults"]:
                    values[result["Id"]].update(
                        zip(result["Timestamps"], result["Values"], strict=True))
    except (BotoCoreError, ClientError) as error:  # no network, no permission, throttled
        raise AwsError(f"GetMetricData failed: {' '.join(str(error).split())}") from None

    series = {}
    for index, version in enumerate(versions):
        invocations, errors, p99 = (values[f"{key}_{index}"] for key, _, _ in QUERIES)
        times = tuple(sorted(time for time, count in invocations.items() if count > 0))
        if not times:
            continue
        series[str(version)] = VersionSeries(
            period_seconds=period, times=times,
            invocations=tuple(invocations[time] for time in times),
            error_rate_percent=tuple(100 * errors.get(time, 0.0) / invocations[time]
                                     for time in times),
            p99_ms=tuple(p99.get(time) for time in times),
        )
    return series
