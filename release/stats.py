"""Statistics for the smoke check: is the observed canary split the intended one, how many requests
that takes, and latency percentiles. Pure functions on counts and samples; no I/O.

Lambda routes each request at random, so the number of candidate responses among n is
Binomial(n, weight). The split check is scipy's exact two-sided binomial test at 99 % confidence;
the Wilson interval it reports is for humans and does not decide anything.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Sequence

import numpy

# scipy.stats is imported where it is used: it takes over a second to load, which commands
# that never test a split (status, rollback --fast, --help) should not pay.

CONFIDENCE = 0.99
ALPHA = 1 - CONFIDENCE
# The default request count must tell a wrong split apart this often (and, through ALPHA, pass a
# right one at least 99 % of the time).
POWER = 0.99
# The smallest wrong split the default request count is sized to catch, in share points.
DETECTABLE_SHIFT = 0.1
# At weight 0 or 1 a single response from the wrong version fails the check, so a leak of
# >= 10 % goes unseen in 50 requests with probability 0.9**50 < 0.01.
EXACT_WEIGHT_REQUESTS = 50
# Fewer samples make p99 latency just the slowest response; also where the search starts.
MIN_REQUESTS = 100
# Keeps a smoke run to seconds; only weights under ~0.25 % (or over 99.75 %) would need more.
MAX_REQUESTS = 2000


class SmokeInputError(ValueError):
    """A smoke-check argument that cannot be used; the message names the value and the fix."""


def validate_weight(weight: object) -> float:
    """Return `weight` as a float, or raise SmokeInputError unless it is a number from 0 to 1."""
    if not (is_finite_number(weight) and 0 <= weight <= 1):
        raise SmokeInputError(f"weight {weight!r} is not a share of traffic: "
                              "pass a number from 0 to 1, e.g. 0.1 for 10 % on the candidate")
    return float(weight)


@dataclass(frozen=True)
class SplitTest:
    """How many of `total` responses came from the candidate, against `expected_weight`."""

    candidate: int
    total: int
    expected_weight: float
    share: float
    # Wilson score interval at CONFIDENCE for the candidate's true share.
    interval: tuple[float, float]
    p_value: float
    passed: bool


def check_split(candidate: int, total: int, expected_weight: float) -> SplitTest:
    """Exact binomial test of `candidate` hits in `total` responses against `expected_weight`.

    Passes when the two-sided p-value is at least 1 - CONFIDENCE. At weight 0 or 1 scipy gives
    p = 1 for an exact split and p = 0 for any deviation, so the same rule demands exactly 0 % or
    100 % candidate there.
    """
    weight = validate_weight(expected_weight)
    if not (is_whole_number(candidate) and is_whole_number(total)
            and 0 <= candidate <= total and total >= 1):
        raise SmokeInputError(f"split counts {candidate!r} of {total!r} are not usable: "
                              "pass whole numbers with 0 <= candidate <= total and total >= 1")
    from scipy.stats import binomtest

    result = binomtest(candidate, total, weight)
    interval = result.proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return SplitTest(candidate=candidate, total=total, expected_weight=weight,
                     share=candidate / total,
                     interval=(float(interval.low), float(interval.high)),
                     p_value=float(result.pvalue), passed=bool(result.pvalue >= ALPHA))


def default_request_count(weight: float) -> int:
    """How many requests a smoke check at `weight` sends unless told otherwise.

    Rule: the smallest n >= MIN_REQUESTS (100) at which `check_split` fails, with probability
    >= POWER (99 %), a true split of weight + 0.1 and of weight - 0.1 (clipped to [0, 1]); it
    passes the intended split >= 99 % of the time by construction (exact test at alpha 0.01).
    Computed exactly: the test's acceptance region comes from scipy's binomtest p-values, its
    power from the binomial distribution. Examples: 0.1 -> 284 (tells 10 % from 0 % and 20 %),
    0.05 -> 198, 0.25 -> 498, 0.5 -> 596; symmetric in weight and 1 - weight. Capped at
    MAX_REQUESTS (2000), which only weights under about 0.25 % (or over 99.75 %) reach: there the
    cap cannot reliably tell the weight from 0 (or 1). Weights 0 and 1 need only
    EXACT_WEIGHT_REQUESTS (50), because one response from the wrong version fails them.
    """
    weight = validate_weight(weight)
    if weight in (0.0, 1.0):
        return EXACT_WEIGHT_REQUESTS
    return _smallest_powerful_count(weight)


@functools.cache
def _smallest_powerful_count(weight: float) -> int:
    from scipy.stats import binom

    alternatives = {min(1.0, weight + DETECTABLE_SHIFT), max(0.0, weight - DETECTABLE_SHIFT)}
    bounds = None
    for n in range(MIN_REQUESTS, MAX_REQUESTS + 1):
        bounds = _acceptance_range(n, weight, bounds)
        low, high = bounds
        power = min(binom.cdf(low - 1, n, share) + binom.sf(high, n, share)
                    for share in alternatives)
        if power >= POWER:
            return n
    return MAX_REQUESTS


def _acceptance_range(n: int, weight: float, previous: tuple[int, int] | None) -> tuple[int, int]:
    """The candidate counts low..high that `check_split` passes for n responses at `weight`.

    The binomial pmf is unimodal, so the two-sided p-value falls away from the mode and the
    passing counts form one run around it. Starting from the previous n's bounds (they move by
    about one per step) keeps this to a few binomtest calls per n.
    """
    from scipy.stats import binomtest

    def passes(k: int) -> bool:
        return binomtest(k, n, weight).pvalue >= ALPHA

    mode = math.floor((n + 1) * weight)
    low, high = previous or (mode, mode)
    low, high = min(low, mode), max(high, mode)
    while not passes(low):
        low += 1
    while low > 0 and passes(low - 1):
        low -= 1
    while not passes(high):
        high -= 1
    while high < n and passes(high + 1):
        high += 1
    return low, high


@dataclass(frozen=True)
class LatencySummary:
    p50_ms: float
    p95_ms: float
    p99_ms: float


def latency_summary(samples_ms: Sequence[float]) -> LatencySummary | None:
    """p50/p95/p99 of response times in milliseconds (linear interpolation); None if no samples."""
    if len(samples_ms) == 0:
        return None
    p50, p95, p99 = numpy.percentile(samples_ms, [50, 95, 99])
    return LatencySummary(p50_ms=float(p50), p95_ms=float(p95), p99_ms=float(p99))


def is_whole_number(value: object) -> bool:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: object) -> bool:
    """A finite int or float (numpy's too), not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))
