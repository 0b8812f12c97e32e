"""Demo function behind API Gateway's `GET /demo` (Lambda proxy integration).

Response contract (the seed recipe's, which the release smoke check verifies on every response):
status 200; headers `Content-Type: application/json`, `Access-Control-Allow-Origin: *` and
`X-Function-Version`; JSON body with `version` (release), `message`, `timestamp` (the request id),
`environment`, `function_version` (the Lambda version that ran) and `config_version` (the
settings parameter version this function version is pinned to, also in `X-Config-Version`; "none"
without `SETTINGS_PARAMETER`). API Gateway does not pass Lambda's `x-amz-executed-version` on, so
the function reports its own version for the smoke check to count the canary split, and its config
version for the smoke check to tell that each version runs with the config it was released with.

Config (modules/settings.py): `SETTINGS_PARAMETER` is `<parameter>:<version>`, the SSM parameter
version this function version was published with; `SECRETS` (optional) maps each secret to its
ARN and pinned version id. Both are read once per execution environment and cached: a function
version's environment never changes, so neither does its config.

`FAULT_RATE` (0..1, default 0) fails that share of requests on purpose, as real function errors,
so that rollback drills trip the same `Errors` alarms a broken release would.
"""

import json
import logging
import os
import random
from dataclasses import dataclass
from functools import cache

from release_info import RELEASE_MESSAGE, RELEASE_VERSION

LOGGER = logging.getLogger()
LOGGER.setLevel(logging.INFO)


class InjectedFault(RuntimeError):
    """A failure requested by FAULT_RATE, for rollback drills."""


def fault_rate() -> float:
    raw = os.environ.get("FAULT_RATE", "0")
    try:
        rate = float(raw)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:  # also rejects NaN
        LOGGER.warning("ignoring FAULT_RATE=%r: expected a number from 0 to 1", raw)
        return 0.0
    return rate


@dataclass(frozen=True)
class ReleasedConfig:
    """The settings and secret values this function version was released with."""

    version: str
    settings: dict
    secrets: dict


@cache
def released_config() -> ReleasedConfig:
    """Read once per execution environment (boto3 is imported only when there is config)."""
    selector = os.environ.get("SETTINGS_PARAMETER", "")
    pinned_secrets = json.loads(os.environ.get("SECRETS") or "{}")
    if not selector and not pinned_secrets:
        return ReleasedConfig(version="none", settings={}, secrets={})
    import boto3

    version, settings = "none", {}
    if selector:
        parameter = boto3.client("ssm").get_parameter(Name=selector)["Parameter"]
        version, settings = str(parameter["Version"]), json.loads(parameter["Value"])
    secrets = {}
    if pinned_secrets:
        secrets_client = boto3.client("secretsmanager")
        secrets = {name: secrets_client.get_secret_value(
                       SecretId=pin["arn"], VersionId=pin["version_id"])["SecretString"]
                   for name, pin in pinned_secrets.items()}
    return ReleasedConfig(version=version, settings=settings, secrets=secrets)


def _response(status: int, body: dict, function_version: str,
              config_version: str | None = None) -> dict:
    headers = {
        "Content-Type": "application/json",
        "Access-Control-Allow-Origin": "*",
        "X-Function-Version": function_version,
    }
    if config_version is not None:
        headers["X-Config-Version"] = config_version
    return {"statusCode": status, "headers": headers, "body": json.dumps(body)}


def build_body(context, config: ReleasedConfig) -> dict:
    return {
        "version": RELEASE_VERSION,
        "message": RELEASE_MESSAGE,
        "timestamp": context.aws_request_id,
        "environment": os.environ.get("DEPLOY_ENVIRONMENT", "unknown"),
        "function_version": context.function_version,
        "config_version": config.version,
    }


def lambda_handler(event, context):
    if random.random() < fault_rate():
        # Raised, not turned into a 500: the drill must show up in Lambda's Errors metric.
        raise InjectedFault(f"injected fault (FAULT_RATE) in request {context.aws_request_id}")
    try:
        config = released_config()
        return _response(200, build_body(context, config), context.function_version,
                         config.version)
    except Exception:
        # Logged with its traceback for the operator; the caller only sees a request id.
        request_id = getattr(context, "aws_request_id", "unknown")
        LOGGER.exception("unhandled error in request %s", request_id)
        body = {"error": "internal error", "request_id": request_id}
        return _response(500, body, getattr(context, "function_version", "unknown"))
