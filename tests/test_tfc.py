"""Remote release phases through the Terraform Cloud API client, against the local fake API."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from fakes.tfc_server import FakeTfc
from release.tfc import (
    RunResult,
    TfcAuthError,
    TfcClient,
    TfcError,
    TfcNotFound,
    TfcRunFailed,
    TfcTimeout,
    Workspace,
    find_token,
)

HOSTNAME = "app.terraform.io"
ORGANIZATION = "acme"
WORKSPACE = "lambda-dev"

# Equal to any non-empty string.
ANY_TEXT = type("AnyText", (), {
    "__eq__": lambda self, other: isinstance(other, str) and bool(other),
    "__repr__": lambda self: "<any text>"})()


class FakeTime:
    """sleep() moves the clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


class WebPage:
    """A web server that answers every request with a sign-in page, as a proxy or a web UI
    behind a wrong address would."""

    def __enter__(self) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                page = b"<html><body>Sign in</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, format: str, *args: object) -> None:
                """Silent."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def stack_outputs(workspace: str, variables: dict[str, str]) -> dict:
    """What the stack would output after an apply with these variables."""
    return {"canary_weight": float(variables["canary_weight"]),
            "stable_version": variables["stable_version"], "candidate_version": "8",
            "alias_arn": f"arn:aws:lambda:eu-west-1:123456789012:function:{workspace}:production"}


@pytest.fixture
def fake():
    with FakeTfc(organization=ORGANIZATION, on_apply=stack_outputs) as server:
        yield server


@pytest.fixture
def clock() -> FakeTime:
    return FakeTime()


@pytest.fixture
def tfc(fake, clock):
    with connect(fake, clock) as client:
        yield client


def connect(fake: FakeTfc, clock: FakeTime, token: str | None = None, **options) -> TfcClient:
    return TfcClient(HOSTNAME, token or fake.token, address=fake.address, sleep=clock.sleep,
                     clock=clock.clock, **options)


def run_phase(tfc: TfcClient, weight: float, stable: str, **follow) -> tuple[Workspace, RunResult]:
    workspace = tfc.workspace(ORGANIZATION, WORKSPACE)
    tfc.set_variables(workspace.id, {"canary_weight": weight, "stable_version": stable})
    return workspace, tfc.follow_run(tfc.create_run(workspace.id, f"canary {weight}"), **follow)


def failure(action) -> str:
    """The message of the TfcError `action` raises; checked to be one line."""
    with pytest.raises(TfcError) as raised:
        action()
    message = str(raised.value)
    assert "\n" not in message
    return message


# ---------------------------------------------------------------------- token discovery

def test_tfe_token_comes_first(tmp_path):
    credentials = tmp_path / "credentials.tfrc.json"
    credentials.write_text(json.dumps({"credentials": {HOSTNAME: {"token": "from-file"}}}))
    environ = {"TFE_TOKEN": "from-tfe-token", "TF_TOKEN_app_terraform_io": "from-tf-token"}
    assert find_token(HOSTNAME, environ=environ, credentials_file=credentials) == "from-tfe-token"


def test_terraforms_host_variable_comes_next(tmp_path):
    credentials = tmp_path / "credentials.tfrc.json"
    credentials.write_text(json.dumps({"credentials": {HOSTNAME: {"token": "from-file"}}}))
    environ = {"TF_TOKEN_app_terraform_io": "from-tf-token", "TF_TOKEN_other_example_com": "other"}
    assert find_token(HOSTNAME, environ=environ, credentials_file=credentials) == "from-tf-token"


def test_host_variable_is_decoded_as_terraform_does(tmp_path):
    # Terraform reads "__" as "-" and "_" as ".", and host names ignore case.
    environ = {"TF_TOKEN_tfe__prod_Example_com": "enterprise-token"}
    missing = tmp_path / "none.json"
    assert find_token("tfe-prod.example.com", environ=environ, credentials_file=missing) == \
        "enterprise-token"
    with pytest.raises(TfcAuthError):
        find_token("tfe.prod.example.org", environ=environ, credentials_file=missing)


def test_terraform_login_credentials_file_comes_last(tmp_path):
    credentials = tmp_path / "credentials.tfrc.json"
    credentials.write_text(json.dumps({"credentials": {
        "App.Terraform.io": {"token": "from-file"}, "tfe.example.com": {"token": "not-this"}}}))
    assert find_token(HOSTNAME, environ={}, credentials_file=credentials) == "from-file"


def test_no_token_anywhere_says_how_to_get_one(tmp_path):
    message = failure(lambda: find_token("tfe.example.com", environ={"TFE_TOKEN": " "},
                                         credentials_file=tmp_path / "missing.json"))
    assert message == ("no Terraform Cloud token for tfe.example.com: set TFE_TOKEN or run "
                       "`terraform login tfe.example.com`")


def test_a_broken_credentials_file_is_named_without_its_content(tmp_path):
    credentials = tmp_path / "credentials.tfrc.json"
    credentials.write_text('{"credentials": {"app.terraform.io": {"token": "secret-in-broken-file"')
    message = failure(lambda: find_token(HOSTNAME, environ={}, credentials_file=credentials))
    assert str(credentials) in message and "terraform login" in message
    assert "secret-in-broken-file" not in message


def test_the_client_finds_its_own_token(fake, monkeypatch):
    fake.add_workspace(WORKSPACE)
    monkeypatch.setenv("TFE_TOKEN", fake.token)
    with TfcClient(HOSTNAME, address=fake.address) as client:
        assert client.workspace(ORGANIZATION, WORKSPACE).name == WORKSPACE


# ---------------------------------------------------------------------- whole phases

def test_a_remote_phase_sets_variables_confirms_the_plan_and_reads_the_outputs(
        fake: FakeTfc, tfc: TfcClient) -> None:
    workspace_id = fake.add_workspace(WORKSPACE, working_directory="terraform/dev")
    statuses: list[str] = []

    workspace, result = run_phase(tfc, 0.1, "7", on_status=statuses.append)

    assert workspace == Workspace(workspace_id, WORKSPACE, auto_apply=False,
                                  working_directory="terraform/dev")
    assert fake.variables(WORKSPACE) == {
        "canary_weight": {"value": "0.1", "hcl": False, "sensitive": False,
                          "description": ANY_TEXT},
        "stable_version": {"value": "7", "hcl": False, "sensitive": False,
                           "description": ANY_TEXT}}
    assert statuses == ["planning", "planned", "applying", "applied"]
    assert result == RunResult(result.run_id, "applied", additions=0, changes=1, destructions=0,
                               url=f"https://{HOSTNAME}/app/{ORGANIZATION}/workspaces/{WORKSPACE}/runs/"
                                   f"{result.run_id}")
    assert str(result.summary) == "0 to add, 1 to change, 0 to destroy"
    assert fake.calls().count(f"POST /api/v2/runs/{result.run_id}/actions/apply") == 1
    assert tfc.outputs(workspace.id) == stack_outputs(WORKSPACE, {"canary_weight": "0.1",
                                                                  "stable_version": "7"})


def test_the_next_phase_updates_the_variables_in_place(fake, tfc):
    fake.add_workspace(WORKSPACE)
    run_phase(tfc, 0.1, "7")
    fake.requests.clear()

    workspace, result = run_phase(tfc, 0.00001, "7")

    methods = [call.split()[0] for call in fake.calls() if call.split()[1].startswith(
        f"/api/v2/workspaces/{workspace.id}/vars")]
    assert methods == ["GET", "PATCH", "PATCH"]
    assert fake.variables(WORKSPACE)["canary_weight"]["value"] == "0.00001"  # not 1e-05
    assert result.status == "applied"
    assert tfc.outputs(workspace.id)["canary_weight"] == 0.00001


def test_requests_are_json_api(fake, tfc):
    fake.add_workspace(WORKSPACE)
    run_phase(tfc, 0.5, "7")
    for request in fake.requests:
        assert request.headers["accept"] == "application/vnd.api+json"
        if request.method in ("POST", "PATCH"):
            assert request.headers["content-type"] == "application/vnd.api+json"
    run = next(r for r in fake.requests if r.method == "POST" and r.path == "/api/v2/runs")
    assert run.body["data"]["relationships"]["workspace"]["data"] == {
        "type": "workspaces", "id": fake.workspace_id(WORKSPACE)}


def test_an_auto_apply_workspace_is_not_confirmed(fake: FakeTfc, tfc: TfcClient) -> None:
    fake.add_workspace(WORKSPACE, auto_apply=True)
    statuses: list[str] = []
    workspace, result = run_phase(tfc, 1, "7", on_status=statuses.append)
    assert workspace.auto_apply
    assert result.status == "applied"
    assert statuses == ["planning", "planned", "applying", "applied"]
    assert not [call for call in fake.calls() if call.endswith("/actions/apply")]


def test_a_plan_with_no_changes_finishes_without_an_apply(fake, tfc):
    fake.add_workspace(WORKSPACE)
    run_phase(tfc, 0.1, "7")
    _, result = run_phase(tfc, 0.1, "7")  # the same variables again
    assert result.status == "planned_and_finished"
    assert (result.additions, result.changes, result.destructions) == (0, 0, 0)
    assert str(result.summary) == "no resource changes"
    assert len([call for call in fake.calls() if call.endswith("/actions/apply")]) == 1


def test_a_plan_is_confirmed_after_its_policy_checks_pass(fake: FakeTfc, tfc: TfcClient) -> None:
    fake.add_workspace(WORKSPACE)
    fake.script_run("policy_passed", additions=2, changes=0, destructions=1)
    statuses: list[str] = []
    _, result = run_phase(tfc, 0.1, "7", on_status=statuses.append)
    assert statuses[statuses.index("policy_checked"):] == ["policy_checked", "applying", "applied"]
    assert fake.calls().count(f"POST /api/v2/runs/{result.run_id}/actions/apply") == 1
    assert (result.status, result.additions, result.destructions) == ("applied", 2, 1)


def test_polls_start_quick_then_back_off_to_the_poll_interval(fake, clock):
    fake.add_workspace(WORKSPACE)
    fake.script_run("policy_passed")  # a run with many statuses, so the backoff reaches the cap
    with connect(fake, clock, poll_interval=0.5) as client:
        run_phase(client, 0.1, "7")
    assert clock.sleeps[:3] == [0.1, 0.2, 0.4]
    assert clock.sleeps[3:] and set(clock.sleeps[3:]) == {0.5}


# ---------------------------------------------------------------------- variables and outputs

def test_a_variable_someone_marked_sensitive_gets_the_value_and_stays_sensitive(fake, tfc):
    # The API refuses to un-mark a sensitive variable, so the update must not try.
    workspace_id = fake.add_workspace(WORKSPACE, variables={"stable_version": "6"},
                                      sensitive={"stable_version"})
    tfc.set_variables(workspace_id, {"stable_version": "7"})
    assert fake.variables(WORKSPACE)["stable_version"] == {
        "value": "7", "hcl": False, "sensitive": True, "description": ""}


def test_environment_variables_of_the_same_name_are_left_alone(fake, tfc):
    workspace_id = fake.add_workspace(WORKSPACE, env_variables={"canary_weight": "0"})
    tfc.set_variables(workspace_id, {"canary_weight": 0.25})
    assert fake.variables(WORKSPACE, "env")["canary_weight"]["value"] == "0"
    assert fake.variables(WORKSPACE)["canary_weight"]["value"] == "0.25"


def test_sensitive_outputs_come_back_as_none(clock):
    with FakeTfc(sensitive_outputs={"alias_arn"}) as fake:
        workspace_id = fake.add_workspace(WORKSPACE, outputs={"alias_arn": "arn:...",
                                                              "region": "eu-west-1"})
        with connect(fake, clock) as client:
            assert client.outputs(workspace_id) == {"alias_arn": None, "region": "eu-west-1"}


def test_every_page_of_outputs_is_read(fake, tfc):
    many = {f"output_{index}": index for index in range(130)}
    workspace_id = fake.add_workspace(WORKSPACE, outputs=many)
    assert tfc.outputs(workspace_id) == many
    assert len([r for r in fake.requests if r.path.endswith("/current-state-version-outputs")]) == 2


def test_a_workspace_without_state_has_no_outputs(fake, tfc):
    assert tfc.outputs(fake.add_workspace(WORKSPACE)) == {}


# ---------------------------------------------------------------------- errors

def test_a_rejected_token_is_reported(fake, clock):
    fake.add_workspace(WORKSPACE)
    with connect(fake, clock, token="wrong-token") as client:
        message = failure(lambda: client.workspace(ORGANIZATION, WORKSPACE))
    assert message.startswith(f"token rejected by {HOSTNAME} (401): ")
    assert "NOT applied" in message and f"terraform login {HOSTNAME}" in message


@pytest.mark.parametrize("organization, workspace",
                         [("acme", "lambda-nope"), ("other-org", WORKSPACE)])
def test_an_unknown_organization_or_workspace_is_named(fake, tfc, organization, workspace):
    fake.add_workspace(WORKSPACE)
    with pytest.raises(TfcNotFound) as raised:
        tfc.workspace(organization, workspace)
    message = str(raised.value)
    assert f"workspace {workspace!r} in organization {organization!r} not found" in message
    assert "environments.toml" in message and "NOT applied" in message


@pytest.mark.parametrize("outcome, status", [("errored", "errored"), ("discarded", "discarded"),
                                             ("canceled", "canceled"),
                                             ("force_canceled", "force_canceled")])
def test_a_run_that_ends_without_applying_is_reported(fake, tfc, outcome, status):
    fake.add_workspace(WORKSPACE)
    fake.script_run(outcome)
    with pytest.raises(TfcRunFailed) as raised:
        run_phase(tfc, 0.1, "7")
    error = raised.value
    assert error.status == status
    assert str(error).startswith(f"run {error.url} ended {status}: the phase was NOT applied")
    assert error.url == (f"https://{HOSTNAME}/app/{ORGANIZATION}/workspaces/{WORKSPACE}/runs/"
                         f"{error.run_id}")
    assert fake.outputs(WORKSPACE) is None


@pytest.mark.parametrize("outcome, status", [("apply_errored", "errored"),
                                             ("apply_force_canceled", "force_canceled")])
def test_a_run_that_fails_during_the_apply_may_be_partly_applied(fake, tfc, outcome, status):
    fake.add_workspace(WORKSPACE)
    fake.script_run(outcome)
    message = failure(lambda: run_phase(tfc, 0.1, "7"))
    assert f"ended {status}" in message and "PARTLY applied" in message
    assert "NOT applied" not in message


def test_an_organization_name_that_cannot_exist_is_refused_before_any_request(fake, tfc):
    message = failure(lambda: tfc.workspace("acme corp", WORKSPACE))
    assert message.startswith(f"reading workspace acme corp/{WORKSPACE} was not sent to {HOSTNAME}")
    assert "environments.toml" in message and "NOT applied" in message
    assert fake.requests == []


@pytest.mark.parametrize("outcome", ["policy_soft_failed", "policy_override"])
def test_a_soft_failed_policy_check_is_not_overridden(fake, tfc, outcome):
    fake.add_workspace(WORKSPACE)
    fake.script_run(outcome)
    message = failure(lambda: run_phase(tfc, 0.1, "7"))
    assert message.startswith("a policy check failed on run https://")
    assert f"({outcome})" in message and "NOT applied" in message and "override" in message
    assert not [call for call in fake.calls() if call.endswith("/actions/apply")]


def test_a_hard_failed_policy_check_is_named(fake, tfc):
    fake.add_workspace(WORKSPACE)
    fake.script_run("policy_hard_failed")
    with pytest.raises(TfcRunFailed) as raised:
        run_phase(tfc, 0.1, "7")
    assert str(raised.value).startswith("a policy check failed on run https://")
    assert "hard-mandatory" in str(raised.value) and "NOT applied" in str(raised.value)


def test_a_run_that_never_finishes_times_out(fake, clock):
    fake.add_workspace(WORKSPACE)
    fake.script_run("never_finishes")
    with connect(fake, clock, poll_interval=10) as client, pytest.raises(TfcTimeout) as raised:
        run_phase(client, 0.1, "7", timeout=60)
    error = raised.value
    assert str(error) == (f"run {error.url} did not finish within 60 s (last status plan_queued): "
                          "it may still apply; check the run page before the next phase")
    assert clock.now == 60


def test_a_rate_limited_request_waits_for_retry_after_and_is_sent_again(fake, tfc, clock):
    fake.add_workspace(WORKSPACE)
    fake.fail_next(429, method="POST", path="/api/v2/runs", headers={"Retry-After": "3"})
    _, result = run_phase(tfc, 0.1, "7")
    assert result.status == "applied"
    assert clock.sleeps[0] == 3
    assert fake.calls().count("POST /api/v2/runs") == 2


def test_x_ratelimit_reset_is_honoured_without_retry_after(fake, tfc, clock):
    workspace_id = fake.add_workspace(WORKSPACE, outputs={"region": "eu-west-1"})
    fake.fail_next(429, headers={"X-RateLimit-Reset": "0.25"})
    assert tfc.outputs(workspace_id) == {"region": "eu-west-1"}
    assert clock.sleeps == [0.25]


def test_rate_limiting_that_goes_on_fails_after_two_retries(fake, tfc):
    fake.add_workspace(WORKSPACE)
    fake.fail_next(429, times=5, headers={"Retry-After": "1"})
    message = failure(lambda: tfc.workspace(ORGANIZATION, WORKSPACE))
    assert "kept rate limiting" in message and "NOT applied" in message
    assert len(fake.requests) == 3


def test_a_server_error_creating_the_run_is_not_retried(fake, tfc):
    workspace_id = fake.add_workspace(WORKSPACE)
    fake.fail_next(502, method="POST", path="/api/v2/runs", detail="upstream\nbroke")
    message = failure(lambda: tfc.create_run(workspace_id, "canary"))
    assert message.startswith(f"{HOSTNAME} failed creating a run in workspace {workspace_id} (502 ")
    assert "upstream broke" in message and "may have been created" in message
    assert fake.calls().count("POST /api/v2/runs") == 1


def test_a_server_error_while_following_says_the_run_may_still_apply(fake, tfc):
    fake.add_workspace(WORKSPACE)
    run_id = tfc.create_run(tfc.workspace(ORGANIZATION, WORKSPACE).id, "canary")
    fake.fail_next(500, path=f"/api/v2/runs/{run_id}")
    message = failure(lambda: tfc.follow_run(run_id))
    assert "may still apply" in message


def test_a_token_that_may_not_apply_leaves_the_run_waiting(fake, tfc):
    fake.add_workspace(WORKSPACE)
    fake.fail_next(403, path="/actions/apply")
    with pytest.raises(TfcAuthError) as raised:
        run_phase(tfc, 0.1, "7")
    assert "(403)" in str(raised.value)
    assert "NOT applied" in str(raised.value) and "waits for confirmation" in str(raised.value)


def test_an_unreachable_api_is_one_line(clock):
    with FakeTfc() as fake:
        address = fake.address
    with TfcClient(HOSTNAME, "token", address=address, sleep=clock.sleep,
                   clock=clock.clock) as client:
        message = failure(lambda: client.workspace(ORGANIZATION, WORKSPACE))
    assert message.startswith(f"cannot reach {address} while reading workspace "
                              f"{ORGANIZATION}/{WORKSPACE} (ConnectError)")


def test_an_address_that_is_not_the_api_is_named(clock):
    with WebPage() as address, TfcClient(HOSTNAME, "token", address=address, sleep=clock.sleep,
                   clock=clock.clock) as client:
        message = failure(lambda: client.workspace(ORGANIZATION, WORKSPACE))
    assert message == (f"{HOSTNAME} answered reading workspace {ORGANIZATION}/{WORKSPACE} with "
                       "something that is not a Terraform Cloud API document (JSONDecodeError): "
                       "the phase was NOT applied; check the address")


@pytest.mark.parametrize("token", ["", "two words", "line\nbreak"])
def test_a_malformed_token_is_refused_before_any_request(token):
    with pytest.raises(TfcAuthError):
        TfcClient(HOSTNAME, token)


# ---------------------------------------------------------------------- the token stays secret

def test_the_token_appears_only_in_the_authorization_header(fake, tfc, caplog):
    caplog.set_level(logging.DEBUG)
    fake.add_workspace(WORKSPACE)
    run_phase(tfc, 0.1, "7")
    fake.script_run("errored")
    messages = [failure(lambda: run_phase(tfc, 0.2, "7"))]
    fake.fail_next(401, detail=f"token {fake.token} has expired")  # a server that echoes it
    messages.append(failure(lambda: tfc.workspace(ORGANIZATION, WORKSPACE)))
    fake.fail_next(500, detail=f"oops {fake.token}")
    messages.append(failure(lambda: tfc.workspace(ORGANIZATION, WORKSPACE)))

    assert "***" in messages[1]
    logged = [record.getMessage() for record in caplog.records]
    for text in [*messages, repr(tfc), str(vars(tfc)), *logged]:
        assert fake.token not in text
    assert caplog.records  # httpx and the client did log
    for request in fake.requests:
        assert request.headers["authorization"] == f"Bearer {fake.token}"
        others = {name: value for name, value in request.headers.items() if name != "authorization"}
        assert fake.token not in f"{request.raw_target} {request.raw_body} {others}"

