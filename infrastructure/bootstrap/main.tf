# Run once per account, before any environment: creates the state bucket and lock table that every
# backend.hcl names. Its own state stays local (the bucket does not exist yet); keep it safe, or
# migrate it into the bucket afterwards with `terraform init -migrate-state`.
terraform {
  required_version = ">= 1.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0"
    }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "bucket_name" {
  description = "The state bucket (backend.hcl: bucket)."
  type        = string
  default     = "sample-api-terraform-state"
}

variable "lock_table_name" {
  description = "The lock table (backend.hcl: dynamodb_table)."
  type        = string
  default     = "sample-api-terraform-locks"
}

provider "aws" {
  region = var.region
}

module "state" {
  source = "../modules/state"

  bucket_name     = var.bucket_name
  lock_table_name = var.lock_table_name
}

output "bucket" {
  description = "The state bucket."
  value       = module.state.bucket
}

output "lock_table" {
  description = "The lock table."
  value       = module.state.lock_table
}

output "kms_key_arn" {
  description = "The state key."
  value       = module.state.kms_key_arn
}
