import math

import numpy
import pytest
from scipy.stats import binom

from release.stats import (
    EXACT_WEIGHT_REQUESTS, MAX_REQUESTS, MIN_REQUESTS, SmokeInputError, check_split,
    default_request_count, latency_summary,
)


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
    passed = sum(n for k, n in zip(values, times) if check_split(int(k), requests, weight).passed)
    return passed / runs


def test_default_count_at_10_percent_passes_a_true_10_and_fails_a_true_20_or_0_exactly():
    requests = default_request_count(0.1)

    assert pass_probability(requests, 0.1, 0.10) >= 0.99
    assert pass_probability(requests, 0.1, 0.20) <= 0.01
    assert pass_probability(requests, 0.1, 0.0) <= 0.01


def test_default_count_at_10_percent_is_the_smallest_that_catches_a_true_20():
    requests = default_request_count(0.1)

    assert pass_probability(requests - 1, 0.1, 0.20) > 0.01
    # The field notes' 141 requests (10 % within +/-5 points) are not enough to catch it.
    assert pass_probability(141, 0.1, 0.20) > 0.1


def test_simulated_smoke_runs_at_10_percent_keep_both_error_rates_under_1_percent():
    rng = numpy.random.default_rng(20240501)
    runs = 2000
    requests = default_request_count(0.1)
    # The exact rates are asserted above; this replays 2000 runs through the same decision, so the
    # bound allows three standard errors of Monte Carlo noise around 99 %.
    noise = 3 * math.sqrt(0.99 * 0.01 / runs)

    assert simulated_pass_rate(requests, 0.1, 0.10, runs, rng) >= 0.99 - noise
    assert 1 - simulated_pass_rate(requests, 0.1, 0.20, runs, rng) >= 0.99 - noise


@pytest.mark.parametrize("weight", [0.05, 0.5, 0.9])
def test_default_count_catches_a_split_10_points_off_at_other_weights(weight):
    requests = default_request_count(weight)

    assert MIN_REQUESTS <= requests <= MAX_REQUESTS
    assert pass_probability(requests, weight, weight) >= 0.99
    for wrong in (max(0.0, weight - 0.1), min(1.0, weight + 0.1)):
        assert pass_probability(requests, weight, wrong) <= 0.01


def test_default_count_is_symmetric_and_capped():
    assert default_request_count(0.1) == default_request_count(0.9)
    assert default_request_count(0.001) == MAX_REQUESTS


@pytest.mark.parametrize("weight", [0, 1, 0.0, 1.0])
def test_weights_0_and_1_need_only_a_small_fixed_count(weight):
    assert default_request_count(weight) == EXACT_WEIGHT_REQUESTS


def test_weight_0_fails_on_a_single_candidate_response():
    assert check_split(0, 50, 0.0).passed
    assert not check_split(1, 50, 0.0).passed
    assert not check_split(1, 2000, 0.0).passed


def test_weight_1_fails_on_a_single_stable_response():
    assert check_split(50, 50, 1.0).passed
    assert not check_split(49, 50, 1.0).passed
    assert not check_split(1999, 2000, 1.0).passed


def test_split_reports_share_p_value_and_the_99_percent_wilson_interval():
    result = check_split(10, 100, 0.1)
    # Wilson score interval computed by hand at z = 2.5758 (99 %).
    z, share, n = 2.5758293035489, 0.1, 100
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)

    assert result.passed and result.share == 0.1 and result.p_value == pytest.approx(1.0)
    assert result.interval == pytest.approx((centre - half, centre + half))


def test_split_far_from_the_weight_fails_with_a_tiny_p_value():
    result = check_split(60, 284, 0.1)

    assert not result.passed
    assert result.p_value < 1e-6
    assert result.interval[0] > 0.1


@pytest.mark.parametrize("weight", [math.nan, math.inf, -0.1, 1.01, True, "0.1", None])
def test_bad_weights_are_refused_with_a_one_line_fix(weight):
    with pytest.raises(SmokeInputError, match=r"weight .* pass a number from 0 to 1") as error:
        default_request_count(weight)
    assert "\n" not in str(error.value)
    with pytest.raises(SmokeInputError):
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
