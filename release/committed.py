"""The committed Terraform: each environment's synthesized stack under `terraform/<env>/`, for
runs that cannot synthesize (Terraform Cloud VCS-driven workspaces have no Python or Node).

The committed form is the synthesized stack directory (`cdk.tf.json` plus its `assets/`: the
function archive and the traffic-policy module, all referenced by relative paths) without its
backend: the workspace that runs it keeps the state. Next to it, `phase.auto.tfvars.json` holds
the phase (`canary_weight`, `stable_version`); Terraform loads it by itself, so changing the
phase is a one-file commit that a pull request shows and reviews like code.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from release import aws, gate
from release import synth as synthesis
from release.aws import Routing
from release.config import (
    ALIAS_NAME,
    PROJECT_ROOT,
    SHARED_SETTINGS_VARIABLE,
    EnvironmentConfig,
    ProjectConfig,
)
from release.errors import ReleaseError
from release.kinds import Phase
from release.phases import PhaseInputError, plan_committed


def committed_root() -> Path:
    """`terraform/` in the project ($SAFE_RELEASE_TERRAFORM_DIR elsewhere, e.g. in tests)."""
    return Path(os.environ.get("SAFE_RELEASE_TERRAFORM_DIR") or PROJECT_ROOT / "terraform")

PHASE_FILE = "phase.auto.tfvars.json"
STACK_FILE = "cdk.tf.json"
# Only these come from the synth; everything else in a stack directory (.terraform, plans, local
# state) is a by-product of running Terraform there.
SYNTHESIZED = (STACK_FILE, "assets")


class CommittedError(ReleaseError):
    """The committed Terraform is missing or stale; the message says which and how to refresh."""


def committed_files(stack_dir: Path) -> dict[str, bytes]:
    """Relative path -> content of the committed form of one synthesized stack directory."""
    stack = json.loads((stack_dir / STACK_FILE).read_text())
    terraform = stack.get("terraform", {})
    terraform.pop("backend", None)
    terraform.pop("cloud", None)
    stack.get("//", {}).get("metadata", {}).pop("backend", None)
    files = {STACK_FILE: (json.dumps(stack, indent=2, sort_keys=True) + "\n").encode()}
    for path in sorted((stack_dir / "assets").rglob("*")):
        if path.is_file():
            files[path.relative_to(stack_dir).as_posix()] = path.read_bytes()
    return files


def _present(directory: Path) -> dict[str, bytes]:
    return {path.relative_to(directory).as_posix(): path.read_bytes()
            for path in sorted(directory.rglob("*"))
            if path.is_file() and path.relative_to(directory).parts[0] in SYNTHESIZED}


def write(stack_dir: Path, directory: Path) -> bool:
    """Refresh `directory` from `stack_dir`; keeps the phase file. True if anything changed."""
    wanted = committed_files(stack_dir)
    if _present(directory) == wanted:
        return False
    for name in SYNTHESIZED:
        target = directory / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for relative, content in wanted.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    takes_a_phase = "canary_weight" in json.loads(wanted[STACK_FILE]).get("variable", {})
    if takes_a_phase and not (directory / PHASE_FILE).exists():  # not the account stacks
        write_phase(directory, {"canary_weight": 0, "stable_version": ""})
    return True


def write_all(config: ProjectConfig, outdir: Path, root: Path | None = None) -> list[str]:
    """Refresh every stack's committed Terraform; returns those that changed."""
    root = root or committed_root()
    return [name for name in config.stack_names
            if write(outdir / "stacks" / name, root / name)]


def differences(stack_dir: Path, directory: Path) -> list[str]:
    """What differs between a fresh synth and the committed directory ([] when equal)."""
    wanted, present = committed_files(stack_dir), _present(directory)
    changed = sorted(name for name in wanted.keys() & present.keys()
                     if wanted[name] != present[name])
    missing = sorted(wanted.keys() - present.keys())
    extra = sorted(present.keys() - wanted.keys())
    return ([f"changed {name}" for name in changed] + [f"missing {name}" for name in missing]
            + [f"left over {name}" for name in extra])


def check(config: ProjectConfig, outdir: Path, root: Path | None = None) -> None:
    """Raise CommittedError naming each environment whose committed Terraform is stale."""
    root = root or committed_root()
    problems = []
    for name in config.stack_names:
        found = differences(outdir / "stacks" / name, root / name)
        if found:
            shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
            problems.append(f"{root.name}/{name} ({shown})")
    if problems:
        raise CommittedError(f"committed Terraform differs from a fresh synth: "
                             f"{'; '.join(problems)}; run `invoke synth` and commit {root.name}/")


def committed_release_pins(directory: Path) -> dict[str, str]:
    """What the released function committed in `directory` (the one the stack publishes versions
    of) would release, by the promotion gate's pin names (release/gate.py `release_pins`): the
    CodeSha256 of its archive (base64 SHA-256, Terraform's `source_code_hash`) and its shared
    settings fingerprint; {} when the stack has none."""
    stack = json.loads((directory / STACK_FILE).read_text())
    for function in stack.get("resource", {}).get("aws_lambda_function", {}).values():
        archive = directory / str(function.get("filename", ""))
        if function.get("publish") is True and archive.is_file():
            variables = function.get("environment", {}).get("variables", {})
            return {"code": base64.b64encode(hashlib.sha256(archive.read_bytes()).digest()
                                             ).decode(),
                    "shared_settings": str(variables.get(SHARED_SETTINGS_VARIABLE, ""))}
    return {}


def read_phase(directory: Path) -> dict[str, object]:
    path = directory / PHASE_FILE
    if not path.is_file():
        return {"canary_weight": 0, "stable_version": ""}
    return json.loads(path.read_text())


def write_phase(directory: Path, variables: Mapping[str, object]) -> Path:
    path = directory / PHASE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(variables), indent=2) + "\n")
    return path


def commit_phase(directory: Path, variables: Mapping[str, object], message: str,
                 body: str = "") -> str | None:
    """Write the phase file and commit only it; returns the new commit id (None if unchanged)."""
    path = write_phase(directory, variables)
    relative = path.name  # git runs in `directory`, in whatever repository holds it

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True)
        except FileNotFoundError:
            raise CommittedError(f"git is not installed: install it, or commit {path} by "
                                 "hand") from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["exit " + str(result.returncode)])[-1]
            raise CommittedError(f"git {args[0]} failed ({detail}); {path} is written, "
                                 "commit it by hand")
        return result.stdout.strip()

    if not git("status", "--porcelain", "--", relative):
        return None
    git("add", "--", relative)
    # Only this path goes into the commit, whatever else is staged.
    git("commit", "--quiet", "-m", message, *(["-m", body] if body else []), "--", relative)
    return git("rev-parse", "--short", "HEAD")


# What a phase commit says it does (its message: "release(<env>): <text>").
PHASE_TEXT = {
    Phase.DEPLOY: "deploy (new version idle, stable v{stable})",
    Phase.CANARY: "canary {percent:g} % on the new version, stable v{stable}",
    Phase.PROMOTE: "promote the new version (blue-green switch from v{stable})",
    Phase.ROLLBACK: "rollback to v{stable}",
}


@dataclass(frozen=True)
class PhaseCommit:
    environment: str
    phase: Phase
    text: str
    commit: str | None  # None: the phase file already held this phase
    # What the promotion gate found or why it was skipped ("" where it guards nothing).
    gate: str = ""

    def summary_line(self) -> str:
        where = f"{committed_root().name}/{self.environment}/{PHASE_FILE}"
        if self.commit is None:
            line = (f"{self.phase} {self.environment}: {where} already holds this phase, "
                    "nothing to commit")
        else:
            line = (f"{self.phase} {self.environment}: committed {self.commit} "
                    f"\"release({self.environment}): {self.text}\" ({where}); push it for the "
                    "workspace to apply")
        return f"{line}; {self.gate}" if self.gate else line


def commit_release_phase(config: ProjectConfig, environment: EnvironmentConfig, kind: Phase,
                         weight: float | None = None, stable_version: str = "auto", *,
                         skip_gate: str = "",
                         on_status: Callable[[str], None] = lambda text: None) -> PhaseCommit:
    """The phase as a commit of `terraform/<env>/phase.auto.tfvars.json` alone, for a
    VCS-driven Terraform Cloud workspace to apply. `stable_version` "auto" reads it from the
    live alias.

    Where environments.toml declares a promotion gate, a phase that gives the candidate (the
    newest version AWS has published) traffic is checked first, as when invoke applies it
    (release/gate.py); a refusal raises before anything is written. `skip_gate` (a reason)
    skips that check and sets the stack's `promotion_gate_override` in the phase file."""
    directory = committed_root() / environment.name
    synthesis.refresh(config, on_status=on_status)
    stale = differences(environment.stack_dir, directory)
    if stale:
        raise CommittedError(
            f"{committed_root().name}/{environment.name} is stale ({stale[0]}): run `invoke synth` "
            "and commit it first, so that the phase commit holds only the phase")
    upstream = (config.environment(environment.promotion.after)
                if environment.promotion is not None else None)
    gated = upstream is not None and not skip_gate and gate.gives_candidate_traffic(
        kind, 1.0 if kind == Phase.PROMOTE else weight)
    live: Routing | None = None
    if stable_version == "auto" or kind == Phase.DEPLOY:
        try:
            aws.preflight_credentials(environment.region)
            live = aws.read_alias(aws.client("lambda", environment.region),
                                  environment.function_name, ALIAS_NAME).routing
        except aws.AwsError as error:
            if gated and upstream is not None:  # --stable-version would not do: the gate reads AWS
                gate.require_credentials(environment, upstream)
            # A rollback returns to the committed stable version: it needs no live alias.
            if stable_version == "auto" and kind != Phase.ROLLBACK:
                raise PhaseInputError(f"cannot read the live alias ({error}); pass "
                                      "--stable-version N") from None
    variables = plan_committed(kind, read_phase(directory), live, weight,
                               None if stable_version == "auto" else stable_version)
    if gated and upstream is not None:
        on_status(f"promotion gate: reading {environment.name}'s candidate and {upstream.name}'s "
                  "alias, code and alarms")
    checked = gate.check_commit(environment, upstream, kind, variables.canary_weight, live,
                                skip_gate=skip_gate,
                                committed_pins=committed_release_pins(directory),
                                where=f"{committed_root().name}/{environment.name}")
    text = PHASE_TEXT[kind].format(percent=variables.canary_weight * 100,
                                   stable=variables.stable_version or "(none)")
    phase_variables = {**variables.as_terraform(),
                       **gate.override_variables(environment, checked.skipped)}
    commit = commit_phase(directory, phase_variables, f"release({environment.name}): {text}",
                          body=checked.line())
    return PhaseCommit(environment.name, kind, text, commit, gate=checked.line())
