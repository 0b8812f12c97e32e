"""The release world the end-to-end tests run in: stand-ins for everything AWS and Terraform.

- Terraform: the double (tests/fakes/terraform_double.py), which also moves the alias in moto
  after each apply, as a real apply would;
- AWS: a moto server (Lambda versions and alias, CloudWatch alarms);
- the endpoint: a local HTTP server answering like the function behind API Gateway, routed by
  whatever the moto alias says at the time (as API Gateway follows the alias).

The `world` fixture (registered in tests/conftest.py) starts with version 1 live and version 2
published by the next apply; `module_world` is the same world shared by a module's tests.
`World.invoke` runs the real CLI in a subprocess, `World.run_task` the same tasks in this process.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from invoke import Collection, Program

from fakes.endpoint import FakeEndpoint
from fakes.moto_server import (
    LAMBDA_CHANGES,
    REGION,
    FakeAws,
    fake_aws_environment,
    moto_endpoint,
    reset,
)
from fakes.terraform_double import TerraformDouble, write_stack
from release.aws import AwsError, Routing, client, read_alias
from release.config import parse_config, settings_parameter_name
from release.context import ReleaseContext, RunnerOptions
from release.history import ReleaseHistory
from release.kinds import Phase
from release.runner import run_phase
from release.synth import FINGERPRINT_FILE, fingerprint
from release.terraform import Terraform

PROJECT_ROOT = Path(__file__).resolve().parents[2]

FUNCTION = "deploy-patterns-demo-dev"
# The promotion gate's `after` environment's function (staging's, in environments.toml).
UPSTREAM = "deploy-patterns-demo-staging"
ALARMS = [f"{FUNCTION}-error-rate", f"{FUNCTION}-canary-error-rate"]
CONFIG = f"""
[environments.dev]
region = "{REGION}"
function_name = "{FUNCTION}"
rollout = {{ steps = [0.1, 0.5, 1.0], bake_seconds = 0 }}

[environments.prod]
region = "{REGION}"
function_name = "deploy-patterns-demo-prod"
production = true
"""
SMOKE_REQUESTS = 200
SETTINGS_PARAMETER = settings_parameter_name(FUNCTION)


class BackgroundLoop:
    """Runs `step()` every `interval` seconds in a thread while used as a context manager."""

    interval = 0.01

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.step()

    def step(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()


class AliasFollower(BackgroundLoop):
    """Keeps the fake endpoint's split equal to the moto alias's routing, like API Gateway; with
    `ssm_client`, also the config version each version answers with, read as the demo function
    reads it: GetParameter of the `<name>:<version>` its SETTINGS_PARAMETER pins."""

    # Steps once at the start, then again as soon as a Lambda call may have changed the alias
    # (LAMBDA_CHANGES: the moto server runs in this process), and in any case every
    # `idle_interval` s. Not a 10 ms poll: three of those (one per environment of a real-Terraform
    # world) took half a core from moto and Terraform for the whole run.
    idle_interval = 1.0

    def __init__(self, endpoint: FakeEndpoint, lambda_client,
                 function_name: str = FUNCTION, ssm_client: Any = None) -> None:
        super().__init__()
        self.endpoint, self.lambda_client = endpoint, lambda_client
        self.function_name = function_name
        self.ssm_client = ssm_client
        # A version's configuration is immutable: read once.
        self.config_versions: dict[str, str] = {}

    def _run(self) -> None:
        while not self._stop.is_set():
            seen = LAMBDA_CHANGES.generation  # before the read: a change during it steps again
            self.step()
            LAMBDA_CHANGES.wait(seen, self.idle_interval, self._stop)

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        LAMBDA_CHANGES.wake()
        self._thread.join()

    def step(self) -> None:
        try:
            routing = read_alias(self.lambda_client, self.function_name, "production").routing
        except AwsError:  # not deployed yet, or destroyed: nothing to follow
            return
        if self.ssm_client is not None:
            self._follow_config([routing.primary_version, *routing.additional_version_weights])
        if routing.additional_version_weights:
            (candidate, weight), = routing.additional_version_weights.items()
            self.endpoint.configure(stable_version=routing.primary_version,
                                    candidate_version=candidate, weight=weight)
        else:
            # No canary: every request goes to the primary (a "-" candidate gets none).
            self.endpoint.configure(stable_version=routing.primary_version,
                                    candidate_version="-", weight=0.0)

    def _follow_config(self, versions: list[str]) -> None:
        for version in versions:
            if version in self.config_versions:
                continue
            environment = self.lambda_client.get_function_configuration(
                FunctionName=self.function_name, Qualifier=version).get("Environment", {})
            selector = environment.get("Variables", {}).get("SETTINGS_PARAMETER")
            if selector:
                parameter = self.ssm_client.get_parameter(Name=selector)["Parameter"]
                self.config_versions[version] = str(parameter["Version"])
        self.endpoint.configure(config_versions=dict(self.config_versions))


def code_zip(text: str) -> bytes:
    """A function archive holding `text` as its handler."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("handler.py", text)
    return archive.getvalue()


def serve_upstream_code(aws: FakeAws, code: bytes) -> str:
    """The promotion gate's `after` environment (UPSTREAM, created here) serving `code` as its
    v1, and the world's function publishing the same code; returns that new version."""
    aws.create_function(UPSTREAM)
    aws.lambda_client.update_function_code(FunctionName=UPSTREAM, ZipFile=code)
    aws.lambda_client.publish_version(FunctionName=UPSTREAM)
    aws.set_routing(UPSTREAM, "1")
    aws.lambda_client.update_function_code(FunctionName=FUNCTION, ZipFile=code)
    return str(aws.lambda_client.publish_version(FunctionName=FUNCTION)["Version"])


def commit_terraform(stack_dir: Path, root: Path, patch: pytest.MonkeyPatch) -> Path:
    """A git repository whose terraform/ (`root`) holds the dev stack at `stack_dir` as
    `invoke synth` commits it, made the tasks' committed tree, with a bot as git author."""
    from release import committed
    committed.write(stack_dir, root / "dev")
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q", str(root.parent)], check=True)
    subprocess.run([*git, "add", "."], cwd=root.parent, check=True)
    subprocess.run([*git, "commit", "-qm", "synth"], cwd=root.parent, check=True)
    patch.setenv("SAFE_RELEASE_TERRAFORM_DIR", str(root))
    for name, value in (("NAME", "Release Bot"), ("EMAIL", "bot@example.com")):
        patch.setenv(f"GIT_AUTHOR_{name}", value)
        patch.setenv(f"GIT_COMMITTER_{name}", value)
    return root


@contextlib.contextmanager
def release_world(aws: FakeAws, root: Path, patch: pytest.MonkeyPatch) -> Iterator[World]:
    """Version 1 live on the alias (the first deployment done), version 2 just merged; files
    under `root`, the environment set through `patch`."""
    config_path = root / "environments.toml"
    config_path.write_text(CONFIG)
    outdir = root / "cdktf.out"
    for name in parse_config(CONFIG, config_path).stack_names:  # as a complete synth leaves them
        write_stack(outdir / "stacks" / name)
    patch.setenv("SAFE_RELEASE_CONFIG", str(config_path))
    patch.setenv("CDKTF_OUTDIR", str(outdir))
    patch.setenv("SAFE_RELEASE_STATE_DIR", str(root / "state"))
    aws.bootstrap_account()
    aws.deploy(FUNCTION, versions=1, alarm_names=ALARMS)
    with FakeEndpoint(seed=7, stable_version="1", candidate_version="1") as endpoint:
        double = TerraformDouble(root, candidate_version="1", function_name=FUNCTION,
                                 region=REGION, api_url=endpoint.url, alarm_names=ALARMS,
                                 sync_alias=True)
        for name, value in double.env.items():
            patch.setenv(name, value)
        lambda_client = client("lambda", REGION)
        # With SSM: a version published with pinned settings answers with its config version.
        with AliasFollower(endpoint, lambda_client, ssm_client=client("ssm", REGION)):
            world = World(aws, double, endpoint, lambda_client, config_path, outdir, root)
            run_phase(world.context(), Phase.DEPLOY)  # first deployment: v1 takes all traffic
            world.new_version()  # v2 merged and published by the next apply
            yield world


@pytest.fixture
def world(fake_aws, tmp_path, monkeypatch):
    with release_world(fake_aws, tmp_path, monkeypatch) as world:
        yield world


@pytest.fixture(scope="module")
def module_world(tmp_path_factory):
    """One world for a module whose tests leave it as they found it (and assert so)."""
    root = tmp_path_factory.mktemp("world")
    with pytest.MonkeyPatch.context() as patch:
        endpoint = moto_endpoint()
        reset(endpoint)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        for name, value in fake_aws_environment(endpoint, root).items():
            patch.setenv(name, value)
        with release_world(FakeAws(endpoint), root, patch) as world:
            yield world


@dataclass(frozen=True)
class TaskRun:
    exit_code: int
    stdout: str
    stderr: str


class World:
    def __init__(self, aws, double, endpoint, lambda_client, config_path, outdir, tmp_path):
        self.aws, self.double, self.endpoint = aws, double, endpoint
        self.lambda_client, self.config_path, self.outdir = lambda_client, config_path, outdir
        self.history = ReleaseHistory(tmp_path / "state" / "history.jsonl")

    def new_version(self, settings: dict[str, Any] | None = None,
                    secrets: dict[str, str] | None = None) -> str:
        """Publish the next version, as the next apply would; with `settings`, pinned to a new
        version of the settings parameter they are written to (and to `secrets`: secret ->
        version id), as the stack pins them."""
        environment = None
        if settings is not None:
            parameter_version = self.aws.put_settings(SETTINGS_PARAMETER, settings)
            environment = {"SETTINGS_PARAMETER": f"{SETTINGS_PARAMETER}:{parameter_version}"}
            if secrets:
                environment["SECRETS"] = json.dumps({
                    name: {"arn": f"arn:aws:secretsmanager:{REGION}:123456789012:secret:{name}",
                           "version_id": version_id} for name, version_id in secrets.items()})
        version = self.aws.publish_version(FUNCTION, environment)
        self.double.configure(candidate_version=version)
        return version

    def context(self, **options: Any) -> ReleaseContext:
        """The dev environment's context: quick polls, SMOKE_REQUESTS per smoke check."""
        config = parse_config(self.config_path.read_text(), self.config_path)
        environment = config.environment("dev")
        return ReleaseContext(
            environment, Terraform(environment.stack_dir), history=self.history,
            options=RunnerOptions(smoke_requests=SMOKE_REQUESTS, routing_interval=0.01,
                                  routing_timeout=5, bake_poll_seconds=0.01, **options))

    def live(self) -> Routing:
        return read_alias(self.lambda_client, FUNCTION, "production").routing

    def applies(self) -> int:
        return self.double.commands().count("apply")

    def invoke(self, *args: str) -> subprocess.CompletedProcess:
        """The real CLI in a subprocess, with this world's environment."""
        self._synthesized()
        return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, env=dict(os.environ), timeout=120)

    def run_task(self, *args: str) -> TaskRun:
        """`invoke <args>` in this process: the tasks, invoke's parsing and its handling of
        Exit, as the CLI runs them, in milliseconds. Any other exception propagates."""
        import tasks

        self._synthesized()
        stdout, stderr = io.StringIO(), io.StringIO()
        exit_code = 0
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                Program(namespace=Collection.from_module(tasks)).run(["invoke", *args])
            except SystemExit as exit:
                exit_code = exit.code if isinstance(exit.code, int) else 1
        return TaskRun(exit_code, stdout.getvalue(), stderr.getvalue())

    def _synthesized(self) -> None:
        """Mark the stacks as synthesized from the config, so that no task synthesizes."""
        (self.outdir / FINGERPRINT_FILE).write_text(
            fingerprint(parse_config(self.config_path.read_text(), self.config_path)))
