"""The config each published function version was released with (modules/settings.py): read
from the version's own `SETTINGS_PARAMETER` (`<parameter>:<parameter version>`), for the smoke
check's expected config versions, for `invoke config`, and for the config pins that `invoke
status` shows and each history record keeps."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from release.aws import AwsError, LiveAlias, function_environment, read_parameter
from release.config import SETTINGS_VARIABLE
from release.context import ReleaseContext
from release.errors import ReleaseError


@dataclass(frozen=True)
class VersionConfig:
    """One function version's pinned settings; `parameter_version` "" for a version published
    before the stack pinned settings (it has no SETTINGS_PARAMETER)."""

    function_version: str
    parameter_version: str
    settings: dict[str, Any]
    # Secret -> the version id the function version reads (from its SECRETS variable).
    secret_versions: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"function_version": self.function_version,
                "parameter_version": self.parameter_version, "settings": self.settings,
                "secret_versions": self.secret_versions}


def settings_pin(environment: Mapping[str, str]) -> str:
    """The parameter version a function version's environment pins ("" when it pins none)."""
    selector = environment.get(SETTINGS_VARIABLE, "")
    return selector.rsplit(":", 1)[1] if ":" in selector else ""


def secret_pins(environment: Mapping[str, str]) -> dict[str, str]:
    """Secret -> the version id a function version's environment pins (its SECRETS variable)."""
    secrets = json.loads(environment.get("SECRETS") or "{}")
    return {name: str(pin.get("version_id", "")) for name, pin in secrets.items()}


def pinned_config_version(lambda_client: Any, function_name: str, version: str) -> str:
    """The parameter version `version` is pinned to ("" when it pins none)."""
    return settings_pin(function_environment(lambda_client, function_name, version))


def expected_config_versions(lambda_client: Any, function_name: str,
                             versions: tuple[str, ...]) -> dict[str, str]:
    """Function version -> the config version the smoke check must see it answer with, for the
    versions that pin one."""
    pinned = {version: pinned_config_version(lambda_client, function_name, version)
              for version in dict.fromkeys(versions) if version}
    return {version: config for version, config in pinned.items() if config}


def read_version_config(lambda_client: Any, ssm_client: Any, function_name: str,
                        version: str) -> VersionConfig:
    environment = function_environment(lambda_client, function_name, version)
    selector = environment.get(SETTINGS_VARIABLE, "")
    secret_versions = secret_pins(environment)
    if not selector:
        return VersionConfig(version, "", {}, secret_versions)
    parameter_version, value = read_parameter(ssm_client, selector)
    try:
        settings = json.loads(value)
    except ValueError:
        raise AwsError(f"SSM parameter {selector} is not JSON: it was changed outside "
                       "Terraform; run a deploy to write it again") from None
    return VersionConfig(version, parameter_version, settings, secret_versions)


def config_pins(lambda_client: Any, function_name: str,
                versions: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Function version -> what it is pinned to, for `invoke status` and the history records:
    {"settings_version": "2" (None: published before settings were pinned), "secrets": {secret:
    version id}}; one GetFunctionConfiguration per version, no SSM read.

    A version that cannot be read gets {"error": "<why>"} instead: showing the config must never
    fail a phase (its record is written whatever happened) or `invoke status`."""
    pins: dict[str, dict[str, Any]] = {}
    for version in dict.fromkeys(version for version in versions if version):
        try:
            environment = function_environment(lambda_client, function_name, version)
            secrets = secret_pins(environment)
        except (ReleaseError, ValueError) as error:  # ValueError: a SECRETS variable changed
            # outside Terraform into something that is not JSON
            pins[version] = {"error": str(error)}
            continue
        pins[version] = {"settings_version": settings_pin(environment) or None,
                         "secrets": secrets}
    return pins


def describe_pins(pins: Mapping[str, Mapping[str, Any]]) -> str:
    """One line, e.g. 'v3 settings v2, v4 settings v3 (secret api-key @ 9f1c...)', or 'v1 no
    pinned settings' for a version published before settings were pinned."""
    parts = []
    for version, pin in pins.items():
        if "error" in pin:
            parts.append(f"v{version} config unknown ({pin['error']})")
            continue
        settings = pin.get("settings_version")
        text = f"v{version} " + (f"settings v{settings}" if settings else "no pinned settings")
        secrets = pin.get("secrets") or {}
        if secrets:
            text += " (" + ", ".join(f"secret {name} @ {version_id}"
                                     for name, version_id in secrets.items()) + ")"
        parts.append(text)
    return ", ".join(parts)


@dataclass(frozen=True)
class ConfigView:
    """What `invoke config` shows: the settings of the live versions and the candidate's
    changes against the stable (primary) one."""

    environment: str
    primary: VersionConfig
    canary: VersionConfig | None

    def diff(self) -> dict[str, dict[str, Any]]:
        """key -> {"stable": old, "candidate": new} for every setting that differs (a missing
        one is None), against the primary; empty without a canary."""
        if self.canary is None:
            return {}
        old, new = self.primary.settings, self.canary.settings
        return {key: {"stable": old.get(key), "candidate": new.get(key)}
                for key in sorted({*old, *new}) if old.get(key) != new.get(key)}

    def to_dict(self) -> dict[str, Any]:
        return {"environment": self.environment, "primary": self.primary.to_dict(),
                "canary": self.canary.to_dict() if self.canary else None, "diff": self.diff()}

    def lines(self) -> list[str]:
        rows = [self._describe("primary", self.primary)]
        if self.canary is None:
            rows.append("canary: none (no candidate is getting traffic)")
            return rows
        rows.append(self._describe("canary", self.canary))
        changes = self.diff()
        if not changes:
            rows.append("diff: the candidate runs with the same settings")
        for key, change in changes.items():
            rows.append(f"  {key}: {json.dumps(change['stable'])} -> "
                        f"{json.dumps(change['candidate'])}")
        return rows

    @staticmethod
    def _describe(role: str, config: VersionConfig) -> str:
        pinned = (f"settings v{config.parameter_version}" if config.parameter_version
                  else "no pinned settings")
        secrets = "".join(f", secret {name} @ {version}"
                          for name, version in config.secret_versions.items())
        return (f"{role}: v{config.function_version} ({pinned}{secrets}) "
                f"{json.dumps(config.settings, sort_keys=True)}")


def read_config_view(lambda_client: Any, ssm_client: Any, environment: str,
                     live: LiveAlias) -> ConfigView:
    function_name = live.function_name
    routing = live.routing
    primary = read_version_config(lambda_client, ssm_client, function_name,
                                  routing.primary_version)
    canary = None
    for version in routing.additional_version_weights:
        canary = read_version_config(lambda_client, ssm_client, function_name, version)
    return ConfigView(environment, primary, canary)


def show_config(context: ReleaseContext) -> ConfigView:
    """`invoke config`: the settings of the versions the environment's alias serves now."""
    stack = context.read_stack()
    if stack is None:
        raise ReleaseError(f"{context.environment.name} is not deployed yet: run "
                           f"`invoke deploy --env {context.environment.name}` first")
    return read_config_view(context.clients["lambda"], context.clients["ssm"],
                            context.environment.name, context.live_alias(stack))
