variable "service_name" {
  description = "The service's name; the pipeline deploys {service}-{environment}."
  type        = string
}

variable "repository_id" {
  description = "The source repository as owner/name."
  type        = string
}

variable "repository_url" {
  description = "HTTPS clone URL of the repository (the rollback project checks it out directly)."
  type        = string
}

variable "branch" {
  description = "The branch this pipeline releases to production (design: main)."
  type        = string
  default     = "main"
}

variable "connection_provider" {
  description = "Provider of the source connection: GitHub, GitLab or Bitbucket."
  type        = string
  default     = "GitHub"
}

variable "build_image" {
  description = "CodeBuild image: a current AWS-managed standard image with Python 3.11."
  type        = string
  default     = "aws/codebuild/standard:7.0"
}

variable "compute_type" {
  description = "CodeBuild compute type."
  type        = string
  default     = "BUILD_GENERAL1_SMALL"
}

variable "artifact_retention_days" {
  description = "Days pipeline artifacts are kept (design: 30)."
  type        = number
  default     = 30
}

variable "log_retention_days" {
  description = "Retention of the CodeBuild logs (a year: build logs are the release audit trail)."
  type        = number
  default     = 365
}

variable "production_approval_timeout_minutes" {
  description = "Approval before production (design: 24 h, then rejected)."
  type        = number
  default     = 1440
}

variable "canary_approval_timeout_minutes" {
  description = "Approvals between canary steps (design: 2 h, then rolled back): stageflow's deadline; CodePipeline's window is 15 min longer (codepipeline.tf)."
  type        = number
  default     = 120

  validation {
    condition     = var.canary_approval_timeout_minutes >= 1 && var.canary_approval_timeout_minutes + 15 <= 10080 && floor(var.canary_approval_timeout_minutes) == var.canary_approval_timeout_minutes
    error_message = "The canary approval timeout is whole minutes from 1 to 10065 (CodePipeline's longest approval, 7 days, less the 15-minute margin)."
  }
}

variable "notification_email" {
  description = "E-mail address for pipeline notifications and approval requests; empty for none."
  type        = string
  default     = ""
}

variable "state_bucket" {
  description = "Terraform state bucket the deploy projects read and write."
  type        = string
}

variable "state_lock_table" {
  description = "Terraform lock table."
  type        = string
}

variable "state_kms_key_arn" {
  description = "The key that encrypts the state bucket and lock table."
  type        = string
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}

variable "pull_request_builds" {
  description = "A CodeBuild webhook that runs buildspecs/build.yml on every pull request (for teams not on GitHub Actions)."
  type        = bool
  default     = true
}

variable "image_retention_count" {
  description = "Images kept in the service's ECR repository (the lifecycle policy expires older ones)."
  type        = number
  default     = 30

  validation {
    condition     = var.image_retention_count >= 1 && var.image_retention_count <= 1000
    error_message = "The image_retention_count must be between 1 and 1000."
  }
}

variable "slack_webhook_secret_arn" {
  description = "ARN of the Secrets Manager secret holding the Slack webhook URL (created and set outside Terraform, so the URL is never in state); empty: no Slack notifications from CodeBuild."
  type        = string
  default     = ""

  validation {
    condition     = var.slack_webhook_secret_arn == "" || can(regex("^arn:aws[a-z-]*:secretsmanager:", var.slack_webhook_secret_arn))
    error_message = "The slack_webhook_secret_arn must be a Secrets Manager secret ARN or empty."
  }
}

variable "environments" {
  description = "The environments the pipeline deploys: the deployer may manage exactly their function and rollback roles."
  type        = list(string)
  default     = ["dev", "staging", "prod"]

  validation {
    condition     = alltrue([for e in var.environments : can(regex("^[a-z][a-z0-9-]*$", e))])
    error_message = "Environment names are lower-case letters, digits and dashes (no wildcards)."
  }
}

variable "integration_environments" {
  description = "The environments the integration project tests (it may invoke their functions, never read their configuration)."
  type        = list(string)
  default     = ["dev", "staging"]

  validation {
    condition     = alltrue([for e in var.integration_environments : can(regex("^[a-z][a-z0-9-]*$", e))])
    error_message = "Environment names are lower-case letters, digits and dashes (no wildcards)."
  }
}

variable "deploy_secret_names" {
  description = "Secrets Manager names the environments' secrets reference (stageflow.toml [environments.*.secrets]): the deployer may read exactly these."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.deploy_secret_names : !can(regex("[*?]", n)) && n != ""])
    error_message = "Secret names are exact names: no wildcard."
  }
}

variable "deploy_parameter_names" {
  description = "Parameter Store names the environments' secrets reference: the deployer may read exactly these."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for n in var.deploy_parameter_names : !can(regex("[*?]", n)) && n != ""])
    error_message = "Parameter names are exact names: no wildcard."
  }
}

variable "chaos_environments" {
  description = "The environments whose root instantiates modules/chaos (the design: staging): the deployer may manage exactly their FIS role, configuration bucket and experiment templates."
  type        = list(string)
  default     = ["staging"]

  validation {
    condition     = alltrue([for e in var.chaos_environments : can(regex("^[a-z][a-z0-9-]*$", e)) && e != "prod"])
    error_message = "Environment names are lower-case letters, digits and dashes (no wildcards); prod never gets faults injected."
  }
}
