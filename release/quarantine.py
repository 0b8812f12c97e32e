"""Lifting the quarantine: letting a version that a rollback took traffic from get traffic again.

The quarantine itself lives in AWS (modules/quarantine.py; written by the alarm rollback function
and `rollback --fast`), where every plan reads it. Lifting it is a deliberate act, so it is one
explicit command and a record in the release history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from release import aws
from release.aws import LiveAlias, QuarantineEntry
from release.context import ReleaseContext
from release.errors import ReleaseError
from release.history import PhaseRecord, ReleaseHistory
from release.kinds import Outcome, Phase
from release.lock import current_caller, utc_timestamp
from release.outputs import StackOutputs


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


def lift(environment: str, stack: StackOutputs | None, live: LiveAlias | None, ssm_client: Any,
         history: ReleaseHistory, version: str, clock: Callable[[], float]
         ) -> tuple[QuarantineEntry, PhaseRecord]:
    """Take `version` out of the stack's quarantine and record who did it (`clock` times it)."""
    started = clock()
    if stack is None or not stack.quarantine_parameter:
        raise QuarantineInputError(f"{environment} has no quarantine yet: run `invoke deploy "
                                   f"--env {environment}` (stacks applied before the quarantine "
                                   "existed get it with their next apply)")
    lifted = aws.lift_quarantine(ssm_client, stack.quarantine_parameter, version)
    routing = (live.routing if live else stack.routing).to_dict()
    record = PhaseRecord(
        time=utc_timestamp(), environment=environment, caller=current_caller(),
        phase=Phase.RELEASE_QUARANTINE, routing_before=routing, routing_after=routing,
        candidate_version=stack.candidate_version, stable_version=stack.stable_version,
        smoke=None, alarms=None, outcome=Outcome.SUCCEEDED,
        detail=f"lifted the quarantine of {lifted.describe()}; plans may give it traffic again",
        duration_seconds=round(clock() - started, 3))
    history.append(record)
    return lifted, record


def run_release_quarantine(context: ReleaseContext, version: str) -> PhaseRecord:
    """`invoke release-quarantine`: lift `version` in the context's environment."""
    stack = context.read_stack()
    live = context.live_alias(stack) if stack else None
    return lift(context.environment.name, stack, live, context.clients["ssm"], context.history,
                version, context.clock)[1]
