variable "service_name" {
  description = "The service's name; resources are named {service}-{component}-{environment}."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.service_name))
    error_message = "The service_name must be lower-case letters, digits and dashes (2-41 characters)."
  }
}

variable "environment" {
  description = "The environment: dev, staging or prod."
  type        = string

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "The environment must be dev, staging or prod."
  }
}

variable "package_path" {
  description = "Path of the service's Lambda zip for the first create; later code is published by the deploy step."
  type        = string
}

variable "runtime" {
  description = "The Lambda runtime of the service and the rollback handler."
  type        = string
  default     = "python3.11"
}

variable "architectures" {
  description = "The service function's instruction set: [\"x86_64\"] or [\"arm64\"] (stageflow.toml service.architecture; the zip's wheels are built for it)."
  type        = list(string)
  default     = ["x86_64"]

  validation {
    condition     = length(var.architectures) == 1 && contains(["x86_64", "arm64"], var.architectures[0])
    error_message = "The architectures must be [\"x86_64\"] or [\"arm64\"]."
  }
}

variable "functions" {
  description = "The service's functions by key (stageflow.toml [functions.KEY], or the service's name for a one-function service): handler, memory_size (MB; design: dev 256, staging 512, prod 512), timeout_seconds (the duration alarm fires at 80 % of it), environment (plain variables at create; the deploy step keeps them current). Each is named {service}-{key}-{environment}; the key equal to the service's name keeps {service}-{environment}."
  type = map(object({
    handler         = string
    memory_size     = number
    timeout_seconds = number
    environment     = map(string)
  }))

  validation {
    condition     = length(var.functions) >= 1
    error_message = "The functions map needs at least one function."
  }

  validation {
    condition     = alltrue([for k in keys(var.functions) : can(regex("^[a-z][a-z0-9-]{0,40}$", k))])
    error_message = "Function keys are lower-case letters, digits and dashes."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.memory_size >= 128 && f.memory_size <= 10240])
    error_message = "Each function's memory_size must be between 128 and 10240 MB."
  }

  validation {
    condition     = alltrue([for f in values(var.functions) : f.timeout_seconds >= 1 && f.timeout_seconds <= 900])
    error_message = "Each function's timeout_seconds must be between 1 and 900."
  }

  validation {
    condition     = alltrue(flatten([for f in values(var.functions) : [for name in keys(f.environment) : can(regex("^[A-Za-z][A-Za-z0-9_]+$", name))]]))
    error_message = "Environment variable names are a letter, then letters, digits or underscores."
  }
}

variable "xray_enabled" {
  description = "Active X-Ray tracing (design: off in dev, on in staging and prod)."
  type        = bool
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention (design: dev 14, staging 30, prod 90)."
  type        = number

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "The log_retention_days must be a value CloudWatch Logs accepts."
  }
}

variable "reserved_concurrency" {
  description = "Reserved concurrent executions of each service function."
  type        = number
  default     = 100
}

variable "rollback_package_path" {
  description = "Path of the rollback function's zip (stageflow's self-contained rollback core)."
  type        = string
}

variable "rollback_handler" {
  description = "The rollback function's entry point in the rollback zip (needs only boto3)."
  type        = string
  default     = "stageflow.rollback.handler.handler"
}

variable "alert_email" {
  description = "E-mail address subscribed to the alerts topic; empty for none (dev)."
  type        = string
  default     = ""
}

variable "pager_https_endpoint" {
  description = "HTTPS endpoint of the paging service subscribed to the alerts topic; empty for none."
  type        = string
  default     = ""
}

variable "api_version_stage" {
  description = "The API's version stage (parameter file: ApiVersionStage)."
  type        = string
  default     = "v1"
}

variable "advanced_security" {
  description = "EnableAdvancedSecurity from the parameter file."
  type        = bool
  default     = false
}

variable "daily_quota_limit" {
  description = "The app's daily quota (design: dev 50, staging 100, prod 200)."
  type        = number
}

variable "canary_traffic_percent" {
  description = "First canary step's traffic share in percent (prod parameter file: CanaryTrafficPercent)."
  type        = number
  default     = 10

  validation {
    condition     = var.canary_traffic_percent > 0 && var.canary_traffic_percent < 100
    error_message = "The canary_traffic_percent must be between 1 and 99."
  }
}

variable "tracked_versions" {
  description = "Function versions that get their own per-executed-version alarms (the canary and the stable version)."
  type        = list(string)
  default     = []
}

variable "data_table_names" {
  description = "The service's own DynamoDB tables; each gets a throttled-requests alarm."
  type        = list(string)
  default     = []
}

# Thresholds: the design's figures (docs/infrastructure.md lists where each comes from).
variable "errors_threshold" {
  description = "Lambda errors in 5 minutes above which the errors alarm fires."
  type        = number
  default     = 5
}

variable "error_rate_threshold_percent" {
  description = "Error rate in percent above which the error-rate alarm fires (for 10 minutes)."
  type        = number
  default     = 1
}

variable "p95_threshold_ms" {
  description = "p95 duration in ms above which the latency alarm fires (for 10 minutes)."
  type        = number
  default     = 5000
}

variable "p95_critical_threshold_ms" {
  description = "p95 duration in ms above which the critical latency alarm fires (for 5 minutes)."
  type        = number
  default     = 10000
}

variable "dynamodb_throttle_threshold" {
  description = "DynamoDB throttled requests in 5 minutes above which a table's alarm fires."
  type        = number
  default     = 5
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "permissions_boundary_name" {
  description = "The IAM policy every role of the module carries as its permissions boundary (the pipeline module's <service>-function-boundary); empty for none."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]*$", var.permissions_boundary_name))
    error_message = "The permissions_boundary_name is a policy name (no wildcard, no path)."
  }
}

variable "deadline_check_minutes" {
  description = "How often the scheduled check ends approval pauses whose deadline passed (approvals.tf)."
  type        = number
  default     = 5

  validation {
    condition     = var.deadline_check_minutes >= 2 && var.deadline_check_minutes <= 60 && floor(var.deadline_check_minutes) == var.deadline_check_minutes
    error_message = "The deadline check runs every whole number of minutes from 2 to 60."
  }
}

variable "layers" {
  description = "Lambda layer version ARNs on every function of the service (the staging root: the AWS FIS extension, for the chaos stage); empty: none."
  type        = list(string)
  default     = []

  validation {
    condition     = length(var.layers) <= 5 && alltrue([for l in var.layers : can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", l))])
    error_message = "Each layer is a layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:VERSION); at most 5."
  }
}

variable "extra_environment" {
  description = "Variables every function gets at create besides stageflow.toml's (the staging root: the AWS FIS extension's); from then on the deploy step writes them with the others (the root's function_environment output)."
  type        = map(string)
  default     = {}
}
