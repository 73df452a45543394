variable "bucket_name" {
  description = "The Terraform state bucket (globally unique)."
  type        = string
}

variable "lock_table_name" {
  description = "The DynamoDB table Terraform's S3 backend locks with (hash key LockID)."
  type        = string
}

variable "noncurrent_version_days" {
  description = "Days an overwritten state version is kept before it expires."
  type        = number
  default     = 90
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
