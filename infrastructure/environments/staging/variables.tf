# Two sources. The parameter file (terraform.tfvars) keeps what is infrastructure only: Environment,
# ApiVersionStage, EnableAdvancedSecurity, DailyQuotaLimit, AlertEmail, reserved concurrency (and
# CanaryTrafficPercent in prod). What describes the service comes from stageflow.toml: stageflow writes
# it into stageflow.tfvars.json in its working directory and passes it after terraform.tfvars
# (docs/infrastructure.md, "Where the values come from"): service_name, region, package paths,
# runtime, architectures, log retention, X-Ray and the functions (handler, memory, timeout, plain
# environment variables). To run Terraform by hand, pass that file: -var-file=<path>.
variable "environment" {
  description = "Environment (must be staging in this root)."
  type        = string

  validation {
    condition     = var.environment == "staging"
    error_message = "This root deploys the staging environment: set environment = \"staging\"."
  }
}

variable "service_name" {
  description = "The service's name (stageflow.toml service.name)."
  type        = string
}

variable "region" {
  description = "AWS region (stageflow.toml service.region)."
  type        = string
}

variable "api_version_stage" {
  description = "ApiVersionStage."
  type        = string
}

variable "log_retention_days" {
  description = "Log retention in days (stageflow.toml log_retention_days)."
  type        = number
}

variable "enable_xray_tracing" {
  description = "EnableXRayTracing (stageflow.toml xray)."
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
  description = "The service's Lambda zip for the first create (relative to this root)."
  type        = string
}

variable "runtime" {
  description = "The Lambda runtime of the service's functions (stageflow.toml service.runtime)."
  type        = string
}

variable "architectures" {
  description = "The functions' architecture (stageflow.toml service.architecture), as a one-element list."
  type        = list(string)
}

# Every function of the service by key (stageflow.toml [functions.KEY]; a one-function service: its name).
# The service module creates each with its alias, log group and alarms (for_each).
variable "functions" {
  description = "The service's functions by key: handler, memory_size (MB), timeout_seconds, environment (plain variables)."
  type = map(object({
    handler         = string
    memory_size     = number
    timeout_seconds = number
    environment     = map(string)
  }))
}

variable "rollback_package_path" {
  description = "The rollback handler's Lambda zip."
  type        = string
}

# The front door's stage (stageflow.toml [environments.NAME.api]; the design's defaults per environment).
variable "api_throttle_rate_limit" {
  description = "The API stage's steady-state rate limit (requests per second)."
  type        = number
}

variable "api_throttle_burst_limit" {
  description = "The API stage's burst limit (requests)."
  type        = number
}

variable "api_cache_ttl_seconds" {
  description = "The API stage's cache TTL in seconds; 0: no cache."
  type        = number
}

variable "http_function" {
  description = "The function the front door invokes ([service] http_function, a key of var.functions); empty: the first function."
  type        = string
  default     = "" # stageflow checks it names a function when it loads stageflow.toml
}

# The chaos stage's FIS extension layer (main.tf). stageflow's generated variables set
# fis_extension_layer = false on the emulator only (no layers there: the local runtime injects faults).
variable "fis_extension_layer" {
  description = "Attach the AWS FIS extension layer to the functions (true on AWS: FIS's Lambda actions need it)."
  type        = bool
  default     = true
}

variable "fis_extension_layer_arn" {
  description = "The AWS FIS extension's layer version ARN; empty: AWS's public parameter /aws/service/fis/lambda-extension/AWS-FIS-extension-<architecture>/1.x.x of the region."
  type        = string
  default     = ""

  validation {
    condition     = var.fis_extension_layer_arn == "" || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:aws-fis-extension-(x86_64|arm64):[0-9]+$", var.fis_extension_layer_arn))
    error_message = "The fis_extension_layer_arn must be an AWS FIS extension layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:aws-fis-extension-ARCH:VERSION) or empty."
  }
}
