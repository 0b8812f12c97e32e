"""Judging a canary from its metrics and the stack's alarms (pure: no AWS calls).

`judge_canary` rules, in order:

1. fail on errors: the candidate's error rate exceeds `canary_error_rate_percent` AND is
   significantly above the stable version's (one-sided Fisher's exact test, p < 0.01, i.e. 99 %
   confidence). Both conditions matter: a bad stable version or a failing dependency raises
   both rates, which is no reason to roll the candidate back; and at canary volumes a couple of
   unlucky errors exceed a 1 % limit by chance. If the stable version saw no invocations there is
   nothing to compare with, so the candidate is tested against the limit itself (one-sided exact
   binomial test, p < 0.01).
2. fail on latency: the candidate's p99 exceeds `p99_duration_ms` and the stable's does not
   (when both are slow, the cause is shared, not the candidate).
3. inconclusive: the candidate saw fewer than `min_invocations`. Exact tests are valid at any
   sample size, so a clearly broken canary fails before that; the minimum only guards a pass,
   since m error-free requests only show an error rate below ~3/m.
4. otherwise pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from release.aws import MISSING, VersionMetrics
from release.config import AlarmThresholds

DEFAULT_MIN_INVOCATIONS = 50
SIGNIFICANCE = 0.01  # one-sided, i.e. 99 % confidence that the candidate is worse

Status = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: a status, one-line reasons, and the numbers behind it."""

    status: Status
    reasons: tuple[str, ...]
    numbers: Mapping[str, float | int | None] = field(default_factory=dict)


def _rate(metrics: VersionMetrics) -> str:
    if metrics.error_rate is None:
        return "no invocations"
    return f"{metrics.error_rate * 100:.2f} % ({metrics.errors}/{metrics.invocations})"


def _percent(rate: float | None) -> float | None:
    return None if rate is None else rate * 100


def _error_p_value(candidate: VersionMetrics, stable: VersionMetrics, limit_percent: float
                   ) -> float:
    """One-sided p-value for 'the candidate fails more often' than the stable (or the limit)."""
    # Imported here: scipy.stats takes over a second to load (see release/stats.py).
    from scipy.stats import binomtest, fisher_exact

    if stable.invocations:
        table = [[candidate.errors, candidate.invocations - candidate.errors],
                 [stable.errors, stable.invocations - stable.errors]]
        return float(fisher_exact(table, alternative="greater").pvalue)
    return float(binomtest(candidate.errors, candidate.invocations, limit_percent / 100,
                           alternative="greater").pvalue)


def judge_canary(candidate: VersionMetrics, stable: VersionMetrics, thresholds: AlarmThresholds,
                 *, min_invocations: int = DEFAULT_MIN_INVOCATIONS) -> Verdict:
    """Compare the canary version with the stable one over the same window (rules above)."""
    error_limit = thresholds.canary_error_rate_percent
    p99_limit = thresholds.p99_duration_ms
    failures: list[str] = []
    notes: list[str] = []

    p_value = (_error_p_value(candidate, stable, error_limit) if candidate.invocations else None)
    # error_rate and p_value are None together: when the candidate saw no invocations.
    if (candidate.error_rate is not None and p_value is not None
            and candidate.error_rate * 100 > error_limit):
        baseline = (f"version {stable.version}'s {_rate(stable)}" if stable.invocations else
                    f"the {error_limit:g} % limit (version {stable.version} saw no invocations)")
        comparison = f"{baseline}, one-sided p = {p_value:.2g}"
        if p_value < SIGNIFICANCE:
            failures.append(f"version {candidate.version} error rate {_rate(candidate)} exceeds "
                            f"{error_limit:g} % and is significantly above {comparison}")
        else:
            notes.append(f"version {candidate.version} error rate {_rate(candidate)} exceeds "
                         f"{error_limit:g} % but is not significantly above {comparison}")

    candidate_p99, stable_p99 = candidate.p99_duration_ms, stable.p99_duration_ms
    if candidate_p99 is not None and candidate_p99 > p99_limit:
        if stable_p99 is None or stable_p99 <= p99_limit:
            failures.append(f"version {candidate.version} p99 {candidate_p99:.0f} ms exceeds "
                            f"{p99_limit:g} ms while version {stable.version}'s is "
                            + ("unknown" if stable_p99 is None else f"{stable_p99:.0f} ms"))
        else:
            notes.append(f"both versions' p99 exceed {p99_limit:g} ms (version "
                         f"{candidate.version} {candidate_p99:.0f} ms, version {stable.version} "
                         f"{stable_p99:.0f} ms): a shared cause, not the candidate")

    numbers = {
        "candidate_invocations": candidate.invocations, "candidate_errors": candidate.errors,
        "candidate_error_rate_percent": _percent(candidate.error_rate),
        "stable_invocations": stable.invocations, "stable_errors": stable.errors,
        "stable_error_rate_percent": _percent(stable.error_rate),
        "error_p_value": p_value, "error_rate_limit_percent": error_limit,
        "candidate_p99_ms": candidate_p99, "stable_p99_ms": stable_p99,
        "p99_limit_ms": p99_limit, "min_invocations": min_invocations,
    }
    if failures:
        return Verdict("fail", tuple(failures + notes), numbers)
    if candidate.invocations < min_invocations:
        return Verdict("inconclusive", (
            f"version {candidate.version} saw {candidate.invocations} invocations; at least "
            f"{min_invocations} are needed to judge it: send more traffic or bake longer",
            *notes), numbers)
    p99_text = "no p99 data" if candidate_p99 is None else f"p99 {candidate_p99:.0f} ms"
    return Verdict("pass", (
        f"version {candidate.version}: error rate {_rate(candidate)}, {p99_text}, within "
        f"{error_limit:g} % and {p99_limit:g} ms or no worse than version {stable.version}",
        *notes), numbers)


def judge_alarms(states: Mapping[str, str]) -> Verdict:
    """Fail on any alarm in ALARM or MISSING; INSUFFICIENT_DATA (no traffic yet) is fine."""
    in_alarm = [name for name, state in states.items() if state == "ALARM"]
    missing = [name for name, state in states.items() if state == MISSING]
    numbers = {"alarms": len(states), "in_alarm": len(in_alarm), "missing": len(missing)}
    if not states:
        return Verdict("inconclusive", ("no alarm names to check: the stack output alarm_names "
                                        "is empty; deploy the stack with its alarms",), numbers)
    reasons = [f"alarm {name} is in ALARM" for name in in_alarm]
    reasons += [f"alarm {name} is MISSING: the stack's alarms are not deployed; deploy the stack "
                "first" for name in missing]
    if reasons:
        return Verdict("fail", tuple(reasons), numbers)
    waiting = sum(state == "INSUFFICIENT_DATA" for state in states.values())
    return Verdict("pass", (f"{len(states)} alarms not in ALARM ({waiting} with insufficient data, "
                            "which is normal with little traffic)",), numbers)
