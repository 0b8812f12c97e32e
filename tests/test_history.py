"""The append-only release history."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from release.aws import Routing
from release.history import PhaseRecord, ReleaseHistory
from release.status import Deployment, Status, history_lines

PROJECT = Path(__file__).resolve().parent.parent


def phase(environment: str = "prod", phase: str = "canary", outcome: str = "succeeded",
          **changes: Any) -> PhaseRecord:
    fields: dict[str, Any] = dict(
        time="2026-11-26T05:00:00Z", environment=environment, caller="alice@build-box", phase=phase,
        routing_before={"primary_version": "3", "additional_version_weights": {}},
        routing_after={"primary_version": "3", "additional_version_weights": {"4": 0.1}},
        candidate_version="4", stable_version="3",
        smoke={"requests": 150, "canary_hits": 14, "errors": 0},
        alarms={"demo-prod-errors": "OK"}, outcome=outcome, detail="canary at 10 %\nsmoke passed",
        duration_seconds=42.5)
    fields.update(changes)
    return PhaseRecord(**fields)


def test_append_then_read_round_trips(tmp_path):
    history = ReleaseHistory(tmp_path / ".release" / "history.jsonl")
    record = phase()
    history.append(record)
    assert history.read() == [record.to_dict()]
    assert len(history.path.read_text().splitlines()) == 1


def test_read_filters_by_environment_and_limits_to_the_newest(tmp_path):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    history.append(phase("prod", "canary"))
    history.append(phase("dev", "deploy"))
    history.append(phase("prod", "promote"))
    history.append(phase("prod", "rollback", outcome="rolled-back"))
    assert [r["phase"] for r in history.read("prod")] == ["canary", "promote", "rollback"]
    assert [r["phase"] for r in history.read("prod", limit=2)] == ["promote", "rollback"]
    assert [r["environment"] for r in history.read()] == ["prod", "dev", "prod", "prod"]
    assert history.read("prod", limit=0) == []
    assert history.last("prod")["outcome"] == "rolled-back"
    assert history.last("dev")["phase"] == "deploy"
    assert history.last("staging") is None


def test_missing_file_is_an_empty_history(tmp_path):
    history = ReleaseHistory(tmp_path / "nothing-yet.jsonl")
    assert history.read() == []
    assert history.last("prod") is None


def test_plain_mappings_are_appended_too(tmp_path):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    history.append({"environment": "dev", "phase": "deploy", "outcome": "failed"})
    assert history.last("dev") == {"environment": "dev", "phase": "deploy", "outcome": "failed"}


@pytest.mark.parametrize(("field", "value"), [("phase", "yolo"), ("outcome", "ok")])
def test_record_refuses_unknown_phase_or_outcome(field, value):
    with pytest.raises(ValueError, match=f"{field} '{value}' must be one of"):
        phase(**{field: value})


def test_corrupt_lines_are_skipped_with_a_warning(tmp_path, caplog):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    history.append(phase("prod", "canary"))
    with history.path.open("a") as damaged:
        damaged.write('{"environment": "prod", "phase": "prom\n')  # a write cut short
        damaged.write("[1, 2]\n")
    history.append(phase("prod", "promote"))
    with caplog.at_level(logging.WARNING, logger="release.history"):
        records = history.read("prod")
    assert [r["phase"] for r in records] == ["canary", "promote"]
    warnings = [r.getMessage() for r in caplog.records]
    assert any("line 2 is not valid JSON" in w for w in warnings)
    assert any("line 3 is not a record" in w for w in warnings)


def test_append_after_a_truncated_last_line_keeps_the_new_record(tmp_path):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    history.path.write_text('{"environment": "prod", "pha')  # crash mid-write, no newline
    history.append(phase("prod", "rollback", outcome="rolled-back"))
    assert [r["phase"] for r in history.read("prod")] == ["rollback"]


WRITER = """
import pathlib, sys
from release.history import ReleaseHistory
history = ReleaseHistory(sys.argv[1])
# Start together (both processes are up), so that the appends really overlap.
pathlib.Path(sys.argv[1] + "." + sys.argv[2]).touch()
while not all(pathlib.Path(sys.argv[1] + "." + env).exists() for env in "ab"):
    pass
for n in range(int(sys.argv[3])):
    history.append({"environment": sys.argv[2], "n": n, "detail": sys.argv[2] * 20000})
"""


def test_concurrent_appends_from_two_processes_keep_every_line_whole(tmp_path):
    path = tmp_path / "history.jsonl"
    count = 100
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), env, str(count)],
                                cwd=PROJECT)
               for env in ("a", "b")]
    assert [writer.wait() for writer in writers] == [0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 2 * count
    records = [json.loads(line) for line in lines]
    for env in ("a", "b"):
        mine = [r for r in records if r["environment"] == env]
        assert [r["n"] for r in mine] == list(range(count))
        assert all(r["detail"] == env * 20000 for r in mine)


def test_history_lines_show_each_versions_settings_and_old_records_still_print(tmp_path):
    history = ReleaseHistory(tmp_path / "history.jsonl")
    old = phase(environment="dev").to_dict()
    del old["config"], old["gate"]  # a record written before either existed
    history.append(old)
    history.append(phase(environment="dev", phase="rollback", outcome="rolled-back",
                         routing_after={"primary_version": "3", "additional_version_weights": {}},
                         config={"4": {"settings_version": "2", "secrets": {"key": "v-9"}},
                                 "3": {"settings_version": None, "secrets": {}}}))
    history.append(phase(environment="dev", config={"4": {"error": "AccessDenied"}}))
    assert history_lines(history.read("dev")) == [
        "2026-11-26T05:00:00Z canary succeeded by alice@build-box: v3 90 % + v4 10 %",
        "2026-11-26T05:00:00Z rollback rolled-back by alice@build-box: v3 100 %; config v4 "
        "settings v2 (secret key @ v-9), v3 no pinned settings - canary at 10 %",
        "2026-11-26T05:00:00Z canary succeeded by alice@build-box: v3 90 % + v4 10 %; config "
        "v4 config unknown (AccessDenied)",
    ]
    # `invoke status` prints a last phase without config pins as before.
    deployment = Deployment(
        endpoint="https://api", function_name="fn", candidate_version="4", stable_version="3",
        terraform_routing=Routing("3"), live_routing=Routing("3"), terraform_drift=[],
        rolled_back_by_alarm=None, alarms={}, quarantined={}, plan_refused=None,
        config={"3": {"settings_version": "7", "secrets": {}}})
    assert Status("dev", old, deployment).lines()[1:] == [
        "  candidate v4, stable v3", "  config: v3 settings v7", "  alarms: ",
        "  last phase: canary succeeded at 2026-11-26T05:00:00Z by alice@build-box"]
