"""Demo function behind API Gateway's `GET /demo` (Lambda proxy integration).

Response contract (the seed recipe's, which the release smoke check verifies on every response):
status 200; headers `Content-Type: application/json`, `Access-Control-Allow-Origin: *` and
`X-Function-Version`; JSON body with `version` (release), `message`, `timestamp` (the request id),
`environment` and `function_version` (the Lambda version that ran). API Gateway does not pass
Lambda's `x-amz-executed-version` on, so the function reports its own version for the smoke check
to count the canary split.

`FAULT_RATE` (0..1, default 0) fails that share of requests on purpose, as real function errors,
so that rollback drills trip the same `Errors` alarms a broken release would.
"""

import json
import logging
import os
import random

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


def _response(status: int, body: dict, function_version: str) -> dict:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": "application/json",
            "Access-Control-Allow-Origin": "*",
            "X-Function-Version": function_version,
        },
        "body": json.dumps(body),
    }


def build_body(context) -> dict:
    return {
        "version": RELEASE_VERSION,
        "message": RELEASE_MESSAGE,
        "timestamp": context.aws_request_id,
        "environment": os.environ.get("DEPLOY_ENVIRONMENT", "unknown"),
        "function_version": context.function_version,
    }


def lambda_handler(event, context):
    if random.random() < fault_rate():
        # Raised, not turned into a 500: the drill must show up in Lambda's Errors metric.
        raise InjectedFault(f"injected fault (FAULT_RATE) in request {context.aws_request_id}")
    try:
        return _response(200, build_body(context), context.function_version)
    except Exception:
        # Logged with its traceback for the operator; the caller only sees a request id.
        request_id = getattr(context, "aws_request_id", "unknown")
        LOGGER.exception("unhandled error in request %s", request_id)
        body = {"error": "internal error", "request_id": request_id}
        return _response(500, body, getattr(context, "function_version", "unknown"))
