"""Overhead of one release phase when nothing changes: everything except Terraform itself.

Sets up the end-to-end stand-ins (moto server, Terraform double on PATH that also moves the
alias in moto, local endpoint that follows the alias), deploys version 1, starts a 10 % canary
of version 2, then times the same canary again (nothing to change) several times. Time spent
inside Terraform subprocesses is measured and subtracted. Target: <= 1 s without the smoke check.

    uv run python benchmarks/phase_benchmark.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")]

from fakes.endpoint import FakeEndpoint  # noqa: E402
from fakes.moto_server import REGION, FakeAws, fake_aws_environment, moto_endpoint  # noqa: E402
from fakes.terraform_double import TerraformDouble, write_stack  # noqa: E402
from release.config import parse_config  # noqa: E402
from release.context import ReleaseContext, RunnerOptions  # noqa: E402
from release.history import ReleaseHistory  # noqa: E402
from release.kinds import Phase  # noqa: E402
from release.runner import run_phase  # noqa: E402
from release.terraform import Terraform  # noqa: E402

FUNCTION = "deploy-patterns-demo-dev"
TARGET_SECONDS = 1.0


class TimedTerraform(Terraform):
    """Terraform that adds up the wall time of its subprocesses."""

    seconds = 0.0

    def _run(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return super()._run(*args, **kwargs)
        finally:
            TimedTerraform.seconds += time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ.update(fake_aws_environment(moto_endpoint(), root))
        config_path = root / "environments.toml"
        config_path.write_text(
            f'[environments.dev]\nregion = "{REGION}"\nfunction_name = "{FUNCTION}"\n')
        os.environ["CDKTF_OUTDIR"] = str(root / "cdktf.out")
        environment = parse_config(config_path.read_text(), config_path).environment("dev")
        write_stack(environment.stack_dir)
        aws = FakeAws(os.environ["AWS_ENDPOINT_URL"])
        aws.deploy(FUNCTION, versions=1, alarm_names=[f"{FUNCTION}-error-rate"])
        with FakeEndpoint(candidate_version="1", stable_version="1") as endpoint:
            double = TerraformDouble(root, candidate_version="1", function_name=FUNCTION,
                                     region=REGION, api_url=endpoint.url, sync_alias=True,
                                     alarm_names=[f"{FUNCTION}-error-rate"])
            os.environ.update(double.env)
            for smoke in (False, True):
                context = ReleaseContext(
                    environment, TimedTerraform(environment.stack_dir),
                    history=ReleaseHistory(root / "history.jsonl"),
                    options=RunnerOptions(smoke=smoke, smoke_requests=200, routing_interval=0.05))
                if not smoke:
                    run_phase(context, Phase.DEPLOY)
                    double.configure(candidate_version=aws.publish_version(FUNCTION))
                    run_phase(context, Phase.CANARY, 0.1)
                    endpoint.configure(stable_version="1", candidate_version="2", weight=0.1)
                overheads, totals = [], []
                for _ in range(args.runs):
                    TimedTerraform.seconds = 0.0
                    started = time.perf_counter()
                    run_phase(context, Phase.CANARY, 0.1)
                    total = time.perf_counter() - started
                    totals.append(total)
                    overheads.append(total - TimedTerraform.seconds)
                label = "with smoke (200 requests)" if smoke else "without smoke"
                median = statistics.median(overheads)
                verdict = "" if smoke else (" within" if median <= TARGET_SECONDS else " OVER")
                print(f"phase {label}: overhead median {median:.3f} s, max {max(overheads):.3f} s"
                      f" (total incl. Terraform double median {statistics.median(totals):.3f} s)"
                      f"{verdict}{'' if smoke else f' the {TARGET_SECONDS:g} s target'}")


if __name__ == "__main__":
    main()
