"""Drive the Terraform CLI (or OpenTofu) in one synthesized stack directory.

`cdktf synth` writes `cdktf.out/stacks/<env>/cdk.tf.json`; this module runs plain `terraform`
there: `init` (cached), `plan -out`, `apply <plan file>` and `output -json`. Only flags that both
Terraform and OpenTofu accept are used, so `TERRAFORM_BINARY=tofu` works the same.

Terraform's output is streamed line by line to an optional `on_line` callback while it runs, and
every failure raises `TerraformError` carrying the step, the exit code and the tail of stderr.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from release.errors import ReleaseError

BINARY_VARIABLE = "TERRAFORM_BINARY"
DEFAULT_LOCK_TIMEOUT = "60s"
STACK_FILE = "cdk.tf.json"
PLAN_FILE = "release.tfplan"
# `drift()` plans into its own file: it runs without the release lock, beside a phase.
DRIFT_PLAN_FILE = "drift.tfplan"
# Kept under .terraform/ so that deleting .terraform/ (a fresh checkout) also forces a new init.
INIT_FINGERPRINT_FILE = "release-init-fingerprint"
STDERR_TAIL_LINES = 20

LOCK_FIX = ("another Terraform run holds the state lock; wait, or raise the lock timeout with "
            "--lock-timeout")
# Go duration syntax, which is what -lock-timeout parses.
_DURATION = re.compile(r"(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+")
_PLAN_SUMMARY = re.compile(
    r"Plan: (?:\d+ to import, )?(\d+) to add, (\d+) to change, (\d+) to destroy")
_VERSION = re.compile(r"v?(\d+\.\d+\.\d+\S*)")
# The box-drawing frame Terraform puts around diagnostics, even with -no-color.
_FRAME = "╷│╵ "
# Lines of a diagnostic that point into the configuration rather than explain the error: "with
# aws_lambda_alias.x,", "on cdk.tf.json line 507, in ...", the quoted source line ("507:   ...")
# and the indented value annotations ("├────", "│ module.x is true").
_SOURCE_CONTEXT = re.compile(r"with \S+,$|on \S+ line \d+|\d+:|[├│]")
# Longest error explanation carried into the one-line message (and the history).
DIAGNOSTIC_CHARACTERS = 400


class TerraformError(ReleaseError):
    """A Terraform step failed; `str()` is one line, the full stderr tail is in `stderr_tail`."""

    def __init__(self, message: str, *, step: str, exit_code: int | None = None,
                 stderr_tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.step = step
        self.exit_code = exit_code
        self.stderr_tail = tuple(stderr_tail)


class TerraformLockError(TerraformError):
    """The Terraform state is locked by another run (it did not free up within the lock timeout)."""


@dataclass(frozen=True)
class ChangeSummary:
    """Resource counts from the plan's "Plan: X to add, Y to change, Z to destroy" line."""

    add: int = 0
    change: int = 0
    destroy: int = 0

    def __str__(self) -> str:
        if not (self.add or self.change or self.destroy):
            return "no resource changes"
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy"


@dataclass(frozen=True)
class Plan:
    """A saved plan: `apply()` applies exactly this file.

    Every `plan()` writes the same file (`release.tfplan`), so apply a plan before making the next.
    """

    path: Path
    # From -detailed-exitcode; True also for output-only changes, which have no "Plan:" line.
    has_changes: bool
    summary: ChangeSummary


def find_binary(binary: str | None = None) -> str:
    """The absolute path of the Terraform binary: `binary`, else $TERRAFORM_BINARY, else
    `terraform`."""
    name = binary or os.environ.get(BINARY_VARIABLE) or "terraform"
    path = shutil.which(name)
    if path is None:
        raise TerraformError(f"terraform binary {name!r} not found on PATH: install Terraform "
                             f">= 1.5 or set {BINARY_VARIABLE}", step="preflight")
    return path


def render_variable(value: str | float | int) -> str:
    """A `-var` value as Terraform parses it: numbers in plain decimal notation (0.00001, not
    1e-05)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(f"Terraform variable values are strings or numbers, not {value!r}")
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"Terraform variable value {value!r} is not a finite number")
        # repr() gives the shortest text that round-trips; Decimal drops the exponent.
        return format(Decimal(repr(value)), "f")
    return str(value)


def init_fingerprint(stack: Mapping[str, Any]) -> str:
    """A hash of the parts of cdk.tf.json that `terraform init` acts on (backend, providers,
    modules)."""
    settings = stack.get("terraform", {})
    relevant = {
        "backend": settings.get("backend"),
        "cloud": settings.get("cloud"),
        "required_providers": settings.get("required_providers"),
        "modules": {name: {"source": module.get("source"), "version": module.get("version")}
                    for name, module in stack.get("module", {}).items()},
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()


def parse_change_summary(lines: Sequence[str]) -> ChangeSummary:
    """The counts from the last "Plan: ..." line; zero counts for "No changes." or no line at
    all."""
    for line in reversed(lines):
        match = _PLAN_SUMMARY.search(line)
        if match:
            return ChangeSummary(*(int(count) for count in match.groups()))
    return ChangeSummary()


@dataclass(frozen=True)
class _Completed:
    exit_code: int
    stdout: list[str]
    stderr: list[str]


class Terraform:
    """Terraform in one stack directory (`EnvironmentConfig.stack_dir`)."""

    def __init__(self, stack_dir: Path | str, *, binary: str | None = None,
                 lock_timeout: str = DEFAULT_LOCK_TIMEOUT,
                 on_line: Callable[[str], None] | None = None) -> None:
        if not _DURATION.fullmatch(lock_timeout):
            raise TerraformError(f"lock timeout {lock_timeout!r} is not a duration: use a value "
                                 "such as 60s or 5m for --lock-timeout", step="preflight")
        self.stack_dir = Path(stack_dir)
        self.binary = find_binary(binary)
        self.lock_timeout = lock_timeout
        self.on_line = on_line

    @property
    def _name(self) -> str:
        return Path(self.binary).name

    def version(self) -> str:
        """The CLI version, e.g. "1.9.8" (from `version -json`, else the first line of
        `version`)."""
        result = self._run("version", ["version", "-json"], in_stack=False, stream=False,
                           check=False)
        if result.exit_code == 0:
            try:
                return str(json.loads("\n".join(result.stdout))["terraform_version"])
            except (ValueError, KeyError, TypeError):
                pass  # an old or unusual CLI: fall back to the plain text below
        result = self._run("version", ["version"], in_stack=False, stream=False)
        match = _VERSION.search(result.stdout[0]) if result.stdout else None
        if match is None:
            raise TerraformError(f"cannot read the version from `{self._name} version` "
                                 f"({(result.stdout or [''])[0]!r}): check that {self.binary} is "
                                 "Terraform or OpenTofu", step="version", stderr_tail=result.stderr)
        return match.group(1)

    def init(self) -> bool:
        """Run `init` unless it already ran for this backend/provider/module setup; True if it
        ran."""
        fingerprint = init_fingerprint(self._read_stack())
        fingerprint_file = self.stack_dir / ".terraform" / INIT_FINGERPRINT_FILE
        if fingerprint_file.is_file() and fingerprint_file.read_text().strip() == fingerprint:
            return False
        self._run("init", ["init", "-input=false", "-no-color"])
        fingerprint_file.parent.mkdir(exist_ok=True)
        fingerprint_file.write_text(fingerprint + "\n")
        return True

    def plan(self, variables: Mapping[str, str | float | int], *, destroy: bool = False) -> Plan:
        """Plan into `release.tfplan` in the stack dir; `destroy=True` plans removing everything."""
        self.init()
        plan_path = (self.stack_dir / PLAN_FILE).resolve()
        args = ["plan", "-input=false", f"-lock-timeout={self.lock_timeout}", "-detailed-exitcode",
                "-no-color", f"-out={plan_path}"]
        if destroy:
            args.append("-destroy")
        for name, value in variables.items():
            args += ["-var", f"{name}={render_variable(value)}"]
        # -detailed-exitcode: 0 = no changes, 2 = changes, anything else failed.
        result = self._run("plan", args, ok_codes=(0, 2))
        return Plan(path=plan_path, has_changes=result.exit_code == 2,
                    summary=parse_change_summary(result.stdout))

    def apply_variables(self, variables: Mapping[str, str | float | int]) -> ChangeSummary:
        """Plan and apply a phase in ONE Terraform run: `apply -auto-approve -var ...`.

        As safe as `plan()` + `apply()`: the same validations and preconditions run in its plan
        walk (a failure there applies nothing), the plan it applies is the one it just made, and
        it holds the state lock from plan to apply (nothing can change the state in between).
        Cheaper: one Terraform process instead of two, no plan file written and read back
        (benchmarks/real_phase_benchmark.py: a routing-only phase 11.2 s -> 9.6 s against moto;
        most of what is left is the AWS provider starting for the plan walk and the apply walk)."""
        self.init()
        args = ["apply", "-auto-approve", "-input=false", f"-lock-timeout={self.lock_timeout}",
                "-no-color"]
        for name, value in variables.items():
            args += ["-var", f"{name}={render_variable(value)}"]
        return parse_change_summary(self._run("apply", args).stdout)

    def drift(self, variables: Mapping[str, str | float | int]) -> list[str]:
        """Addresses of the resources a plan with the last applied `variables` would change:
        whatever was changed outside Terraform since (a console edit, a fast rollback). Plans with
        refresh, like any plan, but read-only: no state lock, nothing applied."""
        self.init()
        plan_path = (self.stack_dir / DRIFT_PLAN_FILE).resolve()
        args = ["plan", "-input=false", "-lock=false", "-detailed-exitcode", "-no-color",
                f"-out={plan_path}"]
        for name, value in variables.items():
            args += ["-var", f"{name}={render_variable(value)}"]
        if self._run("plan", args, ok_codes=(0, 2), stream=False).exit_code == 0:
            return []
        shown = self._run("show", ["show", "-json", "-no-color", str(plan_path)], stream=False)
        try:
            changes = json.loads("\n".join(shown.stdout)).get("resource_changes", [])
        except ValueError:
            raise TerraformError(f"`{self._name} show -json` printed something that is not a plan: "
                                 "check the Terraform binary", step="show") from None
        return sorted(change["address"] for change in changes
                      if set(change["change"]["actions"]) - {"no-op", "read"})

    def destroy(self) -> ChangeSummary:
        """Remove every resource of the stack: a destroy plan, then exactly that plan applied."""
        plan = self.plan({}, destroy=True)
        self.apply(plan)
        return plan.summary

    def apply(self, plan: Plan) -> None:
        """Apply exactly the saved plan (Terraform refuses it if the state moved on since)."""
        self._run("apply", ["apply", "-input=false", f"-lock-timeout={self.lock_timeout}",
                            "-no-color", str(plan.path)])

    def outputs(self) -> dict[str, Any]:
        """The stack's outputs as name -> value (empty before the first apply)."""
        self.init()
        result = self._run("output", ["output", "-json", "-no-color"], stream=False)
        text = "\n".join(result.stdout)
        try:
            outputs = json.loads(text)
            return {name: output["value"] for name, output in outputs.items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise TerraformError(f"`{self._name} output -json` in {self.stack_dir} printed "
                                 f"something that is not outputs JSON ({text[:80]!r}): check the "
                                 "Terraform binary",
                                 step="output", exit_code=0, stderr_tail=result.stderr) from None

    def _read_stack(self) -> dict[str, Any]:
        path = self.stack_dir / STACK_FILE
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TerraformError(f"no synthesized stack at {path}: run `cdktf synth` first",
                                 step="init") from None
        except ValueError as error:
            raise TerraformError(f"{path} is not valid JSON ({error}): run `cdktf synth` again",
                                 step="init") from None

    def _environment(self) -> dict[str, str]:
        return {**os.environ, "TF_IN_AUTOMATION": "1", "TF_INPUT": "0"}

    def _run(self, step: str, args: list[str], *, in_stack: bool = True, stream: bool = True,
             check: bool = True, ok_codes: tuple[int, ...] = (0,)) -> _Completed:
        """Run one command, streaming its output lines to `on_line` from this (the caller's)
        thread."""
        try:
            process = subprocess.Popen(
                [self.binary, *args], cwd=self.stack_dir if in_stack else None,
                env=self._environment(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, encoding="utf-8", errors="replace")
        except OSError as error:
            raise TerraformError(f"cannot run {self.binary} {step}: {error.strerror}: check "
                                 f"{BINARY_VARIABLE} and the stack directory {self.stack_dir}",
                                 step=step) from None
        # The with block closes the stdout and stderr pipes once Terraform has exited.
        with process:
            lines: queue.Queue[tuple[str, str | None]] = queue.Queue()

            def pump(name: str, pipe: Any) -> None:
                for line in pipe:
                    lines.put((name, line.rstrip("\r\n")))
                lines.put((name, None))

            for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
                threading.Thread(target=pump, args=(name, pipe), daemon=True).start()
            captured: dict[str, list[str]] = {"stdout": [], "stderr": []}
            open_pipes = 2
            pending: BaseException | None = None
            while open_pipes:
                try:
                    name, line = lines.get()
                    if line is None:
                        open_pipes -= 1
                        continue
                    captured[name].append(line)
                    if stream and self.on_line is not None and pending is None:
                        self.on_line(line)
                except BaseException as error:  # Ctrl-C, or the callback failed
                    # Keep draining until Terraform exits: cut off mid-apply (its pipes closed under
                    # it) it would die without writing state or releasing the state lock. Terraform
                    # gets the same Ctrl-C and stops gracefully on its own.
                    pending = pending or error
            exit_code = process.wait()
        if pending is not None:
            raise pending
        result = _Completed(exit_code, captured["stdout"], captured["stderr"])
        if check and exit_code not in ok_codes:
            raise self._failure(step, result)
        return result

    def _failure(self, step: str, result: _Completed) -> TerraformError:
        output = result.stderr or result.stdout
        text = "\n".join(result.stderr + result.stdout)
        message = (f"{self._name} {step} failed (exit {result.exit_code}) in {self.stack_dir}: "
                   f"{diagnostic(output)}")
        tail = output[-STDERR_TAIL_LINES:]
        if "Error acquiring the state lock" in text:
            return TerraformLockError(f"{message}; {LOCK_FIX}", step=step,
                                      exit_code=result.exit_code, stderr_tail=tail)
        fixes = {
            "Backend configuration changed": f"the state backend changed since the last init: "
                                             f"run `{self._name} init -migrate-state` in "
                                             f"{self.stack_dir} to move the state there",
            "Saved plan is stale": "the state changed after the plan was made: run the command "
                                   "again",
            "No valid credential sources found": "configure AWS credentials (AWS_PROFILE, or "
                                                 "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
        }
        fix = next((fix for marker, fix in fixes.items() if marker in text), None)
        return TerraformError(f"{message}; {fix}" if fix else message, step=step,
                              exit_code=result.exit_code, stderr_tail=tail)


def diagnostic(lines: Sequence[str]) -> str:
    """The first "Error: ..." diagnostic with its explanation, as one shortened line; else the last
    non-empty line. Terraform wraps explanations at 78 columns: they are joined back here."""
    cleaned = [line[1:] if line[:1] in _FRAME else line for line in lines]
    for index, line in enumerate(cleaned):
        if not line.strip().startswith("Error:"):
            continue
        explanation: list[str] = []
        for following in cleaned[index + 1:]:
            if following.strip().startswith(("Error:", "Warning:")):
                break
            if not _SOURCE_CONTEXT.match(following.strip()):
                explanation.append(following)
        text = " ".join(line.split())
        detail = " ".join(" ".join(explanation).split())
        text = f"{text}: {detail}" if detail else text
        if len(text) > DIAGNOSTIC_CHARACTERS:
            text = text[:DIAGNOSTIC_CHARACTERS - 1] + "…"
        return text
    return next((line.strip(_FRAME) for line in reversed(lines) if line.strip(_FRAME)),
                "no error output")
