# Traffic policy: turns the phase variables into the `production` alias routing.
#
# Provider-free on purpose: a plain Terraform (1.0 through current, and OpenTofu) evaluates it
# without AWS, so the tests run the whole routing table through a real Terraform. The stack passes
# the version it just published as `candidate_version`.
#
# | stable_version      | canary_weight | primary_version | additional_version_weights |
# |---------------------|---------------|-----------------|----------------------------|
# | "" or == candidate  | any           | candidate       | {}                         |
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
  # Nothing stable to protect: the first deployment, or the candidate already is the stable one.
  candidate_is_stable = var.stable_version == "" || var.stable_version == var.candidate_version
  all_on_candidate    = local.candidate_is_stable || var.canary_weight >= 1
  split               = !local.all_on_candidate && var.canary_weight > 0

  # Whether the alias gets a routing_config block at all. Decided from the phase variables alone,
  # never from candidate_version: after new code that version is unknown until apply, and a block
  # whose presence is unknown at plan time ends in "Provider produced inconsistent final plan".
  weighted = var.stable_version != "" && var.canary_weight > 0 && var.canary_weight < 1
  # The one case where `weighted` and `split` disagree: a canary weight while the candidate
  # already is the stable version (no new code). The stack refuses it with a precondition.
  canary_of_stable_version = local.weighted && var.stable_version == var.candidate_version

  primary_version            = local.all_on_candidate ? var.candidate_version : var.stable_version
  additional_version_weights = { for version in(local.split ? [var.candidate_version] : []) : version => var.canary_weight }
  phase = (
    local.candidate_is_stable ? "candidate-only" :
    var.canary_weight >= 1 ? "promoted" :
    local.split ? "canary" : "stable-only"
  )
}
