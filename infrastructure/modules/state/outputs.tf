output "bucket" {
  description = "The state bucket (backend.hcl: bucket)."
  value       = aws_s3_bucket.state.id
}

output "lock_table" {
  description = "The lock table (backend.hcl: dynamodb_table)."
  value       = aws_dynamodb_table.lock.name
}

output "kms_key_arn" {
  description = "The key that encrypts state and locks (backend.hcl: kms_key_id, optional)."
  value       = aws_kms_key.state.arn
}
