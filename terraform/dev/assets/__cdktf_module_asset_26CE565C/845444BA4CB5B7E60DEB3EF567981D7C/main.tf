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

  primary_version = local.all_on_candidate ? var.candidate_version : var.stable_version
  phase = (
    local.candidate_is_stable ? "candidate-only" :
    var.canary_weight >= 1 ? "promoted" :
    local.split ? "canary" : "stable-only"
  )
}
