"""A local stand-in for the Terraform Cloud / Enterprise API: the JSON:API endpoints that
`release.tfc.TfcClient` calls, with one organization, its workspaces, variables, runs and outputs.

    def routing(workspace, variables):          # what "terraform apply" would output
        return {"canary_weight": float(variables["canary_weight"]), ...}

    with FakeTfc(on_apply=routing) as tfc:
        workspace_id = tfc.add_workspace("lambda-dev")
        client = TfcClient("app.terraform.io", tfc.token, address=tfc.address)
        tfc.script_run("errored")                # the next run fails while planning
        tfc.fail_next(429, headers={"Retry-After": "1"})   # the next request is rate limited

Runs move one status further on every GET of the run (pending -> planning -> planned ->
[waits for the confirm] -> applying -> applied); a workspace with auto_apply needs no confirm.
Reaching "applied" calls `on_apply(workspace_name, variables)` with the run's Terraform variables
(name -> string value) and keeps what it returns as the workspace's state outputs. A run whose
variables equal those of the last applied run ends "planned_and_finished" (no changes).

Every request is recorded (`requests`), with its headers and body, for assertions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

DEFAULT_TOKEN = "fake-tfc-token.atlasv1.0123456789abcdef"
JSON_API = "application/vnd.api+json"

# The statuses a scripted run goes through; the last one is where it stays.
OUTCOMES: dict[str, tuple[str, ...]] = {
    "applied": ("pending", "planning", "planned", "applying", "applied"),
    "no_changes": ("pending", "planning", "planned_and_finished"),
    # Policies passed: the plan waits for its confirmation at policy_checked instead.
    "policy_passed": ("pending", "planning", "planned", "policy_checking", "policy_checked",
                      "applying", "applied"),
    "errored": ("pending", "planning", "errored"),
    # Failed half way through the apply: part of it may be live.
    "apply_errored": ("pending", "planning", "planned", "applying", "errored"),
    "discarded": ("pending", "planning", "planned", "discarded"),
    "canceled": ("pending", "planning", "canceled"),
    # An admin force-canceled the run (a cool-off after a cancel that did not stop it) while it
    # planned, or while it applied: then part of the apply may be live.
    "force_canceled": ("pending", "planning", "force_canceled"),
    "apply_force_canceled": ("pending", "planning", "planned", "applying", "force_canceled"),
    "policy_soft_failed": ("pending", "planning", "planned", "policy_checking",
                           "policy_soft_failed"),
    "policy_override": ("pending", "planning", "planned", "policy_checking", "policy_override"),
    "policy_hard_failed": ("pending", "planning", "planned", "policy_checking", "errored"),
    # Queued behind another run for ever.
    "never_finishes": ("pending", "plan_queued"),
}
POLICY_CHECK_STATUS = {"policy_passed": "passed", "policy_soft_failed": "soft_failed",
                       "policy_override": "soft_failed", "policy_hard_failed": "hard_failed"}
NOT_PLANNED_YET = ("pending", "plan_queued", "planning")
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # without the query string, percent-decoded
    query: Mapping[str, str]
    headers: Mapping[str, str]
    raw_target: str  # the request line's target, as sent
    raw_body: str
    body: Any  # the parsed JSON body, or None


@dataclass
class _Failure:
    status: int
    method: str | None
    path: str | None
    times: int
    headers: Mapping[str, str]
    detail: str


@dataclass
class _Variable:
    id: str
    key: str
    value: str
    category: str = "terraform"
    hcl: bool = False
    sensitive: bool = False
    description: str = ""


@dataclass
class _Workspace:
    id: str
    name: str
    auto_apply: bool
    working_directory: str
    variables: list[_Variable] = field(default_factory=list)
    outputs: dict[str, Any] | None = None  # None: no state yet
    applied_variables: dict[str, str] | None = None


@dataclass
class _Run:
    id: str
    plan_id: str
    workspace: _Workspace
    message: str
    variables: dict[str, str]
    statuses: list[str]
    changes: tuple[int, int, int]
    policy_check: str | None
    index: int = 0
    confirmed: bool = False
    timestamps: dict[str, str] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return self.statuses[self.index]

    @property
    def awaits_confirmation(self) -> bool:
        following = self.statuses[self.index + 1] if self.index + 1 < len(self.statuses) else None
        return following == "applying" and not self.confirmed and not self.workspace.auto_apply


class FakeTfc:
    """ThreadingHTTPServer on 127.0.0.1 (ephemeral port) in a background thread."""

    def __init__(self, *, token: str = DEFAULT_TOKEN, organization: str = "acme",
                 on_apply: Callable[[str, dict[str, str]], Mapping[str, Any]] | None = None,
                 sensitive_outputs: Collection[str] = ()) -> None:
        """`on_apply` default: the outputs echo the variables. `sensitive_outputs`: outputs whose
        values the API hides (null), as it does for `sensitive = true` outputs."""
        self.token = token
        self.organization = organization
        self.on_apply = on_apply or (lambda workspace, variables: dict(variables))
        self.sensitive_outputs = frozenset(sensitive_outputs)
        self.requests: list[RecordedRequest] = []
        # Exceptions raised by on_apply (their runs end "errored"); re-raised by stop().
        self.callback_errors: list[BaseException] = []
        self._lock = threading.RLock()
        self._workspaces: dict[str, _Workspace] = {}
        self._runs: dict[str, _Run] = {}
        self._scripts: list[tuple[str, tuple[int, int, int]]] = []
        self._failures: list[_Failure] = []
        self._ids = 0
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeTfc:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeTfc:
        return self.start()

    def __exit__(self, exc_type: object, *exc_info: object) -> None:
        self.stop()
        if self.callback_errors and exc_type is None:
            first = self.callback_errors[0]
            raise RuntimeError(f"on_apply raised: {first!r}") from first

    # ------------------------------------------------------------------ arranging

    def add_workspace(self, name: str, *, auto_apply: bool = False, working_directory: str = "",
                      variables: Mapping[str, str] | None = None, sensitive: Collection[str] = (),
                      env_variables: Mapping[str, str] | None = None,
                      outputs: Mapping[str, Any] | None = None) -> str:
        """A workspace; its id. Optionally with Terraform variables (those named in `sensitive`
        marked so), environment variables, and a current state with `outputs`."""
        with self._lock:
            workspace = _Workspace(self._new_id("ws"), name, auto_apply, working_directory,
                                   outputs=dict(outputs) if outputs is not None else None)
            for key, value in (variables or {}).items():
                workspace.variables.append(_Variable(self._new_id("var"), key, value,
                                                     sensitive=key in sensitive))
            for key, value in (env_variables or {}).items():
                workspace.variables.append(_Variable(self._new_id("var"), key, value,
                                                     category="env"))
            self._workspaces[workspace.id] = workspace
            return workspace.id

    def script_run(self, outcome: str = "applied", *, additions: int = 0, changes: int = 1,
                   destructions: int = 0) -> None:
        """How the next created run goes (one of OUTCOMES) and its plan's change counts.

        Unscripted runs end "applied" with 0/1/0 changes, or "no_changes" when their variables
        equal the last applied run's.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
        with self._lock:
            self._scripts.append((outcome, (additions, changes, destructions)))

    def fail_next(self, status: int, *, method: str | None = None, path: str | None = None,
                  times: int = 1, headers: Mapping[str, str] | None = None,
                  detail: str = "") -> None:
        """Answer the next `times` requests (matching `method` and containing `path`) with
        `status`, a JSON:API error with `detail`, and `headers`,
        e.g. `fail_next(429, headers={"Retry-After": "2"})`."""
        with self._lock:
            self._failures.append(_Failure(status, method, path, times, dict(headers or {}),
                                           detail or f"scripted failure {status}"))

    # ------------------------------------------------------------------ inspecting

    def workspace_id(self, name: str) -> str:
        with self._lock:
            return next(w.id for w in self._workspaces.values() if w.name == name)

    def variables(self, workspace: str, category: str = "terraform") -> dict[str, dict[str, Any]]:
        """A workspace's (by name) variables: key -> value, hcl, sensitive, description."""
        with self._lock:
            return {v.key: {"value": v.value, "hcl": v.hcl, "sensitive": v.sensitive,
                            "description": v.description}
                    for v in self._by_name(workspace).variables if v.category == category}

    def outputs(self, workspace: str) -> dict[str, Any] | None:
        with self._lock:
            outputs = self._by_name(workspace).outputs
            return dict(outputs) if outputs is not None else None

    def run_statuses(self, run_id: str) -> list[str]:
        """The statuses the run has been through so far."""
        with self._lock:
            return list(self._runs[run_id].statuses[:self._runs[run_id].index + 1])

    def calls(self) -> list[str]:
        """"METHOD /path" of every request so far, in order."""
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    # ------------------------------------------------------------------ serving

    def _by_name(self, name: str) -> _Workspace:
        return next(w for w in self._workspaces.values() if w.name == name)

    def _new_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-fake{self._ids:012d}"

    def _handle(self, request: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON body or None, extra headers) for one request."""
        with self._lock:
            self.requests.append(request)
            failure = self._take_failure(request)
            if failure is not None:
                return _errors(failure.status, failure.detail) + (dict(failure.headers),)
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return _errors(401, "unauthorized") + ({},)
            if request.method in ("POST", "PATCH") and \
                    request.headers.get("content-type", "").split(";")[0] != JSON_API:
                return _errors(415, f"Content-Type must be {JSON_API}") + ({},)
            status, body = self._route(request)
            return status, body, {}

    def _take_failure(self, request: RecordedRequest) -> _Failure | None:
        for failure in self._failures:
            if (failure.method in (None, request.method)
                    and (failure.path is None or failure.path in request.path)):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                return failure
        return None

    def _route(self, request: RecordedRequest) -> tuple[int, Any]:
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["api", "v2"]:
            return _errors(404, "not found")
        route = parts[2:]
        method = request.method
        match route:
            case ["organizations", organization, "workspaces", name] if method == "GET":
                return self._get_workspace(organization, name)
            case ["workspaces", workspace_id, "vars"] if method == "GET":
                return self._with_workspace(workspace_id, self._list_variables)
            case ["workspaces", workspace_id, "vars"] if method == "POST":
                return self._with_workspace(workspace_id,
                                            lambda w: self._create_variable(w, request.body))
            case ["workspaces", workspace_id, "vars", variable_id] if method == "PATCH":
                return self._with_workspace(
                    workspace_id, lambda w: self._update_variable(w, variable_id, request.body))
            case ["workspaces", workspace_id, "current-state-version-outputs"] if method == "GET":
                return self._with_workspace(workspace_id,
                                            lambda w: self._list_outputs(w, request.query))
            case ["runs"] if method == "POST":
                return self._create_run(request.body)
            case ["runs", run_id] if method == "GET" and run_id in self._runs:
                return self._get_run(self._runs[run_id], request.query)
            case ["runs", run_id, "actions", "apply"] if method == "POST" and run_id in self._runs:
                return self._confirm(self._runs[run_id])
            case ["runs", run_id, "policy-checks"] if method == "GET" and run_id in self._runs:
                return 200, {"data": _policy_checks(self._runs[run_id])}
        return _errors(404, "not found")

    def _with_workspace(self, workspace_id: str,
                        handler: Callable[[_Workspace], tuple[int, Any]]) -> tuple[int, Any]:
        workspace = self._workspaces.get(workspace_id)
        if workspace is None:
            return _errors(404, "not found")
        return handler(workspace)

    def _get_workspace(self, organization: str, name: str) -> tuple[int, Any]:
        workspace = next((w for w in self._workspaces.values() if w.name == name), None)
        if organization != self.organization or workspace is None:
            return _errors(404, "not found")
        return 200, {"data": {
            "id": workspace.id, "type": "workspaces",
            "attributes": {"name": workspace.name, "auto-apply": workspace.auto_apply,
                           "working-directory": workspace.working_directory,
                           "execution-mode": "remote", "locked": False,
                           "terraform-version": "1.9.8"},
            "relationships": {"organization": {"data": {"id": self.organization,
                                                        "type": "organizations"}}},
            "links": {"self": f"/api/v2/organizations/{self.organization}/workspaces/"
                              f"{workspace.name}"},
        }}

    # ------------------------------------------------------------------ variables

    def _list_variables(self, workspace: _Workspace) -> tuple[int, Any]:
        # Not paginated, as in the real API.
        return 200, {"data": [_variable_resource(workspace, v) for v in workspace.variables]}

    def _create_variable(self, workspace: _Workspace, body: Any) -> tuple[int, Any]:
        attributes = _resource_attributes(body, "vars")
        if attributes is None or not attributes.get("key"):
            return _errors(422, "a vars resource with a key is required")
        category = attributes.get("category", "")
        if category not in ("terraform", "env"):
            return _errors(422, "Category must be terraform or env")
        if any(v.key == attributes["key"] and v.category == category for v in workspace.variables):
            return _errors(422, "Key has already been taken")
        variable = _Variable(self._new_id("var"), str(attributes["key"]),
                             str(attributes.get("value", "")), category,
                             bool(attributes.get("hcl", False)),
                             bool(attributes.get("sensitive", False)),
                             str(attributes.get("description") or ""))
        workspace.variables.append(variable)
        return 201, {"data": _variable_resource(workspace, variable)}

    def _update_variable(self, workspace: _Workspace, variable_id: str,
                         body: Any) -> tuple[int, Any]:
        variable = next((v for v in workspace.variables if v.id == variable_id), None)
        if variable is None:
            return _errors(404, "not found")
        attributes = _resource_attributes(body, "vars")
        if attributes is None:
            return _errors(422, "a vars resource is required")
        if variable.sensitive and attributes.get("sensitive") is False:
            return _errors(422, "Sensitive variables cannot be made non-sensitive")
        for name in ("key", "value", "description"):
            if name in attributes:
                setattr(variable, name, str(attributes[name]))
        for name in ("hcl", "sensitive"):
            if name in attributes:
                setattr(variable, name, bool(attributes[name]))
        return 200, {"data": _variable_resource(workspace, variable)}

    # ------------------------------------------------------------------ runs

    def _create_run(self, body: Any) -> tuple[int, Any]:
        if _resource_attributes(body, "runs") is None:
            return _errors(422, "a runs resource is required")
        workspace_id = (body["data"].get("relationships", {}).get("workspace", {})
                        .get("data", {}).get("id"))
        workspace = self._workspaces.get(workspace_id)
        if workspace is None:
            return _errors(404, "workspace not found")
        variables = {v.key: v.value for v in workspace.variables if v.category == "terraform"}
        if self._scripts:
            outcome, changes = self._scripts.pop(0)
        elif variables == workspace.applied_variables:
            outcome, changes = "no_changes", (0, 0, 0)
        else:
            outcome, changes = "applied", (0, 1, 0)
        run = _Run(self._new_id("run"), self._new_id("plan"), workspace,
                   str(body["data"]["attributes"].get("message", "")), variables,
                   list(OUTCOMES[outcome]), changes, POLICY_CHECK_STATUS.get(outcome))
        run.timestamps["pending-at"] = _now()
        self._runs[run.id] = run
        return 201, self._run_document(run, include_plan=False)

    def _get_run(self, run: _Run, query: Mapping[str, str]) -> tuple[int, Any]:
        self._advance(run)
        include = query.get("include", "").split(",")
        return 200, self._run_document(run, include_plan="plan" in include)

    def _advance(self, run: _Run) -> None:
        if run.index + 1 >= len(run.statuses) or run.awaits_confirmation:
            return
        run.index += 1
        if run.status == "applied":
            try:
                run.workspace.outputs = dict(self.on_apply(run.workspace.name, dict(run.variables)))
                run.workspace.applied_variables = dict(run.variables)
            except Exception as error:  # a broken callback fails the run, as a failed apply would
                self.callback_errors.append(error)
                run.statuses[run.index] = "errored"
        run.timestamps[f"{run.status.replace('_', '-')}-at"] = _now()

    def _confirm(self, run: _Run) -> tuple[int, Any]:
        if not run.awaits_confirmation:
            return _errors(409, "transition not allowed: the run is not confirmable")
        run.confirmed = True
        run.timestamps["confirmed-at"] = _now()
        return 202, None

    def _run_document(self, run: _Run, *, include_plan: bool) -> dict[str, Any]:
        status = run.status
        confirmable = run.awaits_confirmation
        document: dict[str, Any] = {"data": {
            "id": run.id, "type": "runs",
            "attributes": {
                "status": status, "message": run.message, "source": "tfe-api", "is-destroy": False,
                "auto-apply": run.workspace.auto_apply,
                "has-changes": any(run.changes) and status not in NOT_PLANNED_YET,
                "status-timestamps": dict(run.timestamps),
                "actions": {"is-confirmable": confirmable,
                            "is-discardable": confirmable or status in ("policy_override",
                                                                        "policy_soft_failed"),
                            "is-cancelable": status in ("pending", "plan_queued", "planning",
                                                        "applying"),
                            "is-force-cancelable": False},
                "permissions": {"can-apply": True, "can-cancel": True, "can-comment": True,
                                "can-discard": True, "can-force-cancel": True,
                                "can-force-execute": True, "can-override-policy-check": True},
            },
            "relationships": {
                "workspace": {"data": {"id": run.workspace.id, "type": "workspaces"}},
                "plan": {"data": {"id": run.plan_id, "type": "plans"},
                         "links": {"related": f"/api/v2/runs/{run.id}/plan"}},
                "policy-checks": {"data": [{"id": check["id"], "type": check["type"]}
                                           for check in _policy_checks(run)],
                                  "links": {"related": f"/api/v2/runs/{run.id}/policy-checks"}},
            },
            "links": {"self": f"/api/v2/runs/{run.id}"},
        }}
        if include_plan:
            document["included"] = [_plan_resource(run)]
        return document

    # ------------------------------------------------------------------ outputs

    def _list_outputs(self, workspace: _Workspace, query: Mapping[str, str]) -> tuple[int, Any]:
        if workspace.outputs is None:
            return _errors(404, "the workspace has no state version yet")
        items = [{"id": f"wsout-{workspace.id[3:]}-{index}", "type": "state-version-outputs",
                  "attributes": {"name": name, "sensitive": name in self.sensitive_outputs,
                                 "type": _output_type(value), "detailed-type": _output_type(value),
                                 "value": None if name in self.sensitive_outputs else value}}
                 for index, (name, value) in enumerate(workspace.outputs.items())]
        size = min(int(query.get("page[size]", 20)), MAX_PAGE_SIZE)
        page = int(query.get("page[number]", 1))
        pages = max(1, -(-len(items) // size))
        return 200, {"data": items[(page - 1) * size:page * size],
                     "meta": {"pagination": {"current-page": page, "page-size": size,
                                             "prev-page": page - 1 if page > 1 else None,
                                             "next-page": page + 1 if page < pages else None,
                                             "total-pages": pages, "total-count": len(items)}}}


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def _errors(status: int, detail: str) -> tuple[int, Any]:
    titles = {401: "unauthorized", 403: "forbidden", 404: "not found", 409: "conflict",
              415: "unsupported media type", 422: "invalid attribute", 429: "too many requests"}
    return status, {"errors": [{"status": str(status), "title": titles.get(status, "error"),
                                "detail": detail}]}


def _resource_attributes(body: Any, resource_type: str) -> dict[str, Any] | None:
    if not (isinstance(body, dict) and isinstance(body.get("data"), dict)
            and body["data"].get("type") == resource_type):
        return None
    attributes = body["data"].get("attributes", {})
    return attributes if isinstance(attributes, dict) else None


def _variable_resource(workspace: _Workspace, variable: _Variable) -> dict[str, Any]:
    return {"id": variable.id, "type": "vars",
            "attributes": {"key": variable.key,
                           "value": None if variable.sensitive else variable.value,
                           "sensitive": variable.sensitive, "category": variable.category,
                           "hcl": variable.hcl, "description": variable.description},
            "relationships": {"configurable": {
                "data": {"id": workspace.id, "type": "workspaces"},
                "links": {"related": f"/api/v2/workspaces/{workspace.id}"}}},
            "links": {"self": f"/api/v2/workspaces/{workspace.id}/vars/{variable.id}"}}


def _plan_resource(run: _Run) -> dict[str, Any]:
    planned = run.status not in NOT_PLANNED_YET
    additions, changes, destructions = run.changes if planned else (0, 0, 0)
    status = "finished" if planned else ("running" if run.status == "planning" else "pending")
    if run.status == "errored" and "planned-at" not in run.timestamps:
        status = "errored"
    return {"id": run.plan_id, "type": "plans",
            "attributes": {"status": status, "has-changes": planned and any(run.changes),
                           "resource-additions": additions, "resource-changes": changes,
                           "resource-destructions": destructions, "resource-imports": 0},
            "links": {"self": f"/api/v2/plans/{run.plan_id}"}}


def _policy_checks(run: _Run) -> list[dict[str, Any]]:
    if run.policy_check is None or "policy-checking-at" not in run.timestamps:
        return []
    status = run.policy_check if run.status != "policy_checking" else "queued"
    return [{"id": f"polchk-{run.id[4:]}", "type": "policy-checks",
             "attributes": {"status": status, "scope": "organization",
                            "result": {"passed": int(status == "passed"),
                                       "soft-failed": int(status == "soft_failed"),
                                       "hard-failed": int(status == "hard_failed")}},
             "relationships": {"run": {"data": {"id": run.id, "type": "runs"}}}}]


def _output_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _handler_for(fake: FakeTfc) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw_body = self.rfile.read(length).decode("utf-8", errors="replace") if length else ""
            try:
                body = json.loads(raw_body) if raw_body else None
            except ValueError:
                body = None
            target = urlsplit(self.path)
            request = RecordedRequest(
                method=self.command, path=unquote(target.path), query=dict(parse_qsl(target.query)),
                headers={name.lower(): value for name, value in self.headers.items()},
                raw_target=self.path, raw_body=raw_body, body=body)
            status, payload, headers = fake._handle(request)
            data = json.dumps(payload).encode() if payload is not None else b""
            self.send_response(status)
            if data:
                self.send_header("Content-Type", JSON_API)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Silent: the tests read `FakeTfc.requests` instead."""

    return Handler
