# The outputs contract (docs/contracts.md): the deploy step reads these (functions: every function).
output "function_name" {
  description = "The first Lambda function (the only one of a one-function service)."
  value       = module.service.function_name
}

output "functions" {
  description = "Every function by key: {function_name, alias_name}."
  value       = module.service.functions
}

output "alias_name" {
  description = "The alias that takes traffic."
  value       = module.service.alias_name
}

output "alarm_names" {
  description = "CloudWatch alarms that veto a canary when in ALARM."
  value       = concat(module.service.alarm_names, module.front_door.alarm_names)
}

output "topic_arn" {
  description = "SNS topic for deploy notifications and alarm actions."
  value       = module.service.topic_arn
}

output "history_table" {
  description = "DynamoDB table of the deployment history."
  value       = module.service.history_table
}

output "rollback_function_name" {
  description = "The rollback handler subscribed to the alerts topic."
  value       = module.service.rollback_function_name
}

output "parameter_prefix" {
  description = "SSM path of the environment's settings."
  value       = module.service.parameter_prefix
}

output "service_resources" {
  description = "What the service's own Terraform (infrastructure/service) outputs."
  value       = module.resources.outputs
}

output "url" {
  description = "The front door's invoke URL (the stage): the target of smoke, integration and load."
  value       = module.front_door.url
}

output "function_environment" {
  description = "Variables the deploy step writes into every function's environment besides stageflow.toml's: the AWS FIS extension's (chaos)."
  value       = module.chaos.extension_environment
}

output "chaos_templates" {
  description = "The FIS experiment template id of every chaos experiment (stageflow chaos finds them by tag)."
  value       = module.chaos.template_ids
}
