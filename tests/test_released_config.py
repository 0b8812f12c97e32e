"""`invoke config`'s view of the live versions' settings, read from each version's pinned
SETTINGS_PARAMETER, and the smoke check's expected config versions."""

import json
from types import SimpleNamespace

import pytest
from botocore.exceptions import ClientError

from release.aws import AwsError, LiveAlias, Routing
from release.released_config import (
    ConfigView,
    VersionConfig,
    config_pins,
    describe_pins,
    expected_config_versions,
    read_config_view,
)

PARAMETER = "/fn/release/settings"


class FakeLambda:
    """GetFunctionConfiguration of published versions and their environment variables."""

    meta = SimpleNamespace(region_name="eu-west-1")

    def __init__(self, environments: dict[str, dict[str, str]]) -> None:
        self.environments = environments

    def get_function_configuration(self, FunctionName: str, Qualifier: str) -> dict:
        if Qualifier not in self.environments:
            raise ClientError({"Error": {"Code": "ResourceNotFoundException",
                                         "Message": "Function not found"}},
                              "GetFunctionConfiguration")
        return {"Environment": {"Variables": self.environments[Qualifier]}}


class FakeSsm:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get_parameter(self, Name: str) -> dict:
        return {"Parameter": {"Version": int(Name.rsplit(":", 1)[1]), "Value": self.values[Name]}}


LAMBDA = FakeLambda({
    "1": {"DEPLOY_ENVIRONMENT": "dev"},  # published before settings were pinned
    "2": {"SETTINGS_PARAMETER": f"{PARAMETER}:1"},
    "3": {"SETTINGS_PARAMETER": f"{PARAMETER}:2",
          "SECRETS": json.dumps({"api-key": {"arn": "arn:x", "version_id": "v-9"}})},
})
SSM = FakeSsm({f"{PARAMETER}:1": '{"greeting": "hej", "max_items": 20}',
               f"{PARAMETER}:2": '{"greeting": "bonjour", "beta": true}',
               f"{PARAMETER}:3": "not json"})


def live(routing: Routing) -> LiveAlias:
    return LiveAlias("fn", "production", routing, "rev")


def test_expected_config_versions_come_from_each_versions_pin():
    assert expected_config_versions(LAMBDA, "fn", ("3", "2")) == {"3": "2", "2": "1"}
    # A version without a pin is not checked; no stable version ("") is skipped.
    assert expected_config_versions(LAMBDA, "fn", ("1", "")) == {}


def test_a_canary_shows_both_versions_and_what_the_candidate_changes():
    view = read_config_view(LAMBDA, SSM, "dev", live(Routing("2", {"3": 0.1})))
    assert view.primary == VersionConfig("2", "1", {"greeting": "hej", "max_items": 20}, {})
    assert view.canary == VersionConfig("3", "2", {"greeting": "bonjour", "beta": True},
                                        {"api-key": "v-9"})
    assert view.diff() == {"beta": {"stable": None, "candidate": True},
                           "greeting": {"stable": "hej", "candidate": "bonjour"},
                           "max_items": {"stable": 20, "candidate": None}}
    assert view.lines() == [
        'primary: v2 (settings v1) {"greeting": "hej", "max_items": 20}',
        'canary: v3 (settings v2, secret api-key @ v-9) {"beta": true, "greeting": "bonjour"}',
        "  beta: null -> true",
        '  greeting: "hej" -> "bonjour"',
        "  max_items: 20 -> null",
    ]
    assert json.loads(json.dumps(view.to_dict()))["diff"]["greeting"] == {
        "stable": "hej", "candidate": "bonjour"}


def test_without_a_canary_there_is_nothing_to_diff():
    view = read_config_view(LAMBDA, SSM, "dev", live(Routing("1")))
    assert view == ConfigView("dev", VersionConfig("1", "", {}, {}), None)
    assert view.lines() == ["primary: v1 (no pinned settings) {}",
                            "canary: none (no candidate is getting traffic)"]


def test_a_parameter_changed_outside_terraform_is_one_line():
    lambda_client = FakeLambda({"4": {"SETTINGS_PARAMETER": f"{PARAMETER}:3"}})
    with pytest.raises(AwsError) as caught:
        read_config_view(lambda_client, SSM, "dev", live(Routing("4")))
    assert str(caught.value) == (f"SSM parameter {PARAMETER}:3 is not JSON: it was changed "
                                 "outside Terraform; run a deploy to write it again")


def test_config_pins_are_what_status_and_the_history_show_per_version():
    pins = config_pins(LAMBDA, "fn", ["3", "2", "1", "", "3"])  # "" and repeats: read once
    assert pins == {"3": {"settings_version": "2", "secrets": {"api-key": "v-9"}},
                    "2": {"settings_version": "1", "secrets": {}},
                    "1": {"settings_version": None, "secrets": {}}}
    assert describe_pins(pins) == ("v3 settings v2 (secret api-key @ v-9), v2 settings v1, "
                                   "v1 no pinned settings")


def test_a_version_whose_config_cannot_be_read_gets_the_reason_not_a_failure():
    lambda_client = FakeLambda({**LAMBDA.environments, "5": {"SECRETS": "{not json"}})
    pins = config_pins(lambda_client, "fn", ["2", "9", "5"])
    assert pins["2"] == {"settings_version": "1", "secrets": {}}
    assert pins["9"] == {"error": "version 9 of Lambda function fn not found in eu-west-1 "
                                  "(Function not found)"}
    assert pins["5"]["error"].startswith("Expecting property name")
    assert describe_pins({"9": pins["9"]}) == (
        "v9 config unknown (version 9 of Lambda function fn not found in eu-west-1 "
        "(Function not found))")
