"""The committed Terraform: each environment's synthesized stack under `terraform/<env>/`, for
runs that cannot synthesize (Terraform Cloud VCS-driven workspaces have no Python or Node).

The committed form is the synthesized stack directory (`cdk.tf.json` plus its `assets/`: the
function archive and the traffic-policy module, all referenced by relative paths) without its
backend: the workspace that runs it keeps the state. Next to it, `phase.auto.tfvars.json` holds
the phase (`canary_weight`, `stable_version`); Terraform loads it by itself, so changing the
phase is a one-file commit that a pull request shows and reviews like code.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Mapping

from release.config import PROJECT_ROOT, ProjectConfig



def committed_root() -> Path:
    """`terraform/` in the project ($SAFE_RELEASE_TERRAFORM_DIR elsewhere, e.g. in tests)."""
    return Path(os.environ.get("SAFE_RELEASE_TERRAFORM_DIR") or PROJECT_ROOT / "terraform")

PHASE_FILE = "phase.auto.tfvars.json"
STACK_FILE = "cdk.tf.json"
# Only these come from the synth; everything else in a stack directory (.terraform, plans, local
# state) is a by-product of running Terraform there.
SYNTHESIZED = (STACK_FILE, "assets")


class CommittedError(Exception):
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
    changed = sorted(name for name in wanted.keys() & present.keys() if wanted[name] != present[name])
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
        raise CommittedError(f"committed Terraform differs from a fresh synth: {'; '.join(problems)}; "
                             f"run `invoke synth` and commit {root.name}/")


def read_phase(directory: Path) -> dict[str, object]:
    path = directory / PHASE_FILE
    return json.loads(path.read_text()) if path.is_file() else {"canary_weight": 0, "stable_version": ""}


def write_phase(directory: Path, variables: Mapping[str, object]) -> Path:
    path = directory / PHASE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(variables), indent=2) + "\n")
    return path


def commit_phase(directory: Path, variables: Mapping[str, object], message: str) -> str | None:
    """Write the phase file and commit only it; returns the new commit id (None if unchanged)."""
    path = write_phase(directory, variables)
    relative = path.name  # git runs in `directory`, in whatever repository holds it

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True)
        except FileNotFoundError:
            raise CommittedError(f"git is not installed: install it, or commit {path} by hand") from None
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or ["exit " + str(result.returncode)])[-1]
            raise CommittedError(f"git {args[0]} failed ({detail}); {path} is written, "
                                 "commit it by hand")
        return result.stdout.strip()

    if not git("status", "--porcelain", "--", relative):
        return None
    git("add", "--", relative)
    # Only this path goes into the commit, whatever else is staged.
    git("commit", "--quiet", "-m", message, "--", relative)
    return git("rev-parse", "--short", "HEAD")
