"""`invoke report`: the self-contained HTML from the release history, its charts and its rules.

The history here is built by hand, one record per phase as the runner writes them, so each test
can say exactly what it expects; the end-to-end tests at the bottom use the release world.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fakes.release_world import FUNCTION
from release.config import parse_config
from release.history import ReleaseHistory
from release.kinds import Phase
from release.report import ReportOptions, write_report
from release.report_model import ReportInputError, parse_since, select, timeline
from release.runner import run_phase

CONFIG = parse_config("""
[environments.staging]
region = "eu-west-1"
function_name = "demo-staging"
alarms = { canary_error_rate_percent = 2, p99_duration_ms = 800 }
""", Path("environments.toml"))
ENVIRONMENT = CONFIG.environment("staging")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ALARM = "demo-staging-canary-error-rate"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def routing(primary: str, weights: dict[str, float] | None = None) -> dict:
    return {"primary_version": primary, "additional_version_weights": weights or {}}


def smoke(weight: float, share: float, interval: tuple[float, float], **changes) -> dict:
    fields = {"requests": 284, "completed": 284, "expected_weight": weight,
              "candidate_share": share, "share_interval": list(interval), "error_rate": 0.0,
              "latency_p50_ms": 180.0, "latency_p95_ms": 310.0, "latency_p99_ms": 402.0,
              "passed": True, "version_counts": {}}
    return {**fields, **changes}


def record(minutes: float, phase: str, before: dict, after: dict, candidate: str, stable: str, *,
           smoke: dict | None = None, outcome: str = "succeeded", detail: str = "",
           caller: str = "ana@laptop", seconds: float = 40.0, **extra) -> dict:
    time = START + timedelta(minutes=minutes)
    return {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ"), "environment": "staging",
            "caller": caller, "phase": phase, "routing_before": before, "routing_after": after,
            "candidate_version": candidate, "stable_version": stable, "smoke": smoke,
            "alarms": None, "outcome": outcome, "detail": detail, "duration_seconds": seconds,
            **extra}


ALARM_DETAIL = (f"rolled back by alarm {ALARM} at 2026-03-02T12:31:10.500+0000: "
                "v4 90 % + v5 10 % -> v4 100 %")


def release_day() -> list[dict]:
    """Every kind of phase and rollback, versions 4 to 6 as candidates."""
    step_smoke = smoke(0.5, 0.49, (0.44, 0.54), requests=596, completed=596)
    return [
        record(0, "deploy", routing("3"), routing("3"), "4", "3", smoke=smoke(0, 0, (0, 0.1))),
        record(5, "canary", routing("3"), routing("3", {"4": 0.1}), "4", "3",
               smoke=smoke(0.1, 0.095, (0.06, 0.15))),
        record(30, "canary", routing("3", {"4": 0.1}), routing("3"), "4", "3",
               smoke=smoke(0.25, 0.26, (0.21, 0.31), error_rate=0.05, passed=False),
               outcome="rolled-back", detail="error rate 5.0% exceeds 1.0%; rolled back"),
        record(90, "deploy", routing("3"), routing("3"), "5", "3", smoke=smoke(0, 0, (0, 0.1))),
        record(96, "rollout-step", routing("3"), routing("3", {"5": 0.5}), "5", "3",
               smoke=step_smoke),
        # The bake after that step passes, recorded with its verdict (a field records may gain).
        record(98, "rollout-step", routing("3", {"5": 0.5}), routing("3", {"5": 0.5}), "5", "3",
               smoke=step_smoke, seconds=120,
               verdict={"status": "pass", "reasons": ["version 5: error rate 0.00 %"]}),
        record(100, "promote", routing("3", {"5": 0.5}), routing("5"), "5", "3",
               smoke=smoke(1.0, 1.0, (0.9, 1.0), requests=50, completed=50)),
        record(200, "canary", routing("4"), routing("4", {"5": 0.1}), "5", "4",
               smoke=smoke(0.1, 0.11, (0.07, 0.16))),
        # Written when `invoke rollback` noticed, 20 minutes after the alarm fired.
        record(231 + 20, "rollback", routing("4", {"5": 0.1}), routing("4"), "5", "4",
               outcome="rolled-back", caller=f"alarm {ALARM}", detail=ALARM_DETAIL, seconds=0),
        record(252, "rollback", routing("4"), routing("4"), "5", "4",
               smoke=smoke(0, 0, (0, 0.1)), detail=f"acknowledged: {ALARM_DETAIL}"),
        record(300, "canary", routing("4"), routing("4", {"6": 0.1}), "6", "4",
               smoke=smoke(0.1, 0.1, (0.06, 0.15))),
        # `rollback --fast`: the alias was back on v4 before Terraform ran.
        record(310, "rollback", routing("4"), routing("4"), "6", "4",
               smoke=smoke(0, 0, (0, 0.1))),
        # Run twice: nothing to do, a plain rollback.
        record(315, "rollback", routing("4"), routing("4"), "6", "4",
               smoke=smoke(0, 0, (0, 0.1))),
    ]


def write_history(path: Path, records: list[dict]) -> ReleaseHistory:
    path.write_text("".join(json.dumps(item) + "\n" for item in records))
    return ReleaseHistory(path)


class StrictHtml(HTMLParser):
    """html.parser plus the checks it does not make: every element closed, in order."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
            "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []
        self.tags: Counter[str] = Counter()
        self.ids: Counter[str] = Counter()
        self.text: list[str] = []

    def _tag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        self.ids.update(value for name, value in attrs if name == "id" and value)

    def handle_starttag(self, tag, attrs):
        self._tag(tag, attrs)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self._tag(tag, attrs)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1] if self.open else None}>")
        else:
            self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def parsed(page: str) -> StrictHtml:
    parser = StrictHtml()
    parser.feed(page)
    parser.close()
    assert parser.problems == [] and parser.open == [], (parser.problems, parser.open)
    return parser


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The report of `release_day()` (history only) and its PNG."""
    directory = tmp_path_factory.mktemp("report")
    history = write_history(directory / "history.jsonl", release_day())
    written = write_report(ENVIRONMENT, directory / "report.html", history=history,
                           options=ReportOptions(metrics="off", png=True))
    return written, written.html.read_text(encoding="utf-8")


def test_the_report_is_one_well_formed_html_page_with_the_charts_inline(sample):
    written, page = sample
    document = parsed(page)
    assert page.startswith("<!DOCTYPE html>")
    assert document.tags["svg"] == 1  # the share chart; no CloudWatch chart with metrics off
    assert document.tags["table"] == 2  # rollbacks and bakes, phases
    assert max(document.ids.values()) == 1, "ids must be unique in the page"
    assert written.phases == 13 and written.rollbacks == 5
    assert written.png.read_bytes().startswith(PNG_SIGNATURE)
    assert written.png == written.html.with_suffix(".png")


def test_the_report_references_nothing_outside_itself(sample):
    """No script, stylesheet, font, image or link to fetch. Two http URLs do occur: the SVG and
    XLink namespace names on the inline <svg>. A namespace name identifies a vocabulary and is
    never fetched (the XML Namespaces recommendation, section 2.3), so they are allowed as
    xmlns declarations and nowhere else."""
    _, page = sample
    urls = re.findall(r"https?://[^\s\"'<>)]+", page)
    declared = re.findall(r"xmlns(?::\w+)?=\"(https?://[^\"]+)\"", page)
    assert sorted(urls) == sorted(declared)
    assert set(declared) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    for fetched in ("<script", "<link", "<img", "<iframe", "<object", "@import", " src="):
        assert fetched not in page
    assert set(re.findall(r"url\((.)", page)) <= {"#"}  # clip paths inside the SVG only
    assert re.findall(r"href=\"([^\"]*)\"", page) == [
        href for href in re.findall(r"href=\"([^\"]*)\"", page) if href.startswith("#")]


def test_the_chart_has_one_observed_series_per_candidate_version(sample):
    _, page = sample
    assert sorted(re.findall(r"id=\"share-observed-v(\d+)\"", page)) == ["4", "5", "6"]
    assert "id=\"share-intended-share\"" in page
    for version in ("4", "5", "6"):
        assert f"v{version}: observed share (smoke check, Wilson interval)" in page


def test_every_rollback_is_a_labelled_event(sample):
    _, page = sample
    kinds = Counter(re.findall(r"id=\"share-event-([a-z]+)-\d+\"", page))
    # The second rollback after the fast one found nothing to do: a plain `invoke rollback`.
    assert kinds == {"check": 1, "alarm": 1, "invoke": 2, "fast": 1}
    assert Counter(re.findall(r"id=\"share-label-([a-z]+)-\d+\"", page)) == kinds
    text = " ".join(parsed(page).text)
    for label in ("check failed: rolled back", "alarm rollback", "invoke rollback",
                  "rollback --fast"):
        assert label in text
    assert "id=\"share-bake-pass-0\"" in page and "bake: pass" in text


def test_the_page_shows_the_axes_units_and_the_phase_table(sample):
    _, page = sample
    text = " ".join(parsed(page).text)
    for words in ("requests on the candidate version (%)", "time (UTC)",
                  "Traffic on the candidate version: intended vs observed",
                  "latency p50 / p95 / p99 (ms)", "10 % → 9.5 % [6 %–15 %]",
                  "180 / 310 / 402", "version 5: error rate 0.00 %", "by ana@laptop",
                  "CloudWatch metrics were not asked for (--metrics off)."):
        assert words in text, words


def test_an_alarm_rollback_is_drawn_when_the_alarm_fired_not_when_it_was_noticed():
    phases = timeline(release_day())
    alarm = next(event for event in phases.events if event.kind == "alarm")
    assert alarm.time == datetime(2026, 3, 2, 12, 31, 10, 500000, tzinfo=UTC)
    assert [phase.start for phase in phases.phases] == sorted(p.start for p in phases.phases)


def test_routing_steps_go_up_at_a_phase_and_down_at_its_rollback():
    phases = timeline(release_day()[:3])
    shares = [share for _, share in phases.routing_steps()]
    # deploy at 0; canary to 10 %; canary to 25 %, rolled back to 0 at its end.
    assert shares == [0.0, 0.0, 0.1, 0.1, 0.25, 0.25, 0.0, 0.0]


def test_unknown_and_missing_fields_do_not_stop_the_report(tmp_path):
    records = [
        {"time": "2026-03-02T09:00:00Z", "environment": "staging", "phase": "canary",
         "candidate_version": "8", "smoke": {"expected_weight": 0.1, "candidate_share": "n/a"},
         "routing_after": {"primary_version": "7", "additional_version_weights": {"8": 0.1}},
         "approved_by": "lee", "config_version": {"id": 3}},
        {"environment": "staging", "phase": "promote"},  # no time: left out, and said so
        {"time": "2026-03-02T09:30:00+00:00", "environment": "staging", "phase": "rollback",
         "routing_before": "garbage", "routing_after": {"primary_version": "7",
                                                        "additional_version_weights": [1, 2]},
         "duration_seconds": "fast"},
    ]
    history = write_history(tmp_path / "history.jsonl", records)
    with history.path.open("a") as file:
        file.write("{not json\n")
    written = write_report(ENVIRONMENT, tmp_path / "report.html", history=history,
                           options=ReportOptions(metrics="off"))
    page = written.html.read_text()
    parsed(page)
    assert written.phases == 2
    assert "1 history records without a readable time are left out." in page


def test_since_and_last_select_the_phases():
    records = release_day()
    now = START + timedelta(minutes=320)
    assert len(select(records, since=parse_since("30m"), now=now)) == 3
    assert select(records, last=2) == records[-2:]
    assert select(records) == records
    assert parse_since("2w") == timedelta(weeks=2)
    for bad in ("", "24", "1.5h", "-3h", "0h", "3x"):
        with pytest.raises(ReportInputError, match="is not a duration"):
            parse_since(bad)


def test_an_environment_without_history_is_one_clear_error(tmp_path):
    history = write_history(tmp_path / "history.jsonl", release_day())
    other = parse_config('[environments.prod]\nregion = "eu-west-1"\nfunction_name = "p"\n',
                         Path("environments.toml")).environment("prod")
    with pytest.raises(ReportInputError, match="no release phases of prod in .*history.jsonl"):
        write_report(other, tmp_path / "report.html", history=history,
                     options=ReportOptions(metrics="off"))


def test_options_are_checked():
    with pytest.raises(ReportInputError, match="--since or --last, not both"):
        ReportOptions(since=timedelta(hours=1), last=3)
    with pytest.raises(ReportInputError, match="pass one of auto, on, off"):
        ReportOptions(metrics="sometimes")


# ---------------------------------------------------------------- CloudWatch, through moto

def test_metrics_auto_without_credentials_is_a_note_not_a_failure(tmp_path, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    history = write_history(tmp_path / "history.jsonl", release_day())
    written = write_report(ENVIRONMENT, tmp_path / "report.html", history=history)
    assert "no AWS credentials" in written.metrics_note
    page = written.html.read_text()
    assert parsed(page).tags["svg"] == 1 and "CloudWatch metrics are left out" in page


def test_metrics_from_cloudwatch_are_drawn_per_version_on_the_same_axis(tmp_path, fake_aws):
    records = release_day()
    for minute, (stable, candidate) in ((5, ("3", "4")), (6, ("3", "4")), (201, ("4", "5"))):
        at = START + timedelta(minutes=minute)
        fake_aws.put_version_metrics("demo-staging", stable, at, invocations=90, errors=0,
                                     durations_ms={120.0: 80, 300.0: 10})
        fake_aws.put_version_metrics("demo-staging", candidate, at, invocations=10, errors=1,
                                     durations_ms={150.0: 9, 900.0: 1})
    history = write_history(tmp_path / "history.jsonl", records)
    written = write_report(ENVIRONMENT, tmp_path / "report.html", history=history,
                           options=ReportOptions(metrics="on"))
    page = written.html.read_text()
    document = parsed(page)
    assert document.tags["svg"] == 2 and max(document.ids.values()) == 1
    metrics_chart = page[page.rindex("<svg"):]
    texts = set(re.findall(r">([^<>]+)</text>", metrics_chart))
    assert {"CloudWatch, per version behind the alias", "v3", "v4", "v5",
            "canary error-rate alarm threshold", "p99 Duration (ms)"} <= texts
    assert "v6" not in texts  # no invocations in CloudWatch
    assert "Lambda metrics of demo-staging:production per version" in page


# ---------------------------------------------------------------- the CLI, in the release world

def test_cli_report_on_the_release_worlds_history_writes_html_and_png(world, tmp_path):
    run_phase(world.context(), Phase.CANARY, 0.1)
    run_phase(world.context(), Phase.ROLLBACK)
    out = tmp_path / "out" / "dev.html"
    result = world.invoke("report", f"--out={out}", "--png", "--metrics=off")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (f"report dev: 3 phases, 1 rollbacks -> {out} and "
                                     f"{out.with_suffix('.png')}")
    page = out.read_text()
    assert set(re.findall(r"id=\"share-observed-v(\d+)\"", page)) == {"1", "2"}
    assert out.with_suffix(".png").read_bytes().startswith(PNG_SIGNATURE)


def test_cli_rollout_report_prints_the_path_and_puts_it_in_the_json(world, tmp_path):
    out = tmp_path / "rollout.html"
    result = world.invoke("rollout", "--steps=0.1,1", "--bake=0", "--requests=200", "--json",
                          f"--report={out}")
    assert result.returncode == 0, result.stderr
    output = json.loads(result.stdout)
    assert [step["phase"] for step in output["steps"]] == ["rollout-step", "promote"]
    assert output["report"]["html"] == str(out) and out.is_file()
    world.new_version()
    text = world.invoke("rollout", "--steps=0.5,1", "--bake=0", "--requests=200",
                        f"--report={out}")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines()[-1].startswith("report dev: ") and str(out) in text.stdout
    assert FUNCTION in out.read_text()


def test_cli_failed_rollout_still_writes_its_report(world, tmp_path):
    world.endpoint.configure(candidate_error_rate=0.6)
    out = tmp_path / "failed.html"
    result = world.invoke("rollout", "--steps=0.25,1", "--bake=0", "--requests=200", "--json",
                          f"--report={out}")
    assert result.returncode == 1
    output = json.loads(result.stdout)
    assert [step["outcome"] for step in output["steps"]] == ["rolled-back"]
    assert output["report"]["rollbacks"] == 1 and out.is_file()
    assert "check failed: rolled back" in out.read_text()


def test_cli_bad_report_arguments_are_one_line(world):
    for args, message in ((("--since=3x",), "is not a duration"),
                          (("--since=1h", "--last=2"), "--since or --last, not both"),
                          (("--env=prod",), "no release phases of prod")):
        result = world.invoke("report", *args)
        assert result.returncode == 1
        assert result.stderr.strip().startswith("error: ") and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
