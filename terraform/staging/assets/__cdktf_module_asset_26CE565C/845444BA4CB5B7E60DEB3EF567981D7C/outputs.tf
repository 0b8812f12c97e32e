output "primary_version" {
  description = "The version the alias points at (its function_version)."
  value       = local.primary_version
}

output "additional_version_weights" {
  description = "The alias routing_config weights: {candidate_version = canary_weight} during a canary, otherwise empty."
  value       = { for version in (local.split ? [var.candidate_version] : []) : version => var.canary_weight }
}

output "phase" {
  description = "Which row of the routing table applies: candidate-only, stable-only, canary or promoted."
  value       = local.phase
}
