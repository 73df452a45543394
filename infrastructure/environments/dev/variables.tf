# The parameter file's settings (terraform.tfvars). Names map to the design's parameters:
# Environment, ApiVersionStage, LambdaMemorySize, EnableXRayTracing, EnableAdvancedSecurity,
# DailyQuotaLimit, AlertEmail (and CanaryTrafficPercent in prod).
variable "environment" {
  description = "Environment (must be dev in this root)."
  type        = string

  validation {
    condition     = var.environment == "dev"
    error_message = "This root deploys the dev environment: set environment = \"dev\"."
  }
}

variable "service_name" {
  description = "The service's name."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "api_version_stage" {
  description = "ApiVersionStage."
  type        = string
}

variable "lambda_memory_size" {
  description = "LambdaMemorySize in MB."
  type        = number
}

variable "log_retention_days" {
  description = "Log retention in days."
  type        = number
}

variable "enable_xray_tracing" {
  description = "EnableXRayTracing."
  type        = bool
}

variable "enable_advanced_security" {
  description = "EnableAdvancedSecurity."
  type        = bool
}

variable "daily_quota_limit" {
  description = "DailyQuotaLimit."
  type        = number
}

variable "alert_email" {
  description = "AlertEmail; empty for no e-mail alerts."
  type        = string
  default     = ""
}

variable "canary_traffic_percent" {
  description = "CanaryTrafficPercent: the first canary step's traffic share."
  type        = number
  default     = 10
}

variable "pager_https_endpoint" {
  description = "Paging endpoint for critical alarms; empty for none."
  type        = string
  default     = ""
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of the function."
  type        = number
}

variable "tracked_versions" {
  description = "Function versions with their own per-version alarms (set by the deploy step during a canary)."
  type        = list(string)
  default     = []
}

variable "package_path" {
  description = "The service's Lambda zip for the first create."
  type        = string
}

variable "rollback_package_path" {
  description = "The rollback handler's Lambda zip."
  type        = string
}
