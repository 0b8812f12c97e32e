# Traffic policy: turns the phase variables into the `production` alias routing.
#
# Provider-free on purpose: a plain Terraform (1.0 through current, and OpenTofu) evaluates it
# without AWS, so the tests run the whole routing table through a real Terraform. The stack passes
# the version it just published as `candidate_version`.
#
# | stable_version      | canary_weight | primary_version | additional_version_weights |
# |---------------------|---------------|-----------------|----------------------------|
# | "" or == candidate  | any           | candidate       | {}                         |
# (an empty stable_version stands for serving_version, the version the alias serves now; only
# before the first deployment is it really empty)
# | N                   | 0             | N               | {}                         |
# | N                   | 0 < w < 1     | N               | { candidate = w }          |
# | N                   | 1             | candidate       | {}                         |
#
# Lambda accepts at most one additional version, never $LATEST and never the primary itself:
# every row above satisfies that.

terraform {
  required_version = ">= 1.0"
}

locals {
  # An empty stable_version means "what serves now": only the very first deployment, when nothing
  # serves, sends the candidate everything without naming a stable version.
  stable_version = var.stable_version != "" ? var.stable_version : var.serving_version

  # Nothing stable to protect: the first deployment, or the candidate already is the stable one.
  candidate_is_stable = local.stable_version == "" || local.stable_version == var.candidate_version
  all_on_candidate    = local.candidate_is_stable || var.canary_weight >= 1
  split               = !local.all_on_candidate && var.canary_weight > 0

  # Whether the alias gets a routing_config block at all. Decided from the phase variables alone,
  # never from candidate_version: after new code that version is unknown until apply, and a block
  # whose presence is unknown at plan time ends in "Provider produced inconsistent final plan".
  weighted = local.stable_version != "" && var.canary_weight > 0 && var.canary_weight < 1
  # The one case where `weighted` and `split` disagree: a canary weight while the candidate
  # already is the stable version (no new code). The stack refuses it with a precondition.
  canary_of_stable_version = local.weighted && local.stable_version == var.candidate_version

  primary_version            = local.all_on_candidate ? var.candidate_version : local.stable_version
  additional_version_weights = { for version in(local.split ? [var.candidate_version] : []) : version => var.canary_weight }
  phase = (
    local.candidate_is_stable ? "candidate-only" :
    var.canary_weight >= 1 ? "promoted" :
    local.split ? "canary" : "stable-only"
  )

  # Quarantine: a version some rollback took traffic from gets none again until it is lifted on
  # purpose. Versions that would serve after this plan: the primary, plus a weighted candidate.
  quarantined      = jsondecode(var.quarantined_versions_json == "" ? "{}" : var.quarantined_versions_json)
  serving_versions = distinct(concat([local.primary_version], keys(local.additional_version_weights)))
  serving_quarantined_versions = [
    for version in local.serving_versions : version if contains(keys(local.quarantined), version)
  ]
  quarantine_refusal = length(local.serving_quarantined_versions) == 0 ? "" : join("", [
    "Quarantined version would get traffic: ",
    join("; ", [for version in local.serving_quarantined_versions : format(
      "v%s (rolled back by %s at %s)", version,
      lookup(local.quarantined[version], "reason", "a rollback"),
      lookup(local.quarantined[version], "at", "an unknown time"))]),
    ". Keep it out: apply canary_weight = 0 with the previous stable_version, or release new code.",
    " To serve it again on purpose: invoke release-quarantine --env ${var.environment} --version ",
    join(",", local.serving_quarantined_versions), ".",
  ])

  # Promotion gate: new code gets traffic only once the promotion_after environment serves the
  # same pins (today the code package hash). Soak time and alarms are checked by invoke only
  # (release/gate.py): a plan cannot read them. Not for a weight of 0 (a deploy, a rollback),
  # nor for a candidate that already serves everything (it has had its traffic).
  gives_new_code_traffic = (
    var.canary_weight > 0 && local.stable_version != "" &&
    var.candidate_version != local.stable_version && var.candidate_version != var.serving_version
  )
  unmatched_pins = [for pin, value in var.release_pins : pin if lookup(var.after_pins, pin, "") != value]
  promotion_gate_refuses = (
    var.promotion_after != "" && var.promotion_gate_override == "" &&
    length(local.unmatched_pins) > 0 && local.gives_new_code_traffic
  )
  promotion_refusal = length(local.unmatched_pins) == 0 ? "" : join("", [
    "Promotion gate: ",
    var.after_version == "" ? "${var.promotion_after} serves nothing" : format(
      "%s serves %s (v%s)", var.promotion_after,
      join(", ", [for pin in local.unmatched_pins : "${pin} ${substr(lookup(var.after_pins, pin, ""), 0, 12)}"]),
    var.after_version),
    " but ${var.environment} would release ",
    join(", ", [for pin in local.unmatched_pins : "${pin} ${substr(var.release_pins[pin], 0, 12)}"]),
    ". Release it in ${var.promotion_after} first and let it soak; to go on anyway, apply with",
    " promotion_gate_override = \"<reason>\" (invoke: --skip-gate REASON).",
  ])
}
