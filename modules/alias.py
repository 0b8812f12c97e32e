"""The `production` alias: the one name API Gateway invokes, routed by the traffic policy."""

import math
from dataclasses import dataclass
from typing import Mapping

from cdktf import Token
from cdktf_cdktf_provider_aws.lambda_alias import LambdaAlias, LambdaAliasRoutingConfig
from constructs import Construct

from release.config import ALIAS_NAME


@dataclass(frozen=True)
class AliasConfig:
    function_name: str
    primary_version: str
    # Usually a token from the traffic policy; literal maps are checked like Lambda would.
    additional_version_weights: Mapping[str, float]

    def __post_init__(self) -> None:
        weights = self.additional_version_weights
        if Token.is_unresolved(weights):
            return
        if len(weights) > 1:
            raise ValueError(f"additional_version_weights = {dict(weights)!r}: Lambda allows "
                             "at most one additional version")
        for version, weight in weights.items():
            if Token.is_unresolved(weight):
                continue
            if not (isinstance(weight, (int, float)) and math.isfinite(weight) and 0 <= weight <= 1):
                raise ValueError(f"additional_version_weights[{version!r}] = {weight!r}: "
                                 "must be a number from 0 to 1")
            if version in ("$LATEST", self.primary_version):
                raise ValueError(f"additional_version_weights = {dict(weights)!r}: the additional "
                                 "version must be a published version other than the primary")


class ProductionAlias(Construct):
    def __init__(self, scope: Construct, id: str, config: AliasConfig) -> None:
        super().__init__(scope, id)
        self.alias = LambdaAlias(
            self, "alias",
            name=ALIAS_NAME,
            description="Production traffic; routing set by the canary_weight and stable_version variables.",
            function_name=config.function_name,
            function_version=config.primary_version,
            # Always present, even when empty: removing the block would not clear old weights.
            routing_config=LambdaAliasRoutingConfig(
                additional_version_weights=config.additional_version_weights),
        )
