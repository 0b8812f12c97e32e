"""The names of release phases and of how they end, as the history file and `--json` write them.

String enums: a member is its string (`Phase.CANARY == "canary"`), so records written before
these types existed read back unchanged.
"""

from enum import StrEnum


class Phase(StrEnum):
    DEPLOY = "deploy"
    CANARY = "canary"
    PROMOTE = "promote"
    ROLLBACK = "rollback"
    # One step of `invoke rollout` below 100 % (its last step is a promote).
    ROLLOUT_STEP = "rollout-step"
    DRILL = "drill"
    DESTROY = "destroy"
    # `invoke release-quarantine`: a rolled-back version may get traffic again.
    RELEASE_QUARANTINE = "release-quarantine"


# Phases that move traffic towards the candidate: a failed check sends traffic back.
FORWARD_PHASES = frozenset({Phase.CANARY, Phase.PROMOTE, Phase.ROLLOUT_STEP})


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled-back"
    FAILED = "failed"
    # Nothing applied: the stack's precondition refused the phase.
    REFUSED = "refused"
    # A rollout stopped on an inconclusive analysis and waits for a human.
    PAUSED = "paused"
    # The operator pressed Ctrl-C (traffic stays where it was).
    INTERRUPTED = "interrupted"
