"""Wall time of `invoke report` (history only, with the PNG) on a 1,000-phase history.

Target: under 2 s. The history repeats a plausible day of releases of the staging environment
(deploy, a canary that fails its smoke check and is rolled back, a 10/50/100 % rollout, a canary
rolled back by the stack's alarm, a rollout whose bake fails, a `rollback --fast`) with new
versions each day; smoke results come from the real statistics code on simulated responses.

    cd /work/main && .venv/bin/python benchmarks/report_benchmark.py [--phases N]
    .venv/bin/python benchmarks/report_benchmark.py --day-out docs/sample-history.jsonl

`--day-out` writes one such day instead (the history behind docs/sample-report.html).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT)]

import numpy  # noqa: E402

from release.config import load_config  # noqa: E402
from release.history import PhaseRecord, ReleaseHistory  # noqa: E402
from release.kinds import Outcome, Phase  # noqa: E402
from release.report import ReportOptions, write_report  # noqa: E402
from release.smoke import SmokeResult  # noqa: E402
from release.stats import check_split, latency_summary  # noqa: E402

ENVIRONMENT = "staging"
FUNCTION = "deploy-patterns-demo-staging"
URL = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod/demo"
CALLER = "dana@build-07"
TARGET_SECONDS = 2.0
FIRST_DAY = datetime(2026, 3, 2, tzinfo=UTC)
# Smoke requests the default sizing sends at each weight (release.stats.default_request_count).
REQUESTS = {0.0: 50, 0.1: 284, 0.25: 498, 0.5: 596, 1.0: 50}


class Day:
    """Builds one day's records as the release runner writes them."""

    def __init__(self, day: datetime, stable: int, rng: numpy.random.Generator) -> None:
        self.day, self.stable, self.rng = day, stable, rng
        self.candidate = stable
        self.records: list[dict[str, Any]] = []

    def routing(self, weight: float) -> dict[str, Any]:
        if weight >= 1 or self.candidate == self.stable:
            return {"primary_version": str(self.candidate), "additional_version_weights": {}}
        weights = {str(self.candidate): weight} if weight > 0 else {}
        return {"primary_version": str(self.stable), "additional_version_weights": weights}

    def smoke(self, weight: float, *, error_rate: float = 0.0, slow: bool = False) -> dict:
        total = REQUESTS[weight]
        hits = int(self.rng.binomial(total, weight))
        split = check_split(hits, total, weight)
        errors = int(self.rng.binomial(hits, error_rate))
        latencies = self.rng.lognormal(numpy.log(180 if not slow else 420), 0.35, total)
        latency = latency_summary(latencies.tolist())
        assert latency is not None  # every weight in REQUESTS sends requests
        counts = {str(self.stable): total - hits, str(self.candidate): hits - errors}
        reasons = [f"error rate {errors / total:.1%} ({errors} of {total}) exceeds 1.0%"] \
            if errors / total > 0.01 else []
        return SmokeResult(
            url=URL, requests=total, completed=total, expected_weight=weight,
            candidate_version=str(self.candidate), stable_version=str(self.stable),
            candidate_inferred=False,
            version_counts={version: count for version, count in counts.items() if count},
            unexpected_versions=(), candidate_share=split.share, share_interval=split.interval,
            p_value=split.p_value, error_count=errors, error_rate=errors / total,
            error_reasons=("HTTP 502",) if errors else (), contract_violations=0,
            max_error_rate=0.01, latency_p50_ms=latency.p50_ms, latency_p95_ms=latency.p95_ms,
            latency_p99_ms=latency.p99_ms, passed=not reasons and split.passed,
            reasons=tuple(reasons), notes=()).to_dict()

    def record(self, at: str, phase: str, before: float, after: float, *, smoke: dict | None,
               outcome: str = "succeeded", detail: str = "", seconds: float = 45.0,
               caller: str = CALLER) -> None:
        hour, minute, second = map(int, at.split(":"))
        moment = self.day + timedelta(hours=hour, minutes=minute, seconds=second)
        self.records.append(PhaseRecord(
            time=moment.strftime("%Y-%m-%dT%H:%M:%SZ"), environment=ENVIRONMENT, caller=caller,
            phase=Phase(phase), routing_before=self.routing(before),
            routing_after=self.routing(after), candidate_version=str(self.candidate),
            stable_version=str(self.stable), smoke=smoke,
            alarms=None if smoke is None else dict.fromkeys(ALARMS, "OK"),
            outcome=Outcome(outcome), detail=detail, duration_seconds=seconds).to_dict())

    def release(self) -> None:
        self.candidate += 1

    def promoted(self) -> None:
        self.stable = self.candidate


ALARMS = [f"{FUNCTION}-{kind}" for kind in
          ("error-rate", "canary-error-rate", "p99-duration", "throttles", "api-5xx-rate")]


def day_of_releases(day: datetime, stable: int, rng: numpy.random.Generator) -> Day:
    """22 phases; five candidate versions, two of them promoted."""
    d = Day(day, stable, rng)
    d.release()  # a change merged: the next apply publishes it
    d.record("09:14:41", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=52)
    d.record("09:21:03", "canary", 0, 0.1, smoke=d.smoke(0.1), seconds=63)
    bad = d.smoke(0.25, error_rate=0.2)  # about 5 % of all requests fail: always over 1 %
    d.record("09:52:40", "canary", 0.1, 0, smoke=bad, outcome="rolled-back", seconds=88,
             detail=f"{bad['reasons'][0]}; rolled back through Terraform to v{d.stable} 100 %")
    d.release()
    d.record("11:02:17", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=49)
    # A 10/50/100 % rollout with 2-minute bakes: a bake that passes writes no record.
    d.record("11:09:12", "rollout-step", 0, 0.1, smoke=d.smoke(0.1), seconds=61)
    d.record("11:12:20", "rollout-step", 0.1, 0.5, smoke=d.smoke(0.5), seconds=66)
    d.record("11:15:31", "promote", 0.5, 1.0, smoke=d.smoke(1.0), seconds=58)
    d.promoted()
    d.release()
    d.record("14:30:05", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=47)
    d.record("14:36:44", "canary", 0, 0.1, smoke=d.smoke(0.1), seconds=62)
    # The canary error-rate alarm fires at 14:51; the stack's rollback function takes the
    # weight off; `invoke rollback` notices at 15:20, records it, then brings Terraform in line.
    alarm = f"{FUNCTION}-canary-error-rate"
    fired = d.day + timedelta(hours=14, minutes=51, seconds=37, milliseconds=112)
    description = (f"rolled back by alarm {alarm} at {fired:%Y-%m-%dT%H:%M:%S.%f}"[:-3]
                   + f"+0000: v{d.stable} 90 % + v{d.candidate} 10 % -> v{d.stable} 100 %")
    d.record("15:20:04", "rollback", 0.1, 0, smoke=None, outcome="rolled-back",
             detail=description, seconds=0.0, caller=f"alarm {alarm}")
    d.record("15:20:51", "rollback", 0, 0, smoke=d.smoke(0.0), seconds=47,
             detail=f"acknowledged: {description}")
    d.release()
    d.record("16:45:10", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=50)
    d.record("16:52:02", "rollout-step", 0, 0.1, smoke=d.smoke(0.1), seconds=60)
    step = d.smoke(0.5, slow=True)
    d.record("16:55:14", "rollout-step", 0.1, 0.5, smoke=step, seconds=64)
    # The bake after the 50 % step fails on p99: a second record repeating the step's smoke.
    d.record("16:57:18", "rollout-step", 0.5, 0, smoke=step, outcome="rolled-back", seconds=124,
             detail=(f"version {d.candidate} p99 1840 ms exceeds 1000 ms while version "
                     f"{d.stable}'s is 212 ms; rolled back through Terraform to v{d.stable} 100 %"))
    d.release()
    d.record("17:40:33", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=51)
    d.record("17:46:09", "rollout-step", 0, 0.1, smoke=d.smoke(0.1), seconds=62)
    d.record("17:49:15", "rollout-step", 0.1, 0.5, smoke=d.smoke(0.5), seconds=65)
    d.record("17:52:24", "promote", 0.5, 1.0, smoke=d.smoke(1.0), seconds=57)
    d.promoted()
    d.release()
    d.record("18:20:02", "deploy", 0, 0, smoke=d.smoke(0.0), seconds=48)
    d.record("18:26:40", "canary", 0, 0.1, smoke=d.smoke(0.1), seconds=61)
    # Someone sees trouble: `rollback --fast` moves the alias with one UpdateAlias first, so
    # the rollback phase starts with the routing already back on the stable version.
    d.record("18:34:27", "rollback", 0, 0, smoke=d.smoke(0.0), seconds=44)
    return d


def history(phases: int, seed: int = 12) -> Iterator[dict[str, Any]]:
    rng = numpy.random.default_rng(seed)
    stable, day, produced = 3, FIRST_DAY, 0
    while produced < phases:
        releases = day_of_releases(day, stable, rng)
        yield from releases.records[:phases - produced]
        produced += len(releases.records)
        stable, day = releases.stable, day + timedelta(days=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=1000, help="history length to time")
    parser.add_argument("--day-out", type=Path, help="write one day of releases here, then stop")
    args = parser.parse_args()
    if args.day_out:
        records = day_of_releases(FIRST_DAY, 3, numpy.random.default_rng(12)).records
        args.day_out.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n"
                                        for r in records))
        print(f"{len(records)} records -> {args.day_out}")
        return
    environment = load_config(PROJECT_ROOT / "environments.toml").environment(ENVIRONMENT)
    with tempfile.TemporaryDirectory() as scratch:
        store = ReleaseHistory(Path(scratch) / "history.jsonl")
        store.path.write_text("".join(json.dumps(record) + "\n"
                                      for record in history(args.phases)))
        started = time.perf_counter()
        written = write_report(environment, Path(scratch) / "report.html", history=store,
                               options=ReportOptions(metrics="off", png=True))
        seconds = time.perf_counter() - started
        size = written.html.stat().st_size / 1024
    verdict = "within" if seconds <= TARGET_SECONDS else "OVER"
    print(f"{written.phases} phases, {written.rollbacks} rollbacks: HTML ({size:.0f} KiB) and PNG "
          f"in {seconds:.2f} s ({verdict} the {TARGET_SECONDS:g} s target)")


if __name__ == "__main__":
    main()
