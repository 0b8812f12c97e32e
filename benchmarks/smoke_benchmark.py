"""Wall time of one smoke check: 500 requests against the fake endpoint at 20 ms latency.

Target: <= 3 s on the 2-core dev machine with the default concurrency.

    cd /work/main && uv run python benchmarks/smoke_benchmark.py [--concurrency N ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")]

from fakes.endpoint import FakeEndpoint  # noqa: E402

from release.smoke import smoke_check  # noqa: E402

REQUESTS = 500
LATENCY_MS = 20
TARGET_SECONDS = 3.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, nargs="*", default=[],
                        help="concurrency levels to time besides the default")
    args = parser.parse_args()
    with FakeEndpoint(candidate_version="8", stable_version="7", weight=0.1,
                      latency_ms=LATENCY_MS) as endpoint:
        for concurrency in [None, *args.concurrency]:
            options = {} if concurrency is None else {"concurrency": concurrency}
            started = time.perf_counter()
            result = smoke_check(endpoint.url, expected_weight=0.1, candidate_version="8",
                                 stable_version="7", requests=REQUESTS, **options)
            seconds = time.perf_counter() - started
            label = "default" if concurrency is None else str(concurrency)
            verdict = "within" if seconds <= TARGET_SECONDS else "OVER"
            print(f"concurrency {label:>7}: {REQUESTS} requests in {seconds:.2f} s "
                  f"({REQUESTS / seconds:.0f} req/s, {verdict} the {TARGET_SECONDS:g} s target); "
                  f"{result.summary()}")


if __name__ == "__main__":
    main()
