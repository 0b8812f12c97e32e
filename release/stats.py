"""Statistics for the smoke check: is the observed canary split the intended one, how many requests
that takes, when the data plane has taken up a new routing, and latency percentiles. Pure functions
on counts and samples; no I/O.

The split test. Lambda routes each request at random, so the number of candidate responses among
n is Binomial(n, weight). The split check is scipy's exact two-sided binomial test at 99.9 %
confidence, so a correct split fails at most 1 smoke check in 1,000 (at 99 %, as before, it
failed 1 in 100 even without any lag). The default request count is sized so that the test still
catches a split 10 points off 99 % of the time. The Wilson interval it reports is for humans and
does not decide anything.

The settle. After an alias update the control plane shows the new routing at once, but the data
plane keeps routing by the old one for seconds: a new 10 % canary first answers 0 %, a rollout
step from 10 % to 50 % first answers 10 %, a rollback still answers from the canary. Measured from
the first request, a correct split fails. So the smoke check first waits for the data plane to
settle, then measures a fresh sample judged exactly as above: the settle only decides when the
measurement starts, so the test's false-failure rate and power are those on a settled data plane.

The smoke check does not know the old routing, so the settle rules out every routing at least
DETECTABLE_SHIFT from the intended one, the error the measurement is sized to catch. For each
"wrong split" (weight +/- 0.1, clipped to [0, 1]) it keeps a CUSUM over the batches of responses
of the log likelihood ratio of the intended split against the wrong one, floored at 0 so that the
responses from before the switch are forgotten rather than owed. The data plane counts as settled
when every CUSUM has reached ln(SETTLE_ODDS): the latest responses are a million times likelier
under the intended split than under either wrong one. A version outside the intended routing
starts them all again. By Ville's inequality a data plane still on a wrong split passes for
settled with probability at most N / SETTLE_ODDS over N batches; routings farther off are ruled
out sooner. (Settling at the first candidate response, the obvious rule for a new canary, would
measure a rollout step from 10 % to 50 % at 10 %.)

What it costs: a new 10 % canary settles at its first candidate response once about 120
responses without one have been seen (a lag of 0.4 s at 320 requests/s); weights 0 and 1 after
132 responses in a row from their one version; with no lag at all a 10 % split takes about 380
responses and a 50 % split about 870 to be told from the splits 10 points away. A wrong split
looks like a lagging data plane, so it is measured only once the caller's settle timeout has
passed, and then fails as before. The settle assumes that the data plane switches from the old
routing to the new one: one that drifts between them (at 5 % on its way from 0 to 10 %) can pass
for settled and bias the measurement. benchmarks/smoke_lag_simulation.py measures all this.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeGuard

import numpy

from release.errors import ReleaseError
from release.stats_table import REQUEST_COUNTS
from release.weights import check_weight

# scipy.stats is imported where it is used: it takes over a second to load, which commands
# that never test a split (status, rollback --fast, --help) should not pay.

# The split test's level: a correct split fails it at most this often.
ALPHA = 0.001
CONFIDENCE = 1 - ALPHA
# The default request count must tell a wrong split apart this often.
POWER = 0.99
# The smallest wrong split the default request count is sized to catch, in share points; also how
# far off an old routing the settle rules out.
DETECTABLE_SHIFT = 0.1
# At weight 0 or 1 a single response from the wrong version fails the check, so a leak of
# >= 10 % goes unseen in 50 requests with probability 0.9**50 < 0.01.
EXACT_WEIGHT_REQUESTS = 50
# Fewer samples make p99 latency just the slowest response; also where the search starts.
MIN_REQUESTS = 100
# Keeps a smoke run to seconds; only weights under ~0.4 % (or over 99.6 %) would need more.
MAX_REQUESTS = 2000
# The settle ends when the latest responses are this many times likelier under the intended split
# than under either split DETECTABLE_SHIFT away.
SETTLE_ODDS = 1e6


class SmokeInputError(ReleaseError):
    """A smoke-check argument that cannot be used; the message names the value and the fix."""


def wrong_splits(weight: float) -> tuple[float, ...]:
    """The candidate shares DETECTABLE_SHIFT either side of `weight`, clipped to [0, 1]: what the
    default request count is sized to catch, and what the settle rules out."""
    return tuple(sorted({max(0.0, weight - DETECTABLE_SHIFT),
                         min(1.0, weight + DETECTABLE_SHIFT)} - {weight}))


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

    Passes when the two-sided p-value is at least ALPHA. At weight 0 or 1 scipy gives p = 1 for
    an exact split and p = 0 for any deviation, so the same rule demands exactly 0 % or 100 %
    candidate there.
    """
    weight = check_weight(expected_weight, "expected_weight")
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
    passes the intended split >= 99.9 % of the time by construction (exact test at alpha 0.001).
    Computed exactly: the test's acceptance region comes from its p-values, its power from the
    binomial distribution. Examples: 0.1 -> 381 (tells 10 % from 0 % and 20 %), 0.05 -> 255,
    0.25 -> 651, 0.5 -> 781; symmetric in weight and 1 - weight. Capped at MAX_REQUESTS (2000),
    which only weights under about 0.4 % (or over 99.6 %) reach: there the cap cannot reliably
    tell the weight from 0 (or 1). Weights 0 and 1 need only EXACT_WEIGHT_REQUESTS (50), because
    one response from the wrong version fails them.

    Whole percents, the weights phases use, come from a table (release/stats_table.py, equal to
    `exact_request_count` by test), so a smoke check neither searches nor loads scipy to size
    itself; other weights are searched once per process.
    """
    weight = check_weight(weight)
    if weight in (0.0, 1.0):
        return EXACT_WEIGHT_REQUESTS
    count = REQUEST_COUNTS.get(weight)
    return count if count is not None else exact_request_count(weight)


# Request counts tried per vectorised step of the search: the answer is a few hundred above
# MIN_REQUESTS for most weights.
_SEARCH_BLOCK = 32
# scipy's binomtest counts outcomes as likely as the observed one up to this relative difference.
_BINOMTEST_TIE_TOLERANCE = 1e-7
# p-values this close to ALPHA (relatively) are left to binomtest itself. Elsewhere the summed
# p-values below, accurate to about 1e-13, cannot decide differently from it.
_P_VALUE_MARGIN = 1e-9


@functools.cache
def exact_request_count(weight: float) -> int:
    """`default_request_count`'s rule for an interior weight, computed from scratch (about 0.03 s
    once scipy is loaded)."""
    from scipy.stats import binom

    for first in range(MIN_REQUESTS, MAX_REQUESTS + 1, _SEARCH_BLOCK):
        counts = numpy.arange(first, min(first + _SEARCH_BLOCK, MAX_REQUESTS + 1))
        low, high = _acceptance_ranges(counts, weight)
        power = numpy.min([binom.cdf(low - 1, counts, share) + binom.sf(high, counts, share)
                           for share in wrong_splits(weight)], axis=0)
        powerful = numpy.flatnonzero(power >= POWER)
        if powerful.size:
            return int(counts[powerful[0]])
    return MAX_REQUESTS


def _acceptance_ranges(counts: numpy.ndarray,
                       weight: float) -> tuple[numpy.ndarray, numpy.ndarray]:
    """For each n in `counts`, the candidate counts low..high that `check_split` passes.

    binomtest's two-sided p-value of k is the probability of all counts no likelier than k; here
    it is summed from the sorted pmf for every k of an n at once, instead of one binomtest call
    per k. (Which counts are "no likelier" differs from binomtest's only next to the mode, where
    p is near 1 either way.) The pmf is unimodal, so the passing counts form one run around it.
    """
    from scipy.stats import binom, binomtest

    pmf = binom.pmf(numpy.arange(counts[-1] + 1), counts[:, None], weight)
    lows, highs = [], []
    for n, row in zip(counts, pmf, strict=True):
        row = row[:n + 1]
        ordered = numpy.sort(row)
        no_likelier = numpy.searchsorted(ordered, row * (1 + _BINOMTEST_TIE_TOLERANCE),
                                         side="right")
        p_values = numpy.cumsum(ordered)[no_likelier - 1]
        passes = p_values >= ALPHA
        for k in numpy.flatnonzero(numpy.abs(p_values - ALPHA) <= _P_VALUE_MARGIN * ALPHA):
            passes[k] = binomtest(int(k), int(n), weight).pvalue >= ALPHA
        passing = numpy.flatnonzero(passes)
        lows.append(passing[0])
        highs.append(passing[-1])
    return numpy.array(lows), numpy.array(highs)


@dataclass(frozen=True)
class SettleEvidence:
    """How strongly the latest responses say that the data plane sends the intended share to the
    candidate rather than one of the wrong splits (see the module doc). Immutable: `observe`
    returns the next state."""

    # Per wrong split: the log likelihood ratio, intended share over wrong one, of one candidate
    # response and of one stable response; -inf / inf where the intended / wrong share is 0.
    ratios: tuple[tuple[float, float], ...]
    # Per wrong split: the CUSUM of those ratios over the responses so far, in nats.
    log_odds: tuple[float, ...]

    @classmethod
    def start(cls, weight: float) -> SettleEvidence:
        ratios = tuple((_log_ratio(weight, wrong), _log_ratio(1 - weight, 1 - wrong))
                       for wrong in wrong_splits(weight))
        return cls(ratios, (0.0,) * len(ratios))

    @property
    def settled(self) -> bool:
        return min(self.log_odds) >= math.log(SETTLE_ODDS)

    def observe(self, candidate: int, stable: int, other: int = 0) -> SettleEvidence:
        """The evidence after one batch of responses: `candidate` from the candidate version,
        `stable` from the stable one, `other` from versions outside the intended routing."""
        log_odds = []
        for (per_candidate, per_stable), total in zip(self.ratios, self.log_odds, strict=True):
            terms = [count * ratio for count, ratio in ((candidate, per_candidate),
                                                        (stable, per_stable)) if count]
            if other or -math.inf in terms:
                # A batch the intended routing cannot give: the data plane has not switched
                # (completely) yet, so the evidence starts again.
                log_odds.append(0.0)
            else:
                # The CUSUM floor: responses that favour the wrong split (from before the switch)
                # are forgotten rather than owed.
                log_odds.append(max(0.0, total + sum(terms)))
        return replace(self, log_odds=tuple(log_odds))


def _log_ratio(intended: float, wrong: float) -> float:
    if intended == 0:
        return -math.inf
    return math.inf if wrong == 0 else math.log(intended / wrong)


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


# TypeGuard, not TypeIs: False does not rule the type out (a bool is an int, inf is a float).
def is_whole_number(value: object) -> TypeGuard[int]:
    """An int (numpy's too), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_finite_number(value: object) -> TypeGuard[float]:
    """A finite int or float (numpy's too), not a bool."""
    return (isinstance(value, numbers.Real) and not isinstance(value, bool)
            and math.isfinite(value))
