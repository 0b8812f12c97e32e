"""Release phases through the Terraform Cloud / Enterprise API (`--remote`).

The same phase as the local Terraform runner: set the workspace's Terraform variables
`canary_weight` and `stable_version`, run plan + apply, read the outputs. Locally the CLI does
it; here the workspace's remote runs do:

    with TfcClient("app.terraform.io") as tfc:          # token from find_token()
        workspace = tfc.workspace("acme", "lambda-prod")
        tfc.set_variables(workspace.id, {"canary_weight": 0.1, "stable_version": "7"})
        result = tfc.follow_run(tfc.create_run(workspace.id, "canary 10 %"), on_status=print)
        outputs = tfc.outputs(workspace.id)

Every failure is a `TfcError` subclass with a one-line message that says whether the phase was
applied. Nothing is retried except HTTP 429, which the API documents as "wait and send again";
a retried POST could otherwise start a second run. The API token only ever travels in the
Authorization header: it is in no URL, message, repr or log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping
from urllib.parse import quote

import httpx

from release.terraform import ChangeSummary, render_variable

DEFAULT_HOSTNAME = "app.terraform.io"
JSON_API = "application/vnd.api+json"
TIMEOUT = httpx.Timeout(30.0, connect=10.0)
# 429 is answered by waiting for Retry-After and sending again, at most this many times.
RATE_LIMIT_RETRIES = 2
# Used when a 429 carries neither Retry-After nor X-RateLimit-Reset; the longest wait honoured.
DEFAULT_RATE_LIMIT_WAIT = 1.0
MAX_RATE_LIMIT_WAIT = 60.0
PAGE_SIZE = 100
VARIABLE_DESCRIPTION = "Release phase variable, set by the release tooling (invoke)."

# Statuses in which a plan waits for someone to confirm the apply (with actions.is-confirmable).
CONFIRMABLE = ("planned", "cost_estimated", "policy_checked", "post_plan_completed")
FINISHED = ("applied", "planned_and_finished")
FAILED = ("errored", "discarded", "canceled", "force_canceled")
# A soft-mandatory policy (Sentinel/OPA policy check, or a policy evaluation in the post-plan
# stage) failed: the run waits for an override that only a person should give.
NEEDS_OVERRIDE = ("policy_soft_failed", "policy_override", "post_plan_awaiting_decision")

NOT_APPLIED = "the phase was NOT applied"

log = logging.getLogger(__name__)


FIRST_POLL_SECONDS = 0.1


class TfcError(Exception):
    """A Terraform Cloud API call failed; the message is one line naming the fix."""


class TfcAuthError(TfcError):
    """No token, or the token was rejected (401) or lacks a permission (403)."""


class TfcNotFound(TfcError):
    """The organization, workspace or run does not exist or the token cannot see it (404)."""


class TfcRunFailed(TfcError):
    """The run ended without applying: errored, discarded, canceled, or a policy check failed."""

    def __init__(self, message: str, *, run_id: str, status: str, url: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.url = url


class TfcTimeout(TfcError):
    """The run did not finish within the wait; it may still apply."""

    def __init__(self, message: str, *, run_id: str, status: str, url: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.url = url


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    auto_apply: bool
    working_directory: str


@dataclass(frozen=True)
class RunResult:
    """A finished run: `status` is "applied", or "planned_and_finished" when nothing changed."""

    run_id: str
    status: str
    additions: int
    changes: int
    destructions: int
    # The run's page in the web UI, or the run id when its workspace is unknown.
    url: str

    @property
    def summary(self) -> ChangeSummary:
        """The counts in the local runner's form ("1 to add, 0 to change, 0 to destroy")."""
        return ChangeSummary(self.additions, self.changes, self.destructions)


def credentials_file_path() -> Path:
    """Where `terraform login` keeps its tokens."""
    return Path.home() / ".terraform.d" / "credentials.tfrc.json"


def find_token(hostname: str, *, environ: Mapping[str, str] = os.environ,
               credentials_file: Path | str | None = None) -> str:
    """The API token for `hostname`: TFE_TOKEN, else TF_TOKEN_<host>, else `terraform login`'s file."""
    token = environ.get("TFE_TOKEN", "").strip()
    if token:
        return token
    wanted = hostname.lower()
    # Sorted so that when two spellings name the same host the choice does not vary.
    for name in sorted(environ):
        if name.startswith("TF_TOKEN_") and _host_of_variable(name) == wanted and environ[name].strip():
            return environ[name].strip()
    path = Path(credentials_file) if credentials_file is not None else credentials_file_path()
    token = _token_from_credentials_file(path, wanted)
    if token:
        return token
    raise TfcAuthError(f"no Terraform Cloud token for {hostname}: set TFE_TOKEN or run "
                       f"`terraform login {hostname}`")


def _host_of_variable(name: str) -> str:
    """The hostname a TF_TOKEN_ variable is for, decoded as Terraform does.

    Shells cannot set names with "." or "-", so Terraform reads "__" as "-" and "_" as "."
    (TF_TOKEN_app_terraform_io, TF_TOKEN_tfe__prod_example_com); host names ignore case.
    """
    return name[len("TF_TOKEN_"):].replace("__", "-").replace("_", ".").lower()


def _token_from_credentials_file(path: Path, hostname: str) -> str:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ""
    except OSError as error:
        raise TfcAuthError(f"cannot read {path} ({error.strerror}): fix its permissions or set "
                           "TFE_TOKEN") from None
    except ValueError as error:
        # JSONDecodeError's msg names the position, never the (secret) content.
        message = error.msg if isinstance(error, json.JSONDecodeError) else "not UTF-8"
        raise TfcAuthError(f"{path} is not valid JSON ({message}): run `terraform login "
                           f"{hostname}` again or set TFE_TOKEN") from None
    credentials = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(credentials, dict):
        return ""
    for host, entry in credentials.items():
        if host.lower() == hostname and isinstance(entry, dict) and isinstance(entry.get("token"), str):
            return entry["token"].strip()
    return ""


class _BearerToken(httpx.Auth):
    """Adds the Authorization header to each request; its repr never shows the token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self._token}"
        yield request

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def __repr__(self) -> str:
        return "_BearerToken(***)"


@dataclass(frozen=True)
class _Call:
    """One API call and what a failure of it means for the phase, for the error messages."""

    doing: str  # e.g. "reading workspace acme/lambda-prod"
    # Said when the call surely did not take effect (4xx, exhausted 429) ...
    consequence: str = NOT_APPLIED
    # ... and when it may have (5xx, connection lost after sending).
    unsure: str = ""

    @property
    def maybe(self) -> str:
        return self.unsure or self.consequence


class TfcClient:
    """A Terraform Cloud / Enterprise API client for one host (a context manager)."""

    def __init__(self, hostname: str = DEFAULT_HOSTNAME, token: str | None = None, *,
                 address: str | None = None, http: httpx.Client | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = 2.0) -> None:
        """`token` None: `find_token(hostname)`. `address`: the API's base URL (default
        https://<hostname>). `http`: a client to send through (the caller closes it)."""
        token = find_token(hostname) if token is None else token
        if not re.fullmatch(r"[\x21-\x7e]+", token):
            # Also keeps a pasted line break out of the header, where httpx would echo it.
            raise TfcAuthError(f"the Terraform Cloud token for {hostname} is empty or has spaces or "
                               f"control characters: set TFE_TOKEN or run `terraform login {hostname}`")
        self.hostname = hostname
        self.address = (address or f"https://{hostname}").rstrip("/")
        self.poll_interval = poll_interval
        self._auth = _BearerToken(token)
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=TIMEOUT)
        self._sleep = sleep
        self._clock = clock
        # Workspace id -> (organization, name), for the runs' web URLs.
        self._workspace_names: dict[str, tuple[str, str]] = {}

    def __repr__(self) -> str:
        return f"TfcClient(hostname={self.hostname!r}, address={self.address!r})"

    def __enter__(self) -> TfcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    # ------------------------------------------------------------------ workspace and variables

    def workspace(self, organization: str, name: str) -> Workspace:
        path = f"/organizations/{quote(organization, safe='')}/workspaces/{quote(name, safe='')}"
        call = _Call(f"reading workspace {organization}/{name}")
        try:
            data = self._request("GET", path, call)["data"]
        except TfcNotFound:
            # The API answers 404 for a workspace the token may not see, too.
            raise TfcNotFound(
                f"workspace {name!r} in organization {organization!r} not found on {self.hostname} "
                f"(404): check organization and workspace of the environment's backend in "
                f"environments.toml and that the token's team can read that workspace; "
                f"{NOT_APPLIED}") from None
        attributes = data["attributes"]
        self._workspace_names[data["id"]] = (organization, attributes["name"])
        return Workspace(id=data["id"], name=attributes["name"],
                         auto_apply=bool(attributes.get("auto-apply")),
                         working_directory=attributes.get("working-directory") or "")

    def set_variables(self, workspace_id: str, values: Mapping[str, str | float]) -> None:
        """Set workspace variables of category terraform, hcl false; new ones are not sensitive."""
        base = f"/workspaces/{quote(workspace_id, safe='')}/vars"
        existing = {item["attributes"]["key"]: item["id"]
                    for item in self._items(base, _Call(f"listing the variables of workspace "
                                                        f"{workspace_id}"))
                    if item["attributes"].get("category") == "terraform"}
        # Variables set before a failure keep their new values: the next run, whoever starts
        # it, applies them.
        partial = f"{NOT_APPLIED}; variables set before this one keep their new values"
        for key, value in values.items():
            attributes: dict[str, Any] = {"key": key, "value": render_variable(value), "hcl": False}
            if key in existing:
                # `sensitive` is left as it is: the API refuses to un-mark a sensitive variable.
                self._request("PATCH", f"{base}/{quote(existing[key], safe='')}",
                              _Call(f"updating variable {key} of workspace {workspace_id}", partial),
                              body={"data": {"id": existing[key], "type": "vars",
                                             "attributes": attributes}})
            else:
                attributes.update(category="terraform", sensitive=False,
                                  description=VARIABLE_DESCRIPTION)
                self._request("POST", base,
                              _Call(f"creating variable {key} in workspace {workspace_id}", partial),
                              body={"data": {"type": "vars", "attributes": attributes}})

    # ------------------------------------------------------------------ runs

    def create_run(self, workspace_id: str, message: str) -> str:
        """Queue a plan + apply run with the workspace's current variables; returns the run id."""
        call = _Call(f"creating a run in workspace {workspace_id}",
                     unsure=f"a run may have been created anyway: check the runs of workspace "
                            f"{self._workspace_label(workspace_id)} before running the phase again")
        body = {"data": {"type": "runs", "attributes": {"message": message},
                         "relationships": {"workspace": {"data": {"type": "workspaces",
                                                                  "id": workspace_id}}}}}
        return str(self._request("POST", "/runs", call, body=body)["data"]["id"])

    def follow_run(self, run_id: str, *, timeout: float = 1800,
                   on_status: Callable[[str], None] | None = None) -> RunResult:
        """Poll the run until it has applied (confirming its plan), or raise why it did not."""
        deadline = self._clock() + timeout
        path = f"/runs/{quote(run_id, safe='')}"
        last_status = ""
        seen: set[str] = set()
        url = run_id  # until the run names its workspace
        polls = 0
        while True:
            still = self._may_still_apply(url)
            document = self._request("GET", path, _Call(f"reading run {run_id}", still, still),
                                     params={"include": "plan"})
            run = document["data"]
            attributes = run["attributes"]
            status = attributes["status"]
            url = self._run_url(run)
            seen.add(status)
            if status != last_status:
                last_status = status
                if on_status is not None:
                    on_status(status)
            if status in FINISHED:
                plan = _included_plan(document)
                return RunResult(run_id=run_id, status=status,
                                 additions=int(plan.get("resource-additions") or 0),
                                 changes=int(plan.get("resource-changes") or 0),
                                 destructions=int(plan.get("resource-destructions") or 0), url=url)
            if status in FAILED:
                raise self._run_failed(run, url, seen)
            if status in NEEDS_OVERRIDE:
                raise TfcRunFailed(
                    f"a policy check failed on run {url} ({status}): {NOT_APPLIED}; fix the change "
                    "or have a policy owner override it on the run page, or discard the run there "
                    "(it holds the workspace's run queue)", run_id=run_id, status=status, url=url)
            if status in CONFIRMABLE and attributes.get("actions", {}).get("is-confirmable"):
                # The user asked for this phase (plan + apply), so the plan is confirmed here, as
                # `terraform apply -auto-approve` does locally; policy checks have passed by now.
                self._confirm(run_id, url)
            if self._clock() >= deadline:
                raise TfcTimeout(
                    f"run {url} did not finish within {timeout:g} s (last status {status}): it may "
                    "still apply; check the run page before the next phase",
                    run_id=run_id, status=status, url=url)
            # Quick first looks (a no-change run ends in seconds), then every poll_interval.
            self._sleep(min(self.poll_interval, FIRST_POLL_SECONDS * 2 ** polls,
                            deadline - self._clock()))
            polls += 1

    def _confirm(self, run_id: str, url: str) -> None:
        call = _Call(f"confirming run {run_id}",
                     consequence=f"{NOT_APPLIED}: run {url} waits for confirmation; confirm or "
                                 "discard it on the run page",
                     unsure=self._may_still_apply(url))
        # 409: the run is no longer confirmable (confirmed or discarded meanwhile); the next
        # poll says which.
        self._request("POST", f"/runs/{quote(run_id, safe='')}/actions/apply", call,
                      body={"comment": "Confirmed by the release tooling: the phase asked for "
                                       "plan + apply"}, allow=(409,))

    def _run_failed(self, run: dict[str, Any], url: str, seen: set[str]) -> TfcRunFailed:
        run_id = run["id"]
        status = run["attributes"]["status"]
        timestamps = run["attributes"].get("status-timestamps") or {}
        applying = "applying" in seen or "applying-at" in timestamps
        if status == "errored" and not applying and self._policy_hard_failed(run):
            return TfcRunFailed(f"a policy check failed on run {url} (hard-mandatory, run errored): "
                                f"{NOT_APPLIED}; change what the policy refuses",
                                run_id=run_id, status=status, url=url)
        if applying:
            # Terraform does not roll back a failed apply: part of it may be live.
            outcome = ("the apply was cut short and may be PARTLY applied: read the live alias "
                       "(`invoke status`) and the run page before the next phase")
        else:
            outcome = f"{NOT_APPLIED}; see the run page for why"
        return TfcRunFailed(f"run {url} ended {status}: {outcome}", run_id=run_id, status=status,
                            url=url)

    def _policy_hard_failed(self, run: dict[str, Any]) -> bool:
        checks = run.get("relationships", {}).get("policy-checks", {}).get("data") or []
        if not checks:
            return False
        run_id = run["id"]
        items = self._items(f"/runs/{quote(run_id, safe='')}/policy-checks",
                            _Call(f"reading the policy checks of run {run_id}"))
        return any(item["attributes"].get("status") == "hard_failed" for item in items)

    # ------------------------------------------------------------------ outputs

    def outputs(self, workspace_id: str) -> dict[str, Any]:
        """The outputs of the workspace's current state (empty before the first apply);
        sensitive ones are None: the API does not reveal them."""
        call = _Call(f"reading the outputs of workspace {workspace_id}",
                     consequence="the outputs were not read (an applied phase stays applied)")
        try:
            items = self._items(
                f"/workspaces/{quote(workspace_id, safe='')}/current-state-version-outputs", call)
        except TfcNotFound:
            # No state version yet (before the first apply): no outputs, like `terraform output`.
            return {}
        return {item["attributes"]["name"]: item["attributes"].get("value") for item in items}

    # ------------------------------------------------------------------ HTTP

    def _items(self, path: str, call: _Call) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following JSON:API pagination."""
        items: list[dict[str, Any]] = []
        page: int | None = 1
        while page is not None:
            document = self._request("GET", path, call,
                                     params={"page[number]": page, "page[size]": PAGE_SIZE})
            items.extend(document.get("data") or [])
            page = (document.get("meta") or {}).get("pagination", {}).get("next-page")
        return items

    def _request(self, method: str, path: str, call: _Call, *, body: Any = None,
                 params: Mapping[str, Any] | None = None,
                 allow: tuple[int, ...] = ()) -> dict[str, Any]:
        """Send one API request; a JSON:API document back, or a one-line TfcError."""
        headers = {"Accept": JSON_API}
        content = None
        if body is not None:
            headers["Content-Type"] = JSON_API
            content = json.dumps(body).encode()
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            try:
                response = self._http.request(method, f"{self.address}/api/v2{path}", params=params,
                                              content=content, headers=headers, auth=self._auth)
            except httpx.HTTPError as error:
                # Only the exception's type: httpx messages may quote request details.
                raise TfcError(f"cannot reach {self.address} while {call.doing} "
                               f"({type(error).__name__}): {call.maybe}; check the network and "
                               f"the Terraform Cloud hostname") from None
            log.debug("%s %s -> %s", method, path, response.status_code)
            if response.status_code != 429 or attempt == RATE_LIMIT_RETRIES:
                break
            self._sleep(_rate_limit_wait(response))
        status = response.status_code
        if status in allow or 200 <= status < 300:
            if not response.content:
                return {}
            try:
                document = response.json()
            except ValueError:
                raise TfcError(f"{self.hostname} answered {call.doing} with something that is not "
                               f"JSON ({status}): {call.maybe}; check the address") from None
            return document if isinstance(document, dict) else {}
        raise self._http_error(response, call)

    def _http_error(self, response: httpx.Response, call: _Call) -> TfcError:
        status = response.status_code
        detail = self._auth.redact(_error_detail(response))
        host = self.hostname
        if status == 401:
            return TfcAuthError(f"token rejected by {host} (401): {detail}; {call.consequence}; run "
                                f"`terraform login {host}` or set TFE_TOKEN to a valid token")
        if status == 403:
            return TfcAuthError(f"the token may not do this on {host}: {call.doing} (403): {detail}; "
                                f"{call.consequence}; give the token's team that permission on the "
                                "workspace")
        if status == 404:
            return TfcNotFound(f"not found on {host} while {call.doing} (404): {detail}; "
                               f"{call.consequence}; check the name and that the token can see it")
        if status == 429:
            return TfcError(f"{host} kept rate limiting {call.doing} (429 after "
                            f"{RATE_LIMIT_RETRIES + 1} attempts): {call.consequence}; wait a minute "
                            "and run the command again")
        if status >= 500:
            return TfcError(f"{host} failed {call.doing} ({status} {response.reason_phrase}): "
                            f"{detail}; {call.maybe}; try again later (status.hashicorp.com)")
        return TfcError(f"{host} refused {call.doing} ({status} {response.reason_phrase}): {detail}; "
                        f"{call.consequence}")

    # ------------------------------------------------------------------ naming runs

    def _workspace_label(self, workspace_id: str) -> str:
        organization, name = self._workspace_names.get(workspace_id, ("", workspace_id))
        return f"{organization}/{name}" if organization else name

    def _run_url(self, run: dict[str, Any]) -> str:
        workspace = (run.get("relationships") or {}).get("workspace") or {}
        workspace_id = (workspace.get("data") or {}).get("id")
        if workspace_id not in self._workspace_names:
            return str(run["id"])
        organization, name = self._workspace_names[workspace_id]
        return (f"https://{self.hostname}/app/{quote(organization, safe='')}/workspaces/"
                f"{quote(name, safe='')}/runs/{run['id']}")

    def _may_still_apply(self, run: str) -> str:
        return f"run {run} may still apply: check the run page before the next phase"


def _included_plan(document: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of the run's plan, sent along because of `include=plan`."""
    plan_id = document["data"].get("relationships", {}).get("plan", {}).get("data", {}).get("id")
    for item in document.get("included") or []:
        if item.get("type") == "plans" and item.get("id") == plan_id:
            return item.get("attributes") or {}
    return {}


def _rate_limit_wait(response: httpx.Response) -> float:
    """Seconds to wait after a 429: Retry-After, else X-RateLimit-Reset (which TFC sends)."""
    for header in ("Retry-After", "X-RateLimit-Reset"):
        try:
            return min(max(float(response.headers[header]), 0.0), MAX_RATE_LIMIT_WAIT)
        except (KeyError, ValueError):
            continue
    return DEFAULT_RATE_LIMIT_WAIT


def _error_detail(response: httpx.Response) -> str:
    """The first JSON:API error's detail (or title), on one line; else the reason phrase."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        text = str(first.get("detail") or first.get("title") or "")
    except (ValueError, AttributeError, IndexError, TypeError):
        text = ""
    text = " ".join(text.split()) or response.reason_phrase or "no details"
    return text[:200]


__all__ = ["DEFAULT_HOSTNAME", "RunResult", "TfcAuthError", "TfcClient", "TfcError", "TfcNotFound",
           "TfcRunFailed", "TfcTimeout", "Workspace", "credentials_file_path", "find_token"]
