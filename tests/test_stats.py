import math

import numpy
import pytest
from scipy.stats import binom

import release.stats
from release.stats import (
    ALPHA,
    EXACT_WEIGHT_REQUESTS,
    MAX_REQUESTS,
    MIN_REQUESTS,
    POWER,
    SettleEvidence,
    SmokeInputError,
    _acceptance_ranges,
    check_split,
    default_request_count,
    exact_request_count,
    latency_summary,
)
from release.stats_table import REQUEST_COUNTS
from release.weights import WeightError

WHOLE_PERCENTS = [i / 100 for i in range(1, 100)]


def pass_probability(requests: int, weight: float, true_share: float) -> float:
    """Exact chance that `check_split` passes `weight` when the candidate really gets `true_share`.

    Counts outside the central 1 - 2e-12 of Binomial(requests, true_share) are skipped: they
    cannot move the result across 1 % and checking each one costs a binomial test.
    """
    low = int(binom.ppf(1e-12, requests, true_share))
    high = int(binom.isf(1e-12, requests, true_share))
    return sum(binom.pmf(k, requests, true_share)
               for k in range(low, high + 1) if check_split(k, requests, weight).passed)


def simulated_pass_rate(requests: int, weight: float, true_share: float, runs: int,
                        rng: numpy.random.Generator) -> float:
    """Share of `runs` simulated smoke runs whose split check passes."""
    hits = rng.binomial(requests, true_share, size=runs)
    values, times = numpy.unique(hits, return_counts=True)
    passed = sum(n for k, n in zip(values, times, strict=True)
                 if check_split(int(k), requests, weight).passed)
    return passed / runs


def test_default_count_at_10_percent_passes_a_true_10_and_fails_a_true_20_or_0_exactly():
    requests = default_request_count(0.1)

    assert requests == 381
    # A correct split fails at most 1 check in 1,000; a split 10 points off passes at most 1 in 100.
    assert pass_probability(requests, 0.1, 0.10) >= 1 - ALPHA
    assert pass_probability(requests, 0.1, 0.20) <= 1 - POWER
    assert pass_probability(requests, 0.1, 0.0) <= 1 - POWER


def test_default_count_at_10_percent_is_the_smallest_that_catches_a_true_20():
    requests = default_request_count(0.1)

    assert pass_probability(requests - 1, 0.1, 0.20) > 1 - POWER
    # The field notes' 141 requests (10 % within +/-5 points) are not enough to catch it.
    assert pass_probability(141, 0.1, 0.20) > 0.1


def test_simulated_smoke_runs_at_10_percent_keep_both_error_rates_in_bounds():
    rng = numpy.random.default_rng(20240501)
    runs = 2000
    requests = default_request_count(0.1)

    # The exact rates are asserted above; this replays 2000 runs through the same decision, so the
    # bounds allow three standard errors of Monte Carlo noise.
    def noise(rate: float) -> float:
        return 3 * math.sqrt(rate * (1 - rate) / runs)

    assert simulated_pass_rate(requests, 0.1, 0.10, runs, rng) >= 1 - ALPHA - noise(ALPHA)
    assert 1 - simulated_pass_rate(requests, 0.1, 0.20, runs, rng) >= POWER - noise(POWER)


@pytest.mark.parametrize("weight", [0.05, 0.5, 0.9])
def test_default_count_catches_a_split_10_points_off_at_other_weights(weight):
    requests = default_request_count(weight)

    assert MIN_REQUESTS <= requests <= MAX_REQUESTS
    assert pass_probability(requests, weight, weight) >= 1 - ALPHA
    for wrong in (max(0.0, weight - 0.1), min(1.0, weight + 0.1)):
        assert pass_probability(requests, weight, wrong) <= 1 - POWER


def test_default_count_is_symmetric_and_capped():
    assert default_request_count(0.1) == default_request_count(0.9)
    assert default_request_count(0.001) == MAX_REQUESTS


@pytest.mark.parametrize("weight", [0, 1, 0.0, 1.0])
def test_weights_0_and_1_need_only_a_small_fixed_count(weight):
    assert default_request_count(weight) == EXACT_WEIGHT_REQUESTS


def test_table_holds_the_exact_search_for_every_whole_percent():
    exact = {weight: exact_request_count(weight) for weight in WHOLE_PERCENTS}

    assert exact == REQUEST_COUNTS, f"regenerate release/stats_table.py with {exact}"


def test_whole_percents_are_sized_without_searching(monkeypatch):
    def no_search(weight: float) -> int:
        raise AssertionError(f"searched for {weight!r}")

    monkeypatch.setattr(release.stats, "exact_request_count", no_search)

    for weight in [0.0, *WHOLE_PERCENTS, 1.0]:
        default_request_count(weight)
    # A weight off the table (0.3 - 0.2 is not the float 0.1) is searched, never rounded.
    with pytest.raises(AssertionError, match="searched for 0.09999999999999998"):
        default_request_count(0.3 - 0.2)


@pytest.mark.parametrize("weight", [0.01, 0.1, 0.37, 0.5, 0.93])
def test_search_passes_exactly_the_counts_check_split_passes(weight):
    # The search sums p-values itself rather than calling binomtest per count: its acceptance
    # ranges must be check_split's, right at their edges.
    counts = numpy.array([MIN_REQUESTS, default_request_count(weight), MAX_REQUESTS])
    for n, low, high in zip(counts, *_acceptance_ranges(counts, weight), strict=True):
        n, low, high = int(n), int(low), int(high)
        assert check_split(low, n, weight).passed and check_split(high, n, weight).passed
        assert low == 0 or not check_split(low - 1, n, weight).passed
        assert high == n or not check_split(high + 1, n, weight).passed


def test_weight_0_fails_on_a_single_candidate_response():
    assert check_split(0, 50, 0.0).passed
    assert not check_split(1, 50, 0.0).passed
    assert not check_split(1, 2000, 0.0).passed


def test_weight_1_fails_on_a_single_stable_response():
    assert check_split(50, 50, 1.0).passed
    assert not check_split(49, 50, 1.0).passed
    assert not check_split(1999, 2000, 1.0).passed


def test_split_reports_share_p_value_and_the_99_9_percent_wilson_interval():
    result = check_split(10, 100, 0.1)
    # Wilson score interval computed by hand at z = 3.2905 (99.9 %).
    z, share, n = 3.2905267314919255, 0.1, 100
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)

    assert result.passed and result.share == 0.1 and result.p_value == pytest.approx(1.0)
    assert result.interval == pytest.approx((centre - half, centre + half))


def test_split_far_from_the_weight_fails_with_a_tiny_p_value():
    result = check_split(60, 284, 0.1)

    assert not result.passed
    assert result.p_value < 1e-6
    assert result.interval[0] > 0.1


@pytest.mark.parametrize("weight", [math.nan, math.inf, -0.1, 1.01, True, "abc", None])
def test_bad_weights_are_refused_with_a_one_line_fix(weight):
    with pytest.raises(WeightError, match=r"weight = .*: must be a number from 0 to 1") as error:
        default_request_count(weight)
    assert "\n" not in str(error.value)
    with pytest.raises(WeightError):
        check_split(1, 10, weight)


@pytest.mark.parametrize("candidate, total", [(-1, 10), (11, 10), (0, 0), (1.5, 10), (1, True)])
def test_bad_split_counts_are_refused(candidate, total):
    with pytest.raises(SmokeInputError, match="split counts"):
        check_split(candidate, total, 0.1)


def test_latency_summary_gives_percentiles_in_milliseconds():
    summary = latency_summary([float(ms) for ms in range(1, 101)])

    assert summary.p50_ms == pytest.approx(50.5)
    assert summary.p95_ms == pytest.approx(95.05)
    assert summary.p99_ms == pytest.approx(99.01)


def test_latency_summary_of_nothing_is_none():
    assert latency_summary([]) is None


@pytest.mark.parametrize("weight, right, wrong", [(0.0, "stable", "candidate"),
                                                  (1.0, "candidate", "stable")])
def test_settle_at_weight_0_or_1_needs_132_responses_in_a_row_from_the_one_version(weight, right,
                                                                                   wrong):
    # ln(1e6) / ln(1 / 0.9) = 131.1: the odds against a data plane still sending 10 % elsewhere.
    almost = SettleEvidence.start(weight).observe(**{right: 131, wrong: 0})

    assert not almost.settled
    assert almost.observe(**{right: 1, wrong: 0}).settled
    # One response from the other version starts the count again.
    assert not almost.observe(**{right: 0, wrong: 1}).observe(**{right: 131, wrong: 0}).settled


def test_settle_of_a_new_canary_needs_its_first_candidate_after_enough_old_routing():
    old_routing = SettleEvidence.start(0.1).observe(candidate=0, stable=160)

    # 160 responses without the candidate rule out 20 % but not 0 %: no switch seen yet.
    assert not old_routing.settled
    # The first candidate response shows the switch, which rules out 0 % for good.
    assert old_routing.observe(candidate=1, stable=15).settled
    # Without that history, one candidate in 16 responses does not rule out 20 %.
    assert not SettleEvidence.start(0.1).observe(candidate=1, stable=15).settled


def test_settle_of_a_rollout_step_waits_while_the_old_step_answers():
    evidence = SettleEvidence.start(0.5)
    for _ in range(100):
        evidence = evidence.observe(candidate=2, stable=14)  # the old 10 % step, roughly

    assert not evidence.settled
    for _ in range(60):
        evidence = evidence.observe(candidate=8, stable=8)
    assert evidence.settled


def test_a_version_outside_the_intended_routing_restarts_the_settle():
    evidence = SettleEvidence.start(0.0).observe(candidate=0, stable=200)

    assert evidence.settled
    assert not evidence.observe(candidate=0, stable=15, other=1).settled
