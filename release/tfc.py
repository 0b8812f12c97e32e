"""Release phases through the Terraform Cloud / Enterprise API (`--remote`), on HashiCorp's pytfe.

The same phase as the local Terraform runner: set the workspace's Terraform variables
`canary_weight` and `stable_version`, run plan + apply, read the outputs. Locally the CLI does
it; here the workspace's remote runs do:

    with TfcClient("app.terraform.io") as tfc:          # token from find_token()
        workspace = tfc.workspace("acme", "lambda-prod")
        tfc.set_variables(workspace.id, {"canary_weight": 0.1, "stable_version": "7"})
        result = tfc.follow_run(tfc.create_run(workspace.id, "canary 10 %"), on_status=print)
        outputs = tfc.outputs(workspace.id)

pytfe sends the requests and reads the JSON:API documents. What this module adds is what the
project decides: where the token comes from, following a run to its end (confirming the plan,
polling with back-off), waiting out rate limits, and errors that say whether the phase was applied.

Every failure is a `TfcError` subclass with a one-line message that says whether the phase was
applied. Nothing is retried except HTTP 429, which the API documents as "wait and send again";
pytfe's own retries are off because they also resend a POST after a 502/503/504 or a lost
connection, which could start a second run. The API token only ever travels in the Authorization
header: it is in no URL, message, repr or log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pydantic
from pytfe import TFEClient, TFEConfig
from pytfe.errors import RateLimited, TFEError
from pytfe.models import (
    CategoryType,
    PolicyStatus,
    Run,
    RunApplyOptions,
    RunCreateOptions,
    RunIncludeOpt,
    RunReadOptions,
    RunStatus,
    VariableCreateOptions,
    VariableUpdateOptions,
)
from pytfe.models import Workspace as TfeWorkspace

from release.errors import ReleaseError
from release.terraform import ChangeSummary, render_variable

DEFAULT_HOSTNAME = "app.terraform.io"
TIMEOUT_SECONDS = 30.0
# 429 is answered by waiting for Retry-After and sending again, at most this many times.
RATE_LIMIT_RETRIES = 2
# Used when a 429 carries neither Retry-After nor X-RateLimit-Reset; the longest wait honoured.
DEFAULT_RATE_LIMIT_WAIT = 1.0
MAX_RATE_LIMIT_WAIT = 60.0
VARIABLE_DESCRIPTION = "Release phase variable, set by the release tooling (invoke)."
# pytfe's request/response trace (DEBUG), which includes the response bodies.
PYTFE_TRACE_LOGGER = "pytfe.transport"

# Statuses in which a plan waits for someone to confirm the apply (with actions.is-confirmable).
CONFIRMABLE = ("planned", "cost_estimated", "policy_checked", "post_plan_completed")
FINISHED = ("applied", "planned_and_finished")
FAILED = ("errored", "discarded", "canceled", "force_canceled")
# A soft-mandatory policy (Sentinel/OPA policy check, or a policy evaluation in the post-plan
# stage) failed: the run waits for an override that only a person should give.
NEEDS_OVERRIDE = ("policy_soft_failed", "policy_override", "post_plan_awaiting_decision")

NOT_APPLIED = "the phase was NOT applied"

FIRST_POLL_SECONDS = 0.1

Result = TypeVar("Result")


class TfcError(ReleaseError):
    """A Terraform Cloud API call failed; the message is one line naming the fix."""


class TfcAuthError(TfcError):
    """No token, or the token was rejected (401) or lacks a permission (403)."""


class TfcNotFound(TfcError):
    """The organization, workspace or run does not exist or the token cannot see it (404)."""


class _RunError(TfcError):
    """A run ended or was left in a state the phase cannot go on from."""

    def __init__(self, message: str, *, run_id: str, status: str, url: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.status = status
        self.url = url


class TfcRunFailed(_RunError):
    """The run ended without applying: errored, discarded, canceled, or a policy check failed."""


class TfcTimeout(_RunError):
    """The run did not finish within the wait; it may still apply."""


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
    """The API token for `hostname`: TFE_TOKEN, else TF_TOKEN_<host>, else the credentials file
    of `terraform login`."""
    token = environ.get("TFE_TOKEN", "").strip()
    if token:
        return token
    wanted = hostname.lower()
    # Sorted so that when two spellings name the same host the choice does not vary.
    for name in sorted(environ):
        value = environ[name].strip()
        if name.startswith("TF_TOKEN_") and _host_of_variable(name) == wanted and value:
            return value
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
        token = entry.get("token") if isinstance(entry, dict) else None
        if host.lower() == hostname and isinstance(token, str):
            return token.strip()
    return ""


class _TokenRedaction(logging.Filter):
    """Takes the token out of error details and of pytfe's trace, where a server could echo it;
    its repr never shows the token."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self._token = token

    def redact(self, text: str) -> str:
        return text.replace(self._token, "***")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self._token in message:
            record.msg, record.args = self.redact(message), None
        return True


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
                 address: str | None = None, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic, poll_interval: float = 2.0) -> None:
        """`token` None: `find_token(hostname)`. `address`: the API's base URL (default
        https://<hostname>)."""
        token = find_token(hostname) if token is None else token
        if not re.fullmatch(r"[\x21-\x7e]+", token):
            # Also keeps a pasted line break out of the header, where httpx would echo it.
            raise TfcAuthError(f"the Terraform Cloud token for {hostname} is empty or has spaces "
                               "or control characters: set TFE_TOKEN or run "
                               f"`terraform login {hostname}`")
        self.hostname = hostname
        self.address = (address or f"https://{hostname}").rstrip("/")
        self.poll_interval = poll_interval
        self._sleep = sleep
        self._clock = clock
        self._redaction = _TokenRedaction(token)
        # ca_bundle None: httpx itself trusts SSL_CERT_FILE, which pytfe would pass on as a path,
        # a form httpx deprecates.
        self._tfe = TFEClient(TFEConfig(address=self.address, token=token, timeout=TIMEOUT_SECONDS,
                                        max_retries=0, ca_bundle=None))
        # pytfe 1.5.0 reads only Retry-After from a 429 and keeps no response on its RateLimited
        # (_http.py: _parse_retry_after, _raise_if_error); Terraform Cloud sends X-RateLimit-Reset.
        # The transport's httpx client is the one place those headers can be seen.
        self._tfe._transport._sync.event_hooks["response"].append(self._note_rate_limit)
        self._rate_limit_wait = DEFAULT_RATE_LIMIT_WAIT
        logging.getLogger(PYTFE_TRACE_LOGGER).addFilter(self._redaction)
        # Workspace id -> (organization, name), for the runs' web URLs.
        self._workspace_names: dict[str, tuple[str, str]] = {}

    def __repr__(self) -> str:
        return f"TfcClient(hostname={self.hostname!r}, address={self.address!r})"

    def __enter__(self) -> TfcClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._tfe.close()
        logging.getLogger(PYTFE_TRACE_LOGGER).removeFilter(self._redaction)

    # ------------------------------------------------------------------ workspace and variables

    def workspace(self, organization: str, name: str) -> Workspace:
        call = _Call(f"reading workspace {organization}/{name}")
        try:
            found = self._call(call, partial(self._tfe.workspaces.read, name,
                                             organization=organization))
        except TfcNotFound:
            # The API answers 404 for a workspace the token may not see, too.
            raise TfcNotFound(
                f"workspace {name!r} in organization {organization!r} not found on {self.hostname} "
                f"(404): check organization and workspace of the environment's backend in "
                f"environments.toml and that the token's team can read that workspace; "
                f"{NOT_APPLIED}") from None
        found_name = found.name or name
        self._workspace_names[found.id] = (organization, found_name)
        return Workspace(id=found.id, name=found_name, auto_apply=bool(found.auto_apply),
                         working_directory=found.working_directory or "")

    def set_variables(self, workspace_id: str, values: Mapping[str, str | float]) -> None:
        """Set workspace variables of category terraform, hcl false; new ones are not sensitive."""
        listed = self._call(_Call(f"listing the variables of workspace {workspace_id}"),
                            lambda: list(self._tfe.variables.list(workspace_id)))
        existing = {variable.key: variable.id for variable in listed
                    if variable.category == CategoryType.TERRAFORM and variable.key and variable.id}
        # Variables set before a failure keep their new values: the next run, whoever starts
        # it, applies them.
        partly = f"{NOT_APPLIED}; variables set before this one keep their new values"
        for key, value in values.items():
            text = render_variable(value)
            variable_id = existing.get(key)
            if variable_id is not None:
                # `sensitive` is left as it is: the API refuses to un-mark a sensitive variable.
                self._call(_Call(f"updating variable {key} of workspace {workspace_id}", partly),
                           partial(self._tfe.variables.update, workspace_id, variable_id,
                                   VariableUpdateOptions(key=key, value=text, hcl=False)))
            else:
                self._call(_Call(f"creating variable {key} in workspace {workspace_id}", partly),
                           partial(self._tfe.variables.create, workspace_id,
                                   VariableCreateOptions(key=key, value=text,
                                                         category=CategoryType.TERRAFORM,
                                                         hcl=False, sensitive=False,
                                                         description=VARIABLE_DESCRIPTION)))

    # ------------------------------------------------------------------ runs

    def create_run(self, workspace_id: str, message: str) -> str:
        """Queue a plan + apply run with the workspace's current variables; returns the run id."""
        call = _Call(f"creating a run in workspace {workspace_id}",
                     unsure=f"a run may have been created anyway: check the runs of workspace "
                            f"{self._workspace_label(workspace_id)} before running the phase again")
        # model_validate: without pydantic's mypy plugin, the keyword form types every aliased
        # field as required. The workspace is a relationship: its id is all the request carries.
        options = RunCreateOptions.model_validate(
            {"message": message, "workspace": TfeWorkspace.model_construct(id=workspace_id)})
        return self._call(call, partial(self._tfe.runs.create, options)).id

    def follow_run(self, run_id: str, *, timeout: float = 1800,
                   on_status: Callable[[str], None] | None = None) -> RunResult:
        """Poll the run until it has applied (confirming its plan), or raise why it did not."""
        deadline = self._clock() + timeout
        last_status = ""
        seen: set[str] = set()
        url = run_id  # until the run names its workspace
        polls = 0
        while True:
            still = _may_still_apply(url)
            run = self._call(_Call(f"reading run {run_id}", still, still),
                             partial(self._read_run, run_id))
            status = _status(run)
            url = self._run_url(run) or url
            seen.add(status)
            if status != last_status:
                last_status = status
                if on_status is not None:
                    on_status(status)
            if status in FINISHED:
                plan = run.plan
                return RunResult(run_id=run_id, status=status,
                                 additions=(plan and plan.resource_additions) or 0,
                                 changes=(plan and plan.resource_changes) or 0,
                                 destructions=(plan and plan.resource_destructions) or 0, url=url)
            if status in FAILED:
                raise self._run_failed(run, status, url, seen)
            if status in NEEDS_OVERRIDE:
                raise TfcRunFailed(
                    f"a policy check failed on run {url} ({status}): {NOT_APPLIED}; fix the change "
                    "or have a policy owner override it on the run page, or discard the run there "
                    "(it holds the workspace's run queue)", run_id=run_id, status=status, url=url)
            if status in CONFIRMABLE and run.actions is not None and run.actions.is_confirmable:
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

    def _read_run(self, run_id: str) -> Run:
        """The run with its plan (for the change counts)."""
        try:
            return self._tfe.runs.read_with_options(
                run_id, RunReadOptions(include=[RunIncludeOpt.RUN_PLAN]))
        except pydantic.ValidationError as error:
            status = _status_pytfe_lacks(error)
            if status is None:
                raise
            # pytfe 1.5.0's RunStatus (models/run.py) lacks statuses the API documents, such as
            # force_canceled, and then refuses the whole run. The status alone is enough here:
            # whether an apply had started is known from the statuses seen before, because a
            # force-cancel is only offered a cool-off period after a cancel, while the polls go on.
            return Run.model_construct(id=run_id, status=status)

    def _confirm(self, run_id: str, url: str) -> None:
        call = _Call(f"confirming run {run_id}",
                     consequence=f"{NOT_APPLIED}: run {url} waits for confirmation; confirm or "
                                 "discard it on the run page",
                     unsure=_may_still_apply(url))
        options = RunApplyOptions(comment="Confirmed by the release tooling: the phase asked for "
                                          "plan + apply")

        def confirm() -> None:
            try:
                self._tfe.runs.apply(run_id, options)
            except TFEError as error:
                # 409: the run is no longer confirmable (confirmed or discarded meanwhile); the
                # next poll says which.
                if error.status != 409:
                    raise

        self._call(call, confirm)

    def _run_failed(self, run: Run, status: str, url: str, seen: set[str]) -> TfcRunFailed:
        timestamps = run.status_timestamps
        applying = "applying" in seen or (timestamps is not None
                                          and timestamps.applying_at is not None)
        if status == "errored" and not applying and self._policy_hard_failed(run):
            return TfcRunFailed(f"a policy check failed on run {url} (hard-mandatory, run "
                                f"errored): {NOT_APPLIED}; change what the policy refuses",
                                run_id=run.id, status=status, url=url)
        if applying:
            # Terraform does not roll back a failed apply: part of it may be live.
            outcome = ("the apply was cut short and may be PARTLY applied: read the live alias "
                       "(`invoke status`) and the run page before the next phase")
        else:
            outcome = f"{NOT_APPLIED}; see the run page for why"
        return TfcRunFailed(f"run {url} ended {status}: {outcome}", run_id=run.id, status=status,
                            url=url)

    def _policy_hard_failed(self, run: Run) -> bool:
        if not run.policy_checks:
            return False
        checks = self._call(_Call(f"reading the policy checks of run {run.id}"),
                            lambda: list(self._tfe.policy_checks.list(run.id)))
        return any(check.status == PolicyStatus.POLICY_HARD_FAILED for check in checks)

    # ------------------------------------------------------------------ outputs

    def outputs(self, workspace_id: str) -> dict[str, Any]:
        """The outputs of the workspace's current state (empty before the first apply);
        sensitive ones are None: the API does not reveal them."""
        call = _Call(f"reading the outputs of workspace {workspace_id}",
                     consequence="the outputs were not read (an applied phase stays applied)")
        try:
            found = self._call(call, lambda: list(
                self._tfe.state_version_outputs.read_current(workspace_id)))
        except TfcNotFound:
            # No state version yet (before the first apply): no outputs, like `terraform output`.
            return {}
        return {output.name: output.value for output in found}

    # ------------------------------------------------------------------ calls and their errors

    def _call(self, call: _Call, action: Callable[[], Result]) -> Result:
        """`action` (pytfe calls, a list read in full), sent again after a 429 at most
        RATE_LIMIT_RETRIES times; any failure becomes a one-line TfcError."""
        retries = 0
        while True:
            try:
                return action()
            except RateLimited as error:
                if retries == RATE_LIMIT_RETRIES:
                    raise self._api_error(error, call) from None
                retries += 1
                self._sleep(self._rate_limit_wait)
            except TFEError as error:
                raise self._api_error(error, call) from None
            except (json.JSONDecodeError, pydantic.ValidationError) as error:
                raise TfcError(f"{self.hostname} answered {call.doing} with something that is not "
                               f"a Terraform Cloud API document ({type(error).__name__}): "
                               f"{call.maybe}; check the address") from None

    def _note_rate_limit(self, response: httpx.Response) -> None:
        if response.status_code == 429:
            self._rate_limit_wait = _rate_limit_wait(response.headers)

    def _api_error(self, error: TFEError, call: _Call) -> TfcError:
        host = self.hostname
        if isinstance(error.__cause__, httpx.HTTPError):
            # Only the exception's type: httpx messages may quote request details.
            return TfcError(f"cannot reach {self.address} while {call.doing} "
                            f"({type(error.__cause__).__name__}): {call.maybe}; check the network "
                            f"and the Terraform Cloud hostname")
        # pytfe's message is the first JSON:API error's detail (or title).
        detail = " ".join(self._redaction.redact(str(error)).split())[:200] or "no details"
        status = error.status
        if status is None:
            # pytfe checks names and ids before sending; only a configured name can fail that.
            return TfcError(f"{call.doing} was not sent to {host} ({detail}): {call.consequence}; "
                            "check the names in environments.toml")
        if status == 401:
            return TfcAuthError(f"token rejected by {host} (401): {detail}; {call.consequence}; "
                                f"run `terraform login {host}` or set TFE_TOKEN to a valid token")
        if status == 403:
            return TfcAuthError(f"the token may not do this on {host}: {call.doing} (403): "
                                f"{detail}; {call.consequence}; give the token's team that "
                                "permission on the workspace")
        if status == 404:
            return TfcNotFound(f"not found on {host} while {call.doing} (404): {detail}; "
                               f"{call.consequence}; check the name and that the token can see it")
        if status == 429:
            return TfcError(f"{host} kept rate limiting {call.doing} (429 after "
                            f"{RATE_LIMIT_RETRIES + 1} attempts): {call.consequence}; wait a "
                            "minute and run the command again")
        status_line = f"{status} {httpx.codes.get_reason_phrase(status)}".rstrip()
        if status >= 500:
            return TfcError(f"{host} failed {call.doing} ({status_line}): {detail}; "
                            f"{call.maybe}; try again later (status.hashicorp.com)")
        return TfcError(f"{host} refused {call.doing} ({status_line}): {detail}; "
                        f"{call.consequence}")

    # ------------------------------------------------------------------ naming runs

    def _workspace_label(self, workspace_id: str) -> str:
        organization, name = self._workspace_names.get(workspace_id, ("", workspace_id))
        return f"{organization}/{name}" if organization else name

    def _run_url(self, run: Run) -> str:
        """The run's web page; "" when its workspace is unknown (or the run did not name it)."""
        workspace_id = run.workspace.id if run.workspace is not None else ""
        if workspace_id not in self._workspace_names:
            return ""
        organization, name = self._workspace_names[workspace_id]
        return (f"https://{self.hostname}/app/{quote(organization, safe='')}/workspaces/"
                f"{quote(name, safe='')}/runs/{run.id}")


def _may_still_apply(run: str) -> str:
    return f"run {run} may still apply: check the run page before the next phase"


def _status(run: Run) -> str:
    """The run's status: a RunStatus, or the text of one pytfe lacks (see `_read_run`)."""
    status = run.status
    return status.value if isinstance(status, RunStatus) else str(status or "")


def _status_pytfe_lacks(error: pydantic.ValidationError) -> str | None:
    """The run status, when that is the only attribute pytfe could not read."""
    problems = error.errors()
    if len(problems) == 1 and problems[0]["loc"] == ("status",) and \
            isinstance(problems[0]["input"], str):
        return problems[0]["input"]
    return None


def _rate_limit_wait(headers: httpx.Headers) -> float:
    """Seconds to wait after a 429: Retry-After, else X-RateLimit-Reset (which TFC sends)."""
    for header in ("Retry-After", "X-RateLimit-Reset"):
        try:
            return min(max(float(headers[header]), 0.0), MAX_RATE_LIMIT_WAIT)
        except (KeyError, ValueError):
            continue
    return DEFAULT_RATE_LIMIT_WAIT


__all__ = ["DEFAULT_HOSTNAME", "RunResult", "TfcAuthError", "TfcClient", "TfcError", "TfcNotFound",
           "TfcRunFailed", "TfcTimeout", "Workspace", "credentials_file_path", "find_token"]
