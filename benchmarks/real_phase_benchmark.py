"""Wall time of release phases with the real Terraform CLI and AWS provider against moto, split
into synth / init / plan / apply / output / wait / smoke (medians over --runs phases).

Set-up as in the real-Terraform tests (tests/fakes/real_world.py): the project's environments are
synthesized once (`python main.py`, timed as "synth"), the dev stack is copied with the
override that points the provider at this process's moto server, and a local endpoint follows
the live alias. Then: the first deploy, a canary after a code change, and --runs phases that
change only the routing variables (canary weights alternating 0.1 and 0.2), each measured twice,
interleaved: as phases run now (one `terraform apply -auto-approve`) and as they ran before
(`plan -out` + `apply <plan>`), with the ratio of the medians.

    uv run python benchmarks/real_phase_benchmark.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")]

from fakes.endpoint import FakeEndpoint  # noqa: E402
from fakes.moto_server import fake_aws_environment, moto_endpoint  # noqa: E402
from fakes.real_terraform import copy_stack, lay_overrides, real_terraform  # noqa: E402
from fakes.release_world import AliasFollower  # noqa: E402
from release import aws, runner  # noqa: E402
from release.config import parse_config  # noqa: E402
from release.context import ReleaseContext, RunnerOptions  # noqa: E402
from release.history import ReleaseHistory  # noqa: E402
from release.kinds import Phase  # noqa: E402
from release.runner import run_phase  # noqa: E402
from release.terraform import Terraform  # noqa: E402

ENVIRONMENT = "dev"
STEPS = ("synth", "init", "plan", "apply", "output", "wait", "smoke", "other")


class StepClock:
    """Adds up wall time per step of the phase being measured."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def timed(self, step: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[step] += time.perf_counter() - started
        return wrapper


def timed_terraform(clock: StepClock) -> type[Terraform]:
    class TimedTerraform(Terraform):
        def _run(self, step: str, *args: Any, **kwargs: Any) -> Any:
            # `show` and `version` belong to the plan and preflight respectively.
            name = {"show": "plan", "version": "other"}.get(step, step)
            return clock.timed(name, super()._run)(step, *args, **kwargs)
    return TimedTerraform


def two_step(terraform_class: type[Terraform]) -> type[Terraform]:
    """Phases as they ran before: a saved plan, then a second Terraform run that applies it."""
    class TwoStepTerraform(terraform_class):  # type: ignore[valid-type,misc]
        def apply_variables(self, variables: Any) -> Any:
            plan = self.plan(variables)
            self.apply(plan)
            return plan.summary
    return TwoStepTerraform


def measure(clock: StepClock, phase: Callable[[], Any]) -> dict[str, float]:
    clock.seconds.clear()
    started = time.perf_counter()
    phase()
    total = time.perf_counter() - started
    steps = dict(clock.seconds)
    steps["other"] = total - sum(steps.values())
    steps["total"] = total
    return steps


def report(label: str, samples: list[dict[str, float]]) -> None:
    medians = {step: statistics.median(sample.get(step, 0.0) for sample in samples)
               for step in (*STEPS, "total")}
    parts = " ".join(f"{step} {seconds:.1f}" for step, seconds in medians.items()
                     if seconds >= 0.05 and step != "total")
    print(f"{label:<38} total {medians['total']:5.1f} s  ({parts})", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        terraform = real_terraform(root)
        moto = moto_endpoint()
        config_path = PROJECT_ROOT / "environments.toml"
        os.environ.update({**fake_aws_environment(moto, root), **terraform.env})
        synth_started = time.perf_counter()
        subprocess.run([sys.executable, "main.py"], cwd=PROJECT_ROOT, check=True,
                       capture_output=True, env={**os.environ, "CDKTF_OUTDIR": str(root / "synth")})
        synth_seconds = time.perf_counter() - synth_started
        os.environ["CDKTF_OUTDIR"] = str(root / "cdktf.out")
        environment = parse_config(config_path.read_text(), config_path).environment(ENVIRONMENT)
        stack = copy_stack(root / "synth" / "stacks" / ENVIRONMENT, environment.stack_dir)
        lay_overrides(stack, terraform, moto)
        (archive,) = stack.glob("assets/function_code_*/*/*.zip")

        clock = StepClock()
        aws.wait_for_routing = clock.timed("wait", aws.wait_for_routing)
        with FakeEndpoint(seed=3) as endpoint, \
                AliasFollower(endpoint, aws.client("lambda", environment.region),
                              environment.function_name):
            runner.smoke_check = clock.timed("smoke", runner.smoke_check)

            def context_with(terraform_class: type[Terraform]) -> ReleaseContext:
                return ReleaseContext(
                    environment, terraform_class(stack, binary=terraform.binary),
                    history=ReleaseHistory(root / "history.jsonl"),
                    options=RunnerOptions(smoke_url=endpoint.url))

            context = context_with(timed_terraform(clock))
            before = context_with(two_step(timed_terraform(clock)))
            print(f"synth (python main.py, every environment) {synth_seconds:.1f} s")
            report("first deploy", [measure(clock, lambda: run_phase(context, Phase.DEPLOY))])

            def merge_code(number: int) -> None:
                with zipfile.ZipFile(archive, "a") as bundle:
                    bundle.writestr(f"change-{number}.txt", "merged\n")

            with_code = []
            for run in range(args.runs):
                merge_code(run)
                with_code.append(measure(clock, lambda: run_phase(context, Phase.CANARY, 0.1)))
                run_phase(context, Phase.PROMOTE)
            report("canary after a code change (no synth)", with_code)
            merge_code(args.runs)
            run_phase(context, Phase.CANARY, 0.1)
            now, then = [], []
            for _ in range(args.runs):
                now.append(measure(clock, lambda: run_phase(context, Phase.CANARY, 0.2)))
                then.append(measure(clock, lambda: run_phase(before, Phase.CANARY, 0.1)))
            report("routing-only phase, before", then)
            report("routing-only phase, now", now)
            ratio = (statistics.median(sample["total"] for sample in now)
                     / statistics.median(sample["total"] for sample in then))
            print(f"routing-only phase: now / before = {ratio:.2f}")


if __name__ == "__main__":
    main()
