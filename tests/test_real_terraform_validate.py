"""`terraform validate` with the real AWS provider, for every synthesized stack and for every
committed terraform/<env> (the form a Terraform Cloud VCS run applies)."""

from __future__ import annotations

import os
import subprocess

import pytest
from conftest import PROJECT_ENVIRONMENTS, PROJECT_ROOT
from fakes.real_terraform import copy_stack, lay_overrides, real_terraform

# Minutes of real Terraform runs: `scripts/test -m "not slow"` leaves them out.
pytestmark = pytest.mark.slow

# The project's environments, conftest's EXTRA_ENVIRONMENTS (the S3 and cloud backends) and the
# account bootstrap stack of their region.
ACCOUNT_STACK = "account-eu-west-1"
SYNTHESIZED = (*PROJECT_ENVIRONMENTS, "s3-backed", "cloud-backed", ACCOUNT_STACK)


@pytest.fixture(scope="module")
def terraform(tmp_path_factory):
    return real_terraform(tmp_path_factory.mktemp("terraform-config"))


def validate(terraform, source, workdir) -> subprocess.CompletedProcess:
    stack = copy_stack(source, workdir)
    lay_overrides(stack, terraform, "http://127.0.0.1:9")  # never called: validate is offline
    env = {**os.environ, **terraform.env}
    init = subprocess.run([terraform.binary, "init", "-backend=false", "-input=false", "-no-color"],
                          cwd=stack, capture_output=True, text=True, env=env)
    assert init.returncode == 0, init.stderr
    return subprocess.run([terraform.binary, "validate", "-no-color"], cwd=stack,
                          capture_output=True, text=True, env=env)


@pytest.mark.parametrize("environment", SYNTHESIZED)
def test_synthesized_stack_is_valid_for_the_real_provider(terraform, synth, environment,
                                                          tmp_path):
    result = validate(terraform, synth.stack_dir(environment), tmp_path / environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success! The configuration is valid." in result.stdout


@pytest.mark.parametrize("environment", (*PROJECT_ENVIRONMENTS, ACCOUNT_STACK))
def test_committed_terraform_is_valid_for_the_real_provider(terraform, environment, tmp_path):
    result = validate(terraform, PROJECT_ROOT / "terraform" / environment, tmp_path / environment)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success! The configuration is valid." in result.stdout
