"""Lifting the quarantine: letting a version that a rollback took traffic from get traffic again.

The quarantine itself lives in AWS (modules/quarantine.py; written by the alarm rollback function
and `rollback --fast`), where every plan reads it. Lifting it is a deliberate act, so it is one
explicit command and a record in the release history.
"""

from __future__ import annotations

import time
from typing import Any

from release import aws
from release.aws import LiveAlias, QuarantineEntry
from release.errors import ReleaseError
from release.history import PhaseRecord, ReleaseHistory
from release.lock import current_caller, utc_timestamp
from release.phases import StackState


class QuarantineInputError(ReleaseError):
    """The version to lift is not one, or the stack has no quarantine."""


def parse_version(value: str) -> str:
    """A published version number from --version."""
    version = str(value).strip().removeprefix("v")
    if not version.isdigit():
        raise QuarantineInputError(f"--version {value!r} is not a published version: pass its "
                                   "number, e.g. --version 7 (`invoke status` lists the "
                                   "quarantined ones)")
    return version


def lift(environment: str, state: StackState, live: LiveAlias | None, ssm_client: Any,
         history: ReleaseHistory, version: str) -> tuple[QuarantineEntry, PhaseRecord]:
    """Take `version` out of the stack's quarantine and record who did it."""
    started = time.monotonic()
    parameter = state.outputs.get("quarantine_parameter")
    if not state.deployed or not parameter:
        raise QuarantineInputError(f"{environment} has no quarantine yet: run `invoke deploy "
                                   f"--env {environment}` (stacks applied before the quarantine "
                                   "existed get it with their next apply)")
    lifted = aws.lift_quarantine(ssm_client, parameter, version)
    routing = (live.routing if live else state.routing)
    routing_dict = routing.to_dict() if routing else {}
    record = PhaseRecord(
        time=utc_timestamp(), environment=environment, caller=current_caller(),
        phase="release-quarantine", routing_before=routing_dict, routing_after=routing_dict,
        candidate_version=state.candidate_version, stable_version=state.stable_version,
        smoke=None, alarms=None, outcome="succeeded",
        detail=f"lifted the quarantine of {lifted.describe()}; plans may give it traffic again",
        duration_seconds=round(time.monotonic() - started, 3))
    history.append(record)
    return lifted, record
