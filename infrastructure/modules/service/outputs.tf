# The outputs contract (docs/contracts.md) plus what the pipeline and operators need.
output "function_name" {
  description = "The first Lambda function (the only one of a one-function service)."
  value       = aws_lambda_function.service[local.primary_key].function_name
}

output "function_arn" {
  description = "The first Lambda function's ARN (unqualified)."
  value       = aws_lambda_function.service[local.primary_key].arn
}

output "alias_name" {
  description = "The alias that takes traffic."
  value       = aws_lambda_alias.live[local.primary_key].name
}

output "functions" {
  description = "Every function by key: {function_name, alias_name} (the outputs contract's functions)."
  value = {
    for k, f in aws_lambda_function.service :
    k => { function_name = f.function_name, alias_name = aws_lambda_alias.live[k].name }
  }
}

output "function_names" {
  description = "Every function's name by key."
  value       = { for k, f in aws_lambda_function.service : k => f.function_name }
}

output "function_arns" {
  description = "Every function's ARN (unqualified) by key."
  value       = { for k, f in aws_lambda_function.service : k => f.arn }
}

output "alarm_names" {
  description = "CloudWatch alarms that veto a canary when in ALARM."
  value       = local.alarm_names
}

output "topic_arn" {
  description = "SNS topic for deploy notifications and alarm actions."
  value       = aws_sns_topic.alerts.arn
}

output "history_table" {
  description = "DynamoDB table of the deployment history."
  value       = aws_dynamodb_table.history.name
}

output "history_table_arn" {
  description = "The deployment history table's ARN."
  value       = aws_dynamodb_table.history.arn
}

output "rollback_function_name" {
  description = "The rollback handler subscribed to the alerts topic."
  value       = aws_lambda_function.rollback.function_name
}

output "dead_letter_queue_url" {
  description = "Failed asynchronous invocations."
  value       = aws_sqs_queue.dlq.id
}

output "kms_key_arn" {
  description = "The environment's customer-managed key."
  value       = aws_kms_key.this.arn
}

output "parameter_prefix" {
  description = "SSM parameter path of the environment's settings."
  value       = local.parameter_prefix
}

output "function_role_name" {
  description = "The service function's IAM role: the service's own Terraform (infrastructure/service) attaches its policies to it."
  value       = aws_iam_role.service.name
}
