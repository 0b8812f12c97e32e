"""The typed environment configuration (`environments.toml`), validated when it is loaded.

Every environment (`dev`, `staging`, `prod`, or any a user adds) is one `[environments.<name>]`
table; `[defaults]` is merged under each of them. Each settings class checks its own fields in
`__post_init__`; the loader adds the environment name and the key path, so a mistake reads as
`environments.toml: prod.alarms.p99_duration_ms = -5: must be a number > 0`.

This module imports no cdktf: the stack (`modules/`) and the release tasks (`release/`) share it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import json
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from release.errors import ReleaseError
from release.weights import WeightError, check_weight

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG_PATH = PROJECT_ROOT / "environments.toml"
# Tests and other checkouts point the app and the tasks at another file with this variable.
CONFIG_PATH_VARIABLE = "SAFE_RELEASE_CONFIG"
# The alias API Gateway invokes; every phase changes its routing.
ALIAS_NAME = "production"
# The long-lived per-region account stack (API Gateway's CloudWatch Logs role) is
# `account-<region>`, synthesized beside the environments and never destroyed by them.
ACCOUNT_STACK_PREFIX = "account-"
# The stack's alias precondition fails a plan with this message when the phase variables ask for a
# canary of the stable version itself (no new code); the runner reports such a phase as refused.
NO_NEW_VERSION_MESSAGE = (
    "The canary_weight asks for a canary, but the candidate version already is the stable_version: "
    "publish new code first, or apply canary_weight = 0.")
# The alias precondition's refusal when a quarantined version would get traffic starts with this
# (modules/traffic_policy/main.tf builds the rest: version, rollback reason and time, the fix).
QUARANTINE_REFUSAL_PREFIX = "Quarantined version would get traffic"
# The promotion gate's plan-time refusal (modules/traffic_policy/main.tf) starts with this, and
# this Terraform variable (set by `--skip-gate REASON`) overrides it; release/gate.py is the rest.
PROMOTION_REFUSAL_PREFIX = "Promotion gate:"
PROMOTION_OVERRIDE_VARIABLE = "promotion_gate_override"
# Where the release tasks keep their lock files and history (default <project>/.release).
STATE_DIR_VARIABLE = "SAFE_RELEASE_STATE_DIR"


def quarantine_parameter_name(function_name: str) -> str:
    """The stack's SSM parameter holding every version a rollback took traffic from, as JSON
    {"<version>": {"reason", "at"}}: the alarm rollback function and `rollback --fast` add to it,
    the alias precondition refuses a plan that gives one of them traffic."""
    return f"/{function_name}/release/quarantined-versions"


def settings_parameter_name(function_name: str) -> str:
    """The stack's SSM parameter holding the environment's settings as JSON; every published
    version pins the parameter version it was released with (modules/settings.py)."""
    return f"/{function_name}/release/settings"


# The function's environment variable pinning the settings: `<parameter>:<parameter version>`.
SETTINGS_VARIABLE = "SETTINGS_PARAMETER"
# A standard-tier SSM parameter holds at most 4 KB.
SETTINGS_LIMIT_BYTES = 4096
SETTING_KEY_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,127}")
# Secrets Manager names (letters, digits and /_+=.@-) or full secret ARNs.
SECRET_REFERENCE_PATTERN = re.compile(
    r"[A-Za-z0-9/_+=.@-]{1,512}"
    r"|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}")
SettingValue = str | int | float | bool


def settings_json(settings: Mapping[str, SettingValue]) -> str:
    """The settings as the parameter stores them: compact JSON with sorted keys, so the same
    settings always give the same value (and no new parameter version)."""
    return json.dumps(dict(settings), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# The function's environment variable fingerprinting the shared settings ([defaults.settings]):
# what the promotion gate compares between environments, beside the code (release/gate.py).
SHARED_SETTINGS_VARIABLE = "SHARED_SETTINGS_SHA256"


def settings_sha256(settings: Mapping[str, SettingValue]) -> str:
    """Hex SHA-256 of the settings' JSON (`settings_json`): equal settings, equal fingerprint."""
    return hashlib.sha256(settings_json(settings).encode()).hexdigest()


def synth_output_dir() -> Path:
    """Where `cdktf synth` writes (cdktf itself honours CDKTF_OUTDIR the same way)."""
    return Path(os.environ.get("CDKTF_OUTDIR") or PROJECT_ROOT / "cdktf.out")


def release_state_dir() -> Path:
    return Path(os.environ.get(STATE_DIR_VARIABLE) or PROJECT_ROOT / ".release")

# CloudWatch Logs accepts only these retention periods (PutRetentionPolicy).
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
                      2192, 2557, 2922, 3288, 3653)
PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13", "python3.14")


class ConfigError(ReleaseError):
    """A configuration value that cannot be used; the message names where, what and the fix."""


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name} = {value!r}: {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _positive(name: str, value: Any) -> None:
    _require(_is_number(value) and value > 0, name, value, "must be a number > 0")


def _int_range(name: str, value: Any, low: int, high: int) -> None:
    _require(isinstance(value, int) and not isinstance(value, bool) and low <= value <= high,
             name, value, f"must be a whole number from {low} to {high}")


@dataclass(frozen=True)
class FunctionSettings:
    """The Lambda function: code folder under `functions/`, runtime and sizing."""

    source: str = "demo"
    handler: str = "handler.lambda_handler"
    runtime: str = "python3.13"
    memory_mb: int = 256
    timeout_seconds: int = 10
    # None leaves the function on the account's unreserved pool.
    reserved_concurrency: int | None = None
    tracing: bool = True
    log_retention_days: int = 14
    environment: Mapping[str, str] = field(default_factory=dict)
    # Share of requests the demo function fails on purpose, for rollback drills.
    fault_rate: float = 0.0

    def __post_init__(self) -> None:
        _require(bool(re.fullmatch(r"[A-Za-z0-9_-]+", self.source))
                 and (PROJECT_ROOT / "functions" / self.source).is_dir(),
                 "source", self.source, "must name a folder under functions/")
        _require(bool(re.fullmatch(r"[A-Za-z0-9_.]+\.[A-Za-z0-9_]+", self.handler)),
                 "handler", self.handler, "must look like module.function")
        _require(self.runtime in PYTHON_RUNTIMES, "runtime", self.runtime,
                 f"must be one of {', '.join(PYTHON_RUNTIMES)}")
        _int_range("memory_mb", self.memory_mb, 128, 10240)
        _int_range("timeout_seconds", self.timeout_seconds, 1, 900)
        if self.reserved_concurrency is not None:
            _int_range("reserved_concurrency", self.reserved_concurrency, 0, 100000)
        _require(self.log_retention_days in LOG_RETENTION_DAYS, "log_retention_days",
                 self.log_retention_days, "must be a CloudWatch Logs retention: "
                 + ", ".join(map(str, LOG_RETENTION_DAYS)))
        for key in self.environment:
            _require(bool(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key))
                     and not key.startswith("AWS_"),
                     "environment", key, "variable names are letters, digits and _, not AWS_*")
        check_weight(self.fault_rate, "fault_rate")


@dataclass(frozen=True)
class ApiSettings:
    """The API Gateway REST front door: one `GET /<path>` on one stage."""

    path: str = "demo"
    stage_name: str = "prod"
    throttling_rate_limit: float = 100.0
    throttling_burst_limit: int = 50
    # Stage access logs and execution logs. API Gateway writes them only once the account (per
    # region) has a CloudWatch Logs role: the account bootstrap stack (`invoke bootstrap`) sets it.
    # false where the account is managed elsewhere and has none.
    logging: bool = True

    def __post_init__(self) -> None:
        _require(bool(re.fullmatch(r"[A-Za-z0-9._~-]+", self.path)), "path", self.path,
                 "must be one non-empty path segment of letters, digits and . _ ~ -")
        _require(bool(re.fullmatch(r"[A-Za-z0-9_]{1,128}", self.stage_name)), "stage_name",
                 self.stage_name, "must be 1-128 letters, digits or _")
        _positive("throttling_rate_limit", self.throttling_rate_limit)
        _int_range("throttling_burst_limit", self.throttling_burst_limit, 1, 5000)


@dataclass(frozen=True)
class AlarmThresholds:
    """CloudWatch alarm thresholds; every alarm uses 60 s periods."""

    error_rate_percent: float = 1.0
    canary_error_rate_percent: float = 1.0
    p99_duration_ms: float = 1000.0
    throttles: float = 1.0
    api_5xx_rate_percent: float = 1.0
    evaluation_periods: int = 3
    datapoints_to_alarm: int = 2

    def __post_init__(self) -> None:
        for name in ("error_rate_percent", "canary_error_rate_percent", "p99_duration_ms",
                     "throttles", "api_5xx_rate_percent"):
            _positive(name, getattr(self, name))
        for name in ("error_rate_percent", "canary_error_rate_percent", "api_5xx_rate_percent"):
            _require(getattr(self, name) <= 100, name, getattr(self, name),
                     "must be a percentage from 0 (exclusive) to 100")
        _int_range("evaluation_periods", self.evaluation_periods, 1, 60)
        _int_range("datapoints_to_alarm", self.datapoints_to_alarm, 1, self.evaluation_periods)


@dataclass(frozen=True)
class RolloutSettings:
    """The environment's `invoke rollout` preset: traffic steps and bake time between them."""

    steps: tuple[float, ...] = (0.05, 0.25, 0.5, 1.0)
    bake_seconds: int = 300

    def __post_init__(self) -> None:
        validate_steps(self.steps, "steps")
        _int_range("bake_seconds", self.bake_seconds, 0, 86400)


def validate_steps(steps: tuple[float, ...], name: str = "steps") -> None:
    """Rollout steps are finite weights, strictly ascending, in (0, 1], ending at 1."""
    _require(len(steps) > 0, name, list(steps), "needs at least one step, e.g. [0.1, 1.0]")
    for index, step in enumerate(steps):
        check_weight(step, f"{name}[{index}]", zero=False)
    _require(all(a < b for a, b in zip(steps, steps[1:], strict=False)), name, list(steps),
             "steps must be strictly ascending")
    _require(steps[-1] == 1, name, list(steps), "the last step must be 1 (all traffic)")


@dataclass(frozen=True)
class BackendSettings:
    """Where Terraform keeps this environment's state.

    `local` (default): a file under `terraform-state/<env>/` in the project, outside the build
    output. `s3`: a bucket with S3-native locking (`use_lockfile`). `cloud`: a Terraform Cloud or
    Enterprise workspace.
    """

    type: Literal["local", "s3", "cloud"] = "local"
    bucket: str = ""
    key: str = ""
    region: str = ""
    organization: str = ""
    workspace: str = ""
    hostname: str = "app.terraform.io"
    # The API's base URL when it is not https://<hostname> (a Terraform Enterprise behind a proxy).
    address: str = ""

    def __post_init__(self) -> None:
        _require(self.type in ("local", "s3", "cloud"), "type", self.type,
                 "must be one of local, s3, cloud")
        _require(not self.address
                 or bool(re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", self.address)),
                 "address", self.address, "must be a URL such as https://tfe.example.com")
        if self.type == "s3":
            _require(bool(re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket)),
                     "bucket", self.bucket, "an s3 backend needs a valid bucket name")
        if self.type == "cloud":
            _require(bool(self.organization), "organization", self.organization,
                     "a cloud backend needs the Terraform Cloud organization")
            _require(bool(re.fullmatch(r"[A-Za-z0-9_-]{1,90}", self.workspace)), "workspace",
                     self.workspace,
                     "a cloud backend needs a workspace name (letters, digits, - _)")
        if self.region:
            _require(bool(REGION_PATTERN.fullmatch(self.region)), "region", self.region,
                     "must be an AWS region such as eu-west-1")


REGION_PATTERN = re.compile(r"[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]")

# A week: a soak longer than that is a release freeze, which this is not the tool for.
MAX_SOAK_MINUTES = 10080


@dataclass(frozen=True)
class PromotionSettings:
    """The gate before this environment's candidate gets traffic: it must be the code the `after`
    environment served at 100 % for `soak_minutes` without a release alarm (release/gate.py),
    approved by a named human when `approval = "required"`."""

    after: str
    soak_minutes: int = 30
    approval: Literal["required", "none"] = "required"
    # The plan-time half of the gate: the stack reads the `after` environment's alias with its own
    # AWS provider, which needs the same account and region. false for an `after` environment
    # elsewhere: then only `invoke` checks (with credentials that can read both).
    plan_check: bool = True

    def __post_init__(self) -> None:
        _require(bool(re.fullmatch(r"[a-z][a-z0-9-]{0,31}", self.after)), "after", self.after,
                 "must name another environment in environments.toml")
        _int_range("soak_minutes", self.soak_minutes, 0, MAX_SOAK_MINUTES)
        _require(self.approval in ("required", "none"), "approval", self.approval,
                 "must be one of required, none")


@dataclass(frozen=True)
class EnvironmentConfig:
    """One deployment environment: one CDKTF stack, one Terraform state, one `production` alias."""

    name: str
    region: str
    function_name: str
    # Marks an environment whose traffic is real users; drills refuse it without a flag.
    production: bool = False
    # Alarm-triggered rollback inside AWS (SNS + functions/rollback); opt out per environment.
    auto_rollback: bool = True
    tags: Mapping[str, str] = field(default_factory=dict)
    function: FunctionSettings = field(default_factory=FunctionSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    alarms: AlarmThresholds = field(default_factory=AlarmThresholds)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    backend: BackendSettings = field(default_factory=BackendSettings)
    # Non-secret configuration the function reads at run time, released like code: stored in one
    # SSM parameter, its version pinned by every published function version.
    settings: Mapping[str, SettingValue] = field(default_factory=dict)
    # Existing Secrets Manager secrets (names or ARNs) the function may read, each pinned to the
    # version current when its function version was published; values never enter Terraform.
    secrets: tuple[str, ...] = ()
    # The [defaults.settings] table as written, which every environment shares (`settings` is it
    # with the environment's own keys merged over). A change to it travels through the
    # environments, so the promotion gate compares its fingerprint; an environment's own keys are
    # its own and not compared. Set by the loader, not a key of environments.toml.
    shared_settings: Mapping[str, SettingValue] = field(default_factory=dict,
                                                        metadata={"derived": True})
    # None: no gate; releases here need no evidence from another environment.
    promotion: PromotionSettings | None = None

    def __post_init__(self) -> None:
        _require(bool(re.fullmatch(r"[a-z][a-z0-9-]{0,31}", self.name)), "name", self.name,
                 "environment names are 1-32 lowercase letters, digits or -, starting with a "
                 "letter")
        _require(not self.name.startswith(ACCOUNT_STACK_PREFIX), "name", self.name,
                 f"names starting with {ACCOUNT_STACK_PREFIX!r} belong to the account bootstrap "
                 "stacks")
        _require(bool(REGION_PATTERN.fullmatch(self.region)), "region", self.region,
                 "must be an AWS region such as eu-west-1")
        _require(bool(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", self.function_name)), "function_name",
                 self.function_name, "must be 1-64 letters, digits, - or _ (Lambda's rule)")
        for key in self.settings:
            _require(bool(SETTING_KEY_PATTERN.fullmatch(key)), "settings", key,
                     "keys are 1-128 letters, digits, _ . or -, starting with a letter")
        size = len(settings_json(self.settings).encode())
        _require(size <= SETTINGS_LIMIT_BYTES, "settings", f"{size} bytes of JSON",
                 f"must fit one standard SSM parameter, {SETTINGS_LIMIT_BYTES} bytes")
        for secret in self.secrets:
            _require(bool(SECRET_REFERENCE_PATTERN.fullmatch(secret)), "secrets", secret,
                     "must be a Secrets Manager secret name or ARN")
        _require(len(set(self.secrets)) == len(self.secrets), "secrets", list(self.secrets),
                 "must not name a secret twice")

    @property
    def stack_dir(self) -> Path:
        """Where `cdktf synth` writes this environment's Terraform and where it is applied."""
        return synth_output_dir() / "stacks" / self.name


def account_stack_name(region: str) -> str:
    return f"{ACCOUNT_STACK_PREFIX}{region}"


@dataclass(frozen=True)
class ProjectConfig:
    path: Path
    environments: Mapping[str, EnvironmentConfig]

    @property
    def account_stacks(self) -> dict[str, str]:
        """The account bootstrap stacks: one per region the environments use, name -> region."""
        return {account_stack_name(region): region
                for region in sorted({env.region for env in self.environments.values()})}

    def account_tags(self, region: str) -> dict[str, str]:
        """The tags every environment in `region` shares (those from [defaults], usually)."""
        tag_sets = [set(env.tags.items()) for env in self.environments.values()
                    if env.region == region]
        return dict(sorted(set.intersection(*tag_sets))) if tag_sets else {}

    @property
    def stack_names(self) -> list[str]:
        """Every stack the app synthesizes: the environments, then the account stacks."""
        return [*self.environments, *self.account_stacks]

    def environment(self, name: str) -> EnvironmentConfig:
        if name not in self.environments:
            known = ", ".join(sorted(self.environments))
            raise ConfigError(f"unknown environment {name!r}: known are {known} "
                              f"(add [environments.{name}] to {self.path.name})")
        return self.environments[name]


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint) if arg is not type(None))
    if origin is tuple:
        return "a list of strings" if typing.get_args(hint)[0] is str else "a list of numbers"
    if origin is collections.abc.Mapping:
        if typing.get_args(hint)[1] is str:
            return "a table of strings"
        return "a table whose values are each " + _describe(typing.get_args(hint)[1])
    return {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}.get(
        hint, str(hint))


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check one TOML value against a field's type; TOML integers are accepted as floats."""
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                # A table for an optional table (`promotion`): its own error names the key.
                return _coerce(arg, value, where)
            try:
                return _coerce(arg, value, where)
            except ConfigError:
                continue
    elif hint is type(None):
        if value is None:
            return None
    elif origin is Literal or hint is str:
        if isinstance(value, str):
            return value
    elif hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if _is_number(value):
            return float(value)
    elif origin is tuple:
        if isinstance(value, list):
            return tuple(_coerce(typing.get_args(hint)[0], item, where) for item in value)
    elif origin is collections.abc.Mapping:
        value_hint = typing.get_args(hint)[1]
        if isinstance(value, dict) and value_hint is not str:
            return {key: _coerce(value_hint, item, f"{where}.{key}") for key, item in value.items()}
        if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
            return dict(value)
    elif isinstance(hint, type) and dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _build(hint, value, where)
    raise ConfigError(f"{where} = {value!r}: must be {_describe(hint)}")


def _build(cls: type, data: Mapping[str, Any], where: str,
           derived: Mapping[str, Any] | None = None) -> Any:
    """`data` from the file; `derived`: the fields the loader sets itself (metadata "derived"),
    which the file may not set."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("derived")]
    for key in data:
        if key not in names:
            raise ConfigError(f"{where}.{key}: unknown key; allowed keys are {', '.join(names)}")
    values = {key: _coerce(hints[key], value, f"{where}.{key}")
              for key, value in {**data, **(derived or {})}.items()}
    try:
        return cls(**values)
    except (ConfigError, WeightError) as error:
        raise ConfigError(f"{where}.{error}") from None
    except TypeError:  # a required field is missing
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in values and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ConfigError(f"{where}: missing {', '.join(missing)}; "
                          "set it in the environment's table or in [defaults]") from None


def parse_config(text: str, path: Path) -> ProjectConfig:
    """Parse and validate the whole file; the first problem found is raised as ConfigError."""
    label = path.name
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{label}: not valid TOML ({error})") from None
    unknown = set(document) - {"defaults", "environments"}
    if unknown:
        raise ConfigError(f"{label}: unknown top-level table(s) {', '.join(sorted(unknown))}; "
                          "allowed are [defaults] and [environments.<name>]")
    defaults = document.get("defaults", {})
    environments = document.get("environments", {})
    if not isinstance(defaults, dict):
        raise ConfigError(f"{label}: defaults = {defaults!r}: must be a table, [defaults]")
    if not isinstance(environments, dict):
        raise ConfigError(f"{label}: environments = {environments!r}: "
                          "must be tables, one [environments.<name>] per environment")
    if not environments:
        raise ConfigError(f"{label}: no environments; add at least one [environments.<name>] table")
    shared_settings = defaults.get("settings", {})
    built = {}
    for name, table in environments.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{label}: environments.{name} = {table!r}: "
                              f"must be a table, [environments.{name}]")
        try:
            built[name] = _build(EnvironmentConfig, {**_merge(defaults, table), "name": name}, name,
                                 derived={"shared_settings": shared_settings})
        except ConfigError as error:
            raise ConfigError(f"{label}: {error}") from None
    for environment in built.values():
        _check_promotion(label, environment, built)
    return ProjectConfig(path=path, environments=built)


def _check_promotion(label: str, environment: EnvironmentConfig,
                     environments: Mapping[str, EnvironmentConfig]) -> None:
    """The `after` environment exists, is another one, and (for the plan-time check) shares the
    region; the account cannot be told from the file, so the README names that rule."""
    promotion = environment.promotion
    if promotion is None:
        return
    where = f"{label}: {environment.name}.promotion.after = {promotion.after!r}"
    if promotion.after not in environments or promotion.after == environment.name:
        others = ", ".join(sorted(set(environments) - {environment.name})) or "none"
        raise ConfigError(f"{where}: must name another environment (known: {others})")
    upstream = environments[promotion.after]
    if promotion.plan_check and upstream.region != environment.region:
        raise ConfigError(f"{where}: it is in {upstream.region}, {environment.name} in "
                          f"{environment.region}; the plan reads it with {environment.name}'s "
                          "provider, so set plan_check = false (invoke still checks)")


def load_config(path: Path | str | None = None) -> ProjectConfig:
    """Load `environments.toml` (or the file named by $SAFE_RELEASE_CONFIG)."""
    path = Path(path or os.environ.get(CONFIG_PATH_VARIABLE) or DEFAULT_CONFIG_PATH)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot read the environment config {path}: {error.strerror}; "
                          f"create it or set {CONFIG_PATH_VARIABLE}") from None
    except UnicodeDecodeError as error:  # TOML files are UTF-8; editors may save another encoding
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); "
                          "save it as UTF-8") from None
    return parse_config(text, path)
