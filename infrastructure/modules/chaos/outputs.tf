output "template_ids" {
  description = "FIS experiment template id by experiment name."
  value       = { for name, id in local.logical_ids : name => aws_cloudformation_stack.templates.outputs[id] }
}

output "config_bucket" {
  description = "The bucket FIS writes fault configurations to."
  value       = aws_s3_bucket.config.bucket
}

output "extension_environment" {
  description = "The variables the function needs for the FIS extension (with the extension's layer attached)."
  value = {
    AWS_LAMBDA_EXEC_WRAPPER        = "/opt/aws-fis/bootstrap"
    AWS_FIS_CONFIGURATION_LOCATION = local.config_arn
  }
}
