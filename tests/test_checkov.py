"""checkov over every synthesized stack: no failed check, and every skipped check explained.

checkov runs from its own virtual environment (.tools/checkov, made by scripts/install-checkov):
its pinned dependencies clash with the project's.
"""

import json
import os
import re
import subprocess

import pytest
import yaml

from conftest import PROJECT_ENVIRONMENTS, PROJECT_ROOT

CHECKOV = PROJECT_ROOT / ".tools" / "checkov" / "bin" / "checkov"
CONFIG = PROJECT_ROOT / ".checkov.yaml"
# The comment line right above each `- <check id>` entry: `# <check id> "<check name>": <reason>`.
REASON_COMMENT = re.compile(r'#\s*(?P<check_id>\S+)\s+"(?P<name>[^"]+)":\s*(?P<reason>\S.{9,})')


def run_checkov(stack_dir) -> dict:
    if not CHECKOV.exists():
        pytest.fail(f"{CHECKOV.relative_to(PROJECT_ROOT)} is missing: run scripts/install-checkov")
    result = subprocess.run(
        [str(CHECKOV), "-d", str(stack_dir), "--framework", "terraform_json", "--skip-download",
         "--config-file", str(CONFIG), "--output", "json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        # Offline: without it checkov asks PyPI for a newer release on every run.
        env={**os.environ, "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true"},
    )
    # checkov exits 1 when a check fails; any other failure means it did not scan.
    assert result.returncode in (0, 1), f"checkov crashed on {stack_dir}:\n{result.stderr[-3000:]}"
    return json.loads(result.stdout)


def test_no_synthesized_stack_fails_a_checkov_check(synth):
    failures = []
    for environment in PROJECT_ENVIRONMENTS:
        report = run_checkov(synth.stack_dir(environment))
        # A directory without a stack gives a bare summary and no results: that is no pass.
        assert "results" in report, f"checkov scanned nothing in the {environment} stack: {report}"
        assert report["summary"]["parsing_errors"] == 0, report["results"]["parsing_errors"]
        assert report["summary"]["passed"] > 0, f"checkov ran no check on the {environment} stack"
        failures += [
            f"{environment}: {check['check_id']} {check['resource']} ({check['check_name']})"
            for check in report["results"]["failed_checks"]]
    assert not failures, ("fix the stack in modules/, or skip the check in .checkov.yaml with a "
                          "reason:\n" + "\n".join(failures))


def has_reason_comment(lines: list[str], check_id: str) -> bool:
    entry = f"- {check_id}"
    if entry not in lines:
        return False
    comment = REASON_COMMENT.fullmatch(lines[lines.index(entry) - 1])
    return comment is not None and comment["check_id"] == check_id


def test_every_skipped_check_has_a_reason_comment():
    text = CONFIG.read_text()
    skipped = yaml.safe_load(text).get("skip-check") or []
    assert isinstance(skipped, list), "write skip-check as a YAML list: one `- <check id>` per line"
    lines = [line.strip() for line in text.splitlines()]
    unexplained = [check_id for check_id in skipped if not has_reason_comment(lines, check_id)]
    assert not unexplained, (f"skips without a reason: {unexplained}; put "
                             '`# <check id> "<check name>": <reason>` on the line above each')
