"""The demo function's response contract, fault injection and error path, called as Lambda calls
it."""

import ast
import importlib.machinery
import importlib.util
import json
import logging
import random
import subprocess
import sys
import uuid
from types import SimpleNamespace

import pytest

from conftest import PROJECT_ROOT

FUNCTION_DIR = PROJECT_ROOT / "functions" / "demo"
REQUEST_ID = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"


def module_source(name: str) -> str:
    return (FUNCTION_DIR / f"{name}.py").read_text(encoding="utf-8")


@pytest.fixture
def load_function_module(monkeypatch):
    """Load functions/demo/<name>.py as Lambda would (its folder on sys.path), under a unique
    module name, and undo every trace of it after the test."""
    # The function folder goes last on sys.path so that it can never hide a project package.
    monkeypatch.setattr(sys, "path", [*sys.path, str(FUNCTION_DIR)])
    # Keep the source tree free of __pycache__ (the archive skips it, but git status should not
    # see it).
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    # The handler imports its sibling by its plain name: start without one and remove it after.
    previous_release_info = sys.modules.pop("release_info", None)
    loaded = []

    def load(name: str):
        unique_name = f"demo_{name}_{uuid.uuid4().hex}"
        spec = importlib.util.spec_from_file_location(unique_name, FUNCTION_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique_name] = module
        loaded.append(unique_name)
        spec.loader.exec_module(module)
        return module

    yield load
    for unique_name in loaded:
        del sys.modules[unique_name]
    sys.modules.pop("release_info", None)
    if previous_release_info is not None:
        sys.modules["release_info"] = previous_release_info


@pytest.fixture
def handler(load_function_module, monkeypatch):
    # The handler sets the root logger to INFO at import, as Lambda handlers do: restore it.
    monkeypatch.setattr(logging.getLogger(), "level", logging.getLogger().level)
    monkeypatch.setenv("DEPLOY_ENVIRONMENT", "staging")
    monkeypatch.delenv("FAULT_RATE", raising=False)
    monkeypatch.delenv("SETTINGS_PARAMETER", raising=False)
    monkeypatch.delenv("SECRETS", raising=False)
    return load_function_module("handler")


@pytest.fixture
def release_info(load_function_module):
    return load_function_module("release_info")


def api_gateway_event() -> dict:
    """An API Gateway REST API (v1) Lambda proxy event for `GET /demo`, as the stage sends it."""
    return {
        "resource": "/demo",
        "path": "/demo",
        "httpMethod": "GET",
        "headers": {
            "Accept": "*/*",
            "Host": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            "User-Agent": "python-httpx/0.28.1",
            "X-Amzn-Trace-Id": "Root=1-67891233-abcdef012345678912345678",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Port": "443",
            "X-Forwarded-Proto": "https",
        },
        "multiValueHeaders": {
            "Accept": ["*/*"],
            "Host": ["a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"],
            "User-Agent": ["python-httpx/0.28.1"],
            "X-Amzn-Trace-Id": ["Root=1-67891233-abcdef012345678912345678"],
            "X-Forwarded-For": ["203.0.113.7"],
            "X-Forwarded-Port": ["443"],
            "X-Forwarded-Proto": ["https"],
        },
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "2gxmpl",
            "resourcePath": "/demo",
            "httpMethod": "GET",
            "extendedRequestId": "lBQ8ZJEXAMPLEFQ=",
            "requestTime": "10/Mar/2025:00:03:59 +0000",
            "path": "/prod/demo",
            "accountId": "123456789012",
            "protocol": "HTTP/1.1",
            "stage": "prod",
            "domainPrefix": "a1b2c3d4e5",
            "requestTimeEpoch": 1741565039000,
            "requestId": "e0a4b5f1-5d2c-4c4f-9a0b-EXAMPLE12345",
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": "203.0.113.7",
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": "python-httpx/0.28.1",
                "user": None,
            },
            "domainName": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com",
            "apiId": "a1b2c3d4e5",
        },
        "body": None,
        "isBase64Encoded": False,
    }


def lambda_context(request_id: str = REQUEST_ID) -> SimpleNamespace:
    """The attributes of Lambda's Python context object, for version 7 behind the alias."""
    return SimpleNamespace(
        aws_request_id=request_id,
        function_name="deploy-patterns-demo-staging",
        function_version="7",
        invoked_function_arn=("arn:aws:lambda:eu-west-1:123456789012:function:"
                              "deploy-patterns-demo-staging:production"),
        memory_limit_in_mb="256",
        log_group_name="/aws/lambda/deploy-patterns-demo-staging",
        log_stream_name="2025/03/10/[7]0123456789abcdef0123456789abcdef",
        get_remaining_time_in_millis=lambda: 9_500,
    )


def test_response_follows_the_contract_the_smoke_check_verifies(handler, release_info):
    response = handler.lambda_handler(api_gateway_event(), lambda_context())

    assert response["statusCode"] == 200
    assert response["headers"] == {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "*",
        "X-Function-Version": "7",
        "X-Config-Version": "none",  # no SETTINGS_PARAMETER: nothing pinned
    }
    body = json.loads(response["body"])
    assert body == {
        "version": release_info.RELEASE_VERSION,
        "message": release_info.RELEASE_MESSAGE,
        "timestamp": REQUEST_ID,
        "environment": "staging",
        "function_version": "7",
        "config_version": "none",
    }
    assert body["version"] == "1.0.0"
    # Lambda proxy integrations need a string body and nothing API Gateway would reject.
    assert set(response) == {"statusCode", "headers", "body"}


def test_environment_comes_from_deploy_environment(handler, monkeypatch):
    monkeypatch.setenv("DEPLOY_ENVIRONMENT", "prod")
    body = json.loads(handler.lambda_handler(api_gateway_event(), lambda_context())["body"])
    assert body["environment"] == "prod"


def test_fault_rate_one_fails_every_request_as_a_function_error(handler, monkeypatch):
    monkeypatch.setenv("FAULT_RATE", "1")
    for _ in range(50):
        # Raised, not answered: Lambda counts it in Errors and API Gateway answers 502.
        with pytest.raises(handler.InjectedFault, match=REQUEST_ID):
            handler.lambda_handler(api_gateway_event(), lambda_context())


@pytest.mark.parametrize("setting", [None, "0", "0.0"])
def test_no_fault_rate_never_fails(handler, monkeypatch, setting):
    if setting is not None:
        monkeypatch.setenv("FAULT_RATE", setting)
    # random.random() is in [0, 1): even its smallest value must not fail a request at rate 0.
    monkeypatch.setattr(handler, "random", SimpleNamespace(random=lambda: 0.0))
    for _ in range(20):
        assert handler.lambda_handler(api_gateway_event(), lambda_context())["statusCode"] == 200


def test_fault_rate_half_fails_about_half_of_the_requests(handler, monkeypatch):
    monkeypatch.setenv("FAULT_RATE", "0.5")
    monkeypatch.setattr(handler, "random", random.Random(20250310))
    faults = 0
    for number in range(2000):
        try:
            response = handler.lambda_handler(api_gateway_event(),
                                              lambda_context(f"request-{number}"))
        except handler.InjectedFault:
            faults += 1
        else:
            assert response["statusCode"] == 200
    # Binomial(2000, 0.5): 1000 +/- 22 (sd); the band is over 4 sd wide either side.
    assert 900 <= faults <= 1100


@pytest.mark.parametrize("setting", ["abc", "-1", "2", "nan", "inf", ""])
def test_invalid_fault_rate_is_ignored_with_a_warning(handler, monkeypatch, caplog, setting):
    monkeypatch.setenv("FAULT_RATE", setting)
    # Had the value been taken as a rate >= the draw, this request would fail.
    monkeypatch.setattr(handler, "random", SimpleNamespace(random=lambda: 0.0))
    with caplog.at_level(logging.WARNING):
        response = handler.lambda_handler(api_gateway_event(), lambda_context())

    assert response["statusCode"] == 200
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert f"FAULT_RATE={setting!r}" in warnings[0].getMessage()
    assert "0 to 1" in warnings[0].getMessage()


def test_unexpected_error_answers_500_with_the_request_id_and_logs_the_traceback(
        handler, monkeypatch, caplog):
    def broken_body(context, config):
        raise KeyError("secret-internal-detail")

    monkeypatch.setattr(handler, "build_body", broken_body)
    with caplog.at_level(logging.INFO):
        response = handler.lambda_handler(api_gateway_event(), lambda_context())

    assert response["statusCode"] == 500
    assert response["headers"]["Content-Type"] == "application/json"
    assert response["headers"]["X-Function-Version"] == "7"
    assert json.loads(response["body"]) == {"error": "internal error", "request_id": REQUEST_ID}
    assert "Traceback" not in response["body"]
    assert "secret-internal-detail" not in response["body"]

    errors = [record for record in caplog.records if record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert REQUEST_ID in errors[0].getMessage()
    assert errors[0].exc_info is not None and errors[0].exc_info[0] is KeyError
    assert "Traceback (most recent call last)" in caplog.text
    assert "secret-internal-detail" in caplog.text


def imported_names(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


@pytest.mark.parametrize("name", ["handler", "release_info"])
def test_function_code_imports_neither_cdktf_nor_the_release_package(name):
    imported = imported_names(module_source(name))
    # Only what the Lambda runtime has: the standard library and the function's own files.
    for forbidden in ("cdktf", "release"):
        assert not {n for n in imported
                    if n == forbidden or n.startswith(forbidden + ".")}, imported
    assert imported <= {"json", "logging", "os", "random", "dataclasses", "functools", "boto3",
                        "release_info"}


def test_function_folder_cannot_shadow_the_release_package():
    # Nothing named `release` (module or package) in the folder that goes on sys.path.
    assert importlib.machinery.PathFinder.find_spec("release", [str(FUNCTION_DIR)]) is None


def test_loading_the_handler_leaves_the_project_release_package_in_place(handler):
    import release.config

    assert release.config.__file__ == str(PROJECT_ROOT / "release" / "config.py")
    assert sys.modules["release_info"].__file__ == str(FUNCTION_DIR / "release_info.py")


@pytest.mark.parametrize("name", ["handler", "release_info"])
def test_function_code_is_python_3_11_syntax(name):
    # The lowest Python the project supports; Lambda runs it on the configured, newer runtime.
    ast.parse(module_source(name), feature_version=(3, 11))


def test_function_folder_imports_on_its_own_in_a_fresh_interpreter():
    """Import the handler the way the Lambda runtime does: only the function folder on the path,
    no project packages, and nothing else from the project loaded alongside it."""
    script = (
        "import sys, json\n"
        "import handler\n"
        "print(json.dumps({'python': list(sys.version_info[:2]), "
        "'callable': callable(handler.lambda_handler), "
        "'loaded': sorted(m for m in sys.modules if m.split('.')[0] in "
        "('cdktf', 'release', 'modules', 'boto3'))}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-B", "-c",
         f"import sys; sys.path.insert(0, {str(FUNCTION_DIR)!r})\n" + script],
        cwd=FUNCTION_DIR, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report == {"python": [3, 11], "callable": True, "loaded": []}


class FakeConfigStores:
    """boto3 as the handler uses it: SSM parameters by `name:version` selector and Secrets
    Manager secret values by ARN and version id; counts the calls."""

    def __init__(self) -> None:
        self.parameters = {"/fn/release/settings:3": {"greeting": "hello"},
                           "/fn/release/settings:4": {"greeting": "bonjour"}}
        self.secrets = {("arn:secret:db", "v-old"): "old-password",
                        ("arn:secret:db", "v-new"): "new-password"}
        self.calls: list[str] = []

    def client(self, service: str) -> SimpleNamespace:
        return SimpleNamespace(get_parameter=self.get_parameter,
                               get_secret_value=self.get_secret_value)

    def get_parameter(self, Name: str) -> dict:
        self.calls.append(f"ssm {Name}")
        return {"Parameter": {"Name": Name.rsplit(":", 1)[0], "Version": int(Name.rsplit(":")[1]),
                              "Value": json.dumps(self.parameters[Name])}}

    def get_secret_value(self, SecretId: str, VersionId: str) -> dict:
        self.calls.append(f"secretsmanager {SecretId} {VersionId}")
        return {"SecretString": self.secrets[(SecretId, VersionId)]}


@pytest.fixture
def config_stores(monkeypatch):
    stores = FakeConfigStores()
    monkeypatch.setitem(sys.modules, "boto3", stores)
    return stores


def test_a_version_reports_the_settings_version_it_is_pinned_to(handler, monkeypatch,
                                                                config_stores):
    monkeypatch.setenv("SETTINGS_PARAMETER", "/fn/release/settings:3")
    response = handler.lambda_handler(api_gateway_event(), lambda_context())
    assert response["headers"]["X-Config-Version"] == "3"
    assert json.loads(response["body"])["config_version"] == "3"
    assert handler.released_config().settings == {"greeting": "hello"}


def test_config_is_read_once_per_execution_environment(handler, monkeypatch, config_stores):
    monkeypatch.setenv("SETTINGS_PARAMETER", "/fn/release/settings:4")
    for request in range(3):
        handler.lambda_handler(api_gateway_event(), lambda_context(f"request-{request}"))
    assert config_stores.calls == ["ssm /fn/release/settings:4"]


def test_secrets_are_read_at_their_pinned_version(handler, monkeypatch, config_stores):
    monkeypatch.setenv("SETTINGS_PARAMETER", "/fn/release/settings:3")
    monkeypatch.setenv("SECRETS", json.dumps({"db": {"arn": "arn:secret:db",
                                                     "version_id": "v-old"}}))
    assert handler.released_config().secrets == {"db": "old-password"}
    assert "secretsmanager arn:secret:db v-old" in config_stores.calls


def test_unreadable_config_answers_500_and_is_read_again_next_time(handler, monkeypatch,
                                                                   config_stores):
    monkeypatch.setenv("SETTINGS_PARAMETER", "/fn/release/settings:9")  # no such version
    response = handler.lambda_handler(api_gateway_event(), lambda_context())
    assert response["statusCode"] == 500
    config_stores.parameters["/fn/release/settings:9"] = {"greeting": "hi"}
    response = handler.lambda_handler(api_gateway_event(), lambda_context())
    assert response["headers"]["X-Config-Version"] == "9"
