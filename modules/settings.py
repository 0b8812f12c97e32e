"""The environment's run-time configuration, released with the function version that reads it.

The settings (`[environments.<name>.settings]`) live in one SSM parameter whose value Terraform
sets from the config. The function gets `SETTINGS_PARAMETER = <name>:<parameter version>`: a
new value makes a new parameter version, so the function's configuration changes and the same
apply publishes a new function version (see `pinned` for how the plan learns that), which then
goes through canary, smoke and bake like new code. A version keeps reading the parameter version
it was published with (GetParameter accepts the `name:version` selector), so a rollback brings
old config back with old code.

Secrets (`secrets = [...]`, existing Secrets Manager secrets) are pinned the same way: at plan
time `aws_secretsmanager_secret` gives a secret's ARN and `aws_secretsmanager_secret_versions`
its version ids and stages (neither reads the value, which so stays out of the plan and the
state), and `SECRETS` maps each secret to its ARN and the version id that was AWSCURRENT then.
"""

import json
from collections.abc import Mapping
from dataclasses import dataclass

from cdktf import Fn, TerraformLocal, Token
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_secret import DataAwsSecretsmanagerSecret
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_secret_versions import (
    DataAwsSecretsmanagerSecretVersions,
)
from cdktf_cdktf_provider_aws.data_aws_ssm_parameter import DataAwsSsmParameter
from cdktf_cdktf_provider_aws.ssm_parameter import SsmParameter
from constructs import Construct

from release.config import SETTINGS_LIMIT_BYTES, SETTINGS_VARIABLE, settings_parameter_name

# The function's environment variable mapping each secret to its ARN and pinned version id.
SECRETS_VARIABLE = "SECRETS"


@dataclass(frozen=True)
class SettingsConfig:
    function_name: str  # the parameter lives under /<function>/release/
    settings_json: str  # release.config.settings_json of the environment's settings
    secrets: tuple[str, ...] = ()  # Secrets Manager names or ARNs

    def __post_init__(self) -> None:
        if not self.function_name:
            raise ValueError("function_name = '': the settings parameter is named after the "
                             "released function")
        if len(self.settings_json.encode()) > SETTINGS_LIMIT_BYTES:
            raise ValueError(f"settings_json: {len(self.settings_json.encode())} bytes do not fit "
                             f"a standard SSM parameter ({SETTINGS_LIMIT_BYTES} bytes)")


class ReleaseSettings(Construct):
    def __init__(self, scope: Construct, id: str, config: SettingsConfig) -> None:
        super().__init__(scope, id)
        self.parameter = SsmParameter(
            self, "parameter",
            name=settings_parameter_name(config.function_name),
            type="String",
            tier="Standard",
            insecure_value=config.settings_json,
            description=(f"Settings of {config.function_name} (JSON, from environments.toml); "
                         "each function version pins the parameter version it was released with."),
        )
        # The parameter version as a data source that depends on the parameter: Terraform reads
        # it at plan time when the parameter is unchanged (same pin, no new function version),
        # and only during the apply when the value changes, so the pin is unknown in the plan and
        # the function publishes a new version pinned to the new parameter version. The
        # resource's own `version` would not do: the AWS provider plans it unchanged when
        # `insecure_value` changes (seen in tests/test_real_terraform.py: the config-only canary
        # was refused as "no new version"), so the function would keep the old pin.
        self.pinned = DataAwsSsmParameter(
            self, "pinned", name=self.parameter.name, with_decryption=False,
            depends_on=[self.parameter])
        pins = []
        arns = []
        key_arns = []
        services = []
        for index, secret in enumerate(config.secrets):
            # The secret's metadata (its full ARN, for IAM and GetSecretValue) and its versions.
            by_arn = secret.startswith("arn:")
            found = DataAwsSecretsmanagerSecret(
                self, f"secret_{index}", arn=secret if by_arn else None,
                name=None if by_arn else secret)
            versions = DataAwsSecretsmanagerSecretVersions(
                self, f"secret_{index}_versions", secret_id=found.arn)
            current = Token.as_string(
                f'${{one([for v in {versions.fqn}.versions : v.version_id '
                f'if contains(v.version_stages, "AWSCURRENT")])}}')
            # A JSON template rather than jsonencode(), which would escape the nested expression;
            # secret references (release.config.SECRET_REFERENCE_PATTERN), ARNs and version ids
            # hold no character JSON needs to escape.
            pins.append(f'{json.dumps(secret)}:{{"arn":"{found.arn}","version_id":"{current}"}}')
            arns.append(found.arn)
            # Any key in the secret's account and region: which one is the secret's own
            # business (DescribeSecret may name it by alias, which IAM cannot match), and the
            # statement's conditions pin the use to these secrets through Secrets Manager.
            # Terraform locals, so that the JSON policy only holds plain references (an expression
            # with string literals inside the policy's JSON would not be JSON before evaluation).
            arn_parts = Fn.split(":", found.arn)
            key_arns.append(TerraformLocal(self, f"secret_{index}_keys", Fn.format(
                "arn:%s:kms:%s:%s:key/*", [Fn.element(arn_parts, 1), Fn.element(arn_parts, 3),
                                           Fn.element(arn_parts, 4)])).as_string)
            services.append(TerraformLocal(self, f"secret_{index}_service", Fn.format(
                "secretsmanager.%s.amazonaws.com", [Fn.element(arn_parts, 3)])).as_string)
        self.secret_arns: tuple[str, ...] = tuple(arns)
        self.secret_key_arns: tuple[str, ...] = tuple(key_arns)
        self.secret_services: tuple[str, ...] = tuple(services)
        # The function's environment variables: changing any of them publishes a new version.
        self.variables: Mapping[str, str] = {
            SETTINGS_VARIABLE: f"{self.parameter.name}:{self.pinned.version}",
            **({SECRETS_VARIABLE: "{" + ",".join(pins) + "}"} if pins else {}),
        }

    def statements(self) -> tuple[Mapping[str, object], ...]:
        """What the function's execution role needs: read this parameter, and the configured
        secrets only. A secret under the default aws/secretsmanager key needs nothing more; one
        under a customer-managed key needs kms:Decrypt, allowed only through Secrets Manager and
        only for these secrets (the encryption context Secrets Manager sends names the secret:
        docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html)."""
        statements: list[Mapping[str, object]] = [{
            "Sid": "ReadReleasedSettings",
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": self.parameter.arn,
        }]
        if self.secret_arns:
            statements.append({
                "Sid": "ReadPinnedSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": list(self.secret_arns),
            })
            statements.append({
                "Sid": "DecryptPinnedSecrets",
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Resource": list(self.secret_key_arns),
                "Condition": {
                    "StringEquals": {"kms:ViaService": list(self.secret_services)},
                    "ForAnyValue:StringEquals": {
                        "kms:EncryptionContext:SecretARN": list(self.secret_arns)},
                },
            })
        return tuple(statements)
