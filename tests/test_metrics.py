"""The canary and alarm verdicts: the rules documented in release/metrics.py."""

from __future__ import annotations

import pytest

from release.aws import VersionMetrics
from release.config import AlarmThresholds
from release.metrics import judge_alarms, judge_canary

THRESHOLDS = AlarmThresholds(canary_error_rate_percent=1, p99_duration_ms=1000)


def traffic(version: str, invocations: int, errors: int, p99: float | None = 200.0
            ) -> VersionMetrics:
    return VersionMetrics(version=version, invocations=invocations, errors=errors,
                          error_rate=errors / invocations if invocations else None,
                          p99_duration_ms=p99 if invocations else None,
                          average_duration_ms=p99 / 2 if invocations and p99 else None)


@pytest.mark.parametrize("candidate, stable, status, says", [
    pytest.param(traffic("4", 1000, 2), traffic("3", 9000, 20), "pass", "error rate 0.20 %",
                 id="healthy"),
    pytest.param(traffic("4", 200, 20), traffic("3", 1800, 2), "fail",
                 "error rate 10.00 % (20/200) exceeds 1 % and is significantly above version 3",
                 id="errors"),
    pytest.param(traffic("4", 10, 10), traffic("3", 1000, 1), "fail", "significantly above",
                 id="few-requests-all-failing"),
    pytest.param(traffic("4", 200, 20), traffic("3", 0, 0), "fail",
                 "significantly above the 1 % limit (version 3 saw no invocations",
                 id="errors-without-stable-traffic"),
    pytest.param(traffic("4", 100, 2), traffic("3", 900, 9), "pass",
                 "exceeds 1 % but is not significantly above", id="over-limit-by-chance"),
    pytest.param(traffic("4", 500, 25), traffic("3", 4500, 230), "pass",
                 "not significantly above", id="stable-as-bad"),
    pytest.param(traffic("4", 1000, 0, p99=1500), traffic("3", 9000, 0, p99=300), "fail",
                 "p99 1500 ms exceeds 1000 ms while version 3's is 300 ms", id="slow"),
    pytest.param(traffic("4", 1000, 0, p99=1500), traffic("3", 9000, 0, p99=1400), "pass",
                 "a shared cause", id="both-slow"),
    pytest.param(traffic("4", 12, 0), traffic("3", 108, 0), "inconclusive",
                 "version 4 saw 12 invocations; at least 50 are needed", id="too-few"),
    pytest.param(traffic("4", 0, 0), traffic("3", 100, 0), "inconclusive",
                 "saw 0 invocations", id="no-canary-traffic"),
])
def test_canary_verdict(candidate, stable, status, says):
    verdict = judge_canary(candidate, stable, THRESHOLDS)
    assert verdict.status == status, verdict.reasons
    assert any(says in reason for reason in verdict.reasons), verdict.reasons
    assert all("\n" not in reason for reason in verdict.reasons)


def test_canary_verdict_reports_the_numbers():
    verdict = judge_canary(traffic("4", 200, 20), traffic("3", 1800, 2), THRESHOLDS)
    assert verdict.numbers["candidate_error_rate_percent"] == pytest.approx(10)
    assert verdict.numbers["stable_error_rate_percent"] == pytest.approx(2 / 18)
    assert verdict.numbers["error_p_value"] < 0.01
    assert verdict.numbers["candidate_invocations"] == 200


def test_min_invocations_is_configurable():
    verdict = judge_canary(traffic("4", 30, 0), traffic("3", 270, 0), THRESHOLDS,
                           min_invocations=20)
    assert verdict.status == "pass"


@pytest.mark.parametrize("states, status, says", [
    ({"errors": "OK", "p99": "OK"}, "pass", "2 alarms not in ALARM"),
    ({"errors": "OK", "p99": "INSUFFICIENT_DATA"}, "pass", "1 with insufficient data"),
    ({"errors": "ALARM", "p99": "OK"}, "fail", "alarm errors is in ALARM"),
    ({"errors": "OK", "p99": "MISSING"}, "fail",
     "alarm p99 is MISSING: the stack's alarms are not deployed"),
    ({}, "inconclusive", "alarm_names is empty"),
])
def test_alarm_verdict(states, status, says):
    verdict = judge_alarms(states)
    assert verdict.status == status
    assert any(says in reason for reason in verdict.reasons), verdict.reasons
