# The release pipeline: Source -> Build -> DeployDev -> IntegrationTest -> DeployStaging ->
# ApprovalForProduction -> DeployProduction (canary with its approvals).
variable "service_name" {
  description = "The service's name."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
}

variable "repository_id" {
  description = "owner/name of the source repository."
  type        = string
}

variable "repository_url" {
  description = "HTTPS clone URL of the source repository."
  type        = string
}

variable "branch" {
  description = "The branch released to production."
  type        = string
  default     = "main"
}

variable "notification_email" {
  description = "Pipeline notifications and approval requests; empty for none."
  type        = string
  default     = ""
}

variable "state_bucket" {
  description = "Terraform state bucket (bootstrap output bucket)."
  type        = string
}

variable "state_lock_table" {
  description = "Terraform lock table (bootstrap output lock_table)."
  type        = string
}

variable "state_kms_key_arn" {
  description = "The state key (bootstrap output kms_key_arn)."
  type        = string
}

variable "deploy_secret_names" {
  description = "Secrets Manager names the environments' secrets reference: the deployer reads exactly these."
  type        = list(string)
  default     = []
}

variable "deploy_parameter_names" {
  description = "Parameter Store names the environments' secrets reference: the deployer reads exactly these."
  type        = list(string)
  default     = []
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Service   = var.service_name
      ManagedBy = "terraform"
    }
  }
}

module "pipeline" {
  source = "../modules/pipeline"

  service_name       = var.service_name
  repository_id      = var.repository_id
  repository_url     = var.repository_url
  branch             = var.branch
  notification_email = var.notification_email
  state_bucket       = var.state_bucket
  state_lock_table   = var.state_lock_table
  state_kms_key_arn  = var.state_kms_key_arn

  deploy_secret_names    = var.deploy_secret_names # pragma: allowlist secret (names, not values)
  deploy_parameter_names = var.deploy_parameter_names
}

output "pipeline_name" {
  description = "The CodePipeline."
  value       = module.pipeline.pipeline_name
}

output "artifact_bucket" {
  description = "The artifact bucket."
  value       = module.pipeline.artifact_bucket
}

output "project_names" {
  description = "The CodeBuild projects."
  value       = module.pipeline.project_names
}

output "notification_topic_arn" {
  description = "Pipeline notifications."
  value       = module.pipeline.notification_topic_arn
}
