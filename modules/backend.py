"""Where each environment's Terraform state lives, chosen in environments.toml."""

from cdktf import CloudBackend, LocalBackend, NamedCloudWorkspace, S3Backend, TerraformStack

from release.config import EnvironmentConfig

# Terraform runs in cdktf.out/stacks/<env>; this climbs back to the project root. The state stays
# outside cdktf.out, which a clean synth may wipe.
LOCAL_STATE_ROOT = "../../../terraform-state"


def local_state_backend(stack: TerraformStack, name: str) -> None:
    """State in terraform-state/<name>/ at the project root."""
    LocalBackend(stack, path=f"{LOCAL_STATE_ROOT}/{name}/terraform.tfstate")


def configure_backend(stack: TerraformStack, environment: EnvironmentConfig) -> None:
    backend = environment.backend
    if backend.type == "local":
        local_state_backend(stack, environment.name)
    elif backend.type == "s3":
        S3Backend(
            stack,
            bucket=backend.bucket,
            key=backend.key or f"lambda-safe-release/{environment.name}/terraform.tfstate",
            region=backend.region or environment.region,
            encrypt=True,
        )
        # S3-native locking; cdktf 0.21's S3Backend predates the option (DynamoDB locking is
        # deprecated).
        stack.add_override("terraform.backend.s3.use_lockfile", True)
    else:
        CloudBackend(
            stack,
            hostname=backend.hostname,
            organization=backend.organization,
            workspaces=NamedCloudWorkspace(backend.workspace),
        )
