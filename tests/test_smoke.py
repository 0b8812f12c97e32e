import functools
import itertools
import json
import socket
import threading
from collections.abc import Callable

import httpx
import pytest

from fakes.endpoint import BREAKAGES, FakeEndpoint
from release.errors import ReleaseError
from release.smoke import smoke_check
from release.stats import default_request_count


@pytest.fixture
def endpoint():
    with FakeEndpoint(candidate_version="8", stable_version="7", seed=1) as fake:
        yield fake


def ticking_clock(step: float = 0.5) -> Callable[[], float]:
    """A clock that moves `step` seconds each time it is read, i.e. once per settle batch: the
    settle times out after a known number of batches, however fast or loaded the machine is."""
    return functools.partial(next, itertools.count(0.0, step))


# Reads 1000 times before the default settle timeout: for checks that settle well before.
PATIENT = 0.01


def test_intended_split_passes_and_reports_every_response(endpoint):
    endpoint.configure(weight=0.1)
    progress = []
    callback_threads = set()

    def on_response(done, total):
        progress.append((done, total))
        callback_threads.add(threading.current_thread())

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", on_response=on_response,
                         clock=ticking_clock(PATIENT))

    requests = default_request_count(0.1)
    assert result.passed, result.reasons
    assert result.reasons == ()
    assert result.requests == result.completed == requests
    # Settling first costs requests even without a lag: it cannot know there is none.
    assert result.settled and result.settle_requests > 0
    assert endpoint.requests_seen == result.settle_requests + requests
    assert f"{requests} responses after {result.settle_requests} to settle" in result.summary()
    assert set(result.version_counts) == {"7", "8"}
    assert sum(result.version_counts.values()) == requests
    low, high = result.share_interval
    assert low < result.candidate_share < high and low < 0.1 < high
    assert result.p_value >= 0.01
    assert result.error_count == 0 and result.latency_p99_ms is not None
    assert progress == [(done, requests) for done in range(1, requests + 1)]
    assert callback_threads == {threading.current_thread()}


def test_wrong_split_fails_with_a_reason_naming_the_shares(endpoint):
    endpoint.configure(weight=0.25)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock())

    assert not result.passed
    assert len(result.reasons) == 1
    assert "candidate 8 got" in result.reasons[0] and "expected 10.0%" in result.reasons[0]
    assert result.p_value < 0.01


def test_weight_0_fails_when_the_candidate_answers_at_all(endpoint):
    endpoint.configure(weight=0.05)

    result = smoke_check(endpoint.url, expected_weight=0, candidate_version="8",
                         stable_version="7", clock=ticking_clock())

    assert result.requests == 50
    assert not result.passed
    assert "weight 0 allows none" in result.reasons[0]


def test_weight_0_passes_when_only_stable_answers(endpoint):
    result = smoke_check(endpoint.url, expected_weight=0, candidate_version="8",
                         stable_version="7")

    assert result.passed, result.reasons
    assert result.version_counts == {"7": 50}


def test_weight_1_fails_when_stable_still_answers(endpoint):
    endpoint.configure(weight=0.95)

    result = smoke_check(endpoint.url, expected_weight=1, candidate_version="8",
                         stable_version="7", clock=ticking_clock())

    assert not result.passed
    assert "weight 1 sends every request to candidate 8" in result.reasons[0]


def test_errors_over_the_limit_fail_and_stop_the_run_early(endpoint):
    endpoint.configure(weight=0.1, error_rate=0.2)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7")

    assert not result.passed
    assert result.error_reasons == ("HTTP 502: Internal server error",)
    assert any("over the 1.0% limit" in reason for reason in result.reasons)
    # The settle's errors alone spent the budget: only the requests already in flight when the
    # first measured response came back were measured.
    assert result.settled is False and result.notes[0].startswith("settling ended by errors")
    assert result.completed < result.requests
    assert endpoint.requests_seen < result.requests


def test_errors_within_the_limit_pass(endpoint):
    endpoint.configure(weight=0.1, error_rate=0.02)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", max_error_rate=0.05)

    assert result.passed, result.reasons
    assert result.error_count > 0 and result.error_rate <= 0.05


# A data plane lagging the alias: `lag_requests` requests after a configure() still get the
# routing from before it, as AWS's do for seconds after an alias update.
LAG = 300


def test_without_settling_a_lagging_data_plane_fails_a_correct_canary(endpoint):
    # What the settle is for: 300 of the 381 measured requests would still see 0 %.
    endpoint.configure(weight=0.1, lag_requests=LAG)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", settle_timeout=0)

    assert not result.passed
    assert result.settled is None and result.settle_requests == 0
    assert "candidate 8 got" in result.reasons[0]


def test_correct_canary_passes_once_the_lagging_data_plane_settles(endpoint):
    endpoint.configure(weight=0.1, lag_requests=LAG)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock(PATIENT))

    assert result.passed, result.reasons
    # Every lagging request went to the settle, none to the measurement.
    assert result.settled and result.settle_requests >= LAG
    assert result.completed == sum(result.version_counts.values()) == default_request_count(0.1)
    assert result.notes[0].startswith(
        f"settled on the intended routing after {result.settle_requests} requests in ")


@pytest.mark.parametrize("before, after, check", [
    pytest.param({"weight": 0.1}, {"weight": 1.0},
                 {"expected_weight": 1, "candidate_version": "8"}, id="promote 10% to 100%"),
    pytest.param({"weight": 0.1}, {"weight": 0.5},
                 {"expected_weight": 0.5, "candidate_version": "8", "stable_version": "7"},
                 id="rollout step 10% to 50%"),
    pytest.param({"weight": 0.1}, {"weight": 0.0},
                 {"expected_weight": 0, "candidate_version": "8", "stable_version": "7"},
                 id="rollback 10% to 0%"),
    pytest.param({"weight": 0.1}, {"candidate_version": "9"},
                 {"expected_weight": 0.1, "candidate_version": "9", "stable_version": "7"},
                 id="candidate 9 replaces candidate 8 at 10%"),
])
def test_phases_pass_once_the_lagging_data_plane_settles(endpoint, before, after, check):
    endpoint.configure(**before)
    endpoint.configure(**after, lag_requests=LAG)

    result = smoke_check(endpoint.url, **check, clock=ticking_clock(PATIENT))

    assert result.passed, result.reasons
    assert result.settled and result.settle_requests >= LAG
    assert result.unexpected_versions == ()


def test_truly_wrong_split_still_fails_after_the_lag(endpoint):
    # The apply put 20 % where 10 % was meant. Settling only delays the measurement; the
    # measured sample is still judged on its own, so the wrong split is caught.
    endpoint.configure(weight=0.2, lag_requests=LAG)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock())

    assert not result.passed
    assert "candidate 8 got" in result.reasons[0] and "expected 10.0%" in result.reasons[0]


def test_data_plane_that_never_settles_is_measured_after_the_settle_timeout(endpoint):
    # The alias says 10 %, but the data plane keeps routing by the old 0 %.
    endpoint.configure(weight=0.1, lag_requests=10**9)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock(0.5))

    # The clock is read before the settle and after each batch: 20 batches of 16 reach 10 s.
    assert result.settled is False
    assert (result.settle_requests, result.settle_seconds) == (20 * 16, 10.0)
    assert result.notes[0].startswith("the data plane did not settle on the intended routing "
                                      "within 10 s (320 requests in 10.0 s, answered by 7 (320x))")
    assert not result.passed
    assert "candidate 8 got 0.0%" in result.reasons[0]


def test_settle_responses_are_checked_against_the_contract(endpoint):
    endpoint.configure(breakage="missing_cors_header")
    # Few enough to stay within the 1 % error budget, which would stop the run otherwise.
    endpoint.configure(breakage=None, weight=0.1, lag_requests=3)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock(PATIENT))

    assert not result.passed
    assert result.contract_violations == 3
    assert result.reasons == ("3 response(s) broke the contract, e.g. header "
                              "Access-Control-Allow-Origin is not '*'",)
    assert sum(result.version_counts.values()) == result.completed


def test_settle_errors_count_toward_the_error_rate_not_the_split(endpoint):
    endpoint.configure(error_rate=1.0)
    endpoint.configure(error_rate=0.0, weight=0.1, lag_requests=16)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", max_error_rate=0.05, clock=ticking_clock(PATIENT))

    assert result.passed, result.reasons
    assert result.error_count == 16
    assert result.error_reasons == ("HTTP 502: Internal server error",)
    assert result.error_rate == 16 / (result.settle_requests + result.completed)


EXPECTED_COMPLAINT = {
    "missing_version_header": "header X-Function-Version is missing",
    "missing_cors_header": "header Access-Control-Allow-Origin is not '*'",
    "wrong_content_type": "Content-Type 'text/plain' is not application/json",
    "missing_body_field": "body lacks environment",
    "body_version_mismatch": "body function_version '70' differs from header",
    "not_json": "body is not a JSON object",
}


@pytest.mark.parametrize("breakage", BREAKAGES)
def test_contract_violations_fail_naming_the_problem(endpoint, breakage):
    endpoint.configure(breakage=breakage)

    result = smoke_check(endpoint.url, expected_weight=0, requests=20)

    assert not result.passed
    assert result.contract_violations > 0
    assert "broke the contract" in result.reasons[0]
    assert EXPECTED_COMPLAINT[breakage] in result.reasons[0]


def test_a_rare_contract_violation_fails_even_within_the_error_limit(endpoint):
    endpoint.configure(weight=0.1, breakage="missing_body_field", breakage_rate=0.01)

    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", max_error_rate=0.05)

    assert not result.passed
    assert 0 < result.error_rate <= 0.05
    assert len(result.reasons) == 1 and "broke the contract" in result.reasons[0]


def test_wrong_path_is_a_contract_violation(endpoint):
    result = smoke_check(endpoint.url + "-typo", expected_weight=0, requests=5)

    assert not result.passed
    assert "HTTP 403 (expected 200): Missing Authentication Token" in result.reasons[0]


def test_unexpected_version_fails(endpoint):
    endpoint.configure(candidate_version="9", stable_version="8", weight=0.5)

    result = smoke_check(endpoint.url, expected_weight=0.5, candidate_version="9",
                         stable_version="7", requests=100, clock=ticking_clock())

    assert not result.passed
    assert result.unexpected_versions == ("8",)
    assert any(reason.startswith("unexpected version(s) answered: 8 (")
               for reason in result.reasons)


def test_standalone_check_takes_the_highest_version_as_candidate(endpoint):
    # "10" > "9": Lambda versions compare as numbers, not strings.
    endpoint.configure(candidate_version="10", stable_version="9", weight=0.5)

    result = smoke_check(endpoint.url, expected_weight=0.5, requests=200)

    assert result.passed, result.reasons
    assert (result.candidate_version, result.stable_version) == ("10", "9")
    assert result.candidate_inferred
    assert any("candidate taken to be 10" in note for note in result.notes)
    # Without either version the settle cannot tell old routing from new.
    assert result.settled is None and result.settle_requests == 0
    assert result.notes[0].startswith("not settled first: with neither the candidate nor")


def test_standalone_check_at_weight_0_takes_a_lone_version_as_stable(endpoint):
    result = smoke_check(endpoint.url, expected_weight=0)

    assert result.passed, result.reasons
    assert (result.candidate_version, result.stable_version) == (None, "7")
    assert not result.candidate_inferred


def test_standalone_check_at_weight_1_demands_a_single_version(endpoint):
    endpoint.configure(weight=1.0)
    assert smoke_check(endpoint.url, expected_weight=1).passed

    endpoint.configure(weight=0.9)
    result = smoke_check(endpoint.url, expected_weight=1)
    assert not result.passed
    assert "stable 7 answered" in result.reasons[0]


def test_fake_endpoint_follows_reconfiguration_while_running(endpoint):
    assert smoke_check(endpoint.url, expected_weight=0, stable_version="7").passed

    endpoint.configure(candidate_version="9", stable_version="8", weight=1.0)

    assert smoke_check(endpoint.url, expected_weight=1, candidate_version="9").passed
    assert not smoke_check(endpoint.url, expected_weight=0, stable_version="8",
                           clock=ticking_clock()).passed


def test_timeouts_count_as_errors(endpoint):
    endpoint.configure(latency_ms=300)

    result = smoke_check(endpoint.url, expected_weight=0, requests=4, concurrency=4,
                         timeout=0.05)

    assert not result.passed
    assert result.error_reasons == ("timeout after 0.05 s",)


def test_unreachable_endpoint_fails_with_the_connection_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    result = smoke_check(f"http://127.0.0.1:{port}/prod/demo", expected_weight=0, requests=5)

    assert not result.passed
    assert result.error_reasons[0].startswith("ConnectError")


def test_given_client_is_used_and_left_open(endpoint):
    with httpx.Client(headers={"User-Agent": "smoke-test"}) as client:
        result = smoke_check(endpoint.url, expected_weight=0, requests=10, client=client)
        assert not client.is_closed
    assert result.passed, result.reasons


def test_result_renders_as_one_line_and_as_json(endpoint):
    endpoint.configure(weight=0.3)
    result = smoke_check(endpoint.url, expected_weight=0.1, requests=100)

    line = result.summary()
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))

    assert "\n" not in line and line.startswith(f"FAIL {endpoint.url}: 100 responses")
    assert result.reasons[0] in line
    assert data["passed"] is False and data["reasons"] == list(result.reasons)
    assert data["version_counts"] == dict(result.version_counts)


@pytest.mark.parametrize("arguments, named", [
    ({"expected_weight": float("nan")}, "expected_weight = nan"),
    ({"expected_weight": float("inf")}, "expected_weight = inf"),
    ({"expected_weight": -0.1}, "expected_weight = -0.1"),
    ({"expected_weight": 1.5}, "expected_weight = 1.5"),
    ({"expected_weight": 0.1, "requests": 0}, "requests 0"),
    ({"expected_weight": 0.1, "concurrency": 0}, "concurrency 0"),
    ({"expected_weight": 0.1, "timeout": 0}, "timeout 0"),
    ({"expected_weight": 0.1, "max_error_rate": 2}, "max_error_rate 2"),
    ({"expected_weight": 0.1, "settle_timeout": -1}, "settle_timeout -1"),
    ({"expected_weight": 0.1, "settle_timeout": float("nan")}, "settle_timeout nan"),
    ({"expected_weight": 0.1, "candidate_version": 8}, "candidate_version 8"),
    ({"expected_weight": 0.1, "url": "ftp://example.com/demo"}, "url 'ftp://example.com/demo'"),
    ({"expected_weight": 0.1, "url": "127.0.0.1:8080/demo"}, "url '127.0.0.1:8080/demo'"),
])
def test_bad_input_is_refused_before_any_request(endpoint, arguments, named):
    arguments = {"url": endpoint.url, **arguments}

    with pytest.raises(ReleaseError) as error:  # SmokeInputError, or WeightError for the weight
        smoke_check(arguments.pop("url"), **arguments)

    message = str(error.value)
    assert message.startswith(named) and "\n" not in message
    assert endpoint.requests_seen == 0


def test_each_version_answering_with_the_config_it_was_released_with_passes(endpoint):
    endpoint.configure(weight=0.5, config_versions={"7": "3", "8": "4"})
    result = smoke_check(endpoint.url, expected_weight=0.5, candidate_version="8",
                         stable_version="7", config_versions={"7": "3", "8": "4"},
                         clock=ticking_clock(PATIENT))
    assert result.passed, result.reasons
    assert result.config_versions_seen == {"7": ("3",), "8": ("4",)}
    assert result.to_dict()["config_versions_seen"] == {"7": ["3"], "8": ["4"]}


def test_a_version_answering_with_other_config_fails_with_one_line(endpoint):
    # The candidate reads the latest settings, not the parameter version it was published with.
    endpoint.configure(weight=0.5, config_versions={"7": "3", "8": "5"})
    result = smoke_check(endpoint.url, expected_weight=0.5, candidate_version="8",
                         stable_version="7", config_versions={"7": "3", "8": "4"},
                         clock=ticking_clock(PATIENT))
    assert not result.passed
    assert result.reasons[0].endswith(
        "e.g. function version 8 answered with config version '5', but was released with '4'")
    assert "\n" not in result.summary()


def test_a_version_reporting_no_config_fails_when_it_pins_one(endpoint):
    endpoint.configure(weight=0.0)
    result = smoke_check(endpoint.url, expected_weight=0.0, candidate_version="8",
                         stable_version="7", config_versions={"7": "3"},
                         clock=ticking_clock(PATIENT))
    assert not result.passed
    assert "function version 7 answered with config version None, but was released with '3'" in (
        result.reasons[0])


def test_versions_without_expected_config_are_not_checked(endpoint):
    endpoint.configure(weight=0.1)
    result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                         stable_version="7", clock=ticking_clock(PATIENT))
    assert result.passed, result.reasons
    assert result.config_versions_seen == {}
