variable "service_name" {
  description = "The service's name (resource names: {service}-api-{environment})."
  type        = string
}

variable "environment" {
  description = "The environment (dev, staging, prod, ...)."
  type        = string
}

variable "stage_name" {
  description = "The API's stage: the design's ApiVersionStage (v1-dev, v1-staging, v1)."
  type        = string
}

variable "function_name" {
  description = "The Lambda function the front door invokes (through alias_name)."
  type        = string
}

variable "function_arn" {
  description = "The function's unqualified ARN."
  type        = string
}

variable "alias_name" {
  description = "The alias that takes traffic (live): the canary's weights decide the version."
  type        = string
}

variable "throttle_rate_limit" {
  description = "Steady-state requests per second of the stage (design: dev 1,000, staging 5,000, prod 10,000)."
  type        = number

  validation {
    condition     = var.throttle_rate_limit >= 1 && var.throttle_rate_limit <= 10000
    error_message = "The throttle_rate_limit must be between 1 and 10000 requests per second."
  }
}

variable "throttle_burst_limit" {
  description = "Burst (token bucket size) of the stage."
  type        = number

  validation {
    condition     = var.throttle_burst_limit >= 1 && var.throttle_burst_limit <= 5000
    error_message = "The throttle_burst_limit must be between 1 and 5000 requests."
  }
}

variable "cache_ttl_seconds" {
  description = "Stage cache TTL in seconds; 0 turns the cache off (design: dev off, staging 300, prod 900)."
  type        = number

  validation {
    condition     = var.cache_ttl_seconds >= 0 && var.cache_ttl_seconds <= 3600
    error_message = "The cache_ttl_seconds must be between 0 (off) and 3600."
  }
}

variable "cache_size_gb" {
  description = "Stage cache cluster size (GB), when the cache is on."
  type        = string
  default     = "0.5"
}

variable "xray_enabled" {
  description = "X-Ray tracing of the stage (EnableXRayTracing)."
  type        = bool
  default     = false
}

variable "log_retention_days" {
  description = "Retention of the access log group."
  type        = number
}

variable "kms_key_arn" {
  description = "The environment's key: encrypts the access log group."
  type        = string
}

variable "topic_arn" {
  description = "The alerts topic: the alarms notify it (and its subscriber rolls back)."
  type        = string
}

# Thresholds: the design's figures (docs/infrastructure.md).
variable "client_errors_threshold" {
  description = "4XXError count in 5 minutes above which the 4xx alarm fires."
  type        = number
  default     = 5
}

variable "server_errors_threshold" {
  description = "5XXError count in 5 minutes above which the 5xx alarm fires (immediate rollback)."
  type        = number
  default     = 3
}

variable "latency_p95_threshold_ms" {
  description = "p95 Latency (ms) above which the latency alarm fires, for 10 minutes."
  type        = number
  default     = 5000
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
