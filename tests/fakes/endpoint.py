"""A local stand-in for the demo function behind API Gateway: `GET <stage>/<path>` answered by a
stable and a candidate version at a chosen split, with optional latency, 502s and broken contracts.

    with FakeEndpoint(candidate_version="8", stable_version="7", weight=0.1) as endpoint:
        smoke_check(endpoint.url, expected_weight=0.1)
        endpoint.configure(weight=1.0)        # routing changed, e.g. after a Terraform apply
        endpoint.configure(weight=0.5, lag_requests=200)  # ... seen by the data plane 200 later

Each request draws from one seeded RNG under a lock, so the i-th request served always gets the
same draws and a run's version counts are reproducible whatever the client's concurrency; a lag
counted in requests keeps that so.
"""

from __future__ import annotations

import dataclasses
import json
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypedDict, Unpack

HOST = "127.0.0.1"

# Ways to break the response contract on purpose; see `_respond` for what each one does.
BREAKAGES = ("missing_version_header", "missing_cors_header", "wrong_content_type",
             "missing_body_field", "body_version_mismatch", "not_json")


@dataclass(frozen=True)
class Behaviour:
    """How the endpoint answers; swapped whole by `FakeEndpoint.configure`."""

    candidate_version: str = "2"
    stable_version: str = "1"
    # Share of requests the alias sends to the candidate.
    weight: float = 0.0
    latency_ms: float = 0.0
    # Share of requests answered 502 {"message": "Internal server error"}, as API Gateway does
    # for a failed invocation (no version header).
    error_rate: float = 0.0
    # Share of the requests routed to the candidate answered 502: a bad release.
    candidate_error_rate: float = 0.0
    breakage: str | None = None
    # Share of the otherwise good responses that get `breakage`.
    breakage_rate: float = 1.0
    release_version: str = "1.0.0"
    environment: str = "dev"
    # Function version -> the config version it reports (X-Config-Version, body config_version),
    # as the demo function does from its pinned SETTINGS_PARAMETER; versions not in it report none.
    config_versions: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.breakage is not None and self.breakage not in BREAKAGES:
            raise ValueError(f"breakage {self.breakage!r}: use one of {', '.join(BREAKAGES)}")


class BehaviourFields(TypedDict, total=False):
    """Behaviour's fields as keyword arguments, so that mypy checks what callers pass."""

    candidate_version: str
    stable_version: str
    weight: float
    latency_ms: float
    error_rate: float
    candidate_error_rate: float
    breakage: str | None
    breakage_rate: float
    release_version: str
    environment: str


class FakeEndpoint:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port) in a background thread."""

    def __init__(self, *, path: str = "/prod/demo", seed: int = 0,
                 **behaviour: Unpack[BehaviourFields]) -> None:
        self.path = path
        self._behaviour = Behaviour(**behaviour)
        # A data plane lagging a routing change: the next `_lag_left` requests get `_previous`.
        self._previous = self._behaviour
        self._lag_left = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._requests_seen = 0
        self._served: Counter = Counter()
        self._server = _Server((HOST, 0), _handler_for(self))
        # serve_forever checks for shutdown once per poll interval (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._server.server_port}{self.path}"

    @property
    def requests_seen(self) -> int:
        with self._lock:
            return self._requests_seen

    @property
    def behaviour(self) -> Behaviour:
        with self._lock:
            return self._behaviour

    def served(self) -> Counter:
        """Requests routed to each version, as (version, failed) -> count: what Lambda's
        per-version Invocations and Errors metrics would count."""
        with self._lock:
            return Counter(self._served)

    def _tally(self, version: str, failed: bool) -> None:
        with self._lock:
            self._served[(version, failed)] += 1

    def configure(self, *, lag_requests: int = 0, **changes: Unpack[BehaviourFields]) -> None:
        """Change how later requests are answered, e.g. `configure(weight=0.5, latency_ms=20)`.

        With `lag_requests` the next that many requests are still answered as before, as by
        API Gateway and Lambda while their data plane catches up with an alias update.
        """
        with self._lock:
            self._previous, self._lag_left = self._behaviour, lag_requests
            self._behaviour = dataclasses.replace(self._behaviour, **changes)

    def start(self) -> FakeEndpoint:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeEndpoint:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _draw(self) -> tuple[Behaviour, float, float, float]:
        """The behaviour for one request and its three uniform draws (error, route, breakage)."""
        with self._lock:
            self._requests_seen += 1
            behaviour = self._behaviour
            if self._lag_left:
                self._lag_left -= 1
                behaviour = self._previous
            return (behaviour, self._random.random(), self._random.random(),
                    self._random.random())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A pool of fresh connections arrives at once; the default backlog (5) drops SYNs, which the
    # client retries only after a second.
    request_queue_size = 128

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: a client that timed out closed its socket before the (slow) answer."""


def _handler_for(endpoint: FakeEndpoint) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # Keep-alive, so a client's connection pool is exercised as against API Gateway.
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; Nagle plus delayed ACK would add 40 ms to each.
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path.split("?")[0] != endpoint.path:
                self._send(403, {"message": "Missing Authentication Token"}, {})
                return
            behaviour, error_draw, route_draw, breakage_draw = endpoint._draw()
            time.sleep(behaviour.latency_ms / 1000)
            if error_draw < behaviour.error_rate:
                self._send(502, {"message": "Internal server error"}, {})
                return
            version = (behaviour.candidate_version if route_draw < behaviour.weight
                       else behaviour.stable_version)
            failed = (version == behaviour.candidate_version
                      and breakage_draw < behaviour.candidate_error_rate)
            endpoint._tally(version, failed)
            if failed:
                self._send(502, {"message": "Internal server error"}, {})
                return
            breakage = behaviour.breakage if breakage_draw < behaviour.breakage_rate else None
            self._respond(behaviour, version, breakage)

        def _respond(self, behaviour: Behaviour, version: str, breakage: str | None) -> None:
            body = {
                "version": behaviour.release_version,
                "message": f"Hello from version {version}",
                "timestamp": str(uuid.uuid4()),
                "environment": behaviour.environment,
                "function_version": version,
            }
            headers = {"Access-Control-Allow-Origin": "*", "X-Function-Version": version}
            if version in behaviour.config_versions:
                body["config_version"] = headers["X-Config-Version"] = (
                    behaviour.config_versions[version])
            content_type = "application/json"
            if breakage == "missing_version_header":
                del headers["X-Function-Version"]
            elif breakage == "missing_cors_header":
                del headers["Access-Control-Allow-Origin"]
            elif breakage == "wrong_content_type":
                content_type = "text/plain"
            elif breakage == "missing_body_field":
                del body["environment"]
            elif breakage == "body_version_mismatch":
                body["function_version"] = version + "0"
            elif breakage == "not_json":
                self._send(200, f"hello from {version}", headers, content_type)
                return
            self._send(200, body, headers, content_type)

        def _send(self, status: int, body: object, headers: dict[str, str],
                  content_type: str = "application/json") -> None:
            payload = (body if isinstance(body, str) else json.dumps(body)).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            """Silent: a smoke run would print hundreds of access-log lines."""

    return Handler
