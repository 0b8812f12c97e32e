"""The smoke check: send concurrent GETs to the demo endpoint, check every response against the
function's contract, and test the observed split between candidate and stable versions.

API Gateway does not say which Lambda version answered, so the demo function echoes it in the
`X-Function-Version` header (and the body's `function_version`); versions are counted from that.

The data plane follows an alias update seconds after the control plane shows it, so the check
first settles: it sends batches of `concurrency` requests until the responses show the intended
routing (release/stats.py says when, and why that way) or the settle timeout passes, and only then
sends the measured requests whose split is tested. Settle responses are checked against the
contract and count as errors like any other, but not toward the split. The settle needs to know
the candidate or the stable version; a standalone check given neither measures at once.

Given `config_versions` (function version -> the settings parameter version it was published
with, from each version's `SETTINGS_PARAMETER`), every response of such a version must report that
config version in `X-Config-Version` and the body's `config_version`; any other breaks the
contract: that version does not run with the config it was released with.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

import httpx

from release.stats import (
    ALPHA,
    CONFIDENCE,
    SettleEvidence,
    SmokeInputError,
    SplitTest,
    check_split,
    default_request_count,
    is_finite_number,
    is_whole_number,
    latency_summary,
)
from release.weights import check_weight

__all__ = ["SmokeInputError", "SmokeResult", "check_url", "smoke_check"]

BODY_FIELDS = ("version", "message", "timestamp", "environment", "function_version")
# Distinct error messages kept in the result; the rest are only counted.
ERROR_REASONS_KEPT = 5
# How long the settle waits for the data plane by default: AWS's lags by a few seconds.
SETTLE_TIMEOUT = 10.0


@dataclass(frozen=True)
class SmokeResult:
    """What one smoke run saw and whether it passed; `reasons` says why not, one line per check."""

    url: str
    requests: int
    # Measured responses gathered; fewer than `requests` when the run stopped early (error budget
    # spent).
    completed: int
    expected_weight: float
    candidate_version: str | None
    stable_version: str | None
    # True when the candidate was not given but taken to be the highest-numbered version seen.
    candidate_inferred: bool
    # Measured responses that met the contract, per X-Function-Version.
    version_counts: Mapping[str, int]
    unexpected_versions: tuple[str, ...]
    # The candidate's share of candidate + stable responses; None when there were none.
    candidate_share: float | None
    # Wilson interval (99.9 %) for the candidate's share, and the exact binomial test's p-value.
    share_interval: tuple[float, float] | None
    p_value: float | None
    # Errors: 5xx, 429, timeouts, connection errors and contract violations, over the settle's
    # responses and the measured ones.
    error_count: int
    error_rate: float
    error_reasons: tuple[str, ...]
    contract_violations: int
    max_error_rate: float
    # Over the responses received (errors included, timeouts and connection errors not).
    latency_p50_ms: float | None
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    passed: bool
    reasons: tuple[str, ...]
    # What was inferred or skipped; informational, not failures.
    notes: tuple[str, ...]
    # The settle before the measurement: responses gathered while waiting for the data plane to
    # serve the intended routing, how long that took, and whether it did in time (None: no
    # settle ran).
    settle_requests: int = 0
    settle_seconds: float = 0.0
    settled: bool | None = None
    # The config versions (X-Config-Version) each function version answered with, over every
    # response that met the contract.
    config_versions_seen: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for humans, e.g. `PASS http://...: 381 responses after 412 to settle,
        candidate 8 at 10.2% ...`."""
        settling = f" after {self.settle_requests} to settle" if self.settle_requests else ""
        parts = [f"{'PASS' if self.passed else 'FAIL'} {self.url}: {self.completed} responses"
                 f"{settling}"]
        if self.candidate_share is not None and self.share_interval is not None:
            low, high = self.share_interval
            parts.append(f"candidate {self.candidate_version} at {self.candidate_share:.1%} "
                         f"(expected {self.expected_weight:.1%}, "
                         f"{CONFIDENCE:.1%} CI {low:.1%}-{high:.1%})")
        parts.append(f"errors {self.error_rate:.1%}")
        if self.latency_p50_ms is not None:
            parts.append(f"p50/p95/p99 {self.latency_p50_ms:.0f}/{self.latency_p95_ms:.0f}/"
                         f"{self.latency_p99_ms:.0f} ms")
        line = ", ".join(parts)
        if self.reasons:
            more = f" (+{len(self.reasons) - 1} more)" if len(self.reasons) > 1 else ""
            line += f" - {self.reasons[0]}{more}"
        return line

    def to_dict(self) -> dict[str, object]:
        """A JSON-serialisable copy (tuples become lists)."""
        data = asdict(self)
        data["version_counts"] = dict(self.version_counts)
        data["config_versions_seen"] = {version: list(seen)
                                        for version, seen in self.config_versions_seen.items()}
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


@dataclass(frozen=True)
class Probe:
    """One request's outcome. `version` is set only when the response met the contract;
    `error` says what went wrong otherwise."""

    latency_ms: float | None
    version: str | None = None
    error: str | None = None
    contract_violation: bool = False
    config_version: str | None = None


@dataclass(frozen=True)
class Settle:
    """What the settle saw. `settled` is None when it did not run; `ended_by_errors` when it
    stopped because its errors alone failed the run."""

    probes: tuple[Probe, ...] = ()
    settled: bool | None = None
    seconds: float = 0.0
    ended_by_errors: bool = False


def smoke_check(url: str, *, expected_weight: float, candidate_version: str | None = None,
                stable_version: str | None = None, requests: int | None = None,
                concurrency: int = 16, timeout: float = 10.0, max_error_rate: float = 0.01,
                client: httpx.Client | None = None,
                on_response: Callable[[int, int], None] | None = None,
                settle_timeout: float = SETTLE_TIMEOUT,
                clock: Callable[[], float] = time.monotonic,
                config_versions: Mapping[str, str] | None = None) -> SmokeResult:
    """Settle, then GET `url` `requests` times (default: `default_request_count(expected_weight)`)
    and judge.

    Passes only when no response broke the contract, no version other than candidate and stable
    answered the measured requests, the error rate is at most `max_error_rate`, and the
    candidate's share of the measured responses passes the exact binomial test against
    `expected_weight` at 99.9 % (exactly 0 % / 100 % at weight 0 / 1). Without
    `candidate_version` the highest-numbered version seen is the candidate (Lambda numbers
    versions upward) and the result says so; at weight 0 a lone version is taken as the stable
    one. Without `stable_version` (or with "" or the candidate's own number, both "no stable" to
    Terraform) the most frequent other version is the stable one.

    The settle (see the module doc) sends at most until `settle_timeout` seconds have passed on
    `clock` (0: measure at once); then the measurement runs whether or not the data plane
    settled. Sending stops early once the errors alone fail the run (`completed` < `requests`,
    and the split is not judged), so a broken endpoint is not hammered nor waited on for every
    timeout; the measured requests already in flight then still show which versions answer.
    `client` (not closed here) replaces the pooled client made for the run.
    `on_response(done, total)` is called from the calling thread after each measured response,
    e.g. for a progress bar (not during the settle, whose length is not known beforehand).
    `config_versions` maps function versions to the config version each must report (see the
    module doc); versions not in it are not checked.
    """
    weight = check_weight(expected_weight, "expected_weight")
    _validate(url, requests, concurrency, timeout, max_error_rate, candidate_version,
              stable_version, settle_timeout)
    total = requests if requests is not None else default_request_count(weight)
    candidate = candidate_version or None
    # Terraform's routing treats a stable equal to the candidate as "no stable".
    stable = stable_version if stable_version and stable_version != candidate else None
    # One pooled client: keep-alive connections make hundreds of requests cheap.
    http = client or httpx.Client(limits=httpx.Limits(max_connections=concurrency,
                                                      max_keepalive_connections=concurrency))
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            send = functools.partial(probe, http, url, timeout, config_versions or {})
            settle = Settle()
            if settle_timeout > 0 and (candidate or stable):
                settle = _settle(pool, send, concurrency, weight, candidate, stable, total,
                                 max_error_rate, settle_timeout, clock)
            responses, stopped_early = _measure(pool, send, total, on_response,
                                                max_error_rate, settle.probes)
    finally:
        if client is None:
            http.close()
    return _judge(url, total, weight, max_error_rate, settle, settle_timeout, responses,
                  stopped_early, candidate, stable)


def check_url(url: object) -> None:
    """An http(s) URL with a host, or SmokeInputError: before a phase applies anything."""
    try:
        parsed = httpx.URL(url) if isinstance(url, str) else None
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise SmokeInputError(f"url {url!r} is not an http(s) URL: pass the API's full address, "
                              "e.g. the `api_url` Terraform output (https://...)")


def _validate(url: object, requests: object, concurrency: object, timeout: object,
              max_error_rate: object, candidate_version: object, stable_version: object,
              settle_timeout: object) -> None:
    check_url(url)
    if requests is not None and not (is_whole_number(requests) and requests >= 1):
        raise SmokeInputError(f"requests {requests!r} must be a whole number >= 1 "
                              "(or left out for the default count)")
    if not (is_whole_number(concurrency) and concurrency >= 1):
        raise SmokeInputError(f"concurrency {concurrency!r} must be a whole number >= 1, e.g. 16")
    if not (is_finite_number(timeout) and timeout > 0):
        raise SmokeInputError(f"timeout {timeout!r} must be a number of seconds > 0, e.g. 10")
    if not (is_finite_number(max_error_rate) and 0 <= max_error_rate <= 1):
        raise SmokeInputError(f"max_error_rate {max_error_rate!r} must be a share from 0 to 1, "
                              "e.g. 0.01 for 1 %")
    if not (is_finite_number(settle_timeout) and settle_timeout >= 0):
        raise SmokeInputError(f"settle_timeout {settle_timeout!r} must be a number of seconds "
                              ">= 0, e.g. 10 (0 measures at once)")
    for name, version in (("candidate_version", candidate_version),
                          ("stable_version", stable_version)):
        if version is not None and not isinstance(version, str):
            raise SmokeInputError(f"{name} {version!r} must be a string such as '7' "
                                  "(as Terraform outputs it) or left out")


def _settle(pool: Executor, send: Callable[[], Probe], batch: int, weight: float,
            candidate: str | None, stable: str | None, measured: int, max_error_rate: float,
            settle_timeout: float, clock: Callable[[], float]) -> Settle:
    """Send batches of `batch` requests until the data plane serves the intended routing."""
    evidence = SettleEvidence.start(weight)
    probes: list[Probe] = []
    errors = 0
    started = clock()
    elapsed = 0.0
    while not evidence.settled and elapsed < settle_timeout:
        answers = list(pool.map(lambda _: send(), range(batch)))
        probes += answers
        errors += sum(answer.error is not None for answer in answers)
        roles = Counter(_settle_role(answer.version, candidate, stable)
                        for answer in answers if answer.version is not None)
        evidence = evidence.observe(roles["candidate"], roles["stable"], roles["other"])
        elapsed = clock() - started
        if errors / (len(probes) + measured) > max_error_rate:
            # Not even a flawless measurement could bring the error rate under the limit: the
            # measurement will stop at its first response.
            return Settle(tuple(probes), settled=False, seconds=elapsed, ended_by_errors=True)
    return Settle(tuple(probes), settled=evidence.settled, seconds=elapsed)


def _settle_role(version: str, candidate: str | None, stable: str | None) -> str:
    """Which part of the intended routing `version` is: "candidate", "stable" or "other" (none,
    e.g. the old routing's candidate). A version left out is any version but the given one."""
    if version == candidate or (candidate is None and version != stable):
        return "candidate"
    if version == stable or stable is None:
        return "stable"
    return "other"


def _measure(pool: Executor, send: Callable[[], Probe], total: int,
             on_response: Callable[[int, int], None] | None, max_error_rate: float,
             settle_probes: tuple[Probe, ...]) -> tuple[list[Probe], bool]:
    """The measured responses, and whether sending stopped early because the error budget (over
    the settle's responses too) was spent."""
    futures = [pool.submit(send) for _ in range(total)]
    errors = sum(answer.error is not None for answer in settle_probes)
    planned = len(settle_probes) + total
    stopped_early = False
    for done, future in enumerate(as_completed(futures), start=1):
        if on_response is not None:
            on_response(done, total)
        errors += future.result().error is not None
        if errors / planned > max_error_rate and done < total:
            # The run has failed whatever the rest bring: stop hammering a broken endpoint. Only
            # requests not yet started can be cancelled; the list (not a generator) makes `any`
            # try every one.
            stopped_early = any([f.cancel() for f in futures])
            break
    # Requests already in flight when the run stopped still count.
    return [f.result() for f in futures if not f.cancelled()], stopped_early


def probe(http: httpx.Client, url: str, timeout: float,
          config_versions: Mapping[str, str] | None = None) -> Probe:
    started = time.perf_counter()
    try:
        response = http.get(url, timeout=timeout)
    except httpx.TimeoutException:
        return Probe(latency_ms=None, error=f"timeout after {timeout:g} s")
    except httpx.HTTPError as error:
        return Probe(latency_ms=None, error=f"{type(error).__name__}: {error}")
    return _inspect(response, (time.perf_counter() - started) * 1000, config_versions or {})


def _inspect(response: httpx.Response, latency_ms: float,
             config_versions: Mapping[str, str] | None = None) -> Probe:
    """Check one response against the demo function's contract (and, for the function versions
    in `config_versions`, against the config version each was released with)."""
    status = response.status_code
    if status >= 500 or status == 429:
        hint = " (throttled by API Gateway: lower concurrency)" if status == 429 else ""
        return Probe(latency_ms, error=f"HTTP {status}: {_error_message(response)}{hint}")
    if status != 200:
        return Probe(latency_ms, contract_violation=True,
                         error=f"HTTP {status} (expected 200): {_error_message(response)}")
    problems = []
    content_type = response.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        problems.append(f"Content-Type {content_type!r} is not application/json")
    if response.headers.get("access-control-allow-origin") != "*":
        problems.append("header Access-Control-Allow-Origin is not '*'")
    version = response.headers.get("x-function-version")
    if not version:
        problems.append("header X-Function-Version is missing")
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        problems.append("body is not a JSON object")
    elif missing := [name for name in BODY_FIELDS if name not in body]:
        problems.append(f"body lacks {', '.join(missing)}")
    elif version and body["function_version"] != version:
        problems.append(f"body function_version {body['function_version']!r} differs from "
                        f"header X-Function-Version {version!r}")
    elif version and (expected := (config_versions or {}).get(version)) is not None:
        reported = (response.headers.get("x-config-version"), body.get("config_version"))
        if reported != (expected, expected):
            problems.append(f"function version {version} answered with config version "
                            f"{reported[0] or reported[1]!r}, but was released with {expected!r}")
    if problems:
        return Probe(latency_ms, contract_violation=True, error="; ".join(problems))
    return Probe(latency_ms, version=version,
                 config_version=response.headers.get("x-config-version"))


def _error_message(response: httpx.Response) -> str:
    """The gist of an error body: API Gateway's `message`, the handler's `error`, or the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = (body.get("message") or body.get("error")) if isinstance(body, dict) else None
    if isinstance(message, str):
        return message
    return response.text[:80].strip() or response.reason_phrase


def _resolve_versions(counts: Counter[str], weight: float, candidate: str | None,
                      stable: str | None) -> tuple[str | None, str | None, list[str]]:
    """Fill in the candidate and stable versions the caller left out; notes say what was guessed."""
    notes = []
    if candidate is None:
        pool = [version for version in counts if version != stable]
        # At weight 0 a lone version is the stable one, not a candidate that should not answer.
        if pool and not (weight == 0 and stable is None and len(pool) == 1):
            candidate = max(pool, key=_version_order)
            notes.append(f"candidate taken to be {candidate}, the highest version that answered")
    if stable is None:
        pool = [version for version in counts if version != candidate]
        if pool:
            stable = max(pool, key=lambda version: counts[version])
            notes.append(f"stable taken to be {stable}, the most frequent other version")
    return candidate, stable, notes


def _version_order(version: str) -> tuple[int, int | str]:
    # Numbered versions sort numerically ("10" > "9"); anything else (e.g. $LATEST) sorts first.
    return (1, int(version)) if version.isdigit() else (0, version)


def _judge(url: str, total: int, weight: float, max_error_rate: float, settle: Settle,
           settle_timeout: float, responses: list[Probe], stopped_early: bool,
           candidate_given: str | None, stable_given: str | None) -> SmokeResult:
    counts = Counter(r.version for r in responses if r.version is not None)
    candidate, stable, notes = _resolve_versions(counts, weight, candidate_given, stable_given)
    unexpected = tuple(sorted((v for v in counts if v not in (candidate, stable)),
                              key=_version_order))
    # Errors, the contract and latency cover the settle's responses too; the split does not.
    every = [*settle.probes, *responses]
    errors = [r.error for r in every if r.error is not None]
    error_rate = len(errors) / len(every)
    contract_violations = sum(r.contract_violation for r in every)
    error_reasons = tuple(dict.fromkeys(errors))[:ERROR_REASONS_KEPT]
    # A version that could not be resolved answered no request.
    candidate_count, stable_count = (counts[version] if version is not None else 0
                                     for version in (candidate, stable))
    measured = candidate_count + stable_count
    split = check_split(candidate_count, measured, weight) if measured else None
    latency = latency_summary([r.latency_ms for r in every if r.latency_ms is not None])
    settle_note = _settle_note(settle, settle_timeout, candidate_given or stable_given)
    if settle_note:
        notes.insert(0, settle_note)

    reasons = []
    if contract_violations:
        example = next(r.error for r in every if r.contract_violation)
        reasons.append(f"{contract_violations} response(s) broke the contract, e.g. {example}")
    if unexpected:
        seen = ", ".join(f"{v} ({counts[v]}x)" for v in unexpected)
        reasons.append(f"unexpected version(s) answered: {seen}; expected only "
                       f"{_roles(candidate, stable)}")
    if error_rate > max_error_rate:
        stop = f"; stopped after {len(responses)} of {total} requests" if stopped_early else ""
        reasons.append(f"error rate {error_rate:.1%} ({len(errors)} of {len(every)}) is over "
                       f"the {max_error_rate:.1%} limit, e.g. {error_reasons[0]}{stop}")
    if stopped_early:
        notes.append("split not judged: the run stopped early")
    elif split is None:
        reasons.append("no response from the candidate or stable version met the contract, "
                       "so the split could not be measured")
    elif not split.passed:
        reasons.append(_split_reason(split, candidate, stable))

    return SmokeResult(
        url=url, requests=total, completed=len(responses), expected_weight=weight,
        candidate_version=candidate, stable_version=stable,
        candidate_inferred=candidate_given is None and candidate is not None,
        version_counts=dict(sorted(counts.items(), key=lambda item: _version_order(item[0]))),
        unexpected_versions=unexpected,
        candidate_share=split.share if split else None,
        share_interval=split.interval if split else None,
        p_value=split.p_value if split else None,
        error_count=len(errors), error_rate=error_rate, error_reasons=error_reasons,
        contract_violations=contract_violations, max_error_rate=max_error_rate,
        latency_p50_ms=latency.p50_ms if latency else None,
        latency_p95_ms=latency.p95_ms if latency else None,
        latency_p99_ms=latency.p99_ms if latency else None,
        passed=not reasons, reasons=tuple(reasons), notes=tuple(notes),
        settle_requests=len(settle.probes), settle_seconds=settle.seconds,
        settled=settle.settled,
        config_versions_seen=_config_versions_seen(every),
    )


def _config_versions_seen(probes: list[Probe]) -> dict[str, tuple[str, ...]]:
    seen: dict[str, set[str]] = {}
    for answer in probes:
        if answer.version is not None and answer.config_version is not None:
            seen.setdefault(answer.version, set()).add(answer.config_version)
    return {version: tuple(sorted(seen[version], key=_version_order))
            for version in sorted(seen, key=_version_order)}


def _settle_note(settle: Settle, settle_timeout: float, version_given: str | None) -> str | None:
    if settle.settled is None:
        if settle_timeout > 0 and version_given is None:
            return ("not settled first: with neither the candidate nor the stable version given, "
                    "the new routing cannot be told from the old one, so the split was measured "
                    "at once")
        return None
    versions = Counter(p.version for p in settle.probes if p.version is not None)
    seen = ", ".join(f"{v} ({versions[v]}x)" for v in sorted(versions, key=_version_order))
    what = (f"{len(settle.probes)} requests in {settle.seconds:.1f} s, answered by "
            f"{seen or 'no version'}")
    if settle.settled:
        return (f"settled on the intended routing after {what}; they count toward the errors, "
                "not the split")
    if settle.ended_by_errors:
        return f"settling ended by errors after {what}"
    return (f"the data plane did not settle on the intended routing within {settle_timeout:g} s "
            f"({what}); the split was measured anyway")


def _roles(candidate: str | None, stable: str | None) -> str:
    named = [f"candidate {candidate}" if candidate else "", f"stable {stable}" if stable else ""]
    return " and ".join(part for part in named if part)


def _split_reason(split: SplitTest, candidate: str | None, stable: str | None) -> str:
    if split.expected_weight == 0:
        return (f"candidate {candidate} answered {split.candidate} of {split.total} responses; "
                "weight 0 allows none")
    if split.expected_weight == 1:
        return (f"stable {stable} answered {split.total - split.candidate} of {split.total} "
                f"responses; weight 1 sends every request to candidate {candidate}")
    low, high = split.interval
    return (f"candidate {candidate} got {split.share:.1%} of {split.total} responses "
            f"({CONFIDENCE:.1%} CI {low:.1%}-{high:.1%}), expected {split.expected_weight:.1%}: "
            f"p = {split.p_value:.2g} < {ALPHA:.2g}")

