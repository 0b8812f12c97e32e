"""Assertions on the synthesized Terraform of every environment (one synth per session)."""

import json
import re
from pathlib import Path

import pytest

from conftest import PROJECT_ENVIRONMENTS, PROJECT_ROOT
from release.config import (
    NO_NEW_VERSION_MESSAGE,
    load_config,
    quarantine_parameter_name,
    settings_parameter_name,
    settings_sha256,
)

CONFIG = load_config(PROJECT_ROOT / "environments.toml")


def only(stack: dict, resource_type: str, under: str | None = None) -> tuple[str, dict]:
    """The one resource of a type, or the one inside construct `under` (e.g. "function")."""
    resources = {name: resource for name, resource in stack["resource"][resource_type].items()
                 if under is None or resource["//"]["metadata"]["path"].split("/")[1] == under}
    assert len(resources) == 1, f"expected one {resource_type}, found {list(resources)}"
    return next(iter(resources.items()))


def ref(resource_type: str, name: str, attribute: str) -> str:
    return f"${{{resource_type}.{name}.{attribute}}}"


@pytest.fixture(scope="module", params=PROJECT_ENVIRONMENTS)
def env(request, synth):
    return CONFIG.environment(request.param), synth.stack(request.param)


def test_every_environment_is_its_own_stack_with_its_own_state(synth):
    paths = {name: synth.stack(name)["terraform"]["backend"]["local"]["path"]
             for name in PROJECT_ENVIRONMENTS}
    assert paths == {name: f"../../../terraform-state/{name}/terraform.tfstate"
                     for name in PROJECT_ENVIRONMENTS}


def test_s3_and_cloud_backends_come_from_config(synth):
    s3 = synth.stack("s3-backed")["terraform"]["backend"]
    assert s3 == {"s3": {"bucket": "team-terraform-state", "encrypt": True,
                         "key": "lambda-safe-release/s3-backed/terraform.tfstate",
                         "region": "eu-west-1", "use_lockfile": True}}
    cloud = synth.stack("cloud-backed")["terraform"]
    assert "backend" not in cloud
    assert cloud["cloud"] == {"hostname": "app.terraform.io", "organization": "acme",
                              "workspaces": {"name": "lambda-release-cloud"}}


def test_no_absolute_path_leaks_into_the_stack(synth):
    for name in (*PROJECT_ENVIRONMENTS, "s3-backed", "cloud-backed"):
        text = (synth.stack_dir(name) / "cdk.tf.json").read_text()
        for absolute in (str(PROJECT_ROOT), str(synth.outdir), "/tmp/", str(Path.home())):
            assert absolute not in text, f"{absolute} in the {name} stack"


def test_synth_runs_jsii_on_node_22_without_the_end_of_life_banner(synth):
    assert "end-of-life" not in synth.stderr and "v20." not in synth.stderr


def test_phase_variables_are_validated_and_described(env):
    _, stack = env
    # The promotion gate's override (prod) is tested with the gate.
    variables = {name: variable for name, variable in stack["variable"].items()
                 if name != "promotion_gate_override"}
    assert set(variables) == {"canary_weight", "stable_version", "fault_rate"}
    assert variables["fault_rate"]["default"] == 0
    assert variables["fault_rate"]["validation"][0]["condition"] == (
        "${var.fault_rate >= 0 && var.fault_rate <= 1}")
    assert variables["canary_weight"]["type"] == "number"
    assert variables["canary_weight"]["default"] == 0
    assert variables["canary_weight"]["validation"][0]["condition"] == (
        "${var.canary_weight >= 0 && var.canary_weight <= 1}")
    assert variables["stable_version"]["default"] == ""
    assert "regex(\\\"^[0-9]*$\\\"" in json.dumps(variables["stable_version"]["validation"])
    for variable in variables.values():
        assert variable["description"]
        message = variable["validation"][0]["error_message"]
        assert message[0].isupper() and message.endswith("."), message


def test_traffic_policy_module_is_fed_by_the_function_and_the_variables(env, synth):
    _, stack = env
    function_name, _ = only(stack, "aws_lambda_function", "function")
    module = stack["module"]["traffic_policy"]
    assert module["candidate_version"] == ref("aws_lambda_function", function_name, "version")
    assert module["stable_version"] == "${var.stable_version}"
    assert module["canary_weight"] == "${var.canary_weight}"
    assert module["source"].startswith("./assets/")


def test_alias_routes_by_the_traffic_policy(env):
    _, stack = env
    function_name, _ = only(stack, "aws_lambda_function", "function")
    _, alias = only(stack, "aws_lambda_alias")
    assert alias["name"] == "production"
    assert alias["function_name"] == ref("aws_lambda_function", function_name, "function_name")
    assert alias["function_version"] == "${module.traffic_policy.primary_version}"
    # Only present while there are weights: an always-present empty block never converges.
    assert "routing_config" not in alias
    assert alias["dynamic"]["routing_config"] == {
        "for_each": "${module.traffic_policy.routing_config}",
        "content": {
            "additional_version_weights": "${routing_config.value.additional_version_weights}"}}


def test_alias_refuses_a_canary_without_new_code_and_a_quarantined_version(env):
    """Preconditions, so every path that plans (invoke, cdktf deploy, a VCS run) refuses."""
    _, stack = env
    _, alias = only(stack, "aws_lambda_alias")
    no_new_code, quarantined, promotion = alias["lifecycle"]["precondition"]
    assert no_new_code == {"condition": "${!module.traffic_policy.canary_of_stable_version}",
                           "error_message": NO_NEW_VERSION_MESSAGE}
    assert quarantined == {"condition": "${!module.traffic_policy.serves_quarantined_version}",
                           "error_message": "${module.traffic_policy.quarantine_refusal}"}
    assert promotion == {"condition": "${!module.traffic_policy.promotion_gate_refuses}",
                         "error_message": "${module.traffic_policy.promotion_refusal}"}


def test_prod_plans_compare_its_code_and_shared_settings_with_what_staging_serves(synth):
    """The plan-time promotion gate: staging's alias and its version's code_sha256 and shared
    settings fingerprint read at plan time (only once staging's function exists), against prod's
    source_code_hash and its own fingerprint."""
    stack = synth.stack("prod")
    data = {"resource": stack["data"]}
    listing_id, _ = only(data, "aws_lambda_functions", "promotion_gate")
    alias_id, alias = only(data, "aws_lambda_alias", "promotion_gate")
    version_id, version = only(data, "aws_lambda_function", "promotion_gate")
    deployed = (f'${{contains(data.aws_lambda_functions.{listing_id}.function_names, '
                f'"deploy-patterns-demo-staging") ? 1 : 0}}')
    assert (alias["function_name"], alias["name"], alias["count"]) == (
        "deploy-patterns-demo-staging", "production", deployed)
    staging_version = f'${{join("", data.aws_lambda_alias.{alias_id}[*].function_version)}}'
    assert (version["qualifier"], version["count"]) == (staging_version, deployed)
    function_id, _ = only(stack, "aws_lambda_function", "function")
    policy = stack["module"]["traffic_policy"]
    assert policy["promotion_after"] == "staging"
    assert policy["after_version"] == staging_version
    assert policy["after_pins"] == {
        "code": f'${{join("", data.aws_lambda_function.{version_id}[*].code_sha256)}}',
        "shared_settings": (
            f'${{join("", [for v in data.aws_lambda_function.{version_id} : '
            'lookup(try(v.environment[0].variables, {}), "SHARED_SETTINGS_SHA256", "")])}')}
    assert policy["release_pins"] == {
        "code": ref("aws_lambda_function", function_id, "source_code_hash"),
        "shared_settings": settings_sha256({"greeting": "hello"})}
    assert policy["promotion_gate_override"] == "${var.promotion_gate_override}"
    assert stack["variable"]["promotion_gate_override"]["default"] == ""


@pytest.mark.parametrize("name", ["dev", "staging"])
def test_environments_without_a_promotion_table_read_no_other_environment(synth, name):
    stack = synth.stack(name)
    assert "promotion_gate_override" not in stack["variable"]
    assert "aws_lambda_functions" not in stack["data"]
    policy = stack["module"]["traffic_policy"]
    assert (policy["promotion_after"], policy["release_pins"], policy["after_pins"]) == ("", {}, {})


def test_the_quarantine_parameter_is_read_at_plan_time_and_never_reset(env):
    config, stack = env
    name = quarantine_parameter_name(config.function_name)
    parameter_id, parameter = only(stack, "aws_ssm_parameter", "quarantine")
    assert (parameter["name"], parameter["type"], parameter["insecure_value"]) == (
        name, "String", "{}")
    # The rollback paths write it; an apply must never put "{}" back.
    assert parameter["lifecycle"] == {"ignore_changes": ["insecure_value"]}
    listing_id, listing = only({"resource": stack["data"]}, "aws_ssm_parameters_by_path")
    current_id, current = only({"resource": stack["data"]}, "aws_ssm_parameter", "quarantine")
    assert listing == {**listing, "path": f"/{config.function_name}/release",
                       "with_decryption": False}
    exists = (f'contains(data.aws_ssm_parameters_by_path.{listing_id}.names, "{name}")')
    # Read only once it exists: the first plan has no parameter to read.
    assert current["count"] == f"${{{exists} ? 1 : 0}}"
    alias_id, _ = only(stack, "aws_lambda_alias")
    # Created after the alias, so that once it exists the alias can be read too.
    assert parameter["depends_on"] == [f"aws_lambda_alias.{alias_id}"]
    serving_id, serving = only({"resource": stack["data"]}, "aws_lambda_alias", "quarantine")
    assert (serving["function_name"], serving["name"], serving["count"]) == (
        config.function_name, "production", f"${{{exists} ? 1 : 0}}")
    policy = stack["module"]["traffic_policy"]
    assert policy["serving_version"] == (
        f'${{join("", data.aws_lambda_alias.{serving_id}[*].function_version)}}')
    assert policy["quarantined_versions_json"] == (
        f'${{join("", data.aws_ssm_parameter.{current_id}[*].insecure_value)}}')
    assert policy["environment"] == config.name
    output = stack["output"]["quarantine_parameter"]
    assert output["value"] == ref("aws_ssm_parameter", parameter_id, "name")


def test_function_publishes_versions_of_the_packaged_code(env, synth):
    config, stack = env
    name, function = only(stack, "aws_lambda_function", "function")
    log_group_name, log_group = only(stack, "aws_cloudwatch_log_group", "function")
    role_name, _ = only(stack, "aws_iam_role", "function")
    policy_name, _ = only(stack, "aws_iam_role_policy", "function")

    assert function["function_name"] == config.function_name
    assert function["publish"] is True
    assert function["runtime"] == config.function.runtime == "python3.13"
    assert function["handler"] == "handler.lambda_handler"
    assert function["memory_size"] == config.function.memory_mb
    assert function["timeout"] == config.function.timeout_seconds
    expected_reserved = config.function.reserved_concurrency
    assert function["reserved_concurrent_executions"] == (
        -1 if expected_reserved is None else expected_reserved)
    assert function["tracing_config"] == {"mode": "Active"}
    assert function["role"] == ref("aws_iam_role", role_name, "arn")
    settings_name, _ = settings_parameter(stack)
    pinned_id, _ = only({"resource": stack["data"]}, "aws_ssm_parameter", "settings")
    assert function["environment"]["variables"] == {
        "DEPLOY_ENVIRONMENT": config.name, "FAULT_RATE": "${var.fault_rate}",
        "SETTINGS_PARAMETER": (ref("aws_ssm_parameter", settings_name, "name") + ":"
                               f"${{data.aws_ssm_parameter.{pinned_id}.version}}"),
        "SHARED_SETTINGS_SHA256": settings_sha256({"greeting": "hello"})}
    assert re.fullmatch(r"assets/function_code_[0-9A-F]+/[0-9A-F]+/demo\.zip", function["filename"])
    assert function["source_code_hash"] == f'${{filebase64sha256("{function["filename"]}")}}'
    assert (synth.stack_dir(config.name) / function["filename"]).is_file()
    assert set(function["depends_on"]) == {f"aws_cloudwatch_log_group.{log_group_name}",
                                           f"aws_iam_role_policy.{policy_name}"}
    assert log_group["name"] == f"/aws/lambda/{config.function_name}"
    assert log_group["retention_in_days"] == config.function.log_retention_days


def test_execution_role_is_least_privilege(env):
    config, stack = env
    _, role = only(stack, "aws_iam_role", "function")
    _, policy = only(stack, "aws_iam_role_policy", "function")
    log_groups = stack["resource"]["aws_cloudwatch_log_group"]
    log_group_name = next(key for key, value in log_groups.items()
                          if value["name"] == f"/aws/lambda/{config.function_name}")
    trust = json.loads(role["assume_role_policy"])
    assert trust["Statement"] == [{"Effect": "Allow",
                                   "Principal": {"Service": "lambda.amazonaws.com"},
                                   "Action": "sts:AssumeRole"}]
    assert "managed_policy_arns" not in role
    assert "aws_iam_role_policy_attachment" not in stack["resource"]
    statements = json.loads(policy["policy"])["Statement"]
    assert statements == [
        {"Sid": "WriteOwnLogs", "Effect": "Allow",
         "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
         "Resource": ref("aws_cloudwatch_log_group", log_group_name, "arn") + ":*"},
        {"Sid": "WriteTraces", "Effect": "Allow",
         "Action": ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "Resource": "*"},
        {"Sid": "ReadReleasedSettings", "Effect": "Allow", "Action": "ssm:GetParameter",
         "Resource": ref("aws_ssm_parameter", settings_parameter(stack)[0], "arn")},
    ]


def settings_parameter(stack: dict) -> tuple[str, dict]:
    return only(stack, "aws_ssm_parameter", "settings")


def test_an_environment_s_own_settings_leave_the_shared_fingerprint_alone(synth):
    # s3-backed (tests/conftest.py) sets its own greeting: its parameter holds it, but what it
    # shares with every environment, and the gate compares, is [defaults.settings].
    _, function = only(synth.stack("s3-backed"), "aws_lambda_function", "function")
    _, parameter = settings_parameter(synth.stack("s3-backed"))
    assert json.loads(parameter["insecure_value"])["greeting"] == "hej"
    assert function["environment"]["variables"]["SHARED_SETTINGS_SHA256"] == settings_sha256(
        {"greeting": "hello"})


def test_settings_are_one_parameter_whose_version_every_function_version_pins(env):
    config, stack = env
    name, parameter = settings_parameter(stack)
    assert parameter["name"] == settings_parameter_name(config.function_name)
    assert (parameter["type"], parameter["tier"]) == ("String", "Standard")
    # Managed by Terraform: a config change is a new value, hence a new parameter version.
    assert json.loads(parameter["insecure_value"]) == {"greeting": "hello"}
    assert "lifecycle" not in parameter
    _, function = only(stack, "aws_lambda_function", "function")
    assert function["publish"] is True
    variables = function["environment"]["variables"]
    # The version comes from a data source read after the parameter changes (at apply time
    # then, so the plan knows the function changes too).
    pinned_id, pinned = only({"resource": stack["data"]}, "aws_ssm_parameter", "settings")
    assert (pinned["name"], pinned["depends_on"]) == (
        ref("aws_ssm_parameter", name, "name"), [f"aws_ssm_parameter.{name}"])
    assert variables["SETTINGS_PARAMETER"] == (
        ref("aws_ssm_parameter", name, "name") + ":"
        + f"${{data.aws_ssm_parameter.{pinned_id}.version}}")
    # The fingerprint of [defaults.settings], which the promotion gate compares.
    assert variables["SHARED_SETTINGS_SHA256"] == settings_sha256({"greeting": "hello"})
    # No secrets configured by default: nothing to read, nothing to pin.
    assert "SECRETS" not in variables
    assert "aws_secretsmanager_secret_versions" not in stack.get("data", {})
    assert stack["output"]["settings_parameter"]["value"] == ref("aws_ssm_parameter", name, "name")


def secret_key(secrets: dict, construct: str) -> str:
    """The data source id of construct `settings/<construct>`."""
    (key,) = [key for key, secret in secrets.items()
              if secret["//"]["metadata"]["path"].endswith(f"/settings/{construct}")]
    return key


def test_secrets_are_pinned_to_their_current_version_and_readable_only_by_the_function(synth):
    stack = synth.stack("s3-backed")
    name, parameter = settings_parameter(stack)
    assert json.loads(parameter["insecure_value"]) == {"beta": True, "greeting": "hej",
                                                       "max_items": 20}
    secrets = stack["data"]["aws_secretsmanager_secret"]
    # A name is looked up by name, an ARN by ARN; either way the data source gives the full ARN.
    assert secrets[secret_key(secrets, "secret_0")]["name"] == "team/db-password"
    assert secrets[secret_key(secrets, "secret_1")]["arn"] == (
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key-AbCdEf")
    readers = stack["data"]["aws_secretsmanager_secret_versions"]
    # Version ids and stages only: no data source or resource that would put a value in state.
    assert "aws_secretsmanager_secret_version" not in stack["data"]
    assert "aws_secretsmanager_secret_version" not in stack["resource"]
    _, function = only(stack, "aws_lambda_function", "function")
    pins = function["environment"]["variables"]["SECRETS"]
    # A JSON template: each secret -> its ARN and the version id AWSCURRENT at plan time.
    expected = []
    for reference, secret_id in (("team/db-password", secret_key(secrets, "secret_0")),
                                 ("arn:aws:secretsmanager:eu-west-1:123456789012:secret:"
                                  "api-key-AbCdEf", secret_key(secrets, "secret_1"))):
        arn = f"${{data.aws_secretsmanager_secret.{secret_id}.arn}}"
        (versions_id,) = [name for name, reader in readers.items() if reader["secret_id"] == arn]
        expected.append(
            f'"{reference}":{{"arn":"{arn}","version_id":"${{one([for v in '
            f'data.aws_secretsmanager_secret_versions.{versions_id}.versions : v.version_id if '
            f'contains(v.version_stages, "AWSCURRENT")])}}"}}')
    assert pins == "{" + ",".join(expected) + "}"
    _, policy = only(stack, "aws_iam_role_policy", "function")
    statements = {statement["Sid"]: statement
                  for statement in json.loads(policy["policy"])["Statement"]}
    assert statements["ReadPinnedSecrets"] == {
        "Sid": "ReadPinnedSecrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
        "Resource": [f"${{data.aws_secretsmanager_secret.{secret_key(secrets, index)}.arn}}"
                     for index in ("secret_0", "secret_1")]}
    assert statements["ReadReleasedSettings"]["Resource"] == ref("aws_ssm_parameter", name, "arn")
    # A customer-managed key decrypts only through Secrets Manager, only for these secrets: any
    # key of the secret's account and region, on the condition of its encryption context.
    arns = [f"data.aws_secretsmanager_secret.{secret_key(secrets, index)}.arn"
            for index in ("secret_0", "secret_1")]
    decrypt = statements["DecryptPinnedSecrets"]
    assert (decrypt["Effect"], decrypt["Action"]) == ("Allow", "kms:Decrypt")

    def local(reference: str) -> str:  # "${local.name}" -> the local's expression
        return stack["locals"][reference.removeprefix("${local.").removesuffix("}")]

    assert [local(key) for key in decrypt["Resource"]] == [
        f'${{format("arn:%s:kms:%s:%s:key/*", element(split(":", {arn}), 1), '
        f'element(split(":", {arn}), 3), element(split(":", {arn}), 4))}}' for arn in arns]
    condition = decrypt["Condition"]
    assert [local(service) for service in condition["StringEquals"]["kms:ViaService"]] == [
        f'${{format("secretsmanager.%s.amazonaws.com", element(split(":", {arn}), 3))}}'
        for arn in arns]
    assert condition["ForAnyValue:StringEquals"] == {
        "kms:EncryptionContext:SecretARN": [f"${{{arn}}}" for arn in arns]}


def test_api_gateway_proxies_get_to_the_alias(env):
    config, stack = env
    api_name, api = only(stack, "aws_api_gateway_rest_api")
    resource_name, resource = only(stack, "aws_api_gateway_resource")
    method_name, method = only(stack, "aws_api_gateway_method")
    integration_name, integration = only(stack, "aws_api_gateway_integration")
    alias_name, _ = only(stack, "aws_lambda_alias")
    function_name, _ = only(stack, "aws_lambda_function", "function")
    _, permission = only(stack, "aws_lambda_permission", "api")

    assert resource["path_part"] == config.api.path == "demo"
    assert resource["parent_id"] == ref("aws_api_gateway_rest_api", api_name, "root_resource_id")
    assert method["http_method"] == "GET"
    assert method["resource_id"] == ref("aws_api_gateway_resource", resource_name, "id")
    assert integration["type"] == "AWS_PROXY"
    assert integration["integration_http_method"] == "POST"
    assert integration["uri"] == ref("aws_lambda_alias", alias_name, "invoke_arn")
    assert integration["resource_id"] == ref("aws_api_gateway_resource", resource_name, "id")

    assert permission["function_name"] == ref("aws_lambda_function", function_name, "function_name")
    assert permission["qualifier"] == ref("aws_lambda_alias", alias_name, "name")
    assert permission["principal"] == "apigateway.amazonaws.com"
    assert permission["source_arn"] == (
        ref("aws_api_gateway_rest_api", api_name, "execution_arn") + "/prod/GET/demo")


def test_deployment_is_replaced_only_when_the_api_shape_changes(env):
    config, stack = env
    api_name, _ = only(stack, "aws_api_gateway_rest_api")
    resource_name, _ = only(stack, "aws_api_gateway_resource")
    method_name, _ = only(stack, "aws_api_gateway_method")
    integration_name, _ = only(stack, "aws_api_gateway_integration")
    deployment_name, deployment = only(stack, "aws_api_gateway_deployment")
    _, stage = only(stack, "aws_api_gateway_stage")
    _, settings = only(stack, "aws_api_gateway_method_settings")
    log_groups = stack["resource"]["aws_cloudwatch_log_group"]
    log_group_name = next(key for key, value in log_groups.items()
                          if value["name"].startswith("/aws/apigateway/"))

    trigger = deployment["triggers"]["redeployment"]
    assert trigger.startswith("${sha1(jsonencode([") and trigger.endswith("]))}")
    for reference in (f"aws_api_gateway_resource.{resource_name}.id",
                      f"aws_api_gateway_method.{method_name}.id",
                      f"aws_api_gateway_integration.{integration_name}.id",
                      f"aws_api_gateway_integration.{integration_name}.uri"):
        assert reference in trigger
    assert deployment["lifecycle"] == {"create_before_destroy": True}
    assert "stage_name" not in deployment

    assert stage["stage_name"] == "prod"
    assert stage["deployment_id"] == ref("aws_api_gateway_deployment", deployment_name, "id")
    assert stage["xray_tracing_enabled"] is True
    assert stage["access_log_settings"]["destination_arn"] == ref(
        "aws_cloudwatch_log_group", log_group_name, "arn")
    assert json.loads(stage["access_log_settings"]["format"])["requestId"] == "$context.requestId"

    assert settings["method_path"] == "*/*"
    assert settings["settings"] == {"metrics_enabled": True, "logging_level": "ERROR",
                                    "throttling_burst_limit": 50, "throttling_rate_limit": 100}
    # The execution log group API Gateway would otherwise create without a retention.
    execution_log_group_name, execution_log_group = next(
        (key, value) for key, value in stack["resource"]["aws_cloudwatch_log_group"].items()
        if value["name"].startswith("API-Gateway-Execution-Logs_"))
    assert execution_log_group["name"] == (
        "API-Gateway-Execution-Logs_" + ref("aws_api_gateway_rest_api", api_name, "id") + "/prod")
    assert execution_log_group["retention_in_days"] == config.function.log_retention_days
    assert settings["depends_on"] == [f"aws_cloudwatch_log_group.{execution_log_group_name}"]


def test_alarms_watch_alias_canary_latency_throttles_and_the_stage(env):
    config, stack = env
    function_name, _ = only(stack, "aws_lambda_function", "function")
    alarms = {alarm["alarm_name"].removeprefix(config.function_name + "-"): alarm
              for alarm in stack["resource"]["aws_cloudwatch_metric_alarm"].values()}
    assert set(alarms) == {"error-rate", "canary-error-rate", "p99-duration", "throttles",
                           "api-5xx-rate"}
    for alarm in alarms.values():
        assert alarm["treat_missing_data"] == "notBreaching"
        assert alarm["evaluation_periods"] == config.alarms.evaluation_periods
        periods = [query["metric"]["period"] for query in alarm.get("metric_query", [])
                   if "metric" in query] or [alarm["period"]]
        assert set(periods) == {60}

    alias_dimensions = {"FunctionName": config.function_name,
                        "Resource": f"{config.function_name}:production"}
    error_rate = alarms["error-rate"]
    assert error_rate["threshold"] == config.alarms.error_rate_percent
    queries = {query["id"]: query for query in error_rate["metric_query"]}
    assert queries["error_rate"]["expression"] == (
        "IF(invocations > 0, 100 * errors / invocations, 0)")
    assert queries["error_rate"]["return_data"] is True
    assert queries["errors"]["metric"]["metric_name"] == "Errors"
    assert queries["invocations"]["metric"]["metric_name"] == "Invocations"
    assert queries["errors"]["metric"]["dimensions"] == alias_dimensions
    assert queries["errors"]["metric"]["stat"] == "Sum"

    canary = {query["id"]: query for query in alarms["canary-error-rate"]["metric_query"]}
    assert canary["errors"]["metric"]["dimensions"] == {
        **alias_dimensions,
        "ExecutedVersion": ref("aws_lambda_function", function_name, "version")}
    assert alarms["canary-error-rate"]["threshold"] == config.alarms.canary_error_rate_percent

    p99 = alarms["p99-duration"]
    assert (p99["metric_name"], p99["extended_statistic"], p99["dimensions"]) == (
        "Duration", "p99", alias_dimensions)
    assert p99["threshold"] == config.alarms.p99_duration_ms
    assert alarms["throttles"]["dimensions"] == alias_dimensions
    api_5xx = alarms["api-5xx-rate"]
    assert (api_5xx["namespace"], api_5xx["metric_name"], api_5xx["dimensions"]) == (
        "AWS/ApiGateway", "5XXError", {"ApiName": config.function_name, "Stage": "prod"})
    assert api_5xx["threshold"] == pytest.approx(config.alarms.api_5xx_rate_percent / 100)


def test_thresholds_differ_per_environment(synth):
    thresholds = {
        name: {alarm["alarm_name"]: alarm["threshold"]
               for alarm in synth.stack(name)["resource"]["aws_cloudwatch_metric_alarm"].values()}
        for name in ("dev", "prod")}
    assert thresholds["prod"]["deploy-patterns-demo-prod-p99-duration"] == 1000
    assert thresholds["dev"]["deploy-patterns-demo-dev-p99-duration"] == 3000


def test_outputs_the_release_tasks_read(env):
    config, stack = env
    outputs = stack["output"]
    assert set(outputs) == {"auto_rollback_function", "auto_rollback_dead_letter_queue",
                            "api_url", "function_name", "alias_name", "alias_arn",
                            "candidate_version", "primary_version", "additional_version_weights",
                            "phase", "canary_weight", "stable_version", "alarm_names", "region",
                            "quarantine_parameter", "settings_parameter",
                            "dashboard_url"}
    assert all(output["description"] for output in outputs.values())
    function_name, _ = only(stack, "aws_lambda_function", "function")
    stage_name, _ = only(stack, "aws_api_gateway_stage")
    resource_name, _ = only(stack, "aws_api_gateway_resource")
    assert outputs["candidate_version"]["value"] == ref("aws_lambda_function", function_name,
                                                        "version")
    assert outputs["api_url"]["value"] == (
        ref("aws_api_gateway_stage", stage_name, "invoke_url") + "/"
        + ref("aws_api_gateway_resource", resource_name, "path_part"))
    assert outputs["additional_version_weights"]["value"] == (
        "${module.traffic_policy.additional_version_weights}")
    assert len(outputs["alarm_names"]["value"]) == 5
    assert outputs["region"]["value"] == config.region


def test_provider_region_and_tags_per_environment(env):
    config, stack = env
    provider = stack["provider"]["aws"][0]
    assert provider["region"] == config.region
    assert provider["default_tags"] == [{"tags": {**config.tags, "environment": config.name}}]


def test_auto_rollback_is_wired_alarm_to_topic_to_function(synth):
    stack = synth.stack("prod")
    topic_name, topic = only(stack, "aws_sns_topic", "auto_rollback")
    function_name, function = only(stack, "aws_lambda_function", "auto_rollback")
    _, subscription = only(stack, "aws_sns_topic_subscription", "auto_rollback")
    permission_name, permission = only(stack, "aws_lambda_permission", "auto_rollback")
    queue_name, _ = only(stack, "aws_sqs_queue", "auto_rollback")
    _, retries = only(stack, "aws_lambda_function_event_invoke_config", "auto_rollback")
    alias_name, _ = only(stack, "aws_lambda_alias")
    topic_arn = ref("aws_sns_topic", topic_name, "arn")

    actions = {alarm["alarm_name"]: alarm.get("alarm_actions")
               for alarm in stack["resource"]["aws_cloudwatch_metric_alarm"].values()}
    assert actions == {"deploy-patterns-demo-prod-error-rate": [topic_arn],
                       "deploy-patterns-demo-prod-canary-error-rate": [topic_arn],
                       "deploy-patterns-demo-prod-p99-duration": None,
                       "deploy-patterns-demo-prod-throttles": None,
                       "deploy-patterns-demo-prod-api-5xx-rate": None}
    assert subscription == {**subscription, "protocol": "lambda", "topic_arn": topic_arn,
                            "endpoint": ref("aws_lambda_function", function_name, "arn")}
    assert subscription["depends_on"] == [f"aws_lambda_permission.{permission_name}"]
    assert (permission["principal"], permission["source_arn"], permission["function_name"]) == (
        "sns.amazonaws.com", topic_arn, ref("aws_lambda_function", function_name, "function_name"))

    assert function["function_name"] == "deploy-patterns-demo-prod-rollback"
    assert function["publish"] is False
    assert function["environment"]["variables"] == {
        "FUNCTION_NAME": "deploy-patterns-demo-prod", "ALIAS_NAME": "production",
        "ALARM_NAMES": ("deploy-patterns-demo-prod-error-rate,"
                        "deploy-patterns-demo-prod-canary-error-rate"),
        "QUARANTINE_PARAMETER": "/deploy-patterns-demo-prod/release/quarantined-versions"}
    assert (retries["maximum_retry_attempts"], retries["destination_config"]) == (
        2, {"on_failure": {"destination": ref("aws_sqs_queue", queue_name, "arn")}})


def test_rollback_function_may_change_only_the_released_functions_aliases(synth):
    stack = synth.stack("prod")
    function_name, _ = only(stack, "aws_lambda_function", "function")
    queue_name, _ = only(stack, "aws_sqs_queue", "auto_rollback")
    _, policy = only(stack, "aws_iam_role_policy", "auto_rollback")
    _, role = only(stack, "aws_iam_role", "auto_rollback")
    statements = {statement["Sid"]: statement
                  for statement in json.loads(policy["policy"])["Statement"]}
    # GetAlias/UpdateAlias authorize on the unqualified function ARN (Lambda's actions table): an
    # alias ARN (or a version-qualified one) would never match, and the rollback would never act.
    assert statements["RollBackTheReleasedFunction"] == {
        "Sid": "RollBackTheReleasedFunction", "Effect": "Allow",
        "Action": ["lambda:GetAlias", "lambda:UpdateAlias"],
        "Resource": ref("aws_lambda_function", function_name, "arn")}
    assert not any("aws_lambda_alias" in str(statement["Resource"]) or
                   "qualified_arn" in str(statement["Resource"])
                   for statement in statements.values())
    assert statements["KeepUndeliveredAlarms"]["Resource"] == ref("aws_sqs_queue", queue_name,
                                                                  "arn")
    # The quarantine: read and write the stack's one parameter, nothing else in SSM.
    assert statements["QuarantineTheRolledBackVersion"] == {
        "Sid": "QuarantineTheRolledBackVersion", "Effect": "Allow",
        "Action": ["ssm:GetParameter", "ssm:PutParameter"],
        "Resource": ref("aws_ssm_parameter", only(stack, "aws_ssm_parameter", "quarantine")[0],
                        "arn")}
    assert set(statements) == {"WriteOwnLogs", "WriteTraces", "RollBackTheReleasedFunction",
                               "QuarantineTheRolledBackVersion", "KeepUndeliveredAlarms"}
    lambda_actions = [action for statement in statements.values() for action in statement["Action"]
                      if action.startswith("lambda:")]
    assert lambda_actions == ["lambda:GetAlias", "lambda:UpdateAlias"]
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {
        "Service": "lambda.amazonaws.com"}


def test_dev_opted_out_of_auto_rollback(synth):
    stack = synth.stack("dev")
    assert "aws_sns_topic" not in stack["resource"]
    assert all("alarm_actions" not in alarm
               for alarm in stack["resource"]["aws_cloudwatch_metric_alarm"].values())
    assert stack["output"]["auto_rollback_function"]["value"] == ""


def test_account_stack_holds_the_api_gateway_logging_role(synth):
    stack = synth.stack("account-eu-west-1")
    role_name, role = only(stack, "aws_iam_role")
    _, attachment = only(stack, "aws_iam_role_policy_attachment")
    _, account = only(stack, "aws_api_gateway_account")
    assert json.loads(role["assume_role_policy"])["Statement"][0]["Principal"] == {
        "Service": "apigateway.amazonaws.com"}
    assert attachment["policy_arn"].endswith("service-role/AmazonAPIGatewayPushToCloudWatchLogs")
    assert account["cloudwatch_role_arn"] == ref("aws_iam_role", role_name, "arn")
    assert stack["terraform"]["backend"] == {
        "local": {"path": "../../../terraform-state/account-eu-west-1/terraform.tfstate"}}


def test_no_environment_stack_holds_account_settings(synth):
    # Destroying aws_api_gateway_account resets the setting for every API in the account and
    # region: it lives in the account stack, which `invoke destroy` never touches.
    for environment in PROJECT_ENVIRONMENTS:
        assert "aws_api_gateway_account" not in synth.stack(environment)["resource"]


def test_an_environment_without_logging_has_no_stage_logs(synth):
    # conftest's cloud-backed environment sets api = { logging = false }.
    stack = synth.stack("cloud-backed")
    _, stage = only(stack, "aws_api_gateway_stage")
    _, method_settings = only(stack, "aws_api_gateway_method_settings")
    assert "access_log_settings" not in stage
    assert method_settings["settings"]["logging_level"] == "OFF"
    assert method_settings["settings"]["metrics_enabled"] is True
    log_groups = [group["name"] for group in stack["resource"]["aws_cloudwatch_log_group"].values()]
    assert not any("apigateway" in name.lower() or "API-Gateway" in name for name in log_groups)
