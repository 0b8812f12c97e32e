"""A Lambda function with its own log group, least-privilege role and reproducible code package.

The released function uses `publish = true`, so every change of its code or configuration
becomes a new immutable version; the auto-rollback function reuses the construct unpublished.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cdktf import App, AssetType, Fn, TerraformAsset
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.lambda_function import (
    LambdaFunction,
    LambdaFunctionEnvironment,
    LambdaFunctionTracingConfig,
)
from constructs import Construct

from modules.execution_role import ExecutionRole, ExecutionRoleConfig, role_name_for
from modules.function_package import build_archive
from release.config import FunctionSettings

FUNCTIONS_DIR = Path(__file__).resolve().parent.parent / "functions"


@dataclass(frozen=True)
class FunctionConfig:
    function_name: str
    settings: FunctionSettings
    description: str
    # The function's environment variables on top of `settings.environment` (values may be tokens).
    variables: Mapping[str, str] = field(default_factory=dict)
    publish: bool = True
    # IAM statements the function needs beyond writing its logs (and traces).
    extra_statements: tuple[Mapping[str, object], ...] = ()

    def __post_init__(self) -> None:
        if not (FUNCTIONS_DIR / self.settings.source).is_dir():
            raise ValueError(
                f"source = {self.settings.source!r}: no folder functions/{self.settings.source}")


class PackagedFunction(Construct):
    def __init__(self, scope: Construct, id: str, config: FunctionConfig) -> None:
        super().__init__(scope, id)
        settings = config.settings
        # Created before the function so Lambda never auto-creates it without a retention.
        self.log_group = CloudwatchLogGroup(
            self, "log_group",
            name=f"/aws/lambda/{config.function_name}",
            retention_in_days=settings.log_retention_days,
        )
        self.execution_role = ExecutionRole(self, "execution_role", ExecutionRoleConfig(
            role_name=role_name_for(config.function_name),
            log_group_arn=self.log_group.arn,
            tracing=settings.tracing,
            extra_statements=config.extra_statements,
        ))
        code = TerraformAsset(
            self, "code",
            # Built inside the synth output; cdktf copies it into the stack's assets.
            path=str(build_archive(
                FUNCTIONS_DIR / settings.source,
                Path(App.of(self).outdir, ".packages", f"{settings.source}.zip"))),
            type=AssetType.FILE,
        )
        self.function = LambdaFunction(
            self, "function",
            function_name=config.function_name,
            description=config.description,
            role=self.execution_role.role.arn,
            handler=settings.handler,
            runtime=settings.runtime,
            filename=code.path,
            # filebase64sha256 of the archive, not asset_hash: the latter shows a diff on every
            # plan (terraform-cdk #883).
            source_code_hash=Fn.filebase64sha256(code.path),
            publish=config.publish,
            memory_size=settings.memory_mb,
            timeout=settings.timeout_seconds,
            reserved_concurrent_executions=(
                -1 if settings.reserved_concurrency is None else settings.reserved_concurrency),
            tracing_config=LambdaFunctionTracingConfig(
                mode="Active" if settings.tracing else "PassThrough"),
            environment=LambdaFunctionEnvironment(
                variables={**settings.environment, **config.variables}),
            depends_on=[self.log_group, self.execution_role.policy],
        )
