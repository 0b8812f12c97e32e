"""Phase planning as pure functions: every row of the routing table, every command; and the
stack outputs it plans from."""

import pytest

from release.aws import Routing
from release.outputs import MissingOutputError, StackOutputs
from release.phases import PhaseInputError, PhaseVariables, parse_steps, plan_variables, routing_for
from test_traffic_policy import ROUTING_TABLE


def outputs(candidate="4", stable="3", weight=0.0):
    """`terraform output -json` values of a deployed stack."""
    routing = routing_for(candidate, stable, weight)
    return {"candidate_version": candidate, "stable_version": stable, "canary_weight": weight,
            "primary_version": routing.primary_version,
            "additional_version_weights": dict(routing.additional_version_weights),
            "function_name": "demo-prod", "alias_name": "production",
            "api_url": "https://abc.example.com/prod/demo", "alarm_names": ["demo-prod-errors"],
            "region": "eu-west-1"}


def state(candidate="4", stable="3", weight=0.0):
    return StackOutputs.parse(outputs(candidate, stable, weight), "prod")


@pytest.mark.parametrize("stable, weight, candidate, primary, weights, phase, blocks",
                         ROUTING_TABLE)
def test_python_routing_matches_the_terraform_module(stable, weight, candidate, primary, weights,
                                                     phase, blocks):
    # The same table test_traffic_policy.py runs through Terraform 1.0.3.
    assert routing_for(candidate, stable, weight) == Routing(primary, weights)


def test_first_deployment_has_no_stable_version():
    assert plan_variables("deploy", None, None) == PhaseVariables(0.0, "")


@pytest.mark.parametrize("kind, weight",
                         [("canary", 0.1), ("rollout-step", 0.1), ("promote", None)])
def test_phases_that_need_a_stable_version_refuse_a_never_deployed_stack(kind, weight):
    # Terraform's first-deployment row would give the new code all traffic at once.
    with pytest.raises(PhaseInputError, match="nothing is deployed yet: run `invoke deploy` first"):
        plan_variables(kind, None, None, weight)


def test_canary_keeps_the_live_primary_as_stable():
    live = Routing("3")
    assert plan_variables("canary", state(stable="3"), live, 0.1) == PhaseVariables(0.1, "3")


def test_canary_reads_the_live_alias_not_terraform_state():
    # A failed apply or a fast rollback left the live alias elsewhere: the live one wins.
    assert plan_variables("canary", state(stable="3", weight=1), Routing("3"), 0.25) == \
        PhaseVariables(0.25, "3")


def test_canary_step_up_during_a_canary_keeps_the_stable_version():
    live = Routing("3", {"4": 0.1})
    assert plan_variables("rollout-step", state(weight=0.1), live, 0.5) == PhaseVariables(0.5, "3")


def test_promote_switches_everything_to_the_candidate():
    variables = plan_variables("promote", state(weight=0.1), Routing("3", {"4": 0.1}))
    assert variables == PhaseVariables(1.0, "3")
    assert routing_for("4", variables.stable_version, variables.canary_weight) == Routing("4")


def test_after_a_promotion_the_next_release_uses_the_promoted_version_as_stable():
    promoted = state(candidate="4", stable="3", weight=1)
    assert plan_variables("canary", promoted, Routing("4"), 0.1) == PhaseVariables(0.1, "4")


@pytest.mark.parametrize("weight, live", [(0.1, Routing("3", {"4": 0.1})), (1, Routing("4")),
                                          (0, Routing("3"))])
def test_rollback_returns_to_terraforms_stable_version(weight, live):
    variables = plan_variables("rollback", state(weight=weight), live)
    assert variables == PhaseVariables(0.0, "3")
    assert routing_for("4", "3", 0.0) == Routing("3")


def test_rollback_without_a_stable_version_is_refused():
    with pytest.raises(PhaseInputError, match="nothing to roll back to: 4 is the only released"):
        plan_variables("rollback", state(stable=""), Routing("4"))


def test_deploy_refuses_to_end_a_running_canary():
    with pytest.raises(PhaseInputError, match="would end the running canary"):
        plan_variables("deploy", state(weight=0.1), Routing("3", {"4": 0.1}))


@pytest.mark.parametrize("text", ["0.5,0.25,1", "0,0.5,1", "0.1,0.5", "0.1,1.5", "0.1,nan,1",
                                  "0.1,,1", "0.5,0.5,1"])
def test_bad_steps_are_refused(text):
    with pytest.raises(PhaseInputError, match="--steps"):
        parse_steps(text)


def test_steps_parse():
    assert parse_steps("0.05, 0.25,0.5,1") == (0.05, 0.25, 0.5, 1.0)


def test_candidate_share_follows_the_routing():
    assert state(weight=0.1).candidate_share == pytest.approx(0.1)
    assert state(weight=1).candidate_share == 1.0
    assert state(weight=0).candidate_share == 0.0
    assert state(stable="").candidate_share == 1.0


def test_outputs_before_the_first_deployment_are_no_stack():
    assert StackOutputs.parse({}, "prod") is None


def test_outputs_are_typed_once():
    stack = StackOutputs.parse(outputs(weight=0.1), "prod")
    assert stack == StackOutputs(
        function_name="demo-prod", alias_name="production",
        api_url="https://abc.example.com/prod/demo", candidate_version="4", stable_version="3",
        canary_weight=0.1, routing=Routing("3", {"4": 0.1}), alarm_names=("demo-prod-errors",))


@pytest.mark.parametrize("name", ["function_name", "alias_name", "api_url", "stable_version",
                                  "canary_weight", "primary_version", "additional_version_weights",
                                  "alarm_names"])
def test_a_missing_output_is_named_with_the_fix(name):
    broken = {key: value for key, value in outputs().items() if key != name}
    with pytest.raises(MissingOutputError) as error:
        StackOutputs.parse(broken, "prod")
    assert str(error.value).startswith(f"the prod stack has no `{name}` output")
    assert str(error.value).endswith("apply it again with `invoke deploy --env prod`")


def test_committed_canary_takes_the_live_primary_or_the_flag():
    from release.phases import plan_committed
    assert plan_committed("canary", {}, Routing("3"), 0.1) == PhaseVariables(0.1, "3")
    assert plan_committed("canary", {}, None, 0.1, "5") == PhaseVariables(0.1, "5")
    assert plan_committed("promote", {}, Routing("3", {"4": 0.1})) == PhaseVariables(1.0, "3")
    assert plan_committed("deploy", {}, None, stable_version="") == PhaseVariables(0.0, "")


def test_committed_rollback_returns_to_the_committed_stable_version():
    from release.phases import plan_committed
    phase = {"canary_weight": 1, "stable_version": "3"}
    assert plan_committed("rollback", phase, None) == PhaseVariables(0.0, "3")
    with pytest.raises(PhaseInputError, match="nothing to roll back to"):
        plan_committed("rollback", {"canary_weight": 0, "stable_version": ""}, None)


@pytest.mark.parametrize("live, stable, message", [
    (None, None, "pass --stable-version N"),
    (None, "v3", "--stable-version 'v3' must be a published version"),
    (Routing("3", {"4": 0.1}), None, "would end the running canary"),
])
def test_committed_phase_refusals(live, stable, message):
    from release.phases import plan_committed
    kind = "deploy" if live else "canary"
    with pytest.raises(PhaseInputError, match=message):
        plan_committed(kind, {}, live, 0.1, stable)
