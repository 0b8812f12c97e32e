"""API Gateway REST front door: `GET /<path>` proxied to the `production` alias on one stage.

The integration targets the alias, not a version, so a rollout phase (a new alias routing)
needs no API redeployment; the deployment is only replaced when the API's own shape changes.
"""

import json
from dataclasses import dataclass

from cdktf import Fn, TerraformResourceLifecycle
from cdktf_cdktf_provider_aws.api_gateway_deployment import ApiGatewayDeployment
from cdktf_cdktf_provider_aws.api_gateway_integration import ApiGatewayIntegration
from cdktf_cdktf_provider_aws.api_gateway_method import ApiGatewayMethod
from cdktf_cdktf_provider_aws.api_gateway_method_settings import (
    ApiGatewayMethodSettings,
    ApiGatewayMethodSettingsSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_resource import ApiGatewayResource
from cdktf_cdktf_provider_aws.api_gateway_rest_api import (
    ApiGatewayRestApi,
    ApiGatewayRestApiEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.api_gateway_stage import (
    ApiGatewayStage,
    ApiGatewayStageAccessLogSettings,
)
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from release.config import ApiSettings

# One JSON object per request in the access log group.
ACCESS_LOG_FORMAT = json.dumps({
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "integrationStatus": "$context.integration.status",
    "integrationLatency": "$context.integration.latency",
    "integrationError": "$context.integration.error",
})


@dataclass(frozen=True)
class ApiConfig:
    api_name: str
    settings: ApiSettings
    function_name: str      # token or name of the Lambda function
    alias_name: str         # token: the alias the API invokes
    alias_invoke_arn: str   # token: the alias's invoke ARN
    log_retention_days: int
    # API Gateway writes access logs only once the account (per region) has a CloudWatch role.

    def __post_init__(self) -> None:
        if not 1 <= len(self.api_name) <= 1024:
            raise ValueError(f"api_name = {self.api_name!r}: must be 1-1024 characters")


class RestApiFrontDoor(Construct):
    def __init__(self, scope: Construct, id: str, config: ApiConfig) -> None:
        super().__init__(scope, id)
        settings = config.settings
        self.api = ApiGatewayRestApi(
            self, "api",
            name=config.api_name,
            description="Front door of the released Lambda function (production alias).",
            endpoint_configuration=ApiGatewayRestApiEndpointConfiguration(types=["REGIONAL"]),
            # Terraform already treats the API this way (the deployment that depends on it is
            # create-before-destroy); stated here so a replaced API serves until the new one exists.
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        self.resource = ApiGatewayResource(
            self, "resource",
            rest_api_id=self.api.id,
            parent_id=self.api.root_resource_id,
            path_part=settings.path,
        )
        self.method = ApiGatewayMethod(
            self, "method",
            rest_api_id=self.api.id,
            resource_id=self.resource.id,
            http_method="GET",
            authorization="NONE",
        )
        self.integration = ApiGatewayIntegration(
            self, "integration",
            rest_api_id=self.api.id,
            resource_id=self.resource.id,
            http_method=self.method.http_method,
            type="AWS_PROXY",
            # Lambda is always invoked with POST, whatever the client's method.
            integration_http_method="POST",
            uri=config.alias_invoke_arn,
        )
        self.permission = LambdaPermission(
            self, "permission",
            statement_id="AllowApiGatewayInvokeProductionAlias",
            action="lambda:InvokeFunction",
            principal="apigateway.amazonaws.com",
            # Name plus qualifier: passing the alias ARN as function_name re-applies forever.
            function_name=config.function_name,
            qualifier=config.alias_name,
            source_arn=f"{self.api.execution_arn}/{settings.stage_name}/GET/{settings.path}",
        )
        self.deployment = ApiGatewayDeployment(
            self, "deployment",
            rest_api_id=self.api.id,
            description="Redeployed only when the API's resources, methods or integrations change.",
            triggers={"redeployment": Fn.sha1(Fn.jsonencode([
                self.resource.id, self.resource.path_part,
                self.method.id, self.method.http_method, self.method.authorization,
                self.integration.id, self.integration.uri, self.integration.type,
            ]))},
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            depends_on=[self.method, self.integration],
        )
        # Access and execution logs need the account's API Gateway CloudWatch Logs role, which
        # the account bootstrap stack sets (`invoke bootstrap`); `api.logging = false` leaves
        # them off where the account has none.
        access_logs = None
        if settings.logging:
            self.access_log_group = CloudwatchLogGroup(
                self, "access_log_group",
                name=f"/aws/apigateway/{config.api_name}/{settings.stage_name}/access",
                retention_in_days=config.log_retention_days,
            )
            access_logs = ApiGatewayStageAccessLogSettings(
                destination_arn=self.access_log_group.arn, format=ACCESS_LOG_FORMAT)
            # Execution logs at ERROR level say why API Gateway failed a request that never
            # reached Lambda (for example a missing invoke permission); the access log only has a
            # summary. API Gateway would create this group itself, without a retention: create
            # it first.
            self.execution_log_group = CloudwatchLogGroup(
                self, "execution_log_group",
                name=f"API-Gateway-Execution-Logs_{self.api.id}/{settings.stage_name}",
                retention_in_days=config.log_retention_days,
            )
        self.stage = ApiGatewayStage(
            self, "stage",
            rest_api_id=self.api.id,
            deployment_id=self.deployment.id,
            stage_name=settings.stage_name,
            xray_tracing_enabled=True,
            access_log_settings=access_logs,
        )
        self.method_settings = ApiGatewayMethodSettings(
            self, "method_settings",
            rest_api_id=self.api.id,
            stage_name=self.stage.stage_name,
            method_path="*/*",
            settings=ApiGatewayMethodSettingsSettings(
                metrics_enabled=True,
                logging_level="ERROR" if settings.logging else "OFF",
                throttling_rate_limit=settings.throttling_rate_limit,
                throttling_burst_limit=settings.throttling_burst_limit,
            ),
            depends_on=[self.execution_log_group] if settings.logging else None,
        )

    @property
    def url(self) -> str:
        return f"{self.stage.invoke_url}/{self.resource.path_part}"
