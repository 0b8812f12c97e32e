"""Wall time of `fast_rollback` (the single UpdateAlias call before traffic is back on stable).

Runs against a local moto server, so it measures our code, botocore and one HTTP round trip,
not Lambda's own latency (in AWS add the region round trip and the seconds of eventual
consistency that `wait_for_routing` covers). Each run puts a 10 % canary on the alias, reads
it (as `invoke rollback --fast` does, for the revision id) and times the rollback alone.

    uv run python benchmarks/fast_rollback_benchmark.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fakes.moto_server import REGION, FakeAws, fake_aws_environment, moto_endpoint  # noqa: E402

from release.aws import Routing, client, fast_rollback, read_alias  # noqa: E402

FUNCTION = "benchmark-fn"
ALIAS = "production"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs

    endpoint = moto_endpoint()
    os.environ.update(fake_aws_environment(endpoint, Path(tempfile.mkdtemp())))
    fake = FakeAws(endpoint)
    fake.deploy(FUNCTION, versions=2, primary="1")
    lambda_client = client("lambda", REGION)
    update_calls: list[str] = []
    lambda_client.meta.events.register("before-call.lambda.UpdateAlias",
                                       lambda model, **_: update_calls.append(model.name))

    seconds = []
    for _ in range(runs):
        fake.set_routing(FUNCTION, "1", {"2": 0.1})
        revision = read_alias(lambda_client, FUNCTION, ALIAS).revision_id
        started = time.perf_counter()
        live = fast_rollback(lambda_client, FUNCTION, ALIAS, "1", revision_id=revision)
        seconds.append(time.perf_counter() - started)
        assert live.routing == Routing("1"), live.routing.describe()

    print(f"fast_rollback against moto ({endpoint}), {runs} runs, "
          f"{len(update_calls) / runs:g} UpdateAlias call(s) per rollback:")
    print(f"  median {statistics.median(seconds) * 1000:.1f} ms, "
          f"max {max(seconds) * 1000:.1f} ms, min {min(seconds) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
