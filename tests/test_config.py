"""environments.toml: the project's file, defaults merging, and one clear line for every mistake."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT
from release.config import (
    CONFIG_PATH_VARIABLE,
    LOG_RETENTION_DAYS,
    AlarmThresholds,
    ConfigError,
    load_config,
    parse_config,
    settings_json,
)

CONFIG_PATH = Path("/somewhere/environments.toml")
# Every environment in these tests inherits a valid region and function name, so that each case
# can override just the one value it is about.
DEFAULTS = '[defaults]\nregion = "eu-west-1"\nfunction_name = "demo-fn"\n'
THRESHOLDS = ("error_rate_percent", "canary_error_rate_percent", "p99_duration_ms", "throttles",
              "api_5xx_rate_percent")
PERCENTAGES = ("error_rate_percent", "canary_error_rate_percent", "api_5xx_rate_percent")
SHARE = "(a share: 0.1 is 10 %)"


def prod(*lines: str) -> str:
    """A config with one `prod` environment made of `lines` on top of DEFAULTS."""
    return DEFAULTS + "[environments.prod]\n" + "".join(line + "\n" for line in lines)


def config_error(text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, CONFIG_PATH)
    message = str(caught.value)
    assert "\n" not in message, f"not one line: {message!r}"
    return message


# --- the project's own file -------------------------------------------------------------------

@pytest.fixture(scope="module")
def project():
    return load_config(PROJECT_ROOT / "environments.toml")


def test_project_file_defines_dev_staging_and_prod(project):
    assert list(project.environments) == ["dev", "staging", "prod"]
    for name, environment in project.environments.items():
        assert environment.name == name
        assert environment.function_name == f"deploy-patterns-demo-{name}"
        assert environment.region == "eu-west-1"
        assert environment.stack_dir == PROJECT_ROOT / "cdktf.out" / "stacks" / name
    assert [e.production for e in project.environments.values()] == [False, False, True]


def test_project_prod_rolls_out_in_four_steps_with_five_minute_bakes(project):
    prod_config = project.environment("prod")
    assert prod_config.rollout.steps == (0.05, 0.25, 0.5, 1.0)
    assert prod_config.rollout.bake_seconds == 300
    assert prod_config.alarms == AlarmThresholds(
        error_rate_percent=1, canary_error_rate_percent=1, p99_duration_ms=1000, throttles=1,
        api_5xx_rate_percent=1, evaluation_periods=3, datapoints_to_alarm=2)
    assert (prod_config.function.memory_mb, prod_config.function.reserved_concurrency,
            prod_config.function.log_retention_days) == (512, 100, 90)


def test_project_dev_goes_all_at_once_and_keeps_the_default_thresholds(project):
    dev = project.environment("dev")
    assert dev.rollout.steps == (1.0,)
    assert dev.rollout.bake_seconds == 0
    assert dev.alarms.error_rate_percent == 5
    assert dev.alarms.p99_duration_ms == 3000
    assert dev.function.log_retention_days == 3
    # The rest of [defaults.function] is merged under dev's one-key override.
    assert (dev.function.memory_mb, dev.function.runtime, dev.function.timeout_seconds) == (
        256, "python3.13", 10)
    assert dev.tags == {"project": "lambda-safe-release", "managed-by": "cdktf"}


# --- defaults --------------------------------------------------------------------------------

def test_defaults_merge_under_environments_key_by_key_in_nested_tables():
    config = parse_config("""
[defaults]
region = "eu-west-1"
tags = { team = "payments", cost-centre = "42" }
function = { memory_mb = 512, timeout_seconds = 20 }
alarms = { p99_duration_ms = 800, throttles = 2 }

[environments.dev]
function_name = "fn-dev"

[environments.prod]
function_name = "fn-prod"
region = "us-east-1"
tags = { team = "payments-oncall" }
function = { memory_mb = 1024 }
alarms = { throttles = 1 }
""", CONFIG_PATH)
    dev, prod_config = config.environment("dev"), config.environment("prod")
    assert (dev.region, dev.function.memory_mb, dev.function.timeout_seconds) == (
        "eu-west-1", 512, 20)
    assert (prod_config.region, prod_config.function.memory_mb,
            prod_config.function.timeout_seconds) == ("us-east-1", 1024, 20)
    assert prod_config.tags == {"team": "payments-oncall", "cost-centre": "42"}
    assert (prod_config.alarms.p99_duration_ms, prod_config.alarms.throttles) == (800, 1)
    # Keys neither table sets keep the code's defaults.
    assert prod_config.function.runtime == "python3.13"
    assert prod_config.alarms.error_rate_percent == AlarmThresholds().error_rate_percent
    # Overriding one environment leaves the others (and the shared defaults) alone.
    assert dev.tags == {"team": "payments", "cost-centre": "42"}
    assert dev.alarms.throttles == 2


def test_settings_merge_over_the_defaults_and_secrets_are_none_by_default():
    config = parse_config(DEFAULTS + """
[defaults.settings]
greeting = "hello"
max_items = 10

[environments.dev]

[environments.prod]
secrets = ["prod/api-key"]
settings = { greeting = "hej", beta = true, ratio = 0.5 }
""", CONFIG_PATH)
    dev, prod_config = config.environment("dev"), config.environment("prod")
    assert (dev.settings, dev.secrets) == ({"greeting": "hello", "max_items": 10}, ())
    assert prod_config.settings == {"greeting": "hej", "max_items": 10, "beta": True,
                                    "ratio": 0.5}
    assert prod_config.secrets == ("prod/api-key",)
    # What the parameter stores: the same settings always give the same value.
    assert settings_json(prod_config.settings) == (
        '{"beta":true,"greeting":"hej","max_items":10,"ratio":0.5}')
    # What the environments share, and the promotion gate compares: [defaults.settings] as
    # written, whatever an environment sets itself.
    assert dev.shared_settings == prod_config.shared_settings == {"greeting": "hello",
                                                                  "max_items": 10}


def test_integers_are_accepted_where_numbers_are_expected():
    config = parse_config(prod("alarms = { p99_duration_ms = 750 }"), CONFIG_PATH)
    assert config.environment("prod").alarms.p99_duration_ms == 750.0
    assert isinstance(config.environment("prod").alarms.p99_duration_ms, float)


# --- one clear line per mistake --------------------------------------------------------------

BAD_VALUES = {
    "function name of 65 characters": (
        prod(f'function_name = "{"f" * 65}"'),
        f"environments.toml: prod.function_name = '{'f' * 65}': "
        "must be 1-64 letters, digits, - or _ (Lambda's rule)"),
    "function name with a space": (
        prod('function_name = "demo fn"'),
        "environments.toml: prod.function_name = 'demo fn': "
        "must be 1-64 letters, digits, - or _ (Lambda's rule)"),
    "function name with a slash": (
        prod('function_name = "demo/fn"'),
        "environments.toml: prod.function_name = 'demo/fn': "
        "must be 1-64 letters, digits, - or _ (Lambda's rule)"),
    **{f"region {region}": (
        prod(f'region = "{region}"'),
        f"environments.toml: prod.region = '{region}': must be an AWS region such as eu-west-1")
       for region in ("eu-west", "EU-WEST-1", "mars-1")},
    **{f"{name} = {value}": (
        prod(f"alarms = {{ {name} = {value} }}"),
        f"environments.toml: prod.alarms.{name} = {float(value)!r}: must be a number > 0")
       for name in THRESHOLDS for value in (0, -5)},
    "evaluation periods 0": (
        prod("alarms = { evaluation_periods = 0 }"),
        "environments.toml: prod.alarms.evaluation_periods = 0: "
        "must be a whole number from 1 to 60"),
    "more datapoints than periods": (
        prod("alarms = { evaluation_periods = 2, datapoints_to_alarm = 3 }"),
        "environments.toml: prod.alarms.datapoints_to_alarm = 3: "
        "must be a whole number from 1 to 2"),
    **{f"{name} above 100 %": (
        prod(f"alarms = {{ {name} = 150 }}"),
        f"environments.toml: prod.alarms.{name} = 150.0: "
        "must be a percentage from 0 (exclusive) to 100")
       for name in PERCENTAGES},
    "evaluation periods 61": (
        prod("alarms = { evaluation_periods = 61 }"),
        "environments.toml: prod.alarms.evaluation_periods = 61: "
        "must be a whole number from 1 to 60"),
    "datapoints 0": (
        prod("alarms = { datapoints_to_alarm = 0 }"),
        "environments.toml: prod.alarms.datapoints_to_alarm = 0: "
        "must be a whole number from 1 to 3"),
    "empty API path": (
        prod('api = { path = "" }'),
        "environments.toml: prod.api.path = '': "
        "must be one non-empty path segment of letters, digits and . _ ~ -"),
    "API path with a slash": (
        prod('api = { path = "demo/v2" }'),
        "environments.toml: prod.api.path = 'demo/v2': "
        "must be one non-empty path segment of letters, digits and . _ ~ -"),
    **{f"memory {memory}": (
        prod(f"function = {{ memory_mb = {memory} }}"),
        f"environments.toml: prod.function.memory_mb = {memory}: "
        "must be a whole number from 128 to 10240")
       for memory in (64, 10241)},
    **{f"timeout {seconds}": (
        prod(f"function = {{ timeout_seconds = {seconds} }}"),
        f"environments.toml: prod.function.timeout_seconds = {seconds}: "
        "must be a whole number from 1 to 900")
       for seconds in (0, 901)},
    "negative reserved concurrency": (
        prod("function = { reserved_concurrency = -1 }"),
        "environments.toml: prod.function.reserved_concurrency = -1: "
        "must be a whole number from 0 to 100000"),
    "function source that is no folder": (
        prod('function = { source = "nowhere" }'),
        "environments.toml: prod.function.source = 'nowhere': must name a folder under functions/"),
    "handler without a module": (
        prod('function = { handler = "handler" }'),
        "environments.toml: prod.function.handler = 'handler': must look like module.function"),
    "unknown runtime": (
        prod('function = { runtime = "python2.7" }'),
        "environments.toml: prod.function.runtime = 'python2.7': must be one of python3.11, "
        "python3.12, python3.13, python3.14"),
    "AWS_ environment variable": (
        prod('function = { environment = { AWS_REGION = "x" } }'),
        "environments.toml: prod.function.environment = 'AWS_REGION': "
        "variable names are letters, digits and _, not AWS_*"),
    "negative fault rate": (
        prod("function = { fault_rate = -0.5 }"),
        f"environments.toml: prod.function.fault_rate = -0.5: "
        f"must be a number from 0 to 1 {SHARE}"),
    "stage name with a dash": (
        prod('api = { stage_name = "my-stage" }'),
        "environments.toml: prod.api.stage_name = 'my-stage': must be 1-128 letters, digits or _"),
    "throttling rate 0": (
        prod("api = { throttling_rate_limit = 0 }"),
        "environments.toml: prod.api.throttling_rate_limit = 0.0: must be a number > 0"),
    **{f"throttling burst {burst}": (
        prod(f"api = {{ throttling_burst_limit = {burst} }}"),
        f"environments.toml: prod.api.throttling_burst_limit = {burst}: "
        "must be a whole number from 1 to 5000")
       for burst in (0, 5001)},
    "bake longer than a day": (
        prod("rollout = { bake_seconds = 86401 }"),
        "environments.toml: prod.rollout.bake_seconds = 86401: "
        "must be a whole number from 0 to 86400"),
    "backend address that is no URL": (
        prod('backend = { type = "cloud", organization = "acme", workspace = "w", '
             'address = "tfe.example.com" }'),
        "environments.toml: prod.backend.address = 'tfe.example.com': "
        "must be a URL such as https://tfe.example.com"),
    "backend region": (
        prod('backend = { type = "s3", bucket = "team-state", region = "europe" }'),
        "environments.toml: prod.backend.region = 'europe': "
        "must be an AWS region such as eu-west-1"),
    "environment named like an account stack": (
        DEFAULTS + "[environments.account-eu]\n",
        "environments.toml: account-eu.name = 'account-eu': names starting with 'account-' belong "
        "to the account bootstrap stacks"),
    "log retention 8": (
        prod("function = { log_retention_days = 8 }"),
        "environments.toml: prod.function.log_retention_days = 8: must be a CloudWatch Logs "
        "retention: " + ", ".join(map(str, LOG_RETENTION_DAYS))),
    "steps not ascending": (
        prod("rollout = { steps = [0.5, 0.25, 1.0] }"),
        "environments.toml: prod.rollout.steps = [0.5, 0.25, 1.0]: "
        "steps must be strictly ascending"),
    "steps repeating a weight": (
        prod("rollout = { steps = [0.5, 0.5, 1.0] }"),
        "environments.toml: prod.rollout.steps = [0.5, 0.5, 1.0]: "
        "steps must be strictly ascending"),
    "step of 0": (
        prod("rollout = { steps = [0, 0.5, 1] }"),
        f"environments.toml: prod.rollout.steps[0] = 0.0: must be a number in (0, 1] {SHARE}"),
    "step above 1": (
        prod("rollout = { steps = [0.5, 1.5] }"),
        f"environments.toml: prod.rollout.steps[1] = 1.5: must be a number in (0, 1] {SHARE}"),
    "negative step": (
        prod("rollout = { steps = [-0.1, 1.0] }"),
        f"environments.toml: prod.rollout.steps[0] = -0.1: must be a number in (0, 1] {SHARE}"),
    "steps not ending at 1": (
        prod("rollout = { steps = [0.1, 0.5] }"),
        "environments.toml: prod.rollout.steps = [0.1, 0.5]: "
        "the last step must be 1 (all traffic)"),
    "no steps": (
        prod("rollout = { steps = [] }"),
        "environments.toml: prod.rollout.steps = []: needs at least one step, e.g. [0.1, 1.0]"),
    "NaN step": (
        prod("rollout = { steps = [nan, 1.0] }"),
        "environments.toml: prod.rollout.steps = nan: must be a number"),
    "infinite threshold": (
        prod("alarms = { p99_duration_ms = inf }"),
        "environments.toml: prod.alarms.p99_duration_ms = inf: must be a number"),
    "string for a number": (
        prod('alarms = { p99_duration_ms = "500" }'),
        "environments.toml: prod.alarms.p99_duration_ms = '500': must be a number"),
    "string for an int": (
        prod('function = { memory_mb = "256" }'),
        "environments.toml: prod.function.memory_mb = '256': must be a whole number"),
    "bool for an int": (
        prod("function = { memory_mb = true }"),
        "environments.toml: prod.function.memory_mb = True: must be a whole number"),
    "bool for an optional int": (
        prod("function = { reserved_concurrency = false }"),
        "environments.toml: prod.function.reserved_concurrency = False: must be a whole number"),
    "float for an int": (
        prod("rollout = { bake_seconds = 1.5 }"),
        "environments.toml: prod.rollout.bake_seconds = 1.5: must be a whole number"),
    "number for a bool": (
        prod("production = 1"),
        "environments.toml: prod.production = 1: must be true or false"),
    "string for steps": (
        prod('rollout = { steps = "1" }'),
        "environments.toml: prod.rollout.steps = '1': must be a list of numbers"),
    "non-string tag": (
        prod("tags = { owner = 7 }"),
        "environments.toml: prod.tags = {'owner': 7}: must be a table of strings"),
    "s3 backend without bucket": (
        prod('backend = { type = "s3" }'),
        "environments.toml: prod.backend.bucket = '': an s3 backend needs a valid bucket name"),
    "cloud backend without organization": (
        prod('backend = { type = "cloud", workspace = "release-prod" }'),
        "environments.toml: prod.backend.organization = '': "
        "a cloud backend needs the Terraform Cloud organization"),
    "cloud backend without workspace": (
        prod('backend = { type = "cloud", organization = "acme" }'),
        "environments.toml: prod.backend.workspace = '': "
        "a cloud backend needs a workspace name (letters, digits, - _)"),
    "unknown backend type": (
        prod('backend = { type = "gcs" }'),
        "environments.toml: prod.backend.type = 'gcs': must be one of local, s3, cloud"),
    "fault rate above 1": (
        prod("function = { fault_rate = 1.5 }"),
        f"environments.toml: prod.function.fault_rate = 1.5: must be a number from 0 to 1 {SHARE}"),
    "setting that is a table": (
        prod("settings = { limits = { max = 3 } }"),
        "environments.toml: prod.settings.limits = {'max': 3}: must be a string or a whole "
        "number or a number or true or false"),
    "setting key with a space": (
        prod('settings = { "max items" = 3 }'),
        "environments.toml: prod.settings = 'max items': keys are 1-128 letters, digits, _ . or "
        "-, starting with a letter"),
    "settings over one SSM parameter": (
        prod('settings = { banner = "' + "x" * 4090 + '" }'),
        "environments.toml: prod.settings = '4103 bytes of JSON': must fit one standard SSM "
        "parameter, 4096 bytes"),
    "secret that is no name": (
        prod('secrets = ["db password"]'),
        "environments.toml: prod.secrets = 'db password': must be a Secrets Manager secret name "
        "or ARN"),
    "secret named twice": (
        prod('secrets = ["db", "db"]'),
        "environments.toml: prod.secrets = ['db', 'db']: must not name a secret twice"),
    "secrets not a list of strings": (
        prod("secrets = [1]"),
        "environments.toml: prod.secrets = 1: must be a string"),
    "environment name with capitals": (
        DEFAULTS + "[environments.Prod]\n",
        "environments.toml: Prod.name = 'Prod': environment names are 1-32 lowercase letters, "
        "digits or -, starting with a letter"),
    "missing function name": (
        '[environments.prod]\nregion = "eu-west-1"\n',
        "environments.toml: prod: missing function_name; "
        "set it in the environment's table or in [defaults]"),
    "missing region and function name": (
        "[environments.prod]\nproduction = true\n",
        "environments.toml: prod: missing region, function_name; "
        "set it in the environment's table or in [defaults]"),
}


@pytest.mark.parametrize(("text", "message"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_bad_value_is_one_line_naming_environment_field_value_and_what_is_allowed(text, message):
    assert config_error(text) == message


def test_first_bad_environment_is_named_even_when_others_are_fine():
    text = DEFAULTS + "[environments.dev]\n[environments.staging]\nrollout = { steps = [0.5] }\n"
    assert config_error(text).startswith("environments.toml: staging.rollout.steps = [0.5]: ")


UNKNOWN_KEYS = {
    "top-level": ("colour = 1\n" + prod(), "environments.toml: unknown top-level table(s) colour; "
                  "allowed are [defaults] and [environments.<name>]", None),
    "in an environment": (prod("colour = 1"), "environments.toml: prod.colour: unknown key; "
                          "allowed keys are ", "function_name"),
    "in a nested table": (prod("function = { memroy_mb = 512 }"),
                          "environments.toml: prod.function.memroy_mb: unknown key; "
                          "allowed keys are ", "memory_mb"),
    "in a nested table of [defaults]": (
        DEFAULTS + "alarms = { p99_ms = 500 }\n[environments.prod]\n",
        "environments.toml: prod.alarms.p99_ms: unknown key; allowed keys are ", "p99_duration_ms"),
    # Set by the loader from [defaults.settings]; the file cannot set it.
    "the loader's own field": (prod('shared_settings = { greeting = "hej" }'),
                               "environments.toml: prod.shared_settings: unknown key; ",
                               None),
}


@pytest.mark.parametrize(("text", "start", "suggestion"), UNKNOWN_KEYS.values(),
                         ids=UNKNOWN_KEYS.keys())
def test_unknown_key_is_named_with_the_allowed_keys(text, start, suggestion):
    message = config_error(text)
    assert message.startswith(start)
    if suggestion:
        assert suggestion in message.removeprefix(start).split(", ")


def test_invalid_toml_names_the_file_and_the_position():
    message = config_error(prod("function = { memory_mb = }"))
    assert message.startswith("environments.toml: not valid TOML (")
    assert "line 5" in message


@pytest.mark.parametrize("text", ["", "# nothing yet\n", DEFAULTS, "[environments]\n"],
                         ids=["empty", "comment only", "defaults only", "empty environments"])
def test_no_environments(text):
    assert config_error(text) == ("environments.toml: no environments; "
                                  "add at least one [environments.<name>] table")


@pytest.mark.parametrize(("text", "message"), [
    ('environments = "dev"\n', "environments.toml: environments = 'dev': "
     "must be tables, one [environments.<name>] per environment"),
    ("defaults = 3\n" + "[environments.prod]\n",
     "environments.toml: defaults = 3: must be a table, [defaults]"),
    (DEFAULTS + "[environments]\nprod = 3\n",
     "environments.toml: environments.prod = 3: must be a table, [environments.prod]"),
], ids=["environments", "defaults", "one environment"])
def test_tables_given_as_plain_values(text, message):
    assert config_error(text) == message


def test_unknown_environment_lists_the_known_ones_and_how_to_add_it(project):
    with pytest.raises(ConfigError) as caught:
        project.environment("qa")
    assert str(caught.value) == ("unknown environment 'qa': known are dev, prod, staging "
                                 "(add [environments.qa] to environments.toml)")


# --- finding the file ------------------------------------------------------------------------

def test_config_variable_points_at_another_file(tmp_path, monkeypatch):
    path = tmp_path / "team.toml"
    path.write_text(prod('function_name = "team-fn"'), encoding="utf-8")
    monkeypatch.setenv(CONFIG_PATH_VARIABLE, str(path))
    config = load_config()
    assert config.path == path
    assert config.environment("prod").function_name == "team-fn"


def test_without_the_variable_the_project_file_is_loaded(monkeypatch):
    monkeypatch.delenv(CONFIG_PATH_VARIABLE, raising=False)
    assert load_config().path == PROJECT_ROOT / "environments.toml"


@pytest.mark.parametrize("via_variable", [False, True], ids=["argument", "variable"])
def test_missing_file_names_the_path_and_the_variable(tmp_path, monkeypatch, via_variable):
    path = tmp_path / "nowhere" / "environments.toml"
    if via_variable:
        monkeypatch.setenv(CONFIG_PATH_VARIABLE, str(path))
    with pytest.raises(ConfigError) as caught:
        load_config(None if via_variable else path)
    assert str(caught.value) == (f"cannot read the environment config {path}: No such file or "
                                 "directory; create it or set SAFE_RELEASE_CONFIG")


def test_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "environments.toml"
    # Saved as Latin-1 by an editor: TOML files are UTF-8.
    path.write_bytes("# \xe9quipe paiements\n".encode("latin-1") + prod().encode())
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not UTF-8 text (")
    assert message.endswith("; save it as UTF-8")


def test_results_are_immutable(project):
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.environment("prod").alarms.p99_duration_ms = 1


# --- the CDKTF app validates before it loads cdktf -------------------------------------------

def test_app_with_a_bad_config_fails_at_once_with_one_line_and_writes_nothing(tmp_path):
    config = tmp_path / "environments.toml"
    config.write_text(prod("alarms = { p99_duration_ms = -5 }"), encoding="utf-8")
    # A cdktf that cannot be imported: if main.py loaded it before validating, the run would
    # end in an ImportError traceback instead of the one-line error.
    fake_packages = tmp_path / "fake-packages"
    (fake_packages / "cdktf").mkdir(parents=True)
    (fake_packages / "cdktf" / "__init__.py").write_text(
        'raise ImportError("cdktf imported before the config was validated")\n')
    outdir = tmp_path / "cdktf.out"
    env = {**os.environ, "SAFE_RELEASE_CONFIG": str(config), "CDKTF_OUTDIR": str(outdir),
           "PYTHONPATH": str(fake_packages)}

    result = subprocess.run([sys.executable, "main.py"], cwd=PROJECT_ROOT, env=env,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode != 0
    assert result.stderr.splitlines() == [
        "error: environments.toml: prod.alarms.p99_duration_ms = -5.0: must be a number > 0"]
    assert result.stdout == ""
    assert not outdir.exists()
