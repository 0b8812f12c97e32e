"""The promotion gate: before an environment's candidate gets traffic, it must be what the
`after` environment (environments.toml `promotion`) served at 100 % for `soak_minutes`, with none
of its release alarms in ALARM meanwhile; `approval = "required"` adds a named human.

The evidence comes from AWS, never from a local file, so whoever applies sees the same facts:
- the `after` environment's `production` alias (one version at 100 %, no weights) and that
  version's CodeSha256 and publication time (GetFunctionConfiguration);
- since when that version serves alone: the later of its publication and the end of the newest
  minute in the soak window in which the alias executed another version (Invocations per
  ExecutedVersion). Without traffic CloudWatch has no datapoints, and publication time stands;
- its release alarms (`<function>-*`): none may be in ALARM, and the soak counts from the newest
  state change of any of them (DescribeAlarms' StateTransitionedTimestamp; CloudWatch's alarm
  history would tell an ALARM->OK change from a harmless INSUFFICIENT_DATA->OK one, but the
  timestamp is read the same way everywhere, and erring means waiting longer, never less).

What is compared is a set of named pins (`release_pins`): the code package hash, and the
fingerprint of the shared settings ([defaults.settings], which every environment gets; a change
to it is released like code and travels through the environments). An environment's own
settings and secrets are its own by design and not compared. The Terraform half of the gate
(modules/promotion_gate.py) compares the same pins at plan time.
`decide` is a pure function of the evidence and the time, so tests give both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from release import aws
from release.aws import AlarmState, Routing, VersionCode
from release.config import (
    ALIAS_NAME,
    PROMOTION_OVERRIDE_VARIABLE,
    EnvironmentConfig,
    PromotionSettings,
)
from release.errors import ReleaseError
from release.kinds import Phase


class GateFlagError(ReleaseError):
    """--approved-by or --skip-gate that cannot be used, or a required approval missing."""


class GateRefused(ReleaseError):
    """The promotion gate refused a phase before anything was written or applied."""


def wall_clock() -> datetime:
    """The time the evidence is judged at (tests replace it)."""
    return datetime.now(UTC)


def release_pins(code: VersionCode) -> dict[str, str]:
    """What must match between the `after` environment and this one, by name (the same names
    as the stack's plan-time pins, modules/stack.py)."""
    return {"code": code.code_sha256, "shared_settings": code.shared_settings_sha256}


@dataclass(frozen=True)
class UpstreamEvidence:
    """What AWS shows about the `after` environment now."""

    environment: str
    routing: Routing
    pins: Mapping[str, str]
    # When its primary version began serving the alias's traffic alone (as far as AWS shows).
    serving_since: datetime
    alarms: tuple[AlarmState, ...]


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    # One line: why it refused, or what it found.
    detail: str
    upstream_environment: str
    upstream_version: str
    soaked_minutes: int

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "detail": self.detail,
                "after": self.upstream_environment, "after_version": self.upstream_version,
                "soaked_minutes": self.soaked_minutes}


def _short(pin: str) -> str:
    return pin[:12]


def decide(evidence: UpstreamEvidence, candidate_version: str, candidate_pins: Mapping[str, str],
           settings: PromotionSettings, now: datetime) -> GateDecision:
    """Whether the candidate may get traffic, from the evidence and the time."""
    name, routing = evidence.environment, evidence.routing
    version = routing.primary_version

    def refused(detail: str, soaked: int = 0) -> GateDecision:
        return GateDecision(False, detail, name, version, soaked)

    if routing.additional_version_weights:
        return refused(f"{name} serves {routing.describe()}, not one version at 100 %: promote "
                       f"or roll back {name} first")
    for pin, value in candidate_pins.items():
        upstream_value = evidence.pins.get(pin, "")
        if upstream_value != value:
            return refused(f"{name} serves {pin} {_short(upstream_value) or '(none)'} (v{version}) "
                           f"but this release is {pin} {_short(value)} (v{candidate_version}): "
                           f"release it in {name} first")
    firing = sorted(alarm.name for alarm in evidence.alarms if alarm.state == "ALARM")
    if firing:
        return refused(f"{name}'s alarm {', '.join(firing)} is in ALARM")
    since, reason = evidence.serving_since, f"{name} serves v{version}"
    for alarm in evidence.alarms:
        if alarm.changed > since:
            since, reason = alarm.changed, f"{name}'s alarm {alarm.name} changed state"
    soaked = max(int((now - since) / timedelta(minutes=1)), 0)
    if soaked < settings.soak_minutes:
        return refused(f"{reason} since {soaked} min; {settings.soak_minutes} needed", soaked)
    pins = ", ".join(f"{pin} {_short(value)}" for pin, value in evidence.pins.items())
    return GateDecision(True, f"{name} served v{version} ({pins}) at 100 % for {soaked} min "
                              "without an alarm", name, version, soaked)


def read_evidence(lambda_client: Any, cloudwatch_client: Any, upstream: EnvironmentConfig,
                  soak_minutes: int, now: datetime) -> UpstreamEvidence:
    """The `after` environment's alias, its version's pins, how long it served alone, alarms."""
    routing = aws.read_alias(lambda_client, upstream.function_name, ALIAS_NAME).routing
    code = aws.version_code(lambda_client, upstream.function_name, routing.primary_version)
    serving_since = code.published
    # Whole minutes, as CloudWatch rounds a StartTime itself: the datapoints start on them.
    window_start = max(code.published, now - timedelta(minutes=soak_minutes)).replace(
        second=0, microsecond=0)
    if window_start < now:
        other = aws.last_minute_of_other_versions(
            cloudwatch_client, upstream.function_name, ALIAS_NAME, routing.primary_version,
            window_start, now)
        if other is not None:
            serving_since = max(serving_since,
                                other + timedelta(seconds=aws.METRIC_PERIOD_SECONDS))
    return UpstreamEvidence(upstream.name, routing, release_pins(code), serving_since,
                            tuple(aws.alarms_named_after(cloudwatch_client,
                                                         upstream.function_name)))


def gate_flags(environment: EnvironmentConfig, approved_by: str, skip_gate: str, *,
               commit: bool, ask: Callable[[str], str] | None) -> tuple[str, str]:
    """(approver, skip reason) of a phase that gives the candidate traffic, from --approved-by
    and --skip-gate; `ask` prompts for the approver on a terminal (None without one)."""
    settings, name = environment.promotion, environment.name
    if settings is None:
        if approved_by or skip_gate:
            raise GateFlagError(f"{name} has no promotion gate (no promotion table in "
                                "environments.toml): drop --approved-by and --skip-gate")
        return "", ""
    if commit and approved_by:
        raise GateFlagError("--commit leaves the apply to the Terraform Cloud workspace, whose "
                            "manual apply is the approval: drop --approved-by "
                            "(docs/terraform-cloud.md)")
    if skip_gate and not skip_gate.strip():
        raise GateFlagError("--skip-gate needs a reason, e.g. --skip-gate \"hotfix INC-42\"")
    if approved_by and not approved_by.strip():
        raise GateFlagError("--approved-by needs the approver's name, e.g. --approved-by "
                            "\"Ada Lovelace\"")
    if commit:  # the approver is whoever confirms the workspace's run
        return "", skip_gate.strip()
    return approver(settings, name, approved_by, ask), skip_gate.strip()


def approver(settings: PromotionSettings, environment: str, approved_by: str,
             ask: Callable[[str], str] | None) -> str:
    """The named human who approves this release ("" when none is needed nor given).

    `ask` prompts on a terminal (None without one); the name typed is the approval."""
    name = approved_by.strip()
    if settings.approval == "none" or name:
        return name
    if ask is not None:
        name = ask(f"{environment} requires a named approval to release (after "
                   f"{settings.after}). Your name to approve, empty to stop: ").strip()
    if not name:
        raise GateFlagError(f"{environment} requires a named approval (promotion.approval = "
                            "\"required\"): pass --approved-by NAME")
    return name


# ---------------------------------------------------------------------- --commit (VCS mode)

def gives_candidate_traffic(kind: Phase, weight: float | None) -> bool:
    """Whether a committed phase can give the candidate traffic (what the gate guards): a
    canary above 0 and a promote; a deploy at 0 and a rollback cannot."""
    return kind == Phase.PROMOTE or (kind in (Phase.CANARY, Phase.ROLLOUT_STEP)
                                     and (weight or 0.0) > 0)


def override_variables(environment: EnvironmentConfig, skip_gate: str) -> dict[str, str]:
    """The plan-time gate's override a committed phase file carries: the --skip-gate reason,
    where the stack has the variable (plan_check); the next phase file, written whole, drops it."""
    promotion = environment.promotion
    if promotion is None or not promotion.plan_check or not skip_gate:
        return {}
    return {PROMOTION_OVERRIDE_VARIABLE: skip_gate}


def decide_commit(kind: Phase, weight: float | None, serving: Routing | None,
                  candidate: VersionCode, evidence: UpstreamEvidence,
                  settings: PromotionSettings, now: datetime) -> GateDecision | None:
    """The gate's decision on a phase committed for the workspace to apply, from what this
    environment serves, its newest published version (the candidate) and the `after`
    environment's evidence; None where it has nothing to guard: the phase gives no traffic, or
    the candidate serves everything already (a rerun of a promote that was applied)."""
    if not gives_candidate_traffic(kind, weight):
        return None
    if serving is not None and serving.primary_version == candidate.version:
        return None
    return decide(evidence, candidate.version, release_pins(candidate), settings, now)


@dataclass(frozen=True)
class CommitGate:
    """What the gate said about a committed phase, for its summary and commit message."""

    skipped: str = ""        # the --skip-gate reason
    decision: GateDecision | None = None

    def line(self) -> str:
        if self.skipped:
            return f"promotion gate skipped (not checked): {self.skipped}"
        if self.decision is not None:
            return f"promotion gate: {self.decision.detail}"
        return ""


def require_credentials(environment: EnvironmentConfig, upstream: EnvironmentConfig) -> None:
    """Raise GateRefused, naming the fix, when no AWS credentials are there to read the
    evidence of a committed phase."""
    try:
        aws.preflight_credentials(environment.region)
    except aws.AwsError as error:
        raise GateRefused(f"promotion gate: cannot read {environment.name} in AWS ({error}); it "
                          f"needs AWS credentials that can read {environment.name} and "
                          f"{upstream.name}, or --skip-gate REASON") from None


def check_commit(environment: EnvironmentConfig, upstream: EnvironmentConfig | None,
                 kind: Phase, weight: float | None, serving: Routing | None, *,
                 skip_gate: str = "", committed_pins: Mapping[str, str] | None = None,
                 where: str = "",
                 client: Callable[[str, str], Any] = aws.client,
                 now: Callable[[], datetime] | None = None) -> CommitGate:
    """The promotion gate before a phase is committed (--commit): the same evidence and the
    same decision as when invoke applies the phase, read from AWS; raises GateRefused (one line)
    when it refuses or AWS cannot be read. `serving` is this environment's live alias (None when
    it could not be read); `client(service, region)` makes the AWS clients.

    The candidate is the newest version AWS has published: the workspace applied the code.
    `committed_pins` (what the stack committed at `where` releases, `release_pins` names; None
    when unknown) must be its pins; otherwise the workspace would publish other code or shared
    settings and give them traffic in the same run, a release whose evidence nobody has read."""
    settings = environment.promotion
    if settings is None or upstream is None or not gives_candidate_traffic(kind, weight):
        return CommitGate()
    if skip_gate:
        return CommitGate(skipped=skip_gate)
    require_credentials(environment, upstream)
    try:
        lambda_client = client("lambda", environment.region)
        if serving is None:
            serving = aws.read_alias(lambda_client, environment.function_name,
                                     ALIAS_NAME).routing
        version = aws.latest_published_version(lambda_client, environment.function_name)
        if not version:
            raise GateRefused(f"promotion gate: {environment.name} has no published version "
                              "yet: let the workspace apply the first deployment")
        candidate = aws.version_code(lambda_client, environment.function_name, version)
    except aws.AwsError as error:
        raise GateRefused(f"promotion gate: cannot read {environment.name}'s candidate: "
                          f"{error}") from None
    published = release_pins(candidate)
    for pin, value in (committed_pins or {}).items():
        if value != published.get(pin, ""):
            raise GateRefused(
                f"promotion gate: {where or environment.name} holds {pin} {_short(value)} that "
                f"{environment.name} has not published yet (its newest version, "
                f"v{candidate.version}, is {pin} {_short(published.get(pin, '')) or '(none)'}): "
                f"let the workspace apply it at weight 0 first (`invoke deploy --env "
                f"{environment.name} --commit`), then commit this phase")
    if serving.primary_version == candidate.version:
        return CommitGate()
    moment = (now or wall_clock)()
    try:
        evidence = read_evidence(client("lambda", upstream.region),
                                 client("cloudwatch", upstream.region), upstream,
                                 settings.soak_minutes, moment)
    except aws.AwsError as error:
        raise GateRefused(f"promotion gate: no evidence from {upstream.name}: {error}") from None
    decision = decide_commit(kind, weight, serving, candidate, evidence, settings, moment)
    if decision is not None and not decision.passed:
        raise GateRefused(f"promotion gate: {decision.detail}")
    return CommitGate(decision=decision)
