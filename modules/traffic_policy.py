"""The traffic policy: the provider-free Terraform module in `traffic_policy/` that decides the
alias routing from the phase variables (its routing table is in `traffic_policy/main.tf`)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdktf import App, IResolvable, TerraformHclModule, Token
from constructs import Construct

# Relative to the project root (where `cdktf synth` and `python main.py` run). cdktf copies the
# module into the stack's assets and writes a relative source, so a synthesized stack directory
# works on its own, e.g. committed for Terraform Cloud.
TRAFFIC_POLICY_SOURCE = "./modules/traffic_policy"


def register_module_source(app: App) -> None:
    """Let cdktf resolve the relative module source above (the `cdktfRelativeModules` context).

    Set on the app after it is built, not through App(context=...): the cdktf CLI passes its own
    list, from cdktf.json, in CDKTF_CONTEXT_JSON, which would override ours with an empty one.
    """
    app.node.set_context("cdktfRelativeModules", [TRAFFIC_POLICY_SOURCE])


@dataclass(frozen=True)
class TrafficPolicyConfig:
    candidate_version: str  # token: the version the function resource just published
    stable_version: str     # token: var.stable_version
    canary_weight: float    # token: var.canary_weight
    environment: str        # the environment's name, for the refusal messages
    # Token: the quarantine record's JSON ("" before the first apply; modules/quarantine.py).
    quarantined_versions_json: str
    # Token: the version the alias serves now ("" before the first deployment); an empty
    # stable_version stands for it.
    serving_version: str
    # The promotion gate (modules/promotion_gate.py); defaults: no gate. Pins are named values
    # that must match between the two environments: {"code": source_code_hash} today.
    promotion_after: str = ""
    release_pins: Mapping[str, str] = field(default_factory=dict)
    after_pins: Mapping[str, str] = field(default_factory=dict)
    after_version: str = ""
    promotion_gate_override: str = ""

    def __post_init__(self) -> None:
        if set(self.release_pins) != set(self.after_pins):
            raise ValueError(f"release_pins {sorted(self.release_pins)} and after_pins "
                             f"{sorted(self.after_pins)}: the gate compares the same pins")


class TrafficPolicy(Construct):
    def __init__(self, scope: Construct, id: str, config: TrafficPolicyConfig) -> None:
        super().__init__(scope, id)
        self.module = TerraformHclModule(
            self, "module",
            source=TRAFFIC_POLICY_SOURCE,
            variables={
                "candidate_version": config.candidate_version,
                "stable_version": config.stable_version,
                "canary_weight": config.canary_weight,
                "environment": config.environment,
                "quarantined_versions_json": config.quarantined_versions_json,
                "serving_version": config.serving_version,
                "promotion_after": config.promotion_after,
                "release_pins": dict(config.release_pins),
                "after_pins": dict(config.after_pins),
                "after_version": config.after_version,
                "promotion_gate_override": config.promotion_gate_override,
            },
        )
        # A readable name in plans and state (`module.traffic_policy`).
        self.module.override_logical_id("traffic_policy")

    @property
    def primary_version(self) -> str:
        return self.module.get_string("primary_version")

    @property
    def additional_version_weights(self):
        return Token.as_number_map(
            self.module.interpolation_for_output("additional_version_weights"))

    @property
    def routing_config(self) -> Any:
        """Zero or one alias routing_config blocks (a list token; see outputs.tf)."""
        return self.module.get("routing_config")

    @property
    def canary_of_stable_version(self) -> IResolvable:
        """True when the variables ask for a canary of the stable version itself."""
        return self.module.get_boolean("canary_of_stable_version")

    @property
    def serves_quarantined_version(self) -> IResolvable:
        """True when the plan gives a quarantined version traffic."""
        return self.module.get_boolean("serves_quarantined_version")

    @property
    def quarantine_refusal(self) -> str:
        """Why the plan gives a quarantined version traffic; "" when it does not."""
        return self.module.get_string("quarantine_refusal")

    @property
    def promotion_gate_refuses(self) -> IResolvable:
        """True when the plan gives new code traffic that the after environment does not serve."""
        return self.module.get_boolean("promotion_gate_refuses")

    @property
    def promotion_refusal(self) -> str:
        """What the after environment serves and what the plan would release; "" when equal."""
        return self.module.get_string("promotion_refusal")

    @property
    def phase(self) -> str:
        return self.module.get_string("phase")
