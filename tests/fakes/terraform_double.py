#!/usr/bin/env python3
"""A stand-in for the `terraform` CLI, for tests: fast, offline, scriptable.

As a script it answers `version [-json]`, `init`, `plan`, `apply <plan file>` and `output -json`
the way Terraform does for our stack, and keeps a tiny fake state (`double.tfstate.json`) in the
directory it runs in. `plan -var canary_weight=... -var stable_version=... -out=F` + `apply F`
update that state; `output -json` computes the stack's outputs from it with the alias routing
table (candidate = `candidate_version` from the config, the version "Terraform just published").

Environment:
  TERRAFORM_DOUBLE_CONFIG  JSON file with the behaviour (keys: DEFAULT_CONFIG below)
  TERRAFORM_DOUBLE_LOG     JSON-lines file; each run appends {"argv", "cwd", "env"}

Config keys beyond the output values:
  failures     {step: mode}; step is init/plan/apply/output, mode is "error" (exit 1 with
               Terraform-like error text), "lock" ("Error acquiring the state lock", exit 1) or,
               for apply only, "error-after-change" (state IS updated, then exit 1: Terraform
               does not roll back a failed apply).
  slow         {step: seconds}; the step prints a line, then pauses that long ...
  resume_file  ... or until this file exists (prints "resumed early" when it did).
  version      what `version` reports; version_json false makes `version -json` plain text.

Helper API for tests (`from fakes.terraform_double import TerraformDouble, write_stack`):

    double = TerraformDouble(tmp_path, candidate_version="4")
    stack = write_stack(tmp_path / "cdktf.out" / "stacks" / "dev")
    Terraform(stack, binary=str(double.binary))     # or monkeypatch the variables in double.env
    double.configure(failures={"apply": "lock"})
    double.calls(); double.commands(); double.state(stack)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

# The stack's alias precondition message (the project root is not on a script's path).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from release.config import NO_NEW_VERSION_MESSAGE  # noqa: E402

STATE_FILE = "double.tfstate.json"
PLAN_OF_AUTO_APPROVE = "double-auto-approve.tfplan"
# What the stack sets; an apply puts it back after the auto-rollback function changed it.
ALIAS_DESCRIPTION = ("Production traffic; routing set by the canary_weight and stable_version "
                     "variables.")
CONFIG_VARIABLE = "TERRAFORM_DOUBLE_CONFIG"
LOG_VARIABLE = "TERRAFORM_DOUBLE_LOG"
# Resources a first apply of the stack creates (function, alias, API, alarms, ...).
RESOURCE_COUNT = 14

DEFAULT_CONFIG: dict[str, Any] = {
    "version": "1.9.8",
    "version_json": True,
    "candidate_version": "1",
    "function_name": "deploy-patterns-demo-dev",
    "region": "eu-west-1",
    "api_url": "https://abc123defg.execute-api.eu-west-1.amazonaws.com/prod/demo",
    "alias_name": "production",
    # None: derived from function_name.
    "alarm_names": None,
    "failures": {},
    "slow": {},
    "resume_file": None,
    # After each apply, also point the Lambda alias (boto3, e.g. at a moto server through
    # AWS_ENDPOINT_URL) at the new routing, as a real apply would.
    "sync_alias": False,
}

# Terraform's diagnostics below are verbatim, with the space that ends each blank "│ " line.
# ruff: noqa: W291
LOCK_ERROR = """\
╷
│ Error: Error acquiring the state lock
│ 
│ Error message: resource temporarily unavailable
│ Lock Info:
│   ID:        0f7c5d4e-2b1a-4c3d-9e8f-7a6b5c4d3e2f
│   Path:      terraform.tfstate
│   Operation: OperationTypeApply
│   Who:       bob@ci-runner
│   Version:   {version}
│   Created:   2026-11-26 05:00:00.000000 UTC
│   Info:      
│ 
│ 
│ Terraform acquires a state lock to protect the state from being written
│ by multiple users at the same time. Please resolve the issue above and try
│ again. For most commands, you can disable locking with the "-lock=false"
│ flag, but this is not recommended.
╵"""  # noqa: W291

# The provider's error, which Terraform prints on one line however long it is.
ALIAS_CONFLICT = (
    "updating Lambda Alias (production): operation error Lambda: UpdateAlias, https response "
    "error StatusCode: 409, RequestID: 3f1c2d4e-5b6a-4789-9abc-def012345678, "
    "ResourceConflictException: The operation cannot be performed at this time. An update is in "
    "progress for resource: {function_name}")
STEP_ERRORS = {
    "init": """\
╷
│ Error: Failed to query available provider packages
│ 
│ Could not retrieve the list of available versions for provider hashicorp/aws: could not
│ connect to registry.terraform.io: failed to request discovery document: dial tcp: lookup
│ registry.terraform.io: no such host
╵""",  # noqa: W291
    "plan": """\
╷
│ Error: No valid credential sources found
│ 
│   with provider["registry.terraform.io/hashicorp/aws"],
│   on cdk.tf.json line 12, in provider.aws[0]:
│   12:       }
│ 
│ Please see https://registry.terraform.io/providers/hashicorp/aws
│ for more information about providing credentials.
╵""",  # noqa: W291
    "apply": """\
╷
│ Error: {alias_conflict}
│ 
│   with aws_lambda_alias.production,
│   on cdk.tf.json line 88, in resource.aws_lambda_alias.production:
│   88:       }
╵""",  # noqa: W291, E501
    "output": """\
╷
│ Error: Failed to load state: AccessDenied: Access Denied
╵""",
}


# ---------------------------------------------------------------- the fake CLI

def _load_config() -> dict[str, Any]:
    path = os.environ.get(CONFIG_VARIABLE)
    config = dict(DEFAULT_CONFIG)
    if path and Path(path).is_file():
        config.update(json.loads(Path(path).read_text()))
    if config["alarm_names"] is None:
        function = config["function_name"]
        config["alarm_names"] = [
            f"{function}-{name}"
            for name in ("errors", "canary-errors", "p99-duration", "throttles", "api-5xx")]
    return config


def _record_call(argv: list[str]) -> None:
    path = os.environ.get(LOG_VARIABLE)
    if not path:
        return
    entry = {"argv": argv, "cwd": os.getcwd(),
             "env": {name: os.environ.get(name) for name in ("TF_IN_AUTOMATION", "TF_INPUT")}}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(entry) + "\n")


def _parse(argv: list[str]) -> tuple[str, dict[str, Any], list[str]]:
    """(command, options, positional); `-var a=b` / `-var=a=b` collect into options["var"]."""
    command = ""
    options: dict[str, Any] = {"var": {}}
    positional: list[str] = []
    items = iter(argv)
    for item in items:
        if item.startswith("-"):
            name, has_value, value = item.lstrip("-").partition("=")
            if name == "var":
                assignment = value if has_value else next(items)
                key, _, var_value = assignment.partition("=")
                options["var"][key] = var_value
            else:
                options[name] = value if has_value else True
        elif not command:
            command = item
        else:
            positional.append(item)
    return command, options, positional


def _say(text: str) -> None:
    print(text, flush=True)


def _fail(text: str) -> int:
    print(text, file=sys.stderr, flush=True)
    return 1


def _pause_if_slow(step: str, config: dict[str, Any]) -> None:
    seconds = config["slow"].get(step)
    if seconds is None:
        return
    _say(f"{step}: still working (slow step)...")
    resume = config["resume_file"]
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        if resume and Path(resume).exists():
            _say(f"{step}: resumed early ({resume} exists)")
            return
        time.sleep(0.01)
    _say(f"{step}: slow step finished after {seconds} s")


def _failure_text(step: str, mode: str, config: dict[str, Any]) -> str:
    if mode == "lock":
        return LOCK_ERROR.replace("{version}", config["version"])
    return (STEP_ERRORS[step].replace("{alias_conflict}", ALIAS_CONFLICT)
            .replace("{function_name}", config["function_name"]))


def _read_state(cwd: Path) -> dict[str, Any] | None:
    path = cwd / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _routing(candidate: str, stable: str, weight: float) -> tuple[str, dict[str, float]]:
    """The brief's routing table: (primary version, additional version weights)."""
    if stable in ("", candidate) or weight >= 1:
        return candidate, {}
    if weight <= 0:
        return stable, {}
    return stable, {candidate: weight}


def _phase(candidate: str, stable: str, weight: float) -> str:
    if stable in ("", candidate):
        return "candidate-only"
    return "promoted" if weight >= 1 else "canary" if weight > 0 else "stable-only"


def _sync_alias(state: dict[str, Any], config: dict[str, Any]) -> None:
    import boto3  # only this mode needs it; keeps the double's start fast

    primary, weights = _routing(state["candidate_version"], state["stable_version"],
                                state["canary_weight"])
    boto3.client("lambda", region_name=config["region"]).update_alias(
        FunctionName=config["function_name"], Name=config["alias_name"], FunctionVersion=primary,
        RoutingConfig={"AdditionalVersionWeights": weights}, Description=ALIAS_DESCRIPTION)


def _outputs(state: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    primary, weights = _routing(state["candidate_version"], state["stable_version"],
                                state["canary_weight"])
    function = config["function_name"]
    values = {
        "api_url": (config["api_url"], "string"),
        "function_name": (function, "string"),
        "alias_name": (config["alias_name"], "string"),
        "alias_arn": (f"arn:aws:lambda:{config['region']}:123456789012:function:{function}:"
                      f"{config['alias_name']}", "string"),
        "candidate_version": (state["candidate_version"], "string"),
        "primary_version": (primary, "string"),
        "additional_version_weights": (weights, ["map", "number"]),
        "phase": (_phase(state["candidate_version"], state["stable_version"],
                         state["canary_weight"]), "string"),
        "canary_weight": (state["canary_weight"], "number"),
        "stable_version": (state["stable_version"], "string"),
        "alarm_names": (config["alarm_names"], ["list", "string"]),
        "region": (config["region"], "string"),
    }
    # A stack applied by another version of it, or an apply that did not finish: the next apply
    # writes a new state, with every output.
    missing = state.get("missing_outputs", [])
    return {name: {"sensitive": False, "type": kind, "value": value}
            for name, (value, kind) in values.items() if name not in missing}


def _version(options: dict[str, Any], config: dict[str, Any]) -> int:
    if options.get("json") and config["version_json"]:
        _say(json.dumps({"terraform_version": config["version"], "platform": "linux_amd64",
                         "provider_selections": {}, "terraform_outdated": False}, indent=2))
    else:
        _say(f"Terraform v{config['version']}\non linux_amd64")
    return 0


def _init(cwd: Path, config: dict[str, Any]) -> int:
    _say("Initializing the backend...")
    _pause_if_slow("init", config)
    mode = config["failures"].get("init")
    if mode:
        return _fail(_failure_text("init", mode, config))
    (cwd / ".terraform").mkdir(exist_ok=True)
    (cwd / ".terraform.lock.hcl").write_text(
        "# This file is maintained automatically by \"terraform init\".\n")
    _say("Initializing provider plugins...\n- Using previously-installed hashicorp/aws v6.20.0\n\n"
         "Terraform has been successfully initialized!")
    return 0


def _desired(variables: dict[str, str], config: dict[str, Any]) -> dict[str, Any] | str:
    """The state the variables ask for, or a Terraform-like validation error text."""
    # The phase variables, the drill's fault_rate, a gated stack's promotion gate override.
    unknown = sorted(set(variables) - {"canary_weight", "stable_version", "fault_rate",
                                       "promotion_gate_override"})
    if unknown:
        return ("╷\n│ Error: Value for undeclared variable\n│ \n"
                f"│ A variable named \"{unknown[0]}\" "
                "was assigned on the command line, but the root module does not declare a variable "
                f"of that name.\n╵")
    try:
        weight = float(variables.get("canary_weight", "0"))
    except ValueError:
        weight = -1.0
    stable = variables.get("stable_version", "")
    if not 0 <= weight <= 1:
        return ("╷\n│ Error: Invalid value for variable\n│ \n"
                "│ canary_weight must be a number from 0 to 1 "
                f"(got {variables['canary_weight']!r}).\n╵")
    if stable and not stable.isdigit():
        return ("╷\n│ Error: Invalid value for variable\n│ \n"
                "│ stable_version must be \"\" or a published "
                f"version number (got {stable!r}).\n╵")
    if 0 < weight < 1 and stable == str(config["candidate_version"]):
        # The alias precondition; Terraform wraps the message at 78 columns.
        wrapped = "\n│ ".join(textwrap.wrap(NO_NEW_VERSION_MESSAGE, 78))
        return ("╷\n│ Error: Resource precondition failed\n│ \n│   on cdk.tf.json line 507, in "
                "resource.aws_lambda_alias.alias_87719FCA.lifecycle.precondition[0]:\n│ \n"
                f"│ {wrapped}\n╵")
    return {"candidate_version": str(config["candidate_version"]), "canary_weight": weight,
            "stable_version": stable, "fault_rate": float(variables.get("fault_rate", "0"))}


def _plan(cwd: Path, options: dict[str, Any], config: dict[str, Any]) -> int:
    if not (cwd / ".terraform").is_dir():
        return _fail("╷\n│ Error: Backend initialization required, please run "
                     "\"terraform init\"\n╵")
    out = options.get("out")
    if not isinstance(out, str) or not out:
        return _fail("the terraform double only plans with -out=<file>")
    desired = _desired(options["var"], config)
    if isinstance(desired, str):
        return _fail(desired)
    _say("Terraform used the selected providers to generate the following execution plan.")
    _pause_if_slow("plan", config)
    mode = config["failures"].get("plan")
    if mode:
        return _fail(_failure_text("plan", mode, config))
    state = _read_state(cwd)
    destroy = bool(options.get("destroy"))
    if destroy:
        counts = (0, 0, RESOURCE_COUNT if state else 0)
        target = None
    elif state is None:
        counts, target = (RESOURCE_COUNT, 0, 0), desired
    else:
        current = {key: state[key] for key in desired}
        new_code = current["candidate_version"] != desired["candidate_version"]
        changed = int(current != desired) + int(new_code)
        counts, target = (0, changed, 0), desired
    Path(cwd, out).write_text(json.dumps({"serial": state["serial"] if state else 0,
                                          "destroy": destroy, "target": target,
                                          "counts": counts}))
    if not any(counts):
        _say("\nNo changes. Your infrastructure matches the configuration.")
        return 0
    _say(f"\nPlan: {counts[0]} to add, {counts[1]} to change, {counts[2]} to destroy.")
    _say(f"\nSaved the plan to: {out}")
    return 2 if options.get("detailed-exitcode") else 0


def _apply(cwd: Path, positional: list[str], config: dict[str, Any]) -> int:
    if not positional:
        return _fail("the terraform double only applies a saved plan file")
    plan_path = Path(cwd, positional[0])
    if not plan_path.is_file():
        return _fail(f"╷\n│ Error: Failed to load \"{positional[0]}\" as a plan file\n╵")
    plan = json.loads(plan_path.read_text())
    state = _read_state(cwd)
    if plan["serial"] != (state["serial"] if state else 0):
        return _fail("╷\n│ Error: Saved plan is stale\n│ \n│ The given plan file can no longer "
                     "be applied because the state was changed by another operation after the "
                     "plan was created.\n╵")
    _say("aws_lambda_alias.production: Modifying...")
    _pause_if_slow("apply", config)
    mode = config["failures"].get("apply")
    if mode in ("error", "lock"):
        return _fail(_failure_text("apply", mode, config))
    if plan["destroy"]:
        (cwd / STATE_FILE).unlink(missing_ok=True)
    elif plan["target"] is not None:
        new_state = {**plan["target"], "serial": plan["serial"] + 1}
        (cwd / STATE_FILE).write_text(json.dumps(new_state))
        if config["sync_alias"]:
            _sync_alias(new_state, config)
    if mode == "error-after-change":
        return _fail(_failure_text("apply", mode, config))
    add, change, destroy = plan["counts"]
    _say(f"\nApply complete! Resources: {add} added, {change} changed, {destroy} destroyed.")
    return 0


def _output(cwd: Path, options: dict[str, Any], config: dict[str, Any]) -> int:
    if not options.get("json"):
        return _fail("the terraform double only supports `output -json`")
    mode = config["failures"].get("output")
    if mode:
        return _fail(_failure_text("output", mode, config))
    state = _read_state(cwd)
    _say(json.dumps(_outputs(state, config) if state else {}, indent=2))
    return 0


def main(argv: list[str]) -> int:
    _record_call(argv)
    config = _load_config()
    command, options, positional = _parse(argv)
    cwd = Path.cwd()
    if command == "version":
        return _version(options, config)
    if command == "init":
        return _init(cwd, config)
    if command == "plan":
        return _plan(cwd, options, config)
    if command == "apply" and options.get("auto-approve") and not positional:
        # `apply -auto-approve -var ...`: plan, then apply that plan, in one run.
        code = _plan(cwd, {**options, "out": PLAN_OF_AUTO_APPROVE, "detailed-exitcode": False},
                     config)
        return code or _apply(cwd, [PLAN_OF_AUTO_APPROVE], config)
    if command == "apply":
        return _apply(cwd, positional, config)
    if command == "output":
        return _output(cwd, options, config)
    return _fail(f"Terraform has no command named \"{command}\".")


# ---------------------------------------------------------------- helper API for tests

def write_stack(stack_dir: Path, *, backend: dict[str, Any] | None = None) -> Path:
    """Write a minimal cdk.tf.json like `cdktf synth` does (local backend unless `backend`)."""
    stack_dir = Path(stack_dir)
    stack_dir.mkdir(parents=True, exist_ok=True)
    stack = {
        "terraform": {
            "backend": backend or {"local": {"path": "terraform.tfstate"}},
            "required_providers": {"aws": {"source": "aws", "version": "6.20.0"}},
        },
        "provider": {"aws": [{"region": "eu-west-1"}]},
        "variable": {"canary_weight": {"type": "number", "default": 0},
                     "stable_version": {"type": "string", "default": ""}},
        "output": {name: {"value": "${...}"}
                   for name in ("api_url", "function_name", "candidate_version")},
    }
    (stack_dir / "cdk.tf.json").write_text(json.dumps(stack, indent=2))
    return stack_dir


class TerraformDouble:
    """A `terraform` executable under `<root>/terraform-double/bin` with its own config and call
    log."""

    def __init__(self, root: Path, **config: Any) -> None:
        self.root = Path(root) / "terraform-double"
        self.bin_dir = self.root / "bin"
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.root / "config.json"
        self.log_path = self.root / "calls.jsonl"
        self.binary = self.bin_dir / "terraform"
        # The config and log paths are baked in (overridable), so passing just the binary works.
        self.binary.write_text(
            "#!/bin/sh\n"
            f": \"${{{CONFIG_VARIABLE}:={shlex.quote(str(self.config_path))}}}\"\n"
            f": \"${{{LOG_VARIABLE}:={shlex.quote(str(self.log_path))}}}\"\n"
            f"export {CONFIG_VARIABLE} {LOG_VARIABLE}\n"
            f"exec {shlex.quote(sys.executable)} "
            f"{shlex.quote(str(Path(__file__).resolve()))} \"$@\"\n")
        self.binary.chmod(0o755)
        self.config_path.write_text("{}")
        self.configure(**config)

    @property
    def env(self) -> dict[str, str]:
        """Variables that make `terraform` (PATH) and `TERRAFORM_BINARY` this double."""
        return {"PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
                "TERRAFORM_BINARY": str(self.binary),
                CONFIG_VARIABLE: str(self.config_path), LOG_VARIABLE: str(self.log_path)}

    def configure(self, **changes: Any) -> None:
        """Merge `changes` (keys of DEFAULT_CONFIG) into the config the next runs read."""
        unknown = set(changes) - set(DEFAULT_CONFIG)
        if unknown:
            raise TypeError(f"unknown terraform double setting(s): {', '.join(sorted(unknown))}")
        config = json.loads(self.config_path.read_text())
        config.update(changes)
        self.config_path.write_text(json.dumps(config))

    def calls(self) -> list[dict[str, Any]]:
        """Every run so far: {"argv": [...], "cwd": "...", "env": {...}}."""
        if not self.log_path.is_file():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def commands(self) -> list[str]:
        """The subcommand of every run so far, e.g. ["init", "plan", "apply"]."""
        return [_parse(call["argv"])[0] for call in self.calls()]

    def state(self, stack_dir: Path) -> dict[str, Any] | None:
        """The fake state in `stack_dir`: candidate_version, canary_weight, stable_version,
        serial."""
        return _read_state(Path(stack_dir))

    def drop_outputs(self, stack_dir: Path, *names: str) -> None:
        """Leave `names` out of `output -json` until the next apply."""
        state = _read_state(Path(stack_dir))
        assert state is not None, "nothing applied in this stack yet"
        (Path(stack_dir) / STATE_FILE).write_text(json.dumps({**state, "missing_outputs": names}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
