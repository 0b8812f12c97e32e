variable "candidate_version" {
  description = "The Lambda version Terraform just published (the code under release). Must be a published version number, never $LATEST."
  type        = string

  validation {
    condition     = can(regex("^[0-9]+$", var.candidate_version))
    error_message = "The candidate_version must be a published Lambda version number such as \"7\"; $LATEST cannot take weighted traffic."
  }
}

variable "stable_version" {
  description = "The version that serves traffic before this release: \"\" on the first deployment (nothing stable yet), otherwise a published version number."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.stable_version))
    error_message = "The stable_version must be empty (first deployment) or a published Lambda version number such as \"3\"."
  }
}

variable "canary_weight" {
  description = "Share of requests for the candidate while a stable version exists: 0 keeps (or rolls back to) the stable version, 1 switches everything to the candidate."
  type        = number
  default     = 0

  validation {
    condition     = var.canary_weight >= 0 && var.canary_weight <= 1
    error_message = "The canary_weight must be a number from 0 to 1, for example 0.1 for 10 percent of requests."
  }
}

variable "quarantined_versions_json" {
  description = "The stack's quarantine record as JSON, {\"<version>\" = {reason, at}}: versions a rollback took traffic from (the alarm rollback function or `invoke rollback --fast` writes it). \"\" or \"{}\" when none."
  type        = string
  default     = ""
}

variable "serving_version" {
  description = "The version the production alias serves now, read at plan time (\"\" before the first deployment). An empty stable_version stands for it, so that new code never takes 100 % of traffic at once once something serves (e.g. a VCS run of a phase file still at its first value)."
  type        = string
  default     = ""
}

variable "environment" {
  description = "Name of the environment (in environments.toml), used in refusal messages."
  type        = string
  default     = "<environment>"
}

variable "promotion_after" {
  description = "The environment whose production alias must already serve this release's code (environments.toml promotion.after); \"\" when this environment has no promotion gate."
  type        = string
  default     = ""
}

variable "release_pins" {
  description = "What this plan releases, by pin name: {code = the function package's source_code_hash}. Each pin must equal the same pin in after_pins before the candidate gets traffic."
  type        = map(string)
  default     = {}
}

variable "after_pins" {
  description = "What the promotion_after environment's production alias serves, read at plan time, by pin name ({code = its version's code_sha256}); empty when it serves nothing."
  type        = map(string)
  default     = {}
}

variable "after_version" {
  description = "The version the promotion_after environment's production alias points at (\"\" when it serves nothing), for the refusal message."
  type        = string
  default     = ""
}

variable "promotion_gate_override" {
  description = "Why the promotion gate is skipped on purpose (invoke --skip-gate REASON); \"\" checks it."
  type        = string
  default     = ""
}
