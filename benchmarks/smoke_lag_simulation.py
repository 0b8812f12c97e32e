"""Simulated smoke checks right after an alias update, against a data plane that lags it.

The bug: a correct 10 % canary failed about one smoke check in 7, because the data plane kept
routing by the old alias for a while after the control plane showed the new one. Target: a
correct phase fails at most 1 in 1,000, and a split 10 points off is still caught 99 % of the time.

Model, per phase: the runner starts the smoke check once GetAlias shows the new routing (t = 0);
the data plane switches from the old routing to the new one at a lag drawn uniformly from 0 to
--max-lag seconds (5 by default) and routes each request at random by the routing in force when
the request arrives. Each request takes --latency seconds. The settle sends batches of
`concurrency` requests one after another, the measurement keeps `concurrency` in flight, as
release/smoke.py does. No HTTP: the version counts are drawn, and judged by the real code,
release.stats.SettleEvidence (when to start measuring), default_request_count and check_split
(the verdict). Errors and latency outliers are left out: they fail a check whatever its split.

    cd /work/main && .venv/bin/python benchmarks/smoke_lag_simulation.py [--phases N] [--latency S]

Takes a minute or two: the main scenario runs 200,000 phases, enough for its 95 % interval to
show a rate under 1 in 1,000 (the test alone fails 0.08 %).
"""

from __future__ import annotations

import argparse
import functools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from release.smoke import SETTLE_TIMEOUT  # noqa: E402
from release.stats import (  # noqa: E402
    ALPHA,
    POWER,
    SettleEvidence,
    check_split,
    default_request_count,
)

CONCURRENCY = 16  # smoke_check's default
TARGET_FALSE_FAILURES = 0.001


@dataclass(frozen=True)
class Scenario:
    """One kind of phase. A routing is the share of requests answered by the intended candidate,
    the stable version, and any other version (say, the previous candidate)."""

    name: str
    before: tuple[float, float, float]
    after: tuple[float, float, float]
    expected_weight: float
    # Measured without settling, as before the fix.
    settle: bool = True

    @property
    def correct(self) -> bool:
        return self.after[0] == self.expected_weight


def canary(share: float) -> tuple[float, float, float]:
    return (share, 1 - share, 0.0)


SCENARIOS = (
    Scenario("canary 0% -> 10%", canary(0.0), canary(0.1), 0.1),
    Scenario("canary 0% -> 10%, no settle", canary(0.0), canary(0.1), 0.1, settle=False),
    Scenario("canary 0% -> 20%, 10% meant", canary(0.0), canary(0.2), 0.1),
    Scenario("canary 0% -> 20%, 10% meant, no settle", canary(0.0), canary(0.2), 0.1,
             settle=False),
    Scenario("candidate v3 replaces v2 at 10%", (0.0, 0.9, 0.1), canary(0.1), 0.1),
    Scenario("rollout 10% -> 50%", canary(0.1), canary(0.5), 0.5),
    Scenario("rollout 10% -> 40%, 50% meant", canary(0.1), canary(0.4), 0.5),
    Scenario("promote 10% -> 100%", canary(0.1), canary(1.0), 1.0),
    Scenario("promote 10% -> 90%, 100% meant", canary(0.1), canary(0.9), 1.0),
    Scenario("rollback 10% -> 0%", canary(0.1), canary(0.0), 0.0),
)


@functools.cache
def split_passes(candidate: int, total: int, weight: float) -> bool:
    # check_split itself, remembered: it depends on nothing but its arguments.
    return check_split(candidate, total, weight).passed


@dataclass(frozen=True)
class Phase:
    failed: bool
    settle_requests: int
    settle_seconds: float
    settled: bool


def simulate_phase(scenario: Scenario, rng: numpy.random.Generator, latency: float,
                   max_lag: float) -> Phase:
    lag = rng.uniform(0.0, max_lag)
    weight = scenario.expected_weight
    # The settle as release.smoke._settle runs it: a batch, then a clock reading, until the
    # evidence says settled or the timeout has passed (a batch takes `latency` seconds).
    timeout = SETTLE_TIMEOUT if scenario.settle else 0.0
    evidence = SettleEvidence.start(weight)
    batches, elapsed = 0, 0.0
    while not evidence.settled and elapsed < timeout:
        routing = scenario.before if batches * latency < lag else scenario.after
        candidate, stable, other = rng.multinomial(CONCURRENCY, routing)
        evidence = evidence.observe(int(candidate), int(stable), int(other))
        batches += 1
        elapsed = batches * latency
    # The measurement: request j is sent at elapsed + (j // CONCURRENCY) * latency.
    total = default_request_count(weight)
    rounds_before_switch = max(0, math.ceil((lag - elapsed) / latency))
    old = min(total, CONCURRENCY * rounds_before_switch)
    counts = rng.multinomial(old, scenario.before) + rng.multinomial(total - old, scenario.after)
    candidate, stable, other = (int(count) for count in counts)
    failed = other > 0 or not split_passes(candidate, candidate + stable, weight)
    return Phase(failed, batches * CONCURRENCY, elapsed, evidence.settled)


def clopper_pearson(failures: int, phases: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    interval = binomtest(failures, phases).proportion_ci(confidence_level=0.95, method="exact")
    return float(interval.low), float(interval.high)


def exact_clean_fail_rate(weight: float, true_share: float) -> float:
    """The chance that check_split fails a measurement taken wholly after the switch."""
    from scipy.stats import binom

    total = default_request_count(weight)
    return float(sum(binom.pmf(k, total, true_share) for k in range(total + 1)
                     if not split_passes(k, total, weight)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", type=int, default=200_000,
                        help="phases of the main scenario, a correct 0%% -> 10%% canary")
    parser.add_argument("--other-phases", type=int, default=10_000,
                        help="phases of every other scenario")
    parser.add_argument("--latency", type=float, default=0.05,
                        help="seconds per request (16 in flight: 0.05 s is 320 requests/s)")
    parser.add_argument("--max-lag", type=float, default=5.0,
                        help="the data plane switches at a lag uniform from 0 to this (s)")
    parser.add_argument("--seed", type=int, default=20240601)
    args = parser.parse_args()
    rng = numpy.random.default_rng(args.seed)

    print(f"lag uniform 0-{args.max_lag:g} s, {CONCURRENCY} requests in flight at "
          f"{args.latency * 1000:g} ms each ({CONCURRENCY / args.latency:.0f} requests/s), settle "
          f"timeout {SETTLE_TIMEOUT:g} s, test at alpha {ALPHA:g}")
    header = (f"{'scenario':<40} {'correct':>7} {'phases':>7} {'failed':>7} {'fail rate':>9} "
              f"{'95% CI':>17} {'settle req':>10} {'settle s':>8} {'timed out':>9}")
    print(header)
    print("-" * len(header))
    rates: dict[str, tuple[int, int]] = {}
    started = time.perf_counter()
    for index, scenario in enumerate(SCENARIOS):
        phases = args.phases if index == 0 else args.other_phases
        runs = [simulate_phase(scenario, rng, args.latency, args.max_lag) for _ in range(phases)]
        failures = sum(run.failed for run in runs)
        rates[scenario.name] = (failures, phases)
        low, high = clopper_pearson(failures, phases)
        timed_out = sum(scenario.settle and not run.settled for run in runs) / phases
        print(f"{scenario.name:<40} {'yes' if scenario.correct else 'no':>7} {phases:>7} "
              f"{failures:>7} {failures / phases:>9.5f} {f'{low:.5f}-{high:.5f}':>17} "
              f"{numpy.mean([run.settle_requests for run in runs]):>10.0f} "
              f"{numpy.mean([run.settle_seconds for run in runs]):>8.2f} {timed_out:>9.1%}")
    print(f"({time.perf_counter() - started:.0f} s)")

    main_failures, main_phases = rates[SCENARIOS[0].name]
    low, high = clopper_pearson(main_failures, main_phases)
    power_failures, power_phases = rates[SCENARIOS[2].name]
    power_low, _ = clopper_pearson(power_failures, power_phases)
    print(f"\ncorrect 10% canary: {main_failures} false failures in {main_phases} phases = "
          f"{main_failures / main_phases:.5f} (95% CI {low:.5f}-{high:.5f}); target <= "
          f"{TARGET_FALSE_FAILURES:g}: {'met' if high <= TARGET_FALSE_FAILURES else 'NOT met'} "
          "(upper bound)")
    print(f"true 20% where 10% is meant: caught {power_failures / power_phases:.4f} (95% CI from "
          f"{power_low:.4f}); target >= {POWER:g}: "
          f"{'met' if power_failures / power_phases >= POWER else 'NOT met'}")
    print(f"for reference, measured wholly after the switch ({default_request_count(0.1)} "
          f"requests): a true 10% fails {exact_clean_fail_rate(0.1, 0.1):.5f}, a true 20% is "
          f"caught {exact_clean_fail_rate(0.1, 0.2):.4f} (exact)")


if __name__ == "__main__":
    main()
