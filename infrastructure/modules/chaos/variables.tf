variable "service_name" {
  description = "The service's name (stageflow.toml [service] name)."
  type        = string
}

variable "environment" {
  description = "The environment the experiments run against (the design: staging)."
  type        = string
}

variable "function_arns" {
  description = "The service's functions the faults go into (unqualified ARNs; every version that carries the FIS extension layer)."
  type        = list(string)

  validation {
    condition     = length(var.function_arns) > 0
    error_message = "The experiments need at least one function."
  }
}

variable "function_role_name" {
  description = "The function's execution role: it gets read access to the FIS configuration location."
  type        = string
}

variable "stop_alarm_names" {
  description = "The environment's alarms (the canary's gate alarms, the root's alarm_names): any of them in ALARM stops an experiment (one composite alarm over them is the templates' stop condition)."
  type        = list(string)
}

variable "tags" {
  description = "Extra tags."
  type        = map(string)
  default     = {}
}

# The same experiments as src/stageflow/data/chaos.toml (the local suites); stageflow chaos finds each
# template by its stageflow:experiment tag. fault: latency | error | timeout | dependency_throttle.
variable "experiments" {
  description = "Chaos experiments: fault, percent of invocations, latency (ms), HTTP status (dependency_throttle; 0 otherwise), minutes."
  type = map(object({
    fault            = string
    percent          = number
    latency_ms       = number
    status_code      = number
    duration_minutes = number
  }))
  default = {
    "canary-errors"            = { fault = "error", percent = 50, latency_ms = 0, status_code = 0, duration_minutes = 30 }
    "latency-within-gates"     = { fault = "latency", percent = 100, latency_ms = 150, status_code = 0, duration_minutes = 30 }
    "canary-timeouts"          = { fault = "timeout", percent = 25, latency_ms = 0, status_code = 0, duration_minutes = 30 }
    "canary-latency-over-gate" = { fault = "latency", percent = 100, latency_ms = 6000, status_code = 0, duration_minutes = 30 }
    "dependency-throttling"    = { fault = "dependency_throttle", percent = 50, latency_ms = 0, status_code = 429, duration_minutes = 15 }
  }

  validation {
    condition     = alltrue([for e in values(var.experiments) : contains(["latency", "error", "timeout", "dependency_throttle"], e.fault)])
    error_message = "The fault must be latency, error, timeout or dependency_throttle."
  }
  validation {
    condition     = alltrue([for e in values(var.experiments) : e.percent >= 1 && e.percent <= 100 && e.duration_minutes >= 1 && e.duration_minutes <= 720])
    error_message = "The percent must be 1-100 and duration_minutes 1-720."
  }
  validation {
    condition     = alltrue([for e in values(var.experiments) : e.latency_ms >= 0 && e.latency_ms <= 900000 && (e.status_code == 0 || (e.status_code >= 100 && e.status_code <= 599))])
    error_message = "The latency_ms must be 0-900000 (FIS's startupDelayMilliseconds) and status_code 0 (unused) or 100-599."
  }
}

variable "timeout_seconds" {
  description = "The function's timeout: a timeout fault delays invocations by this long plus one second."
  type        = number
}

variable "permissions_boundary_name" {
  description = "The managed policy FIS's role carries as its permissions boundary (the pipeline's {service}-fis-boundary); empty: none."
  type        = string
  default     = ""
}
