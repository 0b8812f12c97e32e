"""The release dashboard in every environment's stack, asserted on the session's one synth."""

import json
import re

import pytest
from conftest import PROJECT_ENVIRONMENTS, PROJECT_ROOT

from release.config import load_config

CONFIG = load_config(PROJECT_ROOT / "environments.toml")
# `$${` is Terraform's escape for a literal `${` (CloudWatch's dynamic labels use that syntax).
TERRAFORM_ESCAPE = "$${"
ALARM_ARN = re.compile(r"^\$\{aws_cloudwatch_metric_alarm\.(\w+)\.arn\}$")


@pytest.fixture(scope="module", params=PROJECT_ENVIRONMENTS)
def env(request, synth):
    return CONFIG.environment(request.param), synth.stack(request.param)


def dashboard(stack: dict) -> dict:
    dashboards = list(stack["resource"]["aws_cloudwatch_dashboard"].values())
    assert len(dashboards) == 1
    return dashboards[0]


def widgets(stack: dict) -> dict[str, dict]:
    """Widgets by title, from the body as Terraform sends it to CloudWatch."""
    body = json.loads(dashboard(stack)["dashboard_body"].replace(TERRAFORM_ESCAPE, "${"))
    return {widget["properties"].get("title", widget["type"]): widget
            for widget in body["widgets"]}


def test_every_stack_has_a_dashboard_and_outputs_its_console_url(env):
    config, stack = env
    name = f"{config.function_name}-release"
    assert dashboard(stack)["dashboard_name"] == name
    output = stack["output"]["dashboard_url"]
    assert output["value"] == (f"https://{config.region}.console.aws.amazon.com/cloudwatch/home"
                               f"?region={config.region}#dashboards:name={name}")
    assert output["description"]


def test_the_body_is_canonical_and_holds_nothing_that_changes_per_apply(env):
    """Terraform compares the body as normalized JSON; a body that is the same bytes for the
    same config, and refers to nothing but the alarms' ARNs (fixed once they exist), re-plans
    clean after every release phase."""
    _, stack = env
    body = dashboard(stack)["dashboard_body"]
    assert body == json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    interpolations = re.findall(r"(?<!\$)\$\{[^}]*\}", body)
    alarm_resources = set(stack["resource"]["aws_cloudwatch_metric_alarm"])
    assert {ALARM_ARN.match(item)[1] for item in interpolations} == alarm_resources
    assert "var." not in body and "aws_lambda_function" not in body


def test_every_version_behind_the_alias_shows_without_a_code_change(env):
    config, stack = env
    fn = config.function_name
    search = (f"SEARCH('{{AWS/Lambda,FunctionName,Resource,ExecutedVersion}} FunctionName=\"{fn}\" "
              f"Resource=\"{fn}:production\" MetricName=")
    by_title = widgets(stack)
    invocations = by_title["Invocations by version (stacked: the traffic split)"]["properties"]
    assert invocations["stacked"] is True
    (query,), = invocations["metrics"]
    assert query["expression"] == search + "\"Invocations\"', 'Sum', 60)"
    assert query["label"] == "v${PROP('Dim.ExecutedVersion')}"
    (errors,), = by_title["Error rate by version (%)"]["properties"]["metrics"]
    assert errors["expression"] == f"100 * {search}\"Errors\"', 'Average', 60)"
    durations = by_title["Duration by version: p50 and p99 (ms)"]["properties"]["metrics"]
    assert [query["expression"] for (query,) in durations] == [
        search + f"\"Duration\"', '{stat}', 60)" for stat in ("p50", "p99")]
    for widget in by_title.values():
        if widget["type"] == "metric":
            assert widget["properties"]["region"] == config.region


def test_thresholds_are_the_alarms_own(env):
    """Each red line names its alarm(s) and sits at that alarm's threshold in the same stack."""
    _, stack = env
    alarms = {alarm["alarm_name"]: alarm
              for alarm in stack["resource"]["aws_cloudwatch_metric_alarm"].values()}
    drawn = set()
    for widget in widgets(stack).values():
        for line in widget["properties"].get("annotations", {}).get("horizontal", []):
            names = line["label"].removesuffix(" threshold").split(" / ")
            for name in names:
                alarm = alarms[name]
                # The 5XX alarm watches a 0..1 average; the graph shows percent.
                scale = 100 if alarm.get("metric_name") == "5XXError" else 1
                assert line["value"] == pytest.approx(alarm["threshold"] * scale), name
                drawn.add(name)
    assert drawn == set(alarms)


def test_the_alarm_widget_shows_every_release_alarm(env):
    _, stack = env
    (widget,) = [widget for widget in widgets(stack).values() if widget["type"] == "alarm"]
    arns = widget["properties"]["alarms"]
    assert {ALARM_ARN.match(arn)[1] for arn in arns} == set(
        stack["resource"]["aws_cloudwatch_metric_alarm"])


def test_api_gateway_widgets_watch_the_stage(env):
    config, stack = env
    by_title = widgets(stack)
    stage = ["ApiName", config.function_name, "Stage", config.api.stage_name]
    for title in ("API Gateway 5XX rate (%)", "API Gateway latency (ms)"):
        metrics = [query for query in by_title[title]["properties"]["metrics"]
                   if isinstance(query[0], str)]
        assert metrics and all(query[0] == "AWS/ApiGateway" and query[2:6] == stage
                               for query in metrics)


def test_widgets_fit_the_grid_without_overlapping(env):
    _, stack = env
    taken = set()
    for widget in widgets(stack).values():
        assert widget["x"] + widget["width"] <= 24
        cells = {(x, y) for x in range(widget["x"], widget["x"] + widget["width"])
                 for y in range(widget["y"], widget["y"] + widget["height"])}
        assert not cells & taken
        taken |= cells
