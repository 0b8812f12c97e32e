"""Rollback drills end to end, with the release stand-ins plus CloudWatch and SNS played by the
test: per-version metrics published from what the endpoint served, the canary alarm set when the
faulty version's errors cross its threshold, and the real functions/rollback invoked with the
notification, as the stack wires it in AWS."""

from datetime import UTC, datetime

import pytest

from fakes.alarm_notifications import RollbackFunction
from fakes.release_world import ALARMS, FUNCTION, BackgroundLoop
from release.aws import Routing
from release.drill import DrillError, DrillOptions, run_drill
from release.kinds import Phase
from release.runner import run_phase
from release.weights import WeightError

FAST = dict(timeout_seconds=10, concurrency=4, request_interval=0.005, alarm_poll_seconds=0.05,
            alias_poll_seconds=0.02, settle_seconds=0.5, grace_seconds=0.1)


class CloudWatchAndSns(BackgroundLoop):
    """Publishes the endpoint's per-version counts as Lambda metrics in moto; when the canary's
    errors reach `threshold`, sets the canary alarm and delivers it to the rollback function."""

    interval = 0.02

    def __init__(self, world, rollback_function: RollbackFunction, threshold: int = 5) -> None:
        super().__init__()
        self.world, self.rollback_function, self.threshold = world, rollback_function, threshold
        self.published: dict[str, tuple[int, int]] = {}
        self.fired = False

    def step(self) -> None:
        served = self.world.endpoint.served()
        now = datetime.now(UTC)
        for version in {version for version, _ in served}:
            total = served[(version, False)] + served[(version, True)]
            errors = served[(version, True)]
            last_total, last_errors = self.published.get(version, (0, 0))
            if total > last_total:
                self.world.aws.put_version_metrics(FUNCTION, version, now,
                                                   invocations=total - last_total,
                                                   errors=errors - last_errors)
                self.published[version] = (total, errors)
        canary = self.world.live().additional_version_weights
        if not self.fired and canary:
            (version, _), = canary.items()
            if served[(version, True)] >= self.threshold:
                self.fired = True
                self.world.aws.set_alarm_state(ALARMS[1], "ALARM")
                self.rollback_function.deliver(ALARMS[1], version)



@pytest.fixture
def faulty_build(world):
    """The next version's code fails half its requests (what fault_rate=0.5 ships)."""
    world.endpoint.configure(candidate_error_rate=0.5)
    return world


def test_drill_shows_the_stack_rolling_back_by_itself(faulty_build, monkeypatch):
    world = faulty_build
    with RollbackFunction(monkeypatch, FUNCTION, ALARMS) as rollback_function, \
            CloudWatchAndSns(world, rollback_function) as cloud:
        report = run_drill(world.context(), DrillOptions(fault_rate=0.5, weight=0.25, **FAST))

    assert cloud.fired
    assert report.outcome == "succeeded", report.detail
    assert report.alarm == ALARMS[1]
    assert 0 <= report.seconds_to_alarm <= report.seconds_to_restore
    assert report.failed_requests > 0 and report.failed_after_restore == 0
    assert report.stable_errors == 0  # from the per-version metrics, as CloudWatch has them
    assert report.versions_served["1"] > 0
    assert world.live() == Routing("1")
    state = world.double.state(world.outdir / "stacks" / "dev")
    assert (state["canary_weight"], state["fault_rate"]) == (0, 0)  # Terraform back in line
    callers = [(r["phase"], r["caller"].split()[0]) for r in world.history.read("dev")]
    assert ("rollback", "alarm") in callers and callers[-1][0] == "drill"


def test_drill_without_the_auto_rollback_fails_and_rolls_back_itself(faulty_build):
    world = faulty_build
    report = run_drill(world.context(), DrillOptions(**{**FAST, "timeout_seconds": 0.3}))
    assert report.outcome == "failed"
    assert "did not take the canary off within 0.3 s" in report.detail
    assert report.seconds_to_restore is None
    assert world.live() == Routing("1")


@pytest.mark.parametrize("options, message", [
    ({"fault_rate": 0}, "--fault-rate = 0: must be a number in (0, 1]"),
    ({"weight": 1.0}, "--weight = 1.0: must be a number in (0, 1)"),
])
def test_bad_drill_options(options, message):
    with pytest.raises(WeightError) as error:
        DrillOptions(**options)
    assert str(error.value).startswith(message)


def test_drill_refuses_a_running_canary(world):
    run_phase(world.context(), Phase.CANARY, 0.1)
    applies = world.applies()
    with pytest.raises(DrillError, match=r"running a canary \(v1 90 % \+ v2 10 %\)"):
        run_drill(world.context(), DrillOptions(**FAST))
    assert world.applies() == applies
