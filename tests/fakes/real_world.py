"""The real-Terraform release world: the synthesized stacks applied by a real Terraform CLI and
the real AWS provider against the moto server, driven through the real `invoke` tasks.

- Terraform and provider: tests/fakes/real_terraform.py (machine CLI, local provider mirror,
  an override file per stack copy that points every endpoint at moto);
- AWS: the test process's moto server, made AWS-faithful in tests/fakes/moto_server.py;
- the endpoint: a local HTTP server per environment that answers like the demo function and
  routes by whatever the moto alias says at the time (API Gateway + Lambda execution, which
  moto cannot run); phases reach it through `--url`.

One world per test module (`real_world` fixture): its tests are steps of one release history
and run in file order. Nothing here writes into the repository: stacks are copies under a
temporary directory, with their state beside them (the stacks' local backend).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.endpoint import FakeEndpoint
from fakes.moto_server import fake_aws_environment, moto_endpoint, reset
from fakes.real_terraform import RealTerraform, copy_stack, lay_overrides, real_terraform
from fakes.release_world import AliasFollower
from release.aws import Routing, client, read_alias
from release.config import SHARED_SETTINGS_VARIABLE, parse_config, settings_json, settings_sha256
from release.history import ReleaseHistory
from release.synth import FINGERPRINT_FILE, fingerprint

PROJECT_ROOT = Path(__file__).resolve().parents[2]
ALIAS = "production"


class RealWorld:
    def __init__(self, root: Path, config_path: Path, terraform: RealTerraform, moto: str,
                 env: dict[str, str]) -> None:
        self.root, self.config_path, self.terraform, self.moto = root, config_path, terraform, moto
        self.env = env
        self.config = parse_config(config_path.read_text(), config_path)
        self.outdir = root / "cdktf.out"
        self.history = ReleaseHistory(root / "state" / "history.jsonl")
        self.lambda_client = client("lambda", self.config.environment("dev").region)
        self.endpoints: dict[str, FakeEndpoint] = {}

    # ------------------------------------------------------------------ the stacks

    def stack_dir(self, env: str) -> Path:
        return self.outdir / "stacks" / env

    def function_name(self, env: str) -> str:
        return self.config.environment(env).function_name

    def new_code(self, env: str) -> None:
        """A code change, as a merge would bring: the function archive gets a new file, so the
        next apply publishes a new version (no synth: the stack hashes the file at plan time)."""
        (archive,) = self.stack_dir(env).glob("assets/function_code_*/*/*.zip")
        with zipfile.ZipFile(archive, "a") as bundle:
            bundle.writestr(f"change-{uuid.uuid4().hex}.txt", "merged\n")

    def new_settings(self, env: str, settings: dict[str, Any]) -> None:
        """A config change, as a merge of a re-synthesized stack brings it: the settings
        parameter's value in the stack's Terraform (what `invoke synth` writes from
        environments.toml)."""
        stack_file = self.stack_dir(env) / "cdk.tf.json"
        stack = json.loads(stack_file.read_text())
        (parameter,) = [resource for resource in stack["resource"]["aws_ssm_parameter"].values()
                        if resource["//"]["metadata"]["path"].endswith("/settings/parameter")]
        parameter["insecure_value"] = settings_json(settings)
        stack_file.write_text(json.dumps(stack, indent=2))

    def new_shared_settings(self, env: str, settings: dict[str, Any]) -> None:
        """A change to [defaults.settings] (for an environment with no settings of its own): the
        parameter's value, and the fingerprint synth writes into the function's variables and
        (with a promotion gate) the traffic policy's release pins."""
        self.new_settings(env, settings)
        stack_file = self.stack_dir(env) / "cdk.tf.json"
        stack = json.loads(stack_file.read_text())
        (function,) = [resource for resource in stack["resource"]["aws_lambda_function"].values()
                       if resource["//"]["metadata"]["path"] == f"{env}/function/function"]
        shared = settings_sha256(settings)
        function["environment"]["variables"][SHARED_SETTINGS_VARIABLE] = shared
        pins = stack["module"]["traffic_policy"]["release_pins"]
        if pins:
            pins["shared_settings"] = shared
        stack_file.write_text(json.dumps(stack, indent=2))

    # ------------------------------------------------------------------ running things

    def run(self, *command: str, cwd: Path = PROJECT_ROOT, timeout: float = 600,
            env_overrides: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """A command with the world's environment (`env_overrides` replaces it whole)."""
        env = {**os.environ, **self.env} if env_overrides is None else {
            **{name: value for name, value in os.environ.items() if name not in self.env},
            **env_overrides}
        return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env=env, stdin=subprocess.DEVNULL)

    def invoke(self, *args: str) -> subprocess.CompletedProcess:
        """The real CLI in a subprocess."""
        return self.run(sys.executable, "-m", "invoke", *args)

    def phase(self, task: str, env: str, *args: str) -> Any:
        """A release task with --json and the local endpoint; its JSON result (exit 0 asserted)."""
        result = self.invoke(task, "--env", env, "--url", self.endpoints[env].url, "--json", *args)
        assert result.returncode == 0, f"invoke {task} failed:\n{result.stdout}\n{result.stderr}"
        return json.loads(result.stdout)

    def terraform_cli(self, env: str, *args: str) -> subprocess.CompletedProcess:
        return self.run(self.terraform.binary, *args, cwd=self.stack_dir(env))

    def outputs(self, env: str) -> dict[str, Any]:
        result = self.terraform_cli(env, "output", "-json")
        assert result.returncode == 0, result.stderr
        return {name: output["value"] for name, output in json.loads(result.stdout).items()}

    def replan(self, env: str) -> subprocess.CompletedProcess:
        """A fresh `plan -detailed-exitcode` with the variables the last apply used."""
        outputs = self.outputs(env)
        return self.terraform_cli(env, "plan", "-input=false", "-no-color", "-detailed-exitcode",
                                  "-var", f"canary_weight={outputs['canary_weight']}",
                                  "-var", f"stable_version={outputs['stable_version']}")

    # ------------------------------------------------------------------ AWS

    def live(self, env: str) -> Routing:
        return read_alias(self.lambda_client, self.function_name(env), ALIAS).routing

    def published_versions(self, env: str) -> list[str]:
        versions = self.lambda_client.list_versions_by_function(
            FunctionName=self.function_name(env))["Versions"]
        return sorted((v["Version"] for v in versions if v["Version"].isdigit()), key=int)


@contextlib.contextmanager
def real_world(tmp_path_factory: pytest.TempPathFactory, synth: Any,
               environments: tuple[str, ...]) -> Iterator[RealWorld]:
    """A real-Terraform world for `environments` (copies of the session synth's stacks)."""
    root = tmp_path_factory.mktemp("real-world")
    terraform = real_terraform(root)
    moto = moto_endpoint()
    reset(moto)
    home = root / "home"
    home.mkdir()
    env = {
        **fake_aws_environment(moto, home),
        **terraform.env,
        "SAFE_RELEASE_CONFIG": str(synth.config_path),
        "CDKTF_OUTDIR": str(root / "cdktf.out"),
        "SAFE_RELEASE_STATE_DIR": str(root / "state"),
    }
    # Every stack of the config, so that the tasks find the synth complete and never run it again
    # (which would also undo the code changes made in the copies).
    for stack_source in (synth.outdir / "stacks").iterdir():
        stack = copy_stack(stack_source, root / "cdktf.out" / "stacks" / stack_source.name)
        lay_overrides(stack, terraform, moto)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN"):
            patch.delenv(name, raising=False)
        world = RealWorld(root, synth.config_path, terraform, moto, env)
        # The copied stacks are the synth of this very config: no re-synth by the tasks.
        (world.outdir / FINGERPRINT_FILE).write_text(fingerprint(world.config))
        with contextlib.ExitStack() as stack:
            for name in environments:
                endpoint = stack.enter_context(FakeEndpoint(seed=11, environment=name))
                stack.enter_context(AliasFollower(
                    endpoint, world.lambda_client, world.function_name(name),
                    ssm_client=client("ssm", world.config.environment(name).region)))
                world.endpoints[name] = endpoint
            yield world
    # KEEP_REAL_WORLD=1 keeps the stacks and their state for a look after a failed run.
    if not os.environ.get("KEEP_REAL_WORLD"):
        shutil.rmtree(root / "cdktf.out", ignore_errors=True)  # provider binaries and plans
