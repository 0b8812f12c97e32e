"""The `production` alias: the one name API Gateway invokes, routed by the traffic policy."""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cdktf import IResolvable, Op, Precondition, TerraformResourceLifecycle, Token
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias
from constructs import Construct

from release.config import ALIAS_NAME, NO_NEW_VERSION_MESSAGE


@dataclass(frozen=True)
class AliasConfig:
    function_name: str
    primary_version: str
    # Zero or one {"additional_version_weights": {version: weight}}: usually a token from the
    # traffic policy; literal lists are checked like Lambda would.
    routing_config: Sequence[Any]
    # Token: the traffic policy's "canary weight, but no new version" condition, which fails the
    # plan (or, when the apply publishes new code, never holds).
    canary_of_stable_version: IResolvable
    # Tokens: whether the plan gives a quarantined version traffic, and the refusal naming it.
    serves_quarantined_version: IResolvable
    quarantine_refusal: str
    # Tokens: whether the promotion gate refuses the plan, and its message (traffic policy).
    promotion_gate_refuses: IResolvable
    promotion_refusal: str

    def __post_init__(self) -> None:
        if Token.is_unresolved(self.routing_config):
            return
        if len(self.routing_config) > 1:
            raise ValueError(f"routing_config = {list(self.routing_config)!r}: an alias has at "
                             "most one routing_config block")
        for block in self.routing_config:
            weights = block["additional_version_weights"]
            if len(weights) > 1:
                raise ValueError(f"additional_version_weights = {dict(weights)!r}: Lambda allows "
                                 "at most one additional version")
            for version, weight in weights.items():
                if not (isinstance(weight, (int, float)) and math.isfinite(weight)
                        and 0 <= weight <= 1):
                    raise ValueError(f"additional_version_weights[{version!r}] = {weight!r}: "
                                     "must be a number from 0 to 1")
                if version in ("$LATEST", self.primary_version):
                    raise ValueError(f"additional_version_weights = {dict(weights)!r}: the "
                                     "additional version must be a published version other than "
                                     "the primary")


class ProductionAlias(Construct):
    def __init__(self, scope: Construct, id: str, config: AliasConfig) -> None:
        super().__init__(scope, id)
        self.alias = LambdaAlias(
            self, "alias",
            name=ALIAS_NAME,
            description=("Production traffic; routing set by the canary_weight and stable_version "
                         "variables."),
            function_name=config.function_name,
            function_version=config.primary_version,
            lifecycle=TerraformResourceLifecycle(precondition=[
                Precondition(
                    # Known at plan time unless the apply publishes new code (then a new version
                    # number, which never equals the stable one, and the check passes at apply).
                    condition=Op.not_(config.canary_of_stable_version),
                    error_message=NO_NEW_VERSION_MESSAGE,
                ),
                Precondition(
                    # Also unknown while new code is unpublished: a new version is never in
                    # quarantine, so the check at apply passes and new code is not blocked.
                    condition=Op.not_(config.serves_quarantined_version),
                    error_message=config.quarantine_refusal,
                ),
                Precondition(
                    # Known at plan time unless new code publishes in the same apply (its
                    # version number is unknown until then): then it is checked at apply,
                    # before the alias moves.
                    condition=Op.not_(config.promotion_gate_refuses),
                    error_message=config.promotion_refusal,
                ),
            ]),
        )
        # A dynamic block: present only while there are weights. GetAlias omits an empty routing
        # config, so an always-present empty block would show as a change on every plan; removing
        # the block clears the weights. (An override because the binding types routing_config as
        # a plain struct, which a dynamic block token does not pass.)
        self.alias.add_override("dynamic.routing_config", {
            "for_each": config.routing_config,
            "content": {
                "additional_version_weights": "${routing_config.value.additional_version_weights}",
            },
        })

