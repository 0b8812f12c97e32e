output "primary_version" {
  description = "The version the alias points at (its function_version)."
  value       = local.primary_version
}

output "additional_version_weights" {
  description = "The alias routing_config weights: {candidate_version = canary_weight} during a canary, otherwise empty."
  value       = local.additional_version_weights
}

output "phase" {
  description = "Which row of the routing table applies: candidate-only, stable-only, canary or promoted."
  value       = local.phase
}

output "routing_config" {
  description = "The alias routing_config blocks: one with the canary weights while the phase variables ask for a split, none otherwise (GetAlias omits an empty routing config, so an always-present empty block would never converge)."
  value       = [for weighted in(local.weighted ? [true] : []) : { additional_version_weights = local.additional_version_weights }]
}

output "canary_of_stable_version" {
  description = "True when canary_weight asks for a canary but the candidate already is the stable_version (nothing new to send traffic to); the stack refuses such a plan."
  value       = local.canary_of_stable_version
}

output "serving_quarantined_versions" {
  description = "Quarantined versions this plan would give traffic (primary or weighted); the stack refuses a plan where this is not empty."
  value       = local.serving_quarantined_versions
}

output "serves_quarantined_version" {
  description = "True when this plan would give a quarantined version traffic; the stack refuses such a plan."
  value       = length(local.serving_quarantined_versions) > 0
}

output "quarantine_refusal" {
  description = "Why the plan is refused, naming each quarantined version, its rollback reason and time and how to proceed; \"\" when no quarantined version gets traffic."
  value       = local.quarantine_refusal
}

output "promotion_gate_refuses" {
  description = "True when this plan gives new code traffic while the promotion_after environment does not serve the same pins (and no override is set); the stack refuses such a plan."
  value       = local.promotion_gate_refuses
}

output "promotion_refusal" {
  description = "Why the promotion gate refuses: what the promotion_after environment serves and what this plan would release; \"\" when the pins match."
  value       = local.promotion_refusal
}
